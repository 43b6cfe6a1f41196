"""Weight averaging for evaluation: LAWA (Kaddour 2022; Sanyal et al. 2023) and an EMA, as optimizer wrappers.

Training runs on the raw weights; what gets *evaluated* is an average of past weights. The wrapper follows the
Schedule-Free convention the training loop already speaks: ``eval()`` swaps the averaged weights into the
parameters (keeping the raw ones aside), ``train()`` swaps the raw ones back. This is how the benchmark maps
AlgoPerf's ``prepare_for_eval`` hook (``descentlab.bench.Algorithm(prepare_for_eval=...)``).

- ``LAWA(base, k, every)``: every ``every`` steps (from step ``start`` on) the current weights join a queue of the
  last ``k`` snapshots; evaluation uses their uniform mean (AlgoPerf v0.5's "LAWA queue").
- ``EMA(base, decay, every)``: every ``every`` steps, ``avg <- decay * avg + (1 - decay) * w`` (the first snapshot
  starts it), through ``torch.optim.swa_utils.get_ema_multi_avg_fn`` (AlgoPerf v0.5's "LAWA EMA").
- ``SideAverages(base, {name: averaging})``: ``base`` trains and is evaluated as it would alone (nothing wraps it:
  hooks on it advance the sides), and each named average is kept on the side; the training loop evaluates every
  side average too (metrics ``<name>@<side>``) and leaves their snapshot time out of the training clock
  (``untimed_seconds``), reporting each side's own (``averaging_seconds@<side>``). One training, several
  evaluations: the benchmark's averaging entrants are evaluated inside their base's trials this way.

Before the first snapshot, evaluation sees the raw weights. Only parameters are averaged (buffers such as
BatchNorm statistics are not). The queue / EMA live in ``state_dict()`` (keyed by parameter index, like torch's
own state), so a checkpoint resumes exactly; take checkpoints in train mode (the training loop does). A base
optimizer with its own ``eval()``/``train()`` (Schedule-Free) is switched too: its ``eval()`` runs before the swap,
its ``train()`` after the swap back.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor
from torch.optim.swa_utils import get_ema_multi_avg_fn, get_swa_multi_avg_fn

from descentlab.optim.registry import ParamsOrModel, create, register

__all__ = ["EMA", "LAWA", "SideAverages", "WeightAveraging"]


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


class WeightAveraging(torch.optim.Optimizer):
    """Base of the averaging wrappers: steps ``base_optimizer`` (exposed as ``.base_optimizer``; param groups
    shared), snapshots the weights every ``every`` steps from step ``start`` on, and evaluates an average."""

    kind = "averaging"

    def __init__(self, base_optimizer: torch.optim.Optimizer, every: int = 1, start: int = 0):
        if not isinstance(base_optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"base_optimizer must be a torch.optim.Optimizer instance, got {base_optimizer!r}"
            )
        self.every = _positive_int("every", every)
        self.start = _positive_int("start", start, 0)
        # The Optimizer machinery (hooks, LR-scheduler step counting) without re-adding the base's groups.
        torch.optim.Optimizer.__init__(self, [{"params": []}], {})
        self.base_optimizer = base_optimizer
        self.defaults = dict(base_optimizer.defaults)
        self.param_groups = base_optimizer.param_groups
        self.state = base_optimizer.state
        self.averaging_step = 0
        self._evaluating = False
        self._raw: list[Tensor] | None = None

    # -- what subclasses define -------------------------------------------------------------------------------
    def _snapshot(self, params: list[Tensor]) -> None:
        raise NotImplementedError

    def averaged_params(self) -> list[Tensor] | None:
        """The averaged weights (one tensor per parameter, in param-group order), or None before any snapshot."""
        raise NotImplementedError

    def _extra_state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load_extra_state(self, extra: dict[str, Any], params: list[Tensor]) -> None:
        raise NotImplementedError

    # -- the wrapper ------------------------------------------------------------------------------------------
    def _params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group to the base optimizer (only before the first snapshot: averages need fixed parameters)."""
        if not hasattr(self, "base_optimizer"):
            return  # called by Optimizer.__init__ with the placeholder group
        if self.averaged_params() is not None:
            raise RuntimeError(
                f"{type(self).__name__}: cannot add a parameter group after the first snapshot"
            )
        self.base_optimizer.add_param_group(param_group)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One base step on the raw weights; then a snapshot if this step is one (``step >= start``, every
        ``every`` steps). RuntimeError in eval mode (the parameters hold the average then)."""
        if self._evaluating:
            raise RuntimeError(f"{type(self).__name__}.step() in eval mode: call train() first")
        loss = self.base_optimizer.step(closure) if closure is not None else self.base_optimizer.step()
        self._advance()
        return loss

    def _advance(self) -> None:
        """Count a base step; snapshot the weights if it is one (``step >= start``, every ``every`` steps)."""
        self.averaging_step += 1
        if self.averaging_step >= self.start and self.averaging_step % self.every == 0:
            with torch.no_grad():
                self._snapshot([p.detach() for p in self._params()])

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero the gradients (the base optimizer's)."""
        self.base_optimizer.zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def eval(self) -> None:
        """Evaluation mode: the base's ``eval()`` if it has one, then the averaged weights into the parameters."""
        if self._evaluating:
            return
        self._evaluating = True
        fn = getattr(self.base_optimizer, "eval", None)
        if callable(fn):
            fn()
        self._swap_in()

    @torch.no_grad()
    def train(self) -> None:
        """Training mode: the raw weights back into the parameters, then the base's ``train()`` if it has one."""
        self._swap_out()
        self._evaluating = False
        fn = getattr(self.base_optimizer, "train", None)
        if callable(fn):
            fn()

    @torch.no_grad()
    def _swap_in(self) -> None:
        """The averaged weights into the parameters, the raw ones kept aside (nothing before the first snapshot)."""
        avg = self.averaged_params()
        if avg is not None:
            params = self._params()
            self._raw = [p.detach().clone() for p in params]
            for p, a in zip(params, avg, strict=True):
                p.copy_(a)

    @torch.no_grad()
    def _swap_out(self) -> None:
        """The raw weights back into the parameters (after ``_swap_in``)."""
        if self._raw is not None:
            for p, r in zip(self._params(), self._raw, strict=True):
                p.copy_(r)
            self._raw = None

    @contextlib.contextmanager
    def swapped(self) -> Iterator[None]:
        """A context with the averaged weights in the parameters, and no mode change of the base optimizer."""
        self._swap_in()
        try:
            yield
        finally:
            self._swap_out()

    def state_dict(self) -> dict[str, Any]:
        """The base optimizer's state dict plus ``"averaging"``: kind, step count, settings and the average's
        state (tensors keyed by parameter index)."""
        sd = self.base_optimizer.state_dict()
        sd["averaging"] = {
            "kind": self.kind,
            "step": self.averaging_step,
            "every": self.every,
            "start": self.start,
            **self._extra_state(),
        }
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a ``state_dict()`` of the same kind (ValueError naming what does not fit); in train mode only."""
        if self._evaluating:
            raise RuntimeError(f"{type(self).__name__}.load_state_dict() in eval mode: call train() first")
        state_dict = dict(state_dict)
        extra = state_dict.pop("averaging", None)
        if not isinstance(extra, dict):
            raise ValueError(
                f"state_dict has no 'averaging' entry; it was not saved by {type(self).__name__}.state_dict()"
            )
        if extra.get("kind") != self.kind:
            raise ValueError(
                f"state_dict holds a {extra.get('kind')!r} average, this optimizer keeps {self.kind!r}"
            )
        self.base_optimizer.load_state_dict(state_dict)
        self.param_groups = self.base_optimizer.param_groups
        self.state = self.base_optimizer.state
        self.averaging_step = _positive_int("averaging step", extra.get("step"), 0)
        self.every = _positive_int("every", extra.get("every"))
        self.start = _positive_int("start", extra.get("start"), 0)
        self._load_extra_state(extra, self._params())


def _fit(tensors: Any, params: list[Tensor], what: str) -> list[Tensor]:
    """``tensors`` (a list, one per parameter) moved onto the parameters' devices and dtypes, shapes checked."""
    if not isinstance(tensors, (list, tuple)) or len(tensors) != len(params):
        got = len(tensors) if isinstance(tensors, (list, tuple)) else type(tensors).__name__
        raise ValueError(f"{what} holds {got} tensors, the optimizer has {len(params)} parameters")
    out = []
    for i, (t, p) in enumerate(zip(tensors, params, strict=True)):
        if not isinstance(t, Tensor) or t.shape != p.shape:
            shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"{what}: parameter {i} has shape {tuple(p.shape)}, the state holds {shape}")
        out.append(t.detach().to(device=p.device, dtype=p.dtype).clone())
    return out


class LAWA(WeightAveraging):
    """LAWA queue: the uniform mean of the last ``k`` snapshots, one every ``every`` steps from step ``start`` on."""

    kind = "lawa"

    def __init__(self, base_optimizer: torch.optim.Optimizer, k: int = 5, every: int = 100, start: int = 0):
        self.k = _positive_int("k", k)
        self.queue: list[list[Tensor]] = []
        super().__init__(base_optimizer, every=every, start=start)

    def _snapshot(self, params: list[Tensor]) -> None:
        self.queue.append([p.clone() for p in params])
        del self.queue[: max(0, len(self.queue) - self.k)]

    def averaged_params(self) -> list[Tensor] | None:
        """The mean of the queued snapshots (oldest first, by ``swa_utils``' running mean), or None if empty."""
        if not self.queue:
            return None
        avg = [t.clone() for t in self.queue[0]]
        update = get_swa_multi_avg_fn()
        for n, snap in enumerate(self.queue[1:], start=1):
            update(avg, snap, n)
        return avg

    def _extra_state(self) -> dict[str, Any]:
        return {"k": self.k, "queue": [[t.clone() for t in snap] for snap in self.queue]}

    def _load_extra_state(self, extra: dict[str, Any], params: list[Tensor]) -> None:
        self.k = _positive_int("k", extra.get("k"))
        queue = extra.get("queue")
        if not isinstance(queue, (list, tuple)) or len(queue) > self.k:
            raise ValueError(
                f"state_dict's LAWA queue must be a list of at most k={self.k} snapshots, got {queue!r:.80}"
            )
        self.queue = [_fit(snap, params, f"LAWA snapshot {i}") for i, snap in enumerate(queue)]


class EMA(WeightAveraging):
    """Exponential moving average of snapshots taken every ``every`` steps from step ``start`` on:
    ``avg <- decay * avg + (1 - decay) * w``, the first snapshot starting it."""

    kind = "ema"

    def __init__(
        self, base_optimizer: torch.optim.Optimizer, decay: float = 0.99, every: int = 1, start: int = 0
    ):
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be a number in [0, 1), got {decay!r}")
        self.decay = float(decay)
        self.ema: list[Tensor] | None = None
        self.count = 0
        super().__init__(base_optimizer, every=every, start=start)

    def _snapshot(self, params: list[Tensor]) -> None:
        if self.ema is None:
            self.ema = [p.clone() for p in params]
        else:
            get_ema_multi_avg_fn(self.decay)(self.ema, params, self.count)
        self.count += 1

    def averaged_params(self) -> list[Tensor] | None:
        """The EMA (copies), or None before the first snapshot."""
        return None if self.ema is None else [t.clone() for t in self.ema]

    def _extra_state(self) -> dict[str, Any]:
        ema = None if self.ema is None else [t.clone() for t in self.ema]
        return {"decay": self.decay, "count": self.count, "ema": ema}

    def _load_extra_state(self, extra: dict[str, Any], params: list[Tensor]) -> None:
        decay = extra.get("decay")
        if not isinstance(decay, float) or not math.isfinite(decay) or not 0.0 <= decay < 1.0:
            raise ValueError(f"state_dict's EMA decay must be a number in [0, 1), got {decay!r}")
        self.decay = decay
        self.count = _positive_int("EMA count", extra.get("count"), 0)
        ema = extra.get("ema")
        self.ema = None if ema is None else _fit(ema, params, "EMA")


class SideAverages:
    """Named averages kept on the side of a base optimizer that trains (and is evaluated) as it would alone.

    ``sides`` maps a name to a ``WeightAveraging`` built around ``base_optimizer`` (never stepped itself). Nothing
    wraps the base: a step post-hook advances every side (timed, ``untimed_seconds``/``side_seconds``), state-dict
    hooks carry the sides' state in the base's ``state_dict()`` under ``"side_averages"``, and the object sits on the
    base as ``base_optimizer.side_averages``, where the training loop finds it. ``side_evaluations()`` gives, per
    side, a context that swaps that side's average in (raw weights before its first snapshot) and the seconds its
    snapshots took so far."""

    def __init__(self, base_optimizer: torch.optim.Optimizer, sides: dict[str, WeightAveraging]):
        if not isinstance(base_optimizer, torch.optim.Optimizer):
            raise TypeError(f"base_optimizer must be a torch.optim.Optimizer, got {base_optimizer!r:.80}")
        if not isinstance(sides, dict) or not sides:
            raise ValueError(f"sides must be a non-empty dict of name -> WeightAveraging, got {sides!r:.80}")
        for name, side in sides.items():
            if not isinstance(side, WeightAveraging):
                raise TypeError(f"side {name!r} must be a LAWA/EMA-style WeightAveraging, got {side!r:.80}")
            if side.base_optimizer is not base_optimizer:
                raise ValueError(f"side {name!r} wraps another optimizer than base_optimizer")
        if getattr(base_optimizer, "side_averages", None) is not None:
            raise ValueError("base_optimizer already has side averages")
        self.base_optimizer = base_optimizer
        self.sides = dict(sides)
        self.side_seconds = dict.fromkeys(self.sides, 0.0)
        self._untimed = 0.0
        self._pending: dict[str, Any] | None = None
        base_optimizer.register_step_post_hook(self._after_step)
        base_optimizer.register_state_dict_post_hook(self._save)
        base_optimizer.register_load_state_dict_pre_hook(self._take)
        base_optimizer.register_load_state_dict_post_hook(self._restore)
        base_optimizer.side_averages = self

    def _after_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        t0 = time.perf_counter()
        for name, side in self.sides.items():
            t1 = time.perf_counter()
            side._advance()
            self.side_seconds[name] += time.perf_counter() - t1
        self._untimed += time.perf_counter() - t0

    def untimed_seconds(self) -> float:
        """Seconds of side snapshots since the last call (the training loop leaves them out of its clock)."""
        out, self._untimed = self._untimed, 0.0
        return out

    def side_evaluations(self) -> list[tuple[str, Callable[[], Any], dict[str, float]]]:
        """``(name, swap, metrics)`` per side: ``swap()`` is a context manager with that side's average in the
        parameters; ``metrics`` holds ``averaging_seconds``, the time its snapshots took so far."""
        return [(name, side.swapped, {"averaging_seconds": self.side_seconds[name]})
                for name, side in self.sides.items()]  # fmt: skip

    def _save(self, optimizer: torch.optim.Optimizer, state_dict: dict[str, Any]) -> dict[str, Any]:
        state_dict["side_averages"] = {
            "sides": {
                name: {"kind": side.kind, "step": side.averaging_step, "every": side.every, "start": side.start,
                       **side._extra_state()}
                for name, side in self.sides.items()
            },
            "side_seconds": dict(self.side_seconds),
        }  # fmt: skip
        return state_dict

    def _take(self, optimizer: torch.optim.Optimizer, state_dict: dict[str, Any]) -> dict[str, Any]:
        state_dict = dict(state_dict)
        extra = state_dict.pop("side_averages", None)
        sides = extra.get("sides") if isinstance(extra, dict) else None
        if not isinstance(sides, dict) or set(sides) != set(self.sides):
            got = sorted(sides) if isinstance(sides, dict) else sides
            raise ValueError(
                f"state_dict's side averages are {got!r:.80}, this optimizer keeps {sorted(self.sides)}"
            )
        for name, side in self.sides.items():
            if sides[name].get("kind") != side.kind:
                raise ValueError(
                    f"side {name!r}: state_dict holds a {sides[name].get('kind')!r} average, not {side.kind!r}"
                )
        self._pending = extra
        return state_dict

    def _restore(self, optimizer: torch.optim.Optimizer) -> None:
        extra, self._pending = self._pending, None
        if extra is None:
            return
        for name, side in self.sides.items():
            st = extra["sides"][name]
            side.param_groups = optimizer.param_groups
            side.state = optimizer.state
            side.averaging_step = _positive_int("averaging step", st.get("step"), 0)
            side.every = _positive_int("every", st.get("every"))
            side.start = _positive_int("start", st.get("start"), 0)
            side._load_extra_state(st, side._params())
        self.side_seconds = {k: float(extra.get("side_seconds", {}).get(k, 0.0)) for k in self.sides}


def _base(params_or_model: ParamsOrModel, base: Any, base_hparams: dict[str, Any]) -> torch.optim.Optimizer:
    if not isinstance(base, str):
        raise ValueError(f"base must be a registered optimizer name, got {base!r}")
    return create(base, params_or_model, **base_hparams)


def _lawa_factory(
    params_or_model: ParamsOrModel, base: str = "adamw", k: int = 5, every: int = 100, start: int = 0,
    **base_hparams: Any,
) -> LAWA:  # fmt: skip
    return LAWA(_base(params_or_model, base, base_hparams), k=k, every=every, start=start)


def _ema_factory(
    params_or_model: ParamsOrModel, base: str = "adamw", decay: float = 0.99, every: int = 1, start: int = 0,
    **base_hparams: Any,
) -> EMA:  # fmt: skip
    return EMA(_base(params_or_model, base, base_hparams), decay=decay, every=every, start=start)


register(
    "lawa",
    _lawa_factory,
    "LAWA: evaluate the mean of the last k weight snapshots, one every `every` steps (Kaddour 2022); base='adamw'",
)
register(
    "ema",
    _ema_factory,
    "EMA of the weights (snapshots every `every` steps, `decay`) for evaluation; base='adamw'",
)


_SIDE_KINDS = {"lawa": LAWA, "ema": EMA}


def _side_factory(
    params_or_model: ParamsOrModel, base: str = "adamw", sides: dict[str, dict[str, Any]] | None = None,
    **base_hparams: Any,
) -> torch.optim.Optimizer:  # fmt: skip
    if sides is None:  # the registry's default: one of each
        sides = {"lawa": {"method": "lawa"}, "ema": {"method": "ema"}}
    if not isinstance(sides, dict) or not sides:
        raise ValueError(
            f"sides must be a non-empty dict of name -> {{'method': 'lawa' | 'ema', ...}}, got {sides!r}"
        )
    opt = _base(params_or_model, base, base_hparams)
    built = {}
    for name, cfg in sides.items():
        cfg = dict(cfg) if isinstance(cfg, dict) else {}
        kind = _SIDE_KINDS.get(cfg.pop("method", None))
        if kind is None:
            raise ValueError(
                f"side {name!r}: method must be one of {sorted(_SIDE_KINDS)}, got {sides[name]!r}"
            )
        built[name] = kind(opt, **cfg)
    SideAverages(opt, built)
    return opt


register(
    "side_averages",
    _side_factory,
    "the base's training with LAWA/EMA averages kept and evaluated on the side (one training, several "
    "evaluations); base='adamw', sides={name: {'method': 'lawa' | 'ema', ...}} (default: one of each)",
)
