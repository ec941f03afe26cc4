"""Intervals, paired tests and Holm's adjustment against scipy and hand computation on fixed numbers."""
import math

import numpy as np
import pytest
from scipy import stats

from pystatsml_tl.runs.statistics import (
    holm_adjust,
    mcnemar_exact,
    paired_t,
    probability_of_improvement,
    summarize_accuracies,
    t_interval,
    wilson_interval,
)


def test_wilson_interval_matches_the_closed_form():
    k, n, z = 270, 300, stats.norm.ppf(0.975)
    p = k / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    assert wilson_interval(k, n) == pytest.approx((centre - half, centre + half), abs=1e-9)
    low, high = wilson_interval(300, 300)
    assert high == pytest.approx(1.0) and 0.98 < low < 1
    with pytest.raises(ValueError, match="correct=5, total=3"):
        wilson_interval(5, 3)


def test_t_interval_and_summary_over_seeds():
    values = [0.91, 0.88, 0.93]
    mean, sd = np.mean(values), np.std(values, ddof=1)
    half = stats.t.ppf(0.975, df=2) * sd / math.sqrt(3)
    assert t_interval(values) == pytest.approx((mean - half, mean + half))
    s = summarize_accuracies(values, [300] * 3)
    assert (s.n, s.method) == (3, "logit-t") and 0 <= s.ci_low < 100 * mean < s.ci_high <= 100
    # the summary's interval: Student's t on the logit scale of (k + 0.5) / (n + 1), mapped back
    logits = [math.log((300 * v + 0.5) / (300 * (1 - v) + 0.5)) for v in values]
    centre, spread = np.mean(logits), stats.t.ppf(0.975, df=2) * np.std(logits, ddof=1) / math.sqrt(3)
    expected = [100 / (1 + math.exp(-(centre + sign * spread))) for sign in (-1, 1)]
    assert (s.mean, s.std, s.ci_low, s.ci_high) == pytest.approx((100 * mean, 100 * sd, *expected))
    one = summarize_accuracies([0.9], [300])
    assert one.method == "wilson" and (one.ci_low, one.ci_high) == pytest.approx(
        tuple(100 * v for v in wilson_interval(270, 300)))


def test_paired_t_matches_scipy_on_fixed_numbers():
    a, b = [0.90, 0.86, 0.93, 0.88, 0.91], [0.85, 0.84, 0.88, 0.86, 0.85]
    result = paired_t(a, b)
    diff = 100 * (np.array(a) - np.array(b))
    half = stats.t.ppf(0.975, df=4) * diff.std(ddof=1) / math.sqrt(5)
    assert result.diff_mean == pytest.approx(diff.mean())
    assert (result.diff_ci_low, result.diff_ci_high) == pytest.approx((diff.mean() - half, diff.mean() + half))
    assert result.p_value == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert result.n == 5 and result.test == "paired-t" and result.prob_improvement == 1.0
    assert math.isnan(paired_t([0.9, 0.8], [0.8, 0.7]).p_value)  # the same difference on every seed


def test_probability_of_improvement_counts_ties_as_half():
    assert probability_of_improvement([0.9, 0.8, 0.7, 0.6], [0.8, 0.8, 0.9, 0.5]) == pytest.approx(2.5 / 4)


def test_mcnemar_on_constructed_predictions():
    targets = np.zeros(100, dtype=int)
    a, b = targets.copy(), targets.copy()
    a[:5] = 1             # a wrong on 5 images where b is right
    b[5:20] = 1           # b wrong on 15 images where a is right
    a[90:], b[90:] = 1, 1  # both wrong on 10: not discordant
    result = mcnemar_exact(a, b, targets)
    assert result.p_value == pytest.approx(stats.binomtest(15, 20, 0.5).pvalue)
    assert result.p_value == pytest.approx(2 * sum(math.comb(20, k) for k in range(6)) / 2**20)
    assert result.diff_mean == pytest.approx(10.0) and result.test == "mcnemar" and result.prob_improvement == 1
    assert result.diff_ci_low < 10 < result.diff_ci_high <= 20
    same = mcnemar_exact(a, a, targets)
    assert same.p_value == 1.0 and same.diff_mean == 0


def test_holm_on_known_p_values():
    # sorted 0.01, 0.02, 0.03, 0.04 -> x4, x3, x2, x1 = 0.04, 0.06, 0.06 (monotone), 0.06 (monotone)
    assert holm_adjust([0.04, 0.01, 0.03, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    assert holm_adjust([0.5, 0.6]) == pytest.approx([1.0, 1.0])
    adjusted = holm_adjust([0.01, float("nan"), 0.02])
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.02)
