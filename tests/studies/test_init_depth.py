"""init-depth: the quick variant's claims hold; the initializations have the variances they claim."""

from __future__ import annotations

import json

import pytest
import torch

import descentlab.studies as studies
from descentlab.studies.init_depth import activation_stds, deep_relu_mlp


def test_quick_claims_hold(tmp_path):
    studies.run("init-depth", quick=True, out=tmp_path, store=tmp_path / "s.db", progress=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary["claims"]) == 3
    for claim in summary["claims"]:
        assert claim["holds"], claim
    assert (tmp_path / "init_depth.png").exists()


@pytest.mark.parametrize(
    "init, variance", [("kaiming", 2 / 256), ("xavier", 2 / (256 + 256)), ("small", 1e-4)]
)
def test_weight_variance_matches_the_formula(init, variance):
    torch.manual_seed(0)
    model = deep_relu_mlp(3, 256, init, d_in=256)(0)
    w = model[2].weight  # a 256 x 256 hidden layer
    assert float(w.detach().var()) == pytest.approx(variance, rel=0.05)
    assert float(model[2].bias.detach().abs().max()) == 0.0


def test_kaiming_keeps_the_second_moment_through_relu_layers():
    # He et al.: with Var(w) = 2/fan_in, E[y^2] of the pre-activations is preserved layer to layer
    torch.manual_seed(0)
    model = deep_relu_mlp(12, 512, "kaiming", d_in=512)(0)
    stds = activation_stds(model, torch.randn(2048, 512))
    assert all(0.5 < s / stds[0] < 2.0 for s in stds)


def test_bad_init_name():
    with pytest.raises(ValueError, match="init must be one of"):
        deep_relu_mlp(3, 8, "orthogonal")
