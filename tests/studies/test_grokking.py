"""The `grokking` study: each claim's statistic and decision on hand-made values (holds, fails, inconclusive), the
arms' optimizers, and one small end-to-end run checking that summary.json is well-formed (never a verdict)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

import descentlab.studies as studies
from descentlab.optim import GrokfastEMA
from descentlab.studies.claims import Measurement, judge
from descentlab.studies.grokking import (
    PREDICTIONS,
    _Milestones,
    arm_factory,
    delay_ratio,
    first_step_at,
    sharpness_change,
    speedup,
    tuning_score,
    weight_norm,
)

P = {p.name: p for p in PREDICTIONS}
CFG = {"weight_decay": 1.0, "grokfast_l2": 5e-3, "grokfast_alpha": 0.98, "grokfast_lamb": 2.0}


def test_first_step_and_delay() -> None:
    hist = [(0, 0.1), (50, 0.5), (100, 0.995), (150, 0.98)]
    assert first_step_at(hist, 0.99) == 100 and first_step_at(hist, 0.999) is None
    assert delay_ratio(300, 1200) == 4.0
    assert math.isnan(delay_ratio(300, None)) and math.isnan(delay_ratio(None, 1200))


def test_delay_claim_holds_fails_inconclusive() -> None:
    holds = [delay_ratio(t, v) for t, v in ((300, 1500), (350, 1400), (300, 1350))]  # 5.0, 4.0, 4.5
    assert judge(P["delay"], holds)["verdict"] == "holds"
    fails = [delay_ratio(t, v) for t, v in ((400, 600), (400, 650), (450, 650))]  # ~1.5
    assert judge(P["delay"], fails)["verdict"] == "fails"
    assert (
        judge(P["delay"], [delay_ratio(300, 1500), delay_ratio(400, 600), delay_ratio(300, 900)])["verdict"]
        == "inconclusive"
    )
    never = judge(P["delay"], [5.0, 4.0, delay_ratio(300, None)])  # a seed that never generalized
    assert never["verdict"] == "inconclusive" and never["n"] == 2


def test_speedup_censoring() -> None:
    assert speedup(1000, 250, 3000) == 4.0
    assert speedup(None, 500, 3000) == 6.0  # baseline never reached: a lower bound
    assert speedup(600, None, 3000) == 0.2  # the fast method never reached: an upper bound
    assert math.isnan(speedup(None, None, 3000))


@pytest.mark.parametrize("name", ["grokfast-vs-adamw", "filter-vs-l2-control"])
def test_speedup_claims_holds_fails_inconclusive(name: str) -> None:
    pred = P[name]
    assert (
        judge(pred, [speedup(b, g, 3000) for b, g in ((2000, 800), (1800, 900), (None, 1000))])["verdict"]
        == "holds"
    )
    assert (
        judge(pred, [speedup(b, g, 3000) for b, g in ((700, 1500), (650, 1400), (600, 1350))])["verdict"]
        == "fails"
    )
    # v2 judges the ratio on the log scale: a censored seed's bound 0.2 beside 0.47, 0.46 no longer decides
    wide = [speedup(b, g, 3000) for b, g in ((700, 1500), (650, 1400), (600, None))]
    assert judge(pred, wide)["verdict"] == "inconclusive"
    # censoring declared: a seed where neither arm reached the target counts as ratio 1 (budget / budget)
    both_never = judge(pred, Measurement([1.05, 1.1, speedup(None, None, 3000)], budget=1.0))
    assert both_never["n_censored"] == 1 and both_never["n"] == 3
    mixed = [speedup(b, g, 3000) for b, g in ((1000, 800), (900, 1100), (1000, 950))]
    assert judge(pred, mixed)["verdict"] == "inconclusive"


def test_wider_minimum_claim_holds_fails_inconclusive() -> None:
    assert sharpness_change(10.0, 1.0) == pytest.approx(-1.0)
    assert math.isnan(sharpness_change(None, 1.0)) and math.isnan(sharpness_change(2.0, -1.0))
    pred = P["wider-minimum"]
    assert judge(pred, [sharpness_change(a, b) for a, b in ((20, 5), (30, 6), (25, 4))])["verdict"] == "holds"
    assert judge(pred, [sharpness_change(a, b) for a, b in ((5, 20), (6, 30), (4, 25))])["verdict"] == "fails"
    assert (
        judge(pred, [sharpness_change(a, b) for a, b in ((5, 20), (30, 6), (4, 5))])["verdict"]
        == "inconclusive"
    )


def test_tuning_score_ranks_censored_runs_last() -> None:
    assert tuning_score(900, 0.99, 1000) == 900.0
    assert tuning_score(None, 0.9, 1000) == pytest.approx(1100.0)
    assert tuning_score(None, 0.9, 1000) < tuning_score(None, 0.2, 1000)


def test_milestones_stop_and_give_up() -> None:
    """train() asks stop_when after the evaluations at steps 50, 100, ...: the run stops at the validation level, or
    (a tuning run that can no longer win) once it is past give_up_after steps."""
    watch = _Milestones(level=0.99, stop_at=0.95, every=50, give_up_after=100)
    assert watch({"accuracy": 0.2, "train_accuracy": 1.0}) is False  # step 50
    assert watch({"accuracy": 0.3, "train_accuracy": 1.0}) is False  # step 100
    assert watch({"accuracy": 0.4, "train_accuracy": 1.0}) is True  # step 150 > 100: give up
    watch = _Milestones(level=0.99, stop_at=0.95, every=50)
    assert [watch({"accuracy": a}) for a in (0.5, 0.9, 0.96)] == [False, False, True]
    assert watch.at == {}  # no model to measure: nothing recorded, nothing raised


def _quadratic(seed: int) -> tuple[nn.Linear, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    model = nn.Linear(4, 3)
    return model, torch.randn(16, 4, generator=g), torch.randn(16, 3, generator=g)


def test_arms_are_the_declared_optimizers() -> None:
    model, _, _ = _quadratic(0)
    adamw = arm_factory("adamw", 2e-3, CFG)(model)
    assert isinstance(adamw, torch.optim.AdamW) and adamw.defaults["weight_decay"] == 1.0
    gf = arm_factory("grokfast", 2e-3, CFG)(model)
    assert isinstance(gf, GrokfastEMA) and type(gf.base_optimizer) is torch.optim.Adam
    assert (gf.alpha, gf.lamb, gf.base_optimizer.defaults["weight_decay"]) == (0.98, 2.0, 5e-3)
    ctl = arm_factory("adam_l2", 2e-3, CFG)(model)  # the control: the same Adam + L2, no filter
    assert type(ctl) is torch.optim.Adam and ctl.defaults["weight_decay"] == 5e-3
    assert ctl.defaults["betas"] == gf.base_optimizer.defaults["betas"] == (0.9, 0.98)
    assert arm_factory("adam", 1e-3, CFG)(model).defaults["weight_decay"] == 0.0
    with pytest.raises(ValueError, match="unknown arm"):
        arm_factory("sgd", 1e-3, CFG)


def test_weight_norm() -> None:
    model = nn.Linear(3, 2)
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert weight_norm(model) == pytest.approx(float(flat.norm()), rel=1e-6)


def test_grokking_end_to_end_small(tmp_path) -> None:
    """A tiny setting: every declared prediction is judged with n == seeds, checks and the anchor are shaped right,
    the figure exists. The verdicts themselves are not asserted."""
    res = studies.run(
        "grokking",
        quick=True,
        out=tmp_path,
        store=tmp_path / "s.db",
        progress=False,
        seeds=2,
        p=11,
        width=16,
        steps=60,
        eval_every=20,
        lr_grid=[1e-3, 3e-3],
        tune_extend=0,
        hessian_points=32,
    )
    summary = json.loads((tmp_path / "summary.json").read_text())
    predictions = json.loads((tmp_path / "predictions.json").read_text())["predictions"]
    assert [c["name"] for c in summary["claims"]] == [p["name"] for p in predictions] == list(P)
    for c in summary["claims"]:
        assert c["verdict"] in ("holds", "fails", "inconclusive")
        assert len(c["values"]) == 2 and c["n"] <= 2 and len(c["interval"]) == 2 and c["evidence"]
    assert summary["seeds"]["evaluation"] == [0, 1] and summary["seeds"]["tuning"] == [1000]
    assert {c["name"] for c in summary["checks"]} >= {"memorised-adamw", "norm-shrinks-under-decay"}
    assert all(isinstance(c["passed"], bool) for c in summary["checks"])
    (anchor,) = summary["anchors"]
    assert anchor["published"] == 50.0 and anchor["verdict"] == "direction and size only"  # another setting
    arms = summary["numbers"]["arms"]
    assert set(arms) == {"adamw", "grokfast", "adam_l2"}
    assert all(len(a["seeds"]) == 2 and a["tuning"]["seeds"] == [1000] for a in arms.values())
    assert (tmp_path / "grokking.png").exists() and (tmp_path / "grokking.svg").exists()
    assert res.verdicts["holds"] + res.verdicts["fails"] + res.verdicts["inconclusive"] == len(P)


def test_study_without_a_store(tmp_path, monkeypatch) -> None:
    """store=False trains and summarises without writing any store; a wrong type is a TypeError naming it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DESCENTLAB_STORE", str(tmp_path / "default.db"))
    res = studies.run(
        "grokking",
        quick=True,
        out=tmp_path / "o",
        store=False,
        progress=False,
        seeds=1,
        p=11,
        width=16,
        steps=20,
        eval_every=10,
        lr_grid=[1e-3, 3e-3],
        tune_extend=0,
        hessian_points=0,
    )
    assert res.summary["numbers"]["arms"]["adamw"]["seeds"] and (tmp_path / "o" / "summary.json").is_file()
    assert not list(tmp_path.rglob("*.db"))
    with pytest.raises(TypeError, match="store must be a path, a Store, None or False, got int 3"):
        studies.run("grokking", quick=True, out=tmp_path / "o", store=3, progress=False)
