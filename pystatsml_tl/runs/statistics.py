"""How sure a comparison is: intervals, paired tests and multiple-comparison adjustment.

scipy supplies the distributions and tests; this module only chooses among them:

- one run: the Wilson interval of its test accuracy, from the number of test images;
- several seeds: mean, standard deviation and a Student's t interval over the seeds, computed on
  the logit scale so that an accuracy's interval stays inside [0, 100];
- two settings run with the same seeds (paired runs): the t interval of the per-seed difference
  and the paired t-test; with one seed, McNemar's exact test on the test images both classified;
- many comparisons in one report: Holm's step-down adjustment of their p-values.

Accuracies are fractions unless a name says points (percentage points).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


def wilson_interval(correct: int, total: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a proportion ``correct / total`` (fractions)."""
    if total <= 0 or not 0 <= correct <= total:
        raise ValueError(f"correct={correct}, total={total}: expected 0 <= correct <= total and total > 0")
    ci = stats.binomtest(int(correct), int(total)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Student's t interval of the mean of ``values`` (at least two of them)."""
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        raise ValueError(f"values: expected at least two, got {values.size}")
    mean, sem = values.mean(), values.std(ddof=1) / math.sqrt(values.size)
    if sem < 1e-12:  # equal values, up to float noise
        return float(mean), float(mean)
    low, high = stats.t.interval(confidence, df=values.size - 1, loc=mean, scale=sem)
    return float(low), float(high)


def bounded_interval(accuracies: Sequence[float], test_sizes: Sequence[int],
                     confidence: float = CONFIDENCE) -> tuple[float, float]:
    """95 % interval of a mean accuracy (fractions) that stays inside [0, 1] by construction.

    One run: the Wilson interval from its number of test images. Several seeds: Student's t
    interval of the seeds' accuracies on the logit scale, mapped back; each accuracy is first
    moved off 0 and 1 by half an image, ``(k + 0.5) / (n + 1)`` for ``k`` right of ``n``, so that
    the logit is finite. Seeds that all give the same accuracy have no spread to measure: their
    interval is then the Wilson interval of the images right over all of them.
    """
    acc, sizes = np.asarray(accuracies, dtype=float), np.asarray(test_sizes, dtype=float)
    if acc.size == 0 or acc.shape != sizes.shape:
        raise ValueError("accuracies, test_sizes: expected two sequences of one, equal, non-zero length")
    if acc.size == 1 or np.allclose(acc, acc[0], rtol=0, atol=1e-12):
        return wilson_interval(round(float((acc * sizes).sum())), int(sizes.sum()), confidence)
    shrunk = (acc * sizes + 0.5) / (sizes + 1)
    low, high = t_interval(np.log(shrunk / (1 - shrunk)), confidence)
    return float(1 / (1 + math.exp(-low))), float(1 / (1 + math.exp(-high)))


@dataclass(frozen=True)
class Summary:
    """Test accuracy over the seeds of one setting (percent)."""

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    method: str  # "logit-t" over seeds, or "wilson" for a single run (see bounded_interval)


def summarize_accuracies(accuracies: Sequence[float], test_sizes: Sequence[int]) -> Summary:
    """Mean, sd and 95 % interval (percent) of test accuracies (fractions) over seeds, inside
    [0, 100] by construction (:func:`bounded_interval`): Student's t on the logit scale when there
    are two or more, else the Wilson interval of the single run from its test size."""
    acc = np.asarray(accuracies, dtype=float)
    if acc.size == 0:
        raise ValueError("accuracies: expected at least one")
    if acc.size == 1:
        low, high = wilson_interval(round(acc[0] * test_sizes[0]), test_sizes[0])
        return Summary(1, 100 * acc[0], math.nan, 100 * low, 100 * high, "wilson")
    low, high = bounded_interval(acc, test_sizes)
    return Summary(acc.size, 100 * acc.mean(), 100 * acc.std(ddof=1), 100 * low, 100 * high, "logit-t")


@dataclass(frozen=True)
class Comparison:
    """The difference a - b between two settings (points) and how sure it is."""

    n: int
    diff_mean: float
    diff_ci_low: float
    diff_ci_high: float
    p_value: float
    test: str  # "paired-t" or "mcnemar"
    prob_improvement: float


def probability_of_improvement(a: Sequence[float], b: Sequence[float]) -> float:
    """Share of paired seeds where ``a`` beats ``b`` (ties count one half)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(((a > b).sum() + 0.5 * (a == b).sum()) / a.size)


def paired_t(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> Comparison:
    """Compare per-seed accuracies (fractions) of two settings run with the same seeds: the t
    interval of the mean difference (points, at ``confidence``) and ``scipy.stats.ttest_rel``.
    When every seed gives the same difference the test is undefined and its p-value is NaN."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.size < 2:
        raise ValueError(f"a, b: expected two paired sequences of at least two values, got {a.size} and {b.size}")
    diff = 100 * (a - b)
    low, high = t_interval(diff, confidence)
    constant = np.allclose(diff, diff[0], rtol=0, atol=1e-9)  # float noise of equal accuracy differences
    p = math.nan if constant else float(stats.ttest_rel(a, b).pvalue)
    return Comparison(a.size, float(diff.mean()), low, high, p, "paired-t", probability_of_improvement(a, b))


def mcnemar_exact(predictions_a: Sequence[int], predictions_b: Sequence[int], targets: Sequence[int],
                  confidence: float = CONFIDENCE) -> Comparison:
    """McNemar's exact test of two classifiers on the same test images (Dietterich 1998): a
    two-sided binomial test on the images that exactly one of them gets right. The interval (at
    ``confidence``) is the Wilson interval of the accuracy difference's share of discordant
    images, in points."""
    pa, pb, y = (np.asarray(v) for v in (predictions_a, predictions_b, targets))
    if not pa.shape == pb.shape == y.shape or y.size == 0:
        raise ValueError("predictions_a, predictions_b, targets: expected three sequences of one, equal, length")
    right_a, right_b = pa == y, pb == y
    only_a, only_b = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    discordant = only_a + only_b
    diff = 100 * (only_a - only_b) / y.size
    if discordant == 0:
        return Comparison(1, 0.0, 0.0, 0.0, 1.0, "mcnemar", 0.5)
    p = float(stats.binomtest(only_a, discordant, 0.5).pvalue)
    low, high = wilson_interval(only_a, discordant, confidence)  # share of discordant images that favour a
    scale = 100 * discordant / y.size
    return Comparison(1, diff, scale * (2 * low - 1), scale * (2 * high - 1), p, "mcnemar",
                      1.0 if only_a > only_b else 0.0 if only_a < only_b else 0.5)


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of ``p_values`` (NaN stays NaN and does not count as a test)."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, math.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


def seeds_for_power(difference: float, sd: float, alpha: float = 1 - CONFIDENCE, power: float = 0.8,
                    most: int = 1000) -> int | None:
    """The fewest paired seeds at which a two-sided paired t-test at level ``alpha`` detects a mean
    difference ``difference`` with probability ``power``, when the per-seed differences have
    standard deviation ``sd`` (both in the same unit). Computed from the noncentral t distribution;
    None when even ``most`` seeds would not do, or when ``difference`` is 0."""
    if not sd > 0 or not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"sd={sd}, alpha={alpha}, power={power}: expected sd > 0 and alpha, power in (0, 1)")
    if difference == 0:
        return None
    n = np.arange(2, most + 1)
    critical = stats.t.ppf(1 - alpha / 2, n - 1)
    shift = abs(difference) / sd * np.sqrt(n)
    achieved = stats.nct.sf(critical, n - 1, shift) + stats.nct.cdf(-critical, n - 1, shift)
    enough = np.flatnonzero(achieved >= power)
    return int(n[enough[0]]) if enough.size else None
