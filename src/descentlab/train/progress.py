"""Progress bars: a rich bar refreshed at most ~10 times a second, or nothing."""

from __future__ import annotations

import contextlib
import time


class _NoBar:
    """No bar: every call does nothing."""

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def advance(self, step: int, loss: float) -> None:
        """Show that ``step`` is done with batch loss ``loss``."""
        return None


class _RichBar(_NoBar):
    """A rich progress bar refreshed at most ~10 times a second (cheap per step)."""

    def __init__(self, total: int | None, description: str, completed: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TimeRemainingColumn(),
            transient=False,
        )
        self._task = self._progress.add_task(description, total=total, completed=completed, loss="-")
        self._last = 0.0
        self._step, self._loss = completed, "-"

    def __enter__(self) -> _RichBar:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.update(self._task, completed=self._step, loss=self._loss)
        self._progress.__exit__(None, None, None)

    def advance(self, step: int, loss: float) -> None:
        """Show that ``step`` is done with batch loss ``loss`` (redrawn at most every 0.1 s)."""
        self._step, self._loss = step, f"{loss:.4g}"
        now = time.perf_counter()
        if now - self._last > 0.1:
            self._last = now
            self._progress.update(self._task, completed=step, loss=f"{loss:.4g}")


def _escape_markup(text: str) -> str:
    """``text`` with rich markup escaped (task and optimizer names are the user's)."""
    from rich.markup import escape

    return escape(text)


def _progress(enabled: bool, total: int | None, description: str, completed: int) -> _NoBar:
    """A progress bar for ``total`` steps starting at ``completed`` (a no-op bar when disabled or unavailable)."""
    if not enabled:
        return _NoBar()
    with contextlib.suppress(Exception):
        return _RichBar(total, description, completed)
    return _NoBar()
