"""The curve task: J at the curve's ends is the endpoints' objective (closed form), a curve trained by ``train()`` or
as a population is ``landscape.connect``'s curve, its batches resume exactly, bad input is refused naming it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from descentlab import landscape, tasks
from descentlab.landscape.projections import FlatParams
from descentlab.tasks.curve import CurveModel, CurveStream, curve_task
from descentlab.train import train
from descentlab.train.population import train_many

WD = 5e-4


@pytest.fixture(scope="module")
def base():
    return tasks.get("mnist1d_mlp", width=8)


@pytest.fixture(scope="module")
def ends(base):
    return {5: (base.make_model(0), base.make_model(1)), 6: (base.make_model(2), base.make_model(3))}


def _objective(base, model: nn.Module, x, y) -> float:
    """J written plainly: the task's cross-entropy + wd/2 * the sum of squared parameters."""
    with torch.no_grad():
        sq = sum(float((p.double() ** 2).sum()) for p in model.parameters())
        return float(nn.functional.cross_entropy(model(x), y)) + 0.5 * WD * sq


@pytest.mark.parametrize("kind", ["bezier", "polychain"])
def test_loss_at_the_ends_is_the_endpoints_objective(base, ends, kind):
    task = curve_task(base, ends, kind, weight_decay=WD)
    model = task.make_model(5)
    x, y = base.train_data[0][:200], base.train_data[1][:200]
    a, b = ends[5]
    for t, end in ((0.0, a), (1.0, b)):
        got = float(task.loss(model, (x, y, torch.tensor(t, dtype=torch.float64))).detach())
        assert got == pytest.approx(_objective(base, end, x, y), rel=1e-5)
    # untrained, the bend sits at the midpoint: phi(1/2) is the average of the endpoints for both kinds
    mid = 0.5 * (FlatParams(a).vector + FlatParams(b).vector)
    assert torch.allclose(model.point(0.5), mid, atol=1e-7)
    # and along the curve the evaluation reports J on the whole training set, J(0) and J(1) the endpoints'
    r = task.along(model, [0.0, 1.0])
    xa, ya = base.train_data[0], base.train_data[1]
    assert r["J"][0] == pytest.approx(_objective(base, a, xa, ya), rel=1e-5)
    assert r["J"][1] == pytest.approx(_objective(base, b, xa, ya), rel=1e-5)
    assert set(task.evaluate(model)) == {"loss", "objective", "max_objective", "max_error"}


def test_a_trained_curve_is_landscape_connects(base, ends):
    task = curve_task(base, ends, "bezier", weight_decay=WD, cycle=3)
    stream = base.batches(100, 0)
    batches = [next(stream) for _ in range(3)]
    common = {"hparams": {"momentum": 0.9}, "schedule": "garipov", "steps": 10, "batch_size": 100,
              "eval_every": 10, "store": False, "progress": False, "threads": 1}  # fmt: skip
    single = train(task, "sgd", lr=0.3, seed=5, **common)
    pop = train_many(task, "sgd", [{"seed": 5, "lr": 0.3}, {"seed": 6, "lr": 0.1}], **common)
    for (seed, lr), run in zip(((5, 0.3), (6, 0.1)), pop):
        ref = landscape.connect(
            *ends[seed],
            base.outputs_loss,
            batches,
            curve="bezier",
            steps=10,
            lr=lr,
            weight_decay=WD,
            seed=seed,
        )
        assert torch.allclose(run.model.control_points(), ref.control_points, atol=1e-6)
        if seed == 5:
            assert torch.allclose(single.model.control_points(), ref.control_points, atol=1e-6)
    assert pop[0].config["task_kw"]["seeds"] == [5, 6] and pop[0].config["task"] == "mnist1d_mlp-bezier-curve"


def test_stream_yields_connects_draws_and_resumes_exactly(base):
    s = CurveStream(tuple(base.train_data[:2]), 50, seed=7, cycle=2)
    first = [next(s) for _ in range(5)]
    g = torch.Generator().manual_seed(7)
    for k, (x, y, t) in enumerate(first):
        assert float(t) == float(torch.rand((), generator=g, dtype=torch.float64))
        assert torch.equal(x, first[k % 2][0]) and torch.equal(y, first[k % 2][1])
    for cycle in (2, None):
        a = CurveStream(tuple(base.train_data[:2]), 50, seed=7, cycle=cycle)
        for _ in range(3):
            next(a)
        b = CurveStream(tuple(base.train_data[:2]), 50, seed=7, cycle=cycle)
        b.load_state_dict(a.state_dict())
        for _ in range(4):
            xa, ya, ta = next(a)
            xb, yb, tb = next(b)
            assert torch.equal(xa, xb) and torch.equal(ya, yb) and torch.equal(ta, tb)


def test_bad_input_is_refused_naming_it(base, ends):
    task = curve_task(base, ends, "polychain")
    with pytest.raises(ValueError, match="seed 9"):
        task.make_model(9)
    with pytest.raises(ValueError, match="spline"):
        curve_task(base, ends, "spline")
    with pytest.raises(ValueError, match="buffers"):
        bn = nn.Sequential(nn.Linear(40, 4), nn.BatchNorm1d(4))
        curve_task(base, {0: (bn, bn)})
    with pytest.raises(ValueError, match="differ"):
        CurveModel(ends[5][0], ends[5][0], tasks.get("mnist1d_mlp", width=9).make_model(0))
    with pytest.raises(ValueError, match="n_points"):
        CurveModel(*ends[5], ends[5][0], "bezier", 2)
    with pytest.raises(ValueError, match="cycle"):
        CurveStream(tuple(base.train_data[:2]), 50, cycle=0)
    with pytest.raises(ValueError, match="weight_decay"):
        curve_task(base, ends, weight_decay=-1.0)
    with pytest.raises(ValueError, match="empty"):
        curve_task(base, {})
