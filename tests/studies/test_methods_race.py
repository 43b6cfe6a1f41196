"""The `methods-race` study: the race statistics and each claim's decision on hand-made numbers, and one small
end-to-end run that writes well-formed output and trajectories.json (whatever the verdicts)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import descentlab.studies as studies
from descentlab import optim
from descentlab.studies.claims import judge
from descentlab.studies.methods_race import (
    PREDICTIONS,
    _apply_steps,
    censored_steps,
    log_ratio,
    race_key,
    race_score,
    start_point,
)

NEEDED = {"sgd", "adam", "adamw", "adagrad", "rmsprop"}
pytestmark = pytest.mark.skipif(
    not NEEDED <= set(optim.available()), reason=f"optimizers {sorted(NEEDED)} not registered yet"
)
P = {p.name: p for p in PREDICTIONS}


def test_end_to_end_small_and_trajectories_json(tmp_path):
    """Tiny grids and `steps=20` (what `--set steps=20` gives): summary.json is well-formed, trajectories.json holds,
    per function, a contour grid and a path per optimizer and lr from the lecture's start."""
    lrs = {
        "rosenbrock": {"gd": [1e-3, 2e-3], "heavy_ball": [1e-3, 2e-3], "adam": [0.03, 0.1]},
        "quadratic": {"gd": [1e-2, 2e-2], "heavy_ball": [1e-2, 2e-2]},
    }
    studies.run(
        "methods-race",
        quick=True,
        out=tmp_path,
        store=False,
        progress=False,
        lrs=lrs,
        steps=20,
        seeds=2,
        gif=False,
        tuning_seeds=2,
    )
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["config"]["steps"] == 20
    assert [c["name"] for c in summary["claims"]] == [p.name for p in PREDICTIONS]
    for c in summary["claims"]:
        assert c["verdict"] in ("holds", "fails", "inconclusive")
        assert len(c["values"]) == 2 and c["n"] <= 2
    assert summary["seeds"] == {"evaluation": [0, 1], "tuning": [1000, 1001]}
    assert {c["name"] for c in summary["checks"]} == {"noise_floor", "gd_stays_in_a_local_minimum"}
    assert len(summary["numbers"]["rosenbrock"]["gd"]["steps_to_target_per_start"]) == 2
    for stem in ["methods_race", "methods_race_multiminima"]:
        assert (tmp_path / f"{stem}.png").exists() and (tmp_path / f"{stem}.svg").exists()
    data = json.loads((tmp_path / "trajectories.json").read_text())
    rb = data["functions"]["rosenbrock"]
    assert rb["function"] == "rosenbrock"
    z = rb["contours"]["z"]
    assert len(z) == len(rb["contours"]["y"]) and len(z[0]) == len(rb["contours"]["x"])
    path = rb["runs"]["gd"]["0.001"]
    assert len(path) == 21 and path[0] == pytest.approx([-1.2, 1.0])
    # the first GD step written plainly: x1 = x0 - lr grad f(x0), grad of (1-x)^2 + 100 (y-x^2)^2
    x, y = -1.2, 1.0
    gx, gy = -2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)
    assert path[1] == pytest.approx([x - 1e-3 * gx, y - 1e-3 * gy], abs=1e-4)


def test_race_key_ranks_first_to_target_then_lowest_final():
    """Hand-made loss curves (index = step): reaching the target earlier wins; among runs that never reach it the
    lower final loss wins; a diverged run (NaN) places last."""
    fast = race_key(np.array([4.0, 1.0, 0.05, 0.2]), 0.1)  # touches 0.1 at step 2, then bounces up
    slow = race_key(np.array([4.0, 2.0, 0.5, 0.09]), 0.1)
    never_low = race_key(np.array([4.0, 2.0, 0.3]), 0.1)
    never_high = race_key(np.array([4.0, 3.0, 0.4]), 0.1)
    diverged = race_key(np.array([4.0, 50.0, np.nan]), 0.1)
    assert fast == (2.0, 0.2) and slow == (3.0, 0.09)
    assert never_low == (math.inf, 0.3) and diverged == (math.inf, math.inf)
    assert sorted([diverged, never_high, slow, never_low, fast]) == [
        fast,
        slow,
        never_low,
        never_high,
        diverged,
    ]


def test_race_score_and_censored_steps():
    assert race_score(np.array([4.0, 1.0, 0.05]), 0.1, 2) == 2.0
    assert race_score(np.array([4.0, 1.0, 0.3]), 0.1, 2) == pytest.approx(3.3)  # never: T + 1 + final
    assert race_score(np.array([4.0, 50.0]), 0.1, 2) == math.inf  # diverged before the end
    assert censored_steps(np.array([4.0, 1.0, 0.05]), 0.1, 2) == 2.0
    assert censored_steps(np.array([4.0, 1.0, 0.3]), 0.1, 2) == 3.0
    assert log_ratio(100.0, 10.0) == pytest.approx(1.0) and math.isnan(log_ratio(0.0, 1.0))


def test_start_points():
    assert start_point("rosenbrock", 1000, 0.1) == (-1.2, 1.0)
    a, b = start_point("rosenbrock", 0, 0.1), start_point("rosenbrock", 1, 0.1)
    assert a != b and a == start_point("rosenbrock", 0, 0.1)
    assert abs(a[0] + 1.2) < 0.5 and abs(a[1] - 1.0) < 0.5
    assert start_point("quadratic", 0, 0.0) == (1.0, 1.0)


def test_steps_overrides_every_run_length():
    cfg = {
        "steps": 300,
        "rosenbrock_steps": 1000,
        "quadratic_steps": 200,
        "multiminima_steps": 1,
        "polish_steps": 1,
    }
    assert {v for k, v in _apply_steps(cfg).items() if k != "steps"} == {300}
    assert _apply_steps({**cfg, "steps": None})["rosenbrock_steps"] == 1000
    with pytest.raises(ValueError, match="steps"):
        _apply_steps({**cfg, "steps": 0})


@pytest.mark.parametrize("name", [p.name for p in PREDICTIONS])
def test_each_prediction_can_hold_fail_and_be_inconclusive(name):
    assert judge(P[name], [0.5, 0.6, 0.55])["verdict"] == "holds"
    assert judge(P[name], [-0.5, -0.6, -0.55])["verdict"] == "fails"
    assert judge(P[name], [0.5, -0.4, 0.0])["verdict"] == "inconclusive"
    # both never reach the target: censored at T + 1 each, log-ratio 0 on every start -> not "holds"
    assert judge(P[name], [0.0, 0.0, 0.0])["verdict"] != "holds"
