"""The registry's torch optimizers follow the lecture slides' update rules step for step (docs/optimizers.md).

Each rule is written plainly in float64 numpy as the seed states it (seed 001 "Стохастический градиентный спуск",
seed 003 "Lecture 13: Optimization for Deep Learning"), then run side by side with ``descentlab.optim.create``
on the same noisy quadratic: the gradient at step k is ``A x - b + noise[k]`` with a fixed noise sequence, each
method at its own iterate. Where torch's convention differs from the slide, the test states the mapping.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from descentlab import optim

STEPS = 20
DIM = 5
_rng = np.random.default_rng(0)
_Q, _ = np.linalg.qr(_rng.standard_normal((DIM, DIM)))
A = _Q @ np.diag(np.linspace(0.5, 3.0, DIM)) @ _Q.T
B = _rng.standard_normal(DIM)
X0 = _rng.standard_normal(DIM)
NOISE = 0.3 * _rng.standard_normal((STEPS, DIM))


def grad(x: np.ndarray, k: int) -> np.ndarray:
    """Stochastic gradient of f(x) = x'Ax/2 - b'x at step k (k = 0, 1, ...)."""
    return A @ x - B + NOISE[k]


def run_registry(name: str, **hp) -> np.ndarray:
    """Iterates x_1 .. x_STEPS of the registry's optimizer, in float64."""
    p = torch.nn.Parameter(torch.tensor(X0, dtype=torch.float64))
    opt = optim.create(name, [p], **hp)
    out = []
    for k in range(STEPS):
        p.grad = torch.from_numpy(grad(p.detach().numpy(), k))
        opt.step()
        out.append(p.detach().numpy().copy())
    return np.array(out)


def run_formula(update) -> np.ndarray:
    """Iterates of ``update(x, g, k, state) -> x`` (k = 1, 2, ... as in the slides' bias corrections)."""
    x, state, out = X0.copy(), {}, []
    for k in range(1, STEPS + 1):
        x = update(x, grad(x, k - 1), k, state)
        out.append(x.copy())
    return np.array(out)


def assert_same_path(ours: np.ndarray, slide: np.ndarray) -> None:
    np.testing.assert_allclose(ours, slide, rtol=1e-6, atol=1e-9)
    assert not np.allclose(ours[-1], X0)  # it did move


# ------------------------------------------------------------------ SGD and momentum


def test_sgd():
    # seed 001: x_{k+1} = x_k - alpha grad f_{i_k}(x_k)
    alpha = 0.1
    assert_same_path(run_registry("sgd", lr=alpha), run_formula(lambda x, g, k, s: x - alpha * g))


def test_heavy_ball_momentum():
    # seed 003: m_t = beta m_{t-1} + grad F(x_t), x_{t+1} = x_t - eta m_t   (m_0 = 0)
    eta, beta = 0.05, 0.9

    def update(x, g, k, s):
        s["m"] = beta * s.get("m", 0.0) + g
        return x - eta * s["m"]

    assert_same_path(run_registry("sgd", lr=eta, momentum=beta), run_formula(update))


def test_ema_momentum_is_dampening_beta_except_first_step():
    # seed 003 (decoupled SGD, eq. 10): m_t = beta m_{t-1} + (1 - beta) g_t. torch's dampening = beta (it scales g by
    # 1 - dampening) gives that from step 2 on; at step 1 torch sets m_1 = g_1 (not (1 - beta) g_1).
    eta, beta = 0.1, 0.8

    def update(x, g, k, s):
        s["m"] = g if k == 1 else beta * s["m"] + (1 - beta) * g
        return x - eta * s["m"]

    assert_same_path(run_registry("sgd", lr=eta, momentum=beta, dampening=beta), run_formula(update))


def test_nesterov_is_sutskever_at_the_lookahead_point():
    # Sutskever et al. 2013 (cited in seed 002): v_{k+1} = beta v_k - eta grad f(x_k + beta v_k),
    # x_{k+1} = x_k + v_{k+1}. torch's nesterov=True stores y_k = x_k + beta v_k (the look-ahead point) as the
    # parameter: y_{k+1} = y_k - eta (g_k + beta m_k), m_k = beta m_{k-1} + g_k. Compare torch's p with y_k.
    eta, beta = 0.05, 0.9

    def update(y, g, k, s):  # carries x and v in s; g is the gradient at the look-ahead point y
        x, v = s.get("x", X0.copy()), s.get("v", np.zeros(DIM))
        v = beta * v - eta * g
        x = x + v
        s["x"], s["v"] = x, v
        return x + beta * v

    assert_same_path(run_registry("sgd", lr=eta, momentum=beta, nesterov=True), run_formula(update))


# ------------------------------------------------------------------ adaptive methods


def adagrad_slide(alpha: float, eps: float, eps_outside: bool = False):
    # seed 001: v_k = v_{k-1} + g_k^2, x_k = x_{k-1} - alpha g_k / sqrt(v_k + eps)
    def update(x, g, k, s):
        s["v"] = s.get("v", 0.0) + g**2
        denom = np.sqrt(s["v"]) + eps if eps_outside else np.sqrt(s["v"] + eps)
        return x - alpha * g / denom

    return update


def test_adagrad():
    # torch: eps outside the sqrt, plus lr_decay (0) and initial_accumulator_value (0). With eps = 0 the two agree;
    # with eps > 0 torch is the slide with eps moved outside the sqrt.
    alpha = 0.5
    assert_same_path(run_registry("adagrad", lr=alpha, eps=0.0), run_formula(adagrad_slide(alpha, 0.0)))
    ours = run_registry("adagrad", lr=alpha, eps=1e-2)
    assert_same_path(ours, run_formula(adagrad_slide(alpha, 1e-2, eps_outside=True)))
    assert not np.allclose(ours, run_formula(adagrad_slide(alpha, 1e-2)), rtol=1e-6, atol=1e-9)


def test_adagrad_lr_decay_and_initial_accumulator():
    # torch's extras: step size alpha / (1 + (k - 1) lr_decay) and v_0 = initial_accumulator_value.
    alpha, decay, v0 = 0.5, 0.1, 0.2

    def update(x, g, k, s):
        s["v"] = s.get("v", v0) + g**2
        return x - alpha / (1 + (k - 1) * decay) * g / np.sqrt(s["v"])

    ours = run_registry("adagrad", lr=alpha, eps=0.0, lr_decay=decay, initial_accumulator_value=v0)
    assert_same_path(ours, run_formula(update))


def rmsprop_slide(alpha: float, gamma: float, eps: float, eps_outside: bool = False):
    # seed 001: v_k = gamma v_{k-1} + (1 - gamma) g_k^2, x_k = x_{k-1} - alpha g_k / sqrt(v_k + eps)
    def update(x, g, k, s):
        s["v"] = gamma * s.get("v", 0.0) + (1 - gamma) * g**2
        denom = np.sqrt(s["v"]) + eps if eps_outside else np.sqrt(s["v"] + eps)
        return x - alpha * g / denom

    return update


def test_rmsprop():
    # torch's alpha is the slide's gamma; eps outside the sqrt.
    alpha, gamma = 0.01, 0.9
    ours = run_registry("rmsprop", lr=alpha, alpha=gamma, eps=0.0)
    assert_same_path(ours, run_formula(rmsprop_slide(alpha, gamma, 0.0)))
    ours = run_registry("rmsprop", lr=alpha, alpha=gamma, eps=1e-2)
    assert_same_path(ours, run_formula(rmsprop_slide(alpha, gamma, 1e-2, eps_outside=True)))


def adam_slide(alpha, beta1, beta2, eps, wd=0.0, amsgrad=False):
    # seed 001: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; m^ = m / (1-b1^k); v^ = v / (1-b2^k);
    # x_k = x_{k-1} - alpha (m^ / (sqrt(v^) + eps) + wd x_{k-1})   (wd > 0: the AdamW slide)
    # AMSGrad (Reddi et al. 2018, in torch's form): v^ = max_{i<=k} v_i / (1 - b2^k).
    def update(x, g, k, s):
        s["m"] = beta1 * s.get("m", 0.0) + (1 - beta1) * g
        s["v"] = beta2 * s.get("v", 0.0) + (1 - beta2) * g**2
        s["vmax"] = np.maximum(s.get("vmax", 0.0), s["v"])
        m_hat = s["m"] / (1 - beta1**k)
        v_hat = (s["vmax"] if amsgrad else s["v"]) / (1 - beta2**k)
        return x - alpha * (m_hat / (np.sqrt(v_hat) + eps) + wd * x)

    return update


def test_adam_with_bias_correction():
    hp = dict(alpha=0.05, beta1=0.9, beta2=0.99, eps=1e-3)
    ours = run_registry("adam", lr=0.05, betas=(0.9, 0.99), eps=1e-3)
    assert_same_path(ours, run_formula(adam_slide(**hp)))


def test_adam_default_kernel_matches_for_loop():
    fused = run_registry("adam", lr=0.05)
    plain = run_registry("adam", lr=0.05, fused=False, foreach=False)
    np.testing.assert_allclose(fused, plain, rtol=1e-12, atol=1e-14)


def test_amsgrad():
    # Reddi et al. take the max of v and use no bias correction; torch (and this registry's 'amsgrad') takes the
    # max of the raw v and divides by the current (1 - b2^k).
    ours = run_registry("amsgrad", lr=0.05, betas=(0.5, 0.9), eps=1e-3)
    assert_same_path(ours, run_formula(adam_slide(0.05, 0.5, 0.9, 1e-3, amsgrad=True)))
    assert not np.allclose(ours, run_formula(adam_slide(0.05, 0.5, 0.9, 1e-3)), rtol=1e-6)


def test_adamw_decoupled_decay():
    # seed 001: x_k = x_{k-1} - alpha (m^/(sqrt(v^)+eps) + lambda x_{k-1}); torch: x *= 1 - lr wd first, the same.
    # (Loshchilov & Hutter's eta_t lambda without alpha maps to weight_decay = lambda / alpha.)
    ours = run_registry("adamw", lr=0.05, betas=(0.9, 0.99), eps=1e-3, weight_decay=0.5)
    assert_same_path(ours, run_formula(adam_slide(0.05, 0.9, 0.99, 1e-3, wd=0.5)))


def test_adam_weight_decay_is_l2_in_the_gradient():
    # torch's Adam(weight_decay=lambda) is the L2 penalty: g + lambda x enters m and v (not decoupled).
    lam = 0.5
    inner = adam_slide(0.05, 0.9, 0.99, 1e-3)
    ours = run_registry("adam", lr=0.05, betas=(0.9, 0.99), eps=1e-3, weight_decay=lam)
    assert_same_path(ours, run_formula(lambda x, g, k, s: inner(x, g + lam * x, k, s)))


def test_adadelta():
    # seed 001 (Zeiler 2012): v = gamma v + (1-gamma) g^2; g~ = sqrt(dx + eps) / sqrt(v + eps) g; x -= g~;
    # dx = rho dx + (1-rho) g~^2. torch: one rho for both averages (gamma = rho), eps inside both sqrts, and an
    # extra lr multiplying g~ (lr = 1 is the slide).
    rho, eps = 0.9, 1e-2

    def update(x, g, k, s):
        s["v"] = rho * s.get("v", 0.0) + (1 - rho) * g**2
        g_tilde = np.sqrt(s.get("dx", 0.0) + eps) / np.sqrt(s["v"] + eps) * g
        s["dx"] = rho * s.get("dx", 0.0) + (1 - rho) * g_tilde**2
        return x - g_tilde

    assert_same_path(run_registry("adadelta", lr=1.0, rho=rho, eps=eps), run_formula(update))


def test_strongly_convex_schedule_drives_sgd_to_the_seed_steps():
    # seed 001: SGD with alpha_k = (2k + 1) / (2 mu (k + 1)^2) (k = 0, 1, ...), as the 'strongly_convex' schedule.
    from descentlab import schedules

    mu = float(np.linalg.eigvalsh(A).min())
    p = torch.nn.Parameter(torch.tensor(X0, dtype=torch.float64))
    opt = optim.create("sgd", [p], lr=1.0)
    sched = schedules.create("strongly_convex", opt, STEPS, mu=mu)
    ours = []
    for k in range(STEPS):
        p.grad = torch.from_numpy(grad(p.detach().numpy(), k))
        opt.step()
        sched.step()
        ours.append(p.detach().numpy().copy())

    def update(x, g, k, s):
        return x - (2 * (k - 1) + 1) / (2 * mu * k**2) * g

    assert_same_path(np.array(ours), run_formula(update))


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "adagrad", "rmsprop", "adadelta"])
def test_float32_follows_float64_formula_loosely(name):
    # The registry's default kernels (fused where chosen) in float32 stay within float32 round-off of float64.
    hp = {"lr": 1.0} if name == "adadelta" else {"lr": 0.01}
    p64 = run_registry(name, **hp)
    p = torch.nn.Parameter(torch.tensor(X0, dtype=torch.float32))
    opt = optim.create(name, [p], **hp)
    for k in range(STEPS):
        p.grad = torch.from_numpy(grad(p.detach().double().numpy(), k)).float()
        opt.step()
    np.testing.assert_allclose(p.detach().double().numpy(), p64[-1], rtol=1e-4, atol=1e-5)
