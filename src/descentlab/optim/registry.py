"""The optimizer registry: ``create(name, params_or_model, **hparams)`` and ``available()``."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from descentlab._registry import Registry

ParamsOrModel = nn.Module | Iterable[torch.Tensor] | Iterable[dict]
_REGISTRY = Registry("optimizer")


def params_of(params_or_model: ParamsOrModel) -> Any:
    """Trainable parameters of a module, or the given params / param groups unchanged (as a list)."""
    if isinstance(params_or_model, nn.Module):
        return [p for p in params_or_model.parameters() if p.requires_grad]
    return list(params_or_model)


def _is_lr_key(key: object) -> bool:
    return isinstance(key, str) and (key == "lr" or key.startswith("lr_"))


def check_learning_rate(name: str, value: Any, allow_zero: bool = False) -> None:
    """Raise ValueError naming ``value`` unless it is a finite number > 0 (>= 0 with ``allow_zero``); a one-element
    tensor counts as a number, anything else (e.g. Muon's ``adjust_lr="original"``) is left to the optimizer."""
    if isinstance(value, bool):
        ok = False
    elif isinstance(value, torch.Tensor) and value.numel() == 1 and not value.dtype.is_complex:
        ok = math.isfinite(float(value)) and (float(value) >= 0 if allow_zero else float(value) > 0)
    elif isinstance(value, (int, float)):
        ok = math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    else:
        return
    if not ok:
        raise ValueError(f"{name} must be a finite number {'>=' if allow_zero else '>'} 0, got {value!r}")


def check_learning_rates(hparams: dict[str, Any], params_or_model: Any = None) -> None:
    """Refuse non-finite or non-positive learning rates in ``hparams``, and non-finite or negative ones in explicit
    param groups (a group with lr 0 is a frozen group, a common idiom)."""
    for key, value in hparams.items():
        if _is_lr_key(key):
            check_learning_rate(key, value)
    if isinstance(params_or_model, (list, tuple)):
        for i, group in enumerate(params_or_model):
            if isinstance(group, dict):
                for key, value in group.items():
                    if _is_lr_key(key):
                        check_learning_rate(f"param group {i} {key}", value, allow_zero=True)


def register(name: str, factory: Callable[..., torch.optim.Optimizer], description: str = "") -> None:
    """Register ``factory(params_or_model, **hparams) -> Optimizer`` under ``name``."""
    _REGISTRY.register(name, factory, description)


def available() -> list[str]:
    """Names of all registered optimizers (torch's classics and descentlab's own)."""
    return _REGISTRY.available()


def describe() -> dict[str, str]:
    """Optimizer name -> one-line description."""
    return _REGISTRY.describe()


def create(name: str, params_or_model: ParamsOrModel, **hparams: Any) -> torch.optim.Optimizer:
    """Build optimizer ``name`` over a model or parameters with hyper-parameters ``hparams``.

    Given an ``nn.Module``, a method may build its own parameter groups (e.g. ``muon`` routes hidden matrices
    to Muon and the rest to AdamW). Unknown names raise ValueError listing the closest names; unknown
    hyper-parameters raise ValueError naming them; so does a learning rate (``lr``, ``lr_*``) that is not a finite
    number > 0 (in explicit param groups: >= 0, lr 0 freezing a group).
    """
    factory = _REGISTRY.factory(name)
    check_learning_rates(hparams, params_or_model)
    try:
        return factory(params_or_model, **hparams)
    except TypeError as exc:
        msg = str(exc)
        if "unexpected keyword" in msg or "got multiple values" in msg:
            raise ValueError(f"optimizer {name!r}: {msg}") from None
        raise
