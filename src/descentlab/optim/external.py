"""Optimizers from installed packages: Schedule-Free AdamW and SGD (``schedulefree``; Defazio et al. 2024).

Schedule-Free methods keep two sequences and evaluate at an average of them, so they need mode switching:
``optimizer.train()`` before training steps and ``optimizer.eval()`` before evaluating or saving the model
(``descentlab.train`` calls both when the optimizer has them). The factories return the optimizer in train mode.
No learning-rate schedule is needed (warm-up is the ``warmup_steps`` hyper-parameter).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from descentlab.optim.registry import ParamsOrModel, params_of, register


def _check_common(hparams: dict[str, Any]) -> None:
    """ValueError for the hyper-parameters schedulefree does not validate itself."""
    lr = hparams.get("lr", 0.0)
    if not float(lr) >= 0.0:
        raise ValueError(f"Invalid learning rate: {lr} (must be >= 0)")
    wd = hparams.get("weight_decay", 0.0)
    if not float(wd) >= 0.0:
        raise ValueError(f"Invalid weight_decay: {wd} (must be >= 0)")
    warmup = hparams.get("warmup_steps", 0)
    if int(warmup) != warmup or warmup < 0:
        raise ValueError(f"Invalid warmup_steps: {warmup} (must be an integer >= 0)")
    betas = hparams.get("betas", (0.9, 0.999))
    if not all(0.0 <= float(b) < 1.0 for b in betas):
        raise ValueError(f"Invalid betas: {betas} (each in [0, 1))")
    momentum = hparams.get("momentum", 0.9)
    if not 0.0 <= float(momentum) < 1.0:
        raise ValueError(f"Invalid momentum: {momentum} (must be in [0, 1))")


def _schedulefree_factory(class_name: str) -> Callable[..., torch.optim.Optimizer]:
    def factory(params_or_model: ParamsOrModel, **hparams: Any) -> torch.optim.Optimizer:
        import schedulefree

        _check_common(hparams)
        opt = getattr(schedulefree, class_name)(params_of(params_or_model), **hparams)
        opt.train()
        return opt

    factory.__name__ = f"create_{class_name}"
    factory.__doc__ = f"Build schedulefree.{class_name} over a model or params, in train mode."
    return factory


register(
    "schedulefree_adamw",
    _schedulefree_factory("AdamWScheduleFree"),
    "Schedule-Free AdamW (Defazio et al. 2024), lr=0.0025; needs optimizer.train()/.eval() mode switching",
    source="schedulefree",
)
register(
    "schedulefree_sgd",
    _schedulefree_factory("SGDScheduleFree"),
    "Schedule-Free SGD (Defazio et al. 2024), lr=1.0; needs optimizer.train()/.eval() mode switching",
    source="schedulefree",
)
