"""Parity certificates: each registry method of issue 29 against a plain transcription of its paper's algorithm box.

Every test drives the registry's optimizer and the transcription written here on the same gradients (a fixed
random sequence, or for Prodigy a small fixed quadratic whose gradients each side computes at its own iterate) for
STEPS >= 50 steps in float64 and compares the iterates with the tolerance stated at the test. The transcriptions
are written from the papers' boxes (with the authors' code where the box leaves a convention open: the index of
ADOPT's clip, SOAP's skipped first step, MARS's g_0 = 0); where pytorch_optimizer departs from the paper the test
pins the difference (docs/optimizers.md, "Which implementation is the paper's algorithm").

Orthogonalization is the one shared primitive: the lab's Muon variants run with ``ns_method="svd"`` (the exact
polar factor, transcribed as U V^T from torch.linalg.svd); pytorch_optimizer's NorMuon / AdaMuon / Scion always use
their bfloat16 Newton-Schulz, so their transcriptions call that same function (its accuracy is not what is tested).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from descentlab import optim

STEPS = 60
SHAPES = [(6, 4), (5,)]  # a matrix (the Muon / SOAP / Scion side) and a vector


def grads_for(step: int, shapes=SHAPES, scale: float = 1.0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(7919 * (step + 1))
    return [scale * torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]


def start(shapes=SHAPES) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]


def leaves(xs: list[torch.Tensor]) -> list[nn.Parameter]:
    return [nn.Parameter(x.clone()) for x in xs]


def drive(
    opt: torch.optim.Optimizer, params: list[torch.Tensor], steps: int = STEPS, **kw
) -> list[list[torch.Tensor]]:
    """Set p.grad from grads_for(t) and step; the iterates after each step."""
    out = []
    for t in range(steps):
        for p, g in zip(params, grads_for(t, [tuple(p.shape) for p in params], **kw)):
            p.grad = g.clone()
        opt.step()
        out.append([p.detach().clone() for p in params])
    return out


def assert_paths_close(got, want, rtol: float, atol: float) -> None:
    for t, (a, b) in enumerate(zip(got, want)):
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y, rtol=rtol, atol=atol, msg=lambda m, t=t: f"step {t + 1}: {m}")


def polar(m: torch.Tensor) -> torch.Tensor:
    """The exact msign U_r V_r^T over the nonzero singular values (a sign matrix is often rank-deficient: its
    zero singular directions must not enter; threshold max(S) * max(m, n) * float64 eps)."""
    u, sv, vh = torch.linalg.svd(m, full_matrices=False)
    keep = sv > sv.max() * max(m.shape) * torch.finfo(torch.float64).eps
    return u[:, keep] @ vh[keep]


def po_newton_schulz(m: torch.Tensor, steps: int = 5) -> torch.Tensor:
    from pytorch_optimizer.optimizer.utils.matrix import zero_power_via_newton_schulz_5

    return zero_power_via_newton_schulz_5(m, num_steps=steps).to(m.dtype)


# ---------------------------------------------------------------------------------------------------- Lion


def test_lion_matches_chen_et_al_algorithm_2():
    """Chen et al. 2023, Alg. 2: c = b1 m + (1-b1) g; x <- x - lr (sign(c) + wd x); m <- b2 m + (1-b2) g.
    Tolerance 1e-12 (sign steps are exact; only the decay rounds)."""
    lr, b1, b2, wd = 3e-3, 0.9, 0.99, 0.1
    params = leaves(start())
    got = drive(optim.create("lion", params, lr=lr, betas=(b1, b2), weight_decay=wd), params)
    xs, ms, want = start(), [torch.zeros(s, dtype=torch.float64) for s in SHAPES], []
    for t in range(STEPS):
        for i, g in enumerate(grads_for(t)):
            c = b1 * ms[i] + (1 - b1) * g
            xs[i] = xs[i] - lr * (torch.sign(c) + wd * xs[i])
            ms[i] = b2 * ms[i] + (1 - b2) * g
        want.append([x.clone() for x in xs])
    assert_paths_close(got, want, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------------- ADOPT


def adopt_box(lr, b1, b2, eps, wd=0.0, clip_shift=0, decay_at_init=False):
    """Taniguchi et al. 2024 (clipped ADOPT), indexed as the authors' code: v_0 = g_0^2 and no move at t = 0; then
    for t = 1, 2, ...: x <- x (1 - lr wd); m <- b1 m + (1-b1) clip(g / max(sqrt(v), eps), t^(1/4)); x <- x - lr m;
    v <- b2 v + (1-b2) g^2. (``clip_shift`` / ``decay_at_init`` reproduce the library's departures.)"""
    xs = start()
    ms = [torch.zeros(s, dtype=torch.float64) for s in SHAPES]
    vs: list[torch.Tensor | None] = [None, None]
    out = []
    for t in range(STEPS):
        for i, g in enumerate(grads_for(t)):
            if vs[i] is None:
                vs[i] = g * g
                if decay_at_init:
                    xs[i] = xs[i] * (1 - lr * wd)
                continue
            xs[i] = xs[i] * (1 - lr * wd)
            clip = (t + clip_shift) ** 0.25
            normed = torch.clamp(g / torch.clamp(vs[i].sqrt(), min=eps), -clip, clip)
            ms[i] = b1 * ms[i] + (1 - b1) * normed
            xs[i] = xs[i] - lr * ms[i]
            vs[i] = b2 * vs[i] + (1 - b2) * g * g
        out.append([x.clone() for x in xs])
    return out


def test_adopt_matches_taniguchi_et_al_clipped_algorithm():
    """The registry's adopt (decoupled decay) against the box. Tolerance 1e-12."""
    hp = dict(lr=1e-2, betas=(0.9, 0.9999), eps=1e-6)
    params = leaves(start())
    got = drive(optim.create("adopt", params, weight_decay=0.1, weight_decouple=True, **hp), params)
    assert_paths_close(got, adopt_box(1e-2, 0.9, 0.9999, 1e-6, wd=0.1), rtol=1e-12, atol=1e-12)


def test_adopt_library_defaults_clip_one_step_late_and_decay_at_init():
    """pytorch_optimizer's ADOPT clips at (t + 1)^(1/4) and decays at the initializing call too: it matches the
    box with those two changes (1e-12) and not the box itself."""
    import pytorch_optimizer

    params = leaves(start())
    got = drive(pytorch_optimizer.ADOPT(params, lr=1e-2, weight_decay=0.1, weight_decouple=True), params)
    shifted = adopt_box(1e-2, 0.9, 0.9999, 1e-6, wd=0.1, clip_shift=1, decay_at_init=True)
    assert_paths_close(got, shifted, rtol=1e-12, atol=1e-12)
    paper = adopt_box(1e-2, 0.9, 0.9999, 1e-6, wd=0.1)
    assert (got[-1][0] - paper[-1][0]).abs().max() > 1e-4


# ---------------------------------------------------------------------------------------------------- AdEMAMix


def ademamix_box(lr, b1, b2, b3, alpha, wd, eps, t_ab=None):
    """Pagliardini et al. 2024, Alg. 1 with the alpha / beta3 schedulers (Eq. for T_alpha = T_beta3 = t_ab)."""
    xs = start()
    m1 = [torch.zeros(s, dtype=torch.float64) for s in SHAPES]
    m2 = [torch.zeros(s, dtype=torch.float64) for s in SHAPES]
    nu = [torch.zeros(s, dtype=torch.float64) for s in SHAPES]
    out = []
    for t in range(1, STEPS + 1):
        if t_ab is None:
            a_t, b3_t = alpha, b3
        else:
            a_t = min(t * alpha / t_ab, alpha)
            frac = t / t_ab
            b3_t = min(
                math.exp(math.log(b1) * math.log(b3) / ((1 - frac) * math.log(b3) + frac * math.log(b1))), b3
            )
        for i, g in enumerate(grads_for(t - 1)):
            m1[i] = b1 * m1[i] + (1 - b1) * g
            m2[i] = b3_t * m2[i] + (1 - b3_t) * g
            nu[i] = b2 * nu[i] + (1 - b2) * g * g
            m1_hat = m1[i] / (1 - b1**t)
            nu_hat = nu[i] / (1 - b2**t)
            xs[i] = xs[i] - lr * ((m1_hat + a_t * m2[i]) / (nu_hat.sqrt() + eps) + wd * xs[i])
        out.append([x.clone() for x in xs])
    return out


@pytest.mark.parametrize("t_ab", [None, 20])
def test_ademamix_matches_pagliardini_et_al_algorithm_1(t_ab):
    """Decoupled decay (the paper's - lr wd x; the registry's default, not the library's coupled L2), with and
    without the alpha / beta3 warm-up schedulers. Tolerance 1e-10."""
    hp = dict(lr=1e-3, betas=(0.9, 0.999, 0.9999), alpha=5.0, weight_decay=0.1, eps=1e-8)
    params = leaves(start())
    kw = {} if t_ab is None else {"t_alpha_beta3": t_ab}
    got = drive(optim.create("ademamix", params, **hp, **kw), params)
    want = ademamix_box(1e-3, 0.9, 0.999, 0.9999, 5.0, 0.1, 1e-8, t_ab)
    assert_paths_close(got, want, rtol=1e-10, atol=1e-12)


def test_ademamix_library_default_decay_is_coupled_not_the_papers():
    """pytorch_optimizer's own default (weight_decouple=False) adds wd x to the gradient: not Algorithm 1."""
    import pytorch_optimizer

    params = leaves(start())
    got = drive(pytorch_optimizer.AdEMAMix(params, lr=1e-3, weight_decay=0.1), params)
    want = ademamix_box(1e-3, 0.9, 0.999, 0.9999, 5.0, 0.1, 1e-8)
    assert not torch.allclose(got[-1][0], want[-1][0], rtol=1e-6, atol=1e-8)


def test_ademamix_with_alpha_zero_is_adamw():
    """alpha = 0 removes the slow EMA: torch's AdamW on the same gradients. Tolerance 1e-12."""
    hp = dict(lr=1e-3, weight_decay=0.1, eps=1e-8)
    params = leaves(start())
    got = drive(optim.create("ademamix", params, alpha=0.0, betas=(0.9, 0.999, 0.9999), **hp), params)
    ref = leaves(start())
    want = drive(torch.optim.AdamW(ref, betas=(0.9, 0.999), foreach=False, **hp), ref)
    assert_paths_close(got, want, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------------- MARS


def test_mars_adamw_matches_yuan_et_al_algorithm():
    """Yuan et al. 2024, MARS-AdamW (approximate: g_{t-1} is the previous step's gradient, g_0 = 0):
    c = g + gamma b1/(1-b1) (g - g_prev); c <- c / ||c|| if ||c|| > 1; m, v AdamW moments of c;
    x <- x - lr (m^ / (sqrt(v^) + eps) + wd x). Matrices only (1-D parameters take the AdamW side).
    Tolerance rtol 1e-6 (measured: 4e-7): the library puts eps inside the bias correction,
    (sqrt(v) + eps) / sqrt(1 - b2^t)."""
    lr, b1, b2, gamma, wd, eps = 3e-3, 0.95, 0.99, 0.025, 0.1, 1e-8
    shapes = [(6, 4), (3, 5)]
    params = leaves(start(shapes))
    opt = optim.create("mars", params, lr=lr, betas=(b1, b2), gamma=gamma, weight_decay=wd, eps=eps)
    got = drive(opt, params, scale=0.3)
    xs = start(shapes)
    m = [torch.zeros(s, dtype=torch.float64) for s in shapes]
    v = [torch.zeros(s, dtype=torch.float64) for s in shapes]
    prev = [torch.zeros(s, dtype=torch.float64) for s in shapes]
    want = []
    for t in range(1, STEPS + 1):
        for i, g in enumerate(grads_for(t - 1, shapes, scale=0.3)):
            c = g + gamma * b1 / (1 - b1) * (g - prev[i])
            if c.norm() > 1:
                c = c / c.norm()
            m[i] = b1 * m[i] + (1 - b1) * c
            v[i] = b2 * v[i] + (1 - b2) * c * c
            step = (m[i] / (1 - b1**t)) / ((v[i] / (1 - b2**t)).sqrt() + eps)
            xs[i] = xs[i] - lr * (step + wd * xs[i])
            prev[i] = g
        want.append([x.clone() for x in xs])
    assert_paths_close(got, want, rtol=1e-6, atol=1e-9)


def test_mars_vectors_follow_lr_through_the_adamw_side():
    """1-D parameters: AdamW with betas_1d = (0.9, 0.95) at the same lr and weight_decay (the registry's default;
    the library fixes lr_1d = 3e-3 and weight_decay_1d = 0.1). Tolerance rtol 1e-6 (eps placement as above)."""
    shapes = [(5,)]
    params = leaves(start(shapes))
    got = drive(optim.create("mars", params, lr=1e-2, weight_decay=0.05), params)
    ref = leaves(start(shapes))
    want = drive(torch.optim.AdamW(ref, lr=1e-2, betas=(0.9, 0.95), weight_decay=0.05, eps=1e-8), ref)
    assert_paths_close(got, want, rtol=1e-6, atol=1e-9)


# ---------------------------------------------------------------------------------------------------- SOAP


def soap_box(lr, b1, b2, wd, eps, freq, max_dim=10_000):
    """Vyas et al. 2024, Alg. 3 (SOAP), for matrices, with the authors' conventions: the first gradient only
    initializes L, R and their eigenbases (eigh, descending); M is kept in the original basis, V in the eigenbasis;
    every ``freq`` steps one power iteration + QR re-estimates Q (eigenvalue order re-sorted, V permuted with it);
    decoupled decay after the step. A dimension above ``max_dim`` keeps the identity basis."""
    xs = start([(6, 4)])
    x = xs[0]
    m = torch.zeros_like(x)
    v = torch.zeros_like(x)
    gg = [torch.zeros(n, n, dtype=torch.float64) if n <= max_dim else None for n in x.shape]
    qs: list[torch.Tensor | None] | None = None
    out = []

    def proj(a, qs, back=False):
        ql = qs[0] if qs[0] is not None else torch.eye(a.shape[0], dtype=a.dtype)
        qr = qs[1] if qs[1] is not None else torch.eye(a.shape[1], dtype=a.dtype)
        return ql @ a @ qr.T if back else ql.T @ a @ qr

    def update_stats(g):
        for d in range(2):
            if gg[d] is not None:
                outer = g @ g.T if d == 0 else g.T @ g
                gg[d] = b2 * gg[d] + (1 - b2) * outer

    for t in range(1, STEPS + 1):
        g = grads_for(t - 1, [(6, 4)])[0]
        if qs is None:
            update_stats(g)
            qs = []
            for mat in gg:
                if mat is None:
                    qs.append(None)
                    continue
                _, q = torch.linalg.eigh(mat + 1e-30 * torch.eye(mat.shape[0], dtype=mat.dtype))
                qs.append(torch.flip(q, dims=[1]))
            out.append([x.clone()])
            continue
        k = t - 1
        gp = proj(g, qs)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * gp * gp
        n = proj(proj(m, qs) / (v.sqrt() + eps), qs, back=True)
        x = x - lr * math.sqrt(1 - b2**k) / (1 - b1**k) * n
        x = x * (1 - lr * wd)
        update_stats(g)
        if k % freq == 0:
            for d in range(2):
                if gg[d] is None:
                    continue
                pq = gg[d] @ qs[d]
                order = torch.argsort((qs[d] * pq).sum(dim=0), descending=True)
                v = v.index_select(d, order)
                q, _ = torch.linalg.qr(pq[:, order].to(torch.float32))
                qs[d] = q.to(torch.float64)
        out.append([x.clone()])
    return out


def test_soap_matches_vyas_et_al_algorithm_3():
    """Every 5th step re-estimates the eigenbases. Tolerance 1e-10 (measured: 2e-16); the library (and the
    authors) take the QR in float32, and so does the transcription, so that rounding is shared."""
    hp = dict(lr=3e-3, betas=(0.95, 0.95), weight_decay=0.01, eps=1e-8, precondition_frequency=5)
    params = leaves(start([(6, 4)]))
    got = drive(optim.create("soap", params, **hp), params)
    want = soap_box(3e-3, 0.95, 0.95, 0.01, 1e-8, 5)
    assert_paths_close(got, want, rtol=1e-10, atol=1e-12)


def test_soap_with_identity_eigenbasis_is_adam_on_the_gradients_after_the_first():
    """max_precondition_dim below every dimension keeps Q = I: SOAP is then Adam (its first gradient only
    initializes the statistics), with eps -> 0 so the two eps placements agree. Tolerance 1e-10."""
    params = leaves(start([(6, 4)]))
    opt = optim.create("soap", params, lr=1e-2, betas=(0.9, 0.99), weight_decay=0.0, eps=1e-30,
                       max_precondition_dim=1)  # fmt: skip
    got = drive(opt, params)
    ref = leaves(start([(6, 4)]))
    adam = torch.optim.Adam(ref, lr=1e-2, betas=(0.9, 0.99), eps=1e-30, foreach=False)
    want = [[ref[0].detach().clone()]]
    for t in range(1, STEPS):
        ref[0].grad = grads_for(t, [(6, 4)])[0]
        adam.step()
        want.append([ref[0].detach().clone()])
    assert_paths_close(got, want, rtol=1e-10, atol=1e-12)
    assert_paths_close(got, soap_box(1e-2, 0.9, 0.99, 0.0, 1e-30, 10, max_dim=1), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------------- Scion


@pytest.mark.parametrize("constraint", [False, True])
def test_scion_matches_pethick_et_al_ucsg_and_scg(constraint):
    """Pethick et al. 2025: d <- (1 - a) d + a g; uSCG x <- x + lr lmo(d), SCG x <- (1 - lr) x + lr lmo(d), with
    lmo(d) = -scale sqrt(d_out/d_in) msign(d) on matrices and -scale d / rms(d) on vectors (the 'auto' norms).
    msign is pytorch_optimizer's bfloat16 Newton-Schulz in both. The library also multiplies the bfloat16 result by
    the scales in bfloat16, so each matrix step carries a relative rounding of <= 2^-8: the tolerance on the
    matrix is that bound summed over the steps (atol = STEPS lr scale sqrt(d_out/d_in) 2^-8); vectors 1e-10."""
    a, lr, scale = 0.1, 1e-2, 2.0
    params = leaves(start())
    got = drive(optim.create("scion", params, lr=lr, momentum=a, scale=scale, constraint=constraint), params)
    xs, ds, want = start(), [torch.zeros(s, dtype=torch.float64) for s in SHAPES], []
    for t in range(STEPS):
        for i, g in enumerate(grads_for(t)):
            ds[i] = (1 - a) * ds[i] + a * g
            d = ds[i]
            if d.ndim == 2:
                lmo = -scale * math.sqrt(d.shape[0] / d.shape[1]) * po_newton_schulz(d)
            else:
                lmo = -scale * d / (d.square().mean().sqrt() + 1e-8)
            xs[i] = ((1 - lr) * xs[i] if constraint else xs[i]) + lr * lmo
        want.append([x.clone() for x in xs])
    bound = STEPS * lr * scale * math.sqrt(6 / 4) * 2**-8
    for t, (a_, b_) in enumerate(zip(got, want)):
        assert (a_[0] - b_[0]).abs().max() <= bound * (t + 1) / STEPS, f"step {t + 1}"
        torch.testing.assert_close(a_[1], b_[1], rtol=1e-10, atol=1e-10)
    assert (got[-1][0] - start()[0]).abs().max() > 20 * bound  # the steps are far larger than the rounding


def test_scion_norm_type_by_name_and_refusals():
    params = leaves(start())
    assert optim.create("scion", params, norm_type="sign").param_groups[0]["norm_type"] == 4
    with pytest.raises(ValueError, match="nuclear"):
        optim.create("scion", leaves(start()), norm_type="nuclear")
    with pytest.raises(ValueError, match="momentun"):
        optim.create("scion", leaves(start()), momentun=0.1)


# ---------------------------------------------------------------------------------------------------- Prodigy


A_DIAG = torch.tensor([1.0, 3.0, 10.0, 0.5, 2.0], dtype=torch.float64)
C_OPT = torch.tensor([2.0, -1.0, 0.5, 3.0, -2.0], dtype=torch.float64)


def quad_grad(x: torch.Tensor) -> torch.Tensor:
    """Gradient of f(x) = 1/2 sum a_i (x_i - c_i)^2."""
    return A_DIAG * (x - C_OPT)


def prodigy_box(lr, b1, b2, d0, wd, eps, steps):
    """Mishchenko & Defazio 2024, Alg. 4 (Prodigy, Adam form), decoupled decay lr d_k wd:
    m <- b1 m + (1-b1) d_k g; v <- b2 v + (1-b2) d_k^2 g^2; r <- sqrt(b2) r + (1-sqrt(b2)) lr d_k^2 <g, x0 - x>;
    s <- sqrt(b2) s + (1-sqrt(b2)) lr d_k^2 g; d_{k+1} = max(d_k, r / ||s||_1); x <- x - lr d_k m / (sqrt(v) + d_k eps).
    """
    x = torch.zeros(5, dtype=torch.float64)
    x0 = x.clone()
    m, v, s = torch.zeros_like(x), torch.zeros_like(x), torch.zeros_like(x)
    r, d, b3, out = 0.0, d0, math.sqrt(b2), []
    for _ in range(steps):
        g = quad_grad(x)
        m = b1 * m + (1 - b1) * d * g
        v = b2 * v + (1 - b2) * d * d * g * g
        r = b3 * r + (1 - b3) * lr * d * d * float(torch.dot(g, x0 - x))
        s = b3 * s + (1 - b3) * lr * d * d * g
        d_next = max(d, r / float(s.abs().sum()))
        x = x * (1 - lr * d * wd)
        x = x - lr * d * m / (v.sqrt() + d * eps)
        d = d_next
        out.append((x.clone(), d))
    return out


def run_quadratic(opt, p, steps):
    out = []
    for _ in range(steps):
        p.grad = quad_grad(p.detach())
        opt.step()
        out.append((p.detach().clone(), opt.param_groups[0]["d"]))
    return out


def test_prodigy_matches_mishchenko_defazio_algorithm_4():
    """On a fixed quadratic (each side computes its own gradients). The library uses d_{k+1} eps in the denominator
    (the box: d_k eps) and drops the (1 - sqrt(b2)) and 1/d0 factors common to r and s (they cancel in d).
    The library also accumulates r and ||s||_1 in float32 scalars: d agrees to 1e-7 relative (measured), which the
    step size carries into the iterates (1.2e-4 relative at most over 60 steps, measured). Tolerance: d rel 1e-5,
    iterates rtol 5e-4; d must grow by > 1e4 from d0 (the estimate is exercised)."""
    p = nn.Parameter(torch.zeros(5, dtype=torch.float64))
    got = run_quadratic(optim.create("prodigy", [p], lr=1.0, weight_decay=0.01), p, STEPS)
    want = prodigy_box(1.0, 0.9, 0.999, 1e-6, 0.01, 1e-8, STEPS)
    assert want[-1][1] > 1e4 * 1e-6
    for (xa, da), (xb, db) in zip(got, want):
        torch.testing.assert_close(xa, xb, rtol=5e-4, atol=1e-6)
        assert da == pytest.approx(db, rel=1e-5)


def test_prodigy_frozen_group_stays_and_the_other_is_the_single_group_run():
    """The registry's correction: a group at lr 0 is left out (the library would move it with group 0's lr)."""
    p, frozen = (
        nn.Parameter(torch.zeros(5, dtype=torch.float64)),
        nn.Parameter(torch.ones(3, dtype=torch.float64)),
    )
    opt = optim.create("prodigy", [{"params": [frozen], "lr": 0.0}, {"params": [p], "lr": 1.0}])
    out = []
    for _ in range(STEPS):
        p.grad, frozen.grad = quad_grad(p.detach()), torch.ones(3, dtype=torch.float64)
        opt.step()
        out.append((p.detach().clone(), opt.param_groups[1]["d"]))
    assert torch.equal(frozen.detach(), torch.ones(3, dtype=torch.float64))
    q = nn.Parameter(torch.zeros(5, dtype=torch.float64))
    single = run_quadratic(optim.create("prodigy", [q], lr=1.0), q, STEPS)
    torch.testing.assert_close(out[-1][0], single[-1][0], rtol=1e-12, atol=1e-12)


def test_prodigy_refuses_two_different_nonzero_lrs():
    a, b = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2))
    opt = optim.create("prodigy", [{"params": [a], "lr": 1.0}, {"params": [b], "lr": 0.5}])
    a.grad, b.grad = torch.ones(2), torch.ones(2)
    with pytest.raises(ValueError, match="0.5"):
        opt.step()


# ---------------------------------------------------------------------------------------------------- Cautious


def test_cautious_adamw_matches_liang_et_al_c_adamw():
    """Liang et al. 2024 (C-AdamW): u = m^ / (sqrt(v^) + eps); phi = 1[u g > 0];
    x <- x - lr u phi numel / (sum(phi) + 1); then x <- x (1 - lr wd) (decay unmasked, after the step, as in the
    authors' code). Tolerance 1e-10 (the wrapper recovers u from a float64 parameter difference)."""
    lr, b1, b2, eps, wd = 1e-2, 0.9, 0.999, 1e-8, 0.1
    params = leaves(start())
    got = drive(optim.create("cautious", params, base="adamw", lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd),
                params)  # fmt: skip
    xs = start()
    m = [torch.zeros(s, dtype=torch.float64) for s in SHAPES]
    v = [torch.zeros(s, dtype=torch.float64) for s in SHAPES]
    want = []
    for t in range(1, STEPS + 1):
        for i, g in enumerate(grads_for(t - 1)):
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            u = (m[i] / (1 - b1**t)) / ((v[i] / (1 - b2**t)).sqrt() + eps)
            phi = (u * g > 0).to(torch.float64)
            xs[i] = xs[i] - lr * u * phi * (phi.numel() / (phi.sum() + 1))
            xs[i] = xs[i] * (1 - lr * wd)
        want.append([x.clone() for x in xs])
    assert_paths_close(got, want, rtol=1e-10, atol=1e-12)


def test_cautious_with_a_mask_of_ones_is_the_base():
    """Plain SGD's update is the gradient, so every coordinate agrees: the mask is all ones, and with xi = 0 the
    rescaling is 1 -> exactly SGD. With the paper's xi = 1 the step is SGD's times numel / (numel + 1)."""
    params = leaves(start())
    got = drive(optim.create("cautious", params, base="sgd", lr=0.05, xi=0.0), params)
    ref = leaves(start())
    want = drive(torch.optim.SGD(ref, lr=0.05), ref)
    assert_paths_close(got, want, rtol=1e-12, atol=1e-12)
    p = nn.Parameter(torch.zeros(4, dtype=torch.float64))
    opt = optim.create("cautious", [p], base="sgd", lr=0.1)
    p.grad = torch.tensor([1.0, -2.0, 3.0, 0.5], dtype=torch.float64)
    opt.step()
    torch.testing.assert_close(p.detach(), -0.1 * p.grad * 4 / 5)


def test_cautious_lion_equals_the_librarys_cautious_lion():
    """The wrapper around 'lion' == pytorch_optimizer's Lion(cautious=True) (its mask has the same formula)."""
    import pytorch_optimizer

    params = leaves(start())
    got = drive(optim.create("cautious", params, base="lion", lr=1e-3), params)
    ref = leaves(start())
    want = drive(pytorch_optimizer.Lion(ref, lr=1e-3, cautious=True), ref)
    assert_paths_close(got, want, rtol=1e-10, atol=1e-12)


def test_cautious_refusals():
    with pytest.raises(ValueError, match="cautious"):
        optim.create("cautious", leaves(start()), base="cautious")
    with pytest.raises(ValueError, match="weight_decay"):
        optim.create("cautious", leaves(start()), base="adamw", weight_decay=-0.1)
    with pytest.raises(ValueError, match="-1"):
        optim.create("cautious", leaves(start()), xi=-1.0)
    with pytest.raises(ValueError, match="closure"):
        optim.create("cautious", leaves(start()), base="lbfgs")


# ---------------------------------------------------------------------------------------------------- NorMuon


def normuon_box(lr, b1, b2, wd, eps, steps, msign, shape=(6, 4)):
    """Li et al. 2025, Alg. 1: M <- b1 M + (1-b1) G; O = msign(M); v <- b2 v + (1-b2) mean_cols(O*O);
    O^ = O / (sqrt(v) + eps); W <- W - lr wd W - 0.2 lr sqrt(mn) O^ / ||O^||_F."""
    w = start([shape])[0]
    mom, v, out = torch.zeros_like(w), torch.zeros(shape[0], 1, dtype=torch.float64), []
    for t in range(steps):
        g = grads_for(t, [shape])[0]
        mom = b1 * mom + (1 - b1) * g
        o = msign(mom)
        v = b2 * v + (1 - b2) * (o * o).mean(dim=1, keepdim=True)
        oh = o / (v.sqrt() + eps)
        w = w - lr * wd * w - 0.2 * lr * math.sqrt(shape[0] * shape[1]) * oh / oh.norm()
        out.append([w.clone()])
    return out


def test_normuon_matches_li_et_al_algorithm_1():
    """The lab's normuon (Muon, normalize='row'), exact polar factor on both sides. Tolerance 1e-9 (the box has no
    eps on ||O^||_F; the lab adds 1e-8 there)."""
    params = leaves(start([(6, 4)]))
    opt = optim.create("normuon", params, lr=1e-2, weight_decay=0.1, ns_method="svd")
    got = drive(opt, params)
    assert_paths_close(got, normuon_box(1e-2, 0.95, 0.95, 0.1, 1e-8, STEPS, polar), rtol=1e-9, atol=1e-9)


def test_po_normuon_in_match_rms_mode_matches_the_box():
    """pytorch_optimizer's NorMuon with update_scale='match_rms', nesterov=False is Algorithm 1 (its default,
    'preserve_norm' + Nesterov, follows the authors' training code instead). Its bfloat16 Newton-Schulz on both
    sides. Tolerance 1e-9."""
    params = leaves(start([(6, 4)]))
    opt = optim.create("po_normuon", params, lr=1e-2, weight_decay=0.1, nesterov=False, update_scale="match_rms",
                       eps=1e-8)  # fmt: skip
    got = drive(opt, params)
    want = normuon_box(1e-2, 0.95, 0.95, 0.1, 1e-8, STEPS, po_newton_schulz)
    assert_paths_close(got, want, rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------------------------------------------- AdaMuon


def adamuon_box(lr, beta, wd, eps, steps, msign, sign=True, nesterov=True, shape=(6, 4)):
    """Si et al. 2025 (v2+, the authors' code): M <- b M + (1-b) G; D = (1-b) G + b M (Nesterov);
    O = msign(sign(D)); V <- b V + (1-b) O*O; O^ = O / (sqrt(V) + eps); W <- W (1 - lr wd) - lr 0.2 sqrt(mn) O^ /
    (||O^||_F + eps)."""
    w = start([shape])[0]
    mom, v, out = torch.zeros_like(w), torch.zeros_like(w), []
    for t in range(steps):
        g = grads_for(t, [shape])[0]
        mom = beta * mom + (1 - beta) * g
        d = (1 - beta) * g + beta * mom if nesterov else mom
        o = msign(torch.sign(d) if sign else d)
        v = beta * v + (1 - beta) * o * o
        oh = o / (v.sqrt() + eps)
        w = w * (1 - lr * wd) - lr * 0.2 * math.sqrt(shape[0] * shape[1]) * oh / (oh.norm() + eps)
        out.append([w.clone()])
    return out


def test_adamuon_matches_si_et_al_algorithm():
    """The lab's adamuon (Muon with sign_momentum, normalize='elementwise'), exact polar factor. Tolerance 1e-9."""
    params = leaves(start([(6, 4)]))
    got = drive(optim.create("adamuon", params, lr=1e-2, weight_decay=0.1, ns_method="svd"), params)
    assert_paths_close(got, adamuon_box(1e-2, 0.95, 0.1, 1e-8, STEPS, polar), rtol=1e-9, atol=1e-9)


def test_po_adamuon_omits_the_sign_step():
    """pytorch_optimizer's AdaMuon is the box without sign(.) and without Nesterov (its bias correction of V
    cancels in the rescaling up to eps, where near-zero entries of O make eps matter): it matches that variant to
    rtol 1e-2 and misses the paper's box by > 2e-2 (about 50x the first gap)."""
    params = leaves(start([(6, 4)]))
    opt = optim.create("po_adamuon", params, lr=1e-2, betas=(0.95, 0.95), weight_decay=0.1, eps=1e-8)
    got = drive(opt, params)
    without_sign = adamuon_box(1e-2, 0.95, 0.1, 1e-8, STEPS, po_newton_schulz, sign=False, nesterov=False)
    assert_paths_close(got, without_sign, rtol=1e-2, atol=1e-3)
    paper = adamuon_box(1e-2, 0.95, 0.1, 1e-8, STEPS, po_newton_schulz)
    assert (got[-1][0] - paper[-1][0]).abs().max() > 2e-2


# ---------------------------------------------------------------------------------------------------- contract


@pytest.mark.parametrize(
    "name", ["soap", "ademamix", "mars", "lion", "adopt", "prodigy", "dadapt_adam", "po_normuon"]
)
def test_unknown_keyword_is_refused_naming_it(name):
    """pytorch_optimizer's classes swallow unknown keywords; the registry refuses them."""
    with pytest.raises(ValueError, match="lerning_rate"):
        optim.create(name, leaves(start()), lerning_rate=0.1)


def test_the_librarys_own_errors_become_value_errors_naming_the_value():
    with pytest.raises(ValueError, match=r"po_normuon.*-1\.5"):
        optim.create("po_normuon", leaves(start()), adamw_lr=-1.5)


def test_sources_name_pytorch_optimizer_torch_and_descentlab():
    src = optim.sources()
    for name in ("soap", "ademamix", "mars", "lion", "adopt", "scion", "prodigy", "dadapt_adam"):
        assert src[name] == "pytorch_optimizer"
    assert src["adamw"] == "torch" and src["muon"] == "descentlab" and src["normuon"] == "descentlab"
    assert src["cautious"] == "descentlab" and src["schedulefree_adamw"] == "schedulefree"


def test_cli_lists_the_source_of_each_method(capsys):
    from descentlab.cli import main

    assert main(["optimizers"]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = {name: next((ln for ln in lines if f" {name} " in ln), "") for name in ("soap", "adamw", "normuon")}
    assert "pytorch_optimizer" in row["soap"] and "torch" in row["adamw"] and "descentlab" in row["normuon"]


# ---------------------------------------------------------------------------------------------------- PolarGrad


def test_polargrad_matches_lau_et_al_with_momentum():
    """Lau et al. 2025 (PolarGrad, momentum first): M <- b M + (1-b) G; U H = polar(M); X <- X - lr tr(H) U, where
    tr(H) = ||M||_* (exact polar factor both sides). Tolerance 1e-10."""
    lr, b = 1e-3, 0.9
    params = leaves(start([(6, 4)]))
    got = drive(optim.create("polargrad", params, lr=lr, momentum=b, ns_method="svd"), params)
    x, m, want = start([(6, 4)])[0], torch.zeros(6, 4, dtype=torch.float64), []
    for t in range(STEPS):
        g = grads_for(t, [(6, 4)])[0]
        m = b * m + (1 - b) * g
        x = x - lr * torch.linalg.matrix_norm(m, ord="nuc") * polar(m)
        want.append([x.clone()])
    assert_paths_close(got, want, rtol=1e-10, atol=1e-12)


def test_polargrad_without_momentum_is_steepest_descent_under_the_spectral_norm():
    """momentum 0: X <- X - lr ||G||_* msign(G), descentlab's steepest (norm="spectral", scale="dual"). 1e-12."""
    params = leaves(start([(6, 4)]))
    got = drive(optim.create("polargrad", params, lr=1e-3, momentum=0.0, ns_method="svd"), params)
    ref = leaves(start([(6, 4)]))
    steepest = optim.create("steepest", ref, lr=1e-3, norm="spectral", scale="dual", ns_method="svd")
    assert_paths_close(got, drive(steepest, ref), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------------- the authors' packages


@pytest.mark.parametrize("wd, decouple", [(0.0, True), (0.01, True), (0.01, False)])
def test_prodigy_equals_the_authors_prodigyopt(wd, decouple):
    """The registry's prodigy against Mishchenko's own package (prodigyopt 1.1.2, a dev dependency) on the fixed
    quadratic. Tolerance: iterates rtol 5e-4, d rel 1e-5 (pytorch_optimizer keeps r and ||s||_1 in float32 scalars,
    prodigyopt in Python floats)."""
    prodigyopt = pytest.importorskip("prodigyopt")
    p = nn.Parameter(torch.zeros(5, dtype=torch.float64))
    got = run_quadratic(optim.create("prodigy", [p], weight_decay=wd, weight_decouple=decouple), p, STEPS)
    q = nn.Parameter(torch.zeros(5, dtype=torch.float64))
    want = run_quadratic(prodigyopt.Prodigy([q], weight_decay=wd, decouple=decouple), q, STEPS)
    assert want[-1][1] > 1e4 * 1e-6
    for (xa, da), (xb, db) in zip(got, want):
        torch.testing.assert_close(xa, xb, rtol=5e-4, atol=1e-6)
        assert da == pytest.approx(db, rel=1e-5)


def test_library_prodigy_coupled_decay_is_a_no_op():
    """pytorch_optimizer's Prodigy(weight_decouple=False) adds wd x to p.grad after the moments and d have read it:
    any wd gives the wd = 0 run (the registry's prodigy corrects it, test above)."""
    import pytorch_optimizer

    ends = []
    for wd in (0.0, 1.0):
        p = nn.Parameter(torch.zeros(5, dtype=torch.float64))
        ends.append(
            run_quadratic(pytorch_optimizer.Prodigy([p], weight_decay=wd, weight_decouple=False), p, STEPS)
        )
    assert torch.equal(ends[0][-1][0], ends[1][-1][0])
    q = nn.Parameter(torch.zeros(5, dtype=torch.float64))
    fixed = run_quadratic(optim.create("prodigy", [q], weight_decay=1.0, weight_decouple=False), q, STEPS)
    assert (fixed[-1][0] - ends[0][-1][0]).abs().max() > 0.1


def test_dadapt_adam_equals_the_authors_dadaptation():
    """The registry's dadapt_adam against Defazio's own package (dadaptation 3.2, a dev dependency) on the fixed
    quadratic, coupled decay. Tolerance as for Prodigy."""
    dadaptation = pytest.importorskip("dadaptation")
    p = nn.Parameter(torch.zeros(5, dtype=torch.float64))
    got = run_quadratic(optim.create("dadapt_adam", [p], weight_decay=0.01), p, STEPS)
    q = nn.Parameter(torch.zeros(5, dtype=torch.float64))
    want = run_quadratic(dadaptation.DAdaptAdam([q], weight_decay=0.01), q, STEPS)
    assert want[-1][1] > 1e4 * 1e-6
    for (xa, da), (xb, db) in zip(got, want):
        torch.testing.assert_close(xa, xb, rtol=5e-4, atol=1e-6)
        assert da == pytest.approx(db, rel=1e-5)
