"""Run experiments headless with papermill and write the report.

The unit of a papermill run is a *group*: one experiment at one grid point, with all the seeds of
it that this process has to run. The seeds run one after another in one kernel, so the kernel's
start-up (a few seconds of imports) is paid once per group, not once per seed; a shard that gets
only some seeds of a group runs just those. A failing group does not stop the others; a rerun into
the same output directory skips the runs whose ``metrics.json`` is complete. Ctrl-C stops the kernels,
rebuilds the report from what completed and exits with status 130; the same command resumes.

The notebook executor is a parameter (:func:`execute_plan`'s ``executor``): the runner's grouping,
skipping, failure records and report do not depend on how a notebook is executed. Two come with
it: :func:`run_notebook` (papermill, the default) and :func:`run_in_process` (the notebook's
steps in this process, no kernel: for a debugger, or a kind registered in this process).
"""
from __future__ import annotations

import json
import logging
import signal
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.registry import DATASETS
from ..errors import ResourceUnavailableError, first_error_line
from ..logs import show_messages
from ..storage import write_json_atomic
from .experiments import run_experiment, seed_runs
from .grid import RUNNER_OWNED, Run, expand_runs, group_folder, shard_runs
from .metrics import is_complete_metrics
from .notebooks import EXPERIMENT_NOTEBOOK, execute_notebook, stop_running_kernels
from .parameters import profile_parameters
from .progress import RunProgress
from .registry import EXPERIMENTS
from .report import FAILURE_FILE, RUN_FILE, check_compare_to, check_report_folder, write_report

logger = logging.getLogger(__name__)

INTERRUPTED = 130
"""The exit status of a run stopped by Ctrl-C (128 + SIGINT), as a shell reports it."""
Executor = Callable[[Path, Path, dict[str, Any], Path], Any]
"""How a group's notebook is executed: ``executor(notebook, output_notebook, parameters, cwd)``;
it writes each seed's ``metrics.json`` and raises when the notebook fails."""


@dataclass
class RunPlan:
    """What a run will do: the validated parameters of each run of this shard, and where the report goes."""

    profile: str
    output_dir: Path
    runs: list[tuple[Run, dict[str, Any]]]
    compare_to: str | None = None

    def groups(self, runs: list[tuple[Run, dict[str, Any]]] | None = None) -> dict[tuple, list]:
        """``runs`` (default: all of the plan) grouped by experiment and grid point, in order."""
        grouped: dict[tuple, list] = {}
        for run, params in self.runs if runs is None else runs:
            grouped.setdefault(run.group, []).append((run, params))
        return grouped


def plan_run(profile: str, experiments: list[str], overrides: dict[str, Any], output_dir: str | Path,
             seeds: list[int] | None = None, grid: dict[str, list[Any]] | None = None,
             shard: tuple[int, int] = (1, 1), compare_to: str | None = None) -> RunPlan:
    """Validate everything a run needs and return its plan; raise ``ValueError`` before any work."""
    seeds, grid = seeds or [0], grid or {}
    unknown = [name for name in experiments if name not in EXPERIMENTS]
    if unknown or not experiments:
        raise ValueError(f"experiments={','.join(unknown) or '(none)'}: expected names among {', '.join(EXPERIMENTS)}")
    check_compare_to(compare_to, experiments)
    for name, option in RUNNER_OWNED.items():
        if name in overrides:
            raise ValueError(f"--set {name}=...: set by the runner; use {option} instead")
    both = sorted(set(overrides) & set(grid))
    if both:
        raise ValueError(f"--set and --grid both set {', '.join(both)}: give it in one of them")
    output_dir = Path(output_dir)
    if output_dir.is_dir():
        check_report_folder(output_dir)
    runs = shard_runs(expand_runs(list(dict.fromkeys(experiments)), grid, seeds), *shard)
    planned = []
    for run in runs:
        folder = (output_dir / run.folder).resolve()
        params = profile_parameters(profile, **({"progress": False} | overrides | dict(run.grid)),
                                    experiment=run.experiment, seed=run.seed, output_dir=str(folder))
        planned.append((run, params))
    return RunPlan(profile, output_dir, planned, compare_to)


def prepare_resources(plan: RunPlan) -> None:
    """Fetch what the runs share before they start: the dataset, the ImageNet weights or the
    offline pretrained backbone. Fails at once with the package's offline message when it cannot."""
    from ..models import fetch_imagenet_weights
    from ..pretraining import pretrained_backbone_path

    runs = [params for _, params in plan.runs]  # each resource once, however many runs share it
    for dataset, data_dir in sorted({(p["dataset"], p["data_dir"]) for p in runs}, key=repr):
        entry = DATASETS.get(dataset)
        if entry is not None and entry.prefetch is not None:
            entry.prefetch(data_dir)
    for weights, arch in sorted({(p.settings["weights"], p["arch"]) for p in runs}):
        if weights == "imagenet":
            fetch_imagenet_weights(arch)
        elif weights == "synthetic":
            pretrained_backbone_path(arch, progress=sys.stderr.isatty())  # a bar, or a line per epoch


def _log(message: str) -> None:
    logger.info(message)


def _metrics_path(params: dict[str, Any]) -> Path:
    return Path(params["output_dir"]) / "metrics.json"


def _run_group(label: str, runs: list[tuple[Run, dict[str, Any]]], output_dir: Path, notebook: Path,
               executor: Executor) -> list[float]:
    """Execute the notebook once for the seeds of one group; return their test accuracies."""
    seeds = [run.seed for run, _ in runs]
    first_run, first = runs[0]
    folder = output_dir / group_folder(first_run.experiment, dict(first_run.grid))
    params = first.as_dict() | {"output_dir": str(folder.resolve()), "seeds": seeds}  # papermill's parameters
    folder.mkdir(parents=True, exist_ok=True)
    _log(f"{label}: started, seed(s) {','.join(map(str, seeds))}")
    started = time.time()
    executor(notebook, folder / f"seeds-{'-'.join(map(str, seeds))}.ipynb", params, notebook.parent)
    accuracies = [json.loads(_metrics_path(p).read_text())["test_acc"] for _, p in runs]
    _log(f"{label}: finished, test accuracy {', '.join(f'{100 * a:.2f}%' for a in accuracies)}, "
         f"{time.time() - started:.0f}s")
    return accuracies


def _label(group: tuple) -> str:
    experiment, grid = group
    return experiment + (f" [{', '.join(f'{k}={v}' for k, v in grid)}]" if grid else "")


def run_notebook(notebook: Path, output: Path, parameters: dict[str, Any], cwd: Path) -> None:
    """The runner's executor: papermill, with a kernel of its own per group."""
    execute_notebook(notebook, output, parameters, cwd=cwd)


def run_in_process(notebook: Path, output: Path, parameters: dict[str, Any], cwd: Path) -> None:
    """An executor without a kernel: what the experiment notebook does for each seed of the group
    (:func:`~pystatsml_tl.runs.experiments.run_experiment`, outputs into each seed's folder), in this
    process; it writes no output notebook. For a debugger, and for tests of what a run writes."""
    params = {name: value for name, value in parameters.items() if name != "seeds"}
    for seed_params in seed_runs(params, parameters.get("seeds")):
        run_experiment(seed_params, log_interval=None)


class Interrupted(Exception):
    """A run stopped by Ctrl-C; ``complete`` of ``total`` runs have their metrics."""

    def __init__(self, complete: int, total: int):
        super().__init__(f"interrupted: {complete} of {total} runs complete; run the same command again to resume")
        self.complete, self.total = complete, total


def _record_outcomes(runs: list[tuple[Run, dict[str, Any]]], label: str, error: str | None) -> None:
    """Each seed's outcome, for reports rebuilt later: a failure record, or none once complete."""
    for run, params in runs:
        failure = Path(params["output_dir"]) / FAILURE_FILE
        if is_complete_metrics(_metrics_path(params)):
            failure.unlink(missing_ok=True)
        elif error is not None:
            write_json_atomic(failure, {"experiment": run.experiment, "seed": run.seed, "parameters": params.as_dict(),
                                        "error": error})


def write_run_file(plan: RunPlan, command: str) -> None:
    """Record in the output folder what the run asked for (read back by rebuilt reports)."""
    experiments = list(dict.fromkeys(run.experiment for run, _ in plan.runs))
    seeds = sorted({run.seed for run, _ in plan.runs})
    write_json_atomic(plan.output_dir / RUN_FILE, {"command": command, "profile": plan.profile,
                                                   "experiments": experiments, "seeds": seeds,
                                                   "compare_to": plan.compare_to})


def execute_plan(plan: RunPlan, jobs: int = 1, notebook: str | Path = EXPERIMENT_NOTEBOOK,
                 command: str = "", executor: Executor = run_notebook) -> dict[str, str]:
    """Run every run of ``plan`` not already complete (``jobs`` groups at a time, each through
    ``executor``), then rebuild the report from every complete run in the output directory.
    Returns the first error line of each failed group, by its label. On Ctrl-C: stops the running
    kernels, rebuilds the report and raises :class:`Interrupted`."""
    plan.output_dir.mkdir(parents=True, exist_ok=True)
    write_run_file(plan, command)
    todo = []
    for run, params in plan.runs:
        if is_complete_metrics(_metrics_path(params)):
            _log(f"{_label(run.group)} seed {run.seed}: already complete, skipped")
        else:
            todo.append((run, params))
    failures: dict[str, str] = {}
    watched = {f"{_label(run.group)} seed {run.seed}": _metrics_path(params) for run, params in todo}
    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        with RunProgress(watched, _log):
            futures = {_label(group): (runs, pool.submit(_run_group, _label(group), runs, plan.output_dir,
                                                         Path(notebook), executor))
                       for group, runs in plan.groups(todo).items()}
            for label, (runs, future) in futures.items():
                try:
                    future.result()
                except Exception as error:  # noqa: BLE001 - one failure must not stop or lose the others
                    failures[label] = first_error_line(error)
                    _log(f"{label}: FAILED: {failures[label]}")
                _record_outcomes(runs, label, failures.get(label))
    except KeyboardInterrupt:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # one Ctrl-C is enough: finish cleaning up
        try:
            pool.shutdown(wait=False, cancel_futures=True)
            stop_running_kernels()
            pool.shutdown(wait=True)
            write_report(plan.output_dir, command=command)
        finally:
            signal.signal(signal.SIGINT, previous)
        complete = sum(is_complete_metrics(_metrics_path(params)) for _, params in plan.runs)
        raise Interrupted(complete, len(plan.runs)) from None
    pool.shutdown()
    write_report(plan.output_dir, command=command)
    return failures


def run(profile: str, experiments: list[str], overrides: dict[str, Any], output_dir: str | Path, jobs: int = 1,
        notebook: str | Path = EXPERIMENT_NOTEBOOK, command: str = "", seeds: list[int] | None = None,
        grid: dict[str, list[Any]] | None = None, shard: tuple[int, int] = (1, 1), compare_to: str | None = None,
        executor: Executor = run_notebook) -> int:
    """Plan, prepare and execute a run (or one shard of it); return the exit status: 0 when every
    run succeeded, 1 when one failed, 130 when Ctrl-C stopped it (one line says how far it got).
    The body of ``pystatsml-tl run``: its progress lines are shown on stderr
    (:func:`~pystatsml_tl.logs.show_messages`)."""
    show_messages()
    plan = plan_run(profile, experiments, overrides, output_dir, seeds, grid, shard, compare_to)
    try:
        prepare_resources(plan)
    except ResourceUnavailableError as error:
        _log(str(error))
        if profile != "smoke":
            _log("Without network, try: pystatsml-tl run --profile smoke")
        return 1
    shard_text = f", shard {shard[0]}/{shard[1]}" if shard != (1, 1) else ""
    _log(f"{len(plan.runs)} run(s) in {len(plan.groups())} group(s), profile {profile}{shard_text}, "
         f"report in {plan.output_dir}")
    try:
        failures = execute_plan(plan, jobs, notebook, command, executor)
    except Interrupted as stop:
        _log(str(stop))
        return INTERRUPTED
    _log(f"report: {plan.output_dir / 'summary.md'} and summary.html")
    return 1 if failures else 0
