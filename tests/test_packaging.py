"""The wheel carries the notebooks and the offline backbone, and an installed copy runs from outside the repository."""
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pystatsml_tl.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_holds_the_notebooks_and_the_backbone_and_runs_outside_the_checkout(tmp_path):
    # the build backend installed with the test dependencies: no isolated environment to fill first
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(ROOT)], check=True, cwd=tmp_path)
    wheel = next((tmp_path / "dist").glob("pystatsml_tl-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {"pystatsml_tl/bundled_notebooks/experiment.ipynb",
            "pystatsml_tl/bundled_notebooks/transfer_learning.ipynb"} <= set(names)
    assert any(name.startswith("pystatsml_tl/bundled_weights/resnet18-fractals-") for name in names)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(os.environ, PYTHONPATH=str(target), PYSTATSML_TL_CACHE=str(tmp_path / "empty-cache"))

    def command(*args):
        return subprocess.run([sys.executable, "-m", "pystatsml_tl", *args], cwd=elsewhere, env=env,
                              capture_output=True, text=True, timeout=600)

    where = subprocess.run([sys.executable, "-c", "import pystatsml_tl.runs.notebooks as n; print(n.NOTEBOOK_DIR)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(target)  # the installed copy, not the checkout
    listed = command("list")
    assert listed.returncode == 0 and "finetune-sgd" in listed.stdout
    done = command("run", "--profile", "smoke", "--experiments", "extractor-adam", "--seeds", "1", "--device", "cpu",
                   "--set", "epochs=1", "--set", "train_subset=100", "--set", "test_subset=50",
                   "--output-dir", "report")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Installed the offline backbone bundled with the package" in done.stderr  # not pretrained first
    assert (elsewhere / "report" / "extractor-adam" / "seed-0" / "metrics.json").is_file()
    copied = command("notebooks", "mine")
    assert copied.returncode == 0 and sorted(p.name for p in (elsewhere / "mine").iterdir()) == [
        "experiment.ipynb", "transfer_learning.ipynb"]


def test_notebooks_command_keeps_what_is_there(tmp_path, capsys):
    assert main(["notebooks", str(tmp_path)]) == 0
    (tmp_path / "experiment.ipynb").write_text("my edits")
    with pytest.raises(SystemExit) as info:
        main(["notebooks", str(tmp_path)])
    assert info.value.code == 2 and "already exist" in capsys.readouterr().err
    assert (tmp_path / "experiment.ipynb").read_text() == "my edits"
    assert main(["notebooks", str(tmp_path), "--force"]) == 0
    assert (tmp_path / "experiment.ipynb").read_text() != "my edits"
