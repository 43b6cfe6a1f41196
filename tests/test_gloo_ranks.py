"""The DDP tests' spawner: a rank that dies after ``leave()`` is a warning, a rank that dies before it a failure."""

from __future__ import annotations

import os
import socket

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

from gloo_ranks import leave, spawn_ranks


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _abort_after_leaving(rank: int, port: int) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    leave(rank)
    if rank == 1:
        os.abort()  # as gloo's teardown did once in CI


def _abort_before_leaving(rank: int, port: int) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    if rank == 1:
        os.abort()
    leave(rank)


def test_a_death_after_leave_is_a_warning():
    with pytest.warns(UserWarning, match="rank 1 died in gloo's teardown"):
        spawn_ranks(_abort_after_leaving, (_port(),), seconds=60)


def test_a_death_before_leave_fails():
    with pytest.raises(mp.ProcessExitedException, match="process 1 terminated with signal SIGABRT"):
        spawn_ranks(_abort_before_leaving, (_port(),), seconds=60)
