"""mode-connectivity: the barrier, the convergence criterion and each claim's decision on hand-made values; the batched
trainers against one run per model; a tiny end-to-end run writes a well-formed summary (whatever the verdicts)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import descentlab.studies as studies
from descentlab import landscape, tasks
from descentlab.landscape.connectivity import garipov_lr_factor
from descentlab.landscape.projections import FlatParams
from descentlab.studies.claims import VERDICTS, judge
from descentlab.studies.mode_connectivity import (
    PREDICTIONS,
    CurveJob,
    barrier,
    barrier_ratio,
    plane_basis,
    stationary,
    train_curves,
    train_endpoints,
)

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


def test_batched_endpoints_are_one_adam_run_each():
    task = tasks.get("mnist1d_mlp", width=8)
    ends = train_endpoints(task, [3, 4], steps=12, lr=1e-2, weight_decay=1e-3, evals=3)
    assert ends.steps == [4, 8, 12] and len(ends.objective) == 2 and len(ends.objective[0]) == 3
    for seed, model in zip((3, 4), ends.models):
        ref = task.make_model(seed)
        opt = torch.optim.Adam(ref.parameters(), lr=1e-2, weight_decay=1e-3)
        stream = task.batches(100, seed)
        for k in range(12):
            opt.param_groups[0]["lr"] = 1e-2 * garipov_lr_factor(k / 12)
            x, y = next(stream)
            opt.zero_grad()
            task.outputs_loss(ref(x), y).backward()
            opt.step()
        assert torch.allclose(FlatParams(ref).vector, FlatParams(model).vector, atol=1e-6)


def test_batched_curves_match_landscape_connect():
    task = tasks.get("mnist1d_mlp", width=8)
    a, b = task.make_model(0), task.make_model(1)
    stream = task.batches(100, 0)
    batches = [next(stream) for _ in range(3)]
    jobs = [CurveJob("bezier", a, b, 0.3, seed=5), CurveJob("polychain", a, b, 0.05, seed=6)]
    curves, snaps = train_curves(
        jobs, task.outputs_loss, batches, steps=10, weight_decay=5e-4, snapshots=(0, 10)
    )
    for job, curve in zip(jobs, curves):
        ref = landscape.connect(
            a,
            b,
            task.outputs_loss,
            batches,
            curve=job.kind,
            steps=10,
            lr=job.lr,
            weight_decay=5e-4,
            seed=job.seed,
        )
        assert torch.allclose(ref.control_points, curve.control_points, atol=1e-6)
    mid = 0.5 * (FlatParams(a).vector + FlatParams(b).vector)
    assert torch.allclose(snaps[0][0][1], mid) and torch.equal(snaps[10][1], curves[1].control_points)


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
        "mode-connectivity", quick=True, out=tmp_path, store=False, progress=False, seeds=2,
        steps=20, curve_steps=12, points=5, grid=4, stages=[0, 6], curve_batches=3, curve_lrs=[0.1, 0.3],
        chain_lrs=[0.05, 0.15],
    )  # fmt: skip
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [c["name"] for c in summary["claims"]] == [p.name for p in PREDICTIONS]
    for c in summary["claims"]:
        assert c["verdict"] in VERDICTS and len(c["values"]) == 2 and c["n"] <= 2 and c["evidence"]
    assert {c["name"] for c in summary["checks"]} == {"endpoints converged", "untrained curve is the segment"}
    assert summary["seeds"] == {"evaluation": [0, 1], "tuning": [1000]}
    assert len(res.summary["numbers"]["pairs"]) == 2
    assert (tmp_path / "mode_connectivity.png").exists() and (tmp_path / "predictions.json").exists()
