"""Ctrl-C and SIGTERM at a step boundary: the first one is held until model, optimizer, stream and step count agree.

Handlers nest: a study (or a tour) holds the signals around its runs and ``train()`` holds them around its steps; a
signal that reaches the inner handler is noted by every outer one, so the study stops too (no run starts after it).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from typing import Any

HANDLED = (signal.SIGINT, signal.SIGTERM)
REPEAT_GRACE_S = 0.0
"""A repeat of the first signal within this many seconds is the same request (a tour's worker process gets a Ctrl-C
from the terminal and again from its parent), not a second one; 0 outside tour workers."""


LAST_SIGNAL: int | None = None
"""The signal of the last :class:`Interrupted` raised in this process (the CLI's exit code when typer has turned
the exception into its own exit 130)."""


class Interrupted(KeyboardInterrupt):
    """Raised when a run, study or tour stops on a signal: ``signum`` is SIGINT (Ctrl-C) or SIGTERM, ``exit_code``
    the shell's convention for it (130, 143)."""

    def __init__(self, signum: int = signal.SIGINT, message: str = "") -> None:
        global LAST_SIGNAL
        self.signum = LAST_SIGNAL = int(signum)
        super().__init__(message or f"interrupted ({signal_name(self.signum)})")

    def __reduce__(self) -> tuple[Any, ...]:  # crosses process boundaries (a worker's result) with its signal
        return (type(self), (self.signum, str(self)))

    @property
    def exit_code(self) -> int:
        """128 + the signal number: 130 for Ctrl-C, 143 for SIGTERM."""
        return 128 + self.signum


def signal_name(signum: int | None) -> str:
    """``"Ctrl-C"`` for SIGINT, else the signal's name (``"SIGTERM"``)."""
    if signum is None or signum == signal.SIGINT:
        return "Ctrl-C"
    with contextlib.suppress(ValueError):
        return signal.Signals(signum).name
    return f"signal {signum}"


def exit_code(exc: BaseException) -> int:
    """The process exit code for an interrupt: 143 after SIGTERM, 130 otherwise."""
    return int(getattr(exc, "exit_code", 130))


def _takes_over(signum: int, current: Any) -> bool:
    """Whether a handler may be installed over ``current``: Python's defaults, or another of ours (nesting)."""
    if isinstance(getattr(current, "__self__", None), _DeferredInterrupt):
        return True
    if signum == signal.SIGINT:
        return current is signal.default_int_handler
    return current == signal.SIG_DFL


class _DeferredInterrupt:
    """While active (main thread; over Python's default handlers or another of ours), Ctrl-C or SIGTERM sets
    ``pending`` (and ``signum``) instead of raising: the loop stops at the next step boundary, where model,
    optimizer, stream and step count agree, so the checkpoint written then resumes exactly. A second signal raises
    :class:`Interrupted` at once. Every enclosing handler of ours notes the signal too."""

    def __init__(self) -> None:
        self.pending = False
        self.signum: int | None = None
        self.hold = False  # set while the run is being written down: every signal then only sets ``pending``
        self.outer: _DeferredInterrupt | None = None
        self._prev: dict[int, Any] = {}
        self._first = 0.0

    def note(self, signum: int) -> None:
        """Remember a signal (the first one names the stop) here and in every enclosing handler."""
        if not self.pending:
            self.pending, self.signum, self._first = True, int(signum), time.monotonic()
        if self.outer is not None:
            self.outer.note(signum)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.pending and not self.hold:
            repeat = signum == self.signum and time.monotonic() - self._first < REPEAT_GRACE_S
            if not repeat:
                raise Interrupted(signum)
        self.note(signum)

    def stop(self) -> None:
        """Raise :class:`Interrupted` if a signal arrived (a study calls this before each run)."""
        if self.pending:
            raise Interrupted(self.signum or signal.SIGINT)

    def __enter__(self) -> _DeferredInterrupt:
        if threading.current_thread() is threading.main_thread():
            for signum in HANDLED:
                with contextlib.suppress(ValueError, TypeError):
                    current = signal.getsignal(signum)
                    if _takes_over(signum, current):
                        owner = getattr(current, "__self__", None)
                        if isinstance(owner, _DeferredInterrupt):
                            self.outer = owner
                        self._prev[signum] = signal.signal(signum, self._handle)
        if self.outer is not None and self.outer.pending:  # the enclosing study or tour is already stopping
            self.pending, self.signum = True, self.outer.signum
        return self

    def __exit__(self, *exc: object) -> None:
        """Put the previous handlers back."""
        for signum, prev in self._prev.items():
            signal.signal(signum, prev)
        self._prev.clear()


class _ImmediateInterrupt(_DeferredInterrupt):
    """Ctrl-C left as it is (raises at once): data-parallel runs, where ranks must not stop at different steps."""

    def __enter__(self) -> _ImmediateInterrupt:
        return self


class _RaisingInterrupt(_DeferredInterrupt):
    """Ctrl-C and SIGTERM raise :class:`Interrupted` at once (a driver waiting on worker processes, which stop at
    their own step boundaries)."""

    def _handle(self, signum: int, frame: Any) -> None:
        self.note(signum)
        raise Interrupted(signum)
