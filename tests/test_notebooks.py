"""What one experiment writes, per kind; the experiment notebook under papermill: its errors, its help."""
import json
import subprocess
import sys

import nbformat
import numpy as np
import papermill
import pytest
import torch
from PIL import Image

from pystatsml_tl.precision import resolve_precision
from pystatsml_tl.runs.experiments import FIGURES, run_experiment
from pystatsml_tl.runs.notebooks import EXPERIMENT_NOTEBOOK, TEACHING_NOTEBOOK, execute_notebook
from pystatsml_tl.runs.parameters import PARAMETERS, PROFILES, SEEDS_PARAMETER
from pystatsml_tl.teaching.assignment import EXERCISE_TAG

FAST = PROFILES["smoke"] | {"epochs": 2, "train_subset": 200, "test_subset": 100, "device": "cpu"}


def check_outputs(folder, experiment, epochs, num_classes=10):
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["experiment"] == experiment and metrics["parameters"]["epochs"] == epochs
    history = metrics["history"]
    # the test split is used once, after training: it has no per-epoch history
    assert set(history) == {f"{p}_{m}" for p in ("train", "val") for m in ("loss", "acc")}
    assert all(len(v) == epochs for v in history.values())
    assert all(0 <= a <= 1 for k, v in history.items() if k.endswith("acc") for a in v)
    assert 0 <= metrics["best_epoch"] < epochs and metrics["selected_on"] == "val"
    low, high = metrics["test_acc_ci"]
    assert 0 <= low <= metrics["test_acc"] <= high <= 1
    assert metrics["test_acc"] == pytest.approx(np.mean(np.array(metrics["test_predictions"])
                                                        == np.array(metrics["test_targets"])))
    assert metrics["test_loss"] > 0 and metrics["seconds"] > 0 and metrics["device"] == "cpu"
    assert metrics["precision"] == resolve_precision(metrics["parameters"]["precision"], torch.device("cpu"))
    assert len(metrics["classes"]) == num_classes
    for name in FIGURES:
        with Image.open(folder / name) as image:
            assert image.format == "PNG" and image.width > 200 and image.height > 50
    return metrics


# each kind's steps, in process (the notebook runs them through papermill for finetune-sgd, extractor-adam,
# scratch and two-stage in tests/test_runner.py's smoke run, and under nbval): what a run writes, per kind
@pytest.mark.parametrize("experiment", ["finetune-adam", "extractor-sgd", "discriminative"])
def test_each_experiment_writes_its_metrics_and_figures(experiment, tmp_path):
    out = tmp_path / experiment
    run_experiment(FAST | {"experiment": experiment, "output_dir": str(out)}, log_interval=None)
    metrics = check_outputs(out, experiment, epochs=2)
    assert (metrics["feature_cache"] is not None) == (experiment.startswith("extractor") or experiment == "two-stage")


def test_run_with_two_worker_processes(tmp_path):
    out = tmp_path / "ddp"
    run_experiment(FAST | {"experiment": "extractor-sgd", "nproc_per_node": "2", "output_dir": str(out)},
                   log_interval=None)
    metrics = check_outputs(out, "extractor-sgd", epochs=2)
    assert metrics["parameters"]["nproc_per_node"] == "2"


def test_image_folder_run(image_folder, tmp_path):
    out = tmp_path / "folder-run"
    run_experiment(FAST | {"experiment": "extractor-adam", "dataset": str(image_folder), "batch_size": 8,
                           "train_subset": None, "test_subset": None, "val_fraction": 0.25, "output_dir": str(out)},
                   log_interval=None)
    metrics = check_outputs(out, "extractor-adam", epochs=2, num_classes=3)
    assert metrics["classes"] == ["blue", "green", "red"] and metrics["sizes"]["test"] == 12


def test_bad_parameter_fails_in_the_first_cells_with_the_package_error(tmp_path):
    output = tmp_path / "bad.ipynb"
    with pytest.raises(papermill.PapermillExecutionError) as info:
        execute_notebook(EXPERIMENT_NOTEBOOK, output, FAST | {"experiment": "finetune-rmsprop"})
    assert info.value.ename == "ValueError" and "experiment='finetune-rmsprop'" in info.value.evalue
    executed = nbformat.read(output, as_version=4)
    failed = [i for i, c in enumerate(executed.cells) if c.cell_type == "code"
              and any(o.output_type == "error" for o in c.outputs)]
    assert failed and "collect_parameters" in executed.cells[failed[0]].source
    assert not any(c.get("outputs") for c in executed.cells[failed[0] + 1:])  # nothing ran after it


def test_help_notebook_lists_every_parameter_with_type_and_help():
    shown = subprocess.run([sys.executable, "-m", "papermill", "--help-notebook", str(EXPERIMENT_NOTEBOOK)],
                           capture_output=True, text=True, check=True).stdout
    for p in [*PARAMETERS.values(), SEEDS_PARAMETER]:
        assert f"{p.name}: {p.type.__name__} (default {p.default!r})" in shown
        assert p.describe().split()[0] in shown


def test_committed_notebooks_are_clean_and_use_the_python3_kernel():
    for path in (EXPERIMENT_NOTEBOOK, TEACHING_NOTEBOOK):
        nb = nbformat.read(path, as_version=4)
        assert nb.metadata.kernelspec.name == "python3"
        assert "papermill" not in nb.metadata and "widgets" not in nb.metadata
        code = [c for c in nb.cells if c.cell_type == "code" and EXERCISE_TAG not in c.metadata.get("tags", [])]
        assert all(c.execution_count for c in code), f"{path.name} has unexecuted cells"  # exercises' answers aside
        assert not any(o.output_type == "error" for c in code for o in c.outputs)
        # no training logic in the notebooks: they call the package
        assert not any("optimizer.step" in c.source or "backward()" in c.source for c in code)
