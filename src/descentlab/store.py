"""The run store: SQLite in WAL mode with two tables, ``runs`` and ``metrics``.

Default path ``./runs/descentlab.db``; override with the ``DESCENTLAB_STORE`` environment variable or a ``path``
argument. Query helpers return plain Python structures (dicts, lists of tuples); nothing needs a server.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import re
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

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
CREATE TABLE IF NOT EXISTS series (
    run TEXT NOT NULL,
    name TEXT NOT NULL,
    start INTEGER NOT NULL,
    steps BLOB NOT NULL,
    vals BLOB NOT NULL,
    PRIMARY KEY (run, name, start)
);
"""
# ``series``: a metric recorded at many steps (a population member's ``batch_loss``) kept compactly, one row per chunk
# of consecutive records (int64 steps and float64 values as raw bytes) instead of one row per value (a row of
# ``metrics`` costs ~180 bytes with its id and indexes); read back merged with ``metrics`` by ``Store.metrics``.

MAX_RUN_ID_LENGTH = 128
_RUN_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,%d}" % (MAX_RUN_ID_LENGTH - 1))


class RunExistsError(ValueError):
    """A run with this id is already in the store (pass ``overwrite=True`` / ``--overwrite`` to replace it)."""


class RunTakenOverError(ValueError):
    """The run was replaced or resumed by another writer while this one was still writing it."""


def validate_run_id(run_id: object) -> str:
    """Return ``run_id`` if it is a valid run id, else raise (TypeError for a non-string, ValueError otherwise).

    A run id is a *name*, never a path: 1 to 128 ASCII letters, digits, ``.``, ``_`` or ``-``, not starting with a
    dot (so ``''``, ``.``, ``..``, ``../x``, ``/abs`` and ``a/b`` are all refused). It is checked here and only here.
    """
    if not isinstance(run_id, str):
        raise TypeError(f"run id must be a string, got {run_id!r} ({type(run_id).__name__})")
    if _RUN_ID.fullmatch(run_id):
        return run_id
    shown = repr(run_id) if len(run_id) <= 60 else repr(run_id[:60]) + f"... ({len(run_id)} characters)"
    if not run_id:
        why = "it is empty"
    elif len(run_id) > MAX_RUN_ID_LENGTH:
        why = f"it is longer than {MAX_RUN_ID_LENGTH} characters"
    elif run_id.startswith("."):
        why = "it starts with '.'"
    else:
        bad = sorted({c for c in run_id if not (c.isascii() and (c.isalnum() or c in "._-"))})
        why = "it contains " + ", ".join(repr(c) for c in bad[:5])
    raise ValueError(
        f"invalid run id {shown}: {why}; a run id is a name of 1 to {MAX_RUN_ID_LENGTH} letters, digits, "
        "'.', '_' or '-', not starting with '.'"
    )


def default_path() -> Path:
    """The store path: ``$DESCENTLAB_STORE`` or ``./runs/descentlab.db``."""
    return Path(os.environ.get("DESCENTLAB_STORE", "runs/descentlab.db"))


def new_run_id(prefix: str = "run") -> str:
    """A fresh, sortable run id such as ``run-20261122-224500-3f9a1c`` (``prefix`` is cut down to a valid name)."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", str(prefix)).lstrip(".")[:80] or "run"
    return validate_run_id(f"{clean}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}")


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
    """SQLite store of runs and metrics (WAL mode, busy timeout, retries on a locked database).

    ``read_only=True`` opens an existing store with SQLite's ``mode=ro`` (nothing is created or written; a store on
    a read-only disk or with read-only permissions can be listed, shown and exported). A store opened for writing
    whose file cannot be written falls back to read-only, and its write methods then raise ValueError.
    Checkpoints of run ``r`` live in ``<store folder>/<store file name>.checkpoints/r/`` (:meth:`checkpoint_dir`).
    """

    def __init__(
        self, path: str | os.PathLike[str] | None = None, timeout: float = 30.0, read_only: bool = False
    ):
        self.path = Path(path) if path is not None else default_path()
        self.read_only = bool(read_only)
        if self.path.exists() and self.path.is_dir():
            raise ValueError(
                f"store path {str(self.path)!r} is a directory; give a file such as runs/descentlab.db"
            )
        if self.read_only:
            self._open_read_only(timeout)
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(self.path), timeout=timeout, isolation_level=None)
            self._conn.execute("PRAGMA busy_timeout = %d" % int(timeout * 1000))
            self._refuse_foreign()  # before anything is changed in it (journal mode, tables)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._retry(lambda: self._conn.executescript(_SCHEMA))
            self._migrate()
        except sqlite3.OperationalError as exc:
            if "readonly" not in str(exc) or not self.path.exists():
                raise ValueError(f"cannot open store {str(self.path)!r}: {exc}") from None
            self._conn.close()  # an existing store we may not write: read it
            self.read_only = True
            self._open_read_only(timeout)
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"cannot open store {str(self.path)!r}: {exc}") from None
        except OSError as exc:
            raise ValueError(f"cannot create store {str(self.path)!r}: {exc.strerror or exc}") from None

    def _refuse_foreign(self) -> None:
        """ValueError when the file is another program's SQLite database (tables, but not ours): it is never
        turned into a store. An empty database (a new file) is fine."""
        tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        tables = {t for t in tables if not t.startswith("sqlite_")}
        if tables and not {"runs", "metrics"} <= tables:
            self._conn.close()
            shown = ", ".join(sorted(tables)[:5]) + (" ..." if len(tables) > 5 else "")
            raise ValueError(
                f"{str(self.path)!r} is an SQLite database of another program (tables: {shown}), not a descentlab "
                "store; nothing was changed in it"
            )

    def _open_read_only(self, timeout: float) -> None:
        if not self.path.is_file():
            raise ValueError(f"no store at {str(self.path)!r}")
        from urllib.request import pathname2url

        base = "file:" + pathname2url(str(self.path.resolve())) + "?mode=ro"
        # A WAL database needs its -shm file; in a folder we may not write, SQLite can only read it as immutable.
        last: Exception | None = None
        for uri in (base, base + "&immutable=1"):
            try:
                self._conn = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None)
                self._conn.execute("PRAGMA busy_timeout = %d" % int(timeout * 1000))
                tables = {
                    r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
                }
            except sqlite3.DatabaseError as exc:
                last = exc
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
                continue
            if not {"runs", "metrics"} <= tables:
                self._conn.close()
                raise ValueError(f"{str(self.path)!r} is not a descentlab store (no runs/metrics tables)")
            return
        raise ValueError(f"cannot open store {str(self.path)!r} read-only: {last}") from None

    def _migrate(self) -> None:
        """Add the ``owner`` column (who may write a run) to stores made before it existed."""
        cols = {r[1] for r in self._conn.execute("PRAGMA table_info(runs)")}
        if "owner" not in cols:
            try:
                self._retry(
                    lambda: self._conn.execute("ALTER TABLE runs ADD COLUMN owner TEXT NOT NULL DEFAULT ''")
                )
            except sqlite3.OperationalError as exc:  # another process added it first
                if "duplicate column" not in str(exc):
                    raise

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

    def _writable(self) -> None:
        if self.read_only:
            raise ValueError(f"store {str(self.path)!r} is open read-only; nothing can be written to it")

    def _transaction(self, fn: Any) -> Any:
        """Run ``fn()`` inside ``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back on any error), with retries."""
        self._writable()

        def run() -> Any:
            if self._conn.in_transaction:  # left open by an interrupted earlier call: its writes are dropped
                self._conn.execute("ROLLBACK")
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                out = fn()
                self._conn.execute("COMMIT")
                return out
            except BaseException:  # Ctrl-C included: never leave a transaction open
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

        return self._retry(run)

    def _check_owner(self, run_id: str, owner: str | None) -> None:
        """Inside a transaction: raise RunTakenOverError when ``owner`` no longer owns ``run_id``."""
        if owner is None:
            return
        row = self._conn.execute("SELECT owner FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None or row[0] != owner:
            raise RunTakenOverError(
                f"run {run_id!r} was replaced or resumed by another process (train --overwrite or resume) "
                "while this one was writing it; this process stopped writing it"
            )

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- checkpoints ----------------------------------------------------------------------------------------
    def checkpoint_dir(self, run_id: str) -> Path:
        """Where run ``run_id``'s checkpoints live: ``<store folder>/<store file name>.checkpoints/<run_id>/`` (id
        validated), a folder of this store's own: stores side by side never share, delete or read each other's.

        Stores made before this layout kept them in ``<store folder>/checkpoints/<run_id>/``, a folder every store
        there shared; such a folder is moved into this store's only when it provably belongs to this store's run:
        its ``last.pt`` names this run and its creation time, or (without one) its ``final.pt`` holds this run's
        exact configuration."""
        root = self.path.parent / f"{self.path.name}.checkpoints"
        path = root / validate_run_id(run_id)
        if path.resolve().parent != root.resolve():  # cannot happen for a valid name; kept as a guard
            raise ValueError(f"run id {run_id!r} would leave the store's checkpoint folder {str(root)!r}")
        if not path.exists():
            return self._adopt_legacy_checkpoints(run_id, path)
        return path

    def _adopt_legacy_checkpoints(self, run_id: str, path: Path) -> Path:
        """``path``, after moving the old shared-layout folder of ``run_id`` there if it provably is this store's
        (a read-only store reads it where it is)."""
        checked = self.__dict__.setdefault("_not_legacy", set())
        legacy = self.path.parent / "checkpoints" / run_id
        if run_id in checked or legacy.is_symlink() or not legacy.is_dir():
            return path
        if not self._owns_legacy(run_id, legacy):
            checked.add(run_id)
            return path
        if self.read_only:
            return legacy
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(legacy, path)
        except OSError:
            return legacy
        return path

    def _owns_legacy(self, run_id: str, legacy: Path) -> bool:
        """Whether an old shared-layout checkpoint folder was written by this store's run ``run_id``."""
        row = self._conn.execute("SELECT config, created FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            return False
        from descentlab.train.checkpoint import load_checkpoint

        try:
            if (legacy / "last.pt").is_file():
                head = load_checkpoint(legacy / "last.pt").get("config")
                return (
                    isinstance(head, dict)
                    and head.get("run_id") == run_id
                    and isinstance(head.get("run_created"), (int, float))
                    and float(head["run_created"]) == float(row[1])
                )
            if (legacy / "final.pt").is_file():
                cfg = load_checkpoint(legacy / "final.pt").get("config")
                return isinstance(cfg, dict) and json.loads(_dumps(cfg)) == json.loads(row[0])
        except (ValueError, AttributeError, TypeError):
            return False
        return False

    def _remove_checkpoints(self, run_id: str) -> Path | None:
        """Move a run's checkpoint folder aside (one atomic rename); returns where it went, or None."""
        path = self.checkpoint_dir(run_id)
        if not path.exists():
            return None
        trash = path.with_name(f".removed-{uuid.uuid4().hex}")  # ids never start with '.': no clash possible
        os.replace(path, trash)
        return trash

    # -- writing --------------------------------------------------------------------------------------------
    def create_run(
        self,
        run_id: str,
        config: dict[str, Any],
        status: str = "running",
        *,
        overwrite: bool = False,
        owner: str = "",
    ) -> float:
        """Insert a new run and return its creation time.

        An existing id is refused (RunExistsError) -- the insert is unique in the database, so of several
        processes creating one id exactly one wins. ``overwrite=True`` replaces an existing run instead: its rows
        and its checkpoint folder are removed and the new row inserted in one transaction. Leftover checkpoints of
        an id that has no row are removed too. ``owner`` marks who may write the run (see ``log_metrics``).
        """
        validate_run_id(run_id)
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        self._writable()
        now = time.time()
        cfg = _dumps(config)

        def insert() -> None:
            if overwrite:
                self._conn.execute("DELETE FROM metrics WHERE run=?", (run_id,))
                self._delete_series(run_id)
                self._conn.execute("DELETE FROM runs WHERE id=?", (run_id,))
            try:
                self._conn.execute(
                    "INSERT INTO runs(id, config, status, created, updated, owner) VALUES (?,?,?,?,?,?)",
                    (run_id, cfg, status, now, now, owner),
                )
            except sqlite3.IntegrityError:
                raise self._exists(run_id) from None

        if not overwrite and self.has_run(run_id):  # cheap early answer; the unique insert is the real guard
            raise self._exists(run_id)
        trash = self._remove_checkpoints(run_id) if overwrite else None
        try:
            self._transaction(insert)
        except BaseException:
            if trash is not None and not self.checkpoint_dir(run_id).exists():
                os.replace(trash, self.checkpoint_dir(run_id))  # nothing replaced: put the checkpoints back
            raise
        if trash is None:
            trash = self._remove_checkpoints(run_id)  # orphans of an id that had no row: not this run's
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
        return now

    def _exists(self, run_id: str) -> RunExistsError:
        return RunExistsError(
            f"run id {run_id!r} already exists in {str(self.path)!r}; choose another run id, or pass "
            "--overwrite (overwrite=True) to replace it"
        )

    def claim_run(self, run_id: str, owner: str, expect_updated: float | None = None) -> None:
        """Mark an existing run ``running`` under ``owner`` (resume); with ``expect_updated``, only if the run was
        not changed since (RunTakenOverError otherwise): of two processes resuming one run exactly one wins."""
        self._writable()

        def claim() -> None:
            q = "UPDATE runs SET status='running', owner=?, updated=? WHERE id=?"
            args: list[Any] = [owner, time.time(), run_id]
            if expect_updated is not None:
                q += " AND updated=?"
                args.append(expect_updated)
            if self._conn.execute(q, args).rowcount != 1:
                raise RunTakenOverError(
                    f"run {run_id!r} changed since it was read (another process resumed or replaced it); "
                    "nothing was written"
                )

        self._transaction(claim)

    def set_status(
        self,
        run_id: str,
        status: str,
        final: dict[str, Any] | None = None,
        note: str = "",
        *,
        owner: str | None = None,
    ) -> None:
        """Update a run's status (one of ``STATUSES``), final metrics and note (only while ``owner`` owns it,
        when given)."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")

        def write() -> None:
            self._check_owner(run_id, owner)
            if final is None:
                self._conn.execute(
                    "UPDATE runs SET status=?, updated=?, note=? WHERE id=?",
                    (status, time.time(), note, run_id),
                )
            else:
                self._conn.execute(
                    "UPDATE runs SET status=?, updated=?, final=?, note=? WHERE id=?",
                    (status, time.time(), _dumps(final), note, run_id),
                )

        self._transaction(write)

    def log_metrics(
        self, run_id: str, rows: Iterable[tuple[int, str, float]], *, owner: str | None = None
    ) -> None:
        """Append (step, name, value) rows for a run in one transaction (a re-logged step overwrites). With
        ``owner``, nothing is written (RunTakenOverError) once another writer has replaced or resumed the run."""
        data = [(run_id, int(s), str(n), None if v is None else float(v)) for s, n, v in rows]
        if not data:
            return

        def write() -> None:
            self._check_owner(run_id, owner)
            self._conn.executemany(
                "INSERT OR REPLACE INTO metrics(run, step, name, value) VALUES (?,?,?,?)", data
            )

        self._transaction(write)

    def log_series(
        self, run_id: str, name: str, points: Sequence[tuple[int, float]], *, owner: str | None = None
    ) -> None:
        """Append ``points`` [(step, value), ...] of metric ``name`` as one compact chunk (the ``series`` table: one
        row per chunk instead of one per value); read back by :meth:`metrics` like any metric."""
        if not points:
            return
        steps = np.asarray([int(p[0]) for p in points], dtype=np.int64)
        vals = np.asarray([math.nan if p[1] is None else float(p[1]) for p in points], dtype=np.float64)

        def write() -> None:
            self._check_owner(run_id, owner)
            self._conn.execute(
                "INSERT OR REPLACE INTO series(run, name, start, steps, vals) VALUES (?,?,?,?,?)",
                (run_id, str(name), int(steps[0]), steps.tobytes(), vals.tobytes()),
            )

        self._transaction(write)

    def _has_series(self) -> bool:
        """Whether this store has the ``series`` table (a store made before it, opened read-only, has not)."""
        if getattr(self, "_series_known", None) is None:
            row = self._conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='series'"
            ).fetchone()
            self._series_known = row is not None
        return bool(self._series_known)

    def _series(self, run_id: str, name: str | None = None) -> list[tuple[str, np.ndarray, np.ndarray]]:
        if not self._has_series():
            return []
        q, args = "SELECT name, steps, vals FROM series WHERE run=?", [run_id]
        if name is not None:
            q += " AND name=?"
            args.append(name)
        return [(n, np.frombuffer(st, dtype=np.int64), np.frombuffer(v, dtype=np.float64))
                for n, st, v in self._conn.execute(q + " ORDER BY name, start", args)]  # fmt: skip

    def _delete_series(self, run_id: str, after: int | None = None) -> None:
        """Inside a transaction: drop a run's series chunks (with ``after``: only the points beyond that step)."""
        if not self._has_series():
            return
        if after is None:
            self._conn.execute("DELETE FROM series WHERE run=?", (run_id,))
            return
        self._conn.execute("DELETE FROM series WHERE run=? AND start>?", (run_id, int(after)))
        for name, start, st, v in self._conn.execute(
            "SELECT name, start, steps, vals FROM series WHERE run=?", (run_id,)
        ).fetchall():
            steps, vals = np.frombuffer(st, dtype=np.int64), np.frombuffer(v, dtype=np.float64)
            keep = steps <= int(after)
            if not keep.all():
                self._conn.execute(
                    "UPDATE series SET steps=?, vals=? WHERE run=? AND name=? AND start=?",
                    (steps[keep].tobytes(), vals[keep].tobytes(), run_id, name, start),
                )

    def delete_metrics_after(self, run_id: str, step: int, *, owner: str | None = None) -> None:
        """Drop metric rows (and series points) of a run beyond ``step`` (used when resuming from a checkpoint)."""

        def write() -> None:
            self._check_owner(run_id, owner)
            self._conn.execute("DELETE FROM metrics WHERE run=? AND step>?", (run_id, int(step)))
            self._delete_series(run_id, after=int(step))

        self._transaction(write)

    def delete_run(self, run_id: str) -> None:
        """Remove a run, its metrics and its checkpoint folder."""

        def write() -> None:
            self._conn.execute("DELETE FROM metrics WHERE run=?", (run_id,))
            self._delete_series(run_id)
            self._conn.execute("DELETE FROM runs WHERE id=?", (run_id,))

        self._transaction(write)
        if _RUN_ID.fullmatch(str(run_id)):
            trash = self._remove_checkpoints(run_id)
            if trash is not None:
                shutil.rmtree(trash, ignore_errors=True)

    # -- reading --------------------------------------------------------------------------------------------
    def run_ids(self) -> list[str]:
        """All run ids, oldest first."""
        return [r[0] for r in self._conn.execute("SELECT id FROM runs ORDER BY created, id")]

    def has_run(self, run_id: str) -> bool:
        """Whether a run with this id exists."""
        return self._conn.execute("SELECT 1 FROM runs WHERE id=?", (run_id,)).fetchone() is not None

    def check_new_run_id(self, run_id: str) -> str:
        """``run_id`` if it is a valid name not yet in the store; ValueError / RunExistsError otherwise."""
        if self.has_run(validate_run_id(run_id)):
            raise self._exists(run_id)
        return run_id

    def run_header(self, run_id: str) -> dict[str, Any] | None:
        """A run's ``status``, ``created`` and ``updated`` without its history (None if there is no such run)."""
        row = self._conn.execute("SELECT status, created, updated FROM runs WHERE id=?", (run_id,)).fetchone()
        return None if row is None else {"status": row[0], "created": row[1], "updated": row[2]}

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
        out = []
        for r in self._conn.execute(q, args):
            config, bad_config = _json_object(r[1])
            final, bad_final = _json_object(r[5])
            row = {"id": r[0], "config": config, "status": r[2], "created": r[3], "updated": r[4],
                   "final": final, "note": r[6]}  # fmt: skip
            damage = [what for what, bad in (("config", bad_config), ("final metrics", bad_final)) if bad]
            if not isinstance(r[0], str) or r[2] not in STATUSES:
                damage.append("id or status")
            if damage:  # one damaged row is shown as such; the rest of the store stays readable
                row["damaged"] = f"unreadable {' and '.join(damage)}"
            out.append(row)
        return out

    def metrics(self, run_id: str, name: str | None = None) -> dict[str, list[tuple[int, float]]]:
        """Metric histories of a run: name -> [(step, value), ...] sorted by step."""
        q, args = "SELECT name, step, value FROM metrics WHERE run=?", [run_id]
        if name is not None:
            q += " AND name=?"
            args.append(name)
        out: dict[str, list[tuple[int, float]]] = {}
        for n, s, v in self._conn.execute(q + " ORDER BY name, step", args):
            out.setdefault(n, []).append((int(s), math.nan if v is None else float(v)))
        merged = set()
        for n, steps, vals in self._series(run_id, name):
            out.setdefault(n, []).extend(zip(steps.tolist(), vals.tolist()))
            merged.add(n)
        for n in merged:  # chunks and rows of one name, in step order (a later record of a step wins)
            out[n] = sorted(dict(out[n]).items())
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
        config, bad_config = _json_object(row[1])
        final, bad_final = _json_object(row[5])
        if bad_config or bad_final:
            what = " and ".join(w for w, bad in (("config", bad_config), ("final metrics", bad_final)) if bad)
            raise ValueError(
                f"run {run_id!r} in {str(self.path)!r} is damaged: its {what} is not a JSON object"
            )
        return Run(
            id=row[0],
            config=config,
            status=row[2],
            created=row[3],
            updated=row[4],
            final=final,
            note=row[6],
            history=self.metrics(run_id),
        )

    def export_csv(
        self,
        run_id: str,
        path: str | os.PathLike[str],
        names: Sequence[str] | None = None,
        overwrite: bool = False,
    ) -> Path:
        """Write a run's metrics as CSV, one row per step and one column per metric; returns the path.

        An existing file is refused unless ``overwrite``; the store itself (and its -wal/-shm files) never is a
        target. The file is written beside its final place and renamed over it, so it is never half written.
        """
        out = Path(path)
        if out.is_dir():
            raise ValueError(f"cannot export to {str(out)!r}: it is a directory; give a file such as run.csv")
        if self._is_store_file(out):
            raise ValueError(f"refusing to export to {str(out)!r}: that is the store's own database")
        if out.exists() and not overwrite:
            raise ValueError(f"{str(out)!r} already exists; pass --force (overwrite=True) to replace it")
        run = self.load_run(run_id)
        cols = [n for n in run.metric_names() if names is None or n in names]
        table: dict[int, dict[str, float]] = {}
        for n in cols:
            for s, v in run.history[n]:
                table.setdefault(s, {})[n] = v
        from descentlab.safe_write import atomic_open

        try:  # a fresh O_EXCL|O_NOFOLLOW temporary name: a link planted beside the target is never followed
            with atomic_open(out, "w") as f:
                w = csv.writer(f)
                w.writerow(["step", *cols])
                for s in sorted(table):
                    w.writerow([s, *[table[s].get(n, "") for n in cols]])
        except OSError as exc:
            raise ValueError(f"cannot write {str(out)!r}: {exc.strerror or exc}") from None
        return out

    def _is_store_file(self, path: Path) -> bool:
        """Whether ``path`` is (or links to) the database or one of its -wal/-shm/-journal files."""
        own = [self.path, *(self.path.with_name(self.path.name + x) for x in ("-wal", "-shm", "-journal"))]
        target = path.resolve()
        for f in own:
            if target == f.resolve():
                return True
            with contextlib.suppress(OSError):
                if path.exists() and f.exists() and os.path.samefile(path, f):
                    return True
        return False


def _json_object(text: Any) -> tuple[dict[str, Any], bool]:
    """A stored JSON object and False, or ``({}, True)`` when the stored text is not one (a damaged row)."""
    try:
        obj = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        return {}, True
    return (obj, False) if isinstance(obj, dict) else ({}, True)


def load_run(run_id: str, path: str | os.PathLike[str] | None = None) -> Run:
    """Load run ``run_id`` from the store at ``path`` (default store if None), opened read-only."""
    where = Path(path) if path is not None else default_path()
    if not where.exists():
        raise ValueError(f"unknown run id {run_id!r}: there is no store at {str(where)!r}")
    with Store(where, read_only=True) as st:
        return st.load_run(run_id)
