"""Mode connectivity: the loss barrier of the straight path and low-loss curves between two trained models.

Sources: Garipov et al. 2018, "Loss Surfaces, Mode Connectivity, and Fast Ensembling of DNNs" (Bezier curve and
polygonal chain, loss E_{t ~ U(0,1)} L(phi_theta(t)), BatchNorm statistics recomputed at each t); seeds 000/004
"Связность мод". Curves are weighted sums of flat control points fed through ``functional_call``, so any model
works unchanged and neither endpoint model is modified.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call

from descentlab.landscape.projections import (
    Criterion,
    Data,
    FlatParams,
    LineResult,
    as_batches,
    buffers_of,
    check_model,
    evaluate,
    evaluate_points,
    interpolate,
    training_mode,
)

CURVES = ("bezier", "polychain")
_NORMS = (nn.modules.batchnorm._BatchNorm,)


def linear_barrier(
    model_a: nn.Module, model_b: nn.Module, criterion: Criterion, data: Data, points: int = 51
) -> float:
    """Loss barrier of the straight path: max_t L((1 - t) w_a + t w_b) - (L(w_a) + L(w_b)) / 2 (buffers too)."""
    res = interpolate(model_a, model_b, criterion, data, points=points)
    return float(res.loss.max() - 0.5 * (res.loss[0] + res.loss[-1]))


def _basis(kind: str, n_points: int, ts: Tensor) -> Tensor:
    """Weights (len(ts), n_points) of the control points at each t: Bernstein polynomials or hat functions."""
    n = n_points - 1
    ts = ts.reshape(-1, 1).double()
    k = torch.arange(n_points, dtype=torch.float64)[None]
    if kind == "bezier":
        binom = torch.tensor([math.comb(n, int(i)) for i in range(n_points)], dtype=torch.float64)[None]
        return binom * ts**k * (1 - ts) ** (n - k)
    return torch.clamp(1 - (ts * n - k).abs(), min=0.0)  # piecewise linear through knots k / n


def _has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, _NORMS) and m.track_running_stats for m in model.modules())


class Curve:
    """A curve phi(t), t in [0, 1], in parameter space between two models (Garipov et al. 2018).

    ``control_points`` is a (bends, N) tensor of flat parameter vectors; row 0 and the last row are the endpoints.
    """

    def __init__(
        self,
        model: nn.Module,
        criterion: Criterion,
        data: Data,
        control_points: Tensor,
        kind: str,
        bn_batches: int = 4,
        buffers: dict[str, Tensor] | None = None,
    ):
        if kind not in CURVES:
            raise ValueError(f"curve must be one of {CURVES}, got {kind!r}")
        self.model = copy.deepcopy(model)
        self.criterion = criterion
        self.batches = as_batches(data)
        self.flat = FlatParams(self.model)
        self.control_points = control_points.detach().clone()
        self.kind = kind
        self.bn_batches = int(bn_batches)
        self.buffers = buffers_of(self.model) if buffers is None else buffers

    def weights(self, t: float | Tensor) -> Tensor:
        """Flat parameters phi(t) (for a tensor of ts, one row per t)."""
        ts = torch.as_tensor(t, dtype=torch.float64)
        b = _basis(self.kind, self.control_points.shape[0], ts).to(self.control_points)
        out = b @ self.control_points
        return out[0] if ts.ndim == 0 else out

    def _recomputed_buffers(self, w: Tensor) -> dict[str, Tensor]:
        """BatchNorm running statistics recomputed at weights w on the first ``bn_batches`` batches (their average)."""
        bufs = {k: v.clone() for k, v in self.buffers.items()}
        norms = [(name, m) for name, m in self.model.named_modules() if isinstance(m, _NORMS)]
        saved = [(m, m.momentum) for _, m in norms]
        for name, m in norms:
            prefix = f"{name}." if name else ""
            if m.track_running_stats:
                bufs[prefix + "running_mean"].zero_()
                bufs[prefix + "running_var"].fill_(1.0)
                bufs[prefix + "num_batches_tracked"].zero_()
        try:
            for _, m in norms:
                m.momentum = None  # cumulative moving average over the batches below
            with torch.no_grad(), training_mode(self.model, True):
                params = self.flat.to_dict(w)
                for x, _ in self.batches[: max(1, self.bn_batches)]:
                    functional_call(self.model, (params, bufs), (x,), tie_weights=True)
        finally:
            for m, mom in saved:
                m.momentum = mom
        return bufs

    def point(self, t: float) -> nn.Module:
        """A new model (a copy of the template) with the weights phi(t) (and BatchNorm statistics recomputed)."""
        if not 0.0 <= float(t) <= 1.0:
            raise ValueError(f"t must lie in [0, 1], got {t!r}")
        w = self.weights(float(t))
        out = copy.deepcopy(self.model)
        bufs = self._recomputed_buffers(w) if _has_batchnorm(self.model) else self.buffers
        with torch.no_grad():
            for name, value in self.flat.to_dict(w).items():
                out.get_parameter(name).copy_(value)
            for name, value in bufs.items():
                out.get_buffer(name).copy_(value)
        return out

    def loss_along(self, ts: Sequence[float] | np.ndarray | int = 61, data: Data | None = None) -> LineResult:
        """Loss (and accuracy) at the given ts (or that many evenly spaced ts in [0, 1]) in eval mode."""
        if isinstance(ts, int):
            ts = np.linspace(0.0, 1.0, ts)
        ts_t = torch.as_tensor(np.asarray(ts, dtype=float), dtype=torch.float64)
        batches = self.batches if data is None else as_batches(data)
        with training_mode(self.model, False):
            if not _has_batchnorm(self.model):
                coeffs = _basis(self.kind, self.control_points.shape[0], ts_t)
                loss, acc = evaluate_points(
                    self.model, self.criterion, batches, torch.zeros_like(self.flat.vector),
                    self.control_points, coeffs, self.flat, self.buffers,
                )  # fmt: skip
            else:
                loss, acc_list = np.zeros(len(ts_t)), []
                for i, t in enumerate(ts_t):
                    w = self.weights(t)
                    bufs = self._recomputed_buffers(w)
                    loss[i], a = evaluate(self.model, self.criterion, batches, self.flat.to_dict(w), bufs)
                    acc_list.append(a)
                acc = None if any(a is None for a in acc_list) else np.array(acc_list)
        return LineResult(ts_t.numpy(), loss, acc, None, kind=f"curve:{self.kind}")

    def barrier(self, points: int = 61) -> float:
        """max_t L(phi(t)) - (L(phi(0)) + L(phi(1))) / 2 on ``points`` evenly spaced ts."""
        res = self.loss_along(points)
        return float(res.loss.max() - 0.5 * (res.loss[0] + res.loss[-1]))


def garipov_lr_factor(progress: float) -> float:
    """Garipov et al.'s curve-training schedule at ``progress`` in [0, 1): 1 up to 0.5, then linear to 0.01 at 0.9,
    then 0.01."""
    if progress <= 0.5:
        return 1.0
    if progress <= 0.9:
        return 1.0 - 0.99 * (progress - 0.5) / 0.4
    return 0.01


def connect(
    model_a: nn.Module,
    model_b: nn.Module,
    criterion: Criterion,
    data: Data,
    curve: str = "bezier",
    bends: int = 3,
    steps: int = 1000,
    lr: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    bn_batches: int = 4,
    seed: int = 0,
    lr_schedule: str = "garipov",
) -> Curve:
    """Train a low-loss curve between two models by minimizing E_{t ~ U(0,1)} L(phi_theta(t)) (Garipov et al.).

    ``bends`` counts control points including the two frozen endpoints (3 = one free middle point); free points
    start on the straight line. Each step draws t ~ U(0, 1) and one mini-batch (cycling through ``data``) and
    takes an SGD step (``lr``, ``momentum``) on the free points of loss + weight_decay/2 ||phi(t)||^2. Modules are
    in training mode while training (BatchNorm uses batch statistics; running statistics are discarded).
    ``lr_schedule``: ``"garipov"`` (the paper's: ``lr`` for the first half of the steps, then linearly down to
    ``lr / 100`` at 90 % and held there; :func:`garipov_lr_factor`) or ``"constant"``. ``seed`` fixes the draws of t
    and of dropout; the global random state is not advanced.
    """
    check_model(model_a, "model_a")
    check_model(model_b, "model_b")
    if curve not in CURVES:
        raise ValueError(f"curve must be one of {CURVES}, got {curve!r}")
    if not isinstance(bends, int) or bends < 3:
        raise ValueError(f"bends must be an integer >= 3 (control points incl. the endpoints), got {bends!r}")
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    if lr_schedule not in ("garipov", "constant"):
        raise ValueError(f"lr_schedule must be 'garipov' or 'constant', got {lr_schedule!r}")
    batches = as_batches(data)
    flat_a, flat_b = FlatParams(model_a), FlatParams(model_b)
    if flat_a.names != flat_b.names or flat_a.shapes != flat_b.shapes:
        raise ValueError("model_a and model_b must have the same parameters (names and shapes)")
    wa, wb = flat_a.vector, flat_b.vector.to(flat_a.vector)
    frac = torch.linspace(0, 1, bends, dtype=wa.dtype)[:, None]
    points = (1 - frac) * wa + frac * wb
    free = points[1:-1].clone().requires_grad_(True)
    opt = torch.optim.SGD([free], lr=lr, momentum=momentum)
    gen = torch.Generator().manual_seed(int(seed))
    template = copy.deepcopy(model_a)
    buffers = buffers_of(model_a)
    cuda = [wa.device.index or 0] if wa.device.type == "cuda" else []
    # The caller's global RNG is left as it was: dropout in the forward passes draws from a fork seeded by ``seed``.
    with torch.random.fork_rng(devices=cuda), training_mode(template, True):
        torch.manual_seed(int(seed))
        for step in range(steps):
            if lr_schedule == "garipov":
                opt.param_groups[0]["lr"] = lr * garipov_lr_factor(step / steps)
            x, y = batches[step % len(batches)]
            t = torch.rand((), generator=gen, dtype=torch.float64)
            coeff = _basis(curve, bends, t)[0].to(wa)
            w = coeff[0] * wa + coeff[-1] * wb + coeff[1:-1] @ free
            bufs = {k: v.clone() for k, v in buffers.items()}  # batch statistics; running stats discarded
            out = functional_call(template, (flat_a.to_dict(w), bufs), (x,), tie_weights=True)
            loss = criterion(out, y)
            if weight_decay:
                loss = loss + 0.5 * weight_decay * (w * w).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    control = torch.cat([wa[None], free.detach(), wb[None]])
    return Curve(model_a, criterion, batches, control, curve, bn_batches=bn_batches, buffers=buffers)
