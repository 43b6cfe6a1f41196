"""Store round trips, CSV export, bad paths, and concurrent writers that lose nothing."""

from __future__ import annotations

import csv
import multiprocessing as mp

import pytest

from descentlab.store import Store, load_run


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
