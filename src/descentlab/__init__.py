"""descentlab: a laboratory for optimization in deep learning."""

from __future__ import annotations

__version__ = "0.1.0"

from descentlab import optim, schedules, tasks  # noqa: E402,F401

__all__ = ["optim", "schedules", "tasks", "__version__"]
