"""Run experiments headless with papermill, one notebook each, and write the report.

A failing experiment does not stop the others; a rerun into the same output directory skips the
experiments whose ``metrics.json`` is complete.
"""
from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .data import load_cifar10_arrays, resolve_device
from .errors import ResourceUnavailableError
from .experiments import is_complete_metrics, versions
from .notebooks import EXPERIMENT_NOTEBOOK, execute_notebook
from .parameters import EXPERIMENTS, experiment_settings, profile_parameters


@dataclass
class RunPlan:
    """What a run will do: the parameters of each experiment and where the report goes."""

    profile: str
    output_dir: Path
    experiments: dict[str, dict[str, Any]]  # name -> validated parameters

    @property
    def shared_parameters(self) -> dict[str, Any]:
        """The parameters that every experiment of the run has in common."""
        runs = list(self.experiments.values())
        return {k: v for k, v in runs[0].items() if k not in ("experiment", "output_dir")
                and all(r[k] == v for r in runs)}


def plan_run(profile: str, experiments: list[str], overrides: dict[str, Any], output_dir: str | Path) -> RunPlan:
    """Validate everything a run needs and return its plan; raise ``ValueError`` before any work."""
    unknown = [name for name in experiments if name not in EXPERIMENTS]
    if unknown or not experiments:
        raise ValueError(f"experiments={','.join(unknown) or '(none)'}: expected names among {', '.join(EXPERIMENTS)}")
    for name in ("experiment", "output_dir"):
        if name in overrides:
            raise ValueError(f"--set {name}=...: set by the runner; use --experiments / --output-dir instead")
    output_dir = Path(output_dir)
    runs = {name: profile_parameters(profile, **overrides, experiment=name, progress=False,
                                     output_dir=str((output_dir / name).resolve()))
            for name in dict.fromkeys(experiments)}
    return RunPlan(profile, output_dir, runs)


def prepare_resources(plan: RunPlan) -> None:
    """Fetch what the experiments share before they start: the dataset, the ImageNet weights or the
    offline pretrained backbone. Fails at once with the package's offline message when it cannot."""
    from .models import fetch_imagenet_weights
    from .pretraining import pretrained_backbone_path

    for params in plan.experiments.values():
        weights = experiment_settings(params)["weights"]
        if params["dataset"] == "cifar10":
            load_cifar10_arrays(params["data_dir"])
        if weights == "imagenet":
            fetch_imagenet_weights(params["arch"])
        elif weights == "synthetic":
            pretrained_backbone_path(params["arch"], progress=False)


def _log(message: str) -> None:
    print(f"[pystatsml-tl] {message}", file=sys.stderr, flush=True)


def _error_line(error: BaseException) -> str:
    if hasattr(error, "ename"):  # papermill's PapermillExecutionError
        text = f"{error.ename}: {error.evalue}"
    else:
        text = f"{type(error).__name__}: {error}"
    return (text.strip().splitlines() or [type(error).__name__])[0]


def _run_one(name: str, params: dict[str, Any], output_dir: Path, notebook: Path) -> dict[str, Any]:
    _log(f"{name}: started")
    started = time.time()
    execute_notebook(notebook, output_dir / f"{name}.ipynb", params, cwd=notebook.parent)
    metrics = json.loads((Path(params["output_dir"]) / "metrics.json").read_text())
    _log(f"{name}: finished, test accuracy {100 * metrics['test_acc']:.2f}%, {time.time() - started:.0f}s")
    return metrics


def execute_plan(plan: RunPlan, jobs: int = 1, notebook: str | Path = EXPERIMENT_NOTEBOOK,
                 command: str = "") -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Run every experiment of ``plan`` not already complete (``jobs`` at a time), then write the
    report. Returns (metrics by experiment, first error line by failed experiment)."""
    from .report import write_report

    plan.output_dir.mkdir(parents=True, exist_ok=True)
    metrics, failures, todo = {}, {}, {}
    for name, params in plan.experiments.items():
        path = Path(params["output_dir"]) / "metrics.json"
        if is_complete_metrics(path):
            _log(f"{name}: already complete in {path.parent}, skipped")
            metrics[name] = json.loads(path.read_text())
        else:
            todo[name] = params
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {name: pool.submit(_run_one, name, params, plan.output_dir, Path(notebook))
                   for name, params in todo.items()}
        for name, future in futures.items():
            try:
                metrics[name] = future.result()
            except Exception as error:  # one failure must not stop or lose the others
                failures[name] = _error_line(error)
                _log(f"{name}: FAILED: {failures[name]}")
    ordered = {name: metrics[name] for name in plan.experiments if name in metrics}
    device = sorted({m["device"] for m in ordered.values()}) or [resolve_device("auto").type]
    write_report(plan.output_dir, ordered, failures, {
        "command": command, "profile": plan.profile, "parameters": plan.shared_parameters,
        "device": ", ".join(device), "versions": versions()})
    return ordered, failures


def run(profile: str, experiments: list[str], overrides: dict[str, Any], output_dir: str | Path, jobs: int = 1,
        notebook: str | Path = EXPERIMENT_NOTEBOOK, command: str = "") -> int:
    """Plan, prepare and execute a run; return the exit status (0 when every experiment succeeded)."""
    plan = plan_run(profile, experiments, overrides, output_dir)
    try:
        prepare_resources(plan)
    except ResourceUnavailableError as error:
        _log(str(error))
        if profile != "smoke":
            _log("Without network, try: pystatsml-tl run --profile smoke")
        return 1
    _log(f"{len(plan.experiments)} experiment(s), profile {profile}, report in {plan.output_dir}")
    _, failures = execute_plan(plan, jobs, notebook, command)
    _log(f"report: {plan.output_dir / 'summary.md'}")
    return 1 if failures else 0
