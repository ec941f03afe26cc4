"""The report's figures: every seed with its mean and interval, the selection accuracy per epoch,
and accuracy against each numeric grid parameter; saved atomically."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ...storage import save_figure_atomic
from ..registry import EXPERIMENTS
from .collect import grid_columns, group_label, groups_of
from .tables import summary_table


def _figure_labels(runs: list[dict[str, Any]]) -> tuple[list[str], dict[tuple, list[dict[str, Any]]]]:
    grid = grid_columns(runs)
    groups = groups_of(runs, grid)
    return [group_label(key, grid) for key in groups], groups


def seeds_figure(runs: list[dict[str, Any]], published: bool = False, title: str = ""):
    """Test accuracy of every seed with the mean and its interval (see :func:`plots.seed_accuracies`)."""
    from .. import plots

    labels, groups = _figure_labels(runs)
    accuracies = {label: [m["test_acc"] for m in members] for label, members in zip(labels, groups.values())}
    summary = summary_table(runs)
    intervals = dict(zip(labels, zip(summary["test_acc_mean"], summary["test_acc_ci_low"],
                                     summary["test_acc_ci_high"])))
    reference = ({label: EXPERIMENTS[key[0]].published_acc if key[0] in EXPERIMENTS else None
                  for label, key in zip(labels, groups)} if published else None)
    return plots.seed_accuracies(accuracies, intervals, reference, title)


def epochs_figure(runs: list[dict[str, Any]], title: str = ""):
    """The selection accuracy per epoch of every group, small multiples (see
    :func:`plots.epoch_curves_grid`): validation, or test when runs had no validation split."""
    from .. import plots

    labels, groups = _figure_labels(runs)
    phase = "val" if all("val_acc" in m["history"] for m in runs) else "test"
    curves, sizes, kept = {}, {}, {}
    for label, members in zip(labels, groups.values()):
        length = min(len(m["history"][f"{phase}_acc"]) for m in members)
        curves[label] = [m["history"][f"{phase}_acc"][:length] for m in members]
        sizes[label] = [m.get("sizes", {}).get(phase, len(m["test_targets"])) for m in members]
        kept[label] = [min(m["best_epoch"], length - 1) for m in members]
    classes = runs[0].get("classes")
    chance = 1 / len(classes) if classes else None
    return plots.epoch_curves_grid(curves, sizes, kept, chance, "validation" if phase == "val" else "test", title)


def numeric_grid_columns(runs: list[dict[str, Any]]) -> list[str]:
    """The grid parameters whose values are all numbers: each gets a figure of accuracy against it."""
    def numeric(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    return [name for name in grid_columns(runs) if all(numeric(m["parameters"].get(name)) for m in runs)]


def grid_figure(runs: list[dict[str, Any]], name: str, title: str = ""):
    """Test accuracy against the numeric grid parameter ``name``: a line per experiment (and per
    value of any other grid parameter) with its 95 % interval (see :func:`plots.accuracy_against`)."""
    from .. import plots

    grid = grid_columns(runs)
    summary = summary_table(runs)
    others = [g for g in grid if g != name]
    setting = summary["experiment"].astype(str)
    for other in others:
        setting = setting + f" {other}=" + summary[other].astype(str)
    curve = pd.DataFrame({"setting": setting, "experiment": summary["experiment"], name: summary[name],
                          "mean": summary["test_acc_mean"], "ci_low": summary["test_acc_ci_low"],
                          "ci_high": summary["test_acc_ci_high"], "n_seeds": summary["n_seeds"]})
    classes = runs[0].get("classes")
    return plots.accuracy_against(curve.dropna(subset=["mean"]), name, name, 1 / len(classes) if classes else None,
                                  title)


def save_figure(fig, path: Path) -> str:
    """Write ``fig`` to ``path`` atomically, close it, and return the file's name."""
    from ..plots import plt

    save_figure_atomic(fig, path, dpi=100)
    plt.close(fig)
    return path.name
