"""Collecting a folder's runs: the complete ``metrics.json`` files (older schemas upgraded), the
failures recorded beside runs that did not finish, the files that cannot be read (named with
their reason), each run once, and how runs group into the report's rows."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..metrics import read_metrics
from ..registry import EXPERIMENTS

FAILURE_FILE = "failure.json"
"""Written into a run's folder when its notebook failed, so that a rebuilt report still shows it."""
RUN_FILE = "run.json"
"""Written by ``pystatsml-tl run`` at the top of its output folder: the command and what it asked for."""
NOT_COMPARED = ("experiment", "seed", "output_dir", "progress", "num_workers", "feature_cache")
"""Parameters that never make two runs different settings (they name, place or display a run)."""


class DuplicateRunError(ValueError):
    """Two folders hold the same run (experiment, settings and seed) with different results."""


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def collect_folder(output_dir: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, str]]]:
    """Every run under ``output_dir``, each ``metrics.json`` read once: the complete runs (their
    metrics in the current schema, with ``path``: the run's folder, relative), the recorded failures
    of runs that have no complete metrics, and the folders whose ``metrics.json`` cannot serve
    (truncated, not JSON, keys missing), each with ``path`` and ``problem`` (why)."""
    root = Path(output_dir)
    files = [read_metrics(path) for path in sorted(root.rglob("metrics.json"))]
    runs = [found.metrics | {"path": str(found.path.parent.relative_to(root))} for found in files if found.complete]
    complete = {found.path.parent for found in files if found.complete}
    failures = []
    for path in sorted(root.rglob(FAILURE_FILE)):
        if path.parent not in complete and (failure := _read_json(path)) is not None:
            failures.append(failure | {"path": str(path.parent.relative_to(root))})
    unreadable = [{"path": str(found.path.parent.relative_to(root)), "problem": f"metrics.json {found.problem}"}
                  for found in files if not found.complete]
    return runs, failures, unreadable


def collect_runs(output_dir: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The complete runs and the recorded failures under ``output_dir`` (:func:`collect_folder`)."""
    runs, failures, _ = collect_folder(output_dir)
    return runs, failures


def unreadable_runs(output_dir: str | Path) -> list[dict[str, str]]:
    """The run folders under ``output_dir`` whose ``metrics.json`` cannot serve (:func:`collect_folder`)."""
    return collect_folder(output_dir)[2]


def reports_below(folder: str | Path) -> list[Path]:
    """The report folders inside ``folder`` (not ``folder`` itself): those holding a ``run.json`` or
    a ``summary.md``."""
    folder = Path(folder)
    found = {path.parent for name in (RUN_FILE, "summary.md") for path in folder.rglob(name)}
    return sorted(path for path in found if path != folder)


def check_report_folder(folder: str | Path) -> None:
    """Refuse a folder that holds other reports (``reports/``, say): merging them would count the
    same seed once per report. Raises ``ValueError`` naming them."""
    nested = reports_below(folder)
    if nested:
        names = ", ".join(str(p.relative_to(folder)) for p in nested[:5]) + (", ..." if len(nested) > 5 else "")
        raise ValueError(f"output_dir {str(folder)!r}: holds {len(nested)} report(s) ({names}); a report is built "
                         f"from one run's folder: give one of them, e.g. {nested[-1]}")


def run_identity(record: dict[str, Any], grid: list[str]) -> tuple:
    """What makes a run itself: its experiment, its values of the ``grid`` parameters (those that
    differ between the runs) and its seed."""
    return (*group_key(record, grid), record["parameters"]["seed"])


def unique_runs(runs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """``runs`` with each run once, and a line for each copy dropped. Two copies of a run (same
    identity, :func:`run_identity`) with the same test predictions are one run found twice; with
    different ones, :class:`DuplicateRunError` names both folders."""
    grid = grid_columns(runs)
    kept: dict[tuple, dict[str, Any]] = {}
    notes = []
    for record in runs:
        identity = run_identity(record, grid)
        first = kept.setdefault(identity, record)
        if first is record:
            continue
        if (first["test_predictions"], first["test_acc"]) != (record["test_predictions"], record["test_acc"]):
            raise DuplicateRunError(
                f"runs {first['path']} and {record['path']} have the same experiment, settings and seed "
                f"({record['experiment']}, seed {record['parameters']['seed']}) but different results: a seed counts "
                "once; move one of the two folders out and rebuild the report")
        notes.append(f"`{record['path']}` repeats `{first['path']}` (same settings, seed and predictions): "
                     "counted once")
    return list(kept.values()), notes


def read_run_file(folder: str | Path) -> dict[str, Any]:
    """What ``pystatsml-tl run`` recorded in ``folder`` (command, profile, compare_to), or ``{}``."""
    return _read_json(Path(folder) / RUN_FILE) or {}


def grid_columns(records: list[dict[str, Any]]) -> list[str]:
    """The parameters whose values differ between the runs: the report's grid columns."""
    params = [r["parameters"] for r in records]
    names = [n for n in params[0] if n not in NOT_COMPARED] if params else []
    return [n for n in names if len({repr(p.get(n)) for p in params}) > 1]


def _sort_value(value: Any) -> tuple:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0, str(value))


def group_key(record: dict[str, Any], grid: list[str]) -> tuple:
    """The row of the report a run belongs to: its experiment and its values of ``grid``."""
    return (record["experiment"], *(record["parameters"].get(name) for name in grid))


def group_order(key: tuple) -> tuple:
    """Where a row sorts: experiments in registry order, then grid values (numbers by value)."""
    order = list(EXPERIMENTS).index(key[0]) if key[0] in EXPERIMENTS else len(EXPERIMENTS)
    return (order, key[0], *(_sort_value(v) for v in key[1:]))


def group_label(key: tuple, grid: list[str]) -> str:
    """How a row of the summary is named in comparisons: ``experiment [name=value, ...]``."""
    if not grid:
        return key[0]
    return f"{key[0]} [{', '.join(f'{n}={v}' for n, v in zip(grid, key[1:]))}]"


def shared_parameters(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The parameters every record shares, those that name or place a run aside."""
    params = [r["parameters"] for r in records]
    return {k: v for k, v in params[0].items() if k not in NOT_COMPARED and all(p.get(k) == v for p in params)}


def groups_of(runs: list[dict[str, Any]], grid: list[str]) -> dict[tuple, list[dict[str, Any]]]:
    """The runs grouped by experiment and grid values (the report's rows, in its order), each
    group's runs by seed."""
    grouped: dict[tuple, list] = {}
    for m in runs:
        grouped.setdefault(group_key(m, grid), []).append(m)
    return {key: sorted(grouped[key], key=lambda m: m["parameters"]["seed"])
            for key in sorted(grouped, key=group_order)}
