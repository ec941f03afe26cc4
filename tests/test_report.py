"""The report's tables and words, from constructed runs (no training)."""
import re

import numpy as np
import pytest
from scipy import stats

from pystatsml_tl.runs.report import comparison_sentence, comparison_table, runs_table, summary_table
from pystatsml_tl.runs.statistics import wilson_interval


def fake_run(experiment, seed, correct, n=100, lr=0.001):
    """A complete run whose first ``correct`` of ``n`` test predictions are right."""
    targets = [0] * n
    predictions = [0] * correct + [1] * (n - correct)
    return {"experiment": experiment, "parameters": {"experiment": experiment, "seed": seed, "lr": lr,
                                                     "dataset": "synthetic", "output_dir": f"/x/{seed}"},
            "settings": {"strategy": "finetune", "optimizer": "sgd", "weights": "none"},
            "history": {"val_acc": [0.5, correct / n]}, "best_epoch": 1, "test_acc": correct / n,
            "test_acc_ci": list(wilson_interval(correct, n)), "seconds": 1.0, "device": "cpu",
            "test_predictions": predictions, "test_targets": targets, "path": f"{experiment}/seed-{seed}"}


def test_summary_and_paired_comparison_over_seeds():
    a = [fake_run("finetune-sgd", s, c) for s, c in enumerate([90, 92, 95])]
    b = [fake_run("extractor-sgd", s, c) for s, c in enumerate([80, 85, 84])]
    summary = summary_table(a + b)
    assert summary["experiment"].tolist() == ["finetune-sgd", "extractor-sgd"]
    row = summary.iloc[0]
    logits = [np.log((c + 0.5) / (100.5 - c)) for c in (90, 92, 95)]  # (k + 0.5) / (n + 1) on the logit scale
    low, high = (100 / (1 + np.exp(-v)) for v in stats.t.interval(0.95, 2, loc=np.mean(logits),
                                                                  scale=stats.sem(logits)))
    assert (row.n_seeds, row.test_acc_mean, row.ci) == (3, pytest.approx(92.33, abs=0.01), "logit-t")
    assert (row.test_acc_ci_low, row.test_acc_ci_high) == pytest.approx((low, high), abs=0.01)
    comparisons = comparison_table(a + b)
    assert len(comparisons) == 1
    c = comparisons.iloc[0]
    assert (c.a, c.b, c.differs_in, c.n, c.test) == ("finetune-sgd", "extractor-sgd", "experiment", 3, "paired-t")
    assert c.diff_mean == pytest.approx(np.mean([10, 7, 11]), abs=0.01) and c.prob_improvement == 1.0
    assert c.p_value == pytest.approx(stats.ttest_rel([0.90, 0.92, 0.95], [0.80, 0.85, 0.84]).pvalue)
    assert c.p_adjusted == pytest.approx(c.p_value)  # one comparison: Holm changes nothing
    assert len(runs_table(a + b)) == 6


def test_one_seed_uses_mcnemar_and_grid_values_make_columns():
    runs = [fake_run("finetune-sgd", 0, 90, lr=0.001), fake_run("finetune-sgd", 0, 70, lr=0.01),
            fake_run("extractor-sgd", 0, 88, lr=0.001)]
    table = runs_table(runs)
    assert list(table.columns[:3]) == ["experiment", "lr", "seed"]
    comparisons = comparison_table(runs)
    assert sorted(comparisons.differs_in) == ["experiment", "lr"]  # not the pair that differs in both
    assert (comparisons.test == "mcnemar").all()
    lr_row = comparisons[comparisons.differs_in == "lr"].iloc[0]
    assert lr_row.p_value == pytest.approx(stats.binomtest(20, 20, 0.5).pvalue)
    adjusted = sorted(comparisons.p_adjusted)
    assert adjusted[0] == pytest.approx(2 * min(comparisons.p_value))  # Holm over the report's 2 pairs


def test_sentences_name_the_winner_with_its_interval_or_say_it_cannot_be_told():
    row = {"a": "A", "b": "B", "n": 5, "diff_mean": -5.1, "diff_ci_low": -7.2, "diff_ci_high": -3.0,
           "adj_ci_low": -8.0, "adj_ci_high": -2.2, "family": 3, "p_adjusted": 0.004, "test": "paired-t"}
    assert comparison_sentence(row) == ("B beats A by 5.1 points (95 % simultaneous CI 2.2 to 8.0, p = 0.004 after "
                                        "Holm's adjustment over 3 comparisons, 5 paired seeds)")
    row |= {"p_adjusted": 0.2, "adj_ci_high": 1.0}
    assert comparison_sentence(row).startswith("A and B cannot be told apart at n = 5 (difference -5.1 points, "
                                               "95 % simultaneous CI -8.0 to 1.0")


def _verdict_agrees_with_its_interval(sentence: str) -> bool:
    """A sentence is coherent when "beats" stands beside an interval that excludes zero and "cannot
    be told apart" beside one that contains it, or when the sentence says why not."""
    low, high = (float(v) for v in re.search(r"CI (-?[\d.]+) to (-?[\d.]+)", sentence).groups())
    explained = "; " in sentence
    if " beats " in sentence:
        return (low > 0 and high > 0) or explained
    return low <= 0 <= high or explained


def test_every_verdict_agrees_with_its_printed_interval():
    # six settings, 3 seeds: several gaps whose unadjusted interval excludes zero while Holm's
    # adjustment over 15 comparisons does not call them real (the case the old sentences got wrong)
    rng = np.random.default_rng(7)
    means = {"e1": 90, "e2": 86, "e3": 83, "e4": 80, "e5": 79, "e6": 60}
    runs = [fake_run(name, seed, int(mean + rng.normal(0, 2)), n=400) for name, mean in means.items()
            for seed in range(3)]
    comparisons = comparison_table(runs)
    assert len(comparisons) == 15 and (comparisons.family == 15).all()
    unadjusted_excludes = (comparisons.diff_ci_low > 0) | (comparisons.diff_ci_high < 0)
    not_real = comparisons.p_adjusted >= 0.05
    assert (unadjusted_excludes & not_real).any()  # the adjusted and unadjusted answers differ here
    assert ((comparisons.adj_ci_high - comparisons.adj_ci_low)
            > (comparisons.diff_ci_high - comparisons.diff_ci_low)).all()
    sentences = [comparison_sentence(row) for row in comparisons.to_dict("records")]
    assert all("over 15 comparisons" in s for s in sentences)
    assert all(_verdict_agrees_with_its_interval(s) for s in sentences), sentences
    # one seed: McNemar's exact test on the shared test images, held to the same rule
    single = [fake_run(name, 0, int(mean), n=400) for name, mean in means.items()]
    assert all(_verdict_agrees_with_its_interval(comparison_sentence(row))
               for row in comparison_table(single).to_dict("records"))
