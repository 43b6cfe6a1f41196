"""The landscape tools on every registered task (``Task.landscape_problem``), and a one-line refusal where a task has
no loss of the form criterion(model(inputs), targets).

Before ``landscape_problem`` five tasks failed: ``logreg`` (its float +-1 targets went into cross-entropy:
RuntimeError), ``charlm`` (train_data is one token tensor, not inputs and targets) and the 2-D functions
``rosenbrock``, ``quadratic``, ``multiminima`` (no data at all: the loss is f of the point).
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from descentlab import landscape, tasks
from descentlab.cli import main
from descentlab.tasks.base import Task
from descentlab.train import train

SMALL: dict[str, dict] = {
    "rosenbrock": {},
    "quadratic": {"kappa": 10.0, "angle": 0.3},
    "multiminima": {},
    "logreg": {},
    "softmax_digits": {},
    "digits_mlp": {"width": 16},
    "mnist1d_mlp": {"num_samples": 200, "width": 16},
    "mnist1d_cnn": {"num_samples": 200, "channels": 4},
    "modular": {"p": 7, "width": 16, "heads": 2, "depth": 1},
    "charlm": {"width": 16, "heads": 2, "depth": 1, "context": 8},
    "imbalance": {"num_classes": 8, "num_samples": 200, "dim": 4},
}


def test_every_registered_task_is_covered():
    assert set(tasks.available()) == set(SMALL)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_landscape_problem_is_the_training_loss(name):
    task = tasks.get(name, **SMALL[name])
    model = task.make_model(0)
    module, criterion, (x, y) = task.landscape_problem(model, samples=16)
    assert int(y.shape[0]) >= 1
    assert {id(p) for p in module.parameters()} == {
        id(p) for p in model.parameters()
    }  # the model's own weights
    got = criterion(module(x), y)
    if (
        task.kind == "function"
    ):  # the loss is f(x) of the point; the (empty) batch only carries gradient noise
        expected = task.loss(model, (torch.zeros(1, 2),))
    else:
        expected = task.loss(model, (x, y))
    torch.testing.assert_close(got, expected)
    # the geometry tools run on it
    top = landscape.hessian_eigenvalues(module, criterion, (x, y), k=1)
    assert math.isfinite(float(top.values[0]))
    line = landscape.line(module, criterion, (x, y), points=3, span=(-0.1, 0.1))
    assert all(math.isfinite(v) for v in line.loss)


def test_quadratic_hessian_is_exact():
    task = tasks.get("quadratic", kappa=10.0, angle=0.3)
    module, criterion, data = task.landscape_problem(task.make_model(0))
    eig = landscape.hessian_eigenvalues(module, criterion, data, k=2)
    assert sorted(float(v) for v in eig.values) == pytest.approx([1.0, 10.0], rel=1e-4)


def test_logreg_includes_the_regularizer():
    task = tasks.get("logreg")
    model = task.make_model(0)
    module, criterion, data = task.landscape_problem(model)
    assert int(data[0].shape[0]) == 200  # all m rows by default: the loss is f(x)
    assert float(criterion(module(data[0]), data[1]).detach()) == pytest.approx(
        task.evaluate(model)["loss"], rel=1e-5
    )
    top = float(landscape.hessian_eigenvalues(module, criterion, data, k=1).values[0])
    assert task.mu - 1e-4 <= top <= task.L + 1e-4  # mu I <= H <= L I


class _OwnLoss(Task):
    def loss(self, model, batch):  # not a function of model(inputs): no landscape form
        return sum(p.pow(2).sum() for p in model.parameters())


def _own_loss_task(**_: object) -> Task:
    x = torch.randn(32, 3)
    y = torch.randint(0, 2, (32,))
    return _OwnLoss("ownloss", (x, y), (x, y), lambda s: nn.Linear(3, 2), default_steps=2)


def test_task_without_a_landscape_form_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    task = _own_loss_task()
    with pytest.raises(ValueError, match="has its own loss"):
        task.landscape_problem(task.make_model(0))
    monkeypatch.setitem(tasks._REGISTRY._entries, "ownloss", (_own_loss_task, "test task"))
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "s.db"
    train("ownloss", optimizer="sgd", lr=0.1, steps=2, store=db, run_id="own", progress=False)
    assert main(["landscape", "own", "--kind", "hessian", "--store", str(db)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has its own loss" in err[0] and "'own'" in err[0], err


def test_cli_landscape_on_the_readme_logreg_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "runs" / "s.db"
    train("logreg", optimizer="sgd", lr=0.1, steps=20, hparams={"momentum": 0.9}, store=db, run_id="lr01",
          progress=False)  # fmt: skip
    assert main(["landscape", "lr01", "--kind", "hessian", "--store", str(db)]) == 0, capsys.readouterr().err
    numbers = json.loads((tmp_path / "runs" / "landscape" / "lr01" / "hessian.json").read_text())
    task = tasks.get("logreg")
    assert numbers["samples"] == 200
    assert task.mu - 1e-4 <= numbers["top_eigenvalues"][0] <= task.L + 1e-4
