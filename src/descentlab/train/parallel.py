"""One process or data-parallel, expressed once: the loop calls the same methods on either strategy.

A strategy shards the global batch, syncs gradients (SAM's first backward stays local), agrees on the step's clock
and on the stop verdict after an evaluation, and says which process evaluates and writes the store (rank 0).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from descentlab.train.hooks import Diverged
from descentlab.train.interrupt import _DeferredInterrupt, _ImmediateInterrupt

Batch = tuple[torch.Tensor, ...]
StopWhen = Callable[[Mapping[str, float]], bool] | None
_WATCHED = ("loss", "train_loss")  # evaluation metrics whose non-finite value means the run diverged


def _dist_rank_world() -> tuple[int, int]:
    """(rank, world size) of the initialized default process group; ValueError when there is none."""
    if not (dist.is_available() and dist.is_initialized()):
        raise ValueError(
            "distributed=True needs an initialized torch.distributed process group: launch with torchrun and call "
            "torch.distributed.init_process_group() first (or use `descentlab bench trial` under torchrun)"
        )
    return int(dist.get_rank()), int(dist.get_world_size())


def _shard(batch: Batch, rank: int, world: int) -> Batch:
    """Rank ``rank``'s contiguous slice of every tensor of a global batch (tensors without a batch axis pass whole)."""
    n = int(batch[0].shape[0])
    if n % world:
        raise ValueError(f"a batch of {n} examples cannot be split evenly across world size {world}")
    per = n // world
    return tuple(
        t[rank * per : (rank + 1) * per] if t.dim() > 0 and int(t.shape[0]) == n else t for t in batch
    )


def _diverged_key(metrics: Mapping[str, float]) -> str | None:
    """The first watched evaluation metric that is not finite (None when all are)."""
    return next((k for k in _WATCHED if not math.isfinite(metrics.get(k, 0.0))), None)


class SingleProcess:
    """One process: whole batches, no gradient sync, the local clock; it evaluates, decides and writes."""

    rank, world = 0, 1
    writes = True  # this process owns the store and the checkpoints

    def describe(self) -> dict[str, Any] | None:
        """The ``distributed`` entry of the run's configuration (None: not recorded)."""
        return None

    def place(self, device: torch.device) -> torch.device:
        """The device this process trains on."""
        return device

    def check_batch(self, batch_size: int) -> None:
        """Refuse a global batch this strategy cannot split (one process takes any)."""

    def check_stream(self, stream: Any, batch_size: int) -> None:
        """Refuse a batch stream whose batches this strategy cannot split (one process takes any)."""

    def interrupts(self) -> _DeferredInterrupt:
        """How Ctrl-C is handled: held until the next step boundary."""
        return _DeferredInterrupt()

    def agree(self, run_id: str) -> str:
        """The run id every process uses."""
        return run_id

    def attach(self, model: nn.Module, opt: torch.optim.Optimizer) -> nn.Module:
        """The module the loss sees (here the model itself)."""
        return model

    def begin_step(self, batch: Batch) -> Batch:
        """This process's part of the step's global batch."""
        return batch

    def sync(self) -> contextlib.AbstractContextManager[Any]:
        """The context of one backward pass (gradient sync on or off)."""
        return contextlib.nullcontext()

    def mean_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """The global batch's mean loss."""
        return loss

    def step_seconds(self, seconds: float) -> float:
        """The step's time on the shared clock."""
        return seconds

    def on_main(self, fn: Callable[[], dict[str, float]]) -> dict[str, float]:
        """``fn()`` on the process that evaluates and writes; ``{}`` elsewhere."""
        return fn()

    def verdict(self, metrics: Mapping[str, float], stop_when: StopWhen, step: int) -> bool:
        """After an evaluation: raise Diverged on a non-finite loss, else whether ``stop_when`` ends the run."""
        bad = _diverged_key(metrics)
        if bad is not None:
            raise Diverged(f"evaluation {bad} became {metrics[bad]} at step {step}")
        return stop_when is not None and bool(stop_when(metrics))


class DataParallel(SingleProcess):
    """Data-parallel inside an initialized process group: every rank draws the same global batch and trains on its
    contiguous shard; DistributedDataParallel averages gradients; a step lasts as long as its slowest rank; rank 0
    evaluates, decides (stop_when, divergence) for all and alone writes the store."""

    def __init__(self) -> None:
        self.rank, self.world = _dist_rank_world()
        self.writes = self.rank == 0
        self.comm_dev = torch.device("cpu")
        self.device = torch.device("cpu")
        self.model: nn.Module | None = None
        self.sam_local_first = False
        self.calls = 0  # closure calls within the current step

    def describe(self) -> dict[str, Any] | None:
        """World size and backend, recorded with the run."""
        return {"world_size": self.world, "backend": str(dist.get_backend())}

    def place(self, device: torch.device) -> torch.device:
        """``cuda:$LOCAL_RANK`` for a bare ``cuda`` (made current); collectives on it under NCCL."""
        if device.type == "cuda" and device.index is None:
            device = torch.device(
                "cuda", int(os.environ.get("LOCAL_RANK", self.rank % torch.cuda.device_count()))
            )
        if device.type == "cuda":
            torch.cuda.set_device(device)
        if dist.get_backend() == "nccl":
            self.comm_dev = device
        self.device = device
        return device

    def check_batch(self, batch_size: int) -> None:
        """Refuse a global batch not divisible by the world size."""
        if batch_size % self.world:
            raise ValueError(
                f"batch_size {batch_size} (the global batch) is not divisible by the world size {self.world}"
            )

    def check_stream(self, stream: Any, batch_size: int) -> None:
        """Refuse a batch stream whose batches (``batch_size`` clipped to the data) do not split evenly."""
        held = getattr(stream, "batch_size", batch_size)
        if int(held) % self.world:
            raise ValueError(
                f"the task's batches hold {held} examples (batch_size {batch_size} clipped to the data), not "
                f"divisible by the world size {self.world}"
            )

    def interrupts(self) -> _DeferredInterrupt:
        """Ctrl-C raises at once (ranks must not stop at different steps)."""
        return _ImmediateInterrupt()

    def agree(self, run_id: str) -> str:
        """Rank 0's run id, on every rank."""
        box = [run_id]
        dist.broadcast_object_list(box, src=0)
        return str(box[0])

    def attach(self, model: nn.Module, opt: torch.optim.Optimizer) -> nn.Module:
        """Wrap the model in DistributedDataParallel; note whether the optimizer is SAM."""
        from torch.nn.parallel import DistributedDataParallel

        from descentlab.optim.sam import SAM

        # SAM's documented DDP protocol: its first backward runs unsynchronized and first_step averages the
        # gradient itself (or keeps it local with local_perturbation=True); the second backward is DDP's.
        self.sam_local_first = isinstance(opt, SAM)
        dev = self.device
        self.model = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
        return self.model

    def begin_step(self, batch: Batch) -> Batch:
        """This rank's contiguous shard of the global batch."""
        self.calls = 0
        return _shard(batch, self.rank, self.world)

    def sync(self) -> contextlib.AbstractContextManager[Any]:
        """DDP's gradient sync, except for SAM's first backward of a step."""
        self.calls += 1
        if self.sam_local_first and self.calls == 1:
            return self.model.no_sync()  # type: ignore[union-attr,operator]
        return contextlib.nullcontext()

    def mean_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """The mean of the ranks' losses (every rank, and a line search, sees the global batch's loss)."""
        loss = loss.detach().clone()
        dist.all_reduce(loss)
        return loss / self.world

    def step_seconds(self, seconds: float) -> float:
        """The slowest rank's time: one clock on every rank."""
        elapsed = torch.tensor([seconds], dtype=torch.float64, device=self.comm_dev)
        dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)
        return float(elapsed)

    def on_main(self, fn: Callable[[], dict[str, float]]) -> dict[str, float]:
        """``fn()`` on rank 0 only."""
        return fn() if self.rank == 0 else {}

    def verdict(self, metrics: Mapping[str, float], stop_when: StopWhen, step: int) -> bool:
        """Rank 0 judges its evaluation (divergence, then ``stop_when``); every rank follows its verdict."""
        bad = _diverged_key(metrics)
        stop = self.rank == 0 and bad is None and stop_when is not None and bool(stop_when(metrics))
        verdict = torch.tensor([bad is not None, stop], dtype=torch.float64, device=self.comm_dev)
        dist.broadcast(verdict, src=0)
        if bool(verdict[0]):
            what = f"{bad} became {metrics[bad]}" if bad is not None else "on rank 0 diverged"
            raise Diverged(f"evaluation {what} at step {step}")
        return bool(verdict[1])


def strategy(distributed: bool) -> SingleProcess:
    """The execution strategy: :class:`DataParallel` for ``distributed=True``, else :class:`SingleProcess`."""
    return DataParallel() if distributed else SingleProcess()
