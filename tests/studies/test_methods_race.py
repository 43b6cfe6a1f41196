"""The `methods-race` study: quick variant runs, writes its figures and summary.json, and every claim holds."""

from __future__ import annotations

import json

import pytest

import descentlab.studies as studies
from descentlab import optim

NEEDED = {
    "sgd",
    "adam",
    "adamw",
    "adagrad",
    "rmsprop",
}
pytestmark = pytest.mark.skipif(
    not NEEDED <= set(optim.available()), reason=f"optimizers {sorted(NEEDED)} not registered yet"
)


def test_methods_race_quick(tmp_path):
    res = studies.run("methods-race", quick=True, out=tmp_path, store=tmp_path / "s.db", progress=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["study"] == "methods-race"
    assert {"config", "numbers", "claims", "seconds"} <= set(summary)
    for stem in ["methods_race", "methods_race_multiminima"]:
        assert (tmp_path / f"{stem}.png").exists() and (tmp_path / f"{stem}.svg").exists()
    assert summary["claims"], "the study checks at least one claim"
    failed = [c for c in res.claims if not c["holds"]]
    assert not failed, failed


def test_trajectories_json_shape(tmp_path):
    """trajectories.json holds, per function, a contour grid and a path per optimizer and lr starting at the start."""
    lrs = {
        "rosenbrock": {"gd": [1e-3], "heavy_ball": [1e-3]},
        "quadratic": {"gd": [1e-2], "heavy_ball": [1e-2]},
    }
    studies.run(
        "methods-race",
        quick=True,
        out=tmp_path,
        store=tmp_path / "s.db",
        progress=False,
        lrs=lrs,
        rosenbrock_steps=20,
        quadratic_steps=20,
        multiminima_steps=20,
        polish_steps=20,
        seeds=1,
        gif=False,
    )
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
    import math

    import numpy as np

    from descentlab.studies.methods_race import race_key

    fast = race_key(np.array([4.0, 1.0, 0.05, 0.2]), 0.1)  # touches 0.1 at step 2, then bounces up
    slow = race_key(np.array([4.0, 2.0, 0.5, 0.09]), 0.1)
    never_low = race_key(np.array([4.0, 2.0, 0.3]), 0.1)
    never_high = race_key(np.array([4.0, 3.0, 0.4]), 0.1)
    diverged = race_key(np.array([4.0, 50.0, np.nan]), 0.1)
    assert fast == (2.0, 0.2) and slow == (3.0, 0.09)
    assert never_low == (math.inf, 0.3) and diverged == (math.inf, math.inf)
    assert sorted([diverged, never_high, slow, never_low, fast]) == [fast, slow, never_low, never_high, diverged]
