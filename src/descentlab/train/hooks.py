"""What the loop shows the outside: callbacks (``Callback``, ``StepContext``) and the ``Diverged`` signal."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from descentlab.tasks.base import Task


@dataclass
class StepContext:
    """What a callback sees: the step, the model, the optimizer, the task and a ``log`` for extra metrics."""

    step: int
    model: nn.Module
    optimizer: torch.optim.Optimizer
    task: Task
    metrics: dict[str, float] = field(default_factory=dict)

    def log(self, name: str, value: float) -> None:
        """Record an extra metric at this step."""
        self.metrics[name] = float(value)


@dataclass
class Callback:
    """Calls ``fn(ctx)`` every ``every`` steps; a returned dict is logged as metrics (e.g. sharpness).

    ``recorded=True`` declares that the logged metrics are all the callback gives its caller (the caller reads them
    from the run, not from the callback's own state): a study may then reuse an ended run from the store instead of
    training it again (the callback's kind is part of the run's identity)."""

    fn: Callable[[StepContext], Mapping[str, float] | None]
    every: int = 100
    recorded: bool = False


def as_callbacks(callbacks: Iterable[Callback | Callable[[StepContext], Any]], every: int) -> list[Callback]:
    """``callbacks`` as :class:`Callback` objects (a bare function is called every ``every`` steps)."""
    return [c if isinstance(c, Callback) else Callback(c, every) for c in callbacks]


class Diverged(Exception):
    """Raised inside the loop when the loss or the parameters stop being finite."""
