"""Scoring on hand-computed cases: ties, infinity, the 4x cut, a workload every algorithm fails, one algorithm."""

from __future__ import annotations

import math

import numpy as np
import pytest

from descentlab.bench import performance_profiles, ratios, score

INF = math.inf


def test_two_algorithms_swap_wins():
    # ratios A: (1, 2), B: (2, 1) -> score = mean((4-1)/3, (4-2)/3) = 5/6 each
    times = {"A": {"w1": 10.0, "w2": 20.0}, "B": {"w1": 20.0, "w2": 10.0}}
    assert ratios(times) == {"A": {"w1": 1.0, "w2": 2.0}, "B": {"w1": 2.0, "w2": 1.0}}
    s = score(times)
    assert s["A"] == pytest.approx(5 / 6) and s["B"] == pytest.approx(5 / 6)


def test_infinity_is_a_failure():
    times = {"A": {"w1": 10.0, "w2": INF}, "B": {"w1": 30.0, "w2": 5.0}}
    s = score(times)
    assert s["A"] == pytest.approx((1.0 + 0.0) / 2)
    assert s["B"] == pytest.approx(((4 - 3) / 3 + 1.0) / 2)


@pytest.mark.parametrize(
    ("slow", "expected_ratio", "expected_score"),
    [(25.0, 2.5, 0.5), (40.0, 4.0, 0.0), (41.0, INF, 0.0)],
)
def test_the_4x_cut(slow, expected_ratio, expected_score):
    times = {"A": {"w": 10.0}, "B": {"w": slow}}
    assert ratios(times)["B"]["w"] == expected_ratio
    assert score(times)["B"] == pytest.approx(expected_score)
    taus, rho = performance_profiles(times)["B"]
    # exactly 4x is inside the profile at tau = 4; 4.1x never is
    assert rho[-1] == (1.0 if expected_ratio <= 4 else 0.0)


def test_ties_share_first_place():
    times = {"A": {"w": 7.0}, "B": {"w": 7.0}}
    assert score(times) == {"A": 1.0, "B": 1.0}


def test_workload_all_fail_counts_for_all():
    times = {"A": {"w1": INF, "w2": 10.0}, "B": {"w1": INF, "w2": 20.0}}
    r = ratios(times)
    assert r["A"]["w1"] == INF and r["B"]["w1"] == INF
    s = score(times)
    assert s["A"] == pytest.approx(0.5)  # (0 + 1) / 2
    assert s["B"] == pytest.approx((0 + 2 / 3) / 2)


def test_single_algorithm():
    s = score({"A": {"w1": 3.0, "w2": INF, "w3": 0.5}})
    assert s["A"] == pytest.approx(2 / 3)


def test_profile_values_and_area_equals_score():
    times = {"A": {"w1": 10.0, "w2": INF}, "B": {"w1": 30.0, "w2": 5.0}}
    prof = performance_profiles(times, num_points=3001)
    taus, rho_b = prof["B"]
    assert rho_b[np.searchsorted(taus, 2.9)] == 0.5
    assert rho_b[np.searchsorted(taus, 3.0)] == 1.0
    assert np.all(prof["A"][1] == 0.5)
    s = score(times)
    for a, (t, rho) in prof.items():  # normalized area (trapezoid on a fine grid) = closed form
        area = float(np.sum((rho[1:] + rho[:-1]) / 2 * np.diff(t))) / (4 - 1)
        assert area == pytest.approx(s[a], abs=2e-3)


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"A": {}},
        {"A": {"w": 1.0}, "B": {"v": 1.0}},
        {"A": {"w": math.nan}},
        {"A": {"w": -1.0}},
        {"A": {"w": "fast"}},
    ],
)
def test_bad_tables_raise(bad):
    with pytest.raises(ValueError):
        score(bad)


def test_bad_tau_max():
    with pytest.raises(ValueError, match="tau_max"):
        score({"A": {"w": 1.0}}, tau_max=1.0)
