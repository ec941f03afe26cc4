"""The report of a folder of runs: tables, paired comparisons in numbers and in words, figures,
provenance, as Markdown and as one self-contained HTML page.

The report is rebuilt from the ``metrics.json`` files present (and the failures recorded beside
them), so any process can write it at any time: shards of one grid never coordinate, and
``pystatsml-tl report DIR`` gives the same tables as the run that wrote them. A run is identified
by its experiment, the parameters that differ between runs and its seed: the same run found
twice is counted once (or refused, when the two copies disagree). Files:

- ``runs.csv``: one line per run (experiment, grid values, seed, test accuracy and its Wilson interval);
- ``summary.csv``: one row per experiment and grid point, over its seeds (mean, sd, 95 % interval);
- ``comparisons.csv``: the paired comparisons (the lesson's questions by default, every pair of rows
  that differ in one thing, or each setting against one reference), with unadjusted and
  simultaneous intervals;
- ``summary.md`` and ``summary.html`` (the same page; the HTML embeds its figures and links each
  executed notebook rendered to HTML), ``summary.png`` (every seed, mean and interval),
  ``epochs.png`` (accuracy per epoch, small multiples) and ``grid-<parameter>.png`` for each
  numeric grid parameter (test accuracy against it).
"""
from __future__ import annotations

import datetime
import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..storage import atomic_path, file_lock, save_figure_atomic, write_text_atomic
from .experiments import PUBLISHED_BEST_ACC, PUBLISHED_SECONDS, is_complete_metrics
from .pages import Page, to_html, to_markdown
from .parameters import EXPERIMENTS
from .statistics import holm_adjust, mcnemar_exact, paired_t, seeds_for_power, summarize_accuracies

FAILURE_FILE = "failure.json"
"""Written into a run's folder when its notebook failed, so that a rebuilt report still shows it."""
RUN_FILE = "run.json"
"""Written by ``pystatsml-tl run`` at the top of its output folder: the command and what it asked for."""
NOT_COMPARED = ("experiment", "seed", "output_dir", "progress", "num_workers", "feature_cache")
"""Parameters that never make two runs different settings (they name, place or display a run)."""
ALPHA = 0.05
POWER = 0.8


class DuplicateRunError(ValueError):
    """Two folders hold the same run (experiment, settings and seed) with different results."""


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
    return (*_group_key(record, grid), record["parameters"]["seed"])


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
    accuracy (%), its sd and 95 % interval (Student's t over seeds on the logit scale; Wilson for a
    single run), the kept epochs (mean, least, most) and mean seconds, and (``published=True``) the
    tutorial's numbers."""
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
    columns = ["experiment", *grid, "strategy", "optimizer", "weights", "n_seeds", "test_acc_mean", "test_acc_std",
               "test_acc_ci_low", "test_acc_ci_high", "ci", "best_epoch", "best_epoch_min", "best_epoch_max",
               "seconds", "device", "n_failed"]
    table = pd.DataFrame(rows, columns=columns)
    table["n_seeds"] = table["n_seeds"].astype(int)
    if published:
        table["tutorial_best_acc"] = table["experiment"].map(PUBLISHED_BEST_ACC)
        table["tutorial_seconds"] = table["experiment"].map(PUBLISHED_SECONDS)
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


def _shared_seeds(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> tuple[list[dict], list[dict]]:
    by_seed_a = {m["parameters"]["seed"]: m for m in a}
    by_seed_b = {m["parameters"]["seed"]: m for m in b}
    seeds = sorted(set(by_seed_a) & set(by_seed_b))
    return [by_seed_a[s] for s in seeds], [by_seed_b[s] for s in seeds]


def _compare(a: list[dict[str, Any]], b: list[dict[str, Any]], confidence: float = 1 - ALPHA):
    """Paired comparison of two groups on their shared seeds (its interval at ``confidence``), or
    None when none is shared."""
    a, b = _shared_seeds(a, b)
    if len(a) >= 2:
        return paired_t([m["test_acc"] for m in a], [m["test_acc"] for m in b], confidence)
    if len(a) == 1 and a[0]["test_targets"] == b[0]["test_targets"]:
        return mcnemar_exact(a[0]["test_predictions"], b[0]["test_predictions"], a[0]["test_targets"], confidence)
    return None


LESSON_QUESTIONS = (("finetune-sgd", "scratch"), ("extractor-adam", "extractor-random"),
                    ("finetune-sgd", "extractor-sgd"), ("finetune-adam", "extractor-adam"),
                    ("finetune-adam", "finetune-sgd"), ("extractor-adam", "extractor-sgd"))
"""The questions a report answers by default, each ``(a, b)`` so that ``a - b`` is the gain asked
about: pretrained minus random weights (fine-tuned, then frozen), fine-tuned minus frozen (SGD, then
Adam), Adam minus SGD (fine-tuned, then frozen). Fewer questions, narrower simultaneous intervals."""
ALL_PAIRS = "all"
"""``compare_to`` value that compares every pair of summary rows that differ in one thing."""


def _pairs(groups: dict[tuple, list], names: list[str], compare_to: str | None,
           questions: tuple[tuple[str, str], ...] = LESSON_QUESTIONS) -> list[tuple[tuple, tuple, str]]:
    """The pairs of groups compared, each ``(a, b, what differs)``: with ``compare_to``, each group
    against the reference experiment's group at the same grid point; with :data:`ALL_PAIRS`, each
    pair that differs in one thing; by default the ``questions`` among the experiments
    present, at each grid point, and each pair of one experiment's groups that differ in one grid
    value (every pair of experiments when none of the questions applies)."""
    if compare_to not in (None, ALL_PAIRS):
        return [(key, (compare_to, *key[1:]), "experiment") for key in groups
                if key[0] != compare_to and (compare_to, *key[1:]) in groups]
    pairs = []
    for key_a, key_b in itertools.combinations(groups, 2):
        differs = [name for name, va, vb in zip(names, key_a, key_b) if va != vb]
        if len(differs) == 1:
            pairs.append((key_a, key_b, differs[0]))
    if compare_to == ALL_PAIRS:
        return pairs
    asked = []
    for a, b, differs in pairs:
        if differs != "experiment":
            asked.append((len(questions), (a, b, differs)))
        elif (a[0], b[0]) in questions or (b[0], a[0]) in questions:
            a, b = (a, b) if (a[0], b[0]) in questions else (b, a)
            asked.append((questions.index((a[0], b[0])), (a, b, differs)))
    if not any(differs == "experiment" for _, (_, _, differs) in asked):
        return pairs
    return [pair for _, pair in sorted(asked, key=lambda item: item[0])]


def check_compare_to(compare_to: str | None, experiments: list[str]) -> None:
    """Refuse a reference that is neither :data:`ALL_PAIRS` nor among ``experiments`` (``ValueError``,
    before any work)."""
    if compare_to not in (None, ALL_PAIRS) and compare_to not in experiments:
        raise ValueError(f"compare_to={compare_to!r}: expected {ALL_PAIRS} or one of the experiments compared "
                         f"({', '.join(experiments)})")


def comparison_table(runs: list[dict[str, Any]], compare_to: str | None = None,
                     questions: tuple[tuple[str, str], ...] = LESSON_QUESTIONS) -> pd.DataFrame:
    """The paired comparisons of the report, on shared seeds: by default the lesson's questions
    (``questions``, default :data:`LESSON_QUESTIONS`: pretrained minus random first) and each grid
    parameter's effect;
    with ``compare_to="all"`` each pair of summary rows that differ in one thing; with an
    experiment's name each experiment against that one (k - 1 comparisons for k experiments).

    Columns: ``diff_mean`` = a - b in points with its 95 % interval (``diff_ci_low``,
    ``diff_ci_high``) and its simultaneous interval over the ``family`` of the report's
    comparisons (``adj_ci_low``, ``adj_ci_high``: Bonferroni, each at 1 - 0.05 / family);
    ``diff_sd`` (sd of the per-seed differences), ``p_value`` (paired t over seeds; McNemar's exact
    test on the shared test images for one seed), ``p_adjusted`` (Holm over the same family),
    ``prob_improvement`` (share of seeds where a beats b) and ``seeds_for_power`` (paired seeds at
    which a difference of this size would be detected with 80 % power at the family's level, from
    the observed spread; empty for one seed or no spread)."""
    grid = grid_columns(runs)
    groups = _groups(runs, grid)
    check_compare_to(compare_to, list(dict.fromkeys(key[0] for key in groups)))
    pairs = []
    for key_a, key_b, differs in _pairs(groups, ["experiment", *grid], compare_to, questions):
        if (result := _compare(groups[key_a], groups[key_b])) is not None:
            pairs.append((key_a, key_b, differs, result))
    family = len(pairs)
    rows = []
    for key_a, key_b, differs, result in pairs:
        simultaneous = _compare(groups[key_a], groups[key_b], 1 - ALPHA / family)
        shared_a, shared_b = _shared_seeds(groups[key_a], groups[key_b])
        diffs = 100 * (np.array([m["test_acc"] for m in shared_a]) - np.array([m["test_acc"] for m in shared_b]))
        sd = float(diffs.std(ddof=1)) if len(diffs) >= 2 else math.nan
        needed = seeds_for_power(result.diff_mean, sd, ALPHA / family, POWER) if sd > 1e-9 else None
        rows.append({"a": group_label(key_a, grid), "b": group_label(key_b, grid), "differs_in": differs,
                     "n": result.n, "diff_mean": round(result.diff_mean, 2),
                     "diff_ci_low": round(result.diff_ci_low, 2), "diff_ci_high": round(result.diff_ci_high, 2),
                     "adj_ci_low": round(simultaneous.diff_ci_low, 2),
                     "adj_ci_high": round(simultaneous.diff_ci_high, 2), "family": family,
                     "diff_sd": round(sd, 2), "p_value": result.p_value, "test": result.test,
                     "prob_improvement": round(result.prob_improvement, 3), "seeds_for_power": needed})
    table = pd.DataFrame(rows, columns=["a", "b", "differs_in", "n", "diff_mean", "diff_ci_low", "diff_ci_high",
                                        "adj_ci_low", "adj_ci_high", "family", "diff_sd", "p_value", "p_adjusted",
                                        "test", "prob_improvement", "seeds_for_power"])
    table["p_adjusted"] = holm_adjust(table["p_value"].tolist()) if rows else []
    table["seeds_for_power"] = table["seeds_for_power"].astype("Int64")
    return table


def _p_text(p: float) -> str:
    return "p undefined (the same difference on every seed)" if math.isnan(p) else f"p = {p:.2g}"


def _points(value: float) -> str:
    """A bound in points with one decimal, or two where one would show a non-zero bound as 0.0."""
    return f"{value:.2f}" if value != 0 and round(value, 1) == 0 else f"{value:.1f}"


def _what_would_resolve(row: dict[str, Any]) -> str:
    """For an unresolved comparison: the seeds that would resolve a difference of its size."""
    size = abs(row["diff_mean"])
    if row["test"] != "paired-t":
        return ("; more seeds would measure the seed-to-seed spread that one run cannot show")
    needed, sd = row.get("seeds_for_power"), row.get("diff_sd")
    if needed is None or pd.isna(needed):
        if size > 0 and sd is not None and not pd.isna(sd) and sd > 0:
            return (f"; even 1000 seeds would not tell a {size:.1f}-point difference apart at this spread "
                    "(80 % power at this family's level)")
        return ""
    if int(needed) <= row["n"]:
        return ""
    return (f"; about {int(needed)} seeds would tell a {size:.1f}-point difference apart (80 % power at this "
            "family's level, from the observed spread)")


def comparison_sentence(row: dict[str, Any]) -> str:
    """One comparison in words: who beats whom by how much, or that the two cannot be told apart at
    this number of seeds (and how many seeds would tell them apart), with the simultaneous interval
    of the difference over the report's family of comparisons (the one the verdict answers to) and
    Holm's adjusted p-value.

    The verdict follows Holm's p-value; the interval is Bonferroni's over the same family, so it
    excludes zero whenever Bonferroni would call the difference real. Where the two disagree (Holm
    is less strict than Bonferroni; an exact test and its interval can differ at the margin; every
    seed giving the same difference leaves the test undefined) the sentence says why.
    """
    n, p, family = int(row["n"]), row["p_adjusted"], int(row["family"])
    low, high = row["adj_ci_low"], row["adj_ci_high"]
    evidence = f"{n} paired seeds" if row["test"] == "paired-t" else "one seed, McNemar's exact test on the test images"
    adjusted = f"{_p_text(p)} after Holm's adjustment over {family} comparison{'s' * (family > 1)}"
    interval = "95 % simultaneous CI {low} to {high}"
    if low < -100 or high > 100:
        interval += ", reaching past the ±100 points a difference can span"
    excludes_zero = low > 0 or high < 0
    if not math.isnan(p) and p < ALPHA and row["diff_mean"] != 0:
        a_wins = row["diff_mean"] > 0
        winner, loser = (row["a"], row["b"]) if a_wins else (row["b"], row["a"])
        sign = 1 if a_wins else -1  # the difference and its interval, seen from the winner
        diff, (w_low, w_high) = sign * row["diff_mean"], sorted((sign * low, sign * high))
        why = "" if excludes_zero else ("; the interval reaches zero because Holm's step-down test is less strict "
                                        "than the simultaneous interval")
        shown = interval.format(low=_points(w_low), high=_points(w_high))
        return f"{winner} beats {loser} by {diff:.1f} points ({shown}, {adjusted}, {evidence}{why})"
    if not excludes_zero:
        why = ""
    elif math.isnan(p):
        why = "; every seed gave the same difference, which leaves the test undefined"
    else:
        why = "; the exact test and its interval disagree at this margin"
    sentence = (f"{row['a']} and {row['b']} cannot be told apart at n = {n} (difference {row['diff_mean']:+.1f} "
                f"points, {interval.format(low=_points(low), high=_points(high))}, {adjusted}, {evidence}{why})")
    resolve = _what_would_resolve(row)
    return sentence + (f". {resolve[2].upper()}{resolve[3:]}" if resolve else "")


def _figure_labels(runs: list[dict[str, Any]]) -> tuple[list[str], dict[tuple, list[dict[str, Any]]]]:
    grid = grid_columns(runs)
    groups = _groups(runs, grid)
    return [group_label(key, grid) for key in groups], groups


def seeds_figure(runs: list[dict[str, Any]], published: bool = False, title: str = ""):
    """Test accuracy of every seed with the mean and its interval (see :func:`plots.seed_accuracies`)."""
    from . import plots

    labels, groups = _figure_labels(runs)
    accuracies = {label: [m["test_acc"] for m in members] for label, members in zip(labels, groups.values())}
    summary = summary_table(runs)
    intervals = dict(zip(labels, zip(summary["test_acc_mean"], summary["test_acc_ci_low"],
                                     summary["test_acc_ci_high"])))
    reference = {label: PUBLISHED_BEST_ACC.get(key[0]) for label, key in zip(labels, groups)} if published else None
    return plots.seed_accuracies(accuracies, intervals, reference, title)


def epochs_figure(runs: list[dict[str, Any]], title: str = ""):
    """The selection accuracy per epoch of every group, small multiples (see
    :func:`plots.epoch_curves_grid`): validation, or test when runs had no validation split."""
    from . import plots

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
    from . import plots

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


def _shared_parameters(records: list[dict[str, Any]]) -> dict[str, Any]:
    params = [r["parameters"] for r in records]
    return {k: v for k, v in params[0].items() if k not in NOT_COMPARED and all(p.get(k) == v for p in params)}


def _values(runs: list[dict[str, Any]], describe) -> str:
    """The distinct values of ``describe(run)`` over the runs, each with its count when they differ."""
    counts: dict[str, int] = {}
    for m in runs:
        counts[describe(m)] = counts.get(describe(m), 0) + 1
    if len(counts) == 1:
        return next(iter(counts))
    return "; ".join(f"{value} ({count} runs)" for value, count in counts.items())


def provenance_items(runs: list[dict[str, Any]], commands: list[str]) -> list[str]:
    """Where the report's numbers come from, as bullet items: the commands, dates, machines (the
    CPU's bf16 units among them), device, arithmetic (fp32 or bf16), package, constraints,
    versions, images and seeds."""
    def prov(m: dict[str, Any]) -> dict[str, Any]:
        return m.get("provenance") or {}

    def machine(m: dict[str, Any]) -> str:
        p = prov(m)
        if not p:
            return "not recorded"
        units = f", bf16 units: {p['cpu_bf16_units']}" if "cpu_bf16_units" in p else ""
        return f"{p['host']}: {p['cpu']}, {p['cpu_threads']} threads{units}, GPU {p['gpu']}"

    def versions(m: dict[str, Any]) -> str:
        v = m.get("versions", {})
        return ", ".join(f"{k} {v[k]}" for k in ("torch", "torchvision", "numpy", "python") if k in v)

    def images(m: dict[str, Any]) -> str:
        d = m.get("data")
        if not d:
            return f"{m['parameters']['dataset']} (fingerprint not recorded)"
        sizes = ", ".join(f"{split} {n}" for split, n in d["sizes"].items())
        return f"`{Path(d['name']).name if '/' in d['name'] else d['name']}` ({sizes}), fingerprint {d['fingerprint']}"

    dates = sorted(prov(m)["date"] for m in runs if prov(m).get("date"))
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    items = [f"command: `{command}`" for command in commands]
    items += [f"report written {now}; runs from {dates[0]} to {dates[-1]}" if dates else f"report written {now}",
              f"machine: {_values(runs, machine)}",
              f"device: {_values(runs, lambda m: m['device'])}",
              f"arithmetic: {_values(runs, lambda m: m.get('precision', 'not recorded'))}",
              "package: " + _values(runs, lambda m: f"pystatsml-tl {m.get('versions', {}).get('pystatsml_tl', '?')}, "
                                    f"commit {prov(m).get('git_commit', 'not recorded')}"),
              f"constraints file: {_values(runs, lambda m: prov(m).get('constraints', 'not recorded'))}",
              f"versions: {_values(runs, versions)}",
              f"images: {_values(runs, images)}",
              "seeds: " + ", ".join(map(str, sorted({m['parameters']['seed'] for m in runs})))]
    return items


def _write_csv(table: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


def _save(fig, path: Path) -> str:
    from .plots import plt

    save_figure_atomic(fig, path, dpi=100)
    plt.close(fig)
    return path.name


def _notebook_links(output_dir: Path) -> list[str]:
    """Each executed notebook of the folder rendered to HTML beside it, as a link item."""
    from .notebooks import notebook_html

    items = []
    for notebook in sorted(output_dir.rglob("seeds-*.ipynb")):
        page = notebook_html(notebook).relative_to(output_dir)
        items.append(f"[{page}]({page}) (notebook `{notebook.relative_to(output_dir)}`)")
    return items


def write_report(output_dir: str | Path, command: str = "", compare_to: str | None = None) -> dict[str, Path]:
    """Rebuild the report of every complete run under ``output_dir``: ``runs.csv``, ``summary.csv``,
    ``comparisons.csv``, ``summary.md``, ``summary.html`` and the figures, each written atomically,
    the whole under a lock so that concurrent writers (shards) never mix two reports.

    ``compare_to`` (default: what the run that wrote the folder asked for) compares each experiment
    with that one only. Raises ``ValueError`` for a folder that holds other reports, for an unknown
    ``compare_to`` and (:class:`DuplicateRunError`) for two different results of the same run.
    """
    output_dir = Path(output_dir)
    check_report_folder(output_dir)
    run_file = read_run_file(output_dir)
    compare_to = compare_to or run_file.get("compare_to")
    commands = list(dict.fromkeys(c for c in (run_file.get("command"), command) if c)) or [
        f"pystatsml-tl report {output_dir}"]
    paths = {name: output_dir / name for name in ("runs.csv", "summary.csv", "comparisons.csv", "summary.md",
                                                    "summary.html", "summary.png", "epochs.png")}
    with file_lock(output_dir / ".report.lock"):
        found, failures = collect_runs(output_dir)
        runs, repeated = unique_runs(found)
        records = runs + failures
        shared = _shared_parameters(records) if records else {}
        dataset = shared.get("dataset", "several datasets")
        dataset_name = Path(dataset).name if "/" in str(dataset) else dataset
        published = dataset == "cifar10"
        grid = grid_columns(records)
        summary = summary_table(runs, failures, published)
        comparisons = comparison_table(runs, compare_to)
        for name, table in (("runs.csv", runs_table(runs, failures)), ("summary.csv", summary),
                            ("comparisons.csv", comparisons)):
            _write_csv(table, paths[name])
        seeds = sorted({r["parameters"]["seed"] for r in records})
        page = Page(f"Transfer-learning report: `{dataset_name}`")
        page.add_paragraph(
            f"{len(runs)} complete run(s), {len(failures)} failed; seeds {', '.join(map(str, seeds)) or '-'}. "
            "A run is its experiment, the settings that differ between runs and its seed; runs of different "
            "settings with the same seed share their data split, subsets and test images, so settings are "
            "compared seed by seed.")
        page.add_bullets(repeated)
        page.add_heading("Test accuracy (%) over seeds").add_table(compact_summary(summary, grid))
        page.add_paragraph(
            "95 % interval of the mean: Student's t over the seeds computed on the logit scale, so that it stays "
            "inside [0, 100]; for a single run the Wilson interval of its test accuracy, which covers only the finite "
            "test set, not seed-to-seed variation. Every column, and one line per run: `summary.csv`, `runs.csv`.")
        if published:
            page.add_paragraph("`tutorial (%)`: the tutorial's published best accuracy (one run, 5 epochs, all of "
                               "CIFAR-10, picked on the test split).")
        else:
            page.add_paragraph(f"The tutorial's published numbers (CIFAR-10) are not shown: these runs used "
                               f"`{dataset_name}`.")
        if len(comparisons):
            family = len(comparisons)
            question = {None: "the lesson's questions (pretrained minus random weights, fine-tuned minus frozen, "
                              "Adam minus SGD; `--compare-to all` asks every pair that differs in one thing)",
                        ALL_PAIRS: "each pair of rows that differ in one thing"}.get(
                compare_to, f"each experiment against `{compare_to}` at the same settings")
            page.add_heading("Which differences are real")
            page.add_paragraph(
                f"Compared: {question}, on their shared seeds ({family} comparison{'s' * (family > 1)}). A difference "
                f"is called real when its Holm-adjusted p-value over the {family} comparison(s) is below {ALPHA}; "
                "each interval is the simultaneous 95 % interval over the same comparisons (Bonferroni, each at "
                f"1 - {ALPHA} / {family}), so that it agrees with the verdict, and a sentence says why where they "
                "differ. Where a difference is not resolved, the seeds that would resolve it are computed from the "
                "observed seed-to-seed spread (paired t-test, 80 % power, at the same level). Numbers, with the "
                "unadjusted intervals too: `comparisons.csv`.")
            page.add_bullets([f"{comparison_sentence(row)}." for row in comparisons.to_dict("records")])
        if runs:
            page.add_heading("Figures")
            title = f"{dataset_name}: test accuracy of each seed, mean and 95 % interval"
            page.add_figure(_save(seeds_figure(runs, published, title), paths["summary.png"]),
                            "test accuracy of each seed, mean and 95 % interval")
            page.add_figure(_save(epochs_figure(runs), paths["epochs.png"]),
                            "selection accuracy per epoch, one panel per setting")
            for name in numeric_grid_columns(runs):
                path = output_dir / f"grid-{name}.png"
                paths[path.name] = path
                page.add_figure(_save(grid_figure(runs, name), path), f"test accuracy against {name}")
        if failures:
            page.add_heading("Failed runs").add_bullets([f"`{f['path']}`: {f['error']}" for f in failures])
        page.add_heading("How this report was made")
        page.add_bullets(provenance_items(runs, commands) if runs else [f"command: `{c}`" for c in commands])
        page.add_bullets(["parameters shared by all runs: " + ", ".join(f"`{k}={v!r}`" for k, v in shared.items()),
                          "per run: `<experiment>[/<grid values>]/seed-<seed>/metrics.json` and figures; per group, "
                          "the executed notebook `seeds-*.ipynb`, rendered to HTML beside it"])
        links = _notebook_links(output_dir)
        if links:
            page.add_heading("Executed notebooks").add_bullets(links)
        write_text_atomic(paths["summary.md"], to_markdown(page))
        write_text_atomic(paths["summary.html"], to_html(page, output_dir))
    return paths
