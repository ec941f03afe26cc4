"""The report of a folder of runs: tables, paired comparisons in numbers and in words, a figure.

The report is rebuilt from the ``metrics.json`` files present (and the failures recorded beside
them), so any process can write it at any time: shards of one grid never coordinate, and
``pystatsml-tl report DIR`` gives the same tables as the run that wrote them. Files:

- ``runs.csv``: one line per run (experiment, grid values, seed, test accuracy and its Wilson interval);
- ``summary.csv``: one row per experiment and grid point, over its seeds (mean, sd, 95 % interval);
- ``comparisons.csv``: each pair of rows that differ in one thing, compared seed by seed;
- ``summary.md`` (all of it in words) and ``summary.png``.
"""
from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..storage import atomic_path, file_lock, save_figure_atomic, write_text_atomic
from .experiments import PUBLISHED_BEST_ACC, PUBLISHED_SECONDS, is_complete_metrics
from .parameters import EXPERIMENTS
from .statistics import holm_adjust, mcnemar_exact, paired_t, summarize_accuracies

FAILURE_FILE = "failure.json"
"""Written into a run's folder when its notebook failed, so that a rebuilt report still shows it."""
NOT_COMPARED = ("experiment", "seed", "output_dir", "progress", "num_workers", "feature_cache")
"""Parameters that never make two runs different settings (they name, place or display a run)."""
ALPHA = 0.05


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def collect_runs(output_dir: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The complete runs under ``output_dir`` (their metrics, with ``path``: the run's folder,
    relative) and the recorded failures of runs that have no complete metrics."""
    root = Path(output_dir)
    runs, failures = [], []
    for path in sorted(root.rglob("metrics.json")):
        if is_complete_metrics(path) and (metrics := _read_json(path)) is not None:
            runs.append(metrics | {"path": str(path.parent.relative_to(root))})
    for path in sorted(root.rglob(FAILURE_FILE)):
        if not is_complete_metrics(path.parent / "metrics.json") and (failure := _read_json(path)) is not None:
            failures.append(failure | {"path": str(path.parent.relative_to(root))})
    return runs, failures


def grid_columns(records: list[dict[str, Any]]) -> list[str]:
    """The parameters whose values differ between the runs: the report's grid columns."""
    params = [r["parameters"] for r in records]
    names = [n for n in params[0] if n not in NOT_COMPARED] if params else []
    return [n for n in names if len({repr(p.get(n)) for p in params}) > 1]


def _sort_value(value: Any) -> tuple:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0, str(value))


def _group_key(record: dict[str, Any], grid: list[str]) -> tuple:
    return (record["experiment"], *(record["parameters"].get(name) for name in grid))


def _group_order(key: tuple) -> tuple:
    order = list(EXPERIMENTS).index(key[0]) if key[0] in EXPERIMENTS else len(EXPERIMENTS)
    return (order, key[0], *(_sort_value(v) for v in key[1:]))


def group_label(key: tuple, grid: list[str]) -> str:
    """How a row of the summary is named in comparisons: ``experiment [name=value, ...]``."""
    if not grid:
        return key[0]
    return f"{key[0]} [{', '.join(f'{n}={v}' for n, v in zip(grid, key[1:]))}]"


def runs_table(runs: list[dict[str, Any]], failures: list[dict[str, Any]] | None = None) -> pd.DataFrame:
    """One line per run: experiment, grid values, seed, status, test accuracy (%) and its 95 %
    Wilson interval, best epoch, seconds, folder; failed runs carry their error instead."""
    failures = failures or []
    grid = grid_columns(runs + failures)
    rows = []
    for m in runs:
        low, high = m["test_acc_ci"]
        rows.append({"experiment": m["experiment"], **{n: m["parameters"].get(n) for n in grid},
                     "seed": m["parameters"]["seed"], "status": "ok", "test_acc": round(100 * m["test_acc"], 2),
                     "test_acc_ci_low": round(100 * low, 2), "test_acc_ci_high": round(100 * high, 2),
                     "best_epoch": m["best_epoch"], "seconds": m["seconds"], "path": m["path"]})
    for f in failures:
        rows.append({"experiment": f["experiment"], **{n: f["parameters"].get(n) for n in grid},
                     "seed": f["seed"], "status": "failed", "path": f["path"], "error": f["error"]})
    columns = ["experiment", *grid, "seed", "status", "test_acc", "test_acc_ci_low", "test_acc_ci_high",
               "best_epoch", "seconds", "path"] + (["error"] if failures else [])
    table = pd.DataFrame(rows, columns=columns)
    order = sorted(range(len(rows)), key=lambda i: (_group_order(tuple(rows[i][c] for c in ["experiment", *grid])),
                                                    rows[i]["seed"]))
    return table.iloc[order].reset_index(drop=True)


def _groups(runs: list[dict[str, Any]], grid: list[str]) -> dict[tuple, list[dict[str, Any]]]:
    grouped: dict[tuple, list] = {}
    for m in runs:
        grouped.setdefault(_group_key(m, grid), []).append(m)
    return {key: sorted(grouped[key], key=lambda m: m["parameters"]["seed"])
            for key in sorted(grouped, key=_group_order)}


def summary_table(runs: list[dict[str, Any]], failures: list[dict[str, Any]] | None = None,
                  published: bool = False) -> pd.DataFrame:
    """One row per experiment and grid point: what it trains, the number of seeds, the mean test
    accuracy (%), its sd and 95 % interval (Student's t over seeds; Wilson for a single run), mean
    best epoch and seconds, and (``published=True``) the tutorial's numbers."""
    failures = failures or []
    grid = grid_columns(runs + failures)
    groups = _groups(runs, grid)
    failed = _groups(failures, grid) if failures else {}
    rows = []
    for key in sorted(set(groups) | set(failed), key=_group_order):
        members = groups.get(key, [])
        row = {"experiment": key[0], **dict(zip(grid, key[1:]))}
        if members:
            s = summarize_accuracies([m["test_acc"] for m in members], [len(m["test_targets"]) for m in members])
            row |= {**members[0]["settings"], "n_seeds": s.n, "test_acc_mean": round(s.mean, 2),
                    "test_acc_std": round(s.std, 2), "test_acc_ci_low": round(s.ci_low, 2),
                    "test_acc_ci_high": round(s.ci_high, 2), "ci": s.method,
                    "best_epoch": round(float(np.mean([m["best_epoch"] for m in members])), 2),
                    "seconds": round(float(np.mean([m["seconds"] for m in members])), 2),
                    "device": members[0]["device"]}
        else:
            row |= {"n_seeds": 0}
        row["n_failed"] = len(failed.get(key, []))
        rows.append(row)
    columns = ["experiment", *grid, "strategy", "optimizer", "weights", "n_seeds", "test_acc_mean", "test_acc_std",
               "test_acc_ci_low", "test_acc_ci_high", "ci", "best_epoch", "seconds", "device", "n_failed"]
    table = pd.DataFrame(rows, columns=columns)
    if published:
        table["tutorial_best_acc"] = table["experiment"].map(PUBLISHED_BEST_ACC)
        table["tutorial_seconds"] = table["experiment"].map(PUBLISHED_SECONDS)
    return table


def _compare(a: list[dict[str, Any]], b: list[dict[str, Any]], confidence: float = 1 - ALPHA):
    """Paired comparison of two groups on their shared seeds (its interval at ``confidence``), or
    None when none is shared."""
    by_seed_a = {m["parameters"]["seed"]: m for m in a}
    by_seed_b = {m["parameters"]["seed"]: m for m in b}
    seeds = sorted(set(by_seed_a) & set(by_seed_b))
    if len(seeds) >= 2:
        return paired_t([by_seed_a[s]["test_acc"] for s in seeds], [by_seed_b[s]["test_acc"] for s in seeds],
                        confidence)
    if len(seeds) == 1:
        ma, mb = by_seed_a[seeds[0]], by_seed_b[seeds[0]]
        if ma["test_targets"] == mb["test_targets"]:
            return mcnemar_exact(ma["test_predictions"], mb["test_predictions"], ma["test_targets"], confidence)
    return None


def comparison_table(runs: list[dict[str, Any]]) -> pd.DataFrame:
    """Each pair of summary rows that differ in one thing (the experiment, or one grid parameter),
    compared on their shared seeds: ``diff_mean`` = a - b in points with its 95 % interval
    (``diff_ci_low``, ``diff_ci_high``) and its simultaneous interval over the ``family`` of all
    the report's comparisons (``adj_ci_low``, ``adj_ci_high``: Bonferroni, each at 1 - 0.05 /
    family), ``p_value`` (paired t over seeds; McNemar's exact test on the shared test images for
    one seed), ``p_adjusted`` (Holm over the same family) and ``prob_improvement`` (share of seeds
    where a beats b)."""
    grid = grid_columns(runs)
    groups = _groups(runs, grid)
    names = ["experiment", *grid]
    pairs = []
    for key_a, key_b in itertools.combinations(groups, 2):
        differs = [name for name, va, vb in zip(names, key_a, key_b) if va != vb]
        if len(differs) == 1 and (result := _compare(groups[key_a], groups[key_b])) is not None:
            pairs.append((key_a, key_b, differs[0], result))
    family = len(pairs)
    rows = []
    for key_a, key_b, differs, result in pairs:
        simultaneous = _compare(groups[key_a], groups[key_b], 1 - ALPHA / family)
        rows.append({"a": group_label(key_a, grid), "b": group_label(key_b, grid), "differs_in": differs,
                     "n": result.n, "diff_mean": round(result.diff_mean, 2),
                     "diff_ci_low": round(result.diff_ci_low, 2), "diff_ci_high": round(result.diff_ci_high, 2),
                     "adj_ci_low": round(simultaneous.diff_ci_low, 2),
                     "adj_ci_high": round(simultaneous.diff_ci_high, 2), "family": family,
                     "p_value": result.p_value, "test": result.test,
                     "prob_improvement": round(result.prob_improvement, 3)})
    table = pd.DataFrame(rows, columns=["a", "b", "differs_in", "n", "diff_mean", "diff_ci_low", "diff_ci_high",
                                        "adj_ci_low", "adj_ci_high", "family", "p_value", "p_adjusted", "test",
                                        "prob_improvement"])
    table["p_adjusted"] = holm_adjust(table["p_value"].tolist()) if rows else []
    return table


def _p_text(p: float) -> str:
    return "p undefined (the same difference on every seed)" if math.isnan(p) else f"p = {p:.2g}"


def _points(value: float) -> str:
    """A bound in points with one decimal, or two where one would show a non-zero bound as 0.0."""
    return f"{value:.2f}" if value != 0 and round(value, 1) == 0 else f"{value:.1f}"


def comparison_sentence(row: dict[str, Any]) -> str:
    """One comparison in words: who beats whom by how much, or that the two cannot be told apart at
    this number of seeds, with the simultaneous interval of the difference over the report's
    family of comparisons (the one the verdict answers to) and Holm's adjusted p-value.

    The verdict follows Holm's p-value; the interval is Bonferroni's over the same family, so it
    excludes zero whenever Bonferroni would call the difference real. Where the two disagree (Holm
    is less strict than Bonferroni; an exact test and its interval can differ at the margin; every
    seed giving the same difference leaves the test undefined) the sentence says so.
    """
    n, p, family = int(row["n"]), row["p_adjusted"], int(row["family"])
    low, high = row["adj_ci_low"], row["adj_ci_high"]
    evidence = f"{n} paired seeds" if row["test"] == "paired-t" else "one seed, McNemar's exact test on the test images"
    adjusted = f"{_p_text(p)} after Holm's adjustment over {family} comparison{'s' * (family > 1)}"
    interval = "95 % simultaneous CI {low} to {high}"
    excludes_zero = low > 0 or high < 0
    if not math.isnan(p) and p < ALPHA and row["diff_mean"] != 0:
        a_wins = row["diff_mean"] > 0
        winner, loser = (row["a"], row["b"]) if a_wins else (row["b"], row["a"])
        sign = 1 if a_wins else -1  # the difference and its interval, seen from the winner
        diff, (w_low, w_high) = sign * row["diff_mean"], sorted((sign * low, sign * high))
        why = "" if excludes_zero else ("; the interval reaches zero because Holm's step-down test is less strict "
                                        "than the simultaneous interval")
        return (f"{winner} beats {loser} by {diff:.1f} points ({interval.format(low=_points(w_low), high=_points(w_high))}, "
                f"{adjusted}, {evidence}{why})")
    if not excludes_zero:
        why = ""
    elif math.isnan(p):
        why = "; every seed gave the same difference, which leaves the test undefined"
    else:
        why = "; the exact test and its interval disagree at this margin"
    return (f"{row['a']} and {row['b']} cannot be told apart at n = {n} (difference {row['diff_mean']:+.1f} points, "
            f"{interval.format(low=_points(low), high=_points(high))}, {adjusted}, {evidence}{why})")


def seeds_figure(runs: list[dict[str, Any]], published: bool = False, title: str = ""):
    """Test accuracy of every seed with the mean and its interval, and the mean selection accuracy
    per epoch with its band (see :func:`plots.seed_comparison`)."""
    from . import plots

    grid = grid_columns(runs)
    groups = _groups(runs, grid)
    labels = [group_label(key, grid) for key in groups]
    accuracies = {label: [m["test_acc"] for m in members] for label, members in zip(labels, groups.values())}
    curves = {}
    for label, members in zip(labels, groups.values()):
        selected = "val_acc" if "val_acc" in members[0]["history"] else "test_acc"
        curves[label] = [m["history"][selected] for m in members]
    summary = summary_table(runs)
    intervals = dict(zip(labels, zip(summary["test_acc_mean"], summary["test_acc_ci_low"],
                                     summary["test_acc_ci_high"])))
    reference = {label: PUBLISHED_BEST_ACC.get(key[0]) for label, key in zip(labels, groups)} if published else None
    return plots.seed_comparison(accuracies, intervals, curves, reference, title)


def _markdown_table(table: pd.DataFrame) -> str:
    def cell(value: Any) -> str:
        return "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def _shared_parameters(records: list[dict[str, Any]]) -> dict[str, Any]:
    params = [r["parameters"] for r in records]
    return {k: v for k, v in params[0].items() if k not in NOT_COMPARED and all(p.get(k) == v for p in params)}


def write_report(output_dir: str | Path, command: str = "") -> dict[str, Path]:
    """Rebuild the report of every complete run under ``output_dir``: ``runs.csv``,
    ``summary.csv``, ``comparisons.csv``, ``summary.md`` and ``summary.png``, each written
    atomically, the whole under a lock so that concurrent writers (shards) never mix two reports."""
    output_dir = Path(output_dir)
    paths = {name: output_dir / name for name in ("runs.csv", "summary.csv", "comparisons.csv", "summary.md",
                                                    "summary.png")}
    with file_lock(output_dir / ".report.lock"):
        runs, failures = collect_runs(output_dir)
        records = runs + failures
        shared = _shared_parameters(records) if records else {}
        dataset = shared.get("dataset", "several datasets")
        published = dataset == "cifar10"
        tables = {"runs.csv": runs_table(runs, failures), "summary.csv": summary_table(runs, failures, published),
                  "comparisons.csv": comparison_table(runs)}
        for name, table in tables.items():
            with atomic_path(paths[name]) as tmp:
                table.to_csv(tmp, index=False)
        seeds = sorted({r["parameters"]["seed"] for r in records})
        lines = [f"# Transfer-learning report: `{dataset}`", "",
                 f"{len(runs)} complete run(s), {len(failures)} failed; seeds {', '.join(map(str, seeds)) or '-'}. "
                 "Runs of different settings with the same seed share their data split, subsets and test images, "
                 "so settings are compared seed by seed.", "", "## Test accuracy (%) over seeds", ""]
        lines += [_markdown_table(tables["summary.csv"]), "",
                  "`test_acc_ci_low`/`high`: 95 % interval of the mean, Student's t over the seeds computed on the "
                  "logit scale, so that it stays inside [0, 100] (`ci = logit-t`); "
                  "for a single run the Wilson interval of its test accuracy (`ci = wilson`), which covers only "
                  "the finite test set, not seed-to-seed variation. One line per run: `runs.csv`.", ""]
        if published:
            lines += ["`tutorial_best_acc` is the tutorial's published best accuracy (%, one run, 5 epochs, all of "
                      "CIFAR-10, picked on the test split); `tutorial_seconds` its published CPU time.", ""]
        else:
            lines += [f"The tutorial's published numbers (CIFAR-10) are not shown: these runs used `{dataset}`.", ""]
        comparisons = tables["comparisons.csv"]
        if len(comparisons):
            lines += ["## Which differences are real", "",
                      f"Each pair of rows that differ in one thing, on their shared seeds; a difference is called "
                      f"real when its Holm-adjusted p-value over the {len(comparisons)} comparison(s) is below "
                      f"{ALPHA}; each interval is the simultaneous 95 % interval over the same comparisons "
                      "(Bonferroni), so that it agrees with the verdict, and a sentence says why where they "
                      "differ (numbers: `comparisons.csv`, with the unadjusted intervals too).", ""]
            lines += [f"- {comparison_sentence(row)}." for row in comparisons.to_dict("records")] + [""]
        if runs:
            from .plots import plt

            fig = seeds_figure(runs, published, title=f"{dataset}: test accuracy by seed")
            save_figure_atomic(fig, paths["summary.png"], dpi=100)
            plt.close(fig)
            lines += ["![test accuracy of each seed, mean and 95 % interval; selection accuracy per epoch]"
                      "(summary.png)", ""]
        if failures:
            lines += ["## Failed runs", ""] + [f"- `{f['path']}`: {f['error']}" for f in failures] + [""]
        versions = ", ".join(f"{k} {v}" for k, v in runs[0]["versions"].items()) if runs else "-"
        devices = ", ".join(sorted({m["device"] for m in runs})) or "-"
        made_by = command or f"pystatsml-tl report {output_dir}"
        lines += ["## How this report was made", "", f"- command: `{made_by}`",
                  "- parameters shared by all runs: " + ", ".join(f"`{k}={v!r}`" for k, v in shared.items()),
                  f"- device: {devices}", f"- versions: {versions}",
                  "- per run: `<experiment>[/<grid values>]/seed-<seed>/metrics.json` and "
                  "figures; per group, the executed notebook `seeds-*.ipynb`", ""]
        write_text_atomic(paths["summary.md"], "\n".join(lines))
    return paths
