"""Ctrl-C at a step boundary: the first one is held until model, optimizer, stream and step count agree."""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any


class _DeferredInterrupt:
    """While active (main thread, default SIGINT handler only), Ctrl-C sets ``pending`` instead of raising: the loop
    stops at the next step boundary, where model, optimizer, stream and step count agree, so the checkpoint written
    then resumes exactly. A second Ctrl-C raises KeyboardInterrupt at once."""

    def __init__(self) -> None:
        self.pending = False
        self.hold = False  # set while the run is being written down: every Ctrl-C then only sets ``pending``
        self._prev: Any = None
        self._installed = False

    def _handle(self, signum: int, frame: Any) -> None:
        if self.pending and not self.hold:
            raise KeyboardInterrupt
        self.pending = True

    def __enter__(self) -> _DeferredInterrupt:
        if threading.current_thread() is threading.main_thread():
            with contextlib.suppress(ValueError, TypeError):
                if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                    self._prev = signal.signal(signal.SIGINT, self._handle)
                    self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        """Put the previous SIGINT handler back."""
        if self._installed:
            signal.signal(signal.SIGINT, self._prev)
            self._installed = False


class _ImmediateInterrupt(_DeferredInterrupt):
    """Ctrl-C left as it is (raises at once): data-parallel runs, where ranks must not stop at different steps."""

    def __enter__(self) -> _ImmediateInterrupt:
        return self
