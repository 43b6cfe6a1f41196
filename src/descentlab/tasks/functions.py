"""2-D test functions as tasks: ``rosenbrock``, ``quadratic`` and ``multiminima``.

The model is a :class:`PointModel` holding one 2-vector parameter ``x``; the loss is ``f(x)``. With ``noise=sigma > 0``
the loss gets the term ``sigma * mean_j <xi_j, x>`` with ``xi_j ~ N(0, I)`` drawn per batch (``batch_size`` draws), so
the gradient is ``grad f(x) + N(0, sigma^2 / batch_size * I)``: the textbook model of stochastic gradient noise.
The plain functions ``rosenbrock(x, y)``, ``quadratic(x, y)`` and ``multiminima(x, y)`` take tensors or numpy arrays
(for contour plots).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from descentlab.tasks.base import Batch, Criterion, SeededStream, Task, check_number

ArrayLike = Any  # torch.Tensor | np.ndarray | float


def _cos(v: ArrayLike) -> ArrayLike:
    return torch.cos(v) if isinstance(v, Tensor) else np.cos(v)


def rosenbrock(x: ArrayLike, y: ArrayLike, a: float = 1.0, b: float = 100.0) -> ArrayLike:
    """Rosenbrock's valley ``(a - x)^2 + b (y - x^2)^2``; minimum 0 at ``(a, a^2)`` (Rosenbrock 1960)."""
    return (a - x) ** 2 + b * (y - x**2) ** 2


def quadratic(x: ArrayLike, y: ArrayLike, kappa: float = 10.0, angle: float = 0.0) -> ArrayLike:
    """``1/2 v^T A v`` with ``A = R(angle) diag(1, kappa) R(angle)^T``, ``v = (x, y)``; minimum 0 at the origin."""
    c, s = math.cos(angle), math.sin(angle)
    u = c * x + s * y  # coordinates in the eigenbasis of A
    w = -s * x + c * y
    return 0.5 * (u**2 + kappa * w**2)


def multiminima(
    x: ArrayLike, y: ArrayLike, bowl: float = 0.1, ripple: float = 0.25, frequency: float = 2 * math.pi
) -> ArrayLike:
    """A quadratic bowl with cosine ripples, ``bowl/2 (x^2+y^2) + ripple (2 - cos(w x) - cos(w y))``.

    Global minimum 0 at the origin; local minima near the lattice points ``2 pi k / w`` (here the integers) as long
    as ``bowl * |k| < ripple * w`` (the ripple's slope beats the bowl's). A toy for "SGD noise escapes local minima".
    """
    return 0.5 * bowl * (x**2 + y**2) + ripple * (2.0 - _cos(frequency * x) - _cos(frequency * y))


class PointModel(nn.Module):
    """A "model" that is a single point ``x`` in R^2 (the optimization variable); ``forward()`` returns it."""

    def __init__(self, start: Sequence[float]):
        super().__init__()
        self.x = nn.Parameter(torch.tensor([float(start[0]), float(start[1])], dtype=torch.float32))

    def forward(self, *_: Any) -> Tensor:
        return self.x


class PointObjective(nn.Module):
    """Wraps a :class:`PointModel` for the landscape tools: ``forward(inputs)`` is ``f(x)`` once per input row."""

    def __init__(self, model: nn.Module, fn: Callable[[Tensor, Tensor], Tensor]):
        super().__init__()
        self.model, self.fn = model, fn

    def forward(self, inputs: Tensor) -> Tensor:
        x = self.model()
        return self.fn(x[0], x[1]).expand(inputs.shape[0])


def mean_value(outputs: Tensor, targets: Tensor) -> Tensor:
    """The criterion of :class:`PointObjective`: the mean of its outputs (``targets`` are ignored)."""
    return outputs.mean()


class NoiseStream(SeededStream):
    """Endless, resumable stream of ``(xi,)`` with ``xi`` of shape (batch_size, 2), ``xi ~ N(0, I)``.

    Batch ``k`` is drawn from a generator seeded by ``(seed, k)``, so the state is just the step count.
    """

    def draw(self, generator: torch.Generator) -> Batch:
        """Standard normal noise for one batch."""
        return (torch.randn(self.batch_size, 2, generator=generator),)


@dataclass
class FunctionTask(Task):
    """Minimize a 2-D function ``fn(x, y)`` over a :class:`PointModel`, optionally with Gaussian gradient noise."""

    fn: Callable[[Tensor, Tensor], Tensor] | None = None
    noise: float = 0.0
    f_star: float = 0.0
    minimizer: tuple[float, float] = (0.0, 0.0)
    start: tuple[float, float] = (0.0, 0.0)
    extra: dict[str, Any] = field(default_factory=dict)

    def value(self, point: Tensor) -> Tensor:
        """The noise-free ``f`` at a 2-vector ``point``."""
        assert self.fn is not None
        return self.fn(point[0], point[1])

    def landscape_problem(
        self, model: nn.Module, samples: int | None = None
    ) -> tuple[nn.Module, Criterion, tuple[Tensor, Tensor]]:
        """The noise-free ``f(x)`` for the landscape tools: a :class:`PointObjective` around ``model``,
        :func:`mean_value` and one dummy example (the function has no data; ``samples`` is ignored)."""
        assert self.fn is not None
        return PointObjective(model, self.fn), mean_value, (torch.zeros(1, 1), torch.zeros(1))

    def batches(self, batch_size: int | None = None, seed: int = 0) -> NoiseStream:  # type: ignore[override]
        """Endless resumable stream of noise draws (used only when ``noise > 0``, but always well defined)."""
        return NoiseStream(self.default_batch_size if batch_size is None else batch_size, seed)

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        """``f(x) + noise * mean_j <xi_j, x>``: unbiased, with gradient noise ``N(0, noise^2/B I)``."""
        x = model()
        out = self.value(x)
        if self.noise > 0:
            xi = batch[0].to(device=x.device, dtype=x.dtype)
            out = out + self.noise * (xi @ x).mean()
        return out

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Noise-free ``loss`` (= ``train_loss``), ``gap`` = f - f*, the coordinates ``x0, x1`` and ``distance``."""
        x = model().detach().double().cpu()
        f = float(self.value(x))
        dist = math.hypot(float(x[0]) - self.minimizer[0], float(x[1]) - self.minimizer[1])
        return {
            "loss": f,
            "train_loss": f,
            "gap": f - self.f_star,
            "x0": float(x[0]),
            "x1": float(x[1]),
            "distance": dist,
        }


def _start(start: Sequence[float] | None, default: tuple[float, float]) -> tuple[float, float]:
    if start is None:
        return default
    if len(start) != 2 or not all(math.isfinite(float(s)) for s in start):
        raise ValueError(f"start must be two finite numbers, got {start!r}")
    return (float(start[0]), float(start[1]))


def _check_noise(noise: float) -> float:
    if not isinstance(noise, (int, float)) or not math.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    return float(noise)


def _function_task(
    name: str,
    fn: Callable[[Tensor, Tensor], Tensor],
    start: tuple[float, float],
    minimizer: tuple[float, float],
    noise: float,
    config: dict[str, Any],
    default_lr: float,
    default_steps: int,
    description: str,
    extra: dict[str, Any] | None = None,
) -> FunctionTask:
    empty = (torch.zeros(0, 2),)
    return FunctionTask(
        name=name,
        train_data=empty,
        val_data=empty,
        model_factory=lambda seed: PointModel(start),
        description=description,
        kind="function",
        default_batch_size=1,
        default_lr=default_lr,
        default_steps=default_steps,
        default_eval_every=10,
        config=config,
        fn=fn,
        noise=noise,
        f_star=0.0,
        minimizer=minimizer,
        start=start,
        extra=dict(extra or {}),
    )


def make_rosenbrock(
    a: float = 1.0, b: float = 100.0, start: Sequence[float] | None = None, noise: float = 0.0, seed: int = 0
) -> FunctionTask:
    """Rosenbrock's function from the classic start ``(-1.2, 1)``; minimum 0 at ``(a, a^2)``.

    ``seed`` is accepted for uniformity (the noise stream is seeded by ``batches(seed=...)``).
    """
    a = check_number("rosenbrock", "a", a)
    b = check_number("rosenbrock", "b", b, low=0, low_open=True)
    st = _start(start, (-1.2, 1.0))
    return _function_task(
        "rosenbrock",
        lambda x, y: rosenbrock(x, y, a, b),
        st,
        (a, a * a),
        _check_noise(noise),
        {"a": a, "b": b, "start": list(st), "noise": noise, "seed": seed},
        default_lr=1e-3,
        default_steps=5000,
        description="Rosenbrock valley (a - x)^2 + b (y - x^2)^2",
    )


def make_quadratic(
    kappa: float = 10.0,
    angle: float = 0.0,
    start: Sequence[float] | None = None,
    noise: float = 0.0,
    seed: int = 0,
) -> FunctionTask:
    """``1/2 x^T A x`` with ``A = R diag(1, kappa) R^T`` (rotation ``angle`` in radians); ``L = kappa``, ``mu = 1``.

    ``task.extra`` holds ``A`` (float64 tensor), ``L`` and ``mu``. Default ``lr = 1/L``.
    """
    kappa = check_number("quadratic", "kappa", kappa, low=1)
    angle = check_number("quadratic", "angle", angle)
    st = _start(start, (1.0, 1.0))
    c, s = math.cos(angle), math.sin(angle)
    rot = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    mat = rot @ torch.diag(torch.tensor([1.0, kappa], dtype=torch.float64)) @ rot.T
    return _function_task(
        "quadratic",
        lambda x, y: quadratic(x, y, kappa, angle),
        st,
        (0.0, 0.0),
        _check_noise(noise),
        {"kappa": kappa, "angle": angle, "start": list(st), "noise": noise, "seed": seed},
        default_lr=1.0 / kappa,
        default_steps=200,
        description="ill-conditioned quadratic 1/2 x^T A x, A = R diag(1, kappa) R^T",
        extra={"A": mat, "L": kappa, "mu": 1.0},
    )


def make_multiminima(
    bowl: float = 0.1,
    ripple: float = 0.25,
    frequency: float = 2 * math.pi,
    start: Sequence[float] | None = None,
    noise: float = 0.0,
    seed: int = 0,
) -> FunctionTask:
    """Bowl plus cosine ripples (see :func:`multiminima`); GD from the default start ``(2.3, -1.7)`` settles in the
    local minimum near ``(2, -2)`` (f ~ 0.4), while the global minimum is 0 at the origin."""
    bowl = check_number("multiminima", "bowl", bowl, low=0, low_open=True)
    ripple = check_number("multiminima", "ripple", ripple, low=0)
    frequency = check_number("multiminima", "frequency", frequency, low=0, low_open=True)
    st = _start(start, (2.3, -1.7))
    return _function_task(
        "multiminima",
        lambda x, y: multiminima(x, y, bowl, ripple, frequency),
        st,
        (0.0, 0.0),
        _check_noise(noise),
        {
            "bowl": bowl,
            "ripple": ripple,
            "frequency": frequency,
            "start": list(st),
            "noise": noise,
            "seed": seed,
        },
        default_lr=1e-2,
        default_steps=2000,
        description="quadratic bowl with cosine ripples (many local minima)",
    )


from descentlab.tasks import register  # noqa: E402

register(
    "rosenbrock", make_rosenbrock, "Rosenbrock's 2-D valley; option noise adds N(0, sigma^2) gradient noise"
)
register("quadratic", make_quadratic, "2-D quadratic with condition number kappa (optionally rotated, noisy)")
register(
    "multiminima", make_multiminima, "2-D bowl with cosine ripples: many local minima (noise escapes them)"
)
