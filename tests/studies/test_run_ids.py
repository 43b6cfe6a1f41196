"""A study's run and population ids are addressed by what they train: the same training is reused from the store
(in another execution, or in the next block of seeds of a sequential run) and a different one never overwrites it."""

from __future__ import annotations

import re

from descentlab.store import Store
from descentlab.studies import StudyContext
from descentlab.train import Callback

KW = dict(steps=6, eval_every=3, seed=1, lr=0.1, optimizer="sgd")


def test_the_same_training_has_the_same_id_and_is_reused(tmp_path) -> None:
    with Store(tmp_path / "s.db") as st:
        ctx = StudyContext("ids", tmp_path, st, True, key="k")
        first = ctx.train("logreg", **KW)
        assert re.fullmatch(r"ids-k-[0-9a-f]{12}", first.id)
        again = ctx.train("logreg", **KW)  # same execution, same training: the stored run, not a new one
        assert again.id == first.id and ctx.reused == [first.id]
        other = ctx.train("logreg", **{**KW, "lr": 0.05})
        assert other.id != first.id and st.load_run(first.id).config["lr"] == 0.1
        later = StudyContext("ids", tmp_path, st, True, key="k")  # a later execution, calls in another order
        assert later.train("logreg", **{**KW, "lr": 0.05}).id == other.id
        assert later.train("logreg", **KW).id == first.id
        assert sorted(later.reused) == sorted([first.id, other.id])


def test_callbacks_runs_are_trained_again_under_their_own_ids(tmp_path) -> None:
    seen: list[int] = []
    cb = [Callback(lambda ctx: seen.append(ctx.step), every=3)]
    with Store(tmp_path / "s.db") as st:
        ctx = StudyContext("ids", tmp_path, st, True, key="k")
        a = ctx.train("logreg", callbacks=cb, **KW)
        b = ctx.train("logreg", callbacks=cb, **KW)
        assert b.id == f"{a.id}-2" and st.run_header(a.id) is not None and st.run_header(b.id) is not None
        assert ctx.reused == [] and len(seen) >= 2


def _norm(ctx) -> dict[str, float]:
    return {"w_norm": float(sum(p.detach().norm() ** 2 for p in ctx.model.parameters()) ** 0.5)}


def _other(ctx) -> dict[str, float]:
    return {"w_norm": 0.0}


def test_a_recorded_callback_run_is_reused_with_its_logged_metrics(tmp_path) -> None:
    with Store(tmp_path / "s.db") as st:
        ctx = StudyContext("ids", tmp_path, st, True, key="k")
        a = ctx.train("logreg", callbacks=[Callback(_norm, every=1, recorded=True)], **KW)
        logged = a.metrics("w_norm")
        assert [k for k, _ in logged] == list(range(1, 7)) and all(v > 0 for _, v in logged)
        plain = ctx.train(
            "logreg", **KW
        )  # the same training without the callback: another run (other metrics)
        assert plain.id != a.id and plain.metrics("w_norm") == []
        other_cb = ctx.train("logreg", callbacks=[Callback(_other, every=1, recorded=True)], **KW)
        assert other_cb.id not in (a.id, plain.id)
        later = StudyContext(
            "ids", tmp_path, st, True, key="k"
        )  # the next block or execution: not trained again
        again = later.train("logreg", callbacks=[Callback(_norm, every=1, recorded=True)], **KW)
        assert again.id == a.id and later.reused == [a.id] and again.metrics("w_norm") == logged


def test_recorded_callable_objects_with_other_settings_are_other_trainings(tmp_path) -> None:
    from descentlab.studies.batch_size import FirstHit

    with Store(tmp_path / "s.db") as st:
        ctx = StudyContext("ids", tmp_path, st, True, key="k")
        a = ctx.train("logreg", callbacks=[Callback(FirstHit(0.5), every=1, recorded=True)], **KW)
        b = ctx.train("logreg", callbacks=[Callback(FirstHit(0.4), every=1, recorded=True)], **KW)
        c = ctx.train("logreg", callbacks=[Callback(FirstHit(0.5), every=2, recorded=True)], **KW)
        again = ctx.train("logreg", callbacks=[Callback(FirstHit(0.5), every=1, recorded=True)], **KW)
        assert len({a.id, b.id, c.id}) == 3 and again.id == a.id and ctx.reused == [a.id]


def test_closures_with_other_values_are_other_trainings(tmp_path) -> None:
    def stop_at(x: float):
        return lambda metrics: metrics.get("loss", 1e9) < x

    with Store(tmp_path / "s.db") as st:
        ctx = StudyContext("ids", tmp_path, st, True, key="k")
        a = ctx.train("logreg", stop_when=stop_at(0.5), **KW)
        b = ctx.train("logreg", stop_when=stop_at(0.25), **KW)
        assert a.id != b.id and ctx.reused == []


def test_population_ids_follow_the_members(tmp_path) -> None:
    members = [{"seed": s, "lr": lr} for s in (0, 1) for lr in (0.1, 0.05)]
    with Store(tmp_path / "s.db") as st:
        ctx = StudyContext("ids", tmp_path, st, True, key="k")
        runs = ctx.train_many("logreg", "sgd", members, steps=6, eval_every=3)
        pop = runs[0].config["population"]["id"]
        assert re.fullmatch(r"ids-k-p[0-9a-f]{12}", pop) and [r.id for r in runs] == [
            f"{pop}-{i}" for i in range(4)
        ]
        other = ctx.train_many("logreg", "sgd", members[:2], steps=6, eval_every=3)
        assert other[0].config["population"]["id"] != pop
        later = StudyContext("ids", tmp_path, st, True, key="k")
        again = later.train_many("logreg", "sgd", members, steps=6, eval_every=3)
        assert [r.id for r in again] == [r.id for r in runs] and later.reused == [r.id for r in runs]
        assert [r.final["loss"] for r in again] == [r.final["loss"] for r in runs]


def test_a_task_with_other_data_is_another_training(tmp_path) -> None:
    import dataclasses

    from descentlab import tasks

    task = tasks.get("logreg")
    x, y = task.train_data[:2]
    half = dataclasses.replace(task, train_data=(x[: len(y) // 2], y[: len(y) // 2]))  # same name and config
    with Store(tmp_path / "s.db") as st:
        ctx = StudyContext("ids", tmp_path, st, True, key="k")
        a = ctx.train(task, **KW)
        b = ctx.train(half, **KW)
        assert a.id != b.id and ctx.reused == []
        assert StudyContext("ids", tmp_path, st, True, key="k").train(tasks.get("logreg"), **KW).id == a.id
