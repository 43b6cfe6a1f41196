"""scikit-learn's bundled 8x8 ``load_digits`` (1797 images, no download): ``softmax_digits`` and ``digits_mlp``.

Features are the 64 pixel intensities divided by 16 (so in [0, 1]); a seeded permutation splits the data into
train / validation (``val_fraction`` 0.2 by default).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn

from descentlab.tasks.base import Task, seeded_generator


@functools.lru_cache(maxsize=2)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)


def digits_data(
    val_fraction: float = 0.2, seed: int = 0
) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """(train, val) tensors ``(x float32 [N, 64], y int64 [N])`` from a seeded split of ``load_digits``."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    x_np, y_np = _digits_arrays()
    x, y = torch.from_numpy(x_np.copy()), torch.from_numpy(y_np.copy())
    perm = torch.randperm(len(y), generator=seeded_generator(seed))
    n_val = int(round(val_fraction * len(y)))
    val_idx, tr_idx = perm[:n_val], perm[n_val:]
    return (x[tr_idx], y[tr_idx]), (x[val_idx], y[val_idx])


def make_softmax_digits(val_fraction: float = 0.2, seed: int = 0) -> Task:
    """Multinomial logistic regression ``nn.Linear(64, 10)`` on the digits (a convex problem)."""
    train, val = digits_data(val_fraction, seed)
    return Task(
        name="softmax_digits",
        train_data=train,
        val_data=val,
        model_factory=lambda s: nn.Linear(64, 10),
        description="softmax regression on sklearn's 8x8 digits",
        kind="classification",
        default_batch_size=64,
        default_lr=1e-2,
        default_steps=1000,
        default_eval_every=50,
        config={"val_fraction": val_fraction, "seed": seed},
    )


def make_digits_mlp(width: int = 128, val_fraction: float = 0.2, seed: int = 0) -> Task:
    """One-hidden-layer ReLU MLP ``64 -> width -> 10`` on the digits."""
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"digits_mlp: width must be a positive integer, got {width!r}")
    train, val = digits_data(val_fraction, seed)
    return Task(
        name="digits_mlp",
        train_data=train,
        val_data=val,
        model_factory=lambda s: nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 10)),
        description="MLP on sklearn's 8x8 digits",
        kind="classification",
        default_batch_size=64,
        default_lr=1e-2,
        default_steps=1000,
        default_eval_every=50,
        config={"width": width, "val_fraction": val_fraction, "seed": seed},
    )


from descentlab.tasks import register  # noqa: E402

register("softmax_digits", make_softmax_digits, "softmax regression on sklearn's 8x8 digits (convex)")
register("digits_mlp", make_digits_mlp, "one-hidden-layer MLP on sklearn's 8x8 digits")
