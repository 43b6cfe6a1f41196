"""``sgdw`` (pytorch_optimizer's SGDW) is Loshchilov & Hutter's SGDW: decoupled decay ``x <- x - lr*wd*x`` before
torch's momentum SGD step; with ``weight_decay = lambda / lr`` it is the paper's ``x <- x - lambda*x``."""

from __future__ import annotations

import torch

from descentlab import optim


def _plain_sgdw(x0: torch.Tensor, grads: list[torch.Tensor], lr: float, wd: float, mu: float) -> torch.Tensor:
    x, buf = x0.clone(), None
    for g in grads:
        x = x * (1 - lr * wd)  # decoupled: on x before the step, not through the momentum
        buf = g.clone() if buf is None else mu * buf + g
        x = x - lr * buf
    return x


def test_sgdw_is_decoupled_decay_then_momentum_sgd() -> None:
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(7, 5, generator=gen)
    grads = [torch.randn(7, 5, generator=gen) for _ in range(60)]
    p = torch.nn.Parameter(x0.clone())
    opt = optim.create("sgdw", [p], lr=0.05, momentum=0.9, weight_decay=0.3)
    for g in grads:
        p.grad = g.clone()
        opt.step()
    torch.testing.assert_close(p.detach(), _plain_sgdw(x0, grads, 0.05, 0.3, 0.9), rtol=1e-5, atol=1e-6)


def test_sgdw_decay_is_not_the_gradient_l2_of_sgd() -> None:
    """With momentum, L2 through the gradient (sgd's weight_decay) and decoupled decay differ (seed 003)."""
    x0 = torch.ones(3)
    grads = [torch.zeros(3), torch.zeros(3), torch.zeros(3)]
    a, b = torch.nn.Parameter(x0.clone()), torch.nn.Parameter(x0.clone())
    sgdw = optim.create("sgdw", [a], lr=0.1, momentum=0.9, weight_decay=0.5)
    sgd = optim.create("sgd", [b], lr=0.1, momentum=0.9, weight_decay=0.5)
    for g in grads:
        a.grad, b.grad = g.clone(), g.clone()
        sgdw.step()
        sgd.step()
    assert torch.allclose(a.detach(), torch.full((3,), 0.95**3))  # zero gradient: only the decay moves x
    assert not torch.allclose(a.detach(), b.detach())
