"""studies._batched: stacked MLPs follow torch's SGD / Adam / AdamW step for step, each on its own seed's batches."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from descentlab.studies._batched import evaluate, forward, stack_mlps, train_stacked
from descentlab.tasks.base import BatchStream


def _data(n=64, d=5, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randint(0, c, (n,), generator=g)


def _model(seed, d=5, h=7, c=3):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, c))


def _torch_run(model, opt, data, seed, steps, batch_size, lr_at=None):
    stream = BatchStream(data, batch_size, seed)
    for k in range(steps):
        if lr_at is not None:
            for group in opt.param_groups:
                group["lr"] = lr_at(k)
        x, y = next(stream)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return [p.detach() for p in model.parameters()]


def _stacked_params(res, i):
    ws, bs = res["params"]
    out = []
    for w, b in zip(ws, bs):
        out += [w[i].t(), b[i, 0]]
    return out


@pytest.mark.parametrize(
    "kind, kw, make_opt",
    [
        (
            "sgd",
            {"momentum": 0.9, "l2": 0.05},
            lambda p, lr: torch.optim.SGD(p, lr, momentum=0.9, weight_decay=0.05),
        ),
        ("adam", {"l2": 0.05}, lambda p, lr: torch.optim.Adam(p, lr, weight_decay=0.05)),
        # decoupled decay λ per step = torch's AdamW with weight_decay = λ / lr
        ("adam", {"decay": 0.01}, lambda p, lr: torch.optim.AdamW(p, lr, weight_decay=0.01 / lr)),
    ],
)
def test_matches_torch_optimizers(kind, kw, make_opt):
    data = _data()
    lrs, seeds = [0.05, 0.01], [3, 4]
    res = train_stacked(
        [_model(s) for s in seeds], seeds, data, steps=12, batch_size=16, lr=lrs, optimizer=kind, **kw
    )
    for i, (lr, s) in enumerate(zip(lrs, seeds)):
        model = _model(s)
        ref = _torch_run(model, make_opt(model.parameters(), lr), data, s, 12, 16)
        for a, b in zip(_stacked_params(res, i), ref):
            assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)


def test_lr_table_is_a_schedule_per_model():
    data = _data()
    steps = 10
    table = torch.stack([torch.linspace(0.1, 0.0, steps), torch.full((steps,), 0.02)], 1)
    res = train_stacked(
        [_model(0), _model(0)],
        [0, 0],
        data,
        steps=steps,
        batch_size=8,
        lr=table,
        optimizer="sgd",
        momentum=0.5,
    )
    model = _model(0)
    ref = _torch_run(
        model,
        torch.optim.SGD(model.parameters(), 1.0, momentum=0.5),
        data,
        0,
        steps,
        8,
        lr_at=lambda k: float(table[k, 0]),
    )
    for a, b in zip(_stacked_params(res, 0), ref):
        assert torch.allclose(a, b, atol=1e-5)


def test_evaluations_and_divergence_stay_per_model():
    data = _data()
    res = train_stacked(
        [_model(1), _model(1)],
        [1, 1],
        data,
        steps=6,
        batch_size=8,
        lr=[1e6, 0.01],
        optimizer="sgd",
        evals={"val": data},
        eval_every=3,
    )
    assert res["steps"] == [0, 3, 6]
    assert res["val_loss"].shape == (3, 2) and res["val_accuracy"].shape == (3, 2)
    assert torch.isfinite(res["val_loss"][:, 1]).all()  # the diverged model does not disturb the other
    ws, bs = stack_mlps([_model(2)])
    loss, acc = evaluate(ws, bs, data)
    model = _model(2)
    assert float(loss[0]) == pytest.approx(
        float(nn.functional.cross_entropy(model(data[0]), data[1]).detach()), rel=1e-5
    )
    assert forward(ws, bs, data[0]).shape == (1, 64, 3)


def test_refuses_bad_input():
    data = _data()
    with pytest.raises(ValueError, match="one seed per model"):
        train_stacked([_model(0)], [0, 1], data, steps=2, batch_size=8, lr=0.1)
    with pytest.raises(ValueError, match="optimizer"):
        train_stacked([_model(0)], [0], data, steps=2, batch_size=8, lr=0.1, optimizer="lbfgs")
    with pytest.raises(ValueError, match="lr table"):
        train_stacked([_model(0)], [0], data, steps=2, batch_size=8, lr=torch.ones(3, 1))
    with pytest.raises(ValueError, match="decay"):
        train_stacked([_model(0)], [0], data, steps=2, batch_size=8, lr=0.1, decay=-1.0)
    with pytest.raises(TypeError, match="Sequential"):
        stack_mlps([nn.Sequential(nn.Linear(2, 2), nn.Tanh())])
