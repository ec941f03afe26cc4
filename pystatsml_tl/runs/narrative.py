"""The lesson's sentences, written from its own results.

A sentence that states a measured number or a direction (which model is better, where a curve sits
against chance, how far the filters moved) is computed here from the run that printed it, so that
it holds for every profile, data set and machine; the notebook's prose only says what to look at.
Verdicts ("beats", "cannot be told apart") come from
:func:`~pystatsml_tl.runs.report.comparison_sentence`, the report's own words.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..training.loop import Evaluation
from .plots import confusion_counts
from .report import LESSON_QUESTIONS, comparison_sentence, comparison_table

PRETRAINING_QUESTION = (("finetune-sgd", "scratch"),)
"""The lesson's central question: fine-tuning from the pretrained backbone minus the same from random weights."""


def percent(value: float) -> str:
    """A fraction as a percentage with one decimal."""
    return f"{100 * value:.1f} %"


def cache_sentence(computed: int, total: int) -> str:
    """What the feature cache did for ``total`` images, ``computed`` of them run through the backbone."""
    if computed == total:
        return f"all {total} images ran through the frozen backbone once; their features are now in the cache"
    if computed == 0:
        return f"none of the {total} images ran through the backbone: all their features were read from the cache"
    return f"{computed} of {total} images ran through the frozen backbone; the others' features came from the cache"


def test_records(tests: Mapping[str, Evaluation], params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The lesson's test evaluations as the report's run records (one seed each, the same test images),
    so that :func:`~pystatsml_tl.runs.report.comparison_table` can compare them."""
    return [{"experiment": name, "parameters": dict(params), "test_acc": float(test.accuracy),
             "test_predictions": test.predictions.tolist(), "test_targets": test.targets.tolist()}
            for name, test in tests.items()]


def comparison_sentences(runs: Sequence[dict[str, Any]],
                         questions: tuple[tuple[str, str], ...] = LESSON_QUESTIONS) -> list[str]:
    """The report's sentence for each question (default: the lesson's) that ``runs`` can answer."""
    table = comparison_table(list(runs), questions=questions)
    return [comparison_sentence(row) for row in table.to_dict("records")]


def confusion_sentence(name: str, test: Evaluation, classes: Sequence[str], top: int = 3) -> str:
    """The pairs of classes ``name`` mixes up most on the test set, each with its count and the share
    of its true class."""
    targets, predictions = test.targets.tolist(), test.predictions.tolist()
    counts = confusion_counts(targets, predictions, len(classes))
    totals = counts.sum(axis=1)
    np.fill_diagonal(counts, 0)
    wrong = int(counts.sum())
    if wrong == 0:
        return f"{name}: no test image wrong"
    order = np.argsort(counts, axis=None)[::-1][:top]
    pairs = [divmod(int(k), len(classes)) for k in order if counts.flat[k] > 0]
    mixed = "; ".join(f"{classes[t]} read as {classes[p]}: {counts[t, p]} time{'s' if counts[t, p] != 1 else ''} "
                      f"({100 * counts[t, p] / totals[t]:.0f} % of the {classes[t]}s)" for t, p in pairs)
    return f"{name}: {wrong} of {len(targets)} test images wrong; most often {mixed}"


def probe_sentence(pretrained: float, random: float, num_classes: int) -> str:
    """The two linear probes' test accuracies, their gap and chance, in one sentence."""
    return (f"linear probe on the frozen features: {percent(pretrained)} with the pretrained weights, "
            f"{percent(random)} with random ones (one draw), {100 * (pretrained - random):+.1f} points; "
            f"chance is {percent(1 / num_classes)}")


def filters_sentence(moved: float, smoothness: Mapping[str, float]) -> str:
    """How far fine-tuning moved the first layer (``moved``, a fraction of its norm) and the filters'
    smoothness per model."""
    smooth = ", ".join(f"{label} {value:.2f}" for label, value in smoothness.items())
    return f"fine-tuning moved the first layer by {100 * moved:.1f} % of its norm; smoothness: {smooth}"


def _interval(row: pd.Series) -> str:
    return f"{row['mean']:.1f} % [{row['ci_low']:.1f}, {row['ci_high']:.1f}]"


def curve_sentences(curve: pd.DataFrame, chance: float, better: str, worse: str) -> list[str]:
    """Where the curve's settings sit, one sentence per training-set size: setting ``better``
    against ``worse`` (whether their 95 % bands are apart), and each setting against chance
    (whether its band lies above it). ``curve`` is :func:`~pystatsml_tl.runs.insight.summarize_curve`'s."""
    sentences = []
    for size, rows in curve.groupby("train_images", sort=True):
        rows = rows.set_index("setting")
        a, b = rows.loc[better], rows.loc[worse]
        if a["ci_low"] > b["ci_high"]:
            order = f"{better} lies above {worse}, the bands apart"
        elif b["ci_low"] > a["ci_high"]:
            order = f"{worse} lies above {better}, the bands apart"
        else:
            order = f"the bands of {better} and {worse} overlap"
        above = [name for name, row in rows.iterrows() if row["ci_low"] > 100 * chance]
        at_chance = [name for name in rows.index if name not in above]
        chance_text = (f"above chance ({100 * chance:.0f} %): {', '.join(above) or 'none'}"
                       + (f"; not above it: {', '.join(at_chance)}" if at_chance else ""))
        sentences.append(f"{size} images: {better} {_interval(a)}, {worse} {_interval(b)}: {order}; {chance_text}")
    return sentences
