"""Budget factors per workload, measured the way trials run (issue 27: a single-thread CNN probe read a Zen 4 as 2x
faster than the reference while its two-worker trials ran 1.0-1.25x slower, and the halved budgets cut 40 % of a
board's trials)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from descentlab.bench import plan
from descentlab.bench import workloads as W
from descentlab.bench.workloads import SCALE_ENV, calibrate_hardware, hardware_scales, scale_for


def test_scale_for_reads_one_number_or_a_mapping_with_its_fallback() -> None:
    assert scale_for(1.5, "digits") == 1.5
    assert scale_for({"digits": 0.8, "*": 1.2}, "digits") == 0.8
    assert scale_for({"digits": 0.8, "*": 1.2}, "logreg") == 1.2
    for bad in ({"digits": 0.8}, {"*": -1.0}, math.nan, True):
        with pytest.raises(ValueError, match="budget scale for workload 'logreg'"):
            scale_for(bad, "logreg")  # type: ignore[arg-type]


def test_calibration_is_step_seconds_over_the_reference_and_is_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SCALE_ENV, raising=False)
    ref = dict(W.REFERENCE_STEP_SECONDS)
    measured = {w: v * (2.0 if w == "charlm" else 1.0) for w, v in ref.items()}  # only charlm twice as slow
    seen = {}

    def fake_probe(workloads, repeats, workers, executor):  # type: ignore[no-untyped-def]
        seen.update(workloads=list(workloads), repeats=repeats, workers=workers, executor=executor)
        return {w: measured[w] for w in workloads}

    monkeypatch.setattr(W, "probe_step_seconds", fake_probe)
    path = tmp_path / "hw.json"
    factors = calibrate_hardware(path, repeats=3, workers=2, executor="local")
    assert seen == {"workloads": list(ref), "repeats": 3, "workers": 2, "executor": "local"}
    assert factors["charlm"] == pytest.approx(2.0) and factors["digits"] == pytest.approx(1.0)
    assert factors["*"] == pytest.approx(2.0 ** (1 / len(ref)))  # geometric mean over the probed workloads
    data = json.loads(path.read_text())
    assert data["step_seconds"]["charlm"] == pytest.approx(measured["charlm"]) and data["workers"] == 2
    read = hardware_scales(path)
    assert isinstance(read, dict) and read == pytest.approx(factors)
    # the budgets a plan gives: each workload its own factor, the others the geometric mean
    specs = plan(["nadamw"], ["charlm", "digits", "tiny"], trials=1, studies=1, scale=read)
    budget = {s["workload"]["name"]: s["workload"]["budget"] for s in specs}
    assert budget["charlm"] == pytest.approx(2.0 * W.get_workload("charlm").budget)
    assert budget["digits"] == pytest.approx(W.get_workload("digits").budget)
    assert budget["tiny"] == pytest.approx(factors["*"] * W.get_workload("tiny").budget)
    # one number in the environment overrides the file for every workload
    monkeypatch.setenv(SCALE_ENV, "1.5")
    assert hardware_scales(path) == 1.5


def test_older_files_and_bad_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SCALE_ENV, raising=False)
    path = tmp_path / "hw.json"
    path.write_text('{"scale": 1.25}')  # the format before per-workload factors
    assert hardware_scales(path) == 1.25
    assert hardware_scales(tmp_path / "absent.json") == 1.0
    path.write_text('{"scale": 1.25, "workloads": {"digits": "fast"}}')
    with pytest.raises(ValueError, match="workload 'digits'.*got 'fast'"):
        hardware_scales(path)
    path.write_text('{"scale": 1.25, "workloads": [1]}')
    with pytest.raises(ValueError, match="'workloads' must map names to factors"):
        hardware_scales(path)
    with pytest.raises(ValueError, match="repeats must be a positive integer, got 0"):
        calibrate_hardware(repeats=0)


def test_the_probe_runs_the_benchmarks_own_trial() -> None:
    """A real probe (tiny workload, local executor): seconds per step of NAdamW's trial, small and positive."""
    out = W.probe_step_seconds(["tiny"], repeats=1, workers=1, executor="local")
    assert set(out) == {"tiny"} and 0 < out["tiny"] < 0.05


def _fake_result(stops: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    """A result whose trials end as told: 'hit', 'clock' (stopped before the step hint), 'hint' (ran its schedule),
    'diverged'; one list per entrant on the `tiny` workload (step hint 200), one study."""
    from descentlab.bench import BenchmarkResult

    specs = plan(list(stops), ["tiny"], trials=len(next(iter(stops.values()))), studies=1, scale=1.0)
    result = BenchmarkResult(specs)
    for s in specs:
        how = stops[s["algorithm"]["name"]][s["trial"]]
        step = {"hit": 50, "clock": 120, "hint": 200, "diverged": 30}[how]
        result.results[s["key"]] = {
            "status": "diverged" if how == "diverged" else "finished", "reached": how == "hit",
            "time_to_target": 0.1 if how == "hit" else math.inf, "final": {"step": step, "train_time": step * 1e-3},
            "history": {},
        }  # fmt: skip
    return result


def test_clock_cuts_count_trials_stopped_by_the_budget_and_warn_on_the_baselines() -> None:
    from descentlab.bench.board import CLOCK_CUT_WARN, clock_cut_markdown, clock_cuts

    result = _fake_result({"nadamw": ["clock", "clock", "hit", "hint"], "sgd_nesterov": ["hit", "clock", "diverged",
                                                                                         "hint"]})  # fmt: skip
    cuts = clock_cuts(result)
    assert cuts["nadamw"]["tiny"] == pytest.approx(0.5)  # 2 of 4
    assert cuts["sgd_nesterov"]["tiny"] == pytest.approx(1 / 3)  # the diverged trial is left out
    line = clock_cut_markdown(cuts, "nadamw")
    assert (
        "nadamw's share per workload: tiny 50 %" in line and "Budgets tight for this machine on tiny" in line
    )
    assert 0.5 > CLOCK_CUT_WARN
    calm = clock_cut_markdown(
        clock_cuts(_fake_result({"nadamw": ["hit", "hint", "hint", "clock"]})), "nadamw"
    )
    assert "tiny 25 %" in calm and "tight" not in calm  # 25 % is not above the threshold
    assert "no finished trial" in clock_cut_markdown({}, "nadamw")
