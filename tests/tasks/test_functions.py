"""2-D functions: closed forms, minimizers, the gradient-noise model and the multiminima landscape."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from descentlab import tasks
from descentlab.tasks.functions import multiminima, quadratic, rosenbrock


def _grad(task, point) -> torch.Tensor:
    model = task.make_model(0)
    with torch.no_grad():
        model.x.copy_(torch.tensor(point))
    task.loss(model, next(task.batches(1))).backward()
    return model.x.grad


def test_rosenbrock_minimum_and_start_value() -> None:
    task = tasks.get("rosenbrock")
    assert task.minimizer == (1.0, 1.0) and task.f_star == 0.0
    assert float(rosenbrock(torch.tensor(1.0), torch.tensor(1.0))) == 0.0
    assert torch.allclose(_grad(task, [1.0, 1.0]), torch.zeros(2))
    # (1 + 1.2)^2 + 100 (1 - 1.44)^2 = 4.84 + 19.36
    assert task.evaluate(task.make_model(0))["loss"] == pytest.approx(24.2, rel=1e-6)
    # gradient formula written plainly: (-2(1-x) - 400 x (y - x^2), 200 (y - x^2))
    x, y = 0.3, -0.7
    ref = torch.tensor([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)])
    assert torch.allclose(_grad(task, [x, y]), ref, rtol=1e-5)
    t2 = tasks.get("rosenbrock", a=2.0)
    assert t2.minimizer == (2.0, 4.0)


def test_plain_functions_accept_numpy_and_torch() -> None:
    xs, ys = np.meshgrid(np.linspace(-2, 2, 5), np.linspace(-1, 3, 5))
    for fn in (rosenbrock, quadratic, multiminima):
        a = fn(xs, ys)
        b = fn(torch.from_numpy(xs), torch.from_numpy(ys)).numpy()
        assert a.shape == xs.shape and np.allclose(a, b)


@pytest.mark.parametrize("angle", [0.0, 0.7])
def test_quadratic_closed_form_and_gd_trajectory(angle: float) -> None:
    kappa = 10.0
    task = tasks.get("quadratic", kappa=kappa, angle=angle)
    # independent A from its eigendecomposition: eigenvector of eigenvalue kappa is (-sin, cos)
    q = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    a = q @ np.diag([1.0, kappa]) @ q.T
    v = np.array([0.4, -1.3])
    assert float(quadratic(v[0], v[1], kappa, angle)) == pytest.approx(0.5 * v @ a @ v)
    assert np.allclose(task.extra["A"].numpy(), a)
    hess = torch.autograd.functional.hessian(lambda p: task.value(p), torch.tensor(v))
    assert np.allclose(np.linalg.eigvalsh(hess.numpy()), [1.0, kappa])
    # GD with step 1/L: x_k = (I - A/L)^k x_0
    model = task.make_model(0)
    opt = torch.optim.SGD(model.parameters(), lr=task.default_lr)
    stream = task.batches(1)
    for _ in range(15):
        opt.zero_grad()
        task.loss(model, next(stream)).backward()
        opt.step()
    expected = np.linalg.matrix_power(np.eye(2) - a / kappa, 15) @ np.array(task.start)
    assert np.allclose(model.x.detach().numpy(), expected, atol=1e-5)


def test_noise_adds_isotropic_gaussian_gradient_noise() -> None:
    sigma = 2.0
    clean, noisy = tasks.get("quadratic", angle=0.2), tasks.get("quadratic", angle=0.2, noise=sigma)
    model = noisy.make_model(0)
    stream = noisy.batches(1, seed=0)
    g0 = _grad(clean, list(noisy.start))
    diffs = []
    for _ in range(4000):
        batch = next(stream)
        model.zero_grad()
        noisy.loss(model, batch).backward()
        diffs.append(model.x.grad - g0)
        assert torch.allclose(diffs[-1], sigma * batch[0].mean(0), atol=1e-5)
    d = torch.stack(diffs).double()
    assert d.mean(0).abs().max() < 0.15  # unbiased: sd of the mean is sigma / sqrt(4000) ~ 0.03
    cov = d.T @ d / len(d)
    assert torch.allclose(cov, sigma**2 * torch.eye(2, dtype=torch.float64), atol=0.4)
    # the noise-free evaluation ignores the noise
    assert noisy.evaluate(model)["loss"] == clean.evaluate(clean.make_model(0))["loss"]


def test_multiminima_gd_is_trapped_in_a_local_minimum() -> None:
    task = tasks.get("multiminima")
    assert float(multiminima(0.0, 0.0)) == 0.0
    model = task.make_model(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    stream = task.batches(1)
    for _ in range(1500):
        opt.zero_grad()
        task.loss(model, next(stream)).backward()
        opt.step()
    res = task.evaluate(model)
    assert res["loss"] > 0.3  # well above the global minimum f* = 0 ...
    assert _grad(task, model.x.detach().tolist()).norm() < 1e-4  # ... at a stationary point
    hess = torch.autograd.functional.hessian(lambda p: task.value(p), model.x.detach().double())
    assert (torch.linalg.eigvalsh(hess) > 0).all()  # which is a local minimum
    assert res["x0"] == pytest.approx(2.0, abs=0.05) and res["x1"] == pytest.approx(-2.0, abs=0.05)


@pytest.mark.parametrize(
    "name, kw",
    [
        ("quadratic", {"kappa": 0.5}),
        ("rosenbrock", {"noise": -1.0}),
        ("rosenbrock", {"start": (1.0, 2.0, 3.0)}),
    ],
)
def test_bad_options(name: str, kw: dict) -> None:
    with pytest.raises(ValueError):
        tasks.get(name, **kw)
