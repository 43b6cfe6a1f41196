"""sam-flatness: each claim's decision on hand-made values, the equal-loss matching, the arms' populations against
train() (and their runs in the store), the tuning split, and a tiny end-to-end run with a well-formed summary and
its runs in the store (whatever the verdicts)."""

from __future__ import annotations

import json
import re

import pytest
import torch

import descentlab.studies as studies
from descentlab import tasks
from descentlab.landscape.projections import FlatParams
from descentlab.store import Store
from descentlab.studies import StudyContext
from descentlab.studies.claims import ANCHOR_VERDICTS, VERDICTS, judge
from descentlab.studies.sam_flatness import (
    PREDICTIONS,
    distinct_equal_loss_index,
    equal_loss_index,
    run_arm,
    tuning_task,
)
from descentlab.train import train

PRED = {p.name: p for p in PREDICTIONS}


@pytest.mark.parametrize("name", [p.name for p in PREDICTIONS if p.name.startswith("flatter")])
def test_flatness_decisions(name):
    assert judge(PRED[name], [3.1, 2.8, 3.3])["verdict"] == "holds"
    assert judge(PRED[name], [0.8, 0.85, 0.9])["verdict"] == "fails"  # SAM sharper than SGD
    assert judge(PRED[name], [1.02, 0.97, 1.0])["verdict"] == "inconclusive"  # a ratio of 1.00: no effect


@pytest.mark.parametrize("name", ["accuracy_clean", "accuracy_noisy"])
def test_accuracy_decisions(name):
    assert judge(PRED[name], [0.05, 0.07, 0.06])["verdict"] == "holds"
    assert judge(PRED[name], [-0.02, -0.03, -0.025])["verdict"] == "fails"
    assert judge(PRED[name], [0.01, -0.01, 0.004])["verdict"] == "inconclusive"


def test_equal_loss_index():
    losses = [2.3, 1.2, 0.6, 0.3, 0.1]
    assert equal_loss_index(losses, 0.6) == 2  # first reaches the other's final loss
    assert equal_loss_index(losses, 0.5) == 3
    assert equal_loss_index(losses, 5.0) == 0
    assert equal_loss_index(losses, 0.01) == 4  # never that low: the final point


ARM = {"steps": 9, "batch_size": 50, "momentum": 0.9, "weight_decay": 5e-4}


def _reference(task, seed, lr, rho, steps):
    hp = {"momentum": 0.9, "weight_decay": 5e-4} | ({"rho": rho} if rho else {})
    return train(
        task, optimizer="sam" if rho else "sgd", lr=lr, hparams=hp, steps=steps, batch_size=50, seed=seed,
        eval_every=steps, device="cpu", store=False, progress=False, threads=1,
    )  # fmt: skip


@pytest.mark.parametrize("members", [[(3, 0.05, 0.0), (4, 0.02, 0.0)], [(4, 0.02, 0.1), (5, 0.1, 0.5)]])
def test_arms_are_train_runs_in_the_store(tmp_path, members):
    task = tasks.get("mnist1d_mlp", width=8, label_noise=0.2)
    with Store(tmp_path / "runs.db") as store:
        ctx = StudyContext(name="sam-flatness", out=tmp_path, store=store, quick=True, key="k")
        arms = run_arm(ctx, task, members, evals=3, **ARM)
        for (seed, lr, rho), arm in zip(members, arms):
            assert arm.steps == [3, 6, 9] and len(arm.snapshots) == len(arm.train_loss) == 3
            ref = _reference(task, seed, lr, rho, 9)
            assert torch.allclose(FlatParams(ref.model).vector, FlatParams(arm.model).vector, atol=1e-6)
            assert torch.allclose(arm.snapshots[-1], FlatParams(arm.model).vector)
            assert arm.train_loss[-1] == pytest.approx(ref.final["train_loss"], rel=1e-5)
            early = _reference(task, seed, lr, rho, 3)  # the first snapshot is the run after 3 steps
            assert torch.allclose(arm.snapshots[0], FlatParams(early.model).vector, atol=1e-6)
            assert arm.train_loss[0] == pytest.approx(early.final["train_loss"], rel=1e-5)
            stored = store.load_run(arm.run.id)
            assert stored.status == "finished" and stored.config["optimizer"] == ("sam" if rho else "sgd")
            assert re.fullmatch(
                r"sam-flatness-k-p[0-9a-f]{12}", stored.config["population"]["id"]
            )  # content-addressed
            assert stored.config["population"]["mode"] == ("sam" if rho else "stacked")
            assert stored.config["population"]["forward"] == "stacked"  # pinned, not timed at run time
            assert stored.config["lr"] == lr and stored.config["hparams"].get("rho") == (rho or None)
            assert [k for k, _ in stored.metrics("train_loss")] == [0, 3, 6, 9]


def test_arm_refusals():
    task = tasks.get("mnist1d_mlp", width=8)
    ctx = StudyContext(name="sam-flatness", out=None, store=None, quick=True)
    with pytest.raises(ValueError, match="all SGD"):
        run_arm(ctx, task, [(0, 0.1, 0.0), (1, 0.1, 0.05)], **ARM)
    with pytest.raises(ValueError, match="evals must divide steps"):
        run_arm(ctx, task, [(0, 0.1, 0.0)], evals=4, **ARM)
    with pytest.raises(ValueError, match="at least one member"):
        run_arm(ctx, task, [], **ARM)


def test_tuning_task_splits_the_training_set():
    task = tasks.get("mnist1d_mlp", width=8, label_noise=0.2)
    split = tuning_task(task, 0.2)
    x, y = task.train_data[:2]
    n = len(y) - round(0.2 * len(y))
    assert torch.equal(split.train_data[0], x[:n]) and torch.equal(split.train_data[1], y[:n])
    assert torch.equal(split.val_data[0], x[n:]) and torch.equal(split.val_data[1], y[n:])
    model = split.make_model(0)  # the evaluation's accuracy is the held-out part's
    with torch.no_grad():
        want = float((model(x[n:]).argmax(-1) == y[n:]).float().mean())
    assert split.evaluate(model)["accuracy"] == pytest.approx(want)
    for bad in (0.0, 1.0, 1e-9):
        with pytest.raises(ValueError, match="val_fraction"):
            tuning_task(task, bad)


def test_tiny_run_writes_a_well_formed_summary(tmp_path):
    res = studies.run(
        "sam-flatness", quick=True, out=tmp_path, store=tmp_path / "runs.db", progress=False, seeds=2, steps=12,
        lrs=[0.02, 0.05], rhos=[0.05, 0.2], samples=100, evals=3, points=5, grid=3,
    )  # fmt: skip
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [c["name"] for c in summary["claims"]] == [p.name for p in PREDICTIONS]
    for c in summary["claims"]:
        assert c["verdict"] in VERDICTS and len(c["values"]) == 2 and c["evidence"]
    assert len(summary["anchors"]) == 2
    for a in summary["anchors"]:
        assert a["verdict"] in ANCHOR_VERDICTS and a["n"] == 2 and a["published"] > 1
    assert {c["name"] for c in summary["checks"]} == {
        "positive curvature at the solutions",
        "equal-loss match",
    }
    assert set(res.summary["numbers"]["tuning"]) == {"clean", "noisy"}
    for stem in ("sam_flatness", "sam_flatness_planes"):
        assert (tmp_path / f"{stem}.png").exists()
    with Store(tmp_path / "runs.db") as store:  # every run is in the store, a member of its population
        runs = [store.load_run(r["id"]) for r in store.list_runs()]
    assert runs and all(r.status == "finished" and r.config["population"]["size"] >= 1 for r in runs)
    # the evaluation arms (every noise level's arms on 2 seeds) are evaluated every 4 steps, the tuning runs at the end
    evaluated = [r for r in runs if r.config["eval_every"] == 4]
    assert len(evaluated) == 2 * len(res.summary["numbers"]["solutions"])
    assert {r.config["optimizer"] for r in evaluated} == {"sgd", "sam"}


def test_an_equal_loss_point_at_the_end_is_no_equal_loss_point():
    """Version 3: a run that reaches the other's final loss only at its last snapshot (or never) has no equal-loss
    weights distinct from its final ones: no index (the seed gets no value instead of repeating flatter_*)."""
    losses = [2.0, 1.0, 0.6, 0.5, 0.4]
    assert distinct_equal_loss_index(losses, 0.6) == 2
    assert distinct_equal_loss_index(losses, 0.45) is None  # first reached at the end
    assert distinct_equal_loss_index(losses, 0.01) is None  # never reached
    eq = {p.name: p for p in PREDICTIONS}
    assert eq["flatter_equal_loss_noisy"].version == eq["flatter_equal_loss_clean"].version == 3
