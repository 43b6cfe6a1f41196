"""Steepest descent under a norm: LMO properties (hypothesis), hand-written one-step formulas, scale invariance."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from torch import nn

from descentlab.optim import create
from descentlab.optim.muon import Muon
from descentlab.optim.steepest import SteepestDescent, dual_norm, lmo


def primal_norm(d: np.ndarray, norm: str) -> float:
    if norm == "l2":
        return float(np.sqrt((d**2).sum()))
    if norm == "linf":
        return float(np.abs(d).max())
    if norm == "l1":
        return float(np.abs(d).sum())
    return float(np.linalg.svd(d, compute_uv=False).max())  # spectral


def dual_reference(g: np.ndarray, norm: str) -> float:
    if norm == "l2":
        return float(np.sqrt((g**2).sum()))
    if norm == "linf":
        return float(np.abs(g).sum())
    if norm == "l1":
        return float(np.abs(g).max())
    return float(np.linalg.svd(g, compute_uv=False).sum())  # nuclear


finite = st.floats(-100, 100, allow_nan=False, width=64).filter(lambda v: abs(v) > 1e-3)
matrices = st.tuples(st.integers(1, 6), st.integers(1, 6)).flatmap(
    lambda s: arrays(np.float64, s, elements=finite)
)


@settings(max_examples=40, deadline=None)
@given(g=matrices, norm=st.sampled_from(["l2", "linf", "l1", "spectral"]))
def test_lmo_has_unit_norm_and_attains_minus_the_dual_norm(g, norm):
    d = lmo(torch.from_numpy(g), norm, ns_method="svd").numpy()
    assert primal_norm(d, norm) == pytest.approx(1.0, rel=1e-9)
    assert float((g * d).sum()) == pytest.approx(-dual_reference(g, norm), rel=1e-9)
    assert float(dual_norm(torch.from_numpy(g), norm)) == pytest.approx(dual_reference(g, norm), rel=1e-9)


def one_step(g: torch.Tensor, **kw) -> torch.Tensor:
    x = nn.Parameter(torch.zeros_like(g))
    x.grad = g.clone()
    SteepestDescent([x], **kw).step()
    return x.detach()


def test_one_step_formulas():
    g = torch.tensor([[3.0, -4.0, 0.5], [0.0, 1.0, -2.0]], dtype=torch.float64)
    lr = 0.1
    torch.testing.assert_close(one_step(g, lr=lr, norm="linf"), -lr * torch.sign(g))
    torch.testing.assert_close(
        one_step(g, lr=lr, norm="linf", scale="dual"), -lr * g.abs().sum() * torch.sign(g)
    )
    torch.testing.assert_close(one_step(g, lr=lr, norm="l2"), -lr * g / g.norm())
    torch.testing.assert_close(one_step(g, lr=lr, norm="l2", scale="dual"), -lr * g)  # plain gradient descent
    e = torch.zeros_like(g)
    e[0, 1] = 1.0  # largest |g_i| is -4 -> step +lr along that coordinate
    torch.testing.assert_close(one_step(g, lr=lr, norm="l1"), lr * e)
    torch.testing.assert_close(one_step(g, lr=lr, norm="l1", scale="dual"), lr * 4.0 * e)
    U, S, Vh = torch.linalg.svd(g, full_matrices=False)
    got = one_step(g, lr=lr, norm="spectral", scale="dual", ns_method="svd")
    torch.testing.assert_close(got, -lr * S.sum() * U @ Vh)


def test_signum_uses_the_gradient_ema():
    x = nn.Parameter(torch.zeros(3, dtype=torch.float64))
    opt = create("signum", [x], lr=0.5)
    grads = [torch.tensor([1.0, -1.0, 2.0]), torch.tensor([-3.0, 0.5, -1.0])]
    m = torch.zeros(3, dtype=torch.float64)
    expected = torch.zeros(3, dtype=torch.float64)
    for g in grads:
        x.grad = g.double()
        opt.step()
        m = 0.9 * m + 0.1 * g.double()
        expected -= 0.5 * torch.sign(m)
    torch.testing.assert_close(x.detach(), expected)
    assert set(opt.state[x]) == {"momentum_buffer"}


@pytest.mark.parametrize("name", ["signsgd", "signum", "normalized_sgd"])
@pytest.mark.parametrize("scale", [1e-3, 1e3])
def test_loss_scale_invariance_of_normalized_methods(name, scale):
    def trajectory(c):
        torch.manual_seed(0)
        x = nn.Parameter(torch.randn(5, dtype=torch.float64))
        opt = create(name, [x], lr=0.05)
        for _ in range(4):
            opt.zero_grad()
            (c * ((x - 1.0) ** 4).sum()).backward()
            opt.step()
        return x.detach()

    torch.testing.assert_close(trajectory(1.0), trajectory(scale))


def test_spectral_lmo_step_is_muon_without_momentum():
    W1 = nn.Parameter(torch.randn(5, 8, dtype=torch.float64))
    W2 = nn.Parameter(W1.detach().clone())
    g = torch.randn(5, 8, dtype=torch.float64)
    W1.grad, W2.grad = g.clone(), g.clone()
    SteepestDescent([W1], lr=0.1, norm="spectral", ns_method="svd").step()
    Muon([W2], lr=0.1, momentum=0.0, nesterov=False, adjust_lr=None, ns_method="svd").step()
    torch.testing.assert_close(W1, W2)


def test_zero_gradient_does_not_move():
    for norm in ("l2", "linf", "l1"):
        assert torch.equal(one_step(torch.zeros(4), lr=1.0, norm=norm), torch.zeros(4))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr": -1.0}, "-1.0"),
        ({"norm": "l3"}, "l3"),
        ({"scale": "huge"}, "huge"),
        ({"momentum": 1.0}, "momentum"),
        ({"ns_method": "qr"}, "qr"),
    ],
)
def test_invalid_hyper_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SteepestDescent([nn.Parameter(torch.randn(3))], **{"lr": 0.1, **kwargs})
