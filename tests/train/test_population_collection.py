"""pytorch_optimizer's methods and the cautious wrapper train as populations ("member" mode: one optimizer per
member) and each member is the run train() makes with its seed (issue 29)."""

from __future__ import annotations

import pytest

from descentlab.train.loop import train
from descentlab.train.population import population_mode, train_many


@pytest.mark.parametrize(
    "name, lr, forward, rel",
    [
        ("lion", 1e-3, "auto", 1e-6),
        ("prodigy", 1.0, "auto", 1e-6),
        ("cautious", 1e-2, "auto", 1e-6),
        # SOAP's eigenbasis of a rank-deficient statistic orders its zero eigenvalues by rounding, so the float32
        # rounding of the vmapped forward grows to ~1e-3 in 20 steps; the sequential forward is exact.
        ("soap", 3e-3, "sequential", 0.0),
    ],
)
def test_member_is_the_train_run(name, lr, forward, rel):
    assert population_mode(name) == "member"
    runs = train_many("logreg", name, members=[{"seed": 0, "lr": lr}, {"seed": 1, "lr": lr}], steps=20,
                      forward=forward, progress=False)  # fmt: skip
    for seed, run in zip((0, 1), runs):
        solo = train("logreg", name, lr=lr, steps=20, seed=seed, progress=False)
        assert run.status == solo.status == "finished"
        assert run.final["loss"] == pytest.approx(solo.final["loss"], rel=rel, abs=0)
