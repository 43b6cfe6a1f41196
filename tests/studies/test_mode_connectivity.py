"""mode-connectivity: the barrier, the convergence criterion and each claim's decision on hand-made values; the endpoint
and curve populations against one run per model (a plain Adam loop, landscape.connect) and in the store; a tiny
end-to-end run writes a well-formed summary and leaves its runs in the store (whatever the verdicts)."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch

import descentlab.studies as studies
from descentlab import landscape, tasks
from descentlab.landscape.connectivity import garipov_lr_factor
from descentlab.landscape.projections import FlatParams
from descentlab.store import Store
from descentlab.studies import StudyContext
from descentlab.studies.claims import VERDICTS, judge
from descentlab.studies.mode_connectivity import (
    PREDICTIONS,
    barrier,
    barrier_ratio,
    fit_curves,
    fit_endpoints,
    plane_basis,
    stationary,
)
from descentlab.tasks.curve import curve_task
from descentlab.train import train

PRED = {p.name: p for p in PREDICTIONS}
TS = np.linspace(0, 1, 11)


def test_barrier_against_hand_computed_paths():
    assert barrier(0.2 + 0.3 * TS, TS) == pytest.approx(0.0, abs=1e-12)  # the interpolation itself
    bump = 0.2 + 0.3 * TS + np.sin(np.pi * TS)  # peak excess 1 at t = 1/2
    assert barrier(bump, TS) == pytest.approx(1.0)
    dip = 0.5 - 0.4 * np.sin(np.pi * TS)  # below the interpolation everywhere: barrier 0 (at the ends)
    assert barrier(dip, TS) == 0.0
    with pytest.raises(ValueError, match="from 0 to 1"):
        barrier(bump[:-1], TS[:-1])
    with pytest.raises(ValueError, match="same length"):
        barrier(bump, TS[:-1])


def test_barrier_ratio_and_stationary():
    assert barrier_ratio(0.1, 2.0) == pytest.approx(0.05)
    assert math.isnan(barrier_ratio(0.1, 0.0))
    assert stationary(0.004, 0.2) == (True, pytest.approx(0.02))
    assert stationary(0.05, 0.2) == (False, pytest.approx(0.25))
    with pytest.raises(ValueError, match="positive"):
        stationary(0.1, 0.0)


@pytest.mark.parametrize(
    ("name", "values", "expected"),
    [
        ("line_barrier", [8.5, 9.4, 9.1], "holds"),
        ("line_barrier", [0.2, 0.3, 0.25], "fails"),  # the segment is almost as low as the minima
        ("line_barrier", [0.5, 3.0, 1.2], "inconclusive"),
        ("bezier_near_zero", [0.04, 0.05, 0.045], "holds"),
        ("bezier_near_zero", [0.3, 0.35, 0.4], "fails"),
        ("bezier_near_zero", [0.02, 0.2, 0.09], "inconclusive"),
        ("polychain_near_zero", [0.5, 0.6, 0.55], "fails"),
        ("polychain_near_zero", [0.05, float("nan"), 0.06], "inconclusive"),  # a pair without a line barrier
    ],
)
def test_claim_decisions(name, values, expected):
    assert judge(PRED[name], values)["verdict"] == expected


def test_endpoints_are_adam_runs_in_the_store(tmp_path):
    task = tasks.get("mnist1d_mlp", width=8)
    wd = 1e-3
    with Store(tmp_path / "runs.db") as store:
        ctx = StudyContext(name="mode-connectivity", out=tmp_path, store=store, quick=True, key="k")
        runs = fit_endpoints(ctx, task, [3, 4], steps=12, lr=1e-2, weight_decay=wd, evals=3)
        for seed, run in zip((3, 4), runs):
            ref = task.make_model(seed)  # a plain Adam loop with Garipov et al.'s schedule, written out
            opt = torch.optim.Adam(ref.parameters(), lr=1e-2, weight_decay=wd)
            stream = task.batches(100, seed)
            for k in range(12):
                opt.param_groups[0]["lr"] = 1e-2 * garipov_lr_factor(k / 12)
                x, y = next(stream)
                opt.zero_grad()
                task.outputs_loss(ref(x), y).backward()
                opt.step()
            assert torch.allclose(FlatParams(ref).vector, FlatParams(run.model).vector, atol=1e-6)
            x, y = task.train_data[0], task.train_data[1]
            with torch.no_grad():
                j = float(task.outputs_loss(ref(x), y)) + 0.5 * wd * float(
                    (FlatParams(ref).vector ** 2).sum()
                )
            stored = store.load_run(run.id)
            assert [k for k, _ in stored.metrics("objective")] == [4, 8, 12]
            assert stored.metrics("objective")[-1][1] == pytest.approx(j, rel=1e-5)
            assert stored.config["optimizer"] == "adam" and stored.config["schedule"] == "garipov"
            assert re.fullmatch(
                r"mode-connectivity-k-p[0-9a-f]{12}", stored.config["population"]["id"]
            )  # content-addressed
            assert stored.config["population"]["forward"] == "stacked"  # pinned, not timed at run time
    with pytest.raises(ValueError, match="evals"):
        fit_endpoints(ctx, task, [3], steps=10, lr=1e-2, weight_decay=wd, evals=3)


def test_curves_are_landscape_connects_and_in_the_store(tmp_path):
    task = tasks.get("mnist1d_mlp", width=8)
    a, b, c, d = (task.make_model(s) for s in range(4))
    stream = task.batches(100, 0)
    batches = [next(stream) for _ in range(3)]
    ends = {5: (a, b), 6: (c, d)}
    with Store(tmp_path / "runs.db") as store:
        ctx = StudyContext(name="mode-connectivity", out=tmp_path, store=store, quick=True, key="k")
        for kind, lrs in (("bezier", (0.3, 0.1)), ("polychain", (0.05, 0.15))):
            ct = curve_task(task, ends, kind, weight_decay=5e-4, cycle=3, data_seed=0)
            runs, snaps = fit_curves(ctx, ct, list(zip((5, 6), lrs)), steps=10, snapshots=(0, 5, 10))
            for (seed, lr), run in zip(zip((5, 6), lrs), runs):
                ref = landscape.connect(
                    *ends[seed],
                    task.outputs_loss,
                    batches,
                    curve=kind,
                    steps=10,
                    lr=lr,
                    weight_decay=5e-4,
                    seed=seed,
                )
                assert torch.allclose(ref.control_points, run.model.control_points(), atol=1e-6)
                assert torch.equal(snaps[(seed, 10)], run.model.bends.detach())
                mid = 0.5 * (FlatParams(ends[seed][0]).vector + FlatParams(ends[seed][1]).vector)
                assert torch.allclose(snaps[(seed, 0)][0], mid)
                half = train(  # the snapshot after 5 steps: the first 5 steps of the same 10-step schedule
                    ct, "sgd", lr=lr, hparams={"momentum": 0.9}, schedule="garipov", steps=5, schedule_steps=10,
                    batch_size=100, seed=seed, store=False, progress=False,
                )  # fmt: skip
                assert torch.allclose(half.model.bends.detach(), snaps[(seed, 5)], atol=1e-6)
                stored = store.load_run(run.id)
                assert stored.config["task"] == f"mnist1d_mlp-{kind}-curve"
                assert stored.config["population"]["forward"] == "vmap"  # pinned, not timed at run time
        with pytest.raises(ValueError, match="seeds must differ"):
            fit_curves(ctx, ct, [(5, 0.1), (5, 0.2)], steps=4, snapshots=(2,))


def test_plane_basis():
    g = torch.Generator().manual_seed(0)
    w1, theta, w2 = (torch.randn(50, generator=g, dtype=torch.float64) for _ in range(3))
    u, v = plane_basis(w1, theta, w2)
    assert float(u @ u) == pytest.approx(1) and float(v @ v) == pytest.approx(1) and abs(float(u @ v)) < 1e-12
    for p in (theta, w2):  # both points lie in w1 + span(u, v)
        r = p - w1
        assert torch.allclose((r @ u) * u + (r @ v) * v, r, atol=1e-10)
    with pytest.raises(ValueError, match="collinear"):
        plane_basis(w1, w1 + 0.5 * (w2 - w1), w2)


def test_tiny_run_writes_a_well_formed_summary(tmp_path):
    res = studies.run(
        "mode-connectivity", quick=True, out=tmp_path, store=tmp_path / "runs.db", progress=False, seeds=2,
        steps=20, curve_steps=12, points=5, grid=4, stages=[0, 6], curve_batches=3, curve_lrs=[0.1, 0.3],
        chain_lrs=[0.05, 0.15], tuning_seeds=1)  # fmt: skip
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [c["name"] for c in summary["claims"]] == [p.name for p in PREDICTIONS]
    for c in summary["claims"]:
        assert c["verdict"] in VERDICTS and len(c["values"]) == 2 and c["n"] <= 2 and c["evidence"]
    assert {c["name"] for c in summary["checks"]} == {"endpoints converged", "untrained curve is the segment"}
    assert summary["seeds"] == {"evaluation": [0, 1], "tuning": [1000]}
    assert len(res.summary["numbers"]["pairs"]) == 2
    assert (tmp_path / "mode_connectivity.png").exists() and (tmp_path / "predictions.json").exists()
    with Store(tmp_path / "runs.db") as store:  # every run is in the store, a member of its population
        runs = [store.load_run(r["id"]) for r in store.list_runs()]
    assert all(r.status == "finished" and "population" in r.config for r in runs)
    by_task = {t: [r for r in runs if r.config["task"] == t] for t in {r.config["task"] for r in runs}}
    assert len(by_task["mnist1d_mlp"]) == 6  # the endpoints of 2 evaluation pairs and 1 tuning pair
    assert {"mnist1d_mlp-bezier-curve", "mnist1d_mlp-polychain-curve"} <= set(by_task)
