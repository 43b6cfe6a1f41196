"""logreg: optimality of x*, f*, the smoothness constant and the per-sample gradient variance."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from descentlab import tasks


def f_plain(x: torch.Tensor, a: torch.Tensor, y: torch.Tensor, mu: float) -> torch.Tensor:
    """The slide's formula written plainly: mu/2 ||x||^2 + 1/m sum log(1 + exp(-y <a, x>))."""
    return mu / 2 * (x * x).sum() + torch.log1p(torch.exp(-y * (a @ x))).mean()


@pytest.fixture(scope="module")
def task():
    return tasks.get("logreg")


def _data(task):
    return task.train_data[0].double(), task.train_data[1].double()


def test_data_shapes_and_labels(task) -> None:
    a, y = task.train_data
    assert a.shape == (200, 10) and y.shape == (200,) and a.dtype == torch.float32
    assert set(y.tolist()) == {-1.0, 1.0}
    assert task.val_data is task.train_data


def test_x_star_is_optimal(task) -> None:
    a, y = _data(task)
    x = task.x_star.clone().requires_grad_(True)
    f = f_plain(x, a, y, task.mu)
    (g,) = torch.autograd.grad(f, x)
    assert float(g.norm()) < 1e-8
    assert float(f.detach()) == pytest.approx(task.f_star, abs=1e-12)
    ref = minimize(
        lambda v: float(f_plain(torch.from_numpy(v), a, y, task.mu)), np.zeros(10), method="BFGS", tol=1e-12
    )
    assert np.allclose(ref.x, task.x_star.numpy(), atol=1e-5)


def test_smoothness_constant(task) -> None:
    a, y = _data(task)
    lam = np.linalg.eigvalsh((a.T @ a).numpy())[-1]
    assert task.L == pytest.approx(task.mu + lam / (4 * 200))
    assert task.L >= task.mu
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        x = 3 * torch.randn(10, generator=g, dtype=torch.float64)
        hess = torch.autograd.functional.hessian(lambda v: f_plain(v, a, y, task.mu), x)
        ev = torch.linalg.eigvalsh(hess)
        assert ev[0] >= task.mu - 1e-9 and ev[-1] <= task.L + 1e-9


def test_loss_and_evaluate_match_the_formula(task) -> None:
    a, y = _data(task)
    g = torch.Generator().manual_seed(1)
    for s in range(5):
        model = task.make_model(s)
        with torch.no_grad():
            model.weight.copy_(torch.randn(1, 10, generator=g))
        x = model.weight.detach().double().reshape(-1)
        res = task.evaluate(model)
        ref = float(f_plain(x, a, y, task.mu))
        assert res["loss"] == pytest.approx(ref, rel=1e-12)
        assert res["gap"] >= 0 and res["gap"] == pytest.approx(ref - task.f_star, rel=1e-10)
        xg = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(f_plain(xg, a, y, task.mu), xg)
        assert res["grad_norm"] == pytest.approx(float(grad.norm()), rel=1e-10)
        full = task.loss(model, task.train_data).detach()  # the full batch gives f itself
        assert float(full) == pytest.approx(ref, rel=1e-5)


def test_loss_through_a_parameterless_wrapper(task) -> None:
    """The loss reads x through model(...) so that functional wrappers (torch.func) see the regulariser."""
    model = task.make_model(0)

    class Wrapper(torch.nn.Module):
        def forward(self, inp: torch.Tensor) -> torch.Tensor:
            return model(inp)

    batch = tuple(t[:7] for t in task.train_data)
    assert float(task.loss(Wrapper(), batch).detach()) == float(task.loss(model, batch).detach())


def test_gradient_variance_against_per_sample_autograd(task) -> None:
    a, y = _data(task)
    for x in (None, torch.linspace(-1, 1, 10, dtype=torch.float64)):
        at = task.x_star if x is None else x
        grads = []
        for i in range(a.shape[0]):
            v = at.clone().requires_grad_(True)
            fi = task.mu / 2 * (v * v).sum() + torch.log1p(torch.exp(-y[i] * (a[i] @ v)))
            grads.append(torch.autograd.grad(fi, v)[0])
        gr = torch.stack(grads)
        ref = float(((gr - gr.mean(0)) ** 2).sum(1).mean())
        assert task.gradient_variance(x) == pytest.approx(ref, rel=1e-10)
        if x is None:
            assert float(gr.mean(0).norm()) < 1e-8


def test_options_and_errors() -> None:
    t = tasks.get("logreg", m=50, n=3, mu=0.1, seed=2)
    assert t.train_data[0].shape == (50, 3) and t.mu == 0.1 and t.x_star.shape == (3,)
    for bad in ({"mu": 0.0}, {"m": 0}, {"flip": 0.7}):
        with pytest.raises(ValueError):
            tasks.get("logreg", **bad)
