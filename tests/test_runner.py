"""`pystatsml-tl run`: papermill batch execution and the report it writes."""
import json
import os

import nbformat
import pandas as pd
import pytest
from PIL import Image

from pystatsml_tl.cli import main
from pystatsml_tl.experiments import FIGURES
from pystatsml_tl.notebooks import EXPERIMENT_NOTEBOOK
from pystatsml_tl.parameters import EXPERIMENTS
from pystatsml_tl.runner import execute_plan, plan_run
from pystatsml_tl.storage import atomic_path, write_text_atomic

FAST = ["--set", "epochs=2", "--set", "train_subset=200", "--set", "test_subset=100"]


def test_smoke_run_writes_the_full_report(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["run", "--profile", "smoke", "--output-dir", str(out), "--device", "cpu", *FAST]) == 0
    names = list(EXPERIMENTS)
    for name in names:
        assert nbformat.read(out / f"{name}.ipynb", as_version=4).cells
        metrics = json.loads((out / name / "metrics.json").read_text())
        assert metrics["experiment"] == name and len(metrics["history"]["val_acc"]) == 2
        assert all((out / name / figure).is_file() for figure in FIGURES)
    table = pd.read_csv(out / "summary.csv")
    assert table["experiment"].tolist() == names and (table["status"] == "ok").all()
    assert table["test_acc"].between(0, 100).all() and table["best_epoch"].between(0, 1).all()
    assert table.loc[table.experiment == "scratch", "weights"].item() == "none"
    summary = (out / "summary.md").read_text()
    assert all(f"| {name} |" in summary for name in names)
    assert "not comparable" in summary and "tutorial_best_acc" not in summary
    assert "pystatsml-tl run --profile smoke" in summary and "torch" in summary and "device: cpu" in summary
    with Image.open(out / "summary.png") as image:
        assert image.format == "PNG" and image.width >= 800
    err = capsys.readouterr().err
    assert err.count(": started") == 5 and err.count(": finished, test accuracy") == 5


def failing_notebook(tmp_path, flag):
    """The experiment notebook with one more cell: extractor-adam fails until ``flag`` exists."""
    nb = nbformat.read(EXPERIMENT_NOTEBOOK, as_version=4)
    tagged = {"parameters", "injected-parameters"}  # papermill replaces an injected cell where it stands
    at = max(i for i, c in enumerate(nb.cells) if tagged & set(c.metadata.get("tags", []))) + 1
    nb.cells.insert(at, nbformat.v4.new_code_cell(
        f"import os\nif experiment == 'extractor-adam' and not os.path.exists({str(flag)!r}):\n"
        "    raise RuntimeError('simulated failure\\nsecond line')"))
    path = tmp_path / "failing.ipynb"
    nbformat.write(nb, path)
    return path


def test_a_failure_spares_the_others_and_a_rerun_finishes_only_it(tmp_path, capsys):
    flag = tmp_path / "fixed"
    notebook = failing_notebook(tmp_path, flag)
    out = tmp_path / "report"
    overrides = {"epochs": 2, "train_subset": 200, "test_subset": 100, "device": "cpu"}
    plan = plan_run("smoke", ["extractor-sgd", "extractor-adam", "finetune-sgd"], overrides, out)
    metrics, failures = execute_plan(plan, jobs=2, notebook=notebook)
    assert set(metrics) == {"extractor-sgd", "finetune-sgd"}
    assert failures == {"extractor-adam": "RuntimeError: simulated failure"}
    table = pd.read_csv(out / "summary.csv")
    failed = table[table.experiment == "extractor-adam"].iloc[0]
    assert failed.status == "failed" and failed.error == "RuntimeError: simulated failure"
    assert "`extractor-adam`: RuntimeError: simulated failure" in (out / "summary.md").read_text()
    done = {n: os.stat(out / n / "metrics.json").st_mtime_ns for n in metrics}

    flag.write_text("")
    capsys.readouterr()
    metrics, failures = execute_plan(plan, jobs=2, notebook=notebook)
    assert not failures and set(metrics) == {"extractor-sgd", "extractor-adam", "finetune-sgd"}
    assert done == {n: os.stat(out / n / "metrics.json").st_mtime_ns for n in done}  # not run again
    err = capsys.readouterr().err
    assert err.count("skipped") == 2 and "extractor-adam: started" in err
    assert (pd.read_csv(out / "summary.csv")["status"] == "ok").all()


def test_cli_exit_status_is_non_zero_when_an_experiment_fails(tmp_path, monkeypatch):
    import pystatsml_tl.runner as runner

    notebook = failing_notebook(tmp_path, tmp_path / "never")
    original = runner.execute_plan
    monkeypatch.setattr(runner, "execute_plan", lambda plan, jobs, nb, command: original(plan, jobs, notebook, command))
    code = main(["run", "--profile", "smoke", "--experiments", "extractor-adam", "--output-dir", str(tmp_path / "r"),
                 "--device", "cpu", *FAST])
    assert code == 1


@pytest.mark.parametrize("argv, message", [
    (["run", "--profile", "huge"], "--profile: invalid choice"),
    (["run", "--set", "epochs=three"], "epochs='three': expected int"),
    (["run", "--set", "epochs"], "expected NAME=VALUE"),
    (["run", "--set", "colour=red"], "unknown parameter 'colour'"),
    (["run", "--set", "val_fraction=1.5"], "val_fraction=1.5: expected a fraction"),
    (["run", "--experiments", "finetune-sgd,transfer"], "experiments=transfer"),
    (["run", "--jobs", "0"], "--jobs 0"),
    (["run", "--set", "output_dir=/tmp/x"], "--set output_dir"),
])
def test_invalid_options_exit_2_with_one_line_before_anything_runs(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv + ["--output-dir", str(tmp_path / "never")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "never").exists()


def test_offline_quick_profile_fails_at_once_and_suggests_smoke(tmp_path, monkeypatch, no_network, capsys):
    monkeypatch.setenv("PYSTATSML_TL_DATA", str(tmp_path / "data"))
    code = main(["run", "--profile", "quick", "--output-dir", str(tmp_path / "r")])
    assert code == 1
    err = capsys.readouterr().err
    assert "CIFAR-10" in err and "--profile smoke" in err
    assert not (tmp_path / "r" / "summary.md").exists()


def test_list_shows_experiments_profiles_and_parameters(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in EXPERIMENTS) and "smoke" in out and "tutorial" in out
    assert "val_fraction   float" in out and "image_size" in out


def test_interrupted_atomic_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "summary.md"
    write_text_atomic(path, "old report")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(path) as tmp:
            tmp.write_text("half a new rep")
            raise KeyboardInterrupt  # Ctrl-C while the new file is being written
    assert path.read_text() == "old report" and os.listdir(tmp_path) == ["summary.md"]
