"""lr-schedules: the lr tables and statistics, each claim's decision on hand-made values (holds, fails,
inconclusive), and one tiny end-to-end run with a well-formed summary (never that a claim holds)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import descentlab.studies as studies
from descentlab.studies.claims import Measurement, censored_log_ratios, judge
from descentlab.studies.lr_schedules import CLAIMED, PREDICTIONS, log_ratio, lr_multipliers

PRED = {p.name: p for p in PREDICTIONS}


def test_lr_multipliers_follow_the_schedules():
    assert np.all(lr_multipliers("constant", 30) == 1.0)
    step = lr_multipliers("step", 30)  # step_size T // 3, gamma 0.1
    assert (
        step[9] == pytest.approx(1.0) and step[10] == pytest.approx(0.1) and step[29] == pytest.approx(0.01)
    )
    cos = lr_multipliers("cosine", 40)
    assert cos[0] == pytest.approx(1.0)
    assert cos[20] == pytest.approx(0.5 * (1 + math.cos(math.pi * 20 / 40)))
    assert np.all(np.diff(cos) <= 1e-12)
    assert lr_multipliers("exponential", 50)[-1] == pytest.approx(0.01 ** (49 / 50))


def test_log_ratio():
    assert log_ratio([0.2, 1.0], [0.1, 1.0]) == pytest.approx([math.log(2), 0.0])
    out = log_ratio([0.2, float("inf")], [0.0, 0.1])
    assert all(math.isnan(v) for v in out)


@pytest.mark.parametrize("name", [f"{n}_beats_best_constant" for n in CLAIMED])
def test_beats_best_constant_decisions(name):
    p = PRED[name]
    assert judge(p, log_ratio([0.08, 0.07, 0.09], [0.008, 0.0075, 0.0085]))["verdict"] == "holds"
    # exactly ln 10 on every seed has no spread: the exact sign test cannot decide on three seeds (p = 1/8)
    assert judge(p, log_ratio([0.08, 0.07, 0.09], [0.008, 0.007, 0.009]))["verdict"] == "inconclusive"
    # v2: a diverged schedule counts at the chance loss (censored), so it can make the claim fail
    values, at_chance = censored_log_ratios(
        [0.08, 0.07, 0.09], [math.nan, math.inf, math.nan], at=math.log(10)
    )
    assert judge(p, values)["verdict"] == "inconclusive"  # undeclared handling would leave it open
    assert judge(p, Measurement(values, budget=at_chance))["verdict"] == "fails"
    assert judge(p, log_ratio([0.08, 0.07, 0.09], [0.16, 0.15, 0.17]))["verdict"] == "fails"
    assert judge(p, log_ratio([0.08, 0.07, 0.09], [0.06, 0.09, 0.08]))["verdict"] == "inconclusive"
    forced = judge(
        p, Measurement([2.0, 2.1, 2.2], inconclusive="constant lr 1 chosen ... (at the grid's edge)")
    )
    assert forced["verdict"] == "inconclusive"


def test_large_then_decay_decision():
    p = PRED["large_then_decay_beats_small_constant"]
    assert judge(p, [7.9, 9.5, 8.6])["verdict"] == "holds"
    assert judge(p, [-3.0, -2.5, -4.0])["verdict"] == "fails"
    assert judge(p, [3.0, -2.5, 1.0])["verdict"] == "inconclusive"


def test_tiny_run_writes_a_well_formed_summary(tmp_path):
    seeds = 2
    res = studies.run(
        "lr-schedules",
        quick=True,
        out=tmp_path,
        store=False,
        progress=False,
        seeds=seeds,
        steps=30,
        width=16,
        eval_every=10,
        lr_grid=[0.03, 0.1, 0.3],
        tuning_seeds=1,
    )
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [c["name"] for c in summary["claims"]] == [p.name for p in PREDICTIONS]
    for c in summary["claims"]:
        assert c["verdict"] in ("holds", "fails", "inconclusive")
        assert len(c["values"]) == seeds and c["n"] <= seeds
    assert summary["seeds"] == {"evaluation": [0, 1], "tuning": [1000]}
    assert [c["name"] for c in summary["checks"]] == ["decaying_schedules_end_low"]
    tuning = summary["numbers"]["tuning"]
    assert set(tuning) == set(summary["config"]["schedules"])
    assert all({"value", "scores", "bracketed"} <= set(t) for t in tuning.values())
    assert (tmp_path / "lr_schedules.png").exists() and (tmp_path / "lr_schedules.svg").exists()
    assert sum(res.verdicts.values()) == len(PREDICTIONS)


def test_claimed_schedules_are_required(tmp_path):
    with pytest.raises(ValueError, match="need the schedules"):
        studies.run(
            "lr-schedules",
            quick=True,
            out=tmp_path,
            store=False,
            progress=False,
            schedules=["constant", "step"],
        )
