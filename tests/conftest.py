"""Shared fixtures: a tiny classification task that does not depend on the registered workloads."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from descentlab.tasks.base import Task

# One thread: the tests train tiny models, where a second thread costs more than it gives (and the machine is
# often shared); benchmarks choose their own thread counts.
torch.set_num_threads(1)


def make_toy_task(n: int = 256, dim: int = 8, seed: int = 0) -> Task:
    """A linearly separable-ish 2-class problem with a small MLP."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    split = int(0.75 * n)

    def model(seed: int) -> nn.Module:
        return nn.Sequential(nn.Linear(dim, 16), nn.Tanh(), nn.Linear(16, 2))

    return Task(
        "toy",
        (x[:split], y[:split]),
        (x[split:], y[split:]),
        model,
        default_batch_size=16,
        default_eval_every=10,
        default_steps=60,
        default_lr=1e-2,
    )


@pytest.fixture
def toy_task() -> Task:
    return make_toy_task()


@pytest.fixture
def store_path(tmp_path):
    return tmp_path / "store" / "runs.db"
