"""Compact series in the store: a metric recorded at every step kept as chunks, read back like rows."""

from __future__ import annotations

import sqlite3

from descentlab.store import Store


def test_series_chunks_read_back_merged_trimmed_and_deleted(tmp_path) -> None:
    with Store(tmp_path / "s.db") as st:
        st.create_run("r", {"task": "t"})
        st.log_series("r", "batch_loss", [(1, 0.5), (2, 0.25), (3, float("nan"))])
        st.log_series("r", "batch_loss", [(4, 0.125), (5, 0.0625)])
        st.log_metrics("r", [(0, "loss", 1.0), (5, "loss", 0.1)])
        m = st.metrics("r")
        assert m["loss"] == [(0, 1.0), (5, 0.1)]
        steps = [s for s, _ in m["batch_loss"]]
        assert steps == [1, 2, 3, 4, 5] and m["batch_loss"][3] == (4, 0.125)
        assert st.load_run("r").metrics("batch_loss")[:2] == [(1, 0.5), (2, 0.25)]
        st.delete_metrics_after("r", 3)  # resume from step 3: a chunk cut, a later one dropped
        assert [s for s, _ in st.metrics("r", "batch_loss")["batch_loss"]] == [1, 2, 3]
        assert st.metrics("r", "loss")["loss"] == [(0, 1.0)]
        st.delete_run("r")
        assert st.metrics("r") == {}
    con = sqlite3.connect(tmp_path / "s.db")
    assert con.execute("SELECT COUNT(*) FROM series").fetchone() == (0,)
    con.close()


def test_a_store_made_before_series_is_read_without_them(tmp_path) -> None:
    path = tmp_path / "old.db"
    with Store(path) as st:
        st.create_run("r", {"task": "t"})
        st.log_metrics("r", [(1, "loss", 2.0)])
    con = sqlite3.connect(path)
    con.execute("DROP TABLE series")
    con.commit()
    con.close()
    with Store(path, read_only=True) as st:
        assert st.metrics("r") == {"loss": [(1, 2.0)]}
