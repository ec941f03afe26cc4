"""Where students run the lesson: no POSIX-only import, Apple's GPUs, refusals that name the parameter."""
import subprocess
import sys
import textwrap

import pytest
import torch

from pystatsml_tl import devices
from pystatsml_tl.devices import resolve_device
from pystatsml_tl.precision import auto_precision, capability, resolve_precision
from pystatsml_tl.runs.parameters import validate_parameters


def test_the_package_imports_and_trains_without_fcntl(tmp_path):
    """As on Windows: ``fcntl`` cannot be imported; the package imports, locks and trains a small run."""
    script = textwrap.dedent("""
        import sys
        sys.modules["fcntl"] = None  # import fcntl now raises ImportError, as on Windows
        import filelock
        import pystatsml_tl
        from pystatsml_tl import profile_parameters
        from pystatsml_tl.runs.experiments import run_experiment
        from pystatsml_tl.storage import file_lock

        with file_lock("held.lock"):
            pass
        params = profile_parameters("smoke", device="cpu", weights="none", epochs=1, train_subset=60,
                                    test_subset=40, output_dir="run")
        result = run_experiment(params, experiment="extractor-adam", log_interval=None)
        print(filelock.FileLock.__name__, 0 <= result.test.accuracy <= 1, "fcntl" in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    lock, trained, _ = done.stdout.split()
    assert lock == "SoftFileLock" and trained == "True"  # filelock's portable lock serves where fcntl is missing
    assert (tmp_path / "run" / "metrics.json").is_file()


def test_auto_picks_cuda_then_mps_then_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "mps_available", lambda: True)
    mps = resolve_device("auto")
    assert mps.type == "mps" and resolve_device("mps").type == "mps"
    assert capability(mps) == "mps" and auto_precision(mps) == "fp32"  # not the host CPU's bf16 units
    assert resolve_precision("bf16", mps) == "bf16"  # still selectable
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto").type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "mps_available", lambda: False)
    assert resolve_device("auto").type == "cpu"


@pytest.mark.parametrize(("device", "message"), [
    ("mps", "device='mps': Apple's GPU backend is not available here"),
    ("cuda", "device='cuda': no CUDA device is available here"),
    ("tpu", "device='tpu': expected auto | cpu | cuda | mps"),
])
def test_a_device_that_is_not_there_is_refused_in_one_line(monkeypatch, device, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "mps_available", lambda: False)
    with pytest.raises(ValueError, match=message) as error:
        resolve_device(device)
    assert "\n" not in str(error.value)


def test_the_parameter_table_accepts_mps_and_refuses_other_names():
    assert validate_parameters({"device": "mps"})["device"] == "mps"
    with pytest.raises(ValueError, match="^device='gpu': expected"):
        validate_parameters({"device": "gpu"})
