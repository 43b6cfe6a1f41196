"""Trials: stable cache keys, time-to-target from train()'s clock, failures not cached, resuming a benchmark."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys

import pytest

from descentlab.bench import (
    Algorithm,
    collect,
    get_algorithm,
    get_workload,
    make_spec,
    run_benchmark,
    run_trial,
    time_to_target,
    trial_key,
)
from descentlab.store import Store

WL = {"name": "w", "target": 0.5, "budget": 2.0}
ALG = {"name": "a", "space": {"lr": {"min": 1e-3, "max": 1e-1, "scaling": "log"}}}


def test_key_is_sha256_of_canonical_json():
    payload = {
        "version": "descentlab-bench-1",
        "workload": WL,
        "algorithm": ALG,
        "hparams": {"lr": 0.01},
        "seed": 3,
    }
    expected = hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert trial_key(WL, ALG, {"lr": 0.01}, 3) == expected
    assert (
        trial_key(WL, ALG, {"lr": 0.01}, 3, world_size=1) == expected
    )  # one process: the key as it always was
    two = hashlib.sha256(
        json.dumps({**payload, "world_size": 2}, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    assert trial_key(WL, ALG, {"lr": 0.01}, 3, world_size=2) == two != expected  # data-parallel: its own key
    with pytest.raises(ValueError, match="world_size must be a positive integer, got 0"):
        trial_key(WL, ALG, {"lr": 0.01}, 3, world_size=0)


def test_key_ignores_dict_order_and_tuple_vs_list_but_not_values():
    k = trial_key(WL, ALG, {"lr": 0.01, "betas": (0.9, 0.99)}, 0)
    assert k == trial_key(dict(reversed(WL.items())), ALG, {"betas": [0.9, 0.99], "lr": 0.01}, 0)
    assert k != trial_key(WL, ALG, {"lr": 0.01, "betas": (0.9, 0.99)}, 1)
    assert k != trial_key(WL, ALG, {"lr": 0.02, "betas": (0.9, 0.99)}, 0)
    assert k != trial_key({**WL, "target": 0.6}, ALG, {"lr": 0.01, "betas": (0.9, 0.99)}, 0)


def test_key_stable_across_processes():
    code = (
        "from descentlab.bench import make_spec, get_workload, get_algorithm;"
        "print(make_spec(get_workload('logreg'), get_algorithm('nadamw'), {'lr': 0.01}, 7)['key'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == make_spec(get_workload("logreg"), get_algorithm("nadamw"), {"lr": 0.01}, 7)["key"]


def test_time_to_target_reads_train_time_at_first_hit():
    wl = get_workload("tiny")  # gap <= 1e-2
    hist = {
        "gap": [(0, 0.5), (10, 0.02), (20, 0.009), (30, 0.001)],
        "train_time": [(0, 0.0), (10, 0.1), (20, 0.25), (30, 0.4)],
    }
    assert time_to_target(wl, hist) == 0.25
    assert time_to_target(wl, {"gap": [(0, 0.5)], "train_time": [(0, 0.0)]}) == math.inf


def test_run_trial_stops_at_target():
    spec = make_spec(get_workload("tiny"), get_algorithm("sgd_nesterov"), {"lr": 0.3}, seed=0)
    res = run_trial(spec)
    assert res["status"] == "finished" and res["reached"], res["error"]
    gaps, clock = res["history"]["gap"], dict(res["history"]["train_time"])
    first = next(s for s, v in gaps if v <= 1e-2)
    assert res["time_to_target"] == clock[first]
    assert gaps[-1][0] == first < spec["workload"]["step_hint"]  # stopped at the first hit
    assert 0 < res["time_to_target"] <= res["final"]["train_time"]


def test_divergence_is_a_miss():
    spec = make_spec(get_workload("tiny"), get_algorithm("sgd_nesterov"), {"lr": 1e12}, seed=0)
    res = run_trial(spec)
    assert res["status"] == "diverged" and res["time_to_target"] == math.inf


BROKEN = Algorithm("broken", "adamw", space=[{"lr": 0.01}], default={"lr": 0.01}, fixed={"no_such_hparam": 1})


def test_failures_are_reported_and_not_cached(tmp_path):
    db = tmp_path / "s.db"
    algs = [get_algorithm("sgd_nesterov"), BROKEN]
    first = run_benchmark(algs, ["tiny"], trials=1, studies=1, store=db, progress=False)
    assert first.executed == 2
    failed = [r for r in first.results.values() if r["status"] == "failed"]
    assert len(failed) == 1 and "no_such_hparam" in failed[0]["error"]
    assert first.times()["broken"]["tiny"] == math.inf
    with Store(db) as st:
        statuses = sorted(r["status"] for r in st.list_runs())
    assert statuses == ["failed", "finished"]
    second = run_benchmark(algs, ["tiny"], trials=1, studies=1, store=db, progress=False)
    assert second.executed == 1  # only the failure runs again
    assert collect(second.specs, db).missing() == [
        s for s in second.specs if s["algorithm"]["name"] == "broken"
    ]


CALLS = {"n": 0, "stop_at": None}


def interrupting_trial(spec, threads=None):
    """run_trial, but Ctrl-C arrives on the call numbered CALLS['stop_at']."""
    CALLS["n"] += 1
    if CALLS["n"] == CALLS["stop_at"]:
        raise KeyboardInterrupt
    return run_trial(spec, threads)


def test_interrupted_benchmark_resumes(tmp_path):
    db = tmp_path / "s.db"
    CALLS.update(n=0, stop_at=3)
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(
            ["sgd_nesterov"],
            ["tiny"],
            trials=4,
            studies=1,
            store=db,
            progress=False,
            trial_fn=interrupting_trial,
        )
    with Store(db) as st:
        assert len(st.list_runs()) == 2
    CALLS.update(n=0, stop_at=None)
    res = run_benchmark(
        ["sgd_nesterov"], ["tiny"], trials=4, studies=1, store=db, progress=False, trial_fn=interrupting_trial
    )
    assert CALLS["n"] == 2 and res.executed == 2 and not res.missing()
    again = run_benchmark(["sgd_nesterov"], ["tiny"], trials=4, studies=1, store=db, progress=False)
    assert again.executed == 0
    assert again.times() == res.times()


def test_self_tuning_uses_default_and_1_5x_budget():
    from descentlab.bench import plan

    specs = plan(["adamw"], ["tiny"], tuning="self", scale=2.0)
    assert len(specs) == 3  # AlgoPerf: 3 studies, the median over them
    assert [s["study"] for s in specs] == [0, 1, 2] and [s["seed"] for s in specs] == [0, 1000, 2000]
    for s in specs:
        assert s["hparams"] == dict(get_algorithm("adamw").default)
        assert s["workload"]["budget"] == pytest.approx(get_workload("tiny").budget * 2.0 * 1.5)
        assert s["workload"]["step_hint"] == round(get_workload("tiny").step_hint * 1.5)
    (one,) = plan(["adamw"], ["tiny"], tuning="self", studies=1, scale=2.0)
    assert one["key"] == specs[0]["key"]  # study 0 is the single study of before: cached results stay valid


def test_external_plan_counts_and_seeds():
    from descentlab.bench import plan

    specs = plan(["adamw", "signsgd"], ["tiny", "logreg"], trials=3, studies=2, seed=5)
    assert len(specs) == 2 * 2 * 2 * 3
    assert len({s["key"] for s in specs}) == len(specs)
    assert sorted({s["seed"] for s in specs}) == [5, 6, 7, 1005, 1006, 1007]


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"tuning": "grid"}, "tuning"),
        ({"trials": 0}, "trials"),
        ({"studies": -1}, "studies"),
        ({"scale": 0}, "scale"),
    ],
)
def test_bad_plan_arguments(kw, match):
    from descentlab.bench import plan

    with pytest.raises(ValueError, match=match):
        plan(["adamw"], ["tiny"], **kw)


def test_unknown_names_suggest():
    with pytest.raises(ValueError, match="did you mean 'nadamw'"):
        get_algorithm("nadam_w")
    with pytest.raises(ValueError, match="did you mean 'modular'"):
        get_workload("modulr")
