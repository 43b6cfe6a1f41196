"""Spawn gloo ranks for the DDP tests and tell a rank's own failure from a crash in gloo's teardown.

CI once saw rank 1 of a finished 2-rank SAM test die with SIGABRT ("terminate called without an active exception")
after its results were written and both ranks had passed the final barrier: a crash inside torch/gloo's shutdown,
not in the code under test (80 repeats here, two at a time, did not reproduce it). A rank therefore calls
``leave()`` at its end: a barrier, then a marker file, then ``destroy_process_group()``. ``spawn_ranks`` fails on
any exception a rank raises and on any death before that rank's marker; a death by a signal after it is reported
as a warning, and the test goes on to check the outputs the ranks wrote (a missing output still fails it).
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from pathlib import Path

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

_LEFT_DIR = "DESCENTLAB_TEST_LEFT_DIR"


def leave(rank: int) -> None:
    """End a rank: wait for every rank, mark this one done, then tear the process group down."""
    dist.barrier()
    folder = os.environ.get(_LEFT_DIR)
    if folder:
        Path(folder, f"rank{rank}").touch()
    dist.destroy_process_group()


def spawn_ranks(fn, args: tuple, world: int = 2, seconds: float = 300) -> None:
    """Run ``fn(rank, *args)`` on ``world`` spawned processes with OMP_NUM_THREADS=1 and join them. A rank's
    exception propagates (ProcessRaisedException); a hung collective fails after ``seconds``; a rank killed by a
    signal fails the test unless it had already called ``leave()``."""
    saved = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", _LEFT_DIR)}
    with tempfile.TemporaryDirectory() as left:
        os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the spawned children
        os.environ[_LEFT_DIR] = left
        try:
            ctx = mp.spawn(fn, args=args, nprocs=world, join=False)
            deadline = time.monotonic() + seconds
            while True:
                try:
                    if ctx.join(timeout=1):
                        return
                except mp.ProcessExitedException as exc:
                    if not Path(left, f"rank{exc.error_index}").exists():
                        raise
                    msg = f"rank {exc.error_index} died in gloo's teardown after it finished: {exc}"
                    warnings.warn(msg, stacklevel=2)
                    for p in ctx.processes:
                        p.join()
                    return
                if time.monotonic() > deadline:
                    for p in ctx.processes:
                        p.kill()
                    pytest.fail(f"the {world} ranks did not finish within {seconds:g} s")
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
