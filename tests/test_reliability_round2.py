"""Issue 28, items 1-7: a stopped study never judges a cut run; stores never share checkpoints; a tour deletes only
what it wrote; optimizer states are checked tensor by tensor; "finished" only after final.pt is on disk; SIGTERM is
handled like Ctrl-C; resume restores the thread count."""

from __future__ import annotations

import copy
import errno
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import descentlab
import reliability_study  # registers the test study "rel-momentum"
from descentlab import optim, studies
from descentlab.cli import main
from descentlab.report import tour as tour_mod
from descentlab.store import Store
from descentlab.train import Callback, checkpoint_dir, load_checkpoint
from descentlab.train import loop as loop_mod
from descentlab.train.interrupt import Interrupted

STUDY = reliability_study.NAME
TESTS = Path(__file__).parent


def _rows(db: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT id, status, config, final, note FROM runs ORDER BY id").fetchall()


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


# -- 1. a stopped study never judges a cut run --------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The study run once, uninterrupted, into a store of its own."""
    tmp = tmp_path_factory.mktemp("ref")
    return studies.run(STUDY, quick=True, out=tmp / "out", store=tmp / "ref.db", progress=False).summary


def _signal_at_step(monkeypatch: pytest.MonkeyPatch, signum: int, at_step_call: int) -> None:
    """Deliver ``signum`` to this process (main thread) inside the ``at_step_call``-th training step of the study."""
    calls = {"n": 0}
    step = loop_mod._Loop.step

    def patched(self: Any) -> float:
        calls["n"] += 1
        if calls["n"] == at_step_call:
            signal.raise_signal(signum)
        return step(self)

    monkeypatch.setattr(loop_mod._Loop, "step", patched)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_inside_a_run_stops_the_study_without_a_verdict_and_the_rerun_matches(
    signum: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reference: dict[str, Any]
) -> None:
    db, out = tmp_path / "s.db", tmp_path / "out"
    _signal_at_step(monkeypatch, signum, 80 * 2 + 37)  # inside the third run (80 steps each), at its step 37
    with pytest.raises(Interrupted) as info:
        studies.run(STUDY, quick=True, out=out, store=db, progress=False)
    assert info.value.signum == signum and info.value.exit_code == 128 + signum
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["claims"] == [] and "numbers" not in summary
    rows = {r[0]: r[1] for r in _rows(db)}
    assert sorted(rows) == sorted(summary["runs"]) and len(rows) == 3  # no run started after the signal
    cut = summary["runs"][-1]
    assert rows[cut] == "interrupted" and [rows[r] for r in summary["runs"][:-1]] == ["finished"] * 2
    with Store(db) as st:
        assert (
            load_checkpoint(checkpoint_dir(st, cut) / "last.pt")["step"] == 37
        )  # checkpointed at the boundary
    monkeypatch.undo()
    again = studies.run(STUDY, quick=True, out=out, store=db, progress=False).summary
    assert again["resumed_runs"] == [cut]
    assert (
        again["reused_runs"] == summary["runs"][1:-1]
    )  # run 1 carries a callback: trained again, not reused
    assert again["numbers"] == reference["numbers"] and again["claims"] == reference["claims"]


def test_a_signal_between_runs_starts_no_further_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db, out = tmp_path / "s.db", tmp_path / "out"
    advance = studies.StudyContext.advance

    def patched(self: Any, n: int = 1) -> None:
        advance(self, n)
        if len(self.runs) == 2:
            signal.raise_signal(signal.SIGTERM)  # between run 2 and run 3

    monkeypatch.setattr(studies.StudyContext, "advance", patched)
    with pytest.raises(Interrupted) as info:
        studies.run(STUDY, quick=True, out=out, store=db, progress=False)
    assert info.value.signum == signal.SIGTERM
    assert [r[1] for r in _rows(db)] == ["finished", "finished"]
    assert json.loads((out / "summary.json").read_text())["claims"] == []


def test_a_signal_while_a_run_is_written_down_lists_that_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, out = tmp_path / "s.db", tmp_path / "out"
    write_down, calls = loop_mod._Loop.write_down, {"n": 0}

    def patched(self: Any, status: str, note: str) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            signal.raise_signal(signal.SIGINT)  # the run ended; it is being stored
        return write_down(self, status, note)

    monkeypatch.setattr(loop_mod._Loop, "write_down", patched)
    with pytest.raises(Interrupted):
        studies.run(STUDY, quick=True, out=out, store=db, progress=False)
    summary = json.loads((out / "summary.json").read_text())
    assert [r[1] for r in _rows(db)] == ["finished", "finished"] and len(summary["runs"]) == 2


_STUDY_CHILD = textwrap.dedent(
    """
    import signal, sys
    signal.signal(signal.SIGINT, signal.default_int_handler)  # a background shell starts children with it ignored
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    sys.path.insert(0, sys.argv[1])
    import reliability_study
    from descentlab.cli import main
    sys.exit(main(["study", reliability_study.NAME, "--quick", "--store", sys.argv[2], "--out", sys.argv[3]]))
    """
)


def _count(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0])
    except sqlite3.Error:
        return 0


@pytest.mark.slow
@pytest.mark.parametrize("signum,seed", [(signal.SIGINT, 1), (signal.SIGTERM, 2), (signal.SIGINT, 3)])
def test_cli_study_signalled_at_a_random_moment(
    signum: int, seed: int, tmp_path: Path, reference: dict[str, Any]
) -> None:
    """A real signal from outside, at a seeded random moment: exit 130/143, no verdict, the rerun is identical."""
    import time

    rng = random.Random(seed)
    db, out = tmp_path / "s.db", tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", _STUDY_CHILD, str(TESTS), str(db), str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    want = rng.randint(1, 5)
    while _count(db) < want and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(rng.uniform(0.0, 0.3))
    at_signal = _count(db)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signum, err[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["claims"] == []
    rows = {r[0]: r[1] for r in _rows(db)}
    assert sorted(rows) == sorted(summary["runs"]) and len(rows) <= at_signal + 1
    assert all(s == "finished" for r, s in rows.items() if r != summary["runs"][-1])
    again = studies.run(STUDY, quick=True, out=out, store=db, progress=False).summary
    assert again["numbers"] == reference["numbers"] and again["claims"] == reference["claims"]


def test_tour_stops_at_sigterm_and_exits_143(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    _signal_at_step(monkeypatch, signal.SIGTERM, 50)
    out = tmp_path / "tour"
    rc = main(["tour", "--quick", "--only", STUDY, "--out", str(out), "-j", "1", "--no-progress"])
    assert rc == 143  # and the benchmark (which runs after the studies) never started
    assert not (out / "bench").exists()
    summary = json.loads((out / "studies" / STUDY / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["claims"] == []
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "interrupted (SIGTERM)" in page
    statuses = [r[1] for r in _rows(out / "tour.db")]
    assert statuses == ["interrupted"]


# -- 2. stores in one folder never share checkpoints --------------------------------------------------------------


def _train(db: Path, run_id: str, seed: int = 0, **kw: Any) -> Any:
    return descentlab.train("logreg", optimizer="adam", lr=0.01, steps=30, eval_every=10, checkpoint_every=10,
                            seed=seed, store=db, run_id=run_id, progress=False, device="cpu", **kw)  # fmt: skip


def test_two_stores_in_one_folder_keep_their_own_checkpoints(tmp_path: Path) -> None:
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    stop = Callback(lambda c: signal.raise_signal(signal.SIGINT) if c.step == 20 else None, every=1)
    assert _train(a, "X", callbacks=[stop]).status == "interrupted"
    run_c = _train(tmp_path / "c.db", "X", seed=2)  # finished in a third store
    with Store(a) as sa:
        a_last = (checkpoint_dir(sa, "X") / "last.pt").read_bytes()
    run_b = _train(b, "X", seed=1)  # the same id in the other store: a's interrupted X is not its orphan
    with Store(tmp_path / "c.db") as sc:  # and c's final model (what `landscape X --store c.db` reads) is c's
        c_final = load_checkpoint(checkpoint_dir(sc, "X") / "final.pt")["model"]
    for p, q in zip(run_c.model.state_dict().values(), c_final.values()):
        assert torch.equal(p, q)
    with Store(a) as sa, Store(b) as sb:
        assert checkpoint_dir(sa, "X") != checkpoint_dir(sb, "X")
        assert (checkpoint_dir(sa, "X") / "last.pt").read_bytes() == a_last
        assert not (checkpoint_dir(sa, "X") / "final.pt").exists()
        b_final = load_checkpoint(checkpoint_dir(sb, "X") / "final.pt")
    for p, q in zip(run_b.model.state_dict().values(), b_final["model"].values()):
        assert torch.equal(p, q)
    assert descentlab.resume("X", store=a, progress=False).status == "finished"  # a's X still resumes
    ref = _train(tmp_path / "ref.db", "X")
    with Store(a) as sa:
        a_final = load_checkpoint(checkpoint_dir(sa, "X") / "final.pt")["model"]
    for p, q in zip(ref.model.state_dict().values(), a_final.values()):
        assert torch.equal(p, q)  # a's final model is a's run, bit for bit; b's is another seed's
    assert any(not torch.equal(p, q) for p, q in zip(a_final.values(), b_final["model"].values()))
    with Store(b) as sb:
        sb.delete_run("X")  # deleting in b leaves a's files alone
    with Store(a) as sa:
        assert (checkpoint_dir(sa, "X") / "final.pt").is_file()


def test_old_shared_checkpoints_are_adopted_only_by_their_own_store(tmp_path: Path) -> None:
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    stop = Callback(lambda c: signal.raise_signal(signal.SIGINT) if c.step == 20 else None, every=1)
    _train(a, "X", callbacks=[stop])
    _train(b, "X", seed=1, callbacks=[stop])
    with Store(a) as sa, Store(b) as sb:
        old = tmp_path / "checkpoints" / "X"  # as a store made before the per-store layout left it
        old.parent.mkdir()
        os.replace(checkpoint_dir(sa, "X"), old)
        assert checkpoint_dir(sb, "X").is_dir()  # b's own (new-layout) folder exists: the old one is not b's
        os.replace(checkpoint_dir(sb, "X"), tmp_path / "b-moved")
        assert (
            not checkpoint_dir(sb, "X").exists() and old.is_dir()
        )  # not b's run (creation time): left alone
        assert (
            checkpoint_dir(sa, "X") / "last.pt"
        ).is_file() and not old.exists()  # a's: moved into a's folder
    assert descentlab.resume("X", store=a, progress=False).status == "finished"


# -- 3. tour --out deletes only what it wrote -----------------------------------------------------------------------


@pytest.fixture
def quick_study(monkeypatch: pytest.MonkeyPatch) -> None:
    """studies.run replaced by a stand-in that writes a summary and a figure at once (no training)."""

    def run(name: str, quick: bool, out: Path, store: Any, progress: bool, **kw: Any) -> Any:
        summary = {"study": name, "claims": [], "figures": ["fig.png"], "seconds": 0.1}
        (out / "fig.png").write_bytes(b"\x89PNG\r\n\x1a\n")
        (out / "summary.json").write_text(json.dumps(summary))
        return type("R", (), {"summary": summary})()

    monkeypatch.setattr(studies, "run", run)


class _InProcessPool:
    threads = 1

    def __init__(self, jobs: int) -> None:
        pass

    def map(self, fn: Any, items: Any) -> Any:
        return (fn(i) for i in items)


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_tour_keeps_a_users_files_and_replaces_only_its_own(
    tmp_path: Path, quick_study: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from descentlab.bench import executors

    monkeypatch.setattr(executors, "ProcessExecutor", _InProcessPool)
    out = tmp_path / "t"
    (out / "bench").mkdir(parents=True)
    (out / "bench" / "mine.txt").write_text("a user's notes")
    (out / "notes.txt").write_text("keep me")
    (out / "index.html").write_text("<p>my own page</p>")
    before = _tree(out)
    with pytest.raises(ValueError, match="'index.html'.*--force"):
        tour_mod.run_tour(out, quick=True, bench=False, only=STUDY, progress=False, jobs=2)
    assert _tree(out) == before  # refused before anything was written
    tour_mod.run_tour(out, quick=True, bench=False, only=STUDY, progress=False, jobs=2, force=True)
    after = _tree(out)
    assert after["bench/mine.txt"] == b"a user's notes" and after["notes.txt"] == b"keep me"  # --no-bench
    assert after["index.html"] != before["index.html"] and f"studies/{STUDY}/summary.json" in after
    (out / "studies" / STUDY / "mine.txt").write_text("mine")
    (out / "studies" / STUDY / "fig.png").unlink()
    (out / "studies" / STUDY / "old.png").write_text("stale")
    manifest = json.loads((out / tour_mod.MANIFEST).read_text())["files"]
    assert "notes.txt" not in manifest and "bench/mine.txt" not in manifest and "index.html" in manifest
    with pytest.raises(ValueError, match="mine.txt"):  # a file in a study folder it did not write
        tour_mod.run_tour(out, quick=True, bench=False, only=STUDY, progress=False, jobs=1)
    tour_mod.run_tour(out, quick=True, bench=False, only=STUDY, progress=False, jobs=1, force=True)
    final = _tree(out)
    assert final["studies/" + STUDY + "/mine.txt"] == b"mine" and final["notes.txt"] == b"keep me"
    assert final["studies/" + STUDY + "/old.png"] == b"stale"  # not the tour's: never deleted


def test_tour_run_again_into_its_own_folder_needs_no_force(tmp_path: Path, quick_study: None) -> None:
    out = tmp_path / "t"
    tour_mod.run_tour(out, quick=True, bench=False, only=STUDY, progress=False, jobs=1)
    (out / "notes.txt").write_text("keep me")
    (out / "tour.db-shm").write_bytes(b"")  # SQLite's companion of the tour's store, as a cut tour leaves it
    tour_mod.run_tour(out, quick=True, bench=False, only=STUDY, progress=False, jobs=1)
    assert (out / "notes.txt").read_text() == "keep me"


# -- 4. optimizer states are checked tensor by tensor ---------------------------------------------------------------

FUSED_AND_WRAPPERS = {
    "sgd": {"momentum": 0.9},
    "adam": {},
    "adamw": {},
    "amsgrad": {},
    "adagrad": {},
    "lookahead": {},
    "sam": {},
    "muon": {},
    "shampoo": {},
}


def _stepped(name: str) -> tuple[nn.Module, torch.optim.Optimizer, Any]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    opt = optim.create(name, model, lr=1e-2, **FUSED_AND_WRAPPERS[name])
    x, y = torch.randn(32, 6), torch.randint(0, 3, (32,))

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss

    for _ in range(2):
        opt.step(closure)
    return model, opt, closure


def _per_param_tensor(state: dict[int, dict[str, Any]]) -> tuple[int, str]:
    """(parameter index, key) of the first state tensor with more than one element."""
    for i, entry in state.items():
        for k, v in entry.items():
            if isinstance(v, torch.Tensor) and v.numel() > 1:
                return i, k
    raise AssertionError("no per-parameter state tensor")


def _crafted(sd: dict[str, Any], how: str) -> dict[str, Any]:
    sd = copy.deepcopy(sd)
    i, k = _per_param_tensor(sd["state"])
    t = sd["state"][i][k]
    if how == "shrunk":
        sd["state"][i][k] = t.reshape(-1)[:2].clone()
    elif how == "larger":
        sd["state"][i][k] = torch.zeros(t.shape[0] + 5, *t.shape[1:])
    elif how == "float64":
        sd["state"][i][k] = t.double()
    elif how == "missing key":
        del sd["state"][i][k]
    elif how == "extra key":
        sd["state"][i]["bogus"] = t.clone()
    elif how == "unknown parameter":
        sd["state"][99] = copy.deepcopy(sd["state"][i])
    return sd


@pytest.mark.parametrize(
    "how", ["shrunk", "larger", "float64", "missing key", "extra key", "unknown parameter"]
)
@pytest.mark.parametrize("name", list(FUSED_AND_WRAPPERS))
def test_crafted_optimizer_states_are_refused_before_loading(name: str, how: str) -> None:
    model, opt, closure = _stepped(name)
    good = opt.state_dict()
    fresh = optim.create(name, model, lr=1e-2, **FUSED_AND_WRAPPERS[name])
    crafted = _crafted(good, how)  # (sgd's only key gone leaves an empty entry: its fused step would fail)
    before = copy.deepcopy(fresh.state_dict()["state"])  # empty, or adagrad's eager zeros
    with pytest.raises(ValueError, match=r"optimizer state .*(state\[|no parameter)"):
        fresh.load_state_dict(crafted)
    after = fresh.state_dict()["state"]  # nothing was loaded
    assert after.keys() == before.keys()
    assert all(torch.equal(after[i][k], v) for i, e in before.items() for k, v in e.items())
    fresh.load_state_dict(good)  # the real state still loads, and the optimizer steps
    fresh.step(closure)


def test_lookahead_slow_weights_are_checked_too() -> None:
    model, opt, _ = _stepped("lookahead")
    sd = copy.deepcopy(opt.state_dict())
    i = next(iter(sd["lookahead"]["slow"]))
    k = next(iter(sd["lookahead"]["slow"][i]))
    sd["lookahead"]["slow"][i][k] = sd["lookahead"]["slow"][i][k][:1]
    with pytest.raises(ValueError, match="lookahead.slow"):
        optim.create("lookahead", model, lr=1e-2).load_state_dict(sd)


def test_resume_refuses_a_crafted_optimizer_state_and_leaves_the_store(tmp_path: Path, capsys: Any) -> None:
    db = tmp_path / "s.db"
    stop = Callback(lambda c: signal.raise_signal(signal.SIGINT) if c.step == 20 else None, every=1)
    assert _train(db, "r", callbacks=[stop]).status == "interrupted"
    with Store(db) as st:
        path = checkpoint_dir(st, "r") / "last.pt"
    ck = load_checkpoint(path)
    ck["optimizer"] = _crafted(ck["optimizer"], "shrunk")
    torch.save(ck, path)
    before, files = _rows(db), path.read_bytes()
    assert main(["resume", "r", "--store", str(db), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "optimizer state" in err and "this optimizer keeps" in err and "Traceback" not in err
    assert _rows(db) == before and path.read_bytes() == files


# -- 5. "finished" only once final.pt is on disk --------------------------------------------------------------------


def test_full_disk_at_the_final_save_does_not_mark_the_run_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from descentlab.train.checkpoint import RunState

    db = tmp_path / "s.db"

    def full(self: Any, path: Path, config: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(RunState, "save_model", full)
    with pytest.raises(OSError) as info:
        _train(db, "r")
    assert info.value.errno == errno.ENOSPC
    run = descentlab.load_run("r", db)
    assert run.status == "failed" and "No space left" in run.note
    with Store(db) as st:
        assert not (checkpoint_dir(st, "r") / "final.pt").exists()
    monkeypatch.undo()  # space again: resume finishes it from its last checkpoint (step 30)
    resumed = descentlab.resume("r", store=db, progress=False)
    assert resumed.resumed and resumed.status == "finished"
    ref = _train(tmp_path / "ref.db", "r")
    with Store(db) as st:
        final = load_checkpoint(checkpoint_dir(st, "r") / "final.pt")["model"]
    for p, q in zip(ref.model.state_dict().values(), final.values()):
        assert torch.equal(p, q)


# -- 6. SIGTERM like Ctrl-C -------------------------------------------------------------------------------------------


def test_sigterm_checkpoints_at_the_step_boundary_and_resumes_bit_identical(
    toy_task: Any, tmp_path: Path
) -> None:
    def run(store: Path, callbacks: list[Any], **kw: Any) -> Any:
        return descentlab.train(copy.copy(toy_task), optimizer="sgd", lr=0.05, hparams={"momentum": 0.9}, steps=40,
                                eval_every=10, checkpoint_every=7, store=store, run_id="v", progress=False,
                                device="cpu", callbacks=callbacks, **kw)  # fmt: skip

    ref = run(tmp_path / "ref.db", [])
    db = tmp_path / "s.db"
    term = Callback(lambda c: signal.raise_signal(signal.SIGTERM) if c.step == 17 else None, every=1)
    cut = run(db, [term])
    assert cut.status == "interrupted" and cut.signal == signal.SIGTERM and "SIGTERM" in cut.note
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the handler is put back
    with Store(db) as st:
        ck = load_checkpoint(checkpoint_dir(st, "v") / "last.pt")
    assert ck["step"] == 17 == cut.final["step"]
    resumed = run(db, [], _resume_from=ck)
    for a, b in zip(ref.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)
    stored = descentlab.load_run("v", db)
    for metric in ("loss", "accuracy", "batch_loss"):
        assert stored.metrics(metric) == ref.metrics(metric)


def test_cli_train_exits_143_after_sigterm_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    train_mod = sys.modules["descentlab.train"]

    class TermBar(train_mod._NoBar):
        def advance(self, step: int, loss: float) -> None:
            if step == 5:
                signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr(train_mod, "_progress", lambda *a, **k: TermBar())
    db = tmp_path / "s.db"
    rc = main(["train", "--task", "quadratic", "--optimizer", "sgd", "--steps", "50", "--run-id", "t",
               "--store", str(db)])  # fmt: skip
    assert rc == 143
    run = descentlab.load_run("t", db)
    assert run.status == "interrupted" and run.final["step"] == 5  # not left "running"
    monkeypatch.undo()
    assert main(["resume", "t", "--store", str(db), "--no-progress"]) == 0
    assert descentlab.load_run("t", db).final["step"] == 50


# -- 7. resume restores every recorded setting, threads included -----------------------------------------------------


def test_resume_runs_under_the_recorded_thread_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    real = loop_mod.torch_threads

    def spy(n: int) -> Any:
        seen.append(n)
        return real(n)

    monkeypatch.setattr(loop_mod, "torch_threads", spy)
    db = tmp_path / "s.db"
    stop = Callback(lambda c: signal.raise_signal(signal.SIGINT) if c.step == 20 else None, every=1)
    run = _train(db, "r", callbacks=[stop], threads=2)
    assert run.status == "interrupted" and run.config["threads"] == 2 and seen == [2]
    assert descentlab.resume("r", store=db, progress=False).status == "finished"
    assert seen == [2, 2]  # "auto" would have chosen 1 for this small model
    assert descentlab.load_run("r", db).config["threads"] == 2


@pytest.mark.slow
def test_threads_2_resume_is_bit_identical(tmp_path: Path) -> None:
    def run(store: Path, callbacks: list[Any], **kw: Any) -> Any:
        return descentlab.train("mnist1d_cnn", optimizer="adam", steps=40, eval_every=20, checkpoint_every=10,
                                store=store, run_id="c", progress=False, device="cpu", threads=2,
                                callbacks=callbacks, **kw)  # fmt: skip

    ref = run(tmp_path / "ref.db", [])
    db = tmp_path / "s.db"
    run(db, [Callback(lambda c: signal.raise_signal(signal.SIGINT) if c.step == 15 else None, every=1)])
    resumed = descentlab.resume("c", store=db, progress=False)
    for a, b in zip(ref.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)


def test_full_disk_at_a_signal_checkpoint_still_marks_the_run_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(obj: Any, path: Path) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(loop_mod, "atomic_save", full)
    db = tmp_path / "s.db"
    term = Callback(lambda c: signal.raise_signal(signal.SIGTERM) if c.step == 12 else None, every=1)
    run = descentlab.train("logreg", optimizer="adam", steps=30, store=db, run_id="r", progress=False,
                           device="cpu", callbacks=[term])  # fmt: skip
    assert run.status == "interrupted" and "could not be written" in run.note and "No space left" in run.note
    assert descentlab.load_run("r", db).status == "interrupted"  # not left "running"
