"""The one training loop: ``train(task, optimizer, ...) -> Run`` and ``resume(run_id)``, in named parts.

Every part of descentlab that trains a model (studies, the benchmark, the CLI) goes through ``train()``: it builds
the model and optimizer, runs the steps with a closure (so L-BFGS and SAM work unchanged), evaluates every
``eval_every`` steps outside the training clock, detects divergence, writes metrics to the store, and checkpoints
atomically so that a killed run resumes exactly (``resume(run_id)``).

``train(..., distributed=True)`` runs the same loop data-parallel inside an initialized ``torch.distributed`` process
group (one process per rank, e.g. launched by ``torchrun``): every rank draws the same global batch and trains on its
own contiguous shard of it, and rank 0 alone evaluates and writes the store (docs/benchmark.md, "Multi-GPU trials").

The parts:

- ``config``: every argument checked once into a :class:`RunConfig` (what the store records);
- ``checkpoint``: atomic save, safe load, the resume state (:class:`RunState`) and its validation;
- ``parallel``: one process or data-parallel (sharding, gradient sync, clock, stop verdict, who writes);
- ``recorder``: metric history and the run's rows in the store; ``interrupt``: Ctrl-C at a step boundary;
- ``progress``: progress bars; ``hooks``: callbacks and ``Diverged``;
- ``loop``: ``train()`` and ``resume()``, the loop itself;
- ``population``: ``train_many()`` / ``resume_many()``: M runs as one model with a member axis, the same parts.
"""

from __future__ import annotations

from descentlab.train.checkpoint import _CHECKPOINT_KEYS as _CHECKPOINT_KEYS
from descentlab.train.checkpoint import (
    CHECKPOINT_FORMAT,
    MODEL_FORMAT,
    RunState,
    atomic_save,
    checkpoint_dir,
    load_checkpoint,
    validate_checkpoint,
)
from descentlab.train.checkpoint import _load_failure as _load_failure
from descentlab.train.checkpoint import _restore as _restore
from descentlab.train.checkpoint import _rng_state as _rng_state
from descentlab.train.checkpoint import _seed_everything as _seed_everything
from descentlab.train.checkpoint import _set_rng_state as _set_rng_state
from descentlab.train.config import MAX_TIME_BUDGET, OptimizerSpec, RunConfig, configure
from descentlab.train.config import _check_data as _check_data
from descentlab.train.config import _check_positive as _check_positive
from descentlab.train.config import _optimizer_name as _optimizer_name
from descentlab.train.config import _resolve_device as _resolve_device
from descentlab.train.hooks import Callback, Diverged, StepContext
from descentlab.train.interrupt import _DeferredInterrupt as _DeferredInterrupt
from descentlab.train.loop import DONE_STATUSES, resume, train
from descentlab.train.loop import _call_mode as _call_mode
from descentlab.train.loop import _finite_params as _finite_params
from descentlab.train.parallel import DataParallel, SingleProcess
from descentlab.train.parallel import _dist_rank_world as _dist_rank_world
from descentlab.train.parallel import _shard as _shard
from descentlab.train.population import resume_many, train_many
from descentlab.train.progress import _escape_markup as _escape_markup
from descentlab.train.progress import _NoBar as _NoBar
from descentlab.train.progress import _progress as _progress
from descentlab.train.progress import _RichBar as _RichBar
from descentlab.train.recorder import Recorder

# The ``x as x`` imports above keep private helpers importable from ``descentlab.train`` as before the split (tests
# use them); the loop looks ``_progress`` up on this package, so a test can replace it here.
__all__ = [
    "CHECKPOINT_FORMAT",
    "DONE_STATUSES",
    "MAX_TIME_BUDGET",
    "MODEL_FORMAT",
    "Callback",
    "DataParallel",
    "Diverged",
    "OptimizerSpec",
    "Recorder",
    "RunConfig",
    "RunState",
    "SingleProcess",
    "StepContext",
    "atomic_save",
    "checkpoint_dir",
    "configure",
    "load_checkpoint",
    "resume",
    "resume_many",
    "train",
    "train_many",
    "validate_checkpoint",
]
