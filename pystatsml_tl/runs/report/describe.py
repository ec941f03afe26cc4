"""The report's comparisons in words: who beats whom by how much, or that two settings cannot be
told apart at this number of seeds and how many seeds would tell them apart."""
from __future__ import annotations

import math
from typing import Any

import pandas as pd

from .compare import ALPHA


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
