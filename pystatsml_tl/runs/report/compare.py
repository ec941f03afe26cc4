"""The report's paired comparisons: which pairs of rows are compared (the lesson's questions by
default), each on its shared seeds, with unadjusted and simultaneous intervals and Holm's p-values."""
from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd

from ..statistics import holm_adjust, mcnemar_exact, paired_t, seeds_for_power
from .collect import grid_columns, group_label, groups_of

ALPHA = 0.05
POWER = 0.8


def shared_seeds(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> tuple[list[dict], list[dict]]:
    """The runs of two groups on the seeds they share, paired in seed order."""
    by_seed_a = {m["parameters"]["seed"]: m for m in a}
    by_seed_b = {m["parameters"]["seed"]: m for m in b}
    seeds = sorted(set(by_seed_a) & set(by_seed_b))
    return [by_seed_a[s] for s in seeds], [by_seed_b[s] for s in seeds]


def compare_groups(a: list[dict[str, Any]], b: list[dict[str, Any]], confidence: float = 1 - ALPHA):
    """Paired comparison of two groups on their shared seeds (its interval at ``confidence``), or
    None when none is shared."""
    a, b = shared_seeds(a, b)
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
    groups = groups_of(runs, grid)
    check_compare_to(compare_to, list(dict.fromkeys(key[0] for key in groups)))
    pairs = []
    for key_a, key_b, differs in _pairs(groups, ["experiment", *grid], compare_to, questions):
        if (result := compare_groups(groups[key_a], groups[key_b])) is not None:
            pairs.append((key_a, key_b, differs, result))
    family = len(pairs)
    rows = []
    for key_a, key_b, differs, result in pairs:
        simultaneous = compare_groups(groups[key_a], groups[key_b], 1 - ALPHA / family)
        shared_a, shared_b = shared_seeds(groups[key_a], groups[key_b])
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
