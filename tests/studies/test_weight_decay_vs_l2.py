"""weight-decay-vs-l2: the grid statistics and each claim's decision on hand-made values (holds, fails,
inconclusive), the optimizers' algebra as unit tests, and one tiny end-to-end run with a well-formed summary."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import descentlab.studies as studies
from descentlab.studies.claims import judge
from descentlab.studies.weight_decay_vs_l2 import (
    PREDICTIONS,
    DecoupledDecay,
    best_cell,
    best_decay_per_row,
    separation_difference,
    separation_slope,
)

PRED = {p.name: p for p in PREDICTIONS}
DECAYS = [1e-4 * 3**k for k in range(6)]
LRS = [1e-3 * 3**k for k in range(4)]


def _ridge(best_log_decay_per_row):
    """Accuracy grid with a parabolic ridge in log(decay) centred on the given log decay in each row."""
    logd = np.log(DECAYS)
    return np.array([0.6 - 0.02 * (logd - c) ** 2 for c in best_log_decay_per_row])


def test_best_decay_per_row_recovers_the_vertex_and_flags_edges():
    centres = [math.log(DECAYS[2]) + 0.3, math.log(DECAYS[3]) - 0.4]
    best, edge = best_decay_per_row(_ridge(centres), DECAYS)
    assert best == pytest.approx(centres, abs=1e-9)
    assert not edge.any()
    acc = np.array([[0.5, 0.4, 0.3, 0.2, 0.1, 0.0], [0.1, 0.2, 0.3, 0.3, 0.4, 0.6]])
    best, edge = best_decay_per_row(acc, DECAYS)
    assert edge.all() and best == pytest.approx(np.log([DECAYS[0], DECAYS[-1]]))
    with pytest.raises(ValueError, match="increasing"):
        best_decay_per_row(acc, DECAYS[::-1])


def test_separation_slope_is_minus_one_when_coupled_and_zero_when_separated():
    logd0 = math.log(DECAYS[4])
    coupled = _ridge([logd0 - (math.log(lr) - math.log(LRS[0])) for lr in LRS])  # best decay ∝ 1/lr
    s, edge = separation_slope(coupled, LRS, DECAYS)
    assert s == pytest.approx(-1.0, abs=1e-9) and edge == 0.0
    s, _ = separation_slope(_ridge([logd0] * len(LRS)), LRS, DECAYS)
    assert s == pytest.approx(0.0, abs=1e-9)


def test_best_cell_brackets_only_inside_the_grid():
    score = np.zeros((4, 6))
    score[1, 2] = 1.0
    assert best_cell(score) == (1, 2, True)
    score[0, 5] = 2.0
    assert best_cell(score) == (0, 5, False)


@pytest.mark.parametrize(
    "values, verdict",
    [([2.0, 3.5, 2.8], "holds"), ([-2.0, -3.5, -2.8], "fails"), ([4.0, -3.0, 0.5], "inconclusive")],
)
def test_adamw_beats_adam_l2_decision(values, verdict):
    assert judge(PRED["adamw_beats_adam_l2"], values)["verdict"] == verdict


@pytest.mark.parametrize("name", ["adamw_more_separable", "sgdw_more_separable"])
def test_separability_decisions(name):
    # |s(decoupled)| - |s(coupled)| < 0 is "more separable"
    holds = separation_difference([0.1, -0.05, 0.2], [-0.9, -1.1, -1.0], [0.0] * 6, "x")
    fails = separation_difference([1.0, 0.9, 1.1], [0.1, 0.0, -0.1], [0.0] * 6, "x")
    straddles = separation_difference([0.9, 0.1, 0.5], [0.1, 0.8, 0.4], [0.0] * 6, "x")
    edges = separation_difference([0.1, 0.0, 0.1], [-1.0, -1.0, -1.0], [1.0] * 4 + [0.0] * 2, "x")
    assert judge(PRED[name], holds)["verdict"] == "holds"
    assert judge(PRED[name], fails)["verdict"] == "fails"
    assert judge(PRED[name], straddles)["verdict"] == "inconclusive"
    out = judge(PRED[name], edges)
    assert out["verdict"] == "inconclusive" and "bracket" in out["inconclusive_reason"]


# ---------------------------------------------------------------- the algebra (checks, not claims)


def _quadratic_step(opt, w, target):
    opt.zero_grad()
    ((w - target) ** 2).sum().backward()
    opt.step()


def test_plain_sgd_l2_equals_decoupled_decay_and_momentum_breaks_it():
    torch.manual_seed(0)
    target, x0 = torch.randn(6), torch.randn(6)
    lr, lam = 0.1, 0.5
    for momentum, identical in ((0.0, True), (0.9, False)):
        a = torch.nn.Parameter(x0.clone())
        b = torch.nn.Parameter(x0.clone())
        opt_a = torch.optim.SGD([a], lr=lr, momentum=momentum, weight_decay=lam)
        opt_b = DecoupledDecay(torch.optim.SGD([b], lr=lr, momentum=momentum), weight_decay=lam)
        for _ in range(3):
            _quadratic_step(opt_a, a, target)
            _quadratic_step(opt_b, b, target)
        assert torch.allclose(a, b, atol=1e-6) == identical


def test_adamw_decay_is_exactly_lr_times_wd():
    torch.manual_seed(0)
    x0, target = torch.randn(6), torch.randn(6)
    a, b = torch.nn.Parameter(x0.clone()), torch.nn.Parameter(x0.clone())
    opt_a = torch.optim.AdamW([a], lr=0.01, weight_decay=0.5)
    opt_b = torch.optim.AdamW([b], lr=0.01, weight_decay=0.0)
    _quadratic_step(opt_a, a, target)
    _quadratic_step(opt_b, b, target)
    assert torch.allclose(b - a, 0.01 * 0.5 * x0, atol=1e-7)


def test_decoupled_decay_is_shrink_then_step():
    """DecoupledDecay(SGD) follows x <- (1 - lr wd) x - lr grad f(x), written plainly (seed 003, eq. 11)."""
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(5))
    target = torch.randn(5)
    opt = DecoupledDecay(torch.optim.SGD([w], lr=0.1), weight_decay=0.5)
    x = w.detach().clone()
    for _ in range(3):

        def closure():
            opt.zero_grad()
            loss = ((w - target) ** 2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        x = (1 - 0.1 * 0.5) * x - 0.1 * 2 * (x - target)
        assert torch.allclose(w.detach(), x, atol=1e-6)
    with pytest.raises(ValueError, match="weight_decay"):
        DecoupledDecay(torch.optim.SGD([w], lr=0.1), weight_decay=-1.0)
    with pytest.raises(TypeError):
        DecoupledDecay("sgd", weight_decay=0.1)


# ---------------------------------------------------------------- end to end (machinery, not outcome)


def test_tiny_run_writes_a_well_formed_summary(tmp_path):
    seeds = 2
    res = studies.run(
        "weight-decay-vs-l2",
        quick=True,
        out=tmp_path,
        store=False,
        progress=False,
        seeds=seeds,
        steps=10,
        check_steps=3,
        adam_lrs=[1e-3, 3e-3],
        sgd_lrs=[0.01, 0.03],
        decays=[1e-3, 3e-3, 1e-2],
        n_train=200,
        n_val=100,
        tuning_seeds=1,
    )
    summary = json.loads((tmp_path / "summary.json").read_text())
    predicted = json.loads((tmp_path / "predictions.json").read_text())
    assert [p["name"] for p in predicted["predictions"]] == [p.name for p in PREDICTIONS]
    assert [c["name"] for c in summary["claims"]] == [p.name for p in PREDICTIONS]
    for c in summary["claims"]:
        assert c["verdict"] in ("holds", "fails", "inconclusive")
        assert len(c["values"]) == seeds and c["n"] <= seeds and len(c["interval"]) == 2
    assert summary["seeds"] == {"evaluation": [0, 1], "tuning": [1000]}
    names = {c["name"] for c in summary["checks"]}
    assert {
        "adamw_decay_is_lr_times_wd",
        "plain_sgd_l2_is_decoupled_decay",
        "decay_shrinks_the_norm",
    } <= names
    assert all(isinstance(c["passed"], bool) for c in summary["checks"])
    assert summary["anchors"] == []
    assert (tmp_path / "weight_decay_vs_l2.png").exists() and (tmp_path / "weight_decay_vs_l2.svg").exists()
    assert res.verdicts["holds"] + res.verdicts["fails"] + res.verdicts["inconclusive"] == len(PREDICTIONS)
