"""Benchmark algorithms: an optimizer (registry name) + a schedule + a search space, declared as one small object.

An algorithm touches only optimizer state and parameters (AlgoPerf's rule): it chooses the update, the learning-rate
schedule and its hyper-parameters, never the model, loss, data, evaluation or budget. Add your own in one file::

    from descentlab.bench import Algorithm, register_algorithm
    register_algorithm(Algorithm("my_adam", "adam", space={"lr": {"min": 1e-4, "max": 1e-2, "scaling": "log"}},
                                 default={"lr": 1e-3}, schedule="warmup_cosine"))

A point of the search space maps onto ``train()``: ``lr`` -> ``lr``; ``warmup_fraction``/``min_lr_ratio`` ->
the schedule; ``one_minus_beta1``/``beta2`` -> ``betas``; anything else -> an optimizer hyper-parameter.

**Evaluation hook** (AlgoPerf's ``prepare_for_eval``): ``prepare_for_eval={"method": "lawa", "k": 5,
"every_fraction": 0.02}`` makes what is evaluated differ from what is trained. ``method`` names an optimizer wrapper
of ``descentlab.optim`` (``lawa``, ``ema``, or your own) built around the algorithm's optimizer (``base=``); the
training loop calls its ``eval()`` before every evaluation (it swaps the averaged weights in) and ``train()`` after
(it swaps the raw ones back), and its state is part of every checkpoint. ``every_fraction``/``start_fraction`` are
fractions of the workload's step hint, turned into the wrapper's ``every``/``start`` steps when a trial starts; other
keys go to the wrapper as they are. Schedule-Free optimizers need no hook: their own ``eval()`` already evaluates
the averaged sequence. The hook runs inside evaluation, outside the clock (AlgoPerf times ``prepare_for_eval``; here
it is one copy and mean of the parameters per evaluation).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from descentlab._registry import unknown_name_message
from descentlab.bench.tuning import validate_space

SCHEDULE_KEYS = ("warmup_fraction", "min_lr_ratio")
STEP_FRACTION_KEYS = {"every_fraction": "every", "start_fraction": "start"}
TWIN_SEED_OFFSET = 100_000


@dataclass(frozen=True)
class Algorithm:
    """A training algorithm: ``optimizer`` with ``fixed`` hyper-parameters, a ``schedule`` (with ``schedule_kw``),
    an external-tuning search ``space`` (``{name: {"min", "max", "scaling"}}`` or a list of points) and the one
    ``default`` configuration used for self-tuning. ``prepare_for_eval`` declares an evaluation hook (module
    docstring); ``seed_offset`` shifts the algorithm's study and trial seeds (``twin`` uses it for the null test)."""

    name: str
    optimizer: str
    space: Mapping[str, Any] | Sequence[Mapping[str, Any]]
    default: Mapping[str, Any]
    schedule: str | None = "warmup_cosine"
    schedule_kw: Mapping[str, Any] = field(default_factory=dict)
    fixed: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    prepare_for_eval: Mapping[str, Any] | None = None
    seed_offset: int = 0

    def __post_init__(self) -> None:
        validate_space(self.space)
        if not isinstance(self.default, Mapping):
            raise TypeError(
                f"algorithm {self.name!r}: default must be a dict, got {type(self.default).__name__}"
            )
        hook = self.prepare_for_eval
        if hook is not None and (not isinstance(hook, Mapping) or not isinstance(hook.get("method"), str)):
            raise ValueError(
                f"algorithm {self.name!r}: prepare_for_eval must be a dict with a 'method' (an optimizer wrapper "
                f"name such as 'lawa' or 'ema'), got {hook!r}"
            )
        if hook is not None:
            for key in STEP_FRACTION_KEYS:
                v = hook.get(key)
                if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1):
                    raise ValueError(f"algorithm {self.name!r}: prepare_for_eval {key} must be in [0, 1], got {v!r}")
        if isinstance(self.seed_offset, bool) or not isinstance(self.seed_offset, int) or self.seed_offset < 0:
            raise ValueError(f"algorithm {self.name!r}: seed_offset must be an integer >= 0, got {self.seed_offset!r}")

    def train_kwargs(self, point: Mapping[str, Any], step_hint: int | None = None) -> dict[str, Any]:
        """``train()`` keyword arguments (optimizer, lr, hparams, schedule, schedule_kw) for a search-space point;
        with an evaluation hook the optimizer is the hook's wrapper around this algorithm's optimizer, its
        ``*_fraction`` settings resolved against ``step_hint`` (the workload's)."""
        hparams: dict[str, Any] = dict(self.fixed)
        schedule_kw: dict[str, Any] = dict(self.schedule_kw)
        lr = None
        beta1 = beta2 = None
        for key, value in point.items():
            if key == "lr":
                lr = float(value)
            elif key in SCHEDULE_KEYS:
                schedule_kw[key] = value
            elif key == "one_minus_beta1":
                beta1 = 1.0 - float(value)
            elif key == "beta2":
                beta2 = float(value)
            else:
                hparams[key] = value
        if beta1 is not None or beta2 is not None:
            b1, b2 = hparams.get("betas", (0.9, 0.999))
            hparams["betas"] = (b1 if beta1 is None else beta1, b2 if beta2 is None else beta2)
        if lr is None:
            raise ValueError(f"algorithm {self.name!r}: the point {dict(point)!r} has no 'lr'")
        optimizer = self.optimizer
        if self.prepare_for_eval is not None:
            hook = dict(self.prepare_for_eval)
            optimizer = hook.pop("method")
            for key, target in STEP_FRACTION_KEYS.items():
                if key in hook:
                    if step_hint is None:
                        raise ValueError(f"algorithm {self.name!r}: prepare_for_eval {key} needs the workload's step_hint")
                    frac = hook.pop(key)
                    hook[target] = max(1 if target == "every" else 0, int(round(frac * step_hint)))
            hparams = {"base": self.optimizer, **hparams, **hook}
        return {
            "optimizer": optimizer,
            "lr": lr,
            "hparams": hparams,
            "schedule": self.schedule,
            "schedule_kw": schedule_kw if self.schedule else {},
        }

    def spec(self) -> dict[str, Any]:
        """The algorithm as a plain dict (part of every trial's cache key)."""
        space = dict(self.space) if isinstance(self.space, Mapping) else [dict(p) for p in self.space]
        return {
            "name": self.name,
            "optimizer": self.optimizer,
            "schedule": self.schedule,
            "schedule_kw": dict(self.schedule_kw),
            "fixed": dict(self.fixed),
            "space": space,
            "default": dict(self.default),
            **({"prepare_for_eval": dict(self.prepare_for_eval)} if self.prepare_for_eval is not None else {}),
            **({"seed_offset": self.seed_offset} if self.seed_offset else {}),
        }  # the last two only when set: the cache keys of existing algorithms stay as they were

    def twin(self, name: str | None = None, seed_offset: int = TWIN_SEED_OFFSET) -> Algorithm:
        """The same algorithm under another name (default ``<name>_twin``) with other study and trial seeds: the
        null test's second entrant, which should come out tied with this one."""
        return dataclasses.replace(self, name=name or f"{self.name}_twin", seed_offset=self.seed_offset + seed_offset)


ALGORITHMS: dict[str, Algorithm] = {}


def register_algorithm(algorithm: Algorithm) -> Algorithm:
    """Add ``algorithm`` to the registry (replacing one of the same name) and return it."""
    if not isinstance(algorithm, Algorithm):
        raise TypeError(f"expected an Algorithm, got {type(algorithm).__name__}")
    ALGORITHMS[algorithm.name] = algorithm
    return algorithm


def get_algorithm(name: str) -> Algorithm:
    """The registered algorithm ``name`` (ValueError with suggestions otherwise)."""
    if name not in ALGORITHMS:
        raise ValueError(unknown_name_message("algorithm", name, sorted(ALGORITHMS)))
    return ALGORITHMS[name]


def available_algorithms() -> list[str]:
    """Names of the registered algorithms, in registration order."""
    return list(ALGORITHMS)


def _log(lo: float, hi: float) -> dict[str, Any]:
    return {"min": lo, "max": hi, "scaling": "log"}


def _builtin() -> None:
    wd = _log(1e-3, 1.0)  # up to 1: grokking (modular) needs strong decoupled decay
    register_algorithm(Algorithm(
        "nadamw", "nadam", space={"lr": _log(3e-4, 3e-2), "one_minus_beta1": _log(0.03, 0.3), "weight_decay": wd},
        default={"lr": 3e-3, "one_minus_beta1": 0.1, "weight_decay": 1e-2},
        fixed={"decoupled_weight_decay": True, "betas": (0.9, 0.99)}, schedule_kw={"warmup_fraction": 0.05},
        description="AlgoPerf baseline: NAdam + decoupled weight decay, linear warmup then cosine decay",
    ))  # fmt: skip
    nadamw = ALGORITHMS["nadamw"]
    register_algorithm(dataclasses.replace(
        nadamw, name="nadamw_lawa", prepare_for_eval={"method": "lawa", "k": 5, "every_fraction": 0.02},
        description="NAdamW; evaluates the mean of the last 5 weight snapshots, one every 2 % of the step hint "
                    "(AlgoPerf v0.5 'LAWA queue')",
    ))  # fmt: skip
    register_algorithm(dataclasses.replace(
        nadamw, name="nadamw_ema", prepare_for_eval={"method": "ema", "decay": 0.9, "every_fraction": 0.01},
        description="NAdamW; evaluates an EMA (decay 0.9) of weight snapshots taken every 1 % of the step hint "
                    "(AlgoPerf v0.5 'LAWA EMA')",
    ))  # fmt: skip
    register_algorithm(Algorithm(
        "adamw", "adamw", space={"lr": _log(3e-4, 3e-2), "weight_decay": wd},
        default={"lr": 3e-3, "weight_decay": 1e-2}, schedule_kw={"warmup_fraction": 0.05},
        description="AdamW, warmup + cosine",
    ))  # fmt: skip
    register_algorithm(Algorithm(
        "sgd_nesterov", "sgd", space={"lr": _log(3e-3, 1.0), "weight_decay": _log(1e-5, 1e-2)},
        default={"lr": 0.05, "weight_decay": 1e-4}, fixed={"momentum": 0.9, "nesterov": True},
        schedule_kw={"warmup_fraction": 0.05}, description="SGD + Nesterov momentum 0.9, warmup + cosine",
    ))  # fmt: skip
    register_algorithm(Algorithm(
        "muon", "muon", space={"lr": _log(3e-3, 1e-1), "weight_decay": wd},
        default={"lr": 0.02, "weight_decay": 1e-2}, schedule_kw={"warmup_fraction": 0.05},
        description="Muon on hidden matrices + AdamW on the rest (lr_adam = 3e-4 lr / 0.02), warmup + cosine",
    ))  # fmt: skip
    register_algorithm(Algorithm(
        "shampoo", "shampoo", space={"lr": _log(3e-4, 3e-2), "weight_decay": wd},
        default={"lr": 3e-3, "weight_decay": 1e-3}, fixed={"precondition_frequency": 10},
        schedule_kw={"warmup_fraction": 0.05},
        description="Shampoo, Adam-grafted, preconditioners refreshed every 10 steps, warmup + cosine",
    ))  # fmt: skip
    register_algorithm(Algorithm(
        "sam", "sam", space={"lr": _log(3e-3, 1.0), "rho": _log(0.01, 0.2)},
        default={"lr": 0.05, "rho": 0.05}, fixed={"base": "sgd", "momentum": 0.9, "nesterov": True},
        schedule_kw={"warmup_fraction": 0.05}, description="SAM around SGD + Nesterov (two gradients per step)",
    ))  # fmt: skip
    register_algorithm(Algorithm(
        "lookahead", "lookahead", space={"lr": _log(3e-4, 3e-2), "alpha": {"min": 0.3, "max": 0.8}},
        default={"lr": 3e-3, "alpha": 0.5}, fixed={"base": "adam", "k": 5},
        schedule_kw={"warmup_fraction": 0.05}, description="Lookahead(Adam), k = 5, warmup + cosine",
    ))  # fmt: skip
    register_algorithm(Algorithm(
        "schedulefree_adamw", "schedulefree_adamw", space={"lr": _log(1e-3, 3e-2), "weight_decay": wd},
        default={"lr": 5e-3, "weight_decay": 1e-3}, fixed={"warmup_steps": 50}, schedule=None,
        description="Schedule-Free AdamW, 50 warmup steps, no schedule",
    ))  # fmt: skip
    register_algorithm(Algorithm(
        "signsgd", "signsgd", space={"lr": _log(1e-4, 1e-2)}, default={"lr": 1e-3},
        schedule_kw={"warmup_fraction": 0.05}, description="signSGD, warmup + cosine",
    ))  # fmt: skip


_builtin()
