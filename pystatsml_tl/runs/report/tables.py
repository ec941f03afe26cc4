"""The report's tables: one line per run, one row per experiment and grid point over its seeds,
and the compact summary a reader sees."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..registry import EXPERIMENTS
from ..statistics import summarize_accuracies
from .collect import grid_columns, group_order, groups_of


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
    order = sorted(range(len(rows)), key=lambda i: (group_order(tuple(rows[i][c] for c in ["experiment", *grid])),
                                                    rows[i]["seed"]))
    return table.iloc[order].reset_index(drop=True)


def summary_table(runs: list[dict[str, Any]], failures: list[dict[str, Any]] | None = None,
                  published: bool = False) -> pd.DataFrame:
    """One row per experiment and grid point: what it trains, the number of seeds, the mean test
    accuracy (%), its sd and 95 % interval (Student's t over seeds on the logit scale; Wilson for a
    single run), the kept epochs (mean, least, most) and mean seconds, and (``published=True``) the
    tutorial's numbers."""
    failures = failures or []
    grid = grid_columns(runs + failures)
    groups = groups_of(runs, grid)
    failed = groups_of(failures, grid) if failures else {}
    rows = []
    for key in sorted(set(groups) | set(failed), key=group_order):
        members = groups.get(key, [])
        row = {"experiment": key[0], **dict(zip(grid, key[1:]))}
        if members:
            s = summarize_accuracies([m["test_acc"] for m in members], [len(m["test_targets"]) for m in members])
            kept = [m["best_epoch"] for m in members]
            row |= {**members[0]["settings"], "n_seeds": s.n, "test_acc_mean": round(s.mean, 2),
                    "test_acc_std": round(s.std, 2), "test_acc_ci_low": round(s.ci_low, 2),
                    "test_acc_ci_high": round(s.ci_high, 2), "ci": s.method,
                    "best_epoch": round(float(np.mean(kept)), 2), "best_epoch_min": min(kept),
                    "best_epoch_max": max(kept), "seconds": round(float(np.mean([m["seconds"] for m in members])), 2),
                    "device": members[0]["device"]}
        else:
            row |= {"n_seeds": 0}
        row["n_failed"] = len(failed.get(key, []))
        rows.append(row)
    columns = ["experiment", *grid, "kind", "optimizer", "trains", "weights", "n_seeds", "test_acc_mean",
               "test_acc_std",
               "test_acc_ci_low", "test_acc_ci_high", "ci", "best_epoch", "best_epoch_min", "best_epoch_max",
               "seconds", "device", "n_failed"]
    table = pd.DataFrame(rows, columns=columns)
    table["n_seeds"] = table["n_seeds"].astype(int)
    if published:
        published_of = {name: (entry.published_acc, entry.published_seconds) for name, entry in EXPERIMENTS.items()}
        table["tutorial_best_acc"] = table["experiment"].map(lambda name: published_of.get(name, (None, None))[0])
        table["tutorial_seconds"] = table["experiment"].map(lambda name: published_of.get(name, (None, None))[1])
    return table


def compact_summary(summary: pd.DataFrame, grid: list[str]) -> pd.DataFrame:
    """The summary as a reader wants it: experiment, grid values, seeds, mean test accuracy, its
    interval, sd (when some row has several seeds), kept epoch, seconds, failures (when any) and the
    tutorial's number (when shown); integers as integers, no empty column."""
    def number(value: Any, digits: int = 1) -> str:
        return "" if pd.isna(value) else f"{value:.{digits}f}"

    def epochs(row) -> str:
        if pd.isna(row.best_epoch_min):
            return ""
        low, high = int(row.best_epoch_min), int(row.best_epoch_max)
        return str(low) if low == high else f"{low}-{high}"

    table = pd.DataFrame({"experiment": summary["experiment"]})
    for name in grid:
        table[name] = summary[name]
    table["seeds"] = summary["n_seeds"].astype(int)
    table["test acc (%)"] = summary["test_acc_mean"].map(number)
    table["95 % interval"] = [f"{number(lo)} to {number(hi)}" if not pd.isna(lo) else ""
                              for lo, hi in zip(summary["test_acc_ci_low"], summary["test_acc_ci_high"])]
    if (summary["n_seeds"] > 1).any():
        table["sd"] = summary["test_acc_std"].map(number)
    table["kept epoch"] = [epochs(row) for row in summary.itertuples()]
    table["seconds"] = summary["seconds"].map(lambda v: "" if pd.isna(v) else str(round(v)))
    if (summary["n_failed"] > 0).any():
        table["failed"] = summary["n_failed"].astype(int)
    if "tutorial_best_acc" in summary:
        table["tutorial (%)"] = summary["tutorial_best_acc"].map(number)
    return table
