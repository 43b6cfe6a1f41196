"""Check an optimizer state dict against the optimizer it is loaded into, before any tensor is loaded.

torch's ``Optimizer.load_state_dict`` checks the number of groups and parameters but not the state's tensors; the
fused CPU/CUDA kernels (torch's default for sgd, adam, adamw, amsgrad, adagrad) then read and write a shrunk
``exp_avg`` or ``momentum_buffer`` past its end (a crash or heap corruption). :func:`check_state_dict` compares
every tensor of the state dict with the state a fresh copy of the optimizer builds in one step (on small constant
gradients, the original untouched): the same keys per parameter, shapes, dtypes, and devices (a tensor read to the CPU, which
the load moves, is accepted). Wrappers are covered as a whole: SAM's and Grokfast's base, Lookahead's slow weights,
Muon's groups, Shampoo's preconditioners, the averaging optimizers' averages.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import functools
from collections.abc import Iterator, Mapping
from typing import Any

import torch

__all__ = ["check_state_dict", "guard_load_state_dict", "reference_state_dict"]

_GROWING_STATE = (torch.optim.LBFGS,)  # state whose keys and lists fill in over the first steps
_CHECKING: contextvars.ContextVar[bool] = contextvars.ContextVar("descentlab_state_check", default=False)


def _params(opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    """Every parameter the optimizer (or what it wraps) steps, each once."""
    seen: dict[int, torch.Tensor] = {}
    o: Any = opt
    for _ in range(16):
        if o is None:
            break
        for g in getattr(o, "param_groups", []):
            for p in g.get("params", []):
                if isinstance(p, torch.Tensor):
                    seen.setdefault(id(p), p)
        o = getattr(o, "base_optimizer", None)
    return list(seen.values())


def _twin(opt: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """A deep copy of ``opt`` with its parameters and every attribute (torch's pickling of optimizers keeps only
    defaults, state and groups, which loses a wrapper's base optimizer and settings), the optimizers it reaches
    through attributes, dicts of them and helper objects with a ``base_optimizer`` (``SideAverages``) included."""
    found: list[Any] = []
    todo: list[Any] = [opt]
    while todo:
        o = todo.pop()
        if any(o is f for f in found) or len(found) > 32:
            continue
        found.append(o)
        for v in vars(o).values():  # optimizers, dicts of them (side averages) and helpers holding them
            vs = list(v.values()) if isinstance(v, dict) else [v]
            todo.extend(x for x in vs if isinstance(x, torch.optim.Optimizer) or hasattr(x, "base_optimizer"))
    memo: dict[int, Any] = {id(o): object.__new__(type(o)) for o in found}
    for o in found:
        memo[id(o)].__dict__.update(copy.deepcopy(vars(o), memo))
    return memo[id(opt)]


def reference_state_dict(opt: torch.optim.Optimizer) -> dict[str, Any]:
    """The state dict a fresh copy of ``opt`` has after one step on small constant gradients (``opt`` is left untouched)."""
    twin = _twin(opt)
    params = _params(twin)

    def closure() -> torch.Tensor:
        for p in params:
            p.grad = torch.full_like(p, 1e-3)
        return torch.zeros((), device=params[0].device if params else "cpu")

    closure()
    with torch.enable_grad():  # some closures are asked for a backward; ours has none to do
        twin.step(closure)
    return twin.state_dict()


def _describe(t: torch.Tensor) -> str:
    return f"{tuple(t.shape)} {str(t.dtype).replace('torch.', '')} on {t.device}"


def _compare(ref: Any, got: Any, path: str, n_params: int, loose: bool = False) -> None:
    if isinstance(ref, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            raise ValueError(
                f"optimizer state {path} should be a tensor {_describe(ref)}, got {type(got).__name__}"
            )
        same_device = got.device == ref.device or got.device.type == "cpu"  # a CPU copy is moved by the load
        if got.shape != ref.shape or got.dtype != ref.dtype or not same_device:
            raise ValueError(
                f"optimizer state {path} is {_describe(got)}; this optimizer keeps {_describe(ref)}"
            )
        return
    if isinstance(ref, Mapping):
        if not isinstance(got, Mapping):
            raise ValueError(f"optimizer state {path} should be a mapping, got {type(got).__name__}")
        if path.endswith(".state") or path == "state":
            _compare_per_param(ref, got, path, n_params, loose)
            return
        for k, v in ref.items():  # an entry missing here is the optimizer's own load to refuse (it names it)
            if (
                k != "param_groups" and k in got
            ):  # torch checks the groups' sizes; hyper-parameters are not tensors
                _compare(v, got[k], f"{path}.{k}" if path else str(k), n_params, loose)
        return
    if loose and isinstance(ref, list):  # L-BFGS's history: its length grows; each entry as its first one
        if not isinstance(got, list):
            raise ValueError(f"optimizer state {path} should be a list, got {type(got).__name__}")
        tmpl = next((x for x in ref if isinstance(x, torch.Tensor)), None)
        for i, x in enumerate(got):
            if tmpl is not None and isinstance(x, torch.Tensor) and x.dtype != tmpl.dtype:
                raise ValueError(
                    f"optimizer state {path}[{i}] is {_describe(x)}; this optimizer keeps {tmpl.dtype}"
                )
        return
    if isinstance(ref, (list, tuple)) and any(
        isinstance(x, (torch.Tensor, Mapping, list, tuple)) for x in ref
    ):
        if not isinstance(got, (list, tuple)) or len(got) != len(ref):
            raise ValueError(f"optimizer state {path} should hold {len(ref)} entries")
        for i, (a, b) in enumerate(zip(ref, got)):
            _compare(a, b, f"{path}[{i}]", n_params)
        return
    if ref is None and isinstance(got, torch.Tensor):
        raise ValueError(
            f"optimizer state {path} holds a tensor {_describe(got)} where this optimizer keeps none"
        )


def _compare_per_param(
    ref: Mapping[Any, Any], got: Mapping[Any, Any], path: str, n_params: int, loose: bool
) -> None:
    """A ``state`` mapping keyed by parameter index: each entry holds the reference's keys, tensor by tensor
    (``loose``: L-BFGS, whose history keys appear as it fills, holds at least the reference's keys)."""
    for i, entry in got.items():
        where = f"{path}[{i!r}]"
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n_params:
            raise ValueError(f"optimizer state {where}: no parameter {i!r} (the optimizer has {n_params})")
        if (
            i not in ref
        ):  # a parameter the reference step left without state (no gradient): nothing to compare
            continue
        if isinstance(entry, Mapping) and isinstance(ref[i], Mapping):
            keys, want = set(map(str, entry)), set(map(str, ref[i]))
            if (keys != want) if not loose else not want <= keys:
                extra, lost = sorted(keys - want), sorted(want - keys)
                raise ValueError(
                    f"optimizer state {where} has keys {sorted(keys)}; this optimizer keeps {sorted(want)}"
                    + (f" (unexpected {extra})" if extra else "")
                    + (f" (missing {lost})" if lost else "")
                )
            for k, v in ref[i].items():
                _compare(v, entry[k], f"{where}.{k}", n_params, loose)
        else:
            _compare(ref[i], entry, where, n_params, loose)


@contextlib.contextmanager
def _checked() -> Iterator[None]:
    """Inside: guarded loads do not check again (the outermost check covered the whole state)."""
    token = _CHECKING.set(True)
    try:
        yield
    finally:
        _CHECKING.reset(token)


def check_state_dict(opt: torch.optim.Optimizer, state_dict: Any) -> None:
    """Raise ValueError (naming the entry, its shape/dtype/device and the expected one) unless every tensor of
    ``state_dict`` fits ``opt``: the keys of each parameter's state, shapes, dtypes and devices, compared with the
    state a fresh copy of ``opt`` builds in one step. ``opt`` and ``state_dict`` are not changed."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"an optimizer state dict must be a mapping, got {type(state_dict).__name__}")
    if "state" not in state_dict or not isinstance(state_dict["state"], Mapping):
        raise ValueError("optimizer state dict has no 'state' mapping")
    with _checked():
        ref = reference_state_dict(opt)
    n_params = len(_params(opt))
    _compare(ref, state_dict, "", n_params, loose=isinstance(opt, _GROWING_STATE))


def guard_load_state_dict(opt: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """Make ``opt.load_state_dict`` run :func:`check_state_dict` first (on this instance; returns ``opt``)."""
    if getattr(opt, "_descentlab_guarded", False):
        return opt
    original = opt.load_state_dict  # the class's method, bound

    @functools.wraps(original)
    def load_state_dict(state_dict: Any) -> None:
        if not _CHECKING.get():
            check_state_dict(opt, state_dict)
        with _checked():
            return original(state_dict)

    opt.load_state_dict = load_state_dict  # type: ignore[method-assign]
    opt._descentlab_guarded = True  # type: ignore[attr-defined]
    return opt
