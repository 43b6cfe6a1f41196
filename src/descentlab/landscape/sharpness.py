"""Sharpness and average flatness of a trained model (worst-case and Gaussian-average loss increase).

Sources: Foret et al. 2021 (SAM), seed 000 "Что такое sharpness": max_{||eps||_p <= rho} L(w + eps) - L(w) and
eps-hat = rho sign(g) |g|^(q-1) / (||g||_q^q)^(1/p), 1/p + 1/q = 1; seed 003 table "average flatness L^N_train"
(Chen et al. 2022): E_{eps ~ N(0, sigma^2 I)} L(w + eps) - L(w).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from descentlab.landscape.hessian import Estimate, HessianOperator
from descentlab.landscape.projections import (
    Criterion,
    Data,
    FlatParams,
    as_batches,
    buffers_of,
    check_model,
    evaluate,
    evaluate_points,
    training_mode,
)


def _positive_finite(value: object) -> bool:
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
        and float(value) > 0
    )


def _dual_exponent(p: float) -> float:
    return 1.0 if math.isinf(p) else (math.inf if p == 1 else p / (p - 1))


def sam_epsilon(gradient: Tensor, rho: float, p: float = 2) -> Tensor:
    """SAM's first-order maximizer eps-hat = rho sign(g) |g|^(q-1) / (||g||_q^q)^(1/p) (Foret et al. 2021, eq. 2).

    p = inf gives rho sign(g); p = 1 puts rho on the largest |g_i|. A zero gradient gives a zero vector.
    """
    g = gradient
    if math.isinf(p):
        return rho * torch.sign(g)
    if p == 1:
        out = torch.zeros_like(g)
        i = int(g.abs().argmax())
        out[i] = rho * torch.sign(g[i])
        return out
    q = _dual_exponent(p)
    a = g.abs()
    denom = (a.pow(q).sum()) ** (1.0 / p)
    if float(denom) == 0.0:
        return torch.zeros_like(g)
    return rho * torch.sign(g) * a.pow(q - 1) / denom


def _retract(eps: Tensor, rho: float, p: float) -> Tensor:
    """Back into the p-ball of radius rho: exact Euclidean projection for p = 2 and inf, rescaling otherwise."""
    if math.isinf(p):
        return eps.clamp(-rho, rho)
    norm = float(eps.norm(p=p))
    return eps * (rho / norm) if norm > rho else eps


@dataclass
class Sharpness:
    """``value`` = max found of L(w + eps) - L(w) over ||eps||_p <= rho; ``history`` per ascent step."""

    value: float
    base_loss: float
    perturbed_loss: float
    rho: float
    p: float
    epsilon_norm: float
    history: list[float] = field(default_factory=list)

    def __float__(self) -> float:
        return self.value


def sharpness(
    model: nn.Module,
    criterion: Criterion,
    data: Data,
    rho: float = 0.05,
    p: float = 2,
    steps: int = 20,
    step_size: float = 1.0,
    seed: int = 0,
) -> Sharpness:
    """Worst-case sharpness max_{||eps||_p <= rho} L(w + eps) - L(w) by projected gradient ascent (seed 000).

    The first step is SAM's eps-hat from the gradient at w (a random direction of norm rho when the gradient
    vanishes, e.g. at an exact minimum); each further step adds ``step_size`` times eps-hat of the gradient at
    w + eps and goes back into the ball. The best value seen is returned. Eval mode; the model is untouched.
    """
    check_model(model)
    if not _positive_finite(rho):
        raise ValueError(f"rho must be a finite number > 0, got {rho!r}")
    p = float(p)
    if not p >= 1:
        raise ValueError(f"p must be >= 1 (or math.inf), got {p!r}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not _positive_finite(step_size):
        raise ValueError(f"step_size must be a finite number > 0, got {step_size!r}")
    op = HessianOperator(model, criterion, data, retain_graph=False)
    base = op.flat.vector.clone()
    base_loss, g = op.gradient()
    eps = sam_epsilon(g, rho, p)
    if float(eps.abs().sum()) == 0.0:
        gen = torch.Generator().manual_seed(int(seed))
        eps = sam_epsilon(torch.randn(base.shape, generator=gen, dtype=torch.float64).to(base), rho, p)
    best, best_loss, best_norm, history = -math.inf, base_loss, 0.0, []
    for step in range(steps):
        op.flat.vector = base + eps
        loss, g = op.gradient()
        history.append(loss - base_loss)
        if loss - base_loss > best:
            best, best_loss, best_norm = loss - base_loss, loss, float(eps.norm(p=p))
        if step + 1 < steps:
            eps = _retract(eps + step_size * sam_epsilon(g, rho, p), rho, p)
    return Sharpness(best, base_loss, best_loss, float(rho), p, best_norm, history)


def average_flatness(
    model: nn.Module,
    criterion: Criterion,
    data: Data,
    sigma: float = 0.01,
    samples: int = 10,
    seed: int = 0,
    vectorize: bool | None = None,
) -> Estimate:
    """Average flatness E L(w + N(0, sigma^2 I)) - L(w) as ``(mean, standard_error)`` (seed 003, L^N_train).

    Noise is added to every trainable parameter; the samples are evaluated in vmapped chunks. Eval mode.
    """
    check_model(model)
    if not _positive_finite(sigma):
        raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}")
    if not isinstance(samples, int) or samples < 2:
        raise ValueError(f"samples must be an integer >= 2, got {samples!r}")
    batches = as_batches(data)
    flat = FlatParams(model)
    buffers = buffers_of(model)
    gen = torch.Generator().manual_seed(int(seed))
    noise = (torch.randn(samples, flat.numel, generator=gen, dtype=torch.float64) * sigma).to(flat.vector)
    with training_mode(model, False):
        base_loss, _ = evaluate(model, criterion, batches, flat.to_dict(flat.vector), buffers)
        losses, _ = evaluate_points(
            model,
            criterion,
            batches,
            flat.vector,
            noise,
            torch.eye(samples),
            flat,
            buffers,
            vectorize=vectorize,
        )
    diffs = np.asarray(losses) - base_loss
    return Estimate(float(diffs.mean()), float(diffs.std(ddof=1) / math.sqrt(samples)), 0)
