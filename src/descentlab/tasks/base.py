"""The Task contract: data kept as tensors, a model factory, a loss, metrics and a resumable batch stream."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

Batch = tuple[Tensor, ...]
Criterion = Callable[[Tensor, Tensor], Tensor]

LANDSCAPE_SAMPLES = 2000
"""Default number of training examples :meth:`Task.landscape_problem` uses (the first ones)."""


def check_number(
    task: str,
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a finite float in the given range; ValueError naming the task, the option and the value otherwise.

    ``low``/``high`` are inclusive bounds unless ``low_open``/``high_open`` (None: unbounded on that side).
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))
    if ok:
        v = float(value)
        if low is not None:
            ok = v > low if low_open else v >= low
        if ok and high is not None:
            ok = v < high if high_open else v <= high
    if not ok:
        lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
        hi = "" if high is None else f"{'<' if high_open else '<='} {high:g}"
        rng = " and ".join(r for r in (lo, hi) if r)
        raise ValueError(f"{task}: {name} must be a finite number{' ' + rng if rng else ''}, got {value!r}")
    return float(value)


def seeded_generator(seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed`` (every task draws its randomness from one)."""
    g = torch.Generator()
    g.manual_seed(int(seed))
    return g


class BatchStream(Iterator[Batch]):
    """Endless, resumable mini-batch iterator over tensors.

    Each epoch is a permutation drawn from ``seed + epoch``; ``state_dict()`` holds (epoch, position), so a
    stream rebuilt from a checkpoint yields exactly the batches the interrupted one would have.
    ``batch_size >= len(data)`` gives full-batch (deterministic) gradients.
    """

    def __init__(self, data: Batch, batch_size: int, seed: int = 0, shuffle: bool = True):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.data = data
        self.n = int(data[0].shape[0])
        self.batch_size = min(batch_size, self.n)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.epoch = 0
        self.position = 0
        self._perm: Tensor | None = None

    def _permutation(self) -> Tensor:
        if self._perm is None:
            if self.shuffle and self.batch_size < self.n:
                self._perm = torch.randperm(
                    self.n, generator=seeded_generator(self.seed * 100003 + self.epoch)
                )
            else:
                self._perm = torch.arange(self.n)
        return self._perm

    def __next__(self) -> Batch:
        if self.position + self.batch_size > self.n:  # drop the ragged tail: every batch has the same size
            self.epoch += 1
            self.position = 0
            self._perm = None
        if self.batch_size == self.n:
            self.position += self.n
            return self.data
        idx = self._permutation()[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return tuple(t[idx] for t in self.data)

    def state_dict(self) -> dict[str, int]:
        """Position of the stream: enough to resume it exactly."""
        return {
            "seed": self.seed,
            "epoch": self.epoch,
            "position": self.position,
            "batch_size": self.batch_size,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Move the stream to a saved position."""
        if int(state["batch_size"]) != self.batch_size:
            raise ValueError(
                f"checkpointed batch_size {state['batch_size']} differs from this stream's {self.batch_size}"
            )
        self.seed, self.epoch, self.position = int(state["seed"]), int(state["epoch"]), int(state["position"])
        self._perm = None


class SeededStream(Iterator[Batch]):
    """Endless stream whose batch ``k`` depends only on ``(seed, k)``: its state is the step count.

    Subclasses implement ``draw(generator)``; resuming needs nothing but ``state_dict()``.
    """

    def __init__(self, batch_size: int, seed: int = 0):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size = batch_size
        self.seed, self.step = int(seed), 0

    def draw(self, generator: torch.Generator) -> Batch:
        """The batch for the generator seeded by (seed, step)."""
        raise NotImplementedError

    def __next__(self) -> Batch:
        g = seeded_generator(self.seed * 1_000_003 + self.step)
        self.step += 1
        return self.draw(g)

    def state_dict(self) -> dict[str, int]:
        """Position of the stream: enough to resume it exactly."""
        return {"seed": self.seed, "step": self.step, "batch_size": self.batch_size}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Move the stream to a saved position."""
        if int(state["batch_size"]) != self.batch_size:
            raise ValueError(
                f"checkpointed batch_size {state['batch_size']} differs from this stream's {self.batch_size}"
            )
        self.seed, self.step = int(state["seed"]), int(state["step"])


def _landscape_samples(samples: int | None) -> int:
    if samples is None:
        return LANDSCAPE_SAMPLES
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be a positive integer, got {samples!r}")
    return samples


@dataclass
class Task:
    """A workload: data as tensors, a model factory, a loss and an evaluation.

    Subclasses (or instances built by a factory in ``descentlab.tasks``) set the fields and may override
    ``loss``/``evaluate``. The defaults suit supervised classification: ``loss`` is cross-entropy of
    ``model(x)`` against ``y`` and ``evaluate`` reports ``loss`` and ``accuracy`` on ``val_data``
    (and ``train_loss``/``train_accuracy`` on ``train_data``).
    """

    name: str
    train_data: Batch
    val_data: Batch
    model_factory: Callable[[int], nn.Module]
    description: str = ""
    kind: str = "classification"  # "classification" | "regression" | "function"
    default_batch_size: int = 128
    default_lr: float = 1e-3
    default_steps: int = 1000
    default_eval_every: int = 100
    config: dict[str, Any] = field(default_factory=dict)
    # Benchmark fields (AlgoPerf style); None where the task is not a benchmark workload.
    target: float | None = None
    target_metric: str = "loss"
    higher_is_better: bool = False

    def make_model(self, seed: int = 0) -> nn.Module:
        """A freshly initialised model, deterministic under ``seed``."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            return self.model_factory(int(seed))

    def batches(self, batch_size: int | None = None, seed: int = 0) -> BatchStream:
        """An endless, resumable stream of training mini-batches."""
        return BatchStream(
            self.train_data, self.default_batch_size if batch_size is None else batch_size, seed
        )

    def outputs_loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """Loss of model outputs against targets (cross-entropy for classification, MSE for regression)."""
        if self.kind == "regression":
            return nn.functional.mse_loss(outputs.squeeze(-1), targets)
        return nn.functional.cross_entropy(outputs, targets)

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        """Mean training loss of ``model`` on ``batch``."""
        x, y = batch[0], batch[1]
        return self.outputs_loss(model(x), y)

    def landscape_problem(
        self, model: nn.Module, samples: int | None = None
    ) -> tuple[nn.Module, Criterion, tuple[Tensor, Tensor]]:
        """``(module, criterion, (inputs, targets))`` for :mod:`descentlab.landscape`: ``criterion(module(inputs),
        targets)`` is this task's training loss of ``model`` on the first ``samples`` training examples (default
        ``LANDSCAPE_SAMPLES``).

        ``module`` is ``model`` or a wrapper sharing its parameters. Tasks whose ``loss`` is not
        ``outputs_loss(model(x), y)`` override this; ValueError (naming the reason) where a task has no such form.
        """
        if type(self).loss is not Task.loss:
            raise ValueError(
                f"task {self.name!r} has its own loss(model, batch) and no landscape_problem: the landscape tools "
                "need the loss as criterion(model(inputs), targets) (override Task.landscape_problem)"
            )
        if len(self.train_data) < 2:
            raise ValueError(
                f"task {self.name!r} has no (inputs, targets) training data for the landscape tools "
                f"(train_data holds {len(self.train_data)} tensor(s))"
            )
        n = _landscape_samples(samples)
        return model, self.outputs_loss, (self.train_data[0][:n], self.train_data[1][:n])

    @torch.no_grad()
    def _metrics(self, model: nn.Module, data: Batch, chunk: int = 4096) -> dict[str, float]:
        x, y = data[0], data[1]
        total_loss, correct, n = 0.0, 0, int(x.shape[0])
        for i in range(0, n, chunk):
            out = model(x[i : i + chunk])
            yy = y[i : i + chunk]
            total_loss += float(self.outputs_loss(out, yy)) * int(yy.shape[0])
            if self.kind == "classification":
                correct += int((out.argmax(-1) == yy).sum())
        res = {"loss": total_loss / n}
        if self.kind == "classification":
            res["accuracy"] = correct / n
        return res

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Validation ``loss`` (and ``accuracy``), plus ``train_loss`` (and ``train_accuracy``)."""
        was_training = model.training
        model.eval()
        try:
            device = next(iter(model.parameters())).device
            val = self._metrics(model, tuple(t.to(device) for t in self.val_data))
            tr = self._metrics(model, tuple(t.to(device) for t in self.train_data))
        finally:
            model.train(was_training)
        out = dict(val)
        out.update({f"train_{k}": v for k, v in tr.items()})
        return out

    def to(self, device: torch.device | str) -> Task:
        """Move the data tensors to ``device`` in place and return the task."""
        self.train_data = tuple(t.to(device) for t in self.train_data)
        self.val_data = tuple(t.to(device) for t in self.val_data)
        return self
