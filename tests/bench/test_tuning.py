"""Halton search spaces: deterministic under the seed, inside bounds, log scaling; study aggregation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import qmc

from descentlab.bench import halton_points, study_time

SPACE = {
    "lr": {"min": 1e-4, "max": 1e-1, "scaling": "log"},
    "alpha": {"min": 0.2, "max": 0.8},
    "k": {"values": [3, 5, 10]},
    "nesterov": True,
}


def test_deterministic_and_seed_dependent():
    a = halton_points(SPACE, 16, seed=3)
    assert a == halton_points(SPACE, 16, seed=3)
    assert a != halton_points(SPACE, 16, seed=4)


def test_inside_bounds_and_constants():
    for p in halton_points(SPACE, 64, seed=0):
        assert 1e-4 <= p["lr"] <= 1e-1
        assert 0.2 <= p["alpha"] <= 0.8
        assert p["k"] in (3, 5, 10)
        assert p["nesterov"] is True


def test_matches_scipy_halton_with_plain_mapping():
    pts = halton_points(SPACE, 8, seed=5)
    u = qmc.Halton(d=3, scramble=True, seed=5).random(8)  # varying dims in dict order: lr, alpha, k
    for p, row in zip(pts, u):
        assert p["lr"] == pytest.approx(10 ** (-4 + 3 * row[0]))
        assert p["alpha"] == pytest.approx(0.2 + 0.6 * row[1])
        assert p["k"] == [3, 5, 10][int(row[2] * 3)]


def test_log_scaling_is_uniform_in_log_space():
    pts = halton_points({"lr": {"min": 1e-4, "max": 1e-1, "scaling": "log"}}, 128, seed=1)
    logs = np.log10([p["lr"] for p in pts])
    # low-discrepancy: each decade holds ~1/3 of the points; the geometric midpoint splits them in half
    for lo in (-4, -3, -2):
        assert abs(np.mean((logs >= lo) & (logs < lo + 1)) - 1 / 3) < 0.03
    assert abs(np.mean(logs < -2.5) - 0.5) < 0.03


def test_fixed_point_list():
    pts = [{"lr": 0.1}, {"lr": 0.01}, {"lr": 0.001}]
    assert halton_points(pts, 2) == [{"lr": 0.1}, {"lr": 0.01}]
    assert halton_points(pts, 5) == pts


@pytest.mark.parametrize(
    "space",
    [
        {"lr": {"min": 0.0, "max": 1.0, "scaling": "log"}},
        {"lr": {"min": 1.0, "max": 0.1}},
        {"lr": {"min": 1e-3, "max": 1e-1, "scaling": "exp"}},
        {"lr": {"low": 1e-3, "high": 1e-1}},
        {"lr": {"values": []}},
        [],
        "lr",
    ],
)
def test_bad_spaces(space):
    with pytest.raises((ValueError, TypeError)):
        halton_points(space, 3)


def test_bad_n():
    with pytest.raises(ValueError, match="positive integer"):
        halton_points(SPACE, 0)


def test_study_time_median_of_minima():
    inf = math.inf
    assert study_time([[3.0, 5.0], [inf, 2.0], [4.0, inf]]) == 3.0  # minima 3, 2, 4 -> median 3
    assert study_time([[2.0], [4.0]]) == 3.0
    assert study_time([[2.0], [inf]]) == inf
    assert study_time([[inf, inf], [inf], [1.0]]) == inf
    with pytest.raises(ValueError):
        study_time([])
