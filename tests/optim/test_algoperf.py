"""AlgoPerf's NAdamW / AdamW baselines against their reference update, transcribed plainly here.

The reference is the functional ``nadamw`` of mlcommons/algorithmic-efficiency's PyTorch NAdamW baseline
(reference_algorithms/paper_baselines/nadamw/pytorch/submission.py), written out below in its own order of
operations (decay, moments, the in-place Nesterov look-ahead on ``exp_avg`` and its undo). Their AdamW baseline
runs ``torch.optim.AdamW``, which is the reference for ``algoperf_adamw``.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

from descentlab import optim
from descentlab.optim import AlgoPerfNAdamW


def reference_nadamw(params, grads_per_step, lrs, beta1, beta2, eps, wd):
    """AlgoPerf's NAdamW step, operation by operation, on float64 copies; returns the parameter trajectory."""
    params = [p.detach().clone() for p in params]
    exp_avg = [torch.zeros_like(p) for p in params]
    exp_avg_sq = [torch.zeros_like(p) for p in params]
    out = []
    for t, (grads, lr) in enumerate(zip(grads_per_step, lrs, strict=True), start=1):
        for p, g, m, v in zip(params, grads, exp_avg, exp_avg_sq, strict=True):
            p.mul_(1 - lr * wd)
            m.mul_(beta1).add_(g, alpha=1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            m.mul_(beta1).add_(g, alpha=1 - beta1)  # the look-ahead, undone below
            step_size = lr / (1 - beta1**t)
            denom = (v.sqrt() / math.sqrt(1 - beta2**t)).add_(eps)
            p.addcdiv_(m, denom, value=-step_size)
            m.sub_(g, alpha=1 - beta1).div_(beta1)
        out.append([p.clone() for p in params])
    return out


def _grads(shapes, steps, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [[torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes] for _ in range(steps)]


def _run(opt_params, opt, grads_per_step, lrs):
    traj = []
    for grads, lr in zip(grads_per_step, lrs, strict=True):
        for g_ in opt.param_groups:
            g_["lr"] = lr
        for p, g in zip(opt_params, grads, strict=True):
            p.grad = g.clone()
        opt.step()
        traj.append([p.detach().clone() for p in opt_params])
    return traj


SHAPES = [(4, 3), (3,), (2, 2, 2)]


@pytest.mark.parametrize("betas,wd", [((0.9, 0.999), 1e-2), ((0.7, 0.99), 0.3), ((0.95, 0.98), 0.0)])
def test_nadamw_matches_algoperf_reference_over_60_steps(betas, wd):
    steps = 60
    gen = torch.Generator().manual_seed(1)
    init = [torch.randn(s, generator=gen, dtype=torch.float64) for s in SHAPES]
    grads = _grads(SHAPES, steps)
    # a warmup + cosine schedule, as the baseline runs it (the decay term sees the scheduled lr)
    lrs = [
        3e-3 * min(1.0, t / 10) * 0.5 * (1 + math.cos(math.pi * t / steps)) + 1e-6
        for t in range(1, steps + 1)
    ]
    ref = reference_nadamw(init, grads, lrs, betas[0], betas[1], 1e-8, wd)
    params = [p.clone().requires_grad_(True) for p in init]
    opt = optim.create("algoperf_nadamw", params, lr=lrs[0], betas=betas, weight_decay=wd)
    got = _run(params, opt, grads, lrs)
    for step in (0, 1, 19, steps - 1):
        for a, b in zip(got[step], ref[step], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    assert isinstance(opt, AlgoPerfNAdamW)


def test_adamw_matches_torch_adamw_which_algoperf_runs():
    steps = 60
    gen = torch.Generator().manual_seed(2)
    init = [torch.randn(s, generator=gen, dtype=torch.float64) for s in SHAPES]
    grads = _grads(SHAPES, steps, seed=3)
    lrs = [1e-2 * (1 - t / (steps + 1)) for t in range(steps)]
    a = [p.clone().requires_grad_(True) for p in init]
    b = [p.clone().requires_grad_(True) for p in init]
    ours = optim.create("algoperf_adamw", a, lr=lrs[0], betas=(0.85, 0.99), weight_decay=0.1)
    theirs = torch.optim.AdamW(b, lr=lrs[0], betas=(0.85, 0.99), eps=1e-8, weight_decay=0.1)
    for x, y in zip(_run(a, ours, grads, lrs)[-1], _run(b, theirs, grads, lrs)[-1], strict=True):
        torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-14)


def test_torch_nadam_is_not_algoperf_nadamw():
    """The old entrant (torch NAdam, decoupled decay) differs from the reference already at step 1."""
    init = [torch.tensor([1.0, -2.0], dtype=torch.float64)]
    grads = _grads([(2,)], 20, seed=4)
    ref = reference_nadamw(init, grads, [1e-2] * 20, 0.9, 0.999, 1e-8, 0.0)
    p = [init[0].clone().requires_grad_(True)]
    torch_nadam = torch.optim.NAdam(p, lr=1e-2, betas=(0.9, 0.999), decoupled_weight_decay=True)
    got = _run(p, torch_nadam, grads, [1e-2] * 20)
    first_ref, first_torch = ref[0][0] - init[0], got[0][0] - init[0]
    # AlgoPerf's first step is lr * sign(g) * (0.9 * 0.1 + 0.1) / 0.1 = 1.9 lr; torch's is about 1.05 lr
    torch.testing.assert_close(
        first_ref.abs(), torch.full((2,), 1.9e-2, dtype=torch.float64), rtol=1e-6, atol=0
    )
    assert (first_ref.abs() / first_torch.abs()).min() > 1.5


def test_first_step_is_the_hand_number():
    # g = 2 everywhere: m = 0.2, v = 0.004, m_nesterov = 0.9*0.2 + 0.1*2 = 0.38, step = lr/0.1 * 0.38/(2 + eps)
    p = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = AlgoPerfNAdamW([p], lr=0.1, betas=(0.9, 0.999), eps=0.0, weight_decay=0.5)
    p.grad = torch.full((3,), 2.0, dtype=torch.float64)
    opt.step()
    torch.testing.assert_close(p.detach(), torch.full((3,), -0.1 / 0.1 * 0.38 / 2.0, dtype=torch.float64))


def test_state_dict_round_trip_into_new_parameters():
    grads = _grads([(3,)], 10, seed=5)
    a = [torch.ones(3, dtype=torch.float64, requires_grad=True)]
    opt = AlgoPerfNAdamW(a, lr=1e-2)
    _run(a, opt, grads[:5], [1e-2] * 5)
    b = [a[0].detach().clone().requires_grad_(True)]
    opt2 = AlgoPerfNAdamW(b, lr=1e-2)
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))  # a checkpoint's copy: torch shares the tensors
    x = _run(a, opt, grads[5:], [1e-2] * 5)[-1][0]
    y = _run(b, opt2, grads[5:], [1e-2] * 5)[-1][0]
    torch.testing.assert_close(x, y, rtol=0, atol=0)


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"lr": -1.0}, "-1.0"),
        ({"lr": float("nan")}, "nan"),
        ({"betas": (1.0, 0.9)}, r"betas\[0\].*1.0"),
        ({"betas": (0.9, -0.1)}, r"betas\[1\].*-0.1"),
        ({"betas": 0.9}, "pair"),
        ({"eps": -1e-8}, "eps.*-1e-08"),
        ({"weight_decay": -0.1}, "weight_decay.*-0.1"),
    ],
)
def test_bad_hyper_parameters_are_refused(kw, match):
    with pytest.raises(ValueError, match=match):
        AlgoPerfNAdamW([torch.zeros(2, requires_grad=True)], **kw)


def test_registry_refuses_nesterov_override():
    with pytest.raises(ValueError, match="nesterov"):
        optim.create("algoperf_adamw", [torch.zeros(2, requires_grad=True)], nesterov=True)
