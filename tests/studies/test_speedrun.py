"""speedrun: steps to the target, the acceptance rule, the ladder, the claims' decisions, one tiny end-to-end run."""

from __future__ import annotations

import json
import math

import pytest

import descentlab.studies as studies
from descentlab.studies.claims import judge
from descentlab.studies.speedrun import (
    PREDICTIONS,
    RECORDS,
    acceptance,
    interpolate,
    ladder,
    slope,
    steps_to_target,
)


def test_steps_to_target_interpolates_between_evaluations() -> None:
    curve = [(0, 4.0), (10, 3.0), (20, 2.0), (30, 1.5)]
    assert steps_to_target(curve, 2.5) == pytest.approx(15.0)
    assert steps_to_target(curve, 2.0) == pytest.approx(20.0)
    assert steps_to_target(curve, 5.0) == 0.0  # reached before training
    assert steps_to_target(curve, 1.0) == math.inf
    assert (
        steps_to_target([(0, 4.0), (10, math.nan), (20, 2.0)], 3.0) == 20.0
    )  # no finite loss before: no guess
    assert steps_to_target([], 1.0) == math.inf
    assert interpolate([(0, 0.0), (10, 1.0), (20, 3.0)], 15.0) == pytest.approx(2.0)
    assert math.isnan(interpolate([(0, 0.0), (10, 1.0)], 11.0))


@pytest.mark.parametrize(
    "previous, new, verdict, outcome",
    [
        ([100, 110, 105, 98, 102], [60, 64, 62, 58, 61], "record", "faster"),  # 1.7x on every seed
        ([60, 64, 62, 58, 61], [100, 110, 105, 98, 102], "not a record at this scale", "slower"),
        ([100, 110, 105, 98, 102], [70, 120, 90, 110, 80], "not a record at this scale", "inconclusive"),
    ],
)
def test_acceptance_rule(previous, new, verdict, outcome) -> None:
    a = acceptance(previous, new, p=0.01)
    assert (a["verdict"], a["outcome"], a["n"]) == (verdict, outcome, 5)


def test_acceptance_margin_shrinks_as_one_over_sqrt_n() -> None:
    # The same per-seed ratios (mean log2 0.1, sd ~0.1): 3 seeds are not enough at p < 0.01, 12 are.
    prev3, new3 = [2.0**0.0, 2.0**0.1, 2.0**0.2], [1.0, 1.0, 1.0]
    assert acceptance(prev3, new3)["verdict"] == "not a record at this scale"
    assert acceptance(prev3 * 4, new3 * 4)["verdict"] == "record"
    assert acceptance([100.0], [50.0])["outcome"] == "inconclusive"  # one seed: no test
    with pytest.raises(ValueError):
        acceptance([1, 2], [1, 2], p=0.7)


def test_slope_and_ladder() -> None:
    assert slope([1, 2, 3], [2, 4, 6]) == pytest.approx(2.0)
    assert math.isnan(slope([1, 1], [2, 3]))
    steps = ladder(list(RECORDS), softcap=15.0)
    assert [s["name"] for s in steps] == list(RECORDS)
    assert steps[0] == {"name": "adamw_cosine", "idea": RECORDS["adamw_cosine"]["idea"], "optimizer": "adamw",
                        "schedule": "warmup_cosine", "options": {}}  # fmt: skip
    assert (steps[1]["optimizer"], steps[1]["schedule"]) == ("adamw", "wsd")
    assert (steps[2]["optimizer"], steps[2]["schedule"]) == ("muon", "wsd")
    assert steps[-1]["options"] == {
        "rotary": True,
        "relu2": True,
        "qk_norm": True,
        "zero_init": True,
        "softcap": 15.0,
    }
    assert (
        ladder(["adamw_cosine", "muon"], 15.0)[1]["schedule"] == "warmup_cosine"
    )  # only the listed ideas add up
    for bad in (
        ["wsd"],
        ["adamw_cosine", "muon", "wsd"],
        ["adamw_cosine", "nope"],
        ["adamw_cosine", "wsd", "wsd"],
    ):
        with pytest.raises(ValueError):
            ladder(bad, 15.0)


@pytest.mark.parametrize(
    "values, verdict",
    [([0.5, 0.7, 0.6], "holds"), ([-0.5, -0.7, -0.6], "fails"), ([0.5, -0.4, 0.1], "inconclusive")],
)
def test_prediction_verdicts(values, verdict) -> None:
    for p in PREDICTIONS:
        assert judge(p, values)["verdict"] == verdict


def test_end_to_end_tiny(tmp_path) -> None:
    studies.run(
        "speedrun",
        quick=True,
        out=tmp_path,
        store=False,
        progress=False,
        seeds=2,
        widths=[16],
        records=["adamw_cosine", "wsd"],
        steps=12,
        eval_every=4,
        eval_windows=8,
        adamw_lrs=[0.01, 0.03],
    )
    s = json.loads((tmp_path / "summary.json").read_text())
    assert [c["name"] for c in s["claims"]] == [p.name for p in PREDICTIONS]
    for c in s["claims"]:
        assert c["verdict"] in ("holds", "fails", "inconclusive")
        assert len(c["values"]) == 2
    judged = {c["name"]: c for c in s["claims"]}
    assert judged["record_wsd"]["n"] <= 2
    assert judged["record_muon"]["verdict"] == "inconclusive" and judged["record_muon"]["n"] == 0  # not run
    assert s["seeds"] == {"evaluation": [0, 1], "tuning": [1000]}
    entry = s["numbers"]["ladder"]["16"]["wsd"]
    assert entry["acceptance"]["verdict"] in ("record", "not a record at this scale")
    assert len(entry["steps"]) == len(entry["seconds"]) == len(entry["reached"]) == 2
    assert all(0 <= x <= 12 for x in entry["steps"])
    assert s["numbers"]["targets"]["16"]["target"] > 0
    assert [c["name"] for c in s["checks"]] == ["record0_reaches_target_w16"]
    assert s["anchors"] == []  # the Muon anchor needs the Muon record
    assert (tmp_path / "speedrun.png").exists()
    assert studies.get("speedrun").in_tour  # quick: 124 s wall on 2 idle cores (sizes in parallel)


def test_sizes_in_parallel_processes_give_the_sequential_numbers(tmp_path) -> None:
    """workers=2 runs each width's ladder in its own spawned process (one thread); with one thread in the parent
    too, the ladder's numbers are the sequential run's, and every run lands in the store under its own id."""
    from descentlab.store import Store
    from descentlab.threads import torch_threads

    tiny = dict(quick=True, progress=False, seeds=2, widths=[16, 32], records=["adamw_cosine", "wsd"], steps=12,
                eval_every=4, eval_windows=8, adamw_lrs=[0.01, 0.03])  # fmt: skip
    with torch_threads(1):
        seq = studies.run("speedrun", out=tmp_path / "seq", store=False, workers=1, **tiny).summary
    par = studies.run("speedrun", out=tmp_path / "par", store=tmp_path / "s.db", workers=2, **tiny).summary
    assert seq["numbers"]["workers"] == 1 and par["numbers"]["workers"] == 2
    for key in ("sizes", "targets"):
        assert par["numbers"][key] == seq["numbers"][key], key

    def steps_only(ladder: dict) -> dict:  # training seconds differ from run to run; everything else may not
        return {w: {r: {k: v for k, v in e.items() if "seconds" not in k} for r, e in recs.items()}
                for w, recs in ladder.items()}  # fmt: skip

    assert steps_only(par["numbers"]["ladder"]) == steps_only(seq["numbers"]["ladder"])
    assert [c["values"] for c in par["claims"]] == [c["values"] for c in seq["claims"]]
    assert len(par["runs"]) == len(set(par["runs"])) == len(seq["runs"])
    st = Store(tmp_path / "s.db")
    try:
        assert all(st.has_run(r) for r in par["runs"])
    finally:
        st.close()
    with pytest.raises(ValueError, match="workers"):
        studies.run("speedrun", out=tmp_path / "bad", store=False, workers=-1, **tiny)


def test_the_gpu_preset_is_chosen_by_the_hardware_and_bf16_runs_on_cpu(tmp_path) -> None:
    """preset 'auto': the CPU settings without CUDA, the larger bf16 preset with it (unless device=cpu); bad values
    are refused; the bf16 path itself (torch.autocast in train()) runs on the CPU."""
    from descentlab.studies.speedrun import GPU_PRESET, resolve_preset

    base = dict(studies.get("speedrun").quick)
    assert (
        resolve_preset(base, cuda=False)["preset"] == "cpu"
        and resolve_preset(base, cuda=False)["device"] == "cpu"
    )
    gpu = resolve_preset(base, cuda=True)
    assert gpu["preset"] == "gpu" and gpu["device"] == "cuda" and gpu["precision"] == "bf16"
    assert all(gpu[k] == v for k, v in GPU_PRESET.items())
    assert resolve_preset({**base, "device": "cpu"}, cuda=True)["preset"] == "cpu"  # the user's device wins
    assert resolve_preset({**base, "preset": "gpu", "device": "cuda:1"}, cuda=True)["device"] == "cuda:1"
    with pytest.raises(ValueError, match="preset must be"):
        resolve_preset({**base, "preset": "tpu"}, cuda=False)
    with pytest.raises(ValueError, match="precision must be"):
        resolve_preset({**base, "precision": "fp8"}, cuda=False)
    res = studies.run("speedrun", quick=True, out=tmp_path, store=False, progress=False, seeds=2, widths=[16],
                      records=["adamw_cosine"], steps=8, eval_every=4, eval_windows=8, adamw_lrs=[0.01, 0.03],
                      precision="bf16", device="cpu", workers=1)  # fmt: skip
    assert res.summary["numbers"]["precision"] == "bf16" and res.summary["numbers"]["preset"] == "cpu"
