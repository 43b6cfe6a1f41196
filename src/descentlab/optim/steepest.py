"""Steepest descent under a norm: x <- x + lr * LMO(g) or x + lr * ||g||_* LMO(g).

Seed 001/002 ("Old Optimizer, New Norm", Bernstein & Newhouse 2024): LMO(g) = argmin_{||d|| <= 1} <g, d>.
Normalized steepest descent steps lr * LMO(g); steepest descent steps lr * ||g||_* LMO(g) (the argmin of
<g, d> + ||d||^2 / (2 lr)). Norms (each parameter tensor is its own block):
l2 -> -g / ||g||_2 (dual l2); linf -> -sign(g) (dual l1, signSGD); l1 -> -sign(g_i) e_i at the largest |g_i|
(dual linf); spectral -> -msign(g) = -U V^T (dual nuclear; Muon is this one with momentum).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from descentlab.optim.orthogonalize import METHODS, orthogonalize
from descentlab.optim.registry import ParamsOrModel, params_of, register

__all__ = ["NORMS", "SCALES", "SteepestDescent", "dual_norm", "lmo"]

NORMS = ("l2", "linf", "l1", "spectral")
SCALES = ("lmo", "dual")


def lmo(g: Tensor, norm: str, ns_method: str = "svd", ns_steps: int = 5) -> Tensor:
    """argmin_{||d|| <= 1} <g, d> for one tensor (zero where g = 0). Spectral flattens to (out, rest); 1-D
    spectral is l2 (a vector's spectral norm as a 1 x n matrix)."""
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r} (allowed: {', '.join(NORMS)})")
    if norm == "spectral" and g.ndim >= 2:
        matrix = g.reshape(g.shape[0], -1)
        return -orthogonalize(matrix, method=ns_method, steps=ns_steps).view_as(g)
    if norm in ("l2", "spectral"):
        n = torch.linalg.vector_norm(g)
        return torch.zeros_like(g) if n == 0 else -g / n
    if norm == "linf":
        return -torch.sign(g)
    flat = g.reshape(-1)
    d = torch.zeros_like(flat)
    i = int(flat.abs().argmax())
    d[i] = -torch.sign(flat[i])
    return d.view_as(g)


def dual_norm(g: Tensor, norm: str) -> Tensor:
    """||g||_* for the dual of ``norm``: l2 -> l2, linf -> l1, l1 -> linf, spectral -> nuclear (1-D: l2)."""
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r} (allowed: {', '.join(NORMS)})")
    if norm == "spectral" and g.ndim >= 2:
        return torch.linalg.matrix_norm(g.reshape(g.shape[0], -1).to(torch.float64), ord="nuc").to(g.dtype)
    order = {"l2": 2.0, "spectral": 2.0, "linf": 1.0, "l1": math.inf}[norm]
    return torch.linalg.vector_norm(g, ord=order)


class SteepestDescent(torch.optim.Optimizer):
    """Steepest descent under ``norm`` with optional momentum (Bernstein & Newhouse 2024; seed 001).

    m <- beta m + (1 - beta) g (when momentum beta > 0, else m = g); x <- x + lr * LMO(m) for scale="lmo"
    (normalized; signSGD / Signum for linf) or x <- x + lr * ||m||_* LMO(m) for scale="dual". For spectral the
    LMO is -orthogonalize(m) (``ns_method``, default "newton_schulz"); with scale="dual" the nuclear norm is
    <m, -LMO(m)>, exact for ns_method="svd".
    """

    def __init__(
        self,
        params: Any,
        lr: float,
        norm: str = "l2",
        momentum: float = 0.0,
        scale: str = "lmo",
        ns_method: str = "newton_schulz",
        ns_steps: int = 5,
    ) -> None:
        defaults = dict(
            lr=lr, norm=norm, momentum=momentum, scale=scale, ns_method=ns_method, ns_steps=ns_steps
        )
        _validate(defaults)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group after validating its hyper-parameters."""
        super().add_param_group(param_group)
        _validate(self.param_groups[-1])

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One steepest-descent step on every parameter with a gradient; returns the closure's loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta = group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("SteepestDescent does not support sparse gradients")
                m = p.grad
                if beta > 0:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    m = state["momentum_buffer"].lerp_(p.grad, 1.0 - beta)
                d = lmo(m, group["norm"], group["ns_method"], group["ns_steps"])
                step = group["lr"]
                if group["scale"] == "dual":
                    step = (
                        step * float(-(m * d).sum())
                        if group["norm"] == "spectral"
                        else step * float(dual_norm(m, group["norm"]))
                    )
                p.add_(d, alpha=step)
        return loss


def _validate(group: dict) -> None:
    lr = group["lr"]
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (math.isfinite(lr) and lr >= 0):
        raise ValueError(f"lr must be a finite number >= 0, got {lr!r}")
    m = group["momentum"]
    if isinstance(m, bool) or not isinstance(m, (int, float)) or not 0 <= m < 1:
        raise ValueError(f"momentum must be a number in [0, 1), got {m!r}")
    if group["norm"] not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {group['norm']!r}")
    if group["scale"] not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {group['scale']!r}")
    if group["ns_method"] not in METHODS:
        raise ValueError(f"ns_method must be one of {METHODS}, got {group['ns_method']!r}")
    steps = group["ns_steps"]
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"ns_steps must be a positive integer, got {steps!r}")


def _factory(**fixed: Any) -> Callable[..., SteepestDescent]:
    def create(params_or_model: ParamsOrModel, **hparams: Any) -> SteepestDescent:
        clash = sorted(set(hparams) & set(fixed) - {"lr", "momentum"})
        if clash:
            raise ValueError(f"hyper-parameter(s) {clash} are fixed by this registry name; use 'steepest'")
        return SteepestDescent(params_of(params_or_model), **{**fixed, **hparams})

    return create


register(
    "steepest",
    _factory(lr=0.01),
    "Steepest descent under a norm (l2 / linf / l1 / spectral), LMO or dual step",
)
register("signsgd", _factory(lr=1e-3, norm="linf"), "signSGD: x -= lr sign(g) (linf steepest descent)")
register(
    "signum", _factory(lr=1e-3, norm="linf", momentum=0.9), "Signum: sign of the gradient's EMA (beta 0.9)"
)
register("normalized_sgd", _factory(lr=0.01, norm="l2"), "Normalized SGD: x -= lr g / ||g||_2")
