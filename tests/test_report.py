"""The report's tables and words, from constructed runs (no training)."""
import re

import numpy as np
import pandas as pd
import pytest
from fakes import fake_metrics, write_run
from scipy import stats

from pystatsml_tl.runs.report import (
    LESSON_QUESTIONS,
    DuplicateRunError,
    comparison_sentence,
    comparison_table,
    runs_table,
    summary_table,
    write_report,
)


def fake_run(experiment, seed, correct, n=100, lr=0.001):
    """A complete run whose first ``correct`` of ``n`` test predictions are right, as collect_runs returns it."""
    return fake_metrics(experiment, seed, correct, n, lr=lr) | {"path": f"{experiment}/seed-{seed}"}


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
    explained = any(reason in sentence for reason in ("because", "undefined", "disagree at this margin"))
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


def _report_sentences(folder) -> list[str]:
    text = (folder / "summary.md").read_text()
    section = text.split("## Which differences are real")[1].split("\n## ")[0]
    return [line[2:] for line in section.splitlines() if line.startswith("- ")]


def test_every_sentence_of_a_written_report_agrees_with_its_interval(tmp_path):
    rng = np.random.default_rng(3)
    means = {"finetune-sgd": 91, "finetune-adam": 87, "extractor-sgd": 84, "extractor-adam": 81, "scratch": 70}
    for name, mean in means.items():
        for seed in range(3):
            write_run(tmp_path / name / f"seed-{seed}", fake_metrics(name, seed, int(mean + rng.normal(0, 2)), n=400))
    write_report(tmp_path, compare_to="all")
    comparisons = pd.read_csv(tmp_path / "comparisons.csv")
    assert len(comparisons) == 10
    assert {"diff_ci_low", "diff_ci_high", "adj_ci_low", "adj_ci_high"} <= set(comparisons.columns)
    unadjusted_excludes = (comparisons.diff_ci_low > 0) | (comparisons.diff_ci_high < 0)
    assert (unadjusted_excludes & (comparisons.p_adjusted >= 0.05)).any()  # the two answers differ somewhere
    sentences = _report_sentences(tmp_path)
    assert len(sentences) == 10 and all("over 10 comparisons" in s for s in sentences)
    assert all(_verdict_agrees_with_its_interval(s) for s in sentences), sentences
    unresolved = [s for s in sentences if "cannot be told apart" in s]
    assert unresolved and all(re.search(r"About \d+ seeds would tell a [\d.]+-point difference apart", s)
                              for s in unresolved if "+0.0 points" not in s)


def test_compare_to_asks_k_minus_1_questions_and_refuses_an_unknown_name(tmp_path):
    names = ["finetune-sgd", "extractor-sgd", "scratch", "two-stage"]
    rng = np.random.default_rng(5)
    runs = [fake_run(name, seed, 60 + 7 * i + int(rng.integers(0, 5))) for i, name in enumerate(names)
            for seed in range(3)]
    every_pair, one_question = comparison_table(runs, compare_to="all"), comparison_table(runs, compare_to="scratch")
    assert len(every_pair) == 6 and len(one_question) == len(names) - 1
    assert (one_question["b"] == "scratch").all() and (one_question["family"] == 3).all()
    def widths(table):
        return {frozenset((r.a, r.b)): r.adj_ci_high - r.adj_ci_low for r in table.itertuples()}

    all_widths = widths(every_pair)
    assert all(width < all_widths[pair] for pair, width in widths(one_question).items())  # more power
    with pytest.raises(ValueError, match="compare_to='nope': expected all or one of"):
        comparison_table(runs, compare_to="nope")


def test_by_default_the_report_asks_the_lessons_questions_with_the_gain_positive(tmp_path):
    means = {"finetune-sgd": 90, "finetune-adam": 88, "extractor-sgd": 70, "extractor-adam": 78, "scratch": 55,
             "extractor-random": 40, "two-stage": 89}
    rng = np.random.default_rng(11)
    runs = [fake_run(name, seed, int(mean + rng.normal(0, 1.5))) for name, mean in means.items()
            for seed in range(5)]
    lesson = comparison_table(runs)
    assert list(zip(lesson.a, lesson.b)) == list(LESSON_QUESTIONS)  # in the lesson's order, a - b the gain asked
    assert (lesson.family == len(LESSON_QUESTIONS)).all()
    gain = lesson.iloc[0]
    assert (gain.a, gain.b) == ("finetune-sgd", "scratch") and gain.diff_mean > 30 and gain.adj_ci_low > 0
    every_pair = comparison_table(runs, compare_to="all")
    assert len(every_pair) == 21 and (every_pair.family == 21).all()
    sentence = comparison_sentence(lesson.iloc[0].to_dict())
    assert sentence.startswith("finetune-sgd beats scratch by ") and "over 6 comparisons" in sentence
    # experiments that none of the questions relates: every pair, as before
    recipes = [run for run in runs if run["experiment"] in ("two-stage", "finetune-adam")]
    assert len(comparison_table(recipes)) == 1


@pytest.mark.parametrize("seeds", [1, 2, 3, 10])
@pytest.mark.parametrize("correct", [0, 100, 37])
def test_accuracy_intervals_stay_inside_0_and_100(seeds, correct):
    runs = [fake_run("finetune-sgd", seed, correct) for seed in range(seeds)]
    runs += [fake_run("scratch", seed, min(100, correct + seed)) for seed in range(seeds)]
    summary = summary_table(runs)
    assert ((0 <= summary.test_acc_ci_low) & (summary.test_acc_ci_low <= summary.test_acc_mean)).all()
    assert ((summary.test_acc_mean <= summary.test_acc_ci_high) & (summary.test_acc_ci_high <= 100)).all()
    assert (summary.test_acc_ci_high > summary.test_acc_ci_low).all()  # never a zero-width interval


def test_numeric_grid_draws_accuracy_against_it_and_categorical_does_not(tmp_path):
    for lr in (0.001, 0.01, 0.1):
        for normalize in ("tutorial", "imagenet"):
            for seed in range(2):
                metrics = fake_metrics("finetune-sgd", seed, 50 + seed + int(100 * lr), lr=lr, normalize=normalize)
                write_run(tmp_path / f"lr={lr},normalize={normalize}" / f"seed-{seed}", metrics)
    paths = write_report(tmp_path)
    assert (tmp_path / "grid-lr.png").is_file() and "grid-lr.png" in paths
    assert not (tmp_path / "grid-normalize.png").exists()
    assert "![test accuracy against lr](grid-lr.png)" in (tmp_path / "summary.md").read_text()


def test_the_same_run_in_two_folders_is_counted_once_and_different_copies_are_refused(tmp_path):
    for copy in ("first", "second"):
        for seed in (0, 1):
            write_run(tmp_path / copy / "finetune-sgd" / f"seed-{seed}", fake_metrics("finetune-sgd", seed, 80 + seed))
    write_report(tmp_path)
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert summary["n_seeds"].tolist() == [2]  # not 4: the copies are the same runs
    text = (tmp_path / "summary.md").read_text()
    assert "second/finetune-sgd/seed-0` repeats `first/finetune-sgd/seed-0" in text
    write_run(tmp_path / "second" / "finetune-sgd" / "seed-1", fake_metrics("finetune-sgd", 1, 55))
    with pytest.raises(DuplicateRunError, match="first/finetune-sgd/seed-1 and second/finetune-sgd/seed-1"):
        write_report(tmp_path)


def test_a_folder_of_several_reports_is_refused_and_left_untouched(tmp_path, capsys):
    from pystatsml_tl.cli import main

    for report in ("smoke-1", "smoke-2"):
        write_run(tmp_path / report / "finetune-sgd" / "seed-0", fake_metrics("finetune-sgd", 0, 80))
        write_report(tmp_path / report)
    with pytest.raises(SystemExit) as info:
        main(["report", str(tmp_path)])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "holds 2 report(s) (smoke-1, smoke-2)" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "summary.md").exists()


def test_the_report_records_where_its_numbers_come_from(tmp_path):
    for seed in (0, 1):
        write_run(tmp_path / "finetune-sgd" / f"seed-{seed}", fake_metrics("finetune-sgd", seed, 80))
    write_report(tmp_path, command="pystatsml-tl report here")
    text = (tmp_path / "summary.md").read_text().split("## How this report was made")[1]
    for expected in ("command: `pystatsml-tl report here`", "report written 20", "runs from 2026-01-01",
                     "testhost: Test CPU, 2 threads, bf16 units: avx512_bf16, GPU none", "device: cpu",
                     "arithmetic: bf16", "commit abc123",
                     "constraints file: sha256:0123456789ab", "torch 2.0", "fingerprint feedfacecafe0001",
                     "train 90, val 10, test 100", "seeds: 0, 1"):
        assert expected in text, expected
