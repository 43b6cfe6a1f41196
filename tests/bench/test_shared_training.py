"""One training, several evaluations: nadamw and its LAWA/EMA entrants on one point and seed share a training
(``trial.shared_trainings``); each trial's result is the one it gets when it runs alone (metrics, steps to target,
status), the store holds all of them, and a side trial's clock stops at its own budget."""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import pytest

from descentlab.bench import get_algorithm, get_workload, make_spec, run_benchmark, run_trial
from descentlab.bench.runner import plan
from descentlab.bench.trial import _cut, shared_trainings, steps_to_target

TRIO = ["nadamw", "nadamw_last5", "nadamw_snapema"]


def _plan(algs=TRIO, trials=2, studies=1, workload="tiny"):
    return plan(algs, [workload], trials=trials, studies=studies)


def test_trials_that_differ_only_in_an_averaging_hook_are_grouped_by_point_and_seed():
    specs = _plan(trials=2, studies=2)
    items = shared_trainings(specs)
    groups = [it for it in items if "group" in it]
    assert len(specs) == 12 and len(items) == len(groups) == 4
    for g in groups:
        members = g["group"]
        assert sorted(m["algorithm"]["name"] for m in members) == sorted(TRIO)
        assert len({(m["seed"], str(m["hparams"])) for m in members}) == 1
    assert {m["key"] for g in groups for m in g["group"]} == {s["key"] for s in specs}
    # nothing to share: another base, a lone hook, two raw trainings of the same run, a data-parallel trial
    alone = _plan(["adamw", "sgd_nesterov"])
    assert shared_trainings(alone) == alone
    last5 = _plan(["nadamw_last5"])
    assert shared_trainings(last5) == last5
    twice = specs[:1] + [dict(specs[0], key="other")]
    assert shared_trainings(twice) == twice
    ddp = [dict(s, world_size=2) for s in _plan()]
    assert shared_trainings(ddp) == ddp


@pytest.mark.parametrize("workload", ["tiny", "tiny_steps"])
def test_each_trial_of_a_shared_training_is_the_trial_run_alone(workload):
    """Same evaluated metrics, same steps to target and status as three separate trials (the clock differs only by
    timing noise: checked in benchmarks/shared_training.py)."""
    wl = get_workload(workload)
    (item,) = [it for it in shared_trainings(_plan(trials=1, workload=workload)) if "group" in it]
    shared = run_trial(item)
    assert [r["key"] for r in shared] == [s["key"] for s in item["group"]]
    for res, spec in zip(shared, item["group"], strict=True):
        alone = run_trial(spec)
        assert res["status"] == alone["status"]
        assert res["history"][wl.metric] == alone["history"][wl.metric]
        assert steps_to_target(wl, res["history"]) == steps_to_target(wl, alone["history"])
        assert res["final"]["step"] == alone["final"]["step"]
        assert res["config"]["shared_training"]["keys"] == [s["key"] for s in item["group"]]
        if wl.track == "steps":
            assert res["time_to_target"] == alone["time_to_target"]
        else:
            assert res["reached"] == alone["reached"]


def test_a_benchmark_stores_every_trial_of_a_shared_training_and_reuses_them(tmp_path):
    store = tmp_path / "b.db"
    first = run_benchmark(TRIO, ["tiny"], trials=2, studies=1, store=store, progress=False, scale=1.0)
    assert first.executed == 6 and not first.missing()
    again = run_benchmark(TRIO, ["tiny"], trials=2, studies=1, store=store, progress=False, scale=1.0)
    assert again.executed == 0
    assert again.trial_times() == first.trial_times()


def _fake_run(times, seconds, metric_values, status="finished", final_time=None):
    steps = [10 * (i + 1) for i in range(len(times))]
    history = {
        "train_time": list(zip(steps, times)),
        "accuracy": list(zip(steps, [0.0] * len(steps))),
        "accuracy@s": list(zip(steps, metric_values)),
        "averaging_seconds@s": list(zip(steps, seconds)),
    }
    final = {"train_time": times[-1] if final_time is None else final_time}
    return SimpleNamespace(history=history, final=final, status=status, config={}, note="")


def test_a_side_trial_stops_at_its_own_budget():
    """Budget 1 s: the raw clock reads 0.9 / 0.99 / 1.02 at steps 10 / 20 / 30 and the side's snapshots took 0.05 s
    by step 20, so the side's clock passes the budget at step 20, its last evaluation: a hit at step 30 is a miss
    for it (a lone side trial would have stopped at step 20), one at step 20 counts."""
    wl = dataclasses.replace(
        get_workload("tiny"), budget=1.0, metric="accuracy", target=0.5, higher_is_better=True
    )
    spec = make_spec(wl, get_algorithm("nadamw_last5"), {"lr": 0.01}, seed=0)
    late = _fake_run([0.9, 0.99, 1.02], [0.01, 0.05, 0.06], [0.1, 0.2, 0.9])
    res = _cut(spec, "s", late, wl, 1, 0.0, [spec["key"]])
    assert not res["reached"] and math.isinf(res["time_to_target"])
    assert res["final"]["step"] == 20 and res["final"]["train_time"] == pytest.approx(1.04)
    early = _fake_run([0.9, 0.99, 1.02], [0.01, 0.05, 0.06], [0.1, 0.9, 0.9])
    res = _cut(spec, "s", early, wl, 1, 0.0, [spec["key"]])
    assert res["reached"] and res["time_to_target"] == pytest.approx(1.04)
    # the raw weights' own trial: its clock leaves the sides' snapshots out
    raw = _cut(spec, "", _fake_run([0.9, 0.99, 1.02], [0.0] * 3, [0.0] * 3), wl, 1, 0.0, [spec["key"]])
    assert raw["final"]["step"] == 30 and raw["final"]["train_time"] == pytest.approx(1.02)
