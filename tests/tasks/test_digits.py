"""digits: the seeded split of sklearn's bundled load_digits and the two models."""

from __future__ import annotations

import torch
from sklearn.datasets import load_digits

from descentlab import tasks


def test_split_partitions_the_scaled_digits() -> None:
    task = tasks.get("softmax_digits", seed=0)
    xt, yt = task.train_data
    xv, yv = task.val_data
    assert xt.shape == (1438, 64) and xv.shape == (359, 64)
    assert float(xt.min()) >= 0.0 and float(xt.max()) <= 1.0
    d = load_digits()
    ref = torch.cat(
        [torch.tensor(d.data / 16.0, dtype=torch.float32), torch.tensor(d.target)[:, None].float()], 1
    )
    ours = torch.cat([torch.cat([xt, xv]), torch.cat([yt, yv])[:, None].float()], 1)
    assert sorted(map(tuple, ref.tolist())) == sorted(map(tuple, ours.tolist()))


def test_models() -> None:
    lin = tasks.get("softmax_digits").make_model(0)
    assert isinstance(lin, torch.nn.Linear) and (lin.in_features, lin.out_features) == (64, 10)
    mlp = tasks.get("digits_mlp", width=40).make_model(0)
    assert mlp[0].out_features == 40 and mlp[2].out_features == 10


def test_softmax_regression_learns() -> None:
    task = tasks.get("softmax_digits")
    model = task.make_model(0)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    stream = task.batches(128)
    for _ in range(200):
        opt.zero_grad()
        task.loss(model, next(stream)).backward()
        opt.step()
    assert task.evaluate(model)["accuracy"] > 0.9
