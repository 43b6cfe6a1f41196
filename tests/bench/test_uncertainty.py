"""Bootstrap intervals on hand-made tables (known cases, coverage on synthetic draws), tie marking, comparisons."""

from __future__ import annotations

import math

import numpy as np
import pytest

from descentlab.bench import score
from descentlab.bench.tuning import study_time
from descentlab.bench.uncertainty import compare_times, interval, mark_ties, rank_label, score_intervals

INF = math.inf


def test_three_studies_give_the_range_of_the_study_values():
    # median of 3 redrawn values: P(median = smallest) = P(median = largest) = 7/27 > 5 %, so the 90 % interval is
    # exactly [min, max] of the three study values (no trial redraw: one trial per study)
    tt = {"A": {"w": [[1.0], [2.0], [3.0]]}, "B": {"w": [[4.0], [4.0], [4.0]]}}
    iv = score_intervals(tt, ci=0.9, n_boot=4000, seed=1)
    assert iv.resampled == "studies"
    assert iv.times["A"]["w"] == 2.0 and (iv.time_lo["A"]["w"], iv.time_hi["A"]["w"]) == (1.0, 3.0)
    assert (iv.time_lo["B"]["w"], iv.time_hi["B"]["w"]) == (4.0, 4.0)  # identical studies: no spread
    # B / A ranges over 4/3 .. 4: B's score (4 - r)/3 from 0 (r = 4) to 8/9 (r = 4/3); A is always the fastest
    assert iv.scores == pytest.approx({"A": 1.0, "B": 2 / 3})
    assert (iv.score_lo["A"], iv.score_hi["A"]) == (1.0, 1.0)
    assert iv.score_lo["B"] == pytest.approx(0.0) and iv.score_hi["B"] == pytest.approx(8 / 9)
    # B's interval [0, 8/9] stays below A's [1, 1]: A is first, not tied, even with three studies
    assert iv.ranks == {
        "A": {"rank": 1, "tied_with": [], "tie": False},
        "B": {"rank": 2, "tied_with": [], "tie": False},
    }


def test_constant_tables_give_point_intervals_and_clear_ranks():
    tt = {"A": {"w": [[10.0, 12.0]] * 3}, "B": {"w": [[30.0, 31.0]] * 3}}
    iv = score_intervals(tt, n_boot=500, resample_trials=True)
    assert iv.resampled == "studies and trials within studies"
    assert iv.scores == pytest.approx({"A": 1.0, "B": 1 / 3})
    # redrawing trials can lose the best one: A's time is 10 or 12, B's 30 or 31 -> B's score from (4-3.1)/3 up
    assert iv.score_lo["A"] == iv.score_hi["A"] == 1.0
    assert iv.score_lo["B"] >= (4 - 3.1) / 3 - 1e-12 and iv.score_hi["B"] <= (4 - 30 / 12) / 3 + 1e-12
    assert iv.ranks["A"] == {"rank": 1, "tied_with": [], "tie": False}
    assert iv.ranks["B"] == {"rank": 2, "tied_with": [], "tie": False}
    assert [rank_label(iv.ranks[a]) for a in iv.order()] == ["1", "2"]


def test_trial_redraw_known_case():
    # one study, trials (1, 5): the redrawn best is 5 only if both draws pick 5 (p = 1/4 > 5 %) -> interval [1, 5]
    tt = {"A": {"w": [[1.0, 5.0]]}, "B": {"w": [[100.0, 100.0]]}}
    iv = score_intervals(tt, n_boot=4000, seed=3, resample_trials=True)
    assert (iv.time_lo["A"]["w"], iv.time_hi["A"]["w"]) == (1.0, 5.0)
    fixed = score_intervals(tt, n_boot=4000, seed=3)  # the default since issue 27: studies only
    assert (fixed.time_lo["A"]["w"], fixed.time_hi["A"]["w"]) == (1.0, 1.0) and fixed.resampled == "studies"


def test_point_scores_match_the_plain_score_of_the_study_medians():
    rng = np.random.default_rng(0)
    tt = {
        a: {
            w: [[float(x) if x < 30 else INF for x in rng.exponential(10, 4)] for _ in range(3)]
            for w in "uvw"
        }
        for a in "ABC"
    }
    iv = score_intervals(tt, n_boot=200)
    times = {a: {w: study_time(tt[a][w]) for w in "uvw"} for a in "ABC"}
    assert iv.scores == pytest.approx(score(times))
    assert iv.times == times
    for a in "ABC":
        assert iv.score_lo[a] <= iv.scores[a] <= iv.score_hi[a]


def test_misses_give_infinite_bounds():
    tt = {"A": {"w": [[1.0], [INF], [INF]]}, "B": {"w": [[2.0], [2.0], [2.0]]}}
    iv = score_intervals(tt, n_boot=2000)
    assert iv.times["A"]["w"] == INF and iv.time_lo["A"]["w"] == 1.0 and iv.time_hi["A"]["w"] == INF
    d = iv.to_dict()
    assert d["times"]["A"]["w"] is None and d["time_intervals"]["A"]["w"] == [1.0, None]


def test_interval_coverage_on_synthetic_draws():
    # 25 studies of one trial from a lognormal: the 90 % interval of the median covers the true median exp(mu)
    # in about 90 % of experiments (order statistics without interpolation: a little more)
    rng = np.random.default_rng(123)
    hits, n = 0, 300
    for _ in range(n):
        draws = np.exp(rng.normal(0.0, 0.5, 25))
        tt = {"A": {"w": [[float(x)] for x in draws]}, "B": {"w": [[1e9]] * 25}}
        iv = score_intervals(tt, n_boot=400, seed=int(rng.integers(1 << 30)))
        hits += iv.time_lo["A"]["w"] <= 1.0 <= iv.time_hi["A"]["w"]
    assert 0.84 <= hits / n <= 0.98


def test_score_interval_coverage_on_synthetic_draws():
    # two algorithms, three workloads, 25 studies each: the true score is the score of the true medians
    rng = np.random.default_rng(7)
    mu = {"A": np.log([10.0, 20.0, 30.0]), "B": np.log([15.0, 12.0, 60.0])}
    true = score({a: {w: float(np.exp(m[i])) for i, w in enumerate("uvw")} for a, m in mu.items()})
    hits, n = {"A": 0, "B": 0}, 200
    for _ in range(n):
        tt = {a: {w: [[float(np.exp(rng.normal(m[i], 0.3)))] for _ in range(25)] for i, w in enumerate("uvw")}
              for a, m in mu.items()}  # fmt: skip
        iv = score_intervals(tt, n_boot=300, seed=int(rng.integers(1 << 30)))
        for a in hits:
            hits[a] += iv.score_lo[a] <= true[a] <= iv.score_hi[a]
    for a in hits:
        assert 0.8 <= hits[a] / n <= 1.0, (a, hits[a] / n)


def test_mark_ties_by_overlap():
    scores = {"A": 0.6, "B": 0.5, "C": 0.2, "D": 0.2}
    lo = {"A": 0.5, "B": 0.45, "C": 0.1, "D": 0.2}
    hi = {"A": 0.7, "B": 0.6, "C": 0.3, "D": 0.2}
    t = mark_ties(scores, lo, hi)
    assert t["A"] == {"rank": 1, "tied_with": ["B"], "tie": True}
    assert t["B"] == {"rank": 1, "tied_with": ["A"], "tie": True}
    assert t["C"] == {"rank": 3, "tied_with": ["D"], "tie": True}  # D's point interval lies inside C's
    assert t["D"]["rank"] == 3 and rank_label(t["D"]) == "=3"
    touching = mark_ties({"A": 0.6, "B": 0.4}, {"A": 0.5, "B": 0.3}, {"A": 0.7, "B": 0.5})
    assert touching["B"]["tie"]  # bounds touching at 0.5 count as overlap
    apart = mark_ties({"A": 0.6, "B": 0.4}, {"A": 0.51, "B": 0.3}, {"A": 0.7, "B": 0.5})
    assert apart["B"] == {"rank": 2, "tied_with": [], "tie": False} and rank_label(apart["A"]) == "1"
    with pytest.raises(ValueError, match="score 0.9 lies outside its interval"):
        mark_ties({"A": 0.9}, {"A": 0.1}, {"A": 0.2})


def test_difference_is_paired():
    tt = {"A": {"w": [[1.0], [2.0], [3.0]]}, "A2": {"w": [[1.0], [2.0], [3.0]]}}
    iv = score_intervals(tt, n_boot=1000)
    d, lo, hi = iv.difference("A", "A2")
    assert d == 0.0 and lo <= 0.0 <= hi
    with pytest.raises(ValueError, match="unknown algorithm 'Z'"):
        iv.difference("A", "Z")


@pytest.mark.parametrize(
    ("a", "b", "verdict"),
    [
        ([[1.0], [1.1], [1.2], [1.05]], [[3.0], [3.2], [3.1], [2.9]], "faster"),
        ([[3.0], [3.2], [3.1], [2.9]], [[1.0], [1.1], [1.2], [1.05]], "slower"),
        ([[1.0], [3.0], [2.0]], [[2.5], [1.5], [1.0]], "no significant difference"),
        ([[INF], [INF], [INF]], [[2.0], [2.0], [2.0]], "slower"),
        ([[INF], [INF], [INF]], [[INF], [INF], [INF]], "no significant difference"),
    ],
)
def test_compare_verdicts(a, b, verdict):
    c = compare_times(a, b, "x", "y", "w", n_boot=2000)
    assert c.verdict == verdict
    assert c.diff_lo <= (c.diff if math.isfinite(c.diff) or c.diff > 0 else c.diff_lo) <= c.diff_hi
    assert c.studies_a == [min(s) for s in a]
    line = c.sentence()
    assert line.startswith("x is ") and "on w" in line
    d = c.to_dict()
    assert d["verdict"] == verdict and len(d["studies_b"]) == len(b)


def test_two_misses_count_as_no_difference():
    c = compare_times([[INF]] * 3, [[INF]] * 3)
    assert c.diff == 0.0 and c.diff_lo == 0.0 == c.diff_hi


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"ci": 1.0}, "ci must be a number in \\(0, 1\\), e.g. 0.9, got 1.0"),
        ({"n_boot": 0}, "n_boot must be a positive integer, got 0"),
        ({"tau_max": 1}, "tau_max must be a number > 1, got 1"),
    ],
)
def test_bad_settings_name_the_value(kw, match):
    with pytest.raises(ValueError, match=match):
        score_intervals({"A": {"w": [[1.0]]}}, **kw)


@pytest.mark.parametrize(
    ("tt", "match"),
    [
        ({"A": {"w": [[1.0], [1.0, 2.0]]}}, "same number of trials"),
        ({"A": {"w": [[-1.0]]}}, "seconds >= 0 or math.inf"),
        ({"A": {"w": [[1.0]]}, "B": {"v": [[1.0]]}}, "algorithm 'B' has workloads \\['v'\\]"),
        ({"A": {"w": [[1.0]], "v": [[1.0], [2.0]]}}, "same studies x trials"),
    ],
)
def test_bad_tables_name_the_cell(tt, match):
    with pytest.raises(ValueError, match=match):
        score_intervals(tt)


def test_interval_without_interpolation():
    assert interval([1.0, 2.0, INF], 0.5) == (1.0, INF)
    with pytest.raises(ValueError, match="at least one sample"):
        interval([], 0.9)
