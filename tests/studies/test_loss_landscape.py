"""loss-landscape: quick claims hold; the surface measures and the models match independent references."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import descentlab.studies as studies
from descentlab.studies.loss_landscape import (
    ResidualMLP,
    dropout_mlp,
    local_minima,
    log_roughness,
    nonconvex_fraction,
)


def test_small_setting_runs_end_to_end(tmp_path):
    """The whole study on a few steps and a coarse grid (figures, summary, three claims evaluated); the claims
    themselves need the quick variant below (a slow test; `make demo` checks them too)."""
    res = studies.run("loss-landscape", quick=True, out=tmp_path, store=False, progress=False, steps=30,
                      deep_steps=30, blocks=2, width=16, samples=200, points=9, grid=5, deep_seeds=1)  # fmt: skip
    assert len(res.claims) == 3 and all(c["evidence"] for c in res.claims)
    for stem in ("loss_landscape_lines", "loss_landscape_planes", "loss_landscape_skip"):
        assert (tmp_path / f"{stem}.png").exists()


@pytest.mark.slow  # ~75 s on 2 cores
def test_quick_claims_hold(tmp_path):
    res = studies.run("loss-landscape", quick=True, out=tmp_path, store=tmp_path / "s.db", progress=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary["claims"]) == 3
    for claim in summary["claims"]:
        assert claim["holds"], claim
    numbers = res.summary["numbers"]
    assert {"dropout 0", "dropout 0.2", "with skips", "without skips", "cosines"} <= set(numbers)
    for stem in ("loss_landscape_lines", "loss_landscape_planes", "loss_landscape_skip"):
        assert (tmp_path / f"{stem}.png").exists()


GRID = np.linspace(-1, 1, 21)
A, B = np.meshgrid(GRID, GRID, indexing="ij")


@pytest.mark.parametrize(
    ("surface", "expected"),
    [
        (A**2 + 0.5 * B**2 + 0.3 * A * B, 0.0),  # convex quadratic: Hessian eigenvalues both positive
        (A**2 - B**2, 1.0),  # saddle everywhere
        (-(A**2) - B**2, 1.0),  # concave
    ],
)
def test_nonconvex_fraction_of_quadratics(surface, expected):
    assert nonconvex_fraction(surface, GRID, GRID) == pytest.approx(expected)


def test_nonconvex_fraction_matches_the_analytic_sign_of_the_hessian():
    # f = cos(3a) + b^2: Hessian diag(-9 cos(3a), 2), negative eigenvalue exactly where cos(3a) > 0.
    f = np.cos(3 * A) + B**2
    inner = GRID[1:-1]
    expected = float((np.cos(3 * inner) > 0).mean())
    assert nonconvex_fraction(f, GRID, GRID) == pytest.approx(expected)
    with pytest.raises(ValueError, match="2-D grid"):
        nonconvex_fraction(np.zeros(5), GRID, GRID)


def test_local_minima_and_roughness():
    assert local_minima(A**2 + B**2) == 1
    assert local_minima(np.cos(3 * np.pi * A) * np.cos(3 * np.pi * B)) > 4
    assert log_roughness(np.exp(2 * A - B)) < 1e-12  # log-linear: zero Laplacian
    assert log_roughness(np.exp(np.sin(8 * A))) > log_roughness(np.exp(A**2))


def test_residual_mlp_against_a_plain_loop():
    torch.manual_seed(0)
    x = torch.randn(7, 40)
    for skip in (True, False):
        net = ResidualMLP(blocks=3, width=16, skip=skip).eval()
        h = net.stem(x)
        for block in net.blocks:
            h = torch.relu(h + block(h)) if skip else torch.relu(block(h))
        assert torch.allclose(net(x), net.head(h))
    assert sum(isinstance(m, torch.nn.Linear) for m in ResidualMLP(blocks=9).modules()) == 20
    with pytest.raises(ValueError, match="blocks"):
        ResidualMLP(blocks=0)


def test_dropout_mlp():
    assert any(isinstance(m, torch.nn.Dropout) and m.p == 0.2 for m in dropout_mlp(dropout=0.2))
    assert not any(isinstance(m, torch.nn.Dropout) for m in dropout_mlp(dropout=0.0))
    with pytest.raises(ValueError, match="dropout"):
        dropout_mlp(dropout=1.0)
