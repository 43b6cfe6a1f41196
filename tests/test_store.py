"""Store round trips, CSV export, bad paths, and concurrent writers that lose nothing."""

from __future__ import annotations

import csv
import multiprocessing as mp
import sqlite3
import threading

import pytest

from descentlab.store import (
    RunExistsError,
    RunTakenOverError,
    Store,
    load_run,
    new_run_id,
    validate_run_id,
)


def test_round_trip(store_path):
    with Store(store_path) as st:
        st.create_run("r1", {"task": "toy", "lr": 0.1, "betas": (0.9, 0.99)})
        st.log_metrics("r1", [(0, "loss", 1.0), (1, "loss", 0.5), (1, "accuracy", 0.75)])
        st.set_status("r1", "finished", final={"loss": 0.5})
        assert st.run_ids() == ["r1"]
        assert st.list_runs()[0]["status"] == "finished"
    run = load_run("r1", store_path)
    assert run.config == {"task": "toy", "lr": 0.1, "betas": [0.9, 0.99]}
    assert run.status == "finished" and run.final == {"loss": 0.5}
    assert run.metrics("loss") == [(0, 1.0), (1, 0.5)]
    assert run.metrics("missing") == []


def test_wal_mode(store_path):
    with Store(store_path) as st:
        assert st._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_export_csv(store_path, tmp_path):
    with Store(store_path) as st:
        st.create_run("r", {})
        st.log_metrics("r", [(0, "a", 1.0), (5, "a", 2.0), (5, "b", 3.0)])
        out = st.export_csv("r", tmp_path / "r.csv")
    rows = list(csv.reader(out.open()))
    assert rows == [["step", "a", "b"], ["0", "1.0", ""], ["5", "2.0", "3.0"]]


def test_missing_run_and_bad_status(store_path):
    with Store(store_path) as st:
        st.create_run("alpha", {})
        with pytest.raises(ValueError, match="unknown run id 'alpah'.*alpha"):
            st.load_run("alpah")
        with pytest.raises(ValueError, match="status must be one of"):
            st.set_status("alpha", "done")


def test_corrupted_database(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not a sqlite database" * 100)
    with pytest.raises(ValueError, match="cannot open store"):
        Store(bad)


def test_directory_as_store(tmp_path):
    with pytest.raises(ValueError, match="is a directory"):
        Store(tmp_path)


def _writer(path: str, k: int, rows: int) -> None:
    with Store(path) as st:
        st.create_run(f"w{k}", {"k": k})
        for i in range(0, rows, 50):  # 20 transactions of 50 rows each
            st.log_metrics(f"w{k}", [(i + j, "x", float(k * rows + i + j)) for j in range(50)])


def test_concurrent_writers_lose_nothing(store_path):
    Store(store_path).close()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(store_path), k, 1000)) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    with Store(store_path) as st:
        for k in range(4):
            vals = st.metrics(f"w{k}")["x"]
            assert len(vals) == 1000
            assert vals[-1] == (999, float(k * 1000 + 999))


# -- run identity: ids are names, never paths; an existing id is never silently reused --------------------------

BAD_IDS = [
    "../../x",
    "/abs/x",
    "",
    ".",
    "..",
    "../checkpoints/x",
    "a" * 300,
    "a/b",
    "a b",
    ".hidden",
    "x\n",
    "é",
]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_bad_run_ids_are_refused_naming_the_value(bad, store_path):
    with pytest.raises(ValueError, match="invalid run id") as info:
        validate_run_id(bad)
    assert repr(bad[:60]) in str(info.value)
    with Store(store_path) as st:
        with pytest.raises(ValueError, match="invalid run id"):
            st.create_run(bad, {})
        with pytest.raises(ValueError, match="invalid run id"):
            st.checkpoint_dir(bad)
        assert st.run_ids() == []


def test_good_run_ids_and_their_checkpoint_folders_stay_inside_the_store(store_path):
    with pytest.raises(TypeError, match="123"):
        validate_run_id(123)
    root = (store_path.parent / f"{store_path.name}.checkpoints").resolve()
    with Store(store_path) as st:
        for good in ["a", "A.b_c-1", "run..x", "a" * 128, "-x", "_"]:
            assert validate_run_id(good) == good
            assert st.checkpoint_dir(good).resolve().parent == root
    for prefix in ["my task/../x", "..", "", "[/x]"]:  # custom task names become valid id prefixes
        validate_run_id(new_run_id(prefix))


def _rows(path):
    """Everything the store holds about its runs, for before/after comparisons."""
    with sqlite3.connect(path) as conn:
        return (
            conn.execute(
                "SELECT id, config, status, created, updated, final, note FROM runs ORDER BY id"
            ).fetchall(),
            conn.execute("SELECT run, step, name, value FROM metrics ORDER BY run, name, step").fetchall(),
        )


def test_existing_id_is_refused_and_overwrite_replaces_rows_and_checkpoints(store_path):
    with Store(store_path) as st:
        st.create_run("r", {"v": 1})
        st.log_metrics("r", [(0, "loss", 1.0), (9, "loss", 0.5)])
        (st.checkpoint_dir("r")).mkdir(parents=True)
        (st.checkpoint_dir("r") / "last.pt").write_bytes(b"old")
        before = _rows(store_path)
        with pytest.raises(RunExistsError, match="'r' already exists.*--overwrite"):
            st.create_run("r", {"v": 2})
        assert _rows(store_path) == before and (st.checkpoint_dir("r") / "last.pt").exists()
        st.create_run("r", {"v": 2}, overwrite=True)
        run = st.load_run("r")
        assert run.config == {"v": 2} and run.history == {} and not st.checkpoint_dir("r").exists()
        assert not [p for p in st.checkpoint_dir("r").parent.iterdir()]  # nothing left aside


def test_orphan_checkpoints_of_a_new_id_are_not_inherited(store_path):
    with Store(store_path) as st:
        st.checkpoint_dir("n").mkdir(parents=True)
        (st.checkpoint_dir("n") / "final.pt").write_bytes(b"someone else's model")
        st.create_run("n", {})
        assert not st.checkpoint_dir("n").exists()


def _create_dup(path: str, k: int, barrier, wins) -> None:
    with Store(path) as st:
        barrier.wait()
        try:
            st.create_run("dup", {"k": k})
        except RunExistsError:
            return
        wins.append(k)


def test_concurrent_creation_of_one_id_lets_exactly_one_win(store_path):
    Store(store_path).close()
    n = 8
    barrier, wins = threading.Barrier(n), []
    threads = [
        threading.Thread(target=_create_dup, args=(str(store_path), k, barrier, wins)) for k in range(n)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(wins) == 1
    assert load_run("dup", store_path).config == {"k": wins[0]}


def test_a_replaced_run_stops_its_old_writer(store_path):
    with Store(store_path) as st:
        st.create_run("r", {"v": 1}, owner="first")
        st.log_metrics("r", [(1, "loss", 1.0)], owner="first")
        st.create_run("r", {"v": 2}, overwrite=True, owner="second")
        before = _rows(store_path)
        with pytest.raises(RunTakenOverError):
            st.log_metrics("r", [(2, "loss", 9.0)], owner="first")
        with pytest.raises(RunTakenOverError):
            st.set_status("r", "finished", final={"loss": 9.0}, owner="first")
        assert _rows(store_path) == before
        # two resumes of one run: the second one's claim finds the run changed since it read it
        updated = st.run_header("r")["updated"]
        st.claim_run("r", "resumer-1", expect_updated=updated)
        with pytest.raises(RunTakenOverError):
            st.claim_run("r", "resumer-2", expect_updated=updated)


# -- export: never over an existing file without --force, never over the store ----------------------------------


def test_export_refuses_existing_file_directory_and_the_store(store_path, tmp_path):
    with Store(store_path) as st:
        st.create_run("r", {})
        st.log_metrics("r", [(0, "a", 1.0)])
        target = tmp_path / "r.csv"
        target.write_text("keep me")
        with pytest.raises(ValueError, match="already exists.*--force"):
            st.export_csv("r", target)
        assert target.read_text() == "keep me"
        st.export_csv("r", target, overwrite=True)
        assert target.read_text().splitlines()[0] == "step,a"
        with pytest.raises(ValueError, match="is a directory"):
            st.export_csv("r", tmp_path, overwrite=True)
        for own in (store_path, store_path.with_name(store_path.name + "-wal")):
            with pytest.raises(ValueError, match="store's own database"):
                st.export_csv("r", own, overwrite=True)
        link = tmp_path / "link.csv"
        link.symlink_to(store_path)
        with pytest.raises(ValueError, match="store's own database"):
            st.export_csv("r", link, overwrite=True)
        blocker = tmp_path / "file"
        blocker.write_text("x")
        with pytest.raises(ValueError, match="cannot write"):
            st.export_csv("r", blocker / "sub" / "r.csv")
    assert load_run("r", store_path).metrics("a") == [(0, 1.0)]


# -- read-only stores ---------------------------------------------------------------------------------------------


def test_read_only_open_never_writes(store_path, tmp_path):
    with pytest.raises(ValueError, match="no store at"):
        Store(tmp_path / "missing.db", read_only=True)
    assert not (tmp_path / "missing.db").exists()
    with Store(store_path) as st:
        st.create_run("r", {"x": 1})
        st.log_metrics("r", [(0, "a", 1.0)])
    with Store(store_path, read_only=True) as st:
        assert st.read_only and st.load_run("r").metrics("a") == [(0, 1.0)]
        with pytest.raises(sqlite3.OperationalError, match="readonly"):  # SQLite itself refuses, even as root
            st._conn.execute("DELETE FROM runs")
        with pytest.raises(ValueError, match="open read-only"):
            st.create_run("s", {})
    assert load_run("r", store_path).config == {"x": 1}
