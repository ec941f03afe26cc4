"""Extension 1, through public registration only: an experiment that fine-tunes only ``layer4``
and the new head. One registry entry: the fine-tuning kind trains what its entry says trains."""
import json
import subprocess
import sys
import textwrap

import pytest
import torch

from pystatsml_tl.cli import main
from pystatsml_tl.runs.experiments import build_model, run_experiment
from pystatsml_tl.runs.parameters import validate_parameters
from pystatsml_tl.runs.registry import EXPERIMENTS, Experiment, experiment_colour, register_experiment

SMALL = dict(dataset="synthetic", weights="none", epochs=2, batch_size=20, train_subset=120, test_subset=40,
             progress=False, device="cpu", lr=0.01)


@pytest.fixture
def layer4_experiment():
    """``layer4-sgd`` registered for one test, and removed after it."""
    entry = register_experiment(Experiment("layer4-sgd", kind="finetune", optimizer="sgd", trains=("layer4", "head"),
                                           description="layer4 and the new head train, SGD"))
    yield entry
    del EXPERIMENTS["layer4-sgd"]


def test_layer4_only_changes_no_weight_outside_layer4_and_the_head(layer4_experiment, tmp_path, cache_dir):
    params = validate_parameters(SMALL | {"experiment": "layer4-sgd"})
    before = build_model(params, 10).state_dict()  # the same seed builds the same initial model
    result = run_experiment(params, log_interval=None, output_dir=str(tmp_path))
    after = result.model.state_dict()
    moved = {name for name in before if not torch.equal(before[name], after[name])}
    assert moved and all(name.startswith(("layer4.", "fc.")) for name in moved)
    assert any(name.startswith("layer4.") and name.endswith("running_mean") for name in moved)  # its BN trains
    assert result.model.freezing.trainable == ("layer4", "fc") and result.feature_cache is None
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["settings"] == {"kind": "finetune", "optimizer": "sgd", "trains": ["layer4", "head"],
                                   "weights": "none"}


def test_layer4_shows_in_the_list_with_its_colour(layer4_experiment, capsys):
    assert main(["list"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("layer4-sgd"))
    assert "layer4 and the new last layer" in line and layer4_experiment.colour in line
    assert experiment_colour("layer4-sgd lr=0.01") == layer4_experiment.colour
    assert layer4_experiment.colour not in {e.colour for n, e in EXPERIMENTS.items() if n != "layer4-sgd"}


def test_an_installed_extension_reaches_a_separate_process(tmp_path):
    (tmp_path / "my_lab.py").write_text(textwrap.dedent("""
        from pystatsml_tl.runs.registry import Experiment, register_experiment
        register_experiment(Experiment("layer4-adam", kind="finetune", optimizer="adam", trains=("layer4", "head")))
    """))
    info = tmp_path / "my_lab-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-lab\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[pystatsml_tl.extensions]\nmy_lab = my_lab\n")
    code = ("from pystatsml_tl.runs.parameters import validate_parameters\n"
            "print(validate_parameters({'experiment': 'layer4-adam'}).settings)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "'trains': ['layer4', 'head']" in done.stdout
