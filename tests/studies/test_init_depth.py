"""init-depth: the initializations have the variances they claim; each claim's decision on hand-made values (holds,
fails, inconclusive) and the stall anchor; one tiny end-to-end run with a well-formed summary (never a verdict)."""

from __future__ import annotations

import json
import math

import pytest
import torch

import descentlab.studies as studies
from descentlab.studies.claims import Measurement, judge
from descentlab.studies.init_depth import (
    CHANCE,
    PREDICTIONS,
    STALL_ANCHOR,
    activation_stds,
    deep_relu_mlp,
    log_loss_ratio,
    make_model,
)

PRED = {p.name: p for p in PREDICTIONS}


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


def test_make_model_is_deterministic_and_leaves_the_global_rng_alone():
    torch.manual_seed(5)
    before = torch.rand(1)
    torch.manual_seed(5)
    a = make_model(4, 8, "xavier", seed=3)
    after = torch.rand(1)
    b = make_model(4, 8, "xavier", seed=3)
    assert torch.equal(before, after)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_bad_init_name():
    with pytest.raises(ValueError, match="init must be one of"):
        deep_relu_mlp(3, 8, "orthogonal")


def test_log_loss_ratio():
    assert log_loss_ratio([2.3, 1.0], [0.023, 1.0]) == pytest.approx([math.log(100), 0.0])
    assert math.isnan(log_loss_ratio([float("inf")], [0.1])[0])


def test_faster_and_beats_decisions():
    for name in ("kaiming_converges_faster_22", "kaiming_beats_xavier_30"):
        p = PRED[name]
        assert judge(p, log_loss_ratio([2.3, 2.2, 2.3], [0.1, 0.2, 0.15]))["verdict"] == "holds"
        assert judge(p, log_loss_ratio([0.1, 0.2, 0.15], [0.5, 0.6, 0.55]))["verdict"] == "fails"
        assert judge(p, log_loss_ratio([0.2, 0.5, 0.1], [0.3, 0.2, 0.3]))["verdict"] == "inconclusive"
        out = judge(p, Measurement([1.0, 1.2, 1.1], inconclusive="grid does not bracket the optimum"))
        assert out["verdict"] == "inconclusive"


def test_converges_decision():
    p = PRED["kaiming_converges_30"]
    assert judge(p, [0.03, 0.04, 0.02])["verdict"] == "holds"
    assert judge(p, [0.9, 0.95, 0.99])["verdict"] == "fails"
    assert judge(p, [0.02, 0.3, 0.1])["verdict"] == "inconclusive"


def test_stall_anchor():
    assert STALL_ANCHOR.judge([2.30 / CHANCE, 2.301 / CHANCE, 2.299 / CHANCE])["verdict"] == "reproduced"
    assert STALL_ANCHOR.judge([0.02, 0.03, 0.01])["verdict"] == "not reproduced"


def test_tiny_run_writes_a_well_formed_summary(tmp_path):
    seeds = 2
    res = studies.run(
        "init-depth",
        quick=True,
        out=tmp_path,
        store=False,
        progress=False,
        seeds=seeds,
        steps=10,
        depth_faster=3,
        depth_deep=4,
        width=8,
        lr_grid=[0.01, 0.03, 0.1],
        tuning_seeds=1,
    )
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [c["name"] for c in summary["claims"]] == [p.name for p in PREDICTIONS]
    for c in summary["claims"]:
        assert c["verdict"] in ("holds", "fails", "inconclusive")
        assert len(c["values"]) == seeds and c["n"] <= seeds
    assert summary["seeds"] == {"evaluation": [0, 1], "tuning": [1000]}
    assert len(summary["checks"]) == 2 and all(isinstance(c["passed"], bool) for c in summary["checks"])
    (anchor,) = summary["anchors"]
    assert anchor["published"] == 1.0 and anchor["verdict"] in (
        "reproduced",
        "inconclusive",
        "not reproduced",
    )
    assert len(anchor["values"]) == seeds
    assert set(summary["numbers"]["tuning"]) == {"3/kaiming", "3/xavier", "4/kaiming", "4/xavier"}
    assert (tmp_path / "init_depth.png").exists() and (tmp_path / "init_depth.svg").exists()
    assert sum(res.verdicts.values()) == len(PREDICTIONS)
    with pytest.raises(ValueError, match="must differ"):
        studies.run("init-depth", quick=True, out=tmp_path, store=False, progress=False, depth_deep=22)
