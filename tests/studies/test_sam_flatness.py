"""sam-flatness: each claim's decision on hand-made values, the equal-loss matching, the batched SGD/SAM trainer
against descentlab's optimizers, and a tiny end-to-end run with a well-formed summary (whatever the verdicts)."""

from __future__ import annotations

import json

import pytest
import torch

import descentlab.studies as studies
from descentlab import tasks
from descentlab.landscape.projections import FlatParams
from descentlab.studies.claims import ANCHOR_VERDICTS, VERDICTS, judge
from descentlab.studies.sam_flatness import PREDICTIONS, Job, equal_loss_index, train_batch
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


def test_batched_sgd_and_sam_are_descentlabs_optimizers():
    task = tasks.get("mnist1d_mlp", width=8, label_noise=0.2)
    data = tuple(task.train_data[:2])
    jobs = [Job(data, 3, 0.05, 0.0), Job(data, 4, 0.02, 0.1), Job(data, 5, 0.1, 0.5)]
    res = train_batch(task, jobs, steps=9, batch_size=50, momentum=0.9, weight_decay=5e-4, evals=3)
    assert res.steps == [3, 6, 9] and all(len(s) == 3 for s in res.snapshots)
    for job, model, losses in zip(jobs, res.models, res.train_loss):
        hp = {"momentum": 0.9, "weight_decay": 5e-4} | ({"rho": job.rho} if job.rho else {})
        ref = train(
            task, optimizer="sam" if job.rho else "sgd", lr=job.lr, hparams=hp, steps=9, batch_size=50,
            seed=job.seed, eval_every=9, device="cpu", store=False, progress=False,
        )  # fmt: skip
        assert torch.allclose(FlatParams(ref.model).vector, FlatParams(model).vector, atol=1e-6)
        assert losses[-1] == pytest.approx(ref.final["train_loss"], rel=1e-5)


def test_tiny_run_writes_a_well_formed_summary(tmp_path):
    res = studies.run(
        "sam-flatness", quick=True, out=tmp_path, store=False, progress=False, seeds=2, steps=12,
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
