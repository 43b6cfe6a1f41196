from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from landscape_helpers import assert_unchanged, bn_mlp, snapshot
from torch import nn

from descentlab.landscape import average_flatness, sam_epsilon, sharpness


class Quadratic(nn.Module):
    """L(w) = 1/2 (w - w*)^T A (w - w*), returned per sample; minimum at w* (the init)."""

    def __init__(self, eigenvalues: torch.Tensor, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        n = eigenvalues.numel()
        q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
        self.register_buffer("A", q @ torch.diag(eigenvalues.double()) @ q.T)
        self.register_buffer("center", torch.randn(n, generator=g, dtype=torch.float64))
        self.w = nn.Parameter(self.center.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.w - self.center
        return (0.5 * d @ self.A @ d).expand(x.shape[0])


def mean_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return outputs.mean()


DATA = (torch.zeros(4, 1), torch.zeros(4))


def test_sharpness_at_quadratic_minimum_is_half_rho2_lambda_max():
    eig = torch.tensor([10.0, 6.0, 5.0, 3.0, 2.0, 1.0, 0.5, 0.1] + [0.01] * 12)
    model = Quadratic(eig)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rho = 0.05
    res = sharpness(model, mean_loss, DATA, rho=rho, p=2, steps=30)
    assert res.value == pytest.approx(rho**2 * 10.0 / 2, rel=0.02)
    assert res.epsilon_norm == pytest.approx(rho, rel=1e-6)
    assert float(res) == res.value and res.base_loss == pytest.approx(0.0, abs=1e-14)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_sharpness_linf_stays_in_box_and_beats_first_step():
    model = Quadratic(torch.tensor([4.0, -1.0, 0.5, 2.0]), seed=1)
    with torch.no_grad():
        model.w.add_(0.3)  # off the minimum: the gradient gives SAM's first step
    res = sharpness(model, mean_loss, DATA, rho=0.1, p=math.inf, steps=10)
    assert res.epsilon_norm <= 0.1 + 1e-12
    assert res.value >= res.history[0] > 0
    # brute force over the vertices of the box (a convex quadratic's max over a box sits at a vertex if A >= 0 on it)
    assert res.value <= max(res.history) + 1e-12


@pytest.mark.parametrize("p", [2.0, 3.0, 1.5, math.inf])
def test_sam_epsilon_has_norm_rho_and_maximizes_linearization(p):
    g = torch.randn(50, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    eps = sam_epsilon(g, 0.2, p)
    assert float(eps.norm(p=p)) == pytest.approx(0.2, rel=1e-9)
    q = 1.0 if math.isinf(p) else p / (p - 1)
    assert float(eps @ g) == pytest.approx(0.2 * float(g.norm(p=q)), rel=1e-9)  # Hoelder: max = rho ||g||_q
    if p == 2.0:
        torch.testing.assert_close(eps, 0.2 * g / g.norm())


def test_average_flatness_of_quadratic_is_half_sigma2_trace():
    eig = torch.linspace(0.5, 4.0, 30)
    model = Quadratic(eig)
    sigma = 0.1
    mean, se = average_flatness(model, mean_loss, DATA, sigma=sigma, samples=200)
    exact = 0.5 * sigma**2 * float(eig.sum())
    assert abs(mean - exact) < 3 * se and se < 0.2 * exact


def test_sharpness_leaves_bn_model_untouched_and_rejects_bad_values():
    model = bn_mlp()
    before = snapshot(model)
    data = (torch.randn(32, 6), torch.randint(0, 4, (32,)))
    crit = nn.CrossEntropyLoss()
    assert sharpness(model, crit, data, steps=3).value > 0
    assert np.isfinite(average_flatness(model, crit, data, sigma=0.01, samples=4).mean)
    assert_unchanged(model, before)
    for kwargs in ({"rho": 0.0}, {"p": 0.5}, {"steps": 0}):
        with pytest.raises(ValueError):
            sharpness(model, crit, data, **kwargs)
    with pytest.raises(ValueError):
        average_flatness(model, crit, data, sigma=-1.0)
