"""Contract checks run over every workload of descentlab.tasks (build, determinism, loss, streams, evaluate)."""

from __future__ import annotations

import math

import pytest
import torch

from descentlab import tasks

# Small options keep the suite fast; the defaults are exercised by test_defaults_build.
SMALL: dict[str, dict] = {
    "rosenbrock": {"noise": 0.5},
    "quadratic": {"noise": 0.5, "angle": 0.3},
    "multiminima": {"noise": 1.0},
    "logreg": {},
    "softmax_digits": {},
    "digits_mlp": {"width": 32},
    "mnist1d_mlp": {"num_samples": 1000},
    "mnist1d_cnn": {"num_samples": 1000, "channels": 8},
    "modular": {"p": 13, "width": 32, "heads": 2},
    "charlm": {"width": 32, "heads": 2, "depth": 1, "context": 16},
    "imbalance": {"num_classes": 20, "num_samples": 1000, "dim": 8},
}
SEEDED_DATA = ["logreg", "softmax_digits", "digits_mlp", "mnist1d_mlp", "mnist1d_cnn", "modular", "imbalance"]


def test_all_registered() -> None:
    assert set(SMALL) <= set(tasks.available())
    assert all(tasks.describe()[n] for n in SMALL)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_defaults_build(name: str) -> None:
    task = tasks.get(name)
    assert task.name == name
    assert task.kind in ("classification", "regression", "function")
    for t in (*task.train_data, *task.val_data):
        assert t.dtype in (torch.float32, torch.int64)
    model = task.make_model(0)
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_unknown_option_is_value_error() -> None:
    with pytest.raises(ValueError, match="logreg"):
        tasks.get("logreg", bogus=1)


def _equal_batches(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("name", sorted(SMALL))
def test_deterministic(name: str) -> None:
    t1, t2 = tasks.get(name, seed=3, **SMALL[name]), tasks.get(name, seed=3, **SMALL[name])
    assert _equal_batches(t1.train_data, t2.train_data) and _equal_batches(t1.val_data, t2.val_data)
    m1, m2 = t1.make_model(5), t2.make_model(5)
    for p, q in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(p, q)
    s1, s2 = t1.batches(8, seed=1), t2.batches(8, seed=1)
    assert _equal_batches(next(s1), next(s2))
    s3 = t1.batches(8, seed=2)
    assert not _equal_batches(next(t1.batches(8, seed=1)), next(s3))
    if name in SEEDED_DATA:  # data generation depends on the seed
        t3 = tasks.get(name, seed=4, **SMALL[name])
        assert not _equal_batches(t1.train_data, t3.train_data)
        m3 = t1.make_model(6)
        assert any(not torch.equal(p, q) for p, q in zip(m1.parameters(), m3.parameters()))


@pytest.mark.parametrize("name", sorted(SMALL))
def test_loss_is_finite_scalar_with_gradient(name: str) -> None:
    task = tasks.get(name, **SMALL[name])
    model = task.make_model(0)
    loss = task.loss(model, next(task.batches(16, seed=0)))
    assert loss.shape == () and math.isfinite(float(loss.detach()))
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_batches_resume_exactly(name: str) -> None:
    task = tasks.get(name, **SMALL[name])
    stream = task.batches(64, seed=7)
    for _ in range(17):  # crosses epoch boundaries for the small data sets
        next(stream)
    state = stream.state_dict()
    expected = [next(stream) for _ in range(4)]
    rebuilt = tasks.get(name, **SMALL[name]).batches(64, seed=7)
    rebuilt.load_state_dict(state)
    for e in expected:
        assert _equal_batches(e, next(rebuilt))


@pytest.mark.parametrize("name", sorted(SMALL))
def test_evaluate_keys(name: str) -> None:
    task = tasks.get(name, **SMALL[name])
    model = task.make_model(0)
    res = task.evaluate(model)
    keys = {"loss", "train_loss"}
    if task.kind == "classification":
        keys |= {"accuracy", "train_accuracy"}
    if task.kind == "function":
        keys |= {"gap", "x0", "x1", "distance"}
    assert keys <= set(res)
    assert all(isinstance(v, float) and math.isfinite(v) for v in res.values())
    if "accuracy" in res:
        assert 0.0 <= res["accuracy"] <= 1.0
