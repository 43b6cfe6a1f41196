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


class PopulationScore:
    """``score(value, seed)`` for :func:`descentlab.studies.claims.tune` that trains the pairs it will be asked for
    as one population (``tune`` calls ``prefetch`` with the grid's pairs, then each extension's).

    ``member(value, seed)`` gives a member's settings (default ``{"seed": seed, "lr": value}``); ``read(run)`` the
    tuned criterion of a trained member's Run; ``shared`` are ``ctx.train_many``'s shared keywords. The Runs are kept
    in ``runs`` by (value, seed).
    """

    def __init__(self, ctx, task, optimizer, read, member=None, **shared) -> None:  # type: ignore[no-untyped-def]
        self.ctx, self.task, self.optimizer, self.read, self.shared = ctx, task, optimizer, read, shared
        self.member = member or (lambda value, seed: {"seed": seed, "lr": value})
        self.runs: dict[tuple[float, int], Run] = {}

    def prefetch(self, pairs: Sequence[tuple[float, int]]) -> None:
        """Train the pairs not trained yet, as one population (value-major, so equal values form stacked blocks)."""
        todo = sorted({(float(v), int(s)) for v, s in pairs} - set(self.runs))
        if todo:
            runs = self.ctx.train_many(
                self.task, self.optimizer, [self.member(v, s) for v, s in todo], **self.shared
            )
            self.runs.update(zip(todo, runs))

    def __call__(self, value: float, seed: int) -> float:
        key = (float(value), int(seed))
        if key not in self.runs:
            self.prefetch([key])
        return float(self.read(self.runs[key]))
