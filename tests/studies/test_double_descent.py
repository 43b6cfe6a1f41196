"""The `double-descent` study: Legendre features, minimum-norm least squares, and the quick run's claims."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import eval_legendre

import descentlab.studies as studies
from descentlab.studies.double_descent import legendre_features, polynomial_risk, target_function


def test_legendre_features_match_scipy() -> None:
    x = np.linspace(-1, 1, 13)
    phi = legendre_features(x, 7)
    ref = np.stack([eval_legendre(k, x) for k in range(1, 8)], axis=1)  # P_1 .. P_7, no constant column
    assert phi.shape == (13, 7)
    np.testing.assert_allclose(phi, ref, atol=1e-12)


def test_polynomial_risk_is_minimum_norm_least_squares() -> None:
    degs = [3, 15, 40]
    res = polynomial_risk(degs, n=15, repeats=2, n_test=50, seed=7)
    # Recompute the first repeat by hand: same draws, pinv solution (the minimum-norm least-squares solution).
    rng = np.random.default_rng(7)
    x, xt = rng.uniform(-1, 1, 15), rng.uniform(-1, 1, 50)
    y, yt = target_function(x), target_function(xt)
    for j, d in enumerate(degs):
        phi, phit = legendre_features(x, d), legendre_features(xt, d)
        w = np.linalg.pinv(phi) @ y
        np.testing.assert_allclose(res["train_mse"][0, j], np.mean((phi @ w - y) ** 2), rtol=1e-6, atol=1e-12)
        np.testing.assert_allclose(res["test_mse"][0, j], np.mean((phit @ w - yt) ** 2), rtol=1e-4)
    assert res["train_mse"][0, 0] > 0.1  # d = 3 < n cannot interpolate
    assert res["train_mse"][:, 2].max() < 1e-12  # d = 40 > n interpolates
    assert np.allclose(target_function(np.array([0.0])), 1.0)


@pytest.mark.parametrize(
    "kw", [{"degrees": []}, {"degrees": [0, 1]}, {"degrees": [1], "n": 0}, {"degrees": [1], "repeats": 1.5}]
)
def test_bad_inputs(kw: dict) -> None:
    with pytest.raises(ValueError):
        polynomial_risk(**kw)
    with pytest.raises(ValueError):
        legendre_features(np.zeros(3), 0)


def _check(tmp_path, res) -> dict:
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["study"] == "double-descent"
    assert {"config", "numbers", "claims", "seconds"} <= set(summary)
    assert (tmp_path / "double_descent.png").exists() and (tmp_path / "double_descent.svg").exists()
    assert summary["claims"]
    failed = [c for c in res.claims if not c["holds"]]
    assert not failed, failed
    return summary


def test_polynomial_part_only(tmp_path) -> None:
    res = studies.run(
        "double-descent", quick=True, out=tmp_path, store=tmp_path / "s.db", progress=False, widths=[]
    )
    summary = _check(tmp_path, res)
    assert len(summary["claims"]) == 2
    assert summary["numbers"]["poly"]["argmax_degree"] == 15


def test_double_descent_quick(tmp_path) -> None:
    res = studies.run("double-descent", quick=True, out=tmp_path, store=tmp_path / "s.db", progress=False)
    summary = _check(tmp_path, res)
    assert len(summary["claims"]) == 3
    mw = summary["numbers"]["model_wise"]
    assert mw["interpolation_threshold_width"] is not None
