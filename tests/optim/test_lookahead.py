"""Lookahead against a plain re-statement of Algorithm 2 (seed 003) and a checkpoint into a fresh model."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from descentlab.optim.lookahead import Lookahead

_GEN = torch.Generator().manual_seed(0)
_M = torch.randn(5, 5, generator=_GEN, dtype=torch.float64)
A = _M @ _M.T / 5 + 0.1 * torch.eye(5, dtype=torch.float64)
B = torch.randn(5, generator=_GEN, dtype=torch.float64)
W0 = torch.randn(5, generator=_GEN, dtype=torch.float64)


def _grad(w: torch.Tensor) -> torch.Tensor:
    return A @ w + B


@pytest.mark.parametrize("pullback", ["none", "reset", "pullback"])
def test_matches_plain_restatement_over_several_cycles(pullback):
    lr, mu, k, alpha, steps = 0.1, 0.9, 3, 0.4, 11
    w = nn.Parameter(W0.clone())
    opt = Lookahead(torch.optim.SGD([w], lr=lr, momentum=mu), k=k, alpha=alpha, pullback=pullback)

    ref, buf = W0.clone(), torch.zeros(5, dtype=torch.float64)
    slow, slow_buf = W0.clone(), torch.zeros(5, dtype=torch.float64)
    for t in range(1, steps + 1):
        opt.zero_grad()
        (0.5 * w @ A @ w + B @ w).backward()
        opt.step()
        # torch SGD momentum: buf = g on the first step, then mu * buf + g
        buf = _grad(ref) if t == 1 else mu * buf + _grad(ref)
        ref = ref - lr * buf
        if t % k == 0:
            slow = slow + alpha * (ref - slow)
            ref = slow.clone()
            if pullback == "reset":
                buf = torch.zeros_like(buf)
            elif pullback == "pullback":
                slow_buf = slow_buf + alpha * (buf - slow_buf)
                buf = slow_buf.clone()
        torch.testing.assert_close(w.detach(), ref, rtol=1e-12, atol=1e-12)


def test_alpha_one_is_the_base_optimizer():
    w, v = nn.Parameter(W0.clone()), nn.Parameter(W0.clone())
    la = Lookahead(torch.optim.Adam([w], lr=0.05), k=2, alpha=1.0)
    base = torch.optim.Adam([v], lr=0.05)
    for _ in range(6):
        for p, o in ((w, la), (v, base)):
            o.zero_grad()
            (0.5 * p @ A @ p + B @ p).backward()
            o.step()
    torch.testing.assert_close(w, v, rtol=0, atol=0)


def _make(init_state, base_lr=0.01):
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    model.load_state_dict(init_state)
    opt = Lookahead(torch.optim.Adam(model.parameters(), lr=base_lr), k=3, alpha=0.5, pullback="pullback")
    return model, opt


@pytest.mark.parametrize("save_at", [4, 6])
def test_state_dict_round_trip_into_fresh_model_and_optimizer(save_at):
    torch.manual_seed(1)
    x, y = torch.randn(32, 4), torch.randn(32, 1)
    init = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1)).state_dict()

    def train(model, opt, n):
        for _ in range(n):

            def closure():
                opt.zero_grad()
                loss = nn.functional.mse_loss(model(x), y)
                loss.backward()
                return loss

            opt.step(closure)

    ma, oa = _make(init)
    train(ma, oa, save_at)
    buf = io.BytesIO()
    torch.save({"model": ma.state_dict(), "opt": oa.state_dict()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    mb, ob = _make(init, base_lr=0.5)  # a different lr: the checkpoint's param groups must win
    mb.load_state_dict(ckpt["model"])
    ob.load_state_dict(ckpt["opt"])
    assert ob.param_groups is ob.base_optimizer.param_groups and ob.param_groups[0]["lr"] == 0.01
    train(ma, oa, 7)
    train(mb, ob, 7)
    for a, b in zip(ma.parameters(), mb.parameters()):
        assert torch.equal(a, b)


def test_closure_loss_returned_and_lr_scheduler_on_wrapper():
    w = nn.Parameter(W0.clone())
    opt = Lookahead(torch.optim.SGD([w], lr=0.1))
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.1)

    def closure():
        opt.zero_grad()
        loss = 0.5 * w @ A @ w + B @ w
        loss.backward()
        return loss

    loss = opt.step(closure)
    torch.testing.assert_close(loss, 0.5 * W0 @ A @ W0 + B @ W0)
    sched.step()
    assert opt.base_optimizer.param_groups[0]["lr"] == pytest.approx(0.01)


@pytest.mark.parametrize(
    "kwargs, name",
    [({"k": 0}, "k must"), ({"alpha": 1.5}, "alpha"), ({"pullback": "interpolate"}, "pullback")],
)
def test_invalid_hyperparameters_raise(kwargs, name):
    w = nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match=name):
        Lookahead(torch.optim.SGD([w], lr=0.1), **kwargs)


def test_registry_lookahead_passes_base_hyperparameters():
    from descentlab.optim import available, create

    if "adam" not in available():
        pytest.skip("torch classics not registered yet")
    model = nn.Linear(3, 1)
    opt = create("lookahead", model, lr=0.003, k=4)
    assert (
        isinstance(opt.base_optimizer, torch.optim.Adam) and opt.param_groups[0]["lr"] == 0.003 and opt.k == 4
    )
    sgd = create("lookahead", model, base="sgd", lr=0.1, pullback="reset")
    assert isinstance(sgd.base_optimizer, torch.optim.SGD) and sgd.pullback == "reset"
