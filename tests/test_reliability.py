"""Determinism, Ctrl-C handling and the `--set` grammar (property-based); nothing lost (docs/reliability.md):
run ids are names, no silent overwrite, resume never corrupts, Ctrl-C resumes exactly, read-only stores read."""

from __future__ import annotations

import copy
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import descentlab
import descentlab.store as store_mod
from descentlab.cli import UsageError, main, parse_sets, parse_value
from descentlab.store import RunExistsError
from descentlab.train import Callback, checkpoint_dir, load_checkpoint


@pytest.mark.parametrize("name, kw", [("adam", {}), ("muon", {}), ("sam", {}), ("schedulefree_adamw", {})])
def test_same_seed_twice_gives_identical_metrics(name, kw):
    runs = [
        descentlab.train(
            "digits_mlp",
            optimizer=name,
            lr=1e-2,
            hparams=kw,
            steps=30,
            eval_every=10,
            batch_size=32,
            seed=3,
            store=False,
            progress=False,
            device="cpu",
        )
        for _ in range(2)
    ]
    for metric in ("batch_loss", "loss", "accuracy"):
        assert runs[0].metrics(metric) == runs[1].metrics(metric)
    other = descentlab.train(
        "digits_mlp",
        optimizer=name,
        lr=1e-2,
        hparams=kw,
        steps=30,
        eval_every=10,
        batch_size=32,
        seed=4,
        store=False,
        progress=False,
        device="cpu",
    )
    assert other.metrics("batch_loss") != runs[0].metrics("batch_loss")


_CTRL_C = textwrap.dedent(
    """
    import os, signal, sys
    import descentlab
    from descentlab.train import Callback

    def interrupt(ctx):
        if ctx.step == 17:
            signal.raise_signal(signal.SIGINT)  # in this (the main) thread: os.kill may land on a worker thread

    run = descentlab.train("digits_mlp", optimizer="adam", steps=40, eval_every=10, batch_size=32, store=sys.argv[1],
                           run_id="ctrlc", callbacks=[Callback(interrupt, every=1)], progress=False, device="cpu")
    print(run.status)
    """
)


def test_ctrl_c_marks_interrupted_and_leaves_it_resumable(tmp_path):
    db = tmp_path / "s.db"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", _CTRL_C, str(db)], capture_output=True, text=True, timeout=300, env=env
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("interrupted")
    run = descentlab.load_run("ctrlc", db)
    assert run.status == "interrupted" and "resume" in run.note
    code = (
        "import descentlab,sys; print(descentlab.resume('ctrlc', store=sys.argv[1], progress=False).status)"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, str(db)], capture_output=True, text=True, timeout=300, env=env
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "finished"
    done = descentlab.load_run("ctrlc", db)
    assert done.status == "finished" and done.final["step"] == 40


_keys = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
_scalars = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=64).filter(lambda f: f == f),
    st.booleans(),
)


def _text(v):
    return str(v).lower() if isinstance(v, bool) else repr(v)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_keys, st.one_of(_scalars, st.tuples(_scalars, _scalars)), max_size=5))
def test_set_grammar_round_trips(values):
    items = [
        f"{k}={','.join(_text(x) for x in v) if isinstance(v, tuple) else _text(v)}"
        for k, v in values.items()
    ]
    parsed = parse_sets(items)
    assert parsed.keys() == values.keys()
    for k, v in values.items():
        got = parsed[k]
        if isinstance(v, tuple):
            assert isinstance(got, tuple) and len(got) == 2
            for a, b in zip(got, v):
                assert a == b and type(a) is type(b) or (isinstance(b, float) and float(a) == b)
        else:
            assert got == v and (type(got) is type(v) or (isinstance(v, float) and float(got) == v))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=20))
def test_set_grammar_never_crashes(text):
    try:
        parse_sets([text])
    except UsageError as exc:
        assert "\n" not in str(exc)


@given(st.text(alphabet='[{"]}:,1', min_size=1, max_size=6).filter(lambda t: t[0] in '[{"'))
def test_malformed_json_values_are_usage_errors(text):
    try:
        expected = json.loads(text)
    except json.JSONDecodeError:
        with pytest.raises(UsageError, match="malformed JSON"):
            parse_value(text)
    else:
        assert parse_value(text) == expected


# -- Ctrl-C at any moment, then resume: bit-identical to a run never interrupted ------------------------------------

CTRL_C_STEPS, CTRL_C_EVERY = 40, 7


def _toy_run(task, store, run_id, **kw):
    return descentlab.train(task, optimizer="sgd", lr=0.05, hparams={"momentum": 0.9}, steps=CTRL_C_STEPS,
                            eval_every=10, store=store, run_id=run_id, checkpoint_every=CTRL_C_EVERY,
                            progress=False, device="cpu", **kw)  # fmt: skip


def _interrupted_run(toy, where, at, store, n_signals=1):
    """Train the toy task and press Ctrl-C (SIGINT in this thread) ``n_signals`` times at call ``at`` of ``where``:
    inside the loss (mid-step), right after the optimizer's update (before the step is counted), inside an
    evaluation, or in a callback."""
    task, calls = copy.copy(toy), {"n": 0}

    def hit():
        calls["n"] += 1
        if calls["n"] == at:
            for _ in range(n_signals):
                signal.raise_signal(signal.SIGINT)

    callbacks = []
    if where == "loss":
        task.loss = lambda model, batch, _f=task.loss: (hit(), _f(model, batch))[1]
    elif where == "evaluate":
        task.evaluate = lambda model, _f=task.evaluate: (hit(), _f(model))[1]
    elif where == "after_update":

        def hook_once(ctx):
            if ctx.step == 1:
                ctx.optimizer.register_step_post_hook(lambda *a: hit())

        callbacks.append(Callback(hook_once, every=1))
        calls["n"] = 1  # the first update happened before the hook existed
    else:
        callbacks.append(Callback(lambda ctx: hit(), every=1))
    return _toy_run(task, store, "victim", callbacks=callbacks)


def _ctrl_c_trials(toy_task, tmp_path, places, seed):
    ref = _toy_run(copy.copy(toy_task), tmp_path / "ref.db", "ref")
    rng = random.Random(seed)
    for trial, where in enumerate(places):
        store = tmp_path / f"t{trial}" / "s.db"
        at = rng.randint(2, 5) if where == "evaluate" else rng.randint(2, CTRL_C_STEPS - 1)
        run = _interrupted_run(toy_task, where, at, store)
        assert run.status == "interrupted", (where, at)
        with descentlab.Store(store) as st:
            ck = load_checkpoint(checkpoint_dir(st, "victim") / "last.pt")
            assert ck["step"] == run.final["step"]  # Ctrl-C checkpoints the step it reports
        resumed = _toy_run(copy.copy(toy_task), store, "victim", _resume_from=ck)
        assert resumed.status == "finished"
        for a, b in zip(ref.model.parameters(), resumed.model.parameters()):
            assert torch.equal(a, b), f"trial {trial}: Ctrl-C in {where} at call {at} then resume differs"
        stored = descentlab.load_run("victim", store)
        for metric in ("loss", "accuracy", "batch_loss"):
            assert stored.metrics(metric) == ref.metrics(metric), (trial, where, at, metric)


def test_ctrl_c_at_random_moments_then_resume_is_bit_identical(toy_task, tmp_path):
    # inside the loss and right after the update are mid-step: before the fix these resumed off by a batch / a step
    _ctrl_c_trials(toy_task, tmp_path, ["loss", "after_update", "evaluate", "callback"], seed=20)


@pytest.mark.slow
def test_ctrl_c_at_many_random_moments_then_resume_is_bit_identical(toy_task, tmp_path):
    _ctrl_c_trials(toy_task, tmp_path, ["loss", "after_update", "evaluate", "callback"] * 4, seed=21)


def test_second_ctrl_c_inside_a_step_keeps_the_last_good_checkpoint(toy_task, tmp_path):
    ref = _toy_run(copy.copy(toy_task), tmp_path / "ref.db", "ref")
    store = tmp_path / "s.db"
    run = _interrupted_run(
        toy_task, "loss", 17, store, n_signals=2
    )  # two Ctrl-C at once: stop inside step 17
    assert run.status == "interrupted" and "not checkpointed there" in run.note
    with descentlab.Store(store) as st:
        ck = load_checkpoint(checkpoint_dir(st, "victim") / "last.pt")
    assert ck["step"] == 14  # the periodic checkpoint before it
    resumed = _toy_run(copy.copy(toy_task), store, "victim", _resume_from=ck)
    for a, b in zip(ref.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)
    assert descentlab.load_run("victim", store).metrics("batch_loss") == ref.metrics("batch_loss")


def test_cli_train_exits_130_after_ctrl_c(tmp_path, monkeypatch, capsys):
    train_mod = sys.modules["descentlab.train"]

    class CtrlCBar(train_mod._NoBar):
        def advance(self, step, loss):
            if step == 5:
                signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(train_mod, "_progress", lambda *a, **k: CtrlCBar())
    db = tmp_path / "s.db"
    rc = main(["train", "--task", "quadratic", "--optimizer", "sgd", "--steps", "50", "--run-id", "cc",
               "--store", str(db)])  # fmt: skip
    assert rc == 130
    run = descentlab.load_run("cc", db)
    assert run.status == "interrupted" and run.final["step"] == 5
    capsys.readouterr()
    assert main(["resume", "cc", "--store", str(db), "--no-progress"]) == 0
    assert descentlab.load_run("cc", db).final["step"] == 50


# -- run ids are names, refused before any work -------------------------------------------------------------------


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("bad", ["../../x", "ABSOLUTE", "", ".", "../checkpoints/x", "x" * 300])
def test_bad_run_id_is_refused_before_any_work(bad, tmp_path, capsys):
    if bad == "ABSOLUTE":
        bad = str(tmp_path / "abs-run")
    work = tmp_path / "w" / "a" / "b"
    work.mkdir(parents=True)
    db = work / "s.db"
    called = []
    with pytest.raises(ValueError, match="invalid run id"):
        descentlab.train("quadratic", steps=3, store=db, run_id=bad, progress=False,
                         callbacks=[lambda ctx: called.append(ctx.step)])  # fmt: skip
    rc = main(
        ["train", "--task", "quadratic", "--steps", "3", "--run-id", bad, "--store", str(db), "--no-progress"]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "invalid run id" in err and len(err.strip().splitlines()) == 1
    assert not called and _files(tmp_path) == [
        "w",
        "w/a",
        "w/a/b",
    ]  # no store, no checkpoint, nothing outside


def test_non_string_run_id_leaves_no_row(store_path):
    with pytest.raises(TypeError, match="run id must be a string, got 123"):
        descentlab.train("quadratic", steps=3, store=store_path, run_id=123, progress=False)
    assert not store_path.exists() or descentlab.Store(store_path).run_ids() == []


# -- an existing id is never silently reused --------------------------------------------------------------------------


def _snapshot(db, run_id="r"):
    """Rows and checkpoint files of a run, for before/after comparisons."""
    with sqlite3.connect(db) as conn:
        rows = (
            conn.execute("SELECT id, config, status, created, updated, final, note FROM runs WHERE id=?", (run_id,)).fetchall(),
            conn.execute("SELECT step, name, value FROM metrics WHERE run=? ORDER BY name, step", (run_id,)).fetchall(),
        )  # fmt: skip
    ck = db.parent / f"{db.name}.checkpoints" / run_id
    files = {p.name: p.read_bytes() for p in sorted(ck.glob("*"))} if ck.exists() else {}
    return rows, files


def test_train_refuses_an_existing_run_id_unless_overwrite(tmp_path, capsys):
    db = tmp_path / "s.db"
    first = descentlab.train("quadratic", optimizer="sgd", steps=30, eval_every=5, checkpoint_every=5, store=db,
                             run_id="r", progress=False)  # fmt: skip
    before = _snapshot(db)
    called = []
    with pytest.raises(RunExistsError, match="'r' already exists"):
        descentlab.train("quadratic", optimizer="adam", steps=10, store=db, run_id="r", progress=False,
                         callbacks=[lambda ctx: called.append(1)])  # fmt: skip
    rc = main(
        [
            "train",
            "--task",
            "quadratic",
            "--steps",
            "10",
            "--run-id",
            "r",
            "--store",
            str(db),
            "--no-progress",
        ]
    )
    assert rc == 2 and "--overwrite" in capsys.readouterr().err
    assert not called and _snapshot(db) == before
    assert main(["train", "--task", "quadratic", "--optimizer", "adam", "--steps", "10", "--run-id", "r",
                 "--store", str(db), "--no-progress", "--overwrite"]) == 0  # fmt: skip
    run = descentlab.load_run("r", db)
    assert run.config["optimizer"] == "adam" and run.final["step"] == 10
    assert max(s for s, _ in run.metrics("batch_loss")) == 10  # none of the old run's 30 steps left
    assert not (
        db.parent / "s.db.checkpoints" / "r" / "last.pt"
    ).exists()  # the old run's checkpoint went with it
    assert first.final["step"] == 30


def test_concurrent_train_of_one_id_lets_exactly_one_win(tmp_path):
    db, n = tmp_path / "s.db", 4
    descentlab.Store(db).close()
    barrier, outcomes = threading.Barrier(n), []

    def one(k):
        barrier.wait()
        try:
            run = descentlab.train("quadratic", optimizer="sgd", lr=0.01 * (k + 1), steps=40, store=db,
                                   run_id="dup", progress=False)  # fmt: skip
            outcomes.append(("won", run.config["lr"]))
        except RunExistsError:
            outcomes.append(("lost", k))

    threads = [threading.Thread(target=one, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    winners = [o for o in outcomes if o[0] == "won"]
    assert len(outcomes) == n and len(winners) == 1
    stored = descentlab.load_run("dup", db)
    assert stored.status == "finished" and stored.config["lr"] == winners[0][1]
    assert [s for s, _ in stored.metrics("batch_loss")] == list(range(1, 41))  # one history, not interleaved


# -- resume never corrupts --------------------------------------------------------------------------------------------


class _StopAt:
    def __init__(self, at):
        self.at = at

    def __call__(self, ctx):
        if ctx.step == self.at:
            raise KeyboardInterrupt


def _half_run(db, run_id, optimizer="sgd", hparams=None, at=12):
    return descentlab.train("quadratic", optimizer=optimizer, hparams=hparams or {}, task_kw={"noise": 0.5},
                            steps=30, eval_every=5, checkpoint_every=5, store=db, run_id=run_id, progress=False,
                            callbacks=[Callback(_StopAt(at), every=1)])  # fmt: skip


def test_resuming_a_finished_run_changes_nothing(tmp_path, capsys):
    db = tmp_path / "s.db"
    descentlab.train(
        "quadratic", steps=20, eval_every=5, checkpoint_every=5, store=db, run_id="r", progress=False
    )
    before = _snapshot(db)
    run = descentlab.resume("r", store=db, progress=False)
    assert run.status == "finished" and run.resumed is False and "accuracy" not in run.final
    assert run.final == descentlab.load_run("r", db).final and "loss" in run.final
    assert main(["resume", "r", "--store", str(db)]) == 0
    assert "already finished; nothing to resume" in capsys.readouterr().out
    assert _snapshot(db) == before


def test_failing_resumes_leave_the_run_exactly_as_it_was(tmp_path, capsys):
    db = tmp_path / "s.db"
    assert _half_run(db, "r", hparams={"momentum": 0.9}).status == "interrupted"
    assert _half_run(db, "other", optimizer="adam", at=9).status == "interrupted"
    ck_dir = db.parent / "s.db.checkpoints"
    good = (ck_dir / "r" / "last.pt").read_bytes()
    mine, theirs = load_checkpoint(ck_dir / "r" / "last.pt"), load_checkpoint(ck_dir / "other" / "last.pt")

    def foreign_optimizer_state(keep_class):
        ck = dict(
            theirs, config={**mine["config"]}
        )  # adam's state under r's own header (its run id, its task)
        if keep_class:
            ck["config"]["optimizer_class"] = theirs["config"]["optimizer_class"]
        else:
            ck["config"].pop("optimizer_class")  # as a checkpoint from before that field existed
        return ck

    cases = {  # what lands in r's checkpoint folder -> the error it must give
        "another run's checkpoint": (theirs, "belongs to run 'other', not to run 'r'"),
        "another optimizer's state": (foreign_optimizer_state(True), "holds a Adam state"),
        "another optimizer's state, no class": (
            foreign_optimizer_state(False),
            "'momentum', 'nesterov' (a state saved by another optimizer?)",
        ),
        "another optimizer's name": (
            dict(mine, config={**mine["config"], "optimizer": "adam"}),
            "optimizer 'adam'",
        ),
        "a step past the end": (dict(mine, step=31), "at step 31, outside"),
        "another format": (dict(mine, format="descentlab-model-1"), "not a descentlab resume checkpoint"),
        "an earlier run with this id": (
            dict(mine, config={**mine["config"], "run_created": 1.0}),
            "earlier run",
        ),
        "no optimizer": ({k: v for k, v in mine.items() if k != "optimizer"}, "has no optimizer"),
    }
    before = _snapshot(db)
    for name, (ck, message) in cases.items():
        torch.save(ck, ck_dir / "r" / "last.pt")
        with pytest.raises(ValueError, match=re.escape(message)):
            descentlab.resume("r", store=db, progress=False)
        assert main(["resume", "r", "--store", str(db), "--no-progress"]) == 2, name
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, name
        assert _snapshot(db)[0] == before[0], f"{name}: the store changed"
    (ck_dir / "r" / "last.pt").write_bytes(b"\x80\x04garbage" * 10)
    with pytest.raises(ValueError, match="refusing to load checkpoint") as info:
        descentlab.resume("r", store=db, progress=False)
    assert "weights_only" not in str(info.value)
    assert _snapshot(db)[0] == before[0]
    (ck_dir / "r" / "last.pt").write_bytes(good)  # the real checkpoint back: it resumes and finishes
    assert descentlab.resume("r", store=db, progress=False).status == "finished"


# -- values that cannot be right, and empty data ---------------------------------------------------------------------


@pytest.mark.parametrize("budget", ["1e308", "inf", "nan", "-1", "0"])
def test_time_budget_out_of_range_is_exit_2(budget, tmp_path, capsys):
    rc = main(["train", "--task", "quadratic", "--time-budget", budget, "--store", str(tmp_path / "s.db")])
    err = capsys.readouterr().err
    assert rc == 2 and "time_budget" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s.db").exists()


def test_empty_data_is_a_value_error(toy_task):
    empty = copy.copy(toy_task)
    empty.train_data = tuple(t[:0] for t in empty.train_data)
    with pytest.raises(ValueError, match="no training examples"):
        descentlab.train(empty, steps=3, store=False, progress=False)
    no_val = copy.copy(toy_task)
    no_val.val_data = tuple(t[:0] for t in no_val.val_data)
    with pytest.raises(ValueError, match="no validation examples"):
        descentlab.train(no_val, steps=3, store=False, progress=False)


# -- runs export and read-only stores ---------------------------------------------------------------------------------


def test_runs_export_never_overwrites_silently(tmp_path, capsys):
    db = tmp_path / "s.db"
    descentlab.train("quadratic", steps=5, store=db, run_id="r", progress=False)
    before, db_bytes = _snapshot(db), db.read_bytes()
    out = tmp_path / "r.csv"
    out.write_text("mine")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for target, extra, message in [
        (out, [], "already exists"),
        (db, ["--force"], "store's own database"),
        (tmp_path, ["--force"], "is a directory"),
        (blocker / "sub" / "r.csv", [], "cannot write"),
    ]:
        rc = main(["runs", "export", "r", "--csv", str(target), "--store", str(db), *extra])
        err = capsys.readouterr().err
        assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, (target, err)
    assert out.read_text() == "mine" and _snapshot(db) == before and db.read_bytes() == db_bytes
    assert main(["runs", "export", "r", "--csv", str(out), "--store", str(db), "--force"]) == 0
    assert out.read_text().startswith("step,")


def test_read_only_store_can_be_listed_shown_and_exported(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "ro"
    db = folder / "s.db"
    descentlab.train("quadratic", steps=5, store=db, run_id="r", progress=False)
    opened = []
    real_connect = sqlite3.connect

    def spy(target, *a, **k):
        opened.append(str(target))
        return real_connect(target, *a, **k)

    monkeypatch.setattr(store_mod.sqlite3, "connect", spy)
    db_bytes = db.read_bytes()
    os.chmod(db, 0o444)
    os.chmod(folder, 0o555)
    try:
        for argv in (["runs", "list"], ["runs", "show", "r"], ["runs", "show", "r", "--json"],
                     ["runs", "export", "r", "--csv", str(tmp_path / "r.csv")]):  # fmt: skip
            assert main([*argv, "--store", str(db)]) == 0, capsys.readouterr().err
        assert "r" in capsys.readouterr().out and (tmp_path / "r.csv").exists()
    finally:
        os.chmod(folder, 0o755)
        os.chmod(db, 0o644)
    assert opened and all("mode=ro" in uri for uri in opened)  # every read really opened read-only
    assert db.read_bytes() == db_bytes
