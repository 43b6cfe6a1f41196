"""loss-landscape: each claim's decision on hand-made values; the surface measures and the models match independent
references; a tiny end-to-end run writes a well-formed summary (whatever the verdicts)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import descentlab.studies as studies
from descentlab.studies.claims import VERDICTS, judge
from descentlab.studies.loss_landscape import (
    MATCHED,
    PREDICTIONS,
    ResidualMLP,
    dropout_mlp,
    line_rise,
    local_minima,
    log_roughness,
    nonconvex_fraction,
)


@pytest.mark.parametrize(
    ("name", "values", "expected"),
    [
        ("skip_more_convex", [0.35, 0.4, 0.37], "holds"),
        ("skip_more_convex", [-0.1, -0.15, -0.12], "fails"),  # the residual net is the rougher one
        ("skip_more_convex", [0.2, -0.1, 0.05], "inconclusive"),
        ("depth_makes_chaotic", [0.3, 0.25, 0.28], "holds"),
        ("depth_makes_chaotic", [-0.05, -0.04, -0.045], "fails"),
        ("depth_makes_chaotic", [0.0, 0.0, 0.0], "inconclusive"),  # both convex: no transition seen
        ("dropout_wider", [3.2, 3.4, 3.0], "holds"),
        ("dropout_wider", [0.6, 0.7, 0.65], "fails"),
        ("dropout_wider", [1.3, 0.8, 1.0], "inconclusive"),
    ],
)
def test_claim_decisions(name, values, expected):
    pred = {p.name: p for p in PREDICTIONS}[name]
    assert judge(pred, values)["verdict"] == expected


def test_line_rise():
    a = np.linspace(-1, 1, 21)
    assert line_rise(2.0 + 3.0 * a**2, a) == pytest.approx(3.0)
    assert line_rise(np.full(21, 0.7), a) == pytest.approx(0.0)
    even = np.linspace(-1, 1, 20)
    with pytest.raises(ValueError, match="include 0"):
        line_rise(even**2, even)
    with pytest.raises(ValueError, match="same length"):
        line_rise(a**2, even)


def test_tiny_run_writes_a_well_formed_summary(tmp_path):
    res = studies.run("loss-landscape", quick=True, out=tmp_path, store=False, progress=False, seeds=2, steps=20,
                      deep_steps=20, match_every=2, blocks=2, width=8, samples=100, points=5, grid=5, lrs=[0.003, 0.01, 0.03],
                      deep_lrs=[0.015, 0.05, 0.15])  # fmt: skip
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [c["name"] for c in summary["claims"]] == [p.name for p in PREDICTIONS]
    for c in summary["claims"]:
        assert c["verdict"] in VERDICTS and len(c["values"]) == 2 and c["evidence"]
    assert {c["name"] for c in summary["checks"]} == {
        "random directions nearly orthogonal",
        "final point is the line's minimum",
    }
    assert summary["seeds"]["evaluation"] == [0, 1]
    assert set(res.summary["numbers"]["tuned_lr"]) == {"dropout 0", "dropout 0.2", "skip", "plain", "shallow"}
    numbers = res.summary["numbers"]
    for claim, (a, b) in MATCHED.items():  # v3: each pair compared at the higher of the two final losses
        m = numbers["matched"][claim]
        for i in range(2):
            ends = [numbers[a]["train_loss"][i], numbers[b]["train_loss"][i]]
            assert m["level"][i] == pytest.approx(max(ends))
            for k in (a, b):  # the lower net stops at its first evaluation at or below the level
                assert m[f"{k}_loss"][i] <= m["level"][i] + 1e-9
                assert m[f"{k}_step"][i] <= 20
        c = next(c for c in summary["claims"] if c["name"] == claim)
        assert c["values"] == pytest.approx([x - y for x, y in zip(m[f"{a}_nonconvex"], m[f"{b}_nonconvex"])])
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
