"""Populations' runs as tables: a metric of M runs at fixed steps, ``[steps, M]``, NaN where a run has no value
(it diverged or stopped before that step). Studies read their populations' histories through this."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from descentlab.store import Run


def history_table(runs: Sequence[Run], name: str, steps: Sequence[int]) -> np.ndarray:
    """Metric ``name`` of every run at ``steps``: ``[len(steps), len(runs)]``, NaN where a run has no value there."""
    where = {int(s): i for i, s in enumerate(steps)}
    out = np.full((len(where), len(runs)), np.nan)
    for j, run in enumerate(runs):
        for step, value in run.metrics(name):
            i = where.get(int(step))
            if i is not None:
                out[i, j] = value
    return out


def eval_steps(total: int, every: int | None) -> list[int]:
    """The steps ``train()`` evaluates at for ``total`` steps: 0, every, 2 every, ..., and ``total``."""
    every = int(every) if every else int(total)
    return sorted({0, *range(every, int(total) + 1, every), int(total)})


def as_tensors(runs: Sequence[Run], steps: int, every: int | None, names: Sequence[str]) -> dict[str, object]:
    """``{"steps": eval steps, "batch_loss": [steps, M], name: [n_evals, M] ...}`` as float tensors (the shape the
    studies' batched loop used to return)."""
    at = eval_steps(steps, every)
    out: dict[str, object] = {
        "steps": at,
        "batch_loss": torch.from_numpy(history_table(runs, "batch_loss", range(1, int(steps) + 1))).float(),
    }
    for name in names:
        out[name] = torch.from_numpy(history_table(runs, name, at)).float()
    return out
