"""The optimizer registry: ``create(name, params_or_model, **hparams)`` and ``available()``."""

from __future__ import annotations

import contextlib
import inspect
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


def check_number(
    name: str, value: Any, low: float = 0.0, high: float | None = None, open_high: bool = False
) -> float:
    """``value`` as a float if it is a finite number in ``[low, high]`` (``[low, high)`` with ``open_high``; no upper
    bound when ``high`` is None), else ValueError naming ``name`` and the value."""
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= low
    )
    if ok and high is not None:
        ok = value < high if open_high else value <= high
    if not ok:
        bound = f"in [{low}, {high}{')' if open_high else ']'}" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


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


# Flags torch's optimizers (and ours) take as booleans; a truthy string or number would pass their ``if`` or
# reach a fused kernel that refuses it mid-run. ``foreach``/``fused`` also take None (torch's choice).
_BOOL_FLAGS = frozenset({"nesterov", "amsgrad", "maximize", "capturable", "differentiable", "centered",
                         "decoupled_weight_decay", "local_perturbation"})  # fmt: skip
_OPTIONAL_BOOL_FLAGS = frozenset({"foreach", "fused"})
_INF_ALLOWED = frozenset({"p"})  # a norm's exponent: p = inf is the max norm (SAM)


def _non_finite(value: Any) -> bool:
    """Whether ``value`` is (or holds, in a tuple/list) a float or one-element tensor that is NaN or infinite."""
    if isinstance(value, (tuple, list)):
        return any(_non_finite(v) for v in value)
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.dtype.is_floating_point:
        return not math.isfinite(float(value))
    return False


def _defaults(name: str) -> dict[str, Any]:
    """The keyword defaults of optimizer ``name``: its factory's, and for torch's classics the class's."""
    out: dict[str, Any] = {}
    with contextlib.suppress(TypeError, ValueError):
        factory = _REGISTRY.factory(name)
        targets: list[Any] = [factory]
        from descentlab.optim.torch_classics import CLASSICS

        if name.lower() in CLASSICS:
            targets.insert(0, CLASSICS[name.lower()][0])
        for target in targets:
            for k, p in inspect.signature(target).parameters.items():
                if p.default is not inspect.Parameter.empty:
                    out[k] = p.default
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_hyperparameter_types(name: str, hparams: dict[str, Any]) -> None:
    """Refuse a value of the wrong kind for a keyword whose default says its kind: a number where the default is a
    number, a tuple of as many numbers where it is a tuple of numbers (e.g. ``betas``). ValueError naming the
    optimizer, the key and the value (torch's own messages name neither)."""
    defaults = _defaults(name)
    for key, value in hparams.items():
        d = defaults.get(key, None)
        if value is None:  # "not set": left to the optimizer
            continue
        if _is_number(d) and not _is_number(value) and not isinstance(value, torch.Tensor):
            raise ValueError(f"optimizer {name!r}: {key} must be a number (default {d!r}), got {value!r}")
        if isinstance(d, tuple) and d and all(_is_number(x) for x in d):
            ok = (
                isinstance(value, (tuple, list))
                and len(value) == len(d)
                and all(_is_number(x) for x in value)
            )
            if not ok:
                raise ValueError(
                    f"optimizer {name!r}: {key} must be {len(d)} numbers such as {d!r}, got {value!r}"
                )


def check_hyperparameters(name: str, hparams: dict[str, Any]) -> None:
    """Refuse hyper-parameter values no optimizer can mean: a NaN or infinite number (alone or inside a tuple,
    e.g. ``betas``; a norm exponent ``p`` may be +inf), or a flag (``nesterov``, ``foreach`` ...; any keyword of ``name``'s factory whose default is
    a bool) that is not True/False. ValueError naming the optimizer, the key and the value."""
    flags = set(_BOOL_FLAGS)
    with contextlib.suppress(TypeError, ValueError):
        sig = inspect.signature(_REGISTRY.factory(name))
        flags |= {k for k, p in sig.parameters.items() if isinstance(p.default, bool)}
    for key, value in hparams.items():
        if _non_finite(value) and not (key in _INF_ALLOWED and value == math.inf):
            raise ValueError(f"optimizer {name!r}: {key} must be finite, got {value!r}")
        if key in flags and not isinstance(value, bool):
            raise ValueError(f"optimizer {name!r}: {key} must be True or False, got {value!r}")
        if key in _OPTIONAL_BOOL_FLAGS and value is not None and not isinstance(value, bool):
            raise ValueError(f"optimizer {name!r}: {key} must be True, False or None, got {value!r}")


def needs_closure(optimizer: Any) -> bool:
    """Whether ``optimizer`` (or an optimizer it wraps, through ``.base_optimizer``) must evaluate the loss itself
    in ``step(closure)`` (L-BFGS, SAM): such an optimizer cannot be the base of a wrapper that steps it without
    one (SAM, ASAM, Grokfast)."""
    seen = 0
    while optimizer is not None and seen < 16:
        if isinstance(optimizer, torch.optim.LBFGS) or getattr(type(optimizer), "steps_with_closure", False):
            return True
        optimizer, seen = getattr(optimizer, "base_optimizer", None), seen + 1
    return False


_SOURCES: dict[str, str] = {}  # name -> where the implementation comes from (default: descentlab)


def register(
    name: str,
    factory: Callable[..., torch.optim.Optimizer],
    description: str = "",
    source: str = "descentlab",
) -> None:
    """Register ``factory(params_or_model, **hparams) -> Optimizer`` under ``name``; ``source`` names where the
    implementation comes from ("torch", "descentlab", "pytorch_optimizer", "schedulefree")."""
    _REGISTRY.register(name, factory, description)
    _SOURCES[name.lower()] = source


def sources() -> dict[str, str]:
    """Optimizer name -> the package its implementation comes from."""
    return {name: _SOURCES.get(name, "descentlab") for name in available()}


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
    hyper-parameters raise ValueError naming them, and so do NaN/infinite values and non-boolean flags
    (:func:`check_hyperparameters`); so does a learning rate (``lr``, ``lr_*``) that is not a finite
    number > 0 (in explicit param groups: >= 0, lr 0 freezing a group). The optimizer's ``load_state_dict`` first
    checks the state against it (:func:`descentlab.optim.state_check.check_state_dict`).
    """
    factory = _REGISTRY.factory(name)
    check_learning_rates(hparams, params_or_model)
    check_hyperparameter_types(name, hparams)
    try:
        opt = factory(params_or_model, **hparams)
    except TypeError as exc:
        msg = str(exc)
        if "unexpected keyword" in msg or "got multiple values" in msg:
            raise ValueError(f"optimizer {name!r}: {msg}") from None
        raise
    check_hyperparameters(name, hparams)  # after the optimizer's own checks, whose messages are more specific
    from descentlab.optim.state_check import guard_load_state_dict

    return guard_load_state_dict(opt)  # a state that does not fit is refused before any tensor is loaded
