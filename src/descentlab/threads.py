"""Torch threads for one call: the "auto" rule and a context manager that restores the caller's setting.

Measured (issue 21, 2-core machines, torch 2.13): mnist1d_mlp trains at 0.81 ms/step on 1 thread vs 0.79 ms on
2 when idle, the CNN at 2.21 vs 2.46 ms; with one core kept busy by another process, 2 threads take 3.7x the
1-thread time and several competing processes make it ~100x. Intra-op parallelism only pays once the products
are large, so "auto" gives a model whose forward pass is under ``SMALL_FORWARD_FLOPS`` one thread, and a larger
one as many threads as there are cores not busy with other processes, never more than the caller allows.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["SMALL_FORWARD_FLOPS", "ThreadChoice", "choose_threads", "forward_flops", "torch_threads"]

# Below this many FLOPs per forward pass (~1 ms of one AVX2 core) a second thread was never faster: the largest
# measured small model (the mnist1d CNN, batch 100: 6.4 MFLOP) is 1.1x slower on 2 threads when idle; modular
# (639 MFLOP) and charlm (1.7 GFLOP) are the smallest registered tasks above it.
SMALL_FORWARD_FLOPS = 5e7


@dataclass(frozen=True)
class ThreadChoice:
    """The torch thread count for a call and why."""

    threads: int
    reason: str

    def as_config(self) -> dict[str, Any]:
        """What a run records in its config."""
        return {"threads": self.threads, "threads_reason": self.reason}


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _busy_elsewhere() -> float:
    """Cores kept busy by other processes: the 1-minute load average less this process's own thread."""
    try:
        return max(0.0, os.getloadavg()[0] - 1.0)
    except (AttributeError, OSError):
        return 0.0


def choose_threads(
    threads: int | str = "auto",
    *,
    flops: float | None = None,
    cores: int | None = None,
    busy: float | None = None,
    cap: int | None = None,
) -> ThreadChoice:
    """The thread count for ``threads`` ("auto" or a positive int).

    "auto": 1 when the forward pass takes fewer than ``SMALL_FORWARD_FLOPS`` (``flops``), else (and when the
    size is unknown, None) the cores not ``busy`` with other processes (at least 1). Never above ``cap`` (default: torch's current
    setting, so study and benchmark workers keep theirs). ``cores`` and ``busy`` default to this machine's count
    and load average; give them to get the choice for another machine (the result depends on nothing else).
    """
    cap = torch.get_num_threads() if cap is None else int(cap)
    if not isinstance(threads, str):
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be 'auto' or a positive integer, got {threads!r}")
        return ThreadChoice(threads, "given")
    if threads != "auto":
        try:
            return choose_threads(int(threads), flops=flops, cores=cores, busy=busy, cap=cap)
        except ValueError:
            raise ValueError(f"threads must be 'auto' or a positive integer, got {threads!r}") from None
    cores = _cores() if cores is None else int(cores)
    if flops is not None and flops < SMALL_FORWARD_FLOPS:
        return ThreadChoice(1, f"auto: small model ({flops / 1e6:.1f} MFLOP forward < "
                               f"{SMALL_FORWARD_FLOPS / 1e6:.0f}): 1 thread")  # fmt: skip
    busy = _busy_elsewhere() if busy is None else float(busy)
    free = max(1, min(cores, math.floor(cores - busy + 0.5)))
    n = max(1, min(free, cap))
    size = "unknown size" if flops is None else f"{flops / 1e6:.0f} MFLOP forward"
    return ThreadChoice(n, f"auto: {size}, {cores} cores, {busy:.1f} busy elsewhere, cap {cap}: {n}")


def forward_flops(model: torch.nn.Module, *inputs: Any) -> float | None:
    """FLOPs of one forward pass (torch's FLOP counter: matmuls and convolutions), or None if it cannot run.

    Run in eval mode without gradients and with the RNG state restored, so that counting changes nothing.
    """
    flags = [(m, m.training) for m in model.modules()]
    try:
        from torch.utils.flop_counter import FlopCounterMode

        model.eval()
        with torch.random.fork_rng(devices=[]), torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(*inputs)
        return float(counter.get_total_flops())
    except Exception:  # noqa: BLE001 (a model the counter cannot trace is treated as of unknown size)
        return None
    finally:
        for m, training in flags:
            m.training = training


@contextmanager
def torch_threads(threads: int) -> Iterator[int]:
    """Run the block with ``torch.set_num_threads(threads)``; the caller's setting is restored on exit."""
    before = torch.get_num_threads()
    if threads != before:
        torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
