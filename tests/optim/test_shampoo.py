"""Shampoo against dense formulas (scipy's fractional_matrix_power), torch.optim.Adam/AdamW, and SVD (seed 000)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import scipy.linalg
import torch

from descentlab.optim.shampoo import Shampoo


def _inv_root(mat: torch.Tensor, eps: float) -> torch.Tensor:
    """(mat + eps I)^{-1/4} by scipy (Schur-Pade), independent of Shampoo's eigh."""
    a = mat.double().numpy() + eps * np.eye(mat.shape[0])
    return torch.from_numpy(np.real(scipy.linalg.fractional_matrix_power(a, -0.25)))


def _uvt(g: torch.Tensor) -> torch.Tensor:
    u, _, vh = torch.linalg.svd(g.double(), full_matrices=False)
    return u @ vh


def _step_with_grad(
    opt: torch.optim.Optimizer, params: list[torch.Tensor], grads: list[torch.Tensor]
) -> None:
    for p, g in zip(params, grads):
        p.grad = g.clone()
    opt.step()


def test_first_update_equals_dense_formula_no_grafting():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(5, 3, dtype=torch.float64))
    w0 = w.detach().clone()
    g = torch.randn(5, 3, dtype=torch.float64)
    eps, lr = 1e-3, 0.1
    opt = Shampoo([w], lr=lr, epsilon=eps, grafting="none")
    _step_with_grad(opt, [w], [g])
    direction = _inv_root(g @ g.T, eps) @ g @ _inv_root(g.T @ g, eps)
    torch.testing.assert_close(w.detach(), w0 - lr * direction, rtol=1e-9, atol=1e-10)


def test_first_update_with_adam_grafting_has_adams_norm():
    torch.manual_seed(1)
    w = torch.nn.Parameter(torch.randn(4, 6, dtype=torch.float64))
    w0 = w.detach().clone()
    g = torch.randn(4, 6, dtype=torch.float64)
    eps, lr = 1e-6, 0.01
    opt = Shampoo([w], lr=lr, epsilon=eps, grafting="adam")
    _step_with_grad(opt, [w], [g])
    shampoo_dir = _inv_root(g @ g.T, eps) @ g @ _inv_root(g.T @ g, eps)
    adam_dir = g / (
        g.abs() + 1e-8
    )  # Adam's first step: m_hat / (sqrt(v_hat) + eps) with m_hat = g, v_hat = g^2
    expected = shampoo_dir * adam_dir.norm() / shampoo_dir.norm()
    torch.testing.assert_close(w.detach(), w0 - lr * expected, rtol=1e-9, atol=1e-10)


def test_two_steps_ema_statistics_and_adagrad_grafting_match_plain_restatement():
    torch.manual_seed(2)
    w = torch.nn.Parameter(torch.randn(3, 4, dtype=torch.float64))
    w_ref = w.detach().clone()
    grads = [torch.randn(3, 4, dtype=torch.float64) for _ in range(3)]
    b1, b2, eps, lr, wd = 0.5, 0.9, 1e-4, 0.05, 0.1
    opt = Shampoo([w], lr=lr, betas=(b1, b2), epsilon=eps, grafting="adagrad", weight_decay=wd)
    L, R = torch.zeros(3, 3, dtype=torch.float64), torch.zeros(4, 4, dtype=torch.float64)
    m, acc = torch.zeros(3, 4, dtype=torch.float64), torch.zeros(3, 4, dtype=torch.float64)
    for t, g in enumerate(grads, start=1):
        _step_with_grad(opt, [w], [g])
        L = b2 * L + (1 - b2) * g @ g.T  # the right factor sees the raw gradient, not a preconditioned one
        R = b2 * R + (1 - b2) * g.T @ g
        m = b1 * m + (1 - b1) * g
        m_hat = m / (1 - b1**t)
        acc = acc + g * g
        graft = m_hat / (acc.sqrt() + 1e-8)
        d = _inv_root(L, eps) @ m_hat @ _inv_root(R, eps)
        w_ref = w_ref * (1 - lr * wd) - lr * d * graft.norm() / d.norm()
        torch.testing.assert_close(w.detach(), w_ref, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_never_preconditioning_with_adam_grafting_equals_torch_adam(weight_decay):
    torch.manual_seed(3)
    shapes = [(6, 4), (4,), (2, 3, 2, 2)]
    inits = [torch.randn(s) for s in shapes]
    ours = [torch.nn.Parameter(x.clone()) for x in inits]
    ref = [torch.nn.Parameter(x.clone()) for x in inits]
    opt = Shampoo(
        ours,
        lr=0.01,
        betas=(0.9, 1.0),
        start_preconditioning_step=10**9,
        grafting="adam",
        weight_decay=weight_decay,
    )
    ref_opt = torch.optim.AdamW(ref, lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=weight_decay)
    for _ in range(10):
        grads = [torch.randn(s) for s in shapes]
        _step_with_grad(opt, ours, grads)
        _step_with_grad(ref_opt, ref, grads)
        for a, b in zip(ours, ref):
            torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(6, 6), (4, 9), (9, 4)])
def test_single_gradient_no_accumulation_gives_muon_direction(shape):
    # Seeds 000/002: (G G^T)^{-1/4} G (G^T G)^{-1/4} = U V^T.
    torch.manual_seed(4)
    w = torch.nn.Parameter(torch.zeros(shape, dtype=torch.float64))
    g = torch.randn(shape, dtype=torch.float64)
    opt = Shampoo([w], lr=1.0, betas=(0.0, 1.0), epsilon=1e-20, grafting="none")
    _step_with_grad(opt, [w], [g])
    torch.testing.assert_close(-w.detach(), _uvt(g), rtol=1e-6, atol=1e-7)


def test_blocking_above_max_dim_and_flattening():
    torch.manual_seed(5)
    w = torch.nn.Parameter(torch.zeros(6, 2, 5, dtype=torch.float64))  # flattened to 6 x 10
    g = torch.randn(6, 2, 5, dtype=torch.float64)
    opt = Shampoo([w], lr=1.0, betas=(0.0, 1.0), epsilon=1e-20, grafting="none", max_preconditioner_dim=4)
    _step_with_grad(opt, [w], [g])
    state = opt.state[w]
    assert [t.shape[0] for t in state["L"]] == [4, 4, 4, 2, 2, 2]
    assert [t.shape[0] for t in state["R"]] == [4, 4, 2, 4, 4, 2]
    g2, d2 = g.reshape(6, 10), -w.detach().reshape(6, 10)
    for rs in (slice(0, 4), slice(4, 6)):
        for cs in (slice(0, 4), slice(4, 8), slice(8, 10)):
            torch.testing.assert_close(d2[rs, cs], _uvt(g2[rs, cs]), rtol=1e-6, atol=1e-7)


def test_grafting_norm_is_per_block():
    torch.manual_seed(6)
    w = torch.nn.Parameter(torch.zeros(5, 3, dtype=torch.float64))
    g = torch.randn(5, 3, dtype=torch.float64)
    opt = Shampoo([w], lr=1.0, betas=(0.0, 1.0), grafting="sgd", max_preconditioner_dim=2)
    _step_with_grad(opt, [w], [g])
    d = -w.detach()
    for rs in (slice(0, 2), slice(2, 4), slice(4, 5)):
        for cs in (slice(0, 2), slice(2, 3)):
            torch.testing.assert_close(d[rs, cs].norm(), g[rs, cs].norm())


def test_precondition_frequency_reuses_stale_roots():
    torch.manual_seed(7)
    w = torch.nn.Parameter(torch.zeros(3, 3, dtype=torch.float64))
    g1, g2 = torch.randn(3, 3, dtype=torch.float64), torch.randn(3, 3, dtype=torch.float64)
    eps = 1e-3
    opt = Shampoo([w], lr=1.0, betas=(0.0, 1.0), epsilon=eps, grafting="none", precondition_frequency=2)
    _step_with_grad(opt, [w], [g1])
    w1 = w.detach().clone()
    _step_with_grad(opt, [w], [g2])  # step 2: roots still from the statistics of step 1
    expected = _inv_root(g1 @ g1.T, eps) @ g2 @ _inv_root(g1.T @ g1, eps)
    torch.testing.assert_close(w1 - w.detach(), expected, rtol=1e-8, atol=1e-10)


def test_failed_root_keeps_previous_preconditioner(monkeypatch):
    w = torch.nn.Parameter(torch.zeros(3, 2))
    g = torch.randn(3, 2)
    opt = Shampoo([w], lr=1.0, grafting="none")

    def failing_eigh(*args, **kwargs):
        raise torch.linalg.LinAlgError("forced failure")

    monkeypatch.setattr(torch.linalg, "eigh", failing_eigh)
    _step_with_grad(opt, [w], [g])  # no root ever computed: the identity is kept, direction = m_hat = g
    torch.testing.assert_close(-w.detach(), g)
    assert torch.equal(opt.state[w]["root_L"][0], torch.eye(3))


def test_zero_gradient_is_a_no_op_and_finite():
    w = torch.nn.Parameter(torch.randn(4, 3))
    w0 = w.detach().clone()
    for grafting in ("adam", "adagrad", "sgd", "none"):
        opt = Shampoo([w], lr=0.1, grafting=grafting)
        _step_with_grad(opt, [w], [torch.zeros(4, 3)])
        assert torch.equal(w.detach(), w0), grafting


def test_state_dict_round_trip_into_fresh_params_with_blocks():
    torch.manual_seed(8)
    init = torch.randn(5, 7)
    grads = [torch.randn(5, 7) for _ in range(8)]

    def make():
        p = torch.nn.Parameter(init.clone())
        return p, Shampoo([p], lr=0.01, max_preconditioner_dim=3, precondition_frequency=2)

    p_a, opt_a = make()
    for g in grads[:4]:
        _step_with_grad(opt_a, [p_a], [g])
    buf = io.BytesIO()
    torch.save({"p": p_a.detach().clone(), "opt": opt_a.state_dict()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=False)
    p_b, opt_b = make()
    with torch.no_grad():
        p_b.copy_(ckpt["p"])
    opt_b.load_state_dict(ckpt["opt"])
    for g in grads[4:]:
        _step_with_grad(opt_a, [p_a], [g])
        _step_with_grad(opt_b, [p_b], [g])
    assert torch.equal(p_a.detach(), p_b.detach())


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"lr": -1.0}, "lr"),
        ({"betas": (1.0, 1.0)}, "betas[0]"),
        ({"betas": (0.9, 1.5)}, "betas[1]"),
        ({"epsilon": 0.0}, "epsilon"),
        ({"precondition_frequency": 0}, "precondition_frequency"),
        ({"start_preconditioning_step": 0}, "start_preconditioning_step"),
        ({"max_preconditioner_dim": 0}, "max_preconditioner_dim"),
        ({"grafting": "rmsprop"}, "grafting"),
        ({"weight_decay": -0.1}, "weight_decay"),
    ],
)
def test_invalid_hyperparameters_raise(kwargs, name):
    with pytest.raises(ValueError, match=name.replace("[", r"\[").replace("]", r"\]")):
        Shampoo([torch.nn.Parameter(torch.zeros(2, 2))], **kwargs)


def test_registry_builds_shampoo_and_it_descends():
    from descentlab.optim import create

    torch.manual_seed(9)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    x, y = torch.randn(64, 4), torch.randn(64, 1)
    opt = create("shampoo", model, lr=0.01)
    assert isinstance(opt, Shampoo)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    first = opt.step(closure).item()
    for _ in range(30):
        last = opt.step(closure).item()
    assert last < 0.8 * first
