"""The run store: SQLite in WAL mode with two tables, ``runs`` and ``metrics``.

Default path ``./runs/descentlab.db``; override with the ``DESCENTLAB_STORE`` environment variable or a ``path``
argument. Query helpers return plain Python structures (dicts, lists of tuples); nothing needs a server.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sqlite3
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATUSES = ("running", "finished", "diverged", "failed", "interrupted")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    final TEXT NOT NULL DEFAULT '{}',
    note TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS metrics (
    run TEXT NOT NULL,
    step INTEGER NOT NULL,
    name TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (run, name, step)
);
CREATE INDEX IF NOT EXISTS metrics_run ON metrics(run);
"""


def default_path() -> Path:
    """The store path: ``$DESCENTLAB_STORE`` or ``./runs/descentlab.db``."""
    return Path(os.environ.get("DESCENTLAB_STORE", "runs/descentlab.db"))


def new_run_id(prefix: str = "run") -> str:
    """A fresh, sortable run id such as ``run-20261122-224500-3f9a1c``."""
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


@dataclass
class Run:
    """One training run: its id, configuration, status, final metrics and metric history."""

    id: str
    config: dict[str, Any]
    status: str = "running"
    final: dict[str, Any] = field(default_factory=dict)
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    created: float = 0.0
    updated: float = 0.0
    note: str = ""

    def metrics(self, name: str) -> list[tuple[int, float]]:
        """The (step, value) history of metric ``name`` (empty if never recorded)."""
        return list(self.history.get(name, []))

    def metric_names(self) -> list[str]:
        """Names of the recorded metrics."""
        return sorted(self.history)

    def to_dict(self, with_history: bool = False) -> dict[str, Any]:
        """A JSON-ready dict of the run (history included on request)."""
        d = {
            "id": self.id,
            "status": self.status,
            "config": self.config,
            "final": self.final,
            "created": self.created,
            "updated": self.updated,
            "note": self.note,
        }
        if with_history:
            d["history"] = {k: [[s, v] for s, v in vals] for k, vals in self.history.items()}
        return d


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (set, tuple)):
        return list(o)
    return repr(o)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=_json_default, sort_keys=True, allow_nan=True)


class Store:
    """SQLite store of runs and metrics (WAL mode, busy timeout, retries on a locked database)."""

    def __init__(self, path: str | os.PathLike[str] | None = None, timeout: float = 30.0):
        self.path = Path(path) if path is not None else default_path()
        if self.path.exists() and self.path.is_dir():
            raise ValueError(
                f"store path {str(self.path)!r} is a directory; give a file such as runs/descentlab.db"
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(self.path), timeout=timeout, isolation_level=None)
            self._conn.execute("PRAGMA busy_timeout = %d" % int(timeout * 1000))
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._retry(lambda: self._conn.executescript(_SCHEMA))
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"cannot open store {str(self.path)!r}: {exc}") from None
        except OSError as exc:
            raise ValueError(f"cannot create store {str(self.path)!r}: {exc.strerror or exc}") from None

    # -- plumbing -------------------------------------------------------------------------------------------
    def _retry(self, fn: Any, attempts: int = 8) -> Any:
        delay = 0.05
        for i in range(attempts):
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc) or i == attempts - 1:
                    raise
                time.sleep(delay)
                delay *= 2
        return None

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing --------------------------------------------------------------------------------------------
    def create_run(self, run_id: str, config: dict[str, Any], status: str = "running") -> None:
        """Insert a run (replaces the config and status of an existing run with the same id)."""
        now = time.time()
        self._retry(
            lambda: self._conn.execute(
                "INSERT INTO runs(id, config, status, created, updated) VALUES (?,?,?,?,?) "
                "ON CONFLICT(id) DO UPDATE SET config=excluded.config, status=excluded.status, "
                "updated=excluded.updated",
                (run_id, _dumps(config), status, now, now),
            )
        )

    def set_status(
        self, run_id: str, status: str, final: dict[str, Any] | None = None, note: str = ""
    ) -> None:
        """Update a run's status (one of ``STATUSES``), final metrics and note."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        if final is None:
            self._retry(
                lambda: self._conn.execute(
                    "UPDATE runs SET status=?, updated=?, note=? WHERE id=?",
                    (status, time.time(), note, run_id),
                )
            )
        else:
            self._retry(
                lambda: self._conn.execute(
                    "UPDATE runs SET status=?, updated=?, final=?, note=? WHERE id=?",
                    (status, time.time(), _dumps(final), note, run_id),
                )
            )

    def log_metrics(self, run_id: str, rows: Iterable[tuple[int, str, float]]) -> None:
        """Append (step, name, value) rows for a run in one transaction (a re-logged step overwrites)."""
        data = [(run_id, int(s), str(n), None if v is None else float(v)) for s, n, v in rows]
        if not data:
            return

        def write() -> None:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "INSERT OR REPLACE INTO metrics(run, step, name, value) VALUES (?,?,?,?)", data
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

        self._retry(write)

    def delete_metrics_after(self, run_id: str, step: int) -> None:
        """Drop metric rows of a run beyond ``step`` (used when resuming from a checkpoint)."""
        self._retry(
            lambda: self._conn.execute("DELETE FROM metrics WHERE run=? AND step>?", (run_id, int(step)))
        )

    def delete_run(self, run_id: str) -> None:
        """Remove a run and its metrics."""
        self._retry(lambda: self._conn.execute("DELETE FROM metrics WHERE run=?", (run_id,)))
        self._retry(lambda: self._conn.execute("DELETE FROM runs WHERE id=?", (run_id,)))

    # -- reading --------------------------------------------------------------------------------------------
    def run_ids(self) -> list[str]:
        """All run ids, oldest first."""
        return [r[0] for r in self._conn.execute("SELECT id FROM runs ORDER BY created, id")]

    def has_run(self, run_id: str) -> bool:
        """Whether a run with this id exists."""
        return self._conn.execute("SELECT 1 FROM runs WHERE id=?", (run_id,)).fetchone() is not None

    def list_runs(self, status: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Runs as dicts (id, status, config, final, created, updated, note), newest first."""
        q = "SELECT id, config, status, created, updated, final, note FROM runs"
        args: list[Any] = []
        if status:
            q += " WHERE status=?"
            args.append(status)
        q += " ORDER BY created DESC, id DESC"
        if limit:
            q += f" LIMIT {int(limit)}"
        return [
            {
                "id": r[0],
                "config": json.loads(r[1]),
                "status": r[2],
                "created": r[3],
                "updated": r[4],
                "final": json.loads(r[5]),
                "note": r[6],
            }
            for r in self._conn.execute(q, args)
        ]

    def metrics(self, run_id: str, name: str | None = None) -> dict[str, list[tuple[int, float]]]:
        """Metric histories of a run: name -> [(step, value), ...] sorted by step."""
        q, args = "SELECT name, step, value FROM metrics WHERE run=?", [run_id]
        if name is not None:
            q += " AND name=?"
            args.append(name)
        out: dict[str, list[tuple[int, float]]] = {}
        for n, s, v in self._conn.execute(q + " ORDER BY name, step", args):
            out.setdefault(n, []).append((int(s), math.nan if v is None else float(v)))
        return out

    def load_run(self, run_id: str) -> Run:
        """The run ``run_id`` with its full metric history (ValueError if there is none)."""
        row = self._conn.execute(
            "SELECT id, config, status, created, updated, final, note FROM runs WHERE id=?", (run_id,)
        ).fetchone()
        if row is None:
            ids = self.run_ids()
            from descentlab._registry import unknown_name_message

            raise ValueError(unknown_name_message("run id", run_id, ids[-20:]) + f" in {self.path}")
        return Run(
            id=row[0],
            config=json.loads(row[1]),
            status=row[2],
            created=row[3],
            updated=row[4],
            final=json.loads(row[5]),
            note=row[6],
            history=self.metrics(run_id),
        )

    def export_csv(
        self, run_id: str, path: str | os.PathLike[str], names: Sequence[str] | None = None
    ) -> Path:
        """Write a run's metrics as CSV, one row per step and one column per metric; returns the path."""
        run = self.load_run(run_id)
        cols = [n for n in run.metric_names() if names is None or n in names]
        table: dict[int, dict[str, float]] = {}
        for n in cols:
            for s, v in run.history[n]:
                table.setdefault(s, {})[n] = v
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["step", *cols])
            for s in sorted(table):
                w.writerow([s, *[table[s].get(n, "") for n in cols]])
        return out


def load_run(run_id: str, path: str | os.PathLike[str] | None = None) -> Run:
    """Load run ``run_id`` from the store at ``path`` (default store if None)."""
    with Store(path) as st:
        return st.load_run(run_id)
