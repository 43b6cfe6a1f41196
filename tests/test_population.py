"""Populations (``descentlab.train_many``): every member is the run ``train()`` would make, every registered
optimizer either trains as a population or is refused clearly, the store holds every member, and a population
resumes exactly."""

from __future__ import annotations

import math
import os
import signal

import pytest
import torch
from torch import nn

from descentlab import optim, tasks
from descentlab.store import Store
from descentlab.tasks.base import Task
from descentlab.train import Callback, train
from descentlab.train.population import REFUSED, describe_modes, population_mode, resume_many, train_many

STEPS, EVAL = 8, 4
BASE_LR = {"adadelta": 1.0, "sgd": 0.01, "asgd": 0.01, "rprop": 1e-3, "schedulefree_sgd": 0.1, "normalized_sgd": 0.01,
           "steepest": 0.01, "lbfgs": 0.1, "adafactor": 1e-2, "prodigy": 1.0, "dadapt_adam": 1.0}  # fmt: skip
# Muon's Newton-Schulz in bf16 turns gradient rounding (a batched matmul rounds differently) into 1e-3 differences:
# the parity check runs it in fp32, where the population is exact to rounding.
HPARAMS = {"muon": {"ns_dtype": torch.float32}, "sgd": {"momentum": 0.9, "nesterov": True}}
# With one vmapped forward the gradients round differently from train()'s (~1e-7); matrix roots and bf16
# orthogonalization amplify that to ~1e-5..1e-4 in 8 steps. forward="sequential" computes train()'s gradients exactly.
# Shampoo and SOAP (inverse matrix roots, eigenbases) amplify most: ~1e-3 after 8 steps.
VMAP_TOLERANCE = {  # bf16 Newton-Schulz (pytorch_optimizer's Muon family) and eigenbases amplify vmap's rounding
    "normuon": 1e-3,
    "adamuon": 1e-3,
    "po_adamuon": 1e-3,
    "po_normuon": 1e-3,  # 1.5e-5 on an AVX2 EPYC (bf16 emulated), < 1e-5 on an AVX-512 one
    "scion": 1e-3,
    "shampoo": 2e-2,
    "soap": 2e-2,
}


def _flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def _history(run, name="batch_loss") -> torch.Tensor:
    return torch.tensor([v for _, v in run.metrics(name)], dtype=torch.float64)


@pytest.fixture(scope="module")
def mlp_task() -> Task:
    return tasks.get("mnist1d_mlp")


def _members(lr: float) -> list[dict]:
    return [{"seed": s, "lr": x} for x in (lr, 2 * lr) for s in (0, 1)]


@pytest.mark.parametrize("forward", ["vmap", "sequential"])
@pytest.mark.parametrize("name", optim.available())
def test_every_optimizer_matches_train_or_is_refused(name: str, forward: str, mlp_task: Task) -> None:
    lr = BASE_LR.get(name, 1e-3)
    hp = HPARAMS.get(name, {})
    members = _members(lr)
    try:
        mode = population_mode(name, hp)
    except ValueError as exc:
        assert name in REFUSED and name in str(exc)
        with pytest.raises(ValueError, match=name):
            train_many(mlp_task, name, members, hparams=hp, steps=STEPS, store=False, progress=False)
        return
    runs = train_many(mlp_task, name, members, hparams=hp, steps=STEPS, eval_every=EVAL, store=False, progress=False,
                      threads=1, forward=forward)  # fmt: skip
    assert [r.config["population"]["mode"] for r in runs] == [mode] * 4
    assert [r.config["population"]["forward"] for r in runs] == [forward] * 4
    for m, run in zip(members, runs):
        single = train(mlp_task, name, lr=m["lr"], hparams=hp, seed=m["seed"], steps=STEPS, eval_every=EVAL,
                       store=False, progress=False, threads=1)  # fmt: skip
        assert run.status == single.status
        assert len(run.metrics("batch_loss")) == len(single.metrics("batch_loss")) == STEPS
        tol = VMAP_TOLERANCE.get(name, 1e-5) if forward != "sequential" else 1e-5
        assert _rel(_history(run), _history(single)) < tol, name
        assert _rel(_history(run, "loss"), _history(single, "loss")) < tol, name
        assert _rel(_flat(run.model), _flat(single.model)) < tol, name
        assert sorted(run.final) == sorted(single.final)


@pytest.mark.parametrize("name", ["sgd", "adamw", "sam", "muon", "lookahead"])
def test_the_stacked_mlp_forward_matches_train(name: str, mlp_task: Task) -> None:
    """forward="stacked" (one baddbmm per layer for all members) gives train()'s runs, in every optimizer mode."""
    test_every_optimizer_matches_train_or_is_refused(name, "stacked", mlp_task)


def test_stacked_forward_is_refused_where_the_model_is_not_an_mlp() -> None:
    with pytest.raises(ValueError, match="forward='stacked'"):
        train_many(
            "mnist1d_cnn", "adam", [{"seed": 0}], steps=1, store=False, progress=False, forward="stacked"
        )
    with pytest.raises(ValueError, match="forward must be one of"):
        train_many("mnist1d_mlp", "adam", [{"seed": 0}], steps=1, store=False, progress=False, forward="fast")


def test_members_differ_by_seed_and_lr_and_share_batches_by_seed(mlp_task: Task) -> None:
    runs = train_many(mlp_task, "adam", _members(1e-3), steps=3, store=False, progress=False, threads=1)
    p = [_flat(r.model) for r in runs]
    assert not torch.equal(p[0], p[1]) and not torch.equal(p[0], p[2])
    # Same seed, other lr: same initial model and the same first batch, so the same first batch loss.
    assert runs[0].metrics("batch_loss")[0] == runs[2].metrics("batch_loss")[0]
    assert runs[0].metrics("batch_loss")[0] != runs[1].metrics("batch_loss")[0]


def test_a_diverging_member_is_frozen_and_the_others_go_on(mlp_task: Task) -> None:
    members = [{"seed": 0, "lr": 1e-3}, {"seed": 0, "lr": 1e6}, {"seed": 1, "lr": 1e-3}]
    runs = train_many(
        mlp_task, "sgd", members, steps=12, eval_every=4, store=False, progress=False, threads=1
    )
    assert [r.status for r in runs] == ["finished", "diverged", "finished"]
    single = train(
        mlp_task, "sgd", lr=1e6, seed=0, steps=12, eval_every=4, store=False, progress=False, threads=1
    )
    assert single.status == "diverged"
    assert runs[1].final["diverged_step"] == single.final["diverged_step"]
    ok = train(
        mlp_task, "sgd", lr=1e-3, seed=1, steps=12, eval_every=4, store=False, progress=False, threads=1
    )
    assert _rel(_flat(runs[2].model), _flat(ok.model)) < 1e-5


def test_stop_when_ends_each_member_on_its_own(mlp_task: Task) -> None:
    members = [{"seed": 0, "lr": 3e-3}, {"seed": 0, "lr": 1e-6}]
    first = train_many(
        mlp_task, "adam", members, steps=40, eval_every=10, store=False, progress=False, threads=1
    )
    target = first[0].metrics("loss")[2][1]  # member 0's loss at step 20
    runs = train_many(mlp_task, "adam", members, steps=40, eval_every=10, store=False, progress=False, threads=1,
                      stop_when=lambda m: m["loss"] <= target)  # fmt: skip
    assert runs[0].final["step"] == 20 and "stop_when" in runs[0].note
    assert runs[1].final["step"] == 40 and runs[1].status == "finished"


def test_refusals_name_the_value(mlp_task: Task) -> None:
    with pytest.raises(ValueError, match="lbfgs"):
        train_many(mlp_task, "lbfgs", [{"seed": 0}], steps=2, store=False, progress=False)
    with pytest.raises(ValueError, match="members is empty"):
        train_many(mlp_task, "adam", [], steps=2, store=False, progress=False)
    with pytest.raises(TypeError, match="member 0"):
        train_many(mlp_task, "adam", [3], steps=2, store=False, progress=False)
    with pytest.raises(ValueError, match="member 1 lr"):
        train_many(
            mlp_task, "adam", [{"seed": 0}, {"seed": 1, "lr": -1.0}], steps=2, store=False, progress=False
        )
    with pytest.raises(ValueError, match="seed"):
        train_many(mlp_task, "adam", [{"seed": -3}], steps=2, store=False, progress=False)
    with pytest.raises(ValueError, match="weight_decay"):
        train_many(
            mlp_task, "adamw", [{"seed": 0, "weight_decay": math.nan}], steps=2, store=False, progress=False
        )


def test_describe_modes_covers_the_registry() -> None:
    modes = describe_modes()
    assert set(modes) == set(optim.available())
    assert modes["adam"] == "stacked" and modes["muon"] == "member" and modes["sam"] == "sam"
    assert modes["lbfgs"].startswith("refused")


def test_members_land_in_the_store_with_their_population(tmp_path, mlp_task: Task) -> None:
    db = tmp_path / "s.db"
    runs = train_many(mlp_task, "adam", _members(1e-3), steps=4, eval_every=2, store=db, population_id="pop",
                      progress=False, threads=1, forward="vmap")  # fmt: skip
    with Store(db) as st:
        ids = sorted(r["id"] for r in st.list_runs())
        assert ids == ["pop-0", "pop-1", "pop-2", "pop-3"]
        for i, run in enumerate(runs):
            stored = st.load_run(f"pop-{i}")
            assert stored.status == "finished"
            assert stored.config["population"] == {
                "id": "pop",
                "member": i,
                "size": 4,
                "mode": "stacked",
                "forward": "vmap",
            }
            assert stored.config["lr"] == run.config["lr"] and stored.config["seed"] == run.config["seed"]
            assert stored.metrics("batch_loss") == run.metrics("batch_loss")
            assert stored.final["loss"] == run.final["loss"]
            assert (st.checkpoint_dir(f"pop-{i}") / "final.pt").exists()
    with pytest.raises(ValueError, match="pop-0"):
        train_many(mlp_task, "adam", _members(1e-3), steps=4, store=db, population_id="pop", progress=False)


def _interrupt_at(step: int, sig: int = signal.SIGINT):
    def cb(ctx):
        if ctx.step == step:
            os.kill(os.getpid(), sig)

    return Callback(cb, every=1)


@pytest.mark.parametrize("name", ["adam", "muon", "sam"])
def test_ctrl_c_then_resume_is_bit_identical(tmp_path, mlp_task: Task, name: str) -> None:
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT is not Python's default handler here (a background shell ignores it)")
    kw = dict(steps=12, eval_every=4, progress=False, threads=1, forward="vmap")
    members = _members(BASE_LR.get(name, 1e-3))
    whole = train_many(mlp_task, name, members, store=tmp_path / "a.db", population_id="p", **kw)
    cut = train_many(mlp_task, name, members, store=tmp_path / "b.db", population_id="p", checkpoint_every=100,
                     callbacks=[_interrupt_at(6)], **kw)  # fmt: skip
    assert {r.status for r in cut} == {"interrupted"}
    assert all(r.final["step"] == 6 for r in cut)
    again = resume_many("p-2", store=tmp_path / "b.db", progress=False)
    for a, b in zip(whole, again):
        assert b.status == "finished"
        assert torch.equal(_flat(a.model), _flat(b.model))
    with Store(tmp_path / "b.db") as st:
        for a in whole:
            assert st.load_run(a.id).metrics("batch_loss") == a.metrics("batch_loss")
            assert st.load_run(a.id).metrics("loss") == a.metrics("loss")


def test_resume_keeps_a_member_that_had_already_ended(tmp_path, mlp_task: Task) -> None:
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT is not Python's default handler here")
    members = [{"seed": 0, "lr": 1e-3}, {"seed": 0, "lr": 1e6}]
    kw = dict(steps=12, eval_every=4, progress=False, threads=1, forward="vmap")
    whole = train_many(mlp_task, "sgd", members, store=tmp_path / "a.db", population_id="p", **kw)
    train_many(
        mlp_task,
        "sgd",
        members,
        store=tmp_path / "b.db",
        population_id="p",
        callbacks=[_interrupt_at(8)],
        **kw,
    )
    with Store(tmp_path / "b.db") as st:
        assert st.load_run("p-1").status == "diverged" and st.load_run("p-0").status == "interrupted"
    again = resume_many("p-0", store=tmp_path / "b.db", progress=False)
    assert [r.status for r in again] == ["finished", "diverged"]
    assert torch.equal(_flat(whole[0].model), _flat(again[0].model))


def test_resume_refuses_a_checkpoint_of_another_population(tmp_path, mlp_task: Task) -> None:
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT is not Python's default handler here")
    kw = dict(steps=8, eval_every=4, progress=False, threads=1, callbacks=[_interrupt_at(4)])
    train_many(mlp_task, "adam", _members(1e-3), store=tmp_path / "a.db", population_id="p", **kw)
    with Store(tmp_path / "a.db") as st:
        folder = st.checkpoint_dir("p-0")
        ck = torch.load(folder / "population.pt", weights_only=False)
        ck["population"] = "q"
        torch.save(ck, folder / "population.pt")
        before = [(r["id"], r["status"]) for r in st.list_runs()]
    with pytest.raises(ValueError, match="another population"):
        resume_many("p-0", store=tmp_path / "a.db", progress=False)
    with Store(tmp_path / "a.db") as st:
        assert [(r["id"], r["status"]) for r in st.list_runs()] == before


class _DropoutTask(Task):
    pass


def test_dropout_members_draw_their_own_masks() -> None:
    x = torch.randn(64, 5, generator=torch.Generator().manual_seed(0))
    y = (x[:, 0] > 0).long()

    def factory(seed: int) -> nn.Module:
        return nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 2))

    task = Task("dropout_toy", (x, y), (x, y), factory, default_batch_size=16)
    runs = train_many(
        task, "adam", [{"seed": 0}, {"seed": 0}], steps=3, store=False, progress=False, threads=1
    )
    single = train(task, "adam", seed=0, steps=3, store=False, progress=False, threads=1)
    # The same init and evaluation (no dropout in eval mode) at step 0; the training masks differ per member.
    assert runs[0].metrics("loss")[0] == runs[1].metrics("loss")[0] == single.metrics("loss")[0]
    assert runs[0].metrics("batch_loss")[0] != runs[1].metrics("batch_loss")[0]


@pytest.mark.parametrize("task_name", tasks.available())
def test_every_task_trains_as_a_population(task_name: str) -> None:
    """Every registered task runs as a population whose members are train()'s runs (modular's model switches to its
    plain forward path in the population: torch.unique has no batching rule)."""
    task = tasks.get(task_name)
    kw = dict(steps=3, eval_every=3, store=False, progress=False, threads=1)
    runs = train_many(task, "adam", [{"seed": 0}, {"seed": 1}], forward="vmap", **kw)
    single = train(task, "adam", seed=1, **kw)
    assert runs[1].status == single.status == "finished"
    assert _rel(_flat(runs[1].model), _flat(single.model)) < 1e-5
    assert _rel(_history(runs[1]), _history(single)) < 1e-5


def test_sigterm_stops_the_population_like_ctrl_c_and_resumes_exactly(tmp_path, mlp_task: Task) -> None:
    if signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        pytest.skip("SIGTERM has a handler here")
    kw = dict(steps=10, eval_every=5, progress=False, threads=1, forward="vmap")
    whole = train_many(mlp_task, "adamw", _members(1e-3), store=tmp_path / "a.db", population_id="p", **kw)
    cut = train_many(mlp_task, "adamw", _members(1e-3), store=tmp_path / "b.db", population_id="p",
                     callbacks=[_interrupt_at(3, signal.SIGTERM)], **kw)  # fmt: skip
    assert {r.status for r in cut} == {"interrupted"} and {r.signal for r in cut} == {signal.SIGTERM}
    assert "SIGTERM" in cut[0].note
    again = resume_many("p-0", store=tmp_path / "b.db", progress=False)
    for a, b in zip(whole, again):
        assert torch.equal(_flat(a.model), _flat(b.model))


def test_timed_forward_tries_each_way_on_real_steps_then_keeps_one(mlp_task: Task) -> None:
    """forward="timed": the first steps try sequential, vmap and the stacked MLP (each twice, no extra passes); the
    members are still train()'s runs, and the way kept is reported with the Run."""
    kw = dict(steps=10, eval_every=5, store=False, progress=False, threads=1)
    runs = train_many(mlp_task, "adamw", _members(1e-3), forward="timed", **kw)
    assert runs[0].config["population"]["forward"] == "timed"
    assert runs[0].config["population"]["forward_used"] in ("sequential", "vmap", "stacked")
    for m, run in zip(_members(1e-3), runs):
        single = train(mlp_task, "adamw", lr=m["lr"], seed=m["seed"], **kw)
        assert _rel(_flat(run.model), _flat(single.model)) < 1e-5


@pytest.mark.parametrize(
    ("task_name", "want"),
    [("mnist1d_mlp", "stacked"), ("logreg", "vmap"), ("rosenbrock", "vmap"), ("mnist1d_cnn", "sequential")],
)
def test_auto_forward_is_a_rule_on_the_model_the_same_every_run(task_name: str, want: str) -> None:
    """forward="auto" (the default) decides by structure, not by timing: a study's numbers reproduce run to run."""
    kw = dict(steps=2, eval_every=2, store=False, progress=False, threads=1)
    runs = train_many(tasks.get(task_name), "adam", [{"seed": 0}, {"seed": 1}], **kw)
    assert runs[0].config["population"]["forward"] == "auto"
    assert runs[0].config["population"]["forward_used"] == want
    one = train_many(tasks.get(task_name), "adam", [{"seed": 0}], **kw)
    assert one[0].config["population"]["forward_used"] == "sequential"  # one member runs as train() does


def test_sam_perturbs_the_stacked_parameters_at_once_with_each_members_rho(
    mlp_task: Task, monkeypatch
) -> None:
    """Plain SAM (p = 2) in a batched forward takes its first step for all members on the stacked parameters (SAM's
    own first_step is not called), each member at its own rho, and still gives train()'s runs; ASAM and the
    member-by-member forward keep SAM's own first step."""
    from descentlab.optim.sam import SAM

    members = [{"seed": s, "lr": 0.05, "hparams": {"rho": r}} for s, r in ((0, 0.01), (1, 0.2), (0, 0.2))]
    calls = {"n": 0}
    own = SAM.first_step

    def counted(self, *a, **k):
        calls["n"] += 1
        return own(self, *a, **k)

    monkeypatch.setattr(SAM, "first_step", counted)
    runs = train_many(mlp_task, "sam", members, steps=STEPS, eval_every=EVAL, store=False, progress=False,
                      threads=1, forward="vmap")  # fmt: skip
    assert calls["n"] == 0
    for m, run in zip(members, runs):
        single = train(mlp_task, "sam", lr=m["lr"], hparams=m["hparams"], seed=m["seed"], steps=STEPS,
                       eval_every=EVAL, store=False, progress=False, threads=1)  # fmt: skip
        assert _rel(_history(run), _history(single)) < 1e-5
        assert _rel(_flat(run.model), _flat(single.model)) < 1e-5
    assert _rel(_flat(runs[0].model), _flat(runs[2].model)) > 1e-4  # same seed, other rho: another run
    calls["n"] = 0  # train()'s own SAM steps counted above
    train_many(
        mlp_task, "sam", members[:2], steps=2, store=False, progress=False, threads=1, forward="sequential"
    )
    assert calls["n"] == 2 * 2
    train_many(mlp_task, "asam", members[:2], steps=2, store=False, progress=False, threads=1, forward="vmap")
    assert calls["n"] == 2 * 2 + 2 * 2
