"""The speed paths of descentlab.landscape give the same numbers as the plain references (issue #4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from landscape_helpers import _data64, tiny_mlp  # noqa: F401
from torch import nn
from torch.func import functional_call

from descentlab.landscape import HessianOperator, hessian_eigenvalues, line, plane, projections
from descentlab.landscape.projections import FlatParams, _AffinePrefix

CE = nn.CrossEntropyLoss()


def dense_hessian(model, x, y):
    flat = FlatParams(model)
    return torch.func.hessian(lambda w: CE(functional_call(model, flat.to_dict(w), (x,)), y))(flat.vector)


def test_retained_graph_hvps_equal_dense_hessian_for_many_vectors(data64):
    model = tiny_mlp()
    x, y = data64
    H = dense_hessian(model, x, y)
    kept = HessianOperator(model, CE, (x, y))  # one batch: graph built once, reused
    fresh = HessianOperator(model, CE, [(x[:40], y[:40]), (x[40:], y[40:])])  # recomputed per product
    assert kept.retain and not fresh.retain
    gen = torch.Generator().manual_seed(0)
    for _ in range(4):
        v = torch.randn(H.shape[0], generator=gen, dtype=torch.float64)
        torch.testing.assert_close(kept.matvec(v), H @ v)
        torch.testing.assert_close(fresh.matvec(v), H @ v)
    assert kept.hvps == fresh.hvps == 4
    loss, grad = fresh.gradient()
    torch.testing.assert_close(kept.retained_gradient(), grad)
    assert fresh.retained_gradient() is None


@pytest.mark.parametrize("start_with_gradient", [True, False])
def test_lanczos_start_vectors_give_the_dense_top_eigenvalues(data64, start_with_gradient):
    model = tiny_mlp()
    x, y = data64
    ev = np.linalg.eigvalsh(dense_hessian(model, x, y).numpy())
    res = hessian_eigenvalues(model, CE, (x, y), k=2, tol=1e-8, start_with_gradient=start_with_gradient)
    np.testing.assert_allclose(res.values, ev[::-1][:2], rtol=1e-6)


def mlp(inputs: int, hidden: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 5)
    ).double()


@pytest.mark.parametrize(
    "samples", [64, 2400]
)  # vmap over chunks / point-by-point loop (activations > 1 MiB)
def test_fast_plane_equals_plain_loop(samples):
    model = mlp(128, 64)  # 128 inputs: the first-layer shortcut applies
    g = torch.Generator().manual_seed(2)
    x = torch.randn(samples, 128, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (samples,), generator=g)
    kw = {"points": (5, 4), "span": ((-1, 1), (-0.5, 0.7)), "ignore": None}
    fast = plane(model, CE, (x, y), **kw)
    ref = plane(model, CE, (x, y), vectorize=False, **kw)
    np.testing.assert_allclose(fast.loss, ref.loss, rtol=1e-12)
    np.testing.assert_allclose(fast.accuracy, ref.accuracy)
    split = plane(
        model, CE, [(x[: samples // 3], y[: samples // 3]), (x[samples // 3 :], y[samples // 3 :])], **kw
    )
    np.testing.assert_allclose(split.loss, ref.loss, rtol=1e-12)
    regression = line(model, nn.MSELoss(), (x, torch.zeros(samples, 5, dtype=torch.float64)), points=4)
    plain = line(
        model, nn.MSELoss(), (x, torch.zeros(samples, 5, dtype=torch.float64)), points=4, vectorize=False
    )
    assert regression.accuracy is None
    np.testing.assert_allclose(regression.loss, plain.loss, rtol=1e-12)


def test_affine_prefix_frozen_first_layer_and_when_it_does_not_apply(data64, monkeypatch):
    monkeypatch.setattr(projections, "_PREFIX_MIN_INPUTS", 1)  # exercise the shortcut on a tiny model
    x, y = data64
    model = mlp(6, 8)
    model[0].bias.requires_grad_(False)  # frozen bias: a constant, not a direction
    kw = {"points": (3, 3), "ignore": None}
    np.testing.assert_allclose(plane(model, CE, (x, y), **kw).loss, plane(model, CE, (x, y), vectorize=False, **kw).loss,
                               rtol=1e-12)  # fmt: skip
    flat = FlatParams(model)
    dirs = torch.randn(2, flat.numel, dtype=torch.float64)
    assert _AffinePrefix.build(model, flat, flat.vector, dirs, [(x, y)], 2**30) is not None
    hooked = mlp(6, 8)
    hooked[0].register_forward_hook(lambda m, i, o: o * 2)
    shared = nn.Sequential(nn.Linear(6, 6), nn.Tanh(), nn.Linear(6, 6), nn.Tanh(), nn.Linear(6, 4)).double()
    shared[2].weight = shared[0].weight  # a first-layer tensor tied to a later layer
    for other in (hooked, shared, nn.Linear(6, 4).double(), mlp(6, 8).float()):
        fo = FlatParams(other)
        d = torch.randn(2, fo.numel, dtype=fo.vector.dtype)
        assert _AffinePrefix.build(other, fo, fo.vector, d, [(x, y)], 2**30) is None
    assert _AffinePrefix.build(model, flat, flat.vector, dirs, [(x, y)], 10) is None  # over the memory budget
    for other in (hooked, shared):  # and the planes still equal the plain loop
        fast = plane(other, CE, (x, y), **kw)
        ref = plane(other, CE, (x, y), vectorize=False, **kw)
        np.testing.assert_allclose(fast.loss, ref.loss, rtol=1e-12)


def test_new_options_reject_bad_values(data64):
    """vectorize must be None/True/False and start_with_gradient a bool: a clear ValueError naming the value."""
    model, data = tiny_mlp(), data64
    with pytest.raises(ValueError, match="vectorize must be None, True or False, got 'yes'"):
        line(model, CE, data, points=3, vectorize="yes")
    with pytest.raises(ValueError, match="start_with_gradient must be True or False, got 1"):
        hessian_eigenvalues(model, CE, data, start_with_gradient=1)
