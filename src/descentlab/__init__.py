"""descentlab: a laboratory for optimization in deep learning.

Methods (``descentlab.optim``, ``descentlab.schedules``), workloads (``descentlab.tasks``), one training loop
(``descentlab.train``), one results store (``descentlab.store``) and, on top, geometry, studies and a benchmark.
"""

from __future__ import annotations

__version__ = "0.1.0"

from descentlab import optim, schedules, store, tasks  # noqa: E402,F401
from descentlab.store import Run, Store, load_run  # noqa: E402
from descentlab.train import Callback, StepContext, resume, resume_many, train, train_many  # noqa: E402

__all__ = [
    "Callback",
    "Run",
    "StepContext",
    "Store",
    "__version__",
    "load_run",
    "optim",
    "resume",
    "resume_many",
    "schedules",
    "store",
    "tasks",
    "train",
    "train_many",
]
