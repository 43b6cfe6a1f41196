"""Learning-rate schedules by name: ``create(name, optimizer, total_steps, **kw) -> LRScheduler``.

Built on ``torch.optim.lr_scheduler`` (StepLR, ExponentialLR, CosineAnnealingLR, LinearLR, CyclicLR, OneCycleLR,
SequentialLR, ConstantLR); ``LambdaLR`` only for what torch lacks (``inverse_sqrt``, ``strongly_convex``, ``garipov``
and cosine to a per-group floor when the groups' learning rates differ). The scheduler is stepped once per optimizer
step: the k-th update (k = 0 .. total_steps-1) uses ``schedule(k)``. Every schedule scales each param group's own
initial lr ``lr0`` (its ``initial_lr``), except ``strongly_convex``, which sets an absolute lr.

With k the step, T = total_steps, W = ceil(warmup_fraction T), r = min_lr_ratio:

- constant: lr0.  step: lr0 gamma^floor(k / step_size).  exponential: lr0 gamma^k.
- cosine: r lr0 + (1 - r) lr0 (1 + cos(pi k / T)) / 2.  linear: lr0 (1 - (1 - r) k / T).
- warmup_cosine / warmup_linear: lr0 (k + 1) / W for k < W, then cosine / linear over the last T - W steps.
- wsd (warmup-stable-decay): warmup as above, lr0 until the last D = ceil(decay_fraction T) steps, then a
  linear or cosine decay to r lr0.
- cyclic: triangular cycles between r lr0 and lr0 with half-period step_size_up (torch's CyclicLR).
- onecycle: torch's OneCycleLR with max_lr = lr0 (starts at lr0/div_factor, ends at lr0/(div_factor
  final_div_factor)).
- inverse_sqrt: lr0 / sqrt(k + 1) (SGD for convex Lipschitz problems; seed "Стохастический градиентный спуск").
- strongly_convex: (2k + 1) / (2 mu (k + 1)^2), independent of lr0 (SGD for mu-strongly convex / PL problems,
  E f(x_k) - f* <= L sigma^2 / (2 mu^2 (k + 1)); same seed).
- garipov: Garipov et al. 2018's curve-finding schedule: lr0 while k / T <= 0.5, then linearly down to 0.01 lr0 at
  k / T = 0.9, then 0.01 lr0 (:func:`descentlab.landscape.connectivity.garipov_lr_factor`).

When the optimizer is a wrapper with ``.base_optimizer`` (SAM, Lookahead) that does not share its param groups
with the base, the scheduler is attached to the base optimizer.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import torch
from torch.optim import lr_scheduler as tls

from descentlab._registry import Registry

LRScheduler = tls.LRScheduler
_REGISTRY = Registry("schedule")


# ---------------------------------------------------------------- helpers


def _initial_lrs(opt: torch.optim.Optimizer) -> list[float]:
    """Each group's initial lr, as torch's schedulers see it (``initial_lr`` if set, else ``lr``)."""
    return [float(g.get("initial_lr", g["lr"])) for g in opt.param_groups]


def _phase_steps(fraction: float, total_steps: int) -> int:
    """ceil(fraction * total_steps), robust to round-off (0.1 * 30 -> 3, not 4)."""
    return math.ceil(fraction * total_steps - 1e-9) if fraction > 0 else 0


def _check_fraction(name: str, value: float, high_open: bool = True) -> float:
    value = float(value)
    ok = 0.0 <= value < 1.0 if high_open else 0.0 <= value <= 1.0
    if not ok:
        interval = "[0, 1)" if high_open else "[0, 1]"
        raise ValueError(f"{name} must be in {interval}, got {value}")
    return value


def _check_positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _warmup(opt: torch.optim.Optimizer, steps: int) -> LRScheduler:
    """lr0 (k + 1) / steps for k = 0 .. steps-1 (reaches lr0 at k = steps - 1)."""
    return tls.LinearLR(opt, start_factor=1.0 / steps, end_factor=1.0, total_iters=steps - 1)


def _cosine(opt: torch.optim.Optimizer, steps: int, min_lr_ratio: float) -> LRScheduler:
    """Cosine from lr0 to min_lr_ratio lr0 over ``steps`` (CosineAnnealingLR; LambdaLR when groups' floors differ)."""
    lrs = _initial_lrs(opt)
    if min_lr_ratio == 0.0 or all(lr == lrs[0] for lr in lrs):
        return tls.CosineAnnealingLR(opt, T_max=steps, eta_min=min_lr_ratio * lrs[0])

    def factor(k: int) -> float:
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(k, steps) / steps))

    return tls.LambdaLR(opt, factor)


def _linear_decay(opt: torch.optim.Optimizer, steps: int, min_lr_ratio: float) -> LRScheduler:
    return tls.LinearLR(opt, start_factor=1.0, end_factor=min_lr_ratio, total_iters=steps)


def _decay(opt: torch.optim.Optimizer, shape: str, steps: int, min_lr_ratio: float) -> LRScheduler:
    if shape == "cosine":
        return _cosine(opt, steps, min_lr_ratio)
    if shape == "linear":
        return _linear_decay(opt, steps, min_lr_ratio)
    raise ValueError(f"decay shape must be 'linear' or 'cosine', got {shape!r}")


def _phases(opt: torch.optim.Optimizer, phases: list[tuple[int, Callable[[], LRScheduler]]]) -> LRScheduler:
    """SequentialLR over the phases of positive length (``(length, build)`` pairs, built in order)."""
    kept = [(n, build) for n, build in phases if n > 0]
    if len(kept) == 1:
        return kept[0][1]()
    schedulers, milestones, at = [], [], 0
    for n, build in kept:
        schedulers.append(build())
        at += n
        milestones.append(at)
    return tls.SequentialLR(opt, schedulers, milestones=milestones[:-1])


def _no_cycle_momentum(opt: torch.optim.Optimizer, cycle_momentum: bool, name: str) -> bool:
    if cycle_momentum and not ({"momentum", "betas"} & set(opt.defaults)):
        raise ValueError(
            f"{name}: cycle_momentum=True needs an optimizer with 'momentum' or 'betas', "
            f"{type(opt).__name__} has neither; use cycle_momentum=False"
        )
    return bool(cycle_momentum)


# ---------------------------------------------------------------- schedules


def _constant(opt: torch.optim.Optimizer, total_steps: int) -> LRScheduler:
    return tls.ConstantLR(opt, factor=1.0, total_iters=0)


def _step(
    opt: torch.optim.Optimizer, total_steps: int, step_size: int | None = None, gamma: float = 0.1
) -> LRScheduler:
    step_size = max(1, total_steps // 3) if step_size is None else _check_positive_int("step_size", step_size)
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], got {gamma}")
    return tls.StepLR(opt, step_size=step_size, gamma=gamma)


def _exponential(opt: torch.optim.Optimizer, total_steps: int, gamma: float | None = None) -> LRScheduler:
    gamma = 0.01 ** (1.0 / total_steps) if gamma is None else float(gamma)
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], got {gamma}")
    return tls.ExponentialLR(opt, gamma=gamma)


def _cosine_schedule(opt: torch.optim.Optimizer, total_steps: int, min_lr_ratio: float = 0.0) -> LRScheduler:
    return _cosine(opt, total_steps, _check_fraction("min_lr_ratio", min_lr_ratio, high_open=False))


def _linear(opt: torch.optim.Optimizer, total_steps: int, min_lr_ratio: float = 0.0) -> LRScheduler:
    return _linear_decay(opt, total_steps, _check_fraction("min_lr_ratio", min_lr_ratio, high_open=False))


def _warmup_then(shape: str) -> Callable[..., LRScheduler]:
    def build(
        opt: torch.optim.Optimizer, total_steps: int, warmup_fraction: float = 0.05, min_lr_ratio: float = 0.0
    ) -> LRScheduler:
        w = min(
            _phase_steps(_check_fraction("warmup_fraction", warmup_fraction), total_steps), total_steps - 1
        )
        r = _check_fraction("min_lr_ratio", min_lr_ratio, high_open=False)
        return _phases(
            opt,
            [(w, lambda: _warmup(opt, w)), (total_steps - w, lambda: _decay(opt, shape, total_steps - w, r))],
        )

    return build


def _wsd(
    opt: torch.optim.Optimizer,
    total_steps: int,
    warmup_fraction: float = 0.05,
    decay_fraction: float = 0.2,
    decay: str = "linear",
    min_lr_ratio: float = 0.0,
) -> LRScheduler:
    if decay not in ("linear", "cosine"):
        raise ValueError(f"decay must be 'linear' or 'cosine', got {decay!r}")
    wf = _check_fraction("warmup_fraction", warmup_fraction)
    df = _check_fraction("decay_fraction", decay_fraction, high_open=False)
    if wf + df > 1.0:
        raise ValueError(f"warmup_fraction + decay_fraction must be <= 1, got {wf} + {df}")
    r = _check_fraction("min_lr_ratio", min_lr_ratio, high_open=False)
    d = min(_phase_steps(df, total_steps), total_steps)
    w = min(_phase_steps(wf, total_steps), total_steps - d)
    s = total_steps - w - d
    return _phases(
        opt,
        [
            (w, lambda: _warmup(opt, w)),
            (s, lambda: tls.ConstantLR(opt, factor=1.0, total_iters=0)),
            (d, lambda: _decay(opt, decay, d, r)),
        ],
    )


def _cyclic(
    opt: torch.optim.Optimizer,
    total_steps: int,
    step_size_up: int | None = None,
    min_lr_ratio: float = 0.1,
    mode: str = "triangular",
    cycle_momentum: bool = False,
) -> LRScheduler:
    up = (
        max(1, total_steps // 8)
        if step_size_up is None
        else _check_positive_int("step_size_up", step_size_up)
    )
    r = _check_fraction("min_lr_ratio", min_lr_ratio, high_open=False)
    if mode not in ("triangular", "triangular2", "exp_range"):
        raise ValueError(f"mode must be 'triangular', 'triangular2' or 'exp_range', got {mode!r}")
    lrs = _initial_lrs(opt)
    return tls.CyclicLR(
        opt,
        base_lr=[r * lr for lr in lrs],
        max_lr=lrs,
        step_size_up=up,
        mode=mode,
        cycle_momentum=_no_cycle_momentum(opt, cycle_momentum, "cyclic"),
    )


def _onecycle(
    opt: torch.optim.Optimizer,
    total_steps: int,
    pct_start: float = 0.3,
    anneal_strategy: str = "cos",
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    three_phase: bool = False,
    cycle_momentum: bool = False,
) -> LRScheduler:
    if not 0.0 < pct_start < 1.0:
        raise ValueError(f"pct_start must be in (0, 1), got {pct_start}")
    if anneal_strategy not in ("cos", "linear"):
        raise ValueError(f"anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
    if not (div_factor > 0 and final_div_factor > 0):
        raise ValueError(f"div_factor and final_div_factor must be > 0, got {div_factor}, {final_div_factor}")
    if total_steps < 2:
        raise ValueError(f"onecycle needs total_steps >= 2, got {total_steps}")
    return tls.OneCycleLR(
        opt,
        max_lr=_initial_lrs(opt),
        total_steps=total_steps,
        pct_start=pct_start,
        anneal_strategy=anneal_strategy,
        div_factor=div_factor,
        final_div_factor=final_div_factor,
        three_phase=three_phase,
        cycle_momentum=_no_cycle_momentum(opt, cycle_momentum, "onecycle"),
    )


def _inverse_sqrt(opt: torch.optim.Optimizer, total_steps: int) -> LRScheduler:
    return tls.LambdaLR(opt, lambda k: 1.0 / math.sqrt(k + 1))


def strongly_convex_lr(k: int, mu: float) -> float:
    """The seed's step for mu-strongly convex (PL) SGD: alpha_k = (2k + 1) / (2 mu (k + 1)^2)."""
    return (2 * k + 1) / (2 * mu * (k + 1) ** 2)


def _strongly_convex(opt: torch.optim.Optimizer, total_steps: int, mu: float | None = None) -> LRScheduler:
    if mu is None:
        raise ValueError("strongly_convex needs mu (the strong-convexity / PL constant), e.g. mu=0.1")
    if not float(mu) > 0:
        raise ValueError(f"mu must be > 0, got {mu}")
    lrs = _initial_lrs(opt)
    if any(lr <= 0 for lr in lrs):
        raise ValueError(f"strongly_convex scales each group's lr; initial lrs must be > 0, got {lrs}")
    mu = float(mu)
    # LambdaLR multiplies the group's initial lr: divide it out, so that lr_k is the seed's absolute value.
    return tls.LambdaLR(opt, [lambda k, lr0=lr0: strongly_convex_lr(k, mu) / lr0 for lr0 in lrs])


def _garipov(opt: torch.optim.Optimizer, total_steps: int) -> LRScheduler:
    from descentlab.landscape.connectivity import garipov_lr_factor

    return tls.LambdaLR(opt, lambda k: garipov_lr_factor(k / total_steps))


_SCHEDULES: dict[str, tuple[Callable[..., LRScheduler], str]] = {
    "constant": (_constant, "lr0 throughout"),
    "step": (_step, "lr0 gamma^floor(k/step_size) (StepLR; step_size=T//3, gamma=0.1)"),
    "exponential": (_exponential, "lr0 gamma^k (ExponentialLR; gamma so that lr_T = 0.01 lr0)"),
    "cosine": (_cosine_schedule, "cosine from lr0 to min_lr_ratio lr0 over T steps (CosineAnnealingLR)"),
    "linear": (_linear, "linear from lr0 to min_lr_ratio lr0 over T steps (LinearLR)"),
    "warmup_cosine": (
        _warmup_then("cosine"),
        "linear warmup (warmup_fraction=0.05), then cosine to min_lr_ratio",
    ),
    "warmup_linear": (
        _warmup_then("linear"),
        "linear warmup (warmup_fraction=0.05), then linear to min_lr_ratio",
    ),
    "cyclic": (_cyclic, "triangular cycles between 0.1 lr0 and lr0, half-period T//8 (CyclicLR)"),
    "onecycle": (_onecycle, "one cycle up to lr0 and down (OneCycleLR; pct_start=0.3, cos)"),
    "wsd": (_wsd, "warmup-stable-decay: 5% warmup, constant, last 20% linear (or cosine) decay"),
    "inverse_sqrt": (_inverse_sqrt, "lr0 / sqrt(k+1) (SGD, convex Lipschitz; seed slides)"),
    "strongly_convex": (
        _strongly_convex,
        "absolute (2k+1)/(2 mu (k+1)^2), needs mu (SGD, strongly convex; seed)",
    ),
    "garipov": (_garipov, "lr0 for half the steps, linear to 0.01 lr0 at 90 %, held (Garipov et al. 2018)"),
}
for _name, (_factory, _description) in _SCHEDULES.items():
    _REGISTRY.register(_name, _factory, _description)


# ---------------------------------------------------------------- public API


def available() -> list[str]:
    """Names of all schedules."""
    return _REGISTRY.available()


def describe() -> dict[str, str]:
    """Schedule name -> one-line description."""
    return _REGISTRY.describe()


def keywords(name: str) -> dict[str, Any]:
    """The keyword arguments schedule ``name`` accepts, with their defaults (None: computed from total_steps)."""
    params = list(inspect.signature(_REGISTRY.factory(name)).parameters.values())[2:]
    return {p.name: (None if p.default is inspect.Parameter.empty else p.default) for p in params}


def scheduled_optimizer(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """The optimizer a scheduler must drive: a wrapper's ``.base_optimizer`` unless they share param groups."""
    base = getattr(optimizer, "base_optimizer", None)
    if isinstance(base, torch.optim.Optimizer) and optimizer.param_groups is not base.param_groups:
        return base
    return optimizer


def create(name: str, optimizer: torch.optim.Optimizer, total_steps: int, **kw: Any) -> LRScheduler:
    """Build schedule ``name`` for ``optimizer`` over ``total_steps`` steps (call ``.step()`` after each update).

    Unknown names raise ValueError suggesting close ones; unknown or invalid keywords raise ValueError naming them.
    """
    factory = _REGISTRY.factory(name)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
        raise ValueError(f"total_steps must be an integer >= 1, got {total_steps!r}")
    allowed = keywords(name)
    unknown = sorted(set(kw) - set(allowed))
    if unknown:
        raise ValueError(
            f"schedule {name!r}: unknown keyword(s) {unknown}; allowed: {sorted(allowed) or 'none'}"
        )
    return factory(scheduled_optimizer(optimizer), total_steps, **kw)
