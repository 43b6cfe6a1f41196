"""The slides' strongly convex problem: L2-regularised binary logistic regression (seed 002, "Основная проблема SGD").

    f(x) = mu/2 ||x||^2 + 1/m sum_i log(1 + exp(-y_i <a_i, x>)),   defaults m=200, n=10, mu=1.

Data: ``a_i ~ N(0, I_n)``; labels ``y_i = sign(<a_i, x_true>)`` from a planted ``x_true ~ N(0, I_n)``, each flipped
with probability ``flip`` (default 0.1) so that the problem is not separable. The model is ``nn.Linear(n, 1,
bias=False)`` whose weight is ``x``. ``f_star``/``x_star`` come from Newton's method in float64.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from descentlab.tasks.base import Batch, Criterion, Task, _landscape_samples, check_number, seeded_generator


def _weights(model: nn.Module, n: int, like: Tensor) -> Tensor:
    """The weight vector ``x`` read through the model: ``model(I_n)`` (works for wrapped / functional models)."""
    eye = torch.eye(n, device=like.device, dtype=like.dtype)
    return model(eye).reshape(n)


def objective64(x: Tensor, a: Tensor, y: Tensor, mu: float) -> Tensor:
    """``mu/2 ||x||^2 + mean_i softplus(-y_i <a_i, x>)`` in the dtype of the inputs."""
    return 0.5 * mu * x.dot(x) + F.softplus(-y * (a @ x)).mean()


def gradient64(x: Tensor, a: Tensor, y: Tensor, mu: float) -> Tensor:
    """``grad f(x) = mu x - 1/m A^T (y * sigmoid(-y A x))``."""
    return mu * x - a.T @ (y * torch.sigmoid(-y * (a @ x))) / a.shape[0]


def newton_solve(a: Tensor, y: Tensor, mu: float, tol: float = 1e-10, max_iter: int = 100) -> Tensor:
    """Minimizer of f by Newton's method with backtracking (float64), to ``||grad f|| < tol``."""
    a, y = a.double(), y.double()
    m, n = a.shape
    x = torch.zeros(n, dtype=torch.float64)
    for _ in range(max_iter):
        g = gradient64(x, a, y, mu)
        if float(g.norm()) < tol:
            return x
        s = torch.sigmoid(y * (a @ x))
        w = s * (1 - s)
        hess = mu * torch.eye(n, dtype=torch.float64) + (a.T * w) @ a / m
        step = torch.linalg.solve(hess, g)
        t, f0 = 1.0, float(objective64(x, a, y, mu))
        while float(objective64(x - t * step, a, y, mu)) > f0 - 0.25 * t * float(g.dot(step)) and t > 1e-8:
            t *= 0.5
        x = x - t * step
    g = gradient64(x, a, y, mu)
    if float(g.norm()) >= tol:
        raise RuntimeError(f"Newton's method did not reach ||grad|| < {tol} (got {float(g.norm()):.3e})")
    return x


class LogRegObjective(nn.Module):
    """Wraps a logreg model for the landscape tools: ``forward(a)`` gives per row ``[<a_i, x>, mu/2 ||x||^2]``.

    With :func:`logreg_criterion` the loss is exactly the task's f(x), the regularizer included; the parameters
    are the wrapped model's (``model.*``).
    """

    def __init__(self, model: nn.Module, n: int, mu: float):
        super().__init__()
        self.model, self.n, self.mu = model, n, mu

    def forward(self, a: Tensor) -> Tensor:
        x = _weights(self.model, self.n, a)
        margins = a @ x
        reg = (0.5 * self.mu * x.pow(2).sum()).expand_as(margins)
        return torch.stack([margins, reg], dim=-1)


def logreg_criterion(outputs: Tensor, y: Tensor) -> Tensor:
    """``mean softplus(-y <a, x>) + mu/2 ||x||^2`` from :class:`LogRegObjective`'s outputs."""
    return F.softplus(-y * outputs[..., 0]).mean() + outputs[..., 1].mean()


@dataclass
class LogRegTask(Task):
    """Strongly convex logistic regression with known ``f_star``, ``x_star``, ``L`` and ``mu``."""

    mu: float = 1.0
    f_star: float = 0.0
    x_star: Tensor = field(default_factory=lambda: torch.zeros(0))
    L: float = 1.0

    @property
    def n(self) -> int:
        """Dimension of ``x``."""
        return int(self.train_data[0].shape[1])

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        """``mu/2 ||x||^2 + mean over the batch of softplus(-y <a, x>)`` (an unbiased estimate of f)."""
        a, y = batch[0], batch[1]
        x = _weights(model, self.n, a)
        return 0.5 * self.mu * x.pow(2).sum() + F.softplus(-y * (a @ x)).mean()

    def landscape_problem(
        self, model: nn.Module, samples: int | None = None
    ) -> tuple[nn.Module, Criterion, tuple[Tensor, Tensor]]:
        """f(x) for the landscape tools: a :class:`LogRegObjective` around ``model``, :func:`logreg_criterion` and
        the first ``samples`` rows of the data (all ``m`` by default; f includes the regularizer)."""
        n = self.train_data[0].shape[0] if samples is None else _landscape_samples(samples)
        return (
            LogRegObjective(model, self.n, self.mu),
            logreg_criterion,
            (self.train_data[0][:n], self.train_data[1][:n]),
        )

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Full ``loss`` = f(x) (float64), ``gap`` = f(x) - f*, ``grad_norm``, ``accuracy`` (+ ``train_`` copies)."""
        a, y = self.train_data[0], self.train_data[1]
        x = _weights(model, self.n, a).double().cpu()
        a64, y64 = a.double().cpu(), y.double().cpu()
        f = float(objective64(x, a64, y64, self.mu))
        acc = float(((a64 @ x) * y64 > 0).double().mean())
        gn = float(gradient64(x, a64, y64, self.mu).norm())
        return {
            "loss": f,
            "train_loss": f,
            "gap": f - self.f_star,
            "grad_norm": gn,
            "accuracy": acc,
            "train_accuracy": acc,
        }

    def gradient_variance(self, x: Tensor | None = None) -> float:
        """Per-sample gradient variance ``sigma^2 = 1/m sum_i ||grad f_i(x) - grad f(x)||^2`` (default at x*).

        ``f_i(x) = mu/2 ||x||^2 + log(1 + exp(-y_i <a_i, x>))``, so ``grad f_i = mu x - y_i a_i sigmoid(-y_i <a_i, x>)``.
        """
        a, y = self.train_data[0].double().cpu(), self.train_data[1].double().cpu()
        x = self.x_star if x is None else x.detach().double().cpu().reshape(-1)
        if x.shape != (self.n,):
            raise ValueError(f"x must have {self.n} entries, got shape {tuple(x.shape)}")
        per = -(y * torch.sigmoid(-y * (a @ x)))[:, None] * a  # data part of grad f_i
        dev = per - per.mean(0)
        return float(dev.pow(2).sum(1).mean())


def make_logreg(m: int = 200, n: int = 10, mu: float = 1.0, flip: float = 0.1, seed: int = 0) -> LogRegTask:
    """The slides' logistic regression (``m`` samples, ``n`` features, strong convexity ``mu``, label ``flip`` rate)."""
    for nm, v in (("m", m), ("n", n)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"logreg: {nm} must be a positive integer, got {v!r}")
    mu = check_number("logreg", "mu (strong convexity)", mu, low=0, low_open=True)
    flip = check_number("logreg", "flip", flip, low=0, high=0.5)
    g = seeded_generator(seed)
    a = torch.randn(m, n, generator=g, dtype=torch.float64).float().double()  # the float32 data, exactly
    x_true = torch.randn(n, generator=g, dtype=torch.float64)
    y = torch.sign(a @ x_true)
    y[y == 0] = 1.0
    flips = torch.rand(m, generator=g, dtype=torch.float64) < flip
    y[flips] = -y[flips]
    x_star = newton_solve(a, y, float(mu))
    f_star = float(objective64(x_star, a, y, float(mu)))
    lam_max = float(torch.linalg.eigvalsh(a.T @ a)[-1])
    data = (a.float(), y.float())  # f_star/x_star are exact for these float32 values
    return LogRegTask(
        name="logreg",
        train_data=data,
        val_data=data,
        model_factory=lambda s: nn.Linear(n, 1, bias=False),
        description="strongly convex logistic regression (seed 002)",
        kind="classification",
        default_batch_size=20,
        default_lr=0.1,
        default_steps=500,
        default_eval_every=10,
        config={"m": m, "n": n, "mu": float(mu), "flip": float(flip), "seed": seed},
        mu=float(mu),
        f_star=f_star,
        x_star=x_star,
        L=float(mu) + lam_max / (4 * m),
    )


from descentlab.tasks import register  # noqa: E402

register("logreg", make_logreg, "mu-strongly convex logistic regression from the slides (m=200, n=10, mu=1)")
