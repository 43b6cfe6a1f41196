"""Workloads: ``available()`` and ``get(name, **kw) -> Task``. Data are generated or come from installed packages."""

from __future__ import annotations

from typing import Any

from descentlab._registry import Registry
from descentlab.tasks.base import Batch, BatchStream, Task

_REGISTRY = Registry("task")


def register(name: str, factory: Any, description: str = "") -> None:
    """Register a task factory ``factory(**kw) -> Task`` under ``name``."""
    _REGISTRY.register(name, factory, description)


def available() -> list[str]:
    """Names of the registered tasks."""
    return _REGISTRY.available()


def describe() -> dict[str, str]:
    """Task name -> one-line description."""
    return _REGISTRY.describe()


def get(name: str, **kw: Any) -> Task:
    """Build the task ``name`` with options ``kw`` (ValueError for unknown names or options)."""
    factory = _REGISTRY.factory(name)
    try:
        return factory(**kw)
    except TypeError as exc:  # unexpected keyword -> a clear ValueError
        if "unexpected keyword" in str(exc) or "got an unexpected" in str(exc):
            raise ValueError(f"task {name!r}: {exc}") from None
        raise


# Concrete workloads register themselves on import.
from descentlab.tasks import charlm as _charlm  # noqa: E402,F401
from descentlab.tasks import digits as _digits  # noqa: E402,F401
from descentlab.tasks import functions as _functions  # noqa: E402,F401
from descentlab.tasks import imbalance as _imbalance  # noqa: E402,F401
from descentlab.tasks import logreg as _logreg  # noqa: E402,F401
from descentlab.tasks import mnist1d as _mnist1d  # noqa: E402,F401
from descentlab.tasks import modular as _modular  # noqa: E402,F401

__all__ = ["Batch", "BatchStream", "Task", "available", "describe", "get", "register"]
