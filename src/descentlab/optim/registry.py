"""The optimizer registry: ``create(name, params_or_model, **hparams)`` and ``available()``."""

from __future__ import annotations

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
    hyper-parameters raise ValueError naming them.
    """
    factory = _REGISTRY.factory(name)
    try:
        return factory(params_or_model, **hparams)
    except TypeError as exc:
        msg = str(exc)
        if "unexpected keyword" in msg or "got multiple values" in msg:
            raise ValueError(f"optimizer {name!r}: {msg}") from None
        raise
