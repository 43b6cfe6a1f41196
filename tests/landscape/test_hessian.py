from __future__ import annotations

import numpy as np
import pytest
import torch
from landscape_helpers import _data64, assert_unchanged, bn_mlp, snapshot, tiny_mlp  # noqa: F401
from torch import nn
from torch.func import functional_call

from descentlab.landscape import (
    hessian_eigenvalues,
    hessian_spectral_density,
    hessian_trace,
    hessian_vector_product,
)
from descentlab.landscape.projections import FlatParams

CE = nn.CrossEntropyLoss()


def dense_hessian(model, x, y):
    flat = FlatParams(model)
    return torch.func.hessian(lambda w: CE(functional_call(model, flat.to_dict(w), (x,)), y))(flat.vector)


@pytest.fixture(name="problem")
def _problem(data64):
    model = tiny_mlp()
    x, y = data64
    H = dense_hessian(model, x, y)
    return model, (x, y), H, np.linalg.eigvalsh(H.numpy())


def test_hvp_equals_dense_product_over_batches(problem):
    model, (x, y), H, _ = problem
    v = torch.randn(H.shape[0], dtype=torch.float64)
    batches = [(x[:20], y[:20]), (x[20:], y[20:])]  # unequal sizes: weighted by batch size
    torch.testing.assert_close(hessian_vector_product(model, CE, batches, v), H @ v)
    as_dict = hessian_vector_product(model, CE, (x, y), FlatParams(model).to_dict(v))
    torch.testing.assert_close(FlatParams(model).from_dict(as_dict), H @ v)


@pytest.mark.parametrize("which", ["largest", "smallest", "magnitude"])
def test_lanczos_eigenvalues_match_dense(problem, which):
    model, data, H, ev = problem
    values, vectors = res = hessian_eigenvalues(model, CE, data, k=3, which=which)
    expected = {"largest": ev[::-1][:3], "smallest": ev[:3], "magnitude": ev[np.argsort(-np.abs(ev))][:3]}[
        which
    ]
    if which == "magnitude":
        values = values[np.argsort(-np.abs(values))]
    np.testing.assert_allclose(values, expected, rtol=1e-4)
    assert res.hvps < H.shape[0]
    for lam, v in zip(res.values, vectors):
        torch.testing.assert_close(H @ v, lam * v, atol=1e-3 * abs(ev).max(), rtol=0)


def test_power_method_top_eigenvalue(problem):
    model, data, _, ev = problem
    res = hessian_eigenvalues(model, CE, data, k=1, method="power", tol=1e-8, max_iter=2000)
    assert res.values[0] == pytest.approx(ev[-1], rel=1e-4)
    small = hessian_eigenvalues(
        model, CE, data, k=1, which="smallest", method="power", tol=1e-9, max_iter=3000
    )
    assert small.values[0] == pytest.approx(ev[0], rel=1e-3)


@pytest.mark.parametrize("method", ["hutchinson", "hutch++"])
def test_trace_within_three_standard_errors(problem, method):
    model, data, H, _ = problem
    mean, se = hessian_trace(model, CE, data, samples=150, method=method, seed=1)
    exact = float(torch.trace(H))
    assert se > 0 and abs(mean - exact) < 3 * se
    assert se < 0.2 * abs(exact)


def test_spectral_density_matches_dense_histogram(problem):
    model, data, H, ev = problem
    dens = hessian_spectral_density(model, CE, data, iterations=40, runs=30, seed=2)
    area = (
        np.trapezoid(dens.density, dens.grid)
        if hasattr(np, "trapezoid")
        else np.trapz(dens.density, dens.grid)
    )
    assert area == pytest.approx(1.0, abs=1e-9)
    xs = np.linspace(ev.min(), ev.max(), 200)
    empirical = (ev[None, :] <= xs[:, None]).mean(1)
    assert np.abs(dens.cdf(xs) - empirical).max() < 0.12  # Kolmogorov distance
    mean = float((dens.nodes * dens.weights).sum() / dens.weights.sum())
    assert mean == pytest.approx(ev.mean(), abs=0.25 * ev.std())
    # the smoothed density's mean agrees with its quadrature
    assert float(np.trapezoid(dens.grid * dens.density, dens.grid)) == pytest.approx(
        mean, abs=0.01 * ev.std()
    )


def test_hessian_functions_leave_bn_model_untouched():
    model = bn_mlp()
    model.train()
    before = snapshot(model)
    data = (torch.randn(32, 6), torch.randint(0, 4, (32,)))
    hessian_eigenvalues(model, CE, data, k=1, tol=1e-3)
    hessian_trace(model, CE, data, samples=4)
    hessian_spectral_density(model, CE, data, iterations=5)
    assert_unchanged(model, before)
    assert all(m.training for m in model.modules())


def test_transformer_hvp_works_with_math_attention():
    torch.manual_seed(0)
    model = nn.Sequential(nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True), nn.Flatten())
    x, y = torch.randn(4, 3, 8), torch.randn(4, 24)
    v = torch.randn(sum(p.numel() for p in model.parameters()))
    hv = hessian_vector_product(model, nn.MSELoss(), (x, y), v)
    assert torch.isfinite(hv).all() and hv.abs().sum() > 0


@pytest.mark.parametrize(
    "kwargs", [{"k": 0}, {"which": "top"}, {"method": "arnoldi"}, {"tol": 0.0}]
)  # fmt: skip
def test_eigen_bad_arguments(problem, kwargs):
    model, data, _, _ = problem
    with pytest.raises(ValueError):
        hessian_eigenvalues(model, CE, data, **kwargs)


def test_trace_and_density_bad_arguments(problem):
    model, data, _, _ = problem
    with pytest.raises(ValueError):
        hessian_trace(model, CE, data, method="exact")
    with pytest.raises(ValueError):
        hessian_trace(model, CE, data, samples=1)
    with pytest.raises(ValueError):
        hessian_spectral_density(model, CE, data, runs=0)
