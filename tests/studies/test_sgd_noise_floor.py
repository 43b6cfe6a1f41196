"""sgd-noise-floor: each claim's statistic and decision on hand-made numbers, and one small end-to-end run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import descentlab.studies as studies
from descentlab import tasks
from descentlab.studies.claims import judge
from descentlab.studies.sgd_noise_floor import (
    PREDICTIONS,
    bound_ratio,
    gd_decades,
    hessian_top_eigenvalue,
    loglog_slope,
    plateau,
)

P = {p.name: p for p in PREDICTIONS}


def test_loglog_slope_and_plateau():
    a = np.array([0.2, 0.1, 0.05])
    assert loglog_slope(a, 3 * a) == pytest.approx(1.0)
    assert loglog_slope(a, a**2) == pytest.approx(2.0)
    assert math.isnan(loglog_slope([0.1], [1.0]))
    ks = np.arange(0, 100, 10)
    gap = np.where(ks >= 50, 0.5, 9.0)
    assert plateau(ks, gap, 0.5) == pytest.approx(0.5)


def test_bound_ratio_compares_a_window_with_the_bound_at_its_start():
    ks = np.arange(0, 50, 1.0)
    alpha, mu, L, s2 = 0.1, 1.0, 1.0, 4.0
    floor = L * s2 * alpha / (4 * mu)  # 0.1
    bound = (1 - 2 * alpha * mu) ** ks * 1.0 + floor
    half = 0.5 * bound
    half[0] = 1.0  # the bound starts from the curve's own first gap: ratio 1 / (1 + floor) there
    assert bound_ratio(ks, half, alpha, mu, L, s2, 1) == pytest.approx(1 / 1.1)
    over = np.full_like(ks, 2 * floor)
    over[0] = 1.0
    assert bound_ratio(ks, over, alpha, mu, L, s2, 1) == pytest.approx(2.0, rel=1e-3)


def test_gd_decades():
    assert gd_decades([1.0, 1e-3, 1e-8, 1e-9, 1e-9]) == pytest.approx(-9.0)
    assert gd_decades([0.1, 0.2, 0.5, 0.4]) == pytest.approx(math.log10(4.0))
    # a run that blew up is judged on its last finite values
    assert gd_decades([0.1, 10.0, 1e6, math.inf]) > 6


def test_hessian_top_eigenvalue_is_L_at_zero_and_below_it_at_the_solution():
    import torch

    task = tasks.get("logreg", m=40, n=3)
    assert hessian_top_eigenvalue(task, torch.zeros(3)) == pytest.approx(task.L, rel=1e-9)
    assert hessian_top_eigenvalue(task) <= task.L


@pytest.mark.parametrize(
    "name, holds, fails, inconclusive",
    [
        ("bound_holds", [0.6, 0.62, 0.65], [1.3, 1.4, 1.35], [0.8, 1.2, 1.0]),
        ("plateau_proportional_to_alpha", [0.1, 0.15, 0.12], [0.9, 1.0, 0.95], [0.1, 0.5, 0.3]),
        ("decreasing_step_converges", [-1.0, -1.1, -0.9], [-0.1, 0.0, -0.05], [-1.0, 0.1, -0.4]),
        ("gd_unstable_above_threshold", [0.5, 0.7, 0.6], [-13.0, -14.0, -13.5], [-13.0, 0.5, -6.0]),
    ],
)
def test_each_prediction_can_hold_fail_and_be_inconclusive(name, holds, fails, inconclusive):
    assert judge(P[name], holds)["verdict"] == "holds"
    assert judge(P[name], fails)["verdict"] == "fails"
    assert judge(P[name], inconclusive)["verdict"] == "inconclusive"


def test_end_to_end_small(tmp_path):
    res = studies.run(
        "sgd-noise-floor",
        quick=True,
        out=tmp_path,
        store=False,
        progress=False,
        seeds=2,
        m=50,
        steps=60,
        alphas=[0.2, 0.1],
        window_steps=20,
        gd_steps=30,
    )
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [c["name"] for c in summary["claims"]] == [p.name for p in PREDICTIONS]
    for c in summary["claims"]:
        assert c["verdict"] in ("holds", "fails", "inconclusive")
        assert len(c["values"]) == 2 and c["n"] <= 2 and len(c["interval"]) == 2
    assert summary["seeds"]["evaluation"] == [0, 1]
    assert summary["checks"] and all(
        {"name", "check", "passed", "evidence"} <= set(c) for c in summary["checks"]
    )
    assert json.loads((tmp_path / "predictions.json").read_text())["predictions"][0]["name"] == "bound_holds"
    assert (tmp_path / "sgd_noise_floor.png").exists() and (tmp_path / "sgd_noise_floor.svg").exists()
    n = res.summary["numbers"]
    assert n["bound_plateau"]["0.1"] == pytest.approx(n["L"] * n["sigma2"] * 0.1 / (4 * n["mu"]))


def test_unknown_setting_is_refused(tmp_path):
    with pytest.raises(ValueError, match="has no setting 'alhpas'"):
        studies.run("sgd-noise-floor", quick=True, out=tmp_path, store=tmp_path / "s.db", alhpas=[0.1])
    with pytest.raises(ValueError, match="did you mean 'sgd-noise-floor'"):
        studies.run("sgd-noise-flor")


def test_seeds_train_as_populations_in_the_store(tmp_path):
    from descentlab.store import Store

    with Store(tmp_path / "s.db") as st:
        res = studies.run("sgd-noise-floor", quick=True, out=tmp_path, store=st, progress=False, seeds=2, m=50,
                          steps=20, alphas=[0.2, 0.1], window_steps=10, gd_steps=10)  # fmt: skip
        pops = [st.load_run(r).config.get("population") for r in res.summary["runs"]]
    assert sum(p is not None for p in pops) == len(pops) - 1  # all but the one divergent GD run
    assert {p["size"] for p in pops if p} == {2}
    assert studies.get("sgd-noise-floor").full["seed_blocks"] == [10, 20]
