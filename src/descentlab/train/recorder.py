"""The run's rows: metric history in memory, and on the writing process the store (rows, status, checkpoints).

Every write carries this call's owner token, so a run replaced or resumed by another process stops its old writer at
the next write (``RunTakenOverError``) instead of mixing rows into the new run.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import Any

from descentlab.store import RunTakenOverError, Store
from descentlab.train.checkpoint import checkpoint_dir


class Recorder:
    """Records a run: ``history`` for the returned Run; rows, status and checkpoints in ``store`` (None: nowhere).

    ``store``: False -> nothing written, None/True -> the default store, a path or a Store (then not closed here).
    ``writes=False`` (data-parallel ranks other than 0) writes nothing either.
    """

    def __init__(
        self,
        store: Store | str | os.PathLike[str] | bool | None,
        run_id: str,
        writes: bool = True,
        compact: frozenset[str] = frozenset(),
    ):
        self.run_id = run_id
        self.compact = (
            compact  # metrics written as compact series chunks (Store.log_series), not one row each
        )
        self.pending_series: dict[str, list[tuple[int, float]]] = {}
        self.owner = uuid.uuid4().hex  # this call's claim on the run
        self.history: dict[str, list[tuple[int, float]]] = {}
        self.pending: list[tuple[int, str, float]] = []
        self.created: float | None = None  # the run's creation time (checkpoints carry it)
        self.own_store = False
        self.store: Store | None = None
        if store is not False and writes:  # data-parallel: rank 0 alone writes
            self.own_store = not isinstance(store, Store)
            self.store = (
                store if isinstance(store, Store) else Store(None if store in (None, True) else store)
            )

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the store if this recorder opened it."""
        if self.own_store and self.store is not None:
            self.store.close()

    @property
    def checkpoints(self) -> Path | None:
        """The run's checkpoint folder (None when nothing is written)."""
        return checkpoint_dir(self.store, self.run_id) if self.store is not None else None

    def check(self, resuming: bool, overwrite: bool) -> None:
        """Before any work: refuse an id already in the store (unless ``overwrite``), or, resuming, a missing run."""
        if self.store is None:
            return
        if not resuming and not overwrite:
            # fail early, before any work; the unique insert in ``begin`` is the real guard
            self.store.check_new_run_id(self.run_id)
        elif resuming:
            header = self.store.run_header(self.run_id)
            if header is None:
                raise ValueError(
                    f"run {self.run_id!r} is not in the store {str(self.store.path)!r}; nothing to resume"
                )
            self.created = header["created"]

    def begin(
        self, config: dict[str, Any], overwrite: bool, resume_step: int | None, expect_updated: float | None
    ):
        """Create the run (or, resuming at ``resume_step``, claim it and drop its rows after that step)."""
        if self.store is None:
            return
        if resume_step is not None:
            self.store.claim_run(self.run_id, self.owner, expect_updated=expect_updated)
            self.store.delete_metrics_after(self.run_id, resume_step, owner=self.owner)
        else:
            self.created = self.store.create_run(self.run_id, config, overwrite=overwrite, owner=self.owner)

    def record(self, step: int, name: str, value: float) -> None:
        """Record metric ``name`` at ``step`` (in the history now, in the store at the next flush)."""
        if name in self.compact:
            self.pending_series.setdefault(name, []).append((step, float(value)))
        else:
            self.pending.append((step, name, float(value)))
        self.history.setdefault(name, []).append((step, float(value)))

    def flush(self) -> None:
        """Write the pending rows to the store in one transaction."""
        if self.store is not None and self.pending:
            self.store.log_metrics(self.run_id, self.pending, owner=self.owner)
        if self.store is not None:
            for name, points in self.pending_series.items():
                self.store.log_series(self.run_id, name, points, owner=self.owner)
        self.pending.clear()
        self.pending_series.clear()

    def finish(self, status: str, final: dict[str, Any], note: str) -> None:
        """Write the pending rows and the run's status, final metrics and note."""
        if self.store is not None:
            self.flush()
            self.store.set_status(self.run_id, status, final=final, note=note, owner=self.owner)

    def fail(self, exc: BaseException, step: int) -> None:
        """Mark the run ``failed`` with the exception as its note (not a run another writer took over)."""
        if self.store is not None and not isinstance(exc, RunTakenOverError):
            with contextlib.suppress(RunTakenOverError):
                self.finish("failed", {"step": step}, f"{type(exc).__name__}: {exc}")
