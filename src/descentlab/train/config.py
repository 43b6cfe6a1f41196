"""The run configuration: every argument of ``train()`` checked once, into one :class:`RunConfig`.

``RunConfig.record()`` is what the store records for the run (and what ``resume()`` rebuilds the run from).
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn

from descentlab import schedules as schedule_registry
from descentlab import tasks as task_registry
from descentlab.optim import registry as optim_registry
from descentlab.store import Store, new_run_id, validate_run_id
from descentlab.tasks.base import Task
from descentlab.train.parallel import SingleProcess, strategy

OptimizerSpec = str | Callable[[nn.Module], torch.optim.Optimizer]
MAX_TIME_BUDGET = 1e8
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class RunConfig:
    """A validated run configuration: what the store records (``record()``), defaults from the task filled in."""

    task: str
    task_kw: dict[str, Any]
    optimizer: str
    lr: float | None
    hparams: dict[str, Any]
    schedule: str | None
    schedule_kw: dict[str, Any]
    steps: int | None
    time_budget: float | None
    batch_size: int
    seed: int
    eval_every: int
    device: str
    averaging: str | None
    averaging_kw: dict[str, Any]
    checkpoint_every: int | None
    schedule_steps: int | None
    distributed: dict[str, Any] | None = None
    threads: int | None = None  # torch threads the loop ran with (descentlab.threads: "auto" or given)
    threads_reason: str | None = None
    precision: str | None = None  # "bf16": forward and loss under torch.autocast; None: fp32

    def record(self) -> dict[str, Any]:
        """The configuration as the store keeps it (``distributed`` only for data-parallel runs)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for optional in ("distributed", "threads", "threads_reason", "precision"):
            if out[optional] is None:
                del out[optional]
        return out

    @property
    def schedule_span(self) -> int:
        """The number of steps the schedule spans (``schedule_steps``, else ``steps``, else 1000 per second)."""
        if self.schedule_steps:
            return self.schedule_steps
        return self.steps if self.steps is not None else max(1, int(self.time_budget * 1000))  # type: ignore[operator]

    def budget_spent(self, step: int, train_time: float) -> bool:
        """Whether the run has reached ``steps`` or spent ``time_budget`` seconds of training time."""
        return (self.steps is not None and step >= self.steps) or (
            self.time_budget is not None and train_time >= self.time_budget
        )


def train_keywords(record: Mapping[str, Any]) -> dict[str, Any]:
    """The ``train()`` keywords that rebuild a stored run's configuration (``resume`` uses them)."""
    names = ("lr", "hparams", "schedule", "schedule_kw", "steps", "time_budget", "batch_size", "seed", "eval_every",
             "device", "task_kw", "checkpoint_every", "averaging", "averaging_kw")  # fmt: skip
    return {"optimizer": record["optimizer"], **{k: record[k] for k in names},
            "schedule_steps": record.get("schedule_steps"), "precision": record.get("precision") or "fp32"}  # fmt: skip


def _resolve_device(device: str | torch.device) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be a string or torch.device, got {device!r}")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu' or 'cuda[:N]'") from None
    if dev.type not in ("cpu", "cuda", "mps"):  # e.g. 'meta' holds no data: nothing could be trained on it
        raise ValueError(f"device {device!r} cannot train a model; use 'auto', 'cpu' or 'cuda[:N]'")
    if dev.type == "cpu" and dev.index not in (None, 0):
        raise ValueError(f"device {device!r} does not exist; there is one CPU device, 'cpu'")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {device!r} does not exist; this machine has {torch.cuda.device_count()} GPU(s)"
            )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r} requested but MPS is not available")
    return dev


# the batch streams derive seeds (seed * 1_000_003 + step) that must stay in torch's int64
MAX_SEED = 2**31 - 1


def check_seed(seed: Any, name: str = "seed") -> int:
    """``seed`` if it is an integer in [0, MAX_SEED]; ValueError (TypeError for a non-integer) naming it otherwise."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):  # numpy integers too
        raise TypeError(f"{name} must be an integer in [0, {MAX_SEED}], got {seed!r}")
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"{name} must be an integer in [0, {MAX_SEED}], got {seed!r}")
    return seed


def _check_averaging(averaging: Any, averaging_kw: dict[str, Any]) -> None:
    """``averaging`` in (None, 'ema', 'swa'); ``averaging_kw`` only ``start`` (an integer >= 0) and, for EMA,
    ``decay`` (a number in (0, 1))."""
    if averaging not in (None, "ema", "swa"):
        raise ValueError(f"averaging must be None, 'ema' or 'swa', got {averaging!r}")
    allowed = {"ema": ("start", "decay"), "swa": ("start",), None: ()}[averaging]
    unknown = sorted(set(averaging_kw) - set(allowed))
    if unknown:
        raise ValueError(
            f"averaging_kw {unknown} not understood with averaging={averaging!r}; allowed: {allowed}"
        )
    start = averaging_kw.get("start", 0)
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        raise ValueError(f"averaging_kw start must be an integer >= 0, got {start!r}")
    decay = averaging_kw.get("decay", 0.999)
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0.0 < decay < 1.0:
        raise ValueError(f"averaging_kw decay must be a number in (0, 1), got {decay!r}")


def _optimizer_name(optimizer: OptimizerSpec) -> str:
    if isinstance(optimizer, str):
        return optimizer.lower()
    return getattr(optimizer, "__name__", type(optimizer).__name__)


def _check_data(task: Task) -> None:
    """Refuse a task whose default batches or evaluation would see no examples (instead of dividing by zero)."""

    def size(data: Any) -> int | None:
        return (
            int(data[0].shape[0]) if isinstance(data, tuple) and data and hasattr(data[0], "shape") else None
        )

    uses_train = type(task).batches is Task.batches or type(task).evaluate is Task.evaluate
    if uses_train and size(task.train_data) == 0:
        raise ValueError(f"task {task.name!r} has no training examples (its train_data is empty)")
    if type(task).evaluate is Task.evaluate and size(task.val_data) == 0:
        raise ValueError(f"task {task.name!r} has no validation examples (its val_data is empty)")


def _check_positive(name: str, value: Any, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not value > 0
        or not math.isfinite(value)
    ):
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def _check_flag(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")


def _build_task(task: str | Task, task_kw: dict[str, Any]) -> Task:
    task_obj = task_registry.get(task, **task_kw) if isinstance(task, str) else task
    if not isinstance(task_obj, Task):
        raise TypeError(f"task must be a registry name or a Task, got {type(task).__name__}")
    return task_obj


def check_hyperparameters(optimizer: OptimizerSpec, lr: Any, hparams: Mapping[str, Any]) -> None:
    """Refuse a bad ``lr`` and, for a registry optimizer, its name and hyper-parameter values that no optimizer can
    mean (NaN/infinite numbers, non-boolean flags; :func:`descentlab.optim.registry.check_hyperparameters`)."""
    _check_positive("lr", lr)
    if isinstance(optimizer, str):
        optim_registry._REGISTRY.factory(optimizer)
        _check_positive("lr", hparams.get("lr"))
        rest = {k: v for k, v in hparams.items() if k != "lr"}
        optim_registry.check_hyperparameter_types(optimizer.lower(), rest)
        optim_registry.check_hyperparameters(optimizer.lower(), rest)


def _check_budgets(task: Task, lr: Any, time_budget: Any, counts: Mapping[str, Any]) -> None:
    _check_positive("lr", lr)
    _check_positive("time_budget", time_budget)
    if time_budget is not None and time_budget > MAX_TIME_BUDGET:
        raise ValueError(
            f"time_budget must be at most {MAX_TIME_BUDGET:g} seconds (about 3 years), got {time_budget!r}"
        )
    _check_data(task)
    for name, val in counts.items():
        if val is not None and (isinstance(val, bool) or not isinstance(val, int) or val < 1):
            raise ValueError(f"{name} must be a positive integer, got {val!r}")


def _learning_rate(
    lr: float | None, optimizer: OptimizerSpec, hparams: dict[str, Any], task: Task
) -> float | None:
    """``lr``, else the one given among a registry optimizer's hyper-parameters (checked), else the task's."""
    if lr is None and isinstance(optimizer, str):
        # lr given among the hyper-parameters (`--set lr=...`): checked, never replaced
        lr = hparams.pop("lr", None)
        _check_positive("lr", lr)
        if lr is None:
            lr = task.default_lr
    return lr


def configure(
    task: str | Task,
    optimizer: OptimizerSpec,
    *,
    lr: float | None,
    hparams: Mapping[str, Any] | None,
    schedule: str | None,
    schedule_kw: Mapping[str, Any] | None,
    steps: int | None,
    time_budget: float | None,
    batch_size: int | None,
    seed: int,
    eval_every: int | None,
    device: str | torch.device,
    task_kw: Mapping[str, Any] | None,
    checkpoint_every: int | None,
    averaging: str | None,
    averaging_kw: Mapping[str, Any] | None,
    schedule_steps: int | None,
    distributed: bool,
    run_id: str | None,
    overwrite: bool,
    store: Store | str | os.PathLike[str] | bool | None,
    precision: str = "fp32",
) -> tuple[RunConfig, Task, SingleProcess, str]:
    """Check every argument of ``train()`` in one place (one-line ValueError/TypeError naming the bad value) and
    return the configuration, the task, the execution strategy (one process or data-parallel) and the run id."""
    if run_id is not None:
        validate_run_id(run_id)
    _check_flag("overwrite", overwrite)
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    hparams, task_kw = dict(hparams or {}), dict(task_kw or {})
    task_obj = _build_task(task, task_kw)
    counts = {"steps": steps, "batch_size": batch_size, "eval_every": eval_every,
              "checkpoint_every": checkpoint_every, "schedule_steps": schedule_steps}  # fmt: skip
    _check_budgets(task_obj, lr, time_budget, counts)
    if steps is None and time_budget is None:
        steps = task_obj.default_steps
    _check_averaging(averaging, dict(averaging_kw or {}))
    check_seed(seed)
    if schedule is not None:
        schedule_registry._REGISTRY.factory(schedule)  # '' or a typo: refused by name, before any work
    check_hyperparameters(optimizer, lr, hparams)
    _check_flag("distributed", distributed)
    ex = strategy(distributed)
    dev = ex.place(_resolve_device(device))
    batch_size = batch_size or task_obj.default_batch_size
    ex.check_batch(batch_size)
    config = RunConfig(
        task=task_obj.name,
        task_kw={**task_obj.config, **task_kw},
        optimizer=_optimizer_name(optimizer),
        lr=_learning_rate(lr, optimizer, hparams, task_obj),
        hparams=hparams,
        schedule=schedule,
        schedule_kw=dict(schedule_kw or {}),
        steps=steps,
        time_budget=time_budget,
        batch_size=batch_size,
        seed=seed,
        eval_every=eval_every or task_obj.default_eval_every,
        device=str(dev),
        averaging=averaging,
        averaging_kw=dict(averaging_kw or {}),
        checkpoint_every=checkpoint_every,
        schedule_steps=schedule_steps,
        distributed=ex.describe(),
        precision=None if precision == "fp32" else precision,
    )
    if checkpoint_every and store is False:
        raise ValueError(
            "checkpoint_every needs a store (checkpoints live beside it); pass store=None or a path"
        )
    return config, task_obj, ex, run_id if run_id is not None else new_run_id(task_obj.name)
