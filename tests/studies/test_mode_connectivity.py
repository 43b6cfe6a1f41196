"""mode-connectivity: quick claims hold; the plane basis is orthonormal and spans the three points."""

from __future__ import annotations

import json

import pytest
import torch

import descentlab.studies as studies
from descentlab.studies.mode_connectivity import plane_basis


def test_quick_claims_hold(tmp_path):
    res = studies.run("mode-connectivity", quick=True, out=tmp_path, store=tmp_path / "s.db", progress=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    n = res.summary["numbers"]
    # before training (stage 0) the Bezier curve, its bend at (w1 + w2) / 2, is the straight line itself
    assert n["stage_max_loss"]["0"] == pytest.approx(n["straight_max_loss"], rel=1e-4)
    assert n["bezier_max_loss"] < n["straight_max_loss"] and n["polychain_max_loss"] < n["straight_max_loss"]
    assert 0 <= n["polychain_max_error"] <= 1
    assert len(summary["claims"]) == 2
    for claim in summary["claims"]:
        assert claim["holds"], claim
    assert (tmp_path / "mode_connectivity.png").exists()


def test_plane_basis():
    g = torch.Generator().manual_seed(0)
    w1, theta, w2 = (torch.randn(50, generator=g, dtype=torch.float64) for _ in range(3))
    u, v = plane_basis(w1, theta, w2)
    assert float(u @ u) == pytest.approx(1) and float(v @ v) == pytest.approx(1) and abs(float(u @ v)) < 1e-12
    for p in (theta, w2):  # both points lie in w1 + span(u, v)
        r = p - w1
        assert torch.allclose((r @ u) * u + (r @ v) * v, r, atol=1e-10)
    with pytest.raises(ValueError, match="collinear"):
        plane_basis(w1, w1 + 0.5 * (w2 - w1), w2)
