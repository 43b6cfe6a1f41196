"""The fewest-steps track (issue 19): steps to target as the metric, one track per leaderboard, reports in steps."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from descentlab.bench import (
    Workload,
    available_workloads,
    get_algorithm,
    get_workload,
    make_spec,
    plan,
    run_benchmark,
    run_trial,
    time_to_target,
)
from descentlab.bench.cli import bench_app
from descentlab.bench.report import leaderboard_markdown, write_report
from descentlab.bench.targets import best_within, validation_markdown

HISTORY = {
    "loss": [(10, 2.5), (20, 2.2), (30, 1.9), (40, 1.7)],
    "train_time": [(10, 0.4), (20, 0.8), (30, 1.3), (40, 1.7)],
}


def _wl(track: str) -> Workload:
    return Workload("w", "charlm", "loss", 2.0, False, budget=5.0, step_hint=40, eval_every=10, batch_size=8,
                    track=track)  # fmt: skip


def test_steps_track_scores_the_step_of_the_first_evaluation_meeting_the_target():
    assert time_to_target(_wl("steps"), HISTORY) == 30.0  # 1.9 <= 2.0 first at step 30
    assert time_to_target(_wl("time"), HISTORY) == 1.3  # the same evaluation, on the clock
    assert math.isinf(time_to_target(Workload(**{**_wl("steps").spec(), "target": 1.0}), HISTORY))
    # best within 2/3 of the limit: 2/3 of 40 steps = 26.7 -> steps 10, 20; 2/3 of 5 s = 3.3 s -> every evaluation
    spec = {"spec": {"workload": _wl("steps").spec()}, "history": HISTORY}
    assert best_within(spec, _wl("steps"), 2 / 3) == 2.2
    assert best_within({**spec, "spec": {"workload": _wl("time").spec()}}, _wl("time"), 2 / 3) == 1.7


def test_track_is_validated_and_time_track_keys_are_unchanged():
    with pytest.raises(ValueError, match="track must be one of .*got 'epochs'"):
        _wl("epochs")
    assert "track" not in get_workload("tiny").spec()  # time-track specs (and cache keys) as before the track
    assert get_workload("tiny_steps").spec()["track"] == "steps"
    assert get_workload("charlm_steps").unit == "steps" and get_workload("charlm").unit == "s"
    assert "charlm_steps" not in available_workloads() and "charlm_steps" in available_workloads(
        track="steps"
    )
    assert "tiny_steps" in available_workloads(include_tiny=True, track="steps")
    with pytest.raises(ValueError, match="track must be one of"):
        available_workloads(track="fast")


def test_one_benchmark_is_one_track():
    with pytest.raises(ValueError, match="one benchmark scores one track.*tiny_steps"):
        plan(["adamw"], ["tiny", "tiny_steps"], trials=1, studies=1)


def test_steps_do_not_depend_on_the_clock_budget():
    wl, alg = get_workload("tiny_steps"), get_algorithm("sgd_nesterov")
    a = run_trial(make_spec(wl, alg, alg.default, 3, budget=20.0))
    b = run_trial(make_spec(wl, alg, alg.default, 3, budget=40.0))
    assert a["status"] == "finished" and a["reached"], a
    assert a["time_to_target"] == b["time_to_target"]  # a count of steps, not of seconds
    assert a["time_to_target"] % wl.eval_every == 0 and a["time_to_target"] <= wl.step_hint


def test_benchmark_report_and_compare_speak_in_steps(tmp_path):
    res = run_benchmark(["sgd_nesterov", "adamw"], ["tiny_steps"], trials=2, studies=2, store=tmp_path / "s.db",
                        scale=1.0, progress=False)  # fmt: skip
    assert res.unit == "steps" and not res.missing()
    tt = res.trial_times()
    assert all(t == int(t) for a in tt.values() for s in a["tiny_steps"] for t in s if math.isfinite(t))
    md = leaderboard_markdown(res)
    assert "Steps to target (fewest-steps track" in md and "200 steps)" in md
    cmp = res.compare("sgd_nesterov", "adamw", "tiny_steps")
    assert cmp.unit == "steps" and " steps" in cmp.sentence() and cmp.to_dict()["unit"] == "steps"
    paths = write_report(res, tmp_path / "rep")
    data = json.loads((tmp_path / "rep" / "leaderboard.json").read_text())
    assert data["unit"] == "steps" and data["workloads"]["tiny_steps"]["step_hint"] == 200
    assert all(p.stat().st_size > 0 for p in paths)


def test_validation_table_in_steps():
    entry = {"target": 1.9, "metric": "loss", "higher_is_better": False, "baseline": "nadamw", "hparams": {},
             "validation": [{"target": 1.9, "times": [30.0, 40.0, None], "reached": 2, "studies": 3,
                             "median_time": 40.0, "budget": 300.0, "unit": "steps", "passed": True}]}  # fmt: skip
    md = validation_markdown({"charlm_steps": entry})
    assert "times to target (steps)" in md and "| 200 |" in md and "passed" in md


def test_cli_steps_track(tmp_path):
    runner = CliRunner()
    common = ["-a", "sgd_nesterov", "-w", "tiny_steps", "--trials", "1", "--studies", "1", "--store",
              str(tmp_path / "s.db"), "--scale", "1"]  # fmt: skip
    res = runner.invoke(bench_app, ["run", *common, "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "tiny_steps (steps)" in res.output
    mixed = runner.invoke(
        bench_app, ["run", "-a", "adamw", "-w", "tiny,tiny_steps", "--store", str(tmp_path / "t.db")]
    )
    assert mixed.exit_code != 0 and "one track" in str(mixed.exception)
    bad = runner.invoke(bench_app, ["score", "--track", "epochs", "--store", str(tmp_path / "t.db")])
    assert bad.exit_code != 0 and "track must be one of" in str(bad.exception)
