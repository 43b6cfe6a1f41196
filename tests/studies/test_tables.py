"""studies.tables: populations' histories as [steps, M] tables, and tune() training its grid as one population."""

from __future__ import annotations

import math

import numpy as np

from descentlab.store import Run
from descentlab.studies.claims import tune
from descentlab.studies.tables import PopulationScore, eval_steps, history_table


def test_history_table_puts_nan_where_a_run_has_no_value() -> None:
    a = Run("a", {}, history={"loss": [(0, 1.0), (10, 0.5), (20, 0.25)]})
    b = Run("b", {}, history={"loss": [(0, 2.0), (10, math.inf)]})  # diverged at step 10
    t = history_table([a, b], "loss", [0, 10, 20])
    assert t.shape == (3, 2)
    assert t[:, 0].tolist() == [1.0, 0.5, 0.25]
    assert t[0, 1] == 2.0 and math.isinf(t[1, 1]) and np.isnan(t[2, 1])


def test_eval_steps_are_train_s_cadence() -> None:
    assert eval_steps(25, 10) == [0, 10, 20, 25]
    assert eval_steps(20, None) == [0, 20]


class _Ctx:
    """A study context whose populations are recorded, each member's 'loss' = (log10(lr) + 2)^2 + seed/100."""

    def __init__(self) -> None:
        self.calls: list[list[tuple[float, int]]] = []

    def train_many(self, task, optimizer, members, **kw):  # noqa: ANN001, ANN003
        self.calls.append([(m["lr"], m["seed"]) for m in members])
        return [Run(f"r{i}", {}, final={"loss": (math.log10(m["lr"]) + 2) ** 2 + m["seed"] / 100})
                for i, m in enumerate(members)]  # fmt: skip


def test_tune_trains_the_grid_then_each_extension_as_one_population() -> None:
    ctx = _Ctx()
    score = PopulationScore(ctx, "task", "sgd", read=lambda r: r.final["loss"])
    t = tune(score, [1e-4, 1e-3], [1000, 1001, 1002], metric="loss")
    # The grid's 6 pairs in one population; the optimum (1e-2) lies past the upper edge: two extensions of 3 pairs.
    assert [len(c) for c in ctx.calls] == [6, 3, 3]
    assert sorted(ctx.calls[0]) == sorted((v, s) for v in (1e-4, 1e-3) for s in (1000, 1001, 1002))
    assert math.isclose(t.value, 1e-2, rel_tol=1e-9) and t.extended == 2
    assert len(score.runs) == 12
    assert score(1e-3, 1000) == 1.0 + 10.0  # read from the cache, nothing trained
    assert len(ctx.calls) == 3
