"""`pystatsml-tl run`: papermill batch execution and the report it writes."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from conftest import SMOKE_EXPERIMENTS
from fakes import FakeExecutor
from PIL import Image

from pystatsml_tl.cli import main
from pystatsml_tl.runs.experiments import FIGURES
from pystatsml_tl.runs.parameters import EXPERIMENTS, PARAMETERS, parse_value
from pystatsml_tl.runs.runner import execute_plan, plan_run
from pystatsml_tl.storage import atomic_path, write_text_atomic

FAST = ["--set", "epochs=2", "--set", "train_subset=200", "--set", "test_subset=100"]
SMALL_NETWORK = ["--set", "arch=mobilenet_v3_small", "--set", "weights=none"]
"""For tests of how runs start, stop and resume: a network that trains in a fraction of ResNet18's time."""


def test_smoke_run_writes_the_full_report(smoke_report):
    out, err = smoke_report
    names = SMOKE_EXPERIMENTS
    for name in names:
        executed = nbformat.read(out / name / "seeds-0-1.ipynb", as_version=4)
        widgets = executed.metadata.get("widgets", {})
        assert executed.cells and "application/vnd.jupyter.widget-state+json" not in widgets
        assert (out / name / "seeds-0-1.ipynb").stat().st_size < 2_000_000
        assert (out / name / "seeds-0-1.html").stat().st_size > 10_000
        for seed in (0, 1):
            metrics = json.loads((out / name / f"seed-{seed}" / "metrics.json").read_text())
            assert metrics["experiment"] == name and len(metrics["history"]["val_acc"]) == 2
            assert metrics["parameters"]["seed"] == seed
            assert (metrics["feature_cache"] is not None) == (name in ("extractor-adam", "two-stage"))
            low, high = metrics["test_acc_ci"]
            assert 0 <= low < metrics["test_acc"] < high <= 1 and len(metrics["test_predictions"]) == 50
            assert all((out / name / f"seed-{seed}" / figure).is_file() for figure in FIGURES)
            assert {"date", "host", "cpu", "cpu_bf16_units", "cpu_threads", "gpu", "git_commit", "constraints",
                    "pystatsml_tl", "torch", "torchvision", "numpy", "python"} <= set(metrics["provenance"])
            assert metrics["data"]["name"] == "digits" and len(metrics["data"]["fingerprint"]) == 16
            assert metrics["data"]["sizes"] == {"train": 90, "val": 10, "test": 50}
    summary = pd.read_csv(out / "summary.csv")
    assert summary["experiment"].tolist() == names and (summary["n_seeds"] == 2).all()
    assert (summary["test_acc_ci_low"] <= summary["test_acc_mean"]).all()
    assert (summary["test_acc_mean"] <= summary["test_acc_ci_high"]).all()
    assert summary.loc[summary.experiment == "scratch", "weights"].item() == "none"
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 2 * len(names) and set(runs["seed"]) == {0, 1} and (runs["status"] == "ok").all()
    comparisons = pd.read_csv(out / "comparisons.csv")
    assert len(comparisons) == len(names) * (len(names) - 1) // 2
    assert (comparisons["test"] == "paired-t").all() and (comparisons["n"] == 2).all()
    assert (comparisons["p_adjusted"].fillna(1) >= comparisons["p_value"].fillna(1)).all()
    report = (out / "summary.md").read_text()
    assert all(f"| {name} |" in report for name in names)
    header = report.split("## Test accuracy")[1].splitlines()[2]
    assert len(header.split("|")) - 2 <= 9  # the compact table
    assert "paired seeds" in report and ("beats" in report or "cannot be told apart at n = 2" in report)
    assert "tutorial (%)" not in report
    assert "pystatsml-tl run --profile smoke" in report and "torch" in report and "device: cpu" in report
    assert json.loads((out / "run.json").read_text())["experiments"] == names
    for figure in ("summary.png", "epochs.png"):
        with Image.open(out / figure) as image:
            assert image.format == "PNG" and image.width >= 800
    assert err.count(": started") == len(names) and err.count(": finished, test accuracy") == len(names)
    assert err.count("runs done)") == 2 * len(names)  # a line per run: the output is not a terminal
    assert "IPKernelApp" not in err and "WARNING" not in err  # the kernel's start-up noise stays out


def test_a_failed_notebook_cell_is_recorded_as_one_line():
    from papermill.exceptions import PapermillExecutionError

    from pystatsml_tl.errors import first_error_line

    error = PapermillExecutionError(cell_index=3, exec_count=3, source="raise", ename="RuntimeError",
                                    evalue="simulated failure\nsecond line", traceback=["..."])
    assert first_error_line(error) == "RuntimeError: simulated failure"
    assert first_error_line(ValueError("")) == "ValueError:"


def test_cli_exit_status_is_non_zero_when_an_experiment_fails(tmp_path, monkeypatch):
    import pystatsml_tl.runs.runner as runner

    original = runner.execute_plan
    fake = FakeExecutor(failing=("extractor-adam",))
    monkeypatch.setattr(runner, "execute_plan", lambda plan, jobs, nb, command, executor: original(
        plan, jobs, nb, command, fake))
    code = main(["run", "--profile", "smoke", "--experiments", "extractor-adam,scratch", "--output-dir",
                 str(tmp_path / "r"), "--device", "cpu", "--seeds", "1", *FAST])
    assert code == 1 and fake.calls == [("extractor-adam", (0,)), ("scratch", (0,))]


def test_the_runner_groups_skips_and_records_failures_with_a_fake_executor(tmp_path, capsys):
    out = tmp_path / "r"
    fake = FakeExecutor(failing=("extractor-sgd",))
    plan = plan_run("smoke", ["finetune-sgd", "extractor-sgd", "scratch"], {}, out, seeds=[0, 1, 2],
                    grid={"lr": [0.001, 0.01]}, compare_to="scratch")
    failures = execute_plan(plan, jobs=2, executor=fake)
    assert sorted(fake.calls) == sorted((name, (0, 1, 2)) for name in ("finetune-sgd", "extractor-sgd", "scratch")
                                        for _ in range(2))  # one notebook per experiment and grid point
    assert sorted(failures) == ["extractor-sgd [lr=0.001]", "extractor-sgd [lr=0.01]"]
    failure = json.loads((out / "extractor-sgd" / "lr=0.01" / "seed-2" / "failure.json").read_text())
    assert failure["error"] == "RuntimeError: simulated failure of extractor-sgd" and failure["seed"] == 2
    runs = pd.read_csv(out / "runs.csv")
    assert (runs["status"] == "ok").sum() == 12 and (runs["status"] == "failed").sum() == 6
    comparisons = pd.read_csv(out / "comparisons.csv")
    assert len(comparisons) == 2 and (comparisons["b"].str.startswith("scratch")).all()  # compared to scratch
    assert json.loads((out / "run.json").read_text())["compare_to"] == "scratch"
    fixed = FakeExecutor()
    assert execute_plan(plan, executor=fixed) == {}  # the rerun executes only what failed
    assert sorted(fixed.calls) == [("extractor-sgd", (0, 1, 2))] * 2
    assert not list(out.rglob("failure.json"))
    assert capsys.readouterr().err.count("already complete, skipped") == 12


def _kernels_started_by(pid: int) -> list[str]:
    """The processes still alive whose environment names ``pid`` as their kernel's parent (Linux)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if f"JPY_PARENT_PID={pid}\0".encode() in environ.read_bytes():
                found.append(environ.parent.name)
        except OSError:
            continue
    return found


def test_ctrl_c_stops_the_kernels_reports_what_completed_and_resumes(tmp_path):
    import signal
    import time

    out = tmp_path / "r"
    # 5 seeds: after the first one completes, 4 remain, a window wide enough for the Ctrl-C on a loaded machine
    command = [sys.executable, "-m", "pystatsml_tl", "run", "--profile", "smoke", "--experiments", "finetune-sgd",
               "--seeds", "5", "--device", "cpu", "--set", "epochs=1", "--set", "train_subset=60",
               "--set", "test_subset=30", *SMALL_NETWORK, "--output-dir", str(out)]
    def as_a_terminal_starts_it():  # SIGINT handled and not blocked, whatever this test process inherited
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

    inherited = (signal.getsignal(signal.SIGINT), signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, []))
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, preexec_fn=as_a_terminal_starts_it)
    deadline = time.time() + 300
    while not list(out.rglob("metrics.json")) and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in a terminal: SIGINT to the foreground process group
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, f"this process's SIGINT handler and blocked: {inherited}\n{err}"
    last = err.strip().splitlines()[-1]
    assert re.fullmatch(r"\[pystatsml-tl\] interrupted: [1-4] of 5 runs complete; run the same command again to "
                        r"resume", last), err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err and "Kernel died" not in err
    deadline = time.time() + 10
    while _kernels_started_by(process.pid) and time.time() < deadline:
        time.sleep(0.2)
    assert not _kernels_started_by(process.pid)  # the kernel was stopped with the run
    complete = len(list(out.rglob("metrics.json")))
    assert len(pd.read_csv(out / "runs.csv")) == complete  # the report holds what completed
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0 and resumed.stderr.count("already complete, skipped") == complete


def test_list_ends_quietly_when_its_pipe_closes():
    process = subprocess.Popen([sys.executable, "-m", "pystatsml_tl", "list"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    process.stdout.close()  # like `| head` giving up at once
    _, err = process.communicate(timeout=60)
    assert err == b"" and process.returncode in (0, 1)


@pytest.mark.parametrize("argv, message", [
    (["run", "--profile", "huge"], "--profile: invalid choice"),
    (["run", "--set", "epochs=three"], "epochs='three': expected int"),
    (["run", "--set", "epochs"], "expected NAME=VALUE"),
    (["run", "--set", "colour=red"], "unknown parameter 'colour'"),
    (["run", "--set", "val_fraction=1.5"], "val_fraction=1.5: expected a fraction"),
    (["run", "--experiments", "finetune-sgd,transfer"], "experiments=transfer"),
    (["run", "--jobs", "0"], "--jobs 0"),
    (["run", "--set", "output_dir=/tmp/x"], "--set output_dir"),
    (["run", "--set", "seed=3"], "use --seeds"),
    (["run", "--seeds", "0"], "--seeds '0'"),
    (["run", "--seeds", "1,x"], "--seeds '1,x'"),
    (["run", "--grid", "image_size=32,huge"], "image_size='huge': expected int"),
    (["run", "--grid", "image_size=32,-1"], "image_size=-1: expected a positive integer"),
    (["run", "--grid", "colour=red,blue"], "unknown parameter 'colour'"),
    (["run", "--grid", "epochs=1,2", "--set", "epochs=3"], "both set epochs"),
    (["run", "--shard", "3/2"], "--shard '3/2'"),
    (["run", "--experiments", "finetune-sgd,scratch", "--compare-to", "nope"],
     "compare_to='nope': expected all or one of"),
    (["run", "--shard", "one"], "--shard 'one'"),
    (["run", "--nproc-per-node", "0"], "nproc_per_node='0': expected a positive integer or auto"),
    (["run", "--set", "scheduler=foo"], "scheduler='foo': expected step | cosine | onecycle"),
    (["run", "--set", "lr_decay=0"], "lr_decay=0.0: expected a number in (0, 1]"),
    (["run", "--experiments", "two-stage", "--set", "freeze_epochs=5"], "freeze_epochs=5: expected an integer in [1"),
    (["lr-find", "--set", "scheduler=foo"], "scheduler='foo'"),
    (["lr-find", "--experiment", "finetune-rmsprop"], "experiment='finetune-rmsprop'"),
])
def test_invalid_options_exit_2_with_one_line_before_anything_runs(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main([*argv, "--output-dir", str(tmp_path / "never")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize("name", list(PARAMETERS))
def test_every_parameter_is_settable_or_refused_in_one_line(name, tmp_path, capsys):
    from pystatsml_tl.runs.grid import RUNNER_OWNED

    value = {"experiment": "scratch", "dataset": "synthetic", "data_dir": str(tmp_path), "arch": "resnet18",
             "weights": "none", "normalize": "imagenet", "device": "cpu", "output_dir": str(tmp_path),
             "scheduler": "cosine"}.get(name)
    if value is None:
        value = {bool: False, int: 1, float: 0.5}.get(PARAMETERS[name].type, PARAMETERS[name].default)
    text = str(value)
    try:
        plan = plan_run("smoke", ["finetune-sgd"], {name: parse_value(name, text)}, tmp_path / "out")
    except ValueError as error:
        assert name in RUNNER_OWNED and RUNNER_OWNED[name] in str(error) and "\n" not in str(error)
    else:
        assert name not in RUNNER_OWNED and plan.runs[0][1][name] == parse_value(name, text)


SHARD = """
import sys
from fakes import FakeExecutor
from pystatsml_tl.runs.runner import run
sys.exit(run("smoke", ["extractor-sgd", "extractor-adam", "scratch"], {{}}, {out!r}, seeds=[0, 1, 2],
             grid={{"lr": [0.001, 0.01]}}, shard={shard}, executor=FakeExecutor()))
"""


def test_shards_run_at_the_same_time_match_one_process(tmp_path):
    shared = tmp_path / "shared"
    env = os.environ | {"PYTHONPATH": str(Path(__file__).parent)}
    shards = [subprocess.Popen([sys.executable, "-c", SHARD.format(out=str(shared), shard=(i, 3))], env=env,
                               stderr=subprocess.PIPE, text=True) for i in (1, 2, 3)]
    errors = [shard.communicate(timeout=300)[1] for shard in shards]
    assert [shard.returncode for shard in shards] == [0, 0, 0], errors
    assert all("6 run(s) in 2 group(s)" in err for err in errors)  # disjoint thirds of 18 runs
    single = tmp_path / "single"
    assert execute_plan(plan_run("smoke", ["extractor-sgd", "extractor-adam", "scratch"], {}, single,
                                 seeds=[0, 1, 2], grid={"lr": [0.001, 0.01]}), executor=FakeExecutor()) == {}
    assert main(["report", str(shared)]) == 0
    columns = ["experiment", "lr", "seed", "status", "test_acc", "test_acc_ci_low", "test_acc_ci_high", "best_epoch",
               "path"]
    rebuilt, one = pd.read_csv(shared / "runs.csv"), pd.read_csv(single / "runs.csv")
    assert len(one) == 18 and rebuilt[columns].equals(one[columns])
    assert pd.read_csv(shared / "summary.csv").equals(pd.read_csv(single / "summary.csv"))
    assert "pystatsml-tl report" in (shared / "summary.md").read_text()
    assert not list(shared.glob(".*.tmp"))


def test_grid_runs_every_point_and_names_folders_and_columns_after_it(tmp_path):
    out = tmp_path / "grid"
    fake = FakeExecutor()
    plan = plan_run("smoke", ["extractor-adam"], {}, out, seeds=[1],
                    grid={"normalize": ["tutorial", "imagenet"], "lr": [0.001, 0.01]})
    assert execute_plan(plan, executor=fake) == {}
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 4 and list(runs.columns[:4]) == ["experiment", "lr", "normalize", "seed"]  # declaration order
    assert set(runs["seed"]) == {1}
    assert (out / "extractor-adam" / "normalize=imagenet,lr=0.01" / "seed-1" / "metrics.json").is_file()
    given = json.loads((out / "extractor-adam" / "normalize=imagenet,lr=0.01" / "seed-1" / "metrics.json").read_text())
    assert (given["parameters"]["normalize"], given["parameters"]["lr"]) == ("imagenet", 0.01)  # the notebook got them
    comparisons = pd.read_csv(out / "comparisons.csv")
    assert sorted(comparisons["differs_in"]) == ["lr", "lr", "normalize", "normalize"]
    assert (comparisons["test"] == "mcnemar").all() and (comparisons["n"] == 1).all()
    assert "McNemar" in (out / "summary.md").read_text()
    assert (out / "grid-lr.png").is_file() and not (out / "grid-normalize.png").exists()


def test_lr_find_command_writes_the_plot_and_prints_the_rate(tmp_path, capsys):
    assert main(["lr-find", "--experiment", "extractor-adam", "--set", "train_subset=200", "--set", "test_subset=50",
                 "--num-iter", "30", "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("suggested learning rate ") and float(out[0].split()[3]) > 0
    assert out[1] == str(tmp_path / "lr_find.png")
    with Image.open(tmp_path / "lr_find.png") as image:
        assert image.format == "PNG"


def test_report_of_a_folder_without_runs_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["report", str(tmp_path)])
    assert info.value.code == 2 and "no metrics.json" in capsys.readouterr().err


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
