"""Heavy-tailed class imbalance (Kunstner et al. 2024, "Heavy-tailed class imbalance and why Adam outperforms
gradient descent on language models").

Class ``k`` (``k = 1..C``) has a count proportional to ``1 / k^alpha`` (Zipf), at least ``min_count``. Inputs are a
Gaussian mixture: ``x = mu_k + noise * N(0, I_dim)`` with class means ``mu_k ~ N(0, I_dim)``; with the default
``dim=64, noise=1`` the classes are nearly linearly separable, so every class's loss can go to zero and the
question is only how fast. Classes are numbered by decreasing frequency (class 0 is the most frequent). The
validation set is an independent draw with the same class proportions (``val_fraction`` of the train size).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from descentlab.tasks.base import Batch, Task, check_number, seeded_generator


def zipf_counts(num_classes: int, num_samples: int, alpha: float = 1.0, min_count: int = 1) -> Tensor:
    """Integer class counts ``~ num_samples * k^-alpha / sum_j j^-alpha`` (at least ``min_count``), int64."""
    w = torch.arange(1, num_classes + 1, dtype=torch.float64).pow(-alpha)
    counts = torch.round(num_samples * w / w.sum()).long()
    return counts.clamp_min(min_count)


def frequency_groups(counts: Tensor, groups: int = 10) -> Tensor:
    """Group index of every class: classes (sorted by decreasing frequency) are cut where the cumulative share of
    samples crosses ``j / groups``, so each group holds about ``1/groups`` of the data (a class bigger than that is
    a group of its own, and group numbers may then skip)."""
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {groups!r}")
    order = torch.argsort(counts, descending=True, stable=True)
    share_before = (torch.cumsum(counts[order], 0) - counts[order]).double() / counts.sum()
    g_sorted = torch.clamp((share_before * groups + 1e-9).floor().long(), max=groups - 1)
    out = torch.empty_like(g_sorted)
    out[order] = g_sorted
    return out


def mean_by_group(values: Tensor, groups: Tensor) -> dict[int, float]:
    """Mean of ``values`` over each group index present in ``groups`` (same shape)."""
    return {int(j): float(values[groups == j].mean()) for j in torch.unique(groups)}


class GroupLossMixin:
    """Adds ``train_loss_g{j}`` (from the task's ``loss_by_group(model)``) to a Task's ``evaluate``."""

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """The base metrics plus ``train_loss_g{j}`` (training loss of frequency group ``j``)."""
        out = super().evaluate(model)  # type: ignore[misc]
        was_training = model.training
        model.eval()
        try:
            out.update({f"train_loss_g{j}": v for j, v in self.loss_by_group(model).items()})  # type: ignore[attr-defined]
        finally:
            model.train(was_training)
        return out


@dataclass
class ImbalanceTask(GroupLossMixin, Task):
    """Zipf-imbalanced classification; ``class_counts`` (train) and ``class_group`` (class -> frequency group)."""

    class_counts: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    class_group: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))

    @torch.no_grad()
    def loss_by_group(self, model: nn.Module, data: Batch | None = None) -> dict[int, float]:
        """Mean cross-entropy over the samples of each non-empty frequency group (default: the training data);
        group 0 holds the most frequent classes (Kunstner et al. 2024, Fig. 1)."""
        x, y = data if data is not None else self.train_data
        dev = next(model.parameters()).device
        per = F.cross_entropy(model(x.to(dev)), y.to(dev), reduction="none").cpu()
        g = self.class_group[y.cpu()]
        return mean_by_group(per, g)


def make_imbalance(
    num_classes: int = 128,
    num_samples: int = 8192,
    dim: int = 64,
    alpha: float = 1.0,
    noise: float = 1.0,
    model: str = "linear",
    width: int = 128,
    groups: int = 10,
    val_fraction: float = 0.25,
    seed: int = 0,
) -> ImbalanceTask:
    """Zipf(``alpha``) class imbalance over ``num_classes`` Gaussian clusters; ``model`` is "linear" or "mlp"."""
    if model not in ("linear", "mlp"):
        raise ValueError(f"imbalance: model must be 'linear' or 'mlp', got {model!r}")
    for nm, v in (("num_classes", num_classes), ("num_samples", num_samples), ("dim", dim), ("width", width)):
        if not isinstance(v, int) or v < 2:
            raise ValueError(f"imbalance: {nm} must be an integer >= 2, got {v!r}")
    alpha = check_number("imbalance", "alpha", alpha, low=0)
    noise = check_number("imbalance", "noise", noise, low=0)
    val_fraction = check_number("imbalance", "val_fraction", val_fraction, low=0, high=1, low_open=True)
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"imbalance: groups must be a positive integer, got {groups!r}")
    g = seeded_generator(seed)
    means = torch.randn(num_classes, dim, generator=g)

    def draw(counts: Tensor) -> Batch:
        y = torch.repeat_interleave(torch.arange(num_classes), counts)
        x = means[y] + noise * torch.randn(len(y), dim, generator=g)
        perm = torch.randperm(len(y), generator=g)
        return x[perm], y[perm]

    counts = zipf_counts(num_classes, num_samples, alpha)
    train = draw(counts)
    val = draw(zipf_counts(num_classes, max(num_classes, int(val_fraction * num_samples)), alpha))

    def factory(s: int) -> nn.Module:
        if model == "linear":
            return nn.Linear(dim, num_classes)
        return nn.Sequential(nn.Linear(dim, width), nn.ReLU(), nn.Linear(width, num_classes))

    return ImbalanceTask(
        name="imbalance",
        train_data=train,
        val_data=val,
        model_factory=factory,
        description="Zipf heavy-tailed class imbalance (Kunstner et al. 2024)",
        kind="classification",
        default_batch_size=512,
        default_lr=1e-2,
        default_steps=2000,
        default_eval_every=100,
        config={
            "num_classes": num_classes,
            "num_samples": num_samples,
            "dim": dim,
            "alpha": alpha,
            "noise": noise,
            "model": model,
            "width": width,
            "groups": groups,
            "val_fraction": val_fraction,
            "seed": seed,
        },
        class_counts=counts,
        class_group=frequency_groups(counts, groups),
    )


from descentlab.tasks import register  # noqa: E402

register("imbalance", make_imbalance, "Zipf heavy-tailed class imbalance (Adam vs GD on rare classes)")
