"""The `lookahead` study: its statistics and the verdicts of its declared predictions on hand-made numbers, and one
small end-to-end run whose summary.json is well-formed (whatever the verdicts)."""

from __future__ import annotations

import json
import math

import pytest

import descentlab.studies as studies
from descentlab.studies.claims import VERDICTS, judge
from descentlab.studies.lookahead_study import (
    CHANCE,
    CONTROL_BAND,
    PREDICTIONS,
    held_out_accuracy,
    robustness_gain,
    sensitivity,
)

P = {p.name: p for p in PREDICTIONS}


def test_sensitivity_and_gain_by_hand():
    plain = [0.49, 0.58, 0.64, CHANCE]  # diverges at the largest lr
    look = [0.36, 0.53, 0.62, 0.62]
    assert sensitivity(plain) == pytest.approx(0.54)
    assert sensitivity(look) == pytest.approx(0.26)
    assert robustness_gain(plain, look) == pytest.approx(0.28)
    assert robustness_gain([0.5, 0.5], [0.3, 0.6]) == pytest.approx(-0.3)  # Lookahead more sensitive
    with pytest.raises(ValueError, match="same lr grid"):
        robustness_gain([0.5], [0.5, 0.6])
    with pytest.raises(ValueError, match="at least one"):
        sensitivity([])


def test_accuracy_of_a_diverged_run_is_chance():
    class R:
        status = "finished"
        final = {"accuracy": 0.61}

    assert held_out_accuracy(R()) == 0.61
    R.final = {"accuracy": math.nan}
    assert held_out_accuracy(R()) == CHANCE
    R.status, R.final = "diverged", {"accuracy": 0.5}
    assert held_out_accuracy(R()) == CHANCE


@pytest.mark.parametrize("base", ["sgd", "adam"])
def test_robustness_prediction_holds_fails_inconclusive(base):
    p = P[f"robust_{base}"]
    assert judge(p, [0.30, 0.25, 0.28])["verdict"] == "holds"
    assert judge(p, [-0.10, -0.08, -0.12])["verdict"] == "fails"  # Lookahead varies more over the grid
    assert judge(p, [0.04, -0.085, 0.275])["verdict"] == "inconclusive"


@pytest.mark.parametrize("base", ["sgd", "adam"])
def test_control_is_one_equivalence_prediction(base):
    control = P[f"control_{base}"]
    assert control.direction == "=" and control.threshold == 0.0 and control.margin == CONTROL_BAND
    same = [0.0, 0.005, -0.003, 0.002]
    assert judge(control, same)["verdict"] == "holds"
    lags = [-0.06, -0.055, -0.065]  # Lookahead at lr clearly below the base at alpha*lr: an effect, not none
    assert judge(control, lags)["verdict"] == "fails"
    wide = [0.03, -0.04, 0.0]  # too noisy to tell whether the gap is inside the band
    assert judge(control, wide)["verdict"] == "inconclusive"


def test_base_runs_at_alpha_times_lookaheads_grid(tmp_path):
    from descentlab.store import Store

    with Store(tmp_path / "s.db") as st:
        res = studies.run("lookahead", quick=True, out=tmp_path, store=st, progress=False, seeds=2, steps=10,
                          eval_every=10, sgd_lrs=[0.3, 3.0], adam_lrs=[0.01, 0.1], width=8)  # fmt: skip
        lrs = {}
        for rid in res.summary["runs"]:
            cfg = (
                st.run_header(rid)["config"]
                if "config" in (st.run_header(rid) or {})
                else st.load_run(rid).config
            )
            lrs.setdefault(cfg["optimizer"] if cfg["optimizer"] != "lookahead" else f"la-{cfg['hparams']['base']}",
                           set()).add(round(cfg["lr"], 12))  # fmt: skip
    assert lrs["la-sgd"] == {0.3, 3.0, 0.03} and lrs["sgd"] == {0.15, 1.5, 0.015}
    assert lrs["la-adam"] == {0.01, 0.1, 0.001} and lrs["adam"] == {0.005, 0.05, 0.0005}
    assert res.summary["numbers"]["base_lrs"]["sgd"] == [0.15, 1.5]


def test_small_setting_runs_end_to_end(tmp_path):
    studies.run("lookahead", quick=True, out=tmp_path, store=False, progress=False, seeds=2, steps=20,
                eval_every=10, sgd_lrs=[0.3, 3.0], adam_lrs=[0.01, 0.1], width=16)  # fmt: skip
    summary = json.loads((tmp_path / "summary.json").read_text())
    declared = json.loads((tmp_path / "predictions.json").read_text())["predictions"]
    assert [c["name"] for c in summary["claims"]] == [p["name"] for p in declared] == list(P)
    for c in summary["claims"]:
        assert c["verdict"] in VERDICTS
        assert len(c["values"]) == 2 and c["n"] == 2, c
        assert len(c["interval"]) == 2 and c["evidence"]
    assert summary["seeds"]["evaluation"] == [0, 1]
    acc = summary["numbers"]["final_test_accuracy"]
    assert set(acc) == {"sgd", "lookahead(sgd)", "adam", "lookahead(adam)"}
    assert all(len(row) == 2 for rows in acc.values() for row in rows)
    assert summary["checks"] == [] and summary["anchors"] == []
    assert (tmp_path / "lookahead.png").exists() and (tmp_path / "lookahead.svg").exists()
