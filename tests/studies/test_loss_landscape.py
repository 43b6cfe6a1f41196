"""loss-landscape: quick claims hold; the roughness measure and the models behave as documented."""

from __future__ import annotations

import json

import numpy as np
import torch

import descentlab.studies as studies
from descentlab.studies.loss_landscape import DeepMLP, mlp, roughness


def test_quick_claims_hold(tmp_path):
    studies.run("loss-landscape", quick=True, out=tmp_path, store=tmp_path / "s.db", progress=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary["claims"]) == 2
    for claim in summary["claims"]:
        assert claim["holds"], claim
    assert (tmp_path / "loss_landscape.png").exists()


def test_roughness_is_zero_for_log_linear_and_positive_for_bumps():
    a, b = np.meshgrid(np.linspace(-1, 1, 11), np.linspace(-1, 1, 11), indexing="ij")
    assert roughness(np.exp(2 * a - b)) < 1e-12
    bumpy = np.exp(np.sin(8 * a) * np.cos(8 * b))
    assert roughness(bumpy) > roughness(np.exp(a**2 + b**2))


def test_models():
    x = torch.randn(5, 40)
    assert DeepMLP(depth=3, skip=True)(x).shape == (5, 10)
    assert DeepMLP(depth=3, skip=False)(x).shape == (5, 10)
    assert any(isinstance(m, torch.nn.Dropout) for m in mlp(0.2)) and not any(
        isinstance(m, torch.nn.Dropout) for m in mlp(0.0)
    )
