"""The one training loop: ``train(task, optimizer, ...) -> Run``.

Every part of descentlab that trains a model (studies, the benchmark, the CLI) goes through ``train()``: it builds
the model and optimizer, runs the steps with a closure (so L-BFGS and SAM work unchanged), evaluates every
``eval_every`` steps outside the training clock, detects divergence, writes metrics to the store, and checkpoints
atomically so that a killed run resumes exactly (``resume(run_id)``).

``train(..., distributed=True)`` runs the same loop data-parallel inside an initialized ``torch.distributed`` process
group (one process per rank, e.g. launched by ``torchrun``): the model is wrapped in ``DistributedDataParallel``,
every rank draws the same global batch and trains on its own contiguous shard of it, and rank 0 alone evaluates and
writes the store (docs/benchmark.md, "Multi-GPU trials").
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import re
import signal
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from descentlab import optim as optim_registry
from descentlab import schedules as schedule_registry
from descentlab import tasks as task_registry
from descentlab.store import Run, RunTakenOverError, Store, new_run_id, validate_run_id
from descentlab.tasks.base import Task

OptimizerSpec = str | Callable[[nn.Module], torch.optim.Optimizer]


@dataclass
class StepContext:
    """What a callback sees: the step, the model, the optimizer, the task and a ``log`` for extra metrics."""

    step: int
    model: nn.Module
    optimizer: torch.optim.Optimizer
    task: Task
    metrics: dict[str, float] = field(default_factory=dict)

    def log(self, name: str, value: float) -> None:
        """Record an extra metric at this step."""
        self.metrics[name] = float(value)


@dataclass
class Callback:
    """Calls ``fn(ctx)`` every ``every`` steps; a returned dict is logged as metrics (e.g. sharpness)."""

    fn: Callable[[StepContext], Mapping[str, float] | None]
    every: int = 100


class Diverged(Exception):
    """Raised inside the loop when the loss or the parameters stop being finite."""


def _resolve_device(device: str | torch.device) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu' or 'cuda[:N]'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return dev


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": (
            np_state[0],
            torch.from_numpy(np_state[1].astype(np.int64)),
            *[int(x) if i < 2 else float(x) for i, x in enumerate(np_state[2:])],
        ),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file, fsync, then rename over ``path`` (never a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


CHECKPOINT_FORMAT = "descentlab-checkpoint-1"
_CHECKPOINT_KEYS = ("model", "optimizer", "stream", "step", "train_time", "rng")


def _load_failure(exc: BaseException) -> str:
    """Why torch refused a file, in a few words (torch's advice to load with weights_only=False left out)."""
    text = str(exc)
    m = re.search(r"WeightsUnpickler error:\s*(.+)", text)
    reason = m.group(1) if m else (text.strip().splitlines() or [type(exc).__name__])[0]
    reason = reason.split(" Please use")[0].strip().rstrip(".")
    if "weights_only" in reason or "Weights only load failed" in reason or not reason:
        reason = type(exc).__name__
    return reason[:200]


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a descentlab checkpoint safely (``weights_only=True``: no code runs while unpickling)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. torch's note on the pickle protocol of a foreign file
            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"no checkpoint at {str(path)!r}") from None
    except IsADirectoryError:
        raise ValueError(f"checkpoint path {str(path)!r} is a directory") from None
    except Exception as exc:  # pickle.UnpicklingError and friends: refuse, one line
        raise ValueError(
            f"refusing to load checkpoint {str(path)!r}: not a safe descentlab checkpoint ({_load_failure(exc)})"
        ) from None


def checkpoint_dir(store: Store, run_id: str) -> Path:
    """Where a run's checkpoints live: ``<store dir>/checkpoints/<run_id>/`` (the run id is validated)."""
    return store.checkpoint_dir(run_id)


def validate_checkpoint(
    ck: Any,
    run_id: str,
    config: Mapping[str, Any],
    created: float | None = None,
    source: str = "the checkpoint",
) -> None:
    """Check a resume checkpoint's header against the run it should continue (ValueError naming the mismatch).

    Checked: the format, the state it must hold, the task, the run id, the run's creation time (so a checkpoint of an
    earlier run under the same id is refused), the optimizer name, and a step within ``[0, steps]``.
    """
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        got = ck.get("format") if isinstance(ck, dict) else type(ck).__name__
        raise ValueError(f"{source} is not a descentlab resume checkpoint (format {got!r}, want {CHECKPOINT_FORMAT!r})")
    missing = [k for k in _CHECKPOINT_KEYS if k not in ck]
    if missing:
        raise ValueError(f"{source} is incomplete: it has no {', '.join(missing)}")
    head = ck.get("config") if isinstance(ck.get("config"), dict) else {}
    if head.get("task") != config.get("task"):
        raise ValueError(
            f"{source} belongs to task {head.get('task')!r}, not to run {run_id!r}'s task {config.get('task')!r}"
        )
    if head.get("run_id") != run_id:
        raise ValueError(f"{source} belongs to run {head.get('run_id')!r}, not to run {run_id!r}")
    if created is not None and head.get("run_created") is not None and float(head["run_created"]) != float(created):
        raise ValueError(
            f"{source} was written by an earlier run named {run_id!r} (since replaced), not by the stored one"
        )
    if head.get("optimizer") != config.get("optimizer"):
        raise ValueError(
            f"{source} holds the state of optimizer {head.get('optimizer')!r}, not of run {run_id!r}'s "
            f"optimizer {config.get('optimizer')!r}"
        )
    step, steps = ck["step"], config.get("steps")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0 or (steps is not None and step > steps):
        raise ValueError(f"{source} is at step {step!r}, outside run {run_id!r}'s 0..{steps}")
    tt = ck["train_time"]
    if isinstance(tt, bool) or not isinstance(tt, (int, float)) or not math.isfinite(tt) or tt < 0:
        raise ValueError(f"{source} has an invalid train_time {tt!r}")


def _restore(
    ck: dict[str, Any],
    model: nn.Module,
    opt: torch.optim.Optimizer,
    sched: Any,
    avg_model: nn.Module | None,
    stream: Any,
    run_id: str,
) -> None:
    """Load a validated checkpoint into freshly built objects; ValueError (nothing written anywhere) if it does
    not fit them: parameter names and shapes, the optimizer's class, groups and hyper-parameter keys, the stream."""
    what = f"the checkpoint of run {run_id!r}"
    head = ck.get("config") or {}
    want_cls = head.get("optimizer_class")
    if want_cls is not None and want_cls != type(opt).__qualname__:
        raise ValueError(f"{what} holds a {want_cls} state; this run builds a {type(opt).__qualname__}")
    fresh_keys = [set(g) for g in opt.param_groups]
    try:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        if sched is not None and ck.get("schedule") is not None:
            sched.load_state_dict(ck["schedule"])
        if avg_model is not None and ck.get("averaged") is not None:
            avg_model.load_state_dict(ck["averaged"])
        stream.load_state_dict(ck["stream"])
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ValueError(f"{what} does not fit the run it should continue: {type(exc).__name__}: {first}") from None
    for i, (want, group) in enumerate(zip(fresh_keys, opt.param_groups)):
        lost = sorted(want - set(group))
        if lost:
            raise ValueError(
                f"{what} does not fit its optimizer {type(opt).__qualname__}: parameter group {i} has no "
                f"{', '.join(map(repr, lost))} (a state saved by another optimizer?)"
            )


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


def _optimizer_name(optimizer: OptimizerSpec) -> str:
    if isinstance(optimizer, str):
        return optimizer.lower()
    return getattr(optimizer, "__name__", type(optimizer).__name__)


def _call_mode(optimizer: torch.optim.Optimizer, mode: str) -> None:
    """Switch Schedule-Free style optimizers (and wrappers around them) between train and eval mode."""
    for opt in (optimizer, getattr(optimizer, "base_optimizer", None)):
        fn = getattr(opt, mode, None) if opt is not None else None
        if callable(fn):
            fn()
            return


def _finite_params(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def _dist_rank_world() -> tuple[int, int]:
    """(rank, world size) of the initialized default process group; ValueError when there is none."""
    if not (dist.is_available() and dist.is_initialized()):
        raise ValueError(
            "distributed=True needs an initialized torch.distributed process group: launch with torchrun and call "
            "torch.distributed.init_process_group() first (or use `descentlab bench trial` under torchrun)"
        )
    return int(dist.get_rank()), int(dist.get_world_size())


def _shard(batch: tuple[torch.Tensor, ...], rank: int, world: int) -> tuple[torch.Tensor, ...]:
    """Rank ``rank``'s contiguous slice of every tensor of a global batch (tensors without a batch axis pass whole)."""
    n = int(batch[0].shape[0])
    if n % world:
        raise ValueError(f"a batch of {n} examples cannot be split evenly across world size {world}")
    per = n // world
    return tuple(
        t[rank * per : (rank + 1) * per] if t.dim() > 0 and int(t.shape[0]) == n else t for t in batch
    )


MAX_TIME_BUDGET = 1e8


def _check_data(task: Task) -> None:
    """Refuse a task whose default batches or evaluation would see no examples (instead of dividing by zero)."""
    def size(data: Any) -> int | None:
        return int(data[0].shape[0]) if isinstance(data, tuple) and data and hasattr(data[0], "shape") else None

    uses_train = type(task).batches is Task.batches or type(task).evaluate is Task.evaluate
    if uses_train and size(task.train_data) == 0:
        raise ValueError(f"task {task.name!r} has no training examples (its train_data is empty)")
    if type(task).evaluate is Task.evaluate and size(task.val_data) == 0:
        raise ValueError(f"task {task.name!r} has no validation examples (its val_data is empty)")


def _check_positive(name: str, value: Any, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not value > 0
        or not math.isfinite(value)
    ):
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def train(
    task: str | Task,
    optimizer: OptimizerSpec = "adam",
    lr: float | None = None,
    hparams: Mapping[str, Any] | None = None,
    schedule: str | None = None,
    schedule_kw: Mapping[str, Any] | None = None,
    steps: int | None = None,
    time_budget: float | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    eval_every: int | None = None,
    device: str | torch.device = "auto",
    store: Store | str | os.PathLike[str] | bool | None = None,
    run_id: str | None = None,
    callbacks: Iterable[Callback | Callable[[StepContext], Any]] = (),
    task_kw: Mapping[str, Any] | None = None,
    checkpoint_every: int | None = None,
    averaging: str | None = None,
    averaging_kw: Mapping[str, Any] | None = None,
    progress: bool = True,
    keep_model: bool = True,
    stop_when: Callable[[Mapping[str, float]], bool] | None = None,
    schedule_steps: int | None = None,
    _resume_from: dict[str, Any] | None = None,
    distributed: bool = False,
    overwrite: bool = False,
    _resume_updated: float | None = None,
) -> Run:
    """Train ``task`` with ``optimizer`` and return the finished :class:`~descentlab.store.Run`.

    ``task`` is a registry name (options in ``task_kw``) or a :class:`Task`; ``optimizer`` a registry name
    (hyper-parameters ``lr`` and ``hparams``) or a callable ``model -> Optimizer``. ``schedule`` names a schedule from
    ``descentlab.schedules``. Stop after ``steps`` steps or ``time_budget`` seconds of training time (evaluation is
    kept out of that clock). ``store``: None -> the default store, False -> nothing written, or a path / Store.
    ``averaging``: "ema" (decay in ``averaging_kw``) or "swa", through ``torch.optim.swa_utils``; the averaged model
    is evaluated beside the raw one (metrics prefixed ``avg_``). The trained model is kept as ``run.model``.
    ``stop_when(metrics)`` is asked after every evaluation and ends the run (as finished) when it returns True,
    e.g. at a benchmark target; ``schedule_steps`` is the length the schedule spans (default ``steps``).

    ``distributed=True`` (inside an initialized ``torch.distributed`` process group, every rank calling ``train`` with
    the same arguments) trains data-parallel: ``batch_size`` is the *global* batch (it must divide by the world size),
    each rank takes its contiguous shard of it, ``DistributedDataParallel`` averages the gradients, the logged loss is
    the mean over ranks, a step's time is the slowest rank's, and rank 0 alone evaluates, decides when to stop
    (``stop_when``, divergence) and writes the store and checkpoints. On GPUs each rank uses ``cuda:$LOCAL_RANK``.

    ``run_id`` is a name (letters, digits, ``._-``; see :func:`descentlab.store.validate_run_id`); an id already in
    the store is refused before any work unless ``overwrite=True``, which replaces that run (its rows and
    checkpoints). Ctrl-C stops the run at the next step boundary, marks it ``interrupted`` and checkpoints it there,
    so that ``resume`` ends bit-identical to an uninterrupted run (a second Ctrl-C stops at once, without that
    checkpoint).
    """
    if run_id is not None:
        validate_run_id(run_id)
    if not isinstance(overwrite, bool):
        raise ValueError(f"overwrite must be True or False, got {overwrite!r}")
    hparams = dict(hparams or {})
    task_kw = dict(task_kw or {})
    task_obj = task_registry.get(task, **task_kw) if isinstance(task, str) else task
    if not isinstance(task_obj, Task):
        raise TypeError(f"task must be a registry name or a Task, got {type(task).__name__}")
    _check_positive("lr", lr)
    _check_positive("time_budget", time_budget)
    if time_budget is not None and time_budget > MAX_TIME_BUDGET:
        raise ValueError(
            f"time_budget must be at most {MAX_TIME_BUDGET:g} seconds (about 3 years), got {time_budget!r}"
        )
    _check_data(task_obj)
    for name, val in (
        ("steps", steps),
        ("batch_size", batch_size),
        ("eval_every", eval_every),
        ("checkpoint_every", checkpoint_every),
        ("schedule_steps", schedule_steps),
    ):
        if val is not None and (isinstance(val, bool) or not isinstance(val, int) or val < 1):
            raise ValueError(f"{name} must be a positive integer, got {val!r}")
    if steps is None and time_budget is None:
        steps = task_obj.default_steps
    if averaging not in (None, "ema", "swa"):
        raise ValueError(f"averaging must be None, 'ema' or 'swa', got {averaging!r}")
    if not isinstance(distributed, bool):
        raise ValueError(f"distributed must be True or False, got {distributed!r}")
    rank, world = _dist_rank_world() if distributed else (0, 1)
    dev = _resolve_device(device)
    if distributed and dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank % torch.cuda.device_count())))
    if distributed and dev.type == "cuda":
        torch.cuda.set_device(dev)
    batch_size = batch_size or task_obj.default_batch_size
    if distributed and batch_size % world:
        raise ValueError(
            f"batch_size {batch_size} (the global batch) is not divisible by the world size {world}"
        )
    eval_every = eval_every or task_obj.default_eval_every
    if lr is None and isinstance(optimizer, str):
        lr = hparams.pop("lr", None)  # lr given among the hyper-parameters (`--set lr=...`): checked, never replaced
        _check_positive("lr", lr)
        if lr is None:
            lr = task_obj.default_lr
    config: dict[str, Any] = {
        "task": task_obj.name,
        "task_kw": {**task_obj.config, **task_kw},
        "optimizer": _optimizer_name(optimizer),
        "lr": lr,
        "hparams": hparams,
        "schedule": schedule,
        "schedule_kw": dict(schedule_kw or {}),
        "steps": steps,
        "time_budget": time_budget,
        "batch_size": batch_size,
        "seed": seed,
        "eval_every": eval_every,
        "device": str(dev),
        "averaging": averaging,
        "averaging_kw": dict(averaging_kw or {}),
        "checkpoint_every": checkpoint_every,
        "schedule_steps": schedule_steps,
    }
    if distributed:
        config["distributed"] = {"world_size": world, "backend": str(dist.get_backend())}

    # Store and run id.
    own_store = False
    st: Store | None
    if store is False or rank != 0:  # in a distributed run only rank 0 touches the store
        st = None
    elif isinstance(store, Store):
        st = store
    else:
        st = Store(None if store in (None, True) else store)
        own_store = True
    if run_id is None:
        run_id = new_run_id(task_obj.name)
    if checkpoint_every and store is False:
        raise ValueError(
            "checkpoint_every needs a store (checkpoints live beside it); pass store=None or a path"
        )
    header = None
    if st is not None:
        try:
            if _resume_from is None and not overwrite:
                st.check_new_run_id(run_id)  # fail before any work; the unique insert below is the real guard
            elif _resume_from is not None:
                header = st.run_header(run_id)
                if header is None:
                    raise ValueError(f"run {run_id!r} is not in the store {str(st.path)!r}; nothing to resume")
        except BaseException:
            if own_store:
                st.close()
            raise

    # Build everything deterministically from the seed.
    _seed_everything(seed)
    task_obj.to(dev)
    model = task_obj.make_model(seed).to(dev)
    if isinstance(optimizer, str):
        opt = optim_registry.create(optimizer, model, lr=lr, **hparams)
    else:
        opt = optimizer(model)
        if not isinstance(opt, torch.optim.Optimizer):
            raise TypeError(
                f"optimizer callable must return a torch.optim.Optimizer, got {type(opt).__name__}"
            )
    total_steps = schedule_steps or (steps if steps is not None else max(1, int(time_budget * 1000)))  # type: ignore[operator]
    sched = (
        schedule_registry.create(schedule, opt, total_steps, **dict(schedule_kw or {})) if schedule else None
    )
    stream = task_obj.batches(batch_size, seed)
    if distributed and int(getattr(stream, "batch_size", batch_size)) % world:
        raise ValueError(
            f"the task's batches hold {getattr(stream, 'batch_size', batch_size)} examples (batch_size "
            f"{batch_size} clipped to the data), not divisible by the world size {world}"
        )
    avg_model = None
    if averaging == "ema":
        decay = float(config["averaging_kw"].get("decay", 0.999))
        avg_model = torch.optim.swa_utils.AveragedModel(
            model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(decay), use_buffers=True
        )
    elif averaging == "swa":
        avg_model = torch.optim.swa_utils.AveragedModel(model, use_buffers=True)
    avg_start = int(config["averaging_kw"].get("start", 0))

    step, train_time = 0, 0.0
    pending: list[tuple[int, str, float]] = []
    owner = uuid.uuid4().hex  # this call's claim on the run: writes stop if another process takes the run over
    created = header["created"] if header is not None else None
    resumed_eval: dict[str, float] = {}
    if _resume_from is not None:  # validate and load everything before the store is touched
        ck = _resume_from
        try:
            validate_checkpoint(ck, run_id, config, created)
            _restore(ck, model, opt, sched, avg_model, stream, run_id)
            rng_before = _rng_state()
            try:
                _set_rng_state(ck["rng"])
            except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
                _set_rng_state(rng_before)
                raise ValueError(
                    f"the checkpoint of run {run_id!r} has an unusable random state ({type(exc).__name__}: {exc})"
                ) from None
        except BaseException:
            if own_store and st is not None:
                st.close()
            raise
        step, train_time = int(ck["step"]), float(ck["train_time"])
        le = ck.get("last_eval")
        resumed_eval = {str(k): float(v) for k, v in le.items()} if isinstance(le, dict) else {}

    intr = _DeferredInterrupt() if not distributed else None
    if intr is not None:
        intr.__enter__()  # from here on Ctrl-C waits for a step boundary (restored before train returns)
    try:
        if st is not None and _resume_from is not None:
            st.claim_run(run_id, owner, expect_updated=_resume_updated)
            st.delete_metrics_after(run_id, step, owner=owner)
        elif st is not None:
            created = st.create_run(run_id, config, overwrite=overwrite, owner=owner)
    except BaseException:
        if intr is not None:
            intr.__exit__()
        if own_store and st is not None:
            st.close()
        raise

    train_model: nn.Module = model  # what the loss sees: the model itself, or its DDP wrapper
    comm_dev = torch.device("cpu")
    closure_calls = [0]  # closure calls within the current step (distributed runs only)
    sam_local_first = False
    if distributed:
        from torch.nn.parallel import DistributedDataParallel

        from descentlab.optim.sam import SAM

        # SAM's documented DDP protocol: its first backward runs unsynchronized and first_step averages the
        # gradient itself (or keeps it local with local_perturbation=True); the second backward is DDP's.
        sam_local_first = isinstance(opt, SAM)

        if dist.get_backend() == "nccl":
            comm_dev = dev
        box = [run_id]
        dist.broadcast_object_list(box, src=0)  # one run id on every rank (rank 0's)
        run_id = str(box[0])
        train_model = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)

    cbs = [c if isinstance(c, Callback) else Callback(c, eval_every) for c in callbacks]
    ck_dir = checkpoint_dir(st, run_id) if st is not None else None

    def flush() -> None:
        if st is not None and pending:
            st.log_metrics(run_id, pending, owner=owner)
        if st is not None:
            pending.clear()

    def save_checkpoint() -> None:
        if ck_dir is None:
            return
        flush()
        atomic_save(
            {
                "format": CHECKPOINT_FORMAT,
                "config": {
                    "task": config["task"],
                    "optimizer": config["optimizer"],
                    "optimizer_class": type(opt).__qualname__,
                    "run_id": run_id,
                    "run_created": created,
                },
                "last_eval": {k: float(v) for k, v in last_eval.items() if isinstance(v, (int, float))},
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "schedule": sched.state_dict() if sched is not None else None,
                "averaged": avg_model.state_dict() if avg_model is not None else None,
                "stream": stream.state_dict(),
                "step": step,
                "train_time": train_time,
                "rng": _rng_state(),
            },
            ck_dir / "last.pt",
        )

    history: dict[str, list[tuple[int, float]]] = {}

    def record(name: str, value: float) -> None:
        pending.append((step, name, float(value)))
        history.setdefault(name, []).append((step, float(value)))

    def evaluate() -> dict[str, float]:
        _call_mode(opt, "eval")
        try:  # back in train mode whatever happens (an interrupt inside must not leave eval-mode parameters)
            if rank != 0:  # every rank switches modes (parameters stay identical); only rank 0 evaluates
                return {}
            res = dict(task_obj.evaluate(model))
            if avg_model is not None and step > avg_start:
                res.update({f"avg_{k}": v for k, v in task_obj.evaluate(avg_model.module).items()})
        finally:
            _call_mode(opt, "train")
        for k, v in res.items():
            record(k, v)
        record("train_time", train_time)
        record("wall_time", time.perf_counter() - wall0)
        record("lr", opt.param_groups[0]["lr"])
        return res

    def grad_sync() -> contextlib.AbstractContextManager[Any]:
        closure_calls[0] += 1
        if sam_local_first and closure_calls[0] == 1:
            return train_model.no_sync()  # type: ignore[operator]
        return contextlib.nullcontext()

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        with grad_sync() if distributed else contextlib.nullcontext():
            loss = task_obj.loss(train_model, batch)
            loss.backward()
        if distributed:  # every rank (and a line search) sees the global batch's mean loss
            loss = loss.detach().clone()
            dist.all_reduce(loss)
            loss = loss / world
        return loss

    status, note, last_eval = "running", "", dict(resumed_eval)
    mid_step = False  # True while model, optimizer, stream and step count may disagree
    wall0 = time.perf_counter()
    model.train()
    _call_mode(opt, "train")
    bar = _progress(
        progress and rank == 0,
        total=steps,
        description=_escape_markup(f"{task_obj.name} · {config['optimizer']}"),  # names as text in the bar
        completed=step,
    )
    try:
        with bar:
            if step == 0:
                last_eval = evaluate()
            while True:
                if intr is not None and intr.pending:  # Ctrl-C arrived: stop here, where the state is whole
                    raise KeyboardInterrupt
                if steps is not None and step >= steps:
                    break
                if time_budget is not None and train_time >= time_budget:
                    break
                mid_step = True
                t0 = time.perf_counter()
                batch = next(stream)
                if distributed:
                    batch = _shard(batch, rank, world)
                    closure_calls[0] = 0
                loss = opt.step(closure)
                if sched is not None:
                    sched.step()
                step += 1
                loss_value = float(loss.detach()) if loss is not None else math.nan
                if avg_model is not None and step > avg_start:
                    avg_model.update_parameters(model)
                if distributed:  # a step takes as long as its slowest rank: one clock on every rank
                    elapsed = torch.tensor([time.perf_counter() - t0], dtype=torch.float64, device=comm_dev)
                    dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)
                    train_time += float(elapsed)
                else:
                    train_time += time.perf_counter() - t0
                mid_step = False
                record("batch_loss", loss_value)
                if not math.isfinite(loss_value):
                    raise Diverged(f"loss became {loss_value} at step {step}")
                bar.advance(step, loss_value)
                final_step = steps is not None and step >= steps
                if (
                    step % eval_every == 0
                    or final_step
                    or (time_budget is not None and train_time >= time_budget)
                ):
                    if not _finite_params(model):
                        raise Diverged(f"parameters became non-finite at step {step}")
                    last_eval = evaluate()
                    if distributed:  # rank 0 judged the evaluation; every rank follows its verdict
                        bad = next(
                            (k for k in ("loss", "train_loss") if not math.isfinite(last_eval.get(k, 0.0))),
                            None,
                        )
                        stop = (
                            rank == 0 and bad is None and stop_when is not None and bool(stop_when(last_eval))
                        )
                        verdict = torch.tensor([bad is not None, stop], dtype=torch.float64, device=comm_dev)
                        dist.broadcast(verdict, src=0)
                        if bool(verdict[0]):
                            what = (
                                f"{bad} became {last_eval[bad]}" if bad is not None else "on rank 0 diverged"
                            )
                            raise Diverged(f"evaluation {what} at step {step}")
                        flush()
                        if bool(verdict[1]):
                            note = f"stopped at step {step}: stop_when was met"
                            break
                    else:
                        for key in ("loss", "train_loss"):
                            if not math.isfinite(last_eval.get(key, 0.0)):
                                raise Diverged(f"evaluation {key} became {last_eval[key]} at step {step}")
                        flush()
                        if stop_when is not None and stop_when(last_eval):
                            note = f"stopped at step {step}: stop_when was met"
                            break
                for cb in cbs:
                    if step % cb.every == 0:
                        ctx = StepContext(step, model, opt, task_obj)
                        out = cb.fn(ctx)
                        for k, v in {**ctx.metrics, **dict(out or {})}.items():
                            record(k, v)
                if checkpoint_every and step % checkpoint_every == 0:
                    save_checkpoint()
        status = "finished"
    except Diverged as exc:
        status, note = "diverged", str(exc)
        record("diverged_step", step)
    except KeyboardInterrupt:
        if intr is not None:
            intr.hold = True  # more Ctrl-C while the run is written down: remembered, not raised
        status, note = "interrupted", f"interrupted at step {step}; `descentlab resume {run_id}` continues it"
        if mid_step:  # a second Ctrl-C inside a step: this state is half-updated, keep the last checkpoint
            note = (
                f"interrupted inside step {step + 1} (second Ctrl-C), not checkpointed there; "
                f"`descentlab resume {run_id}` continues from the last checkpoint"
            )
        else:
            try:
                save_checkpoint()  # Ctrl-C leaves the run resumable whenever it has a store
            except RunTakenOverError:
                if intr is not None:
                    intr.__exit__()
                if own_store and st is not None:
                    st.close()
                raise
    except Exception as exc:
        if intr is not None:
            intr.__exit__()
        status, note = "failed", f"{type(exc).__name__}: {exc}"
        if st is not None:
            if not isinstance(exc, RunTakenOverError):  # a run taken over belongs to its new writer
                with contextlib.suppress(RunTakenOverError):
                    flush()
                    st.set_status(run_id, status, final={"step": step}, note=note, owner=owner)
            if own_store:
                st.close()
        raise

    if intr is not None:
        intr.hold = True
    final = {k: v for k, v in last_eval.items() if isinstance(v, (int, float))}
    final.update({"step": step, "train_time": train_time, "wall_time": time.perf_counter() - wall0})
    if status == "diverged":
        final["diverged_step"] = step
    try:
        if st is not None:
            flush()
            st.set_status(run_id, status, final=final, note=note, owner=owner)
            if status in ("finished", "diverged") and ck_dir is not None:
                atomic_save(
                    {"format": "descentlab-model-1", "config": config, "model": model.state_dict()},
                    ck_dir / "final.pt",
                )
    finally:
        if own_store and st is not None:
            st.close()
        if intr is not None:
            intr.__exit__()
    if intr is not None and intr.pending and status != "interrupted":
        raise KeyboardInterrupt  # Ctrl-C came while the run was being written down: it is stored, then stops
    run = Run(id=run_id, config=config, status=status, final=final, history=history, note=note)
    if keep_model:
        run.model = model  # type: ignore[attr-defined]
        run.optimizer = opt  # type: ignore[attr-defined]
        run.averaged_model = avg_model.module if avg_model is not None else None  # type: ignore[attr-defined]
    return run


DONE_STATUSES = ("finished", "diverged")


def resume(run_id: str, store: Store | str | os.PathLike[str] | None = None, progress: bool = True) -> Run:
    """Continue run ``run_id`` from its last checkpoint; ends exactly where an uninterrupted run would.

    A run that already ended (``finished`` or ``diverged``) is returned as stored and nothing is written (its
    ``resumed`` attribute is False). Otherwise the checkpoint is loaded and fully validated (format, run id, task,
    optimizer and its state, step) before the store is touched: a resume that fails leaves the run as it was.
    """
    validate_run_id(run_id)
    st = store if isinstance(store, Store) else Store(store)
    try:
        prev = st.load_run(run_id)
        if prev.status in DONE_STATUSES:
            prev.resumed = False  # type: ignore[attr-defined]
            return prev
        ck_path = checkpoint_dir(st, run_id) / "last.pt"
        if not ck_path.exists():
            raise ValueError(
                f"run {run_id!r} has no checkpoint to resume from (train it with checkpoint_every=N)"
            )
        cfg = prev.config
        if cfg.get("optimizer") not in optim_registry.available():
            raise ValueError(
                f"run {run_id!r} used optimizer {cfg.get('optimizer')!r}, which is not a registry name; "
                "resume it from Python with train(..., _resume_from=load_checkpoint(path))"
            )
        ck = load_checkpoint(ck_path)
        validate_checkpoint(ck, run_id, cfg, prev.created, source=f"checkpoint {str(ck_path)!r}")
        run = train(
            cfg["task"],
            optimizer=cfg["optimizer"],
            lr=cfg["lr"],
            hparams=cfg["hparams"],
            schedule=cfg["schedule"],
            schedule_kw=cfg["schedule_kw"],
            steps=cfg["steps"],
            time_budget=cfg["time_budget"],
            batch_size=cfg["batch_size"],
            seed=cfg["seed"],
            eval_every=cfg["eval_every"],
            device=cfg["device"],
            store=st,
            run_id=run_id,
            task_kw=cfg["task_kw"],
            checkpoint_every=cfg["checkpoint_every"],
            schedule_steps=cfg.get("schedule_steps"),
            averaging=cfg["averaging"],
            averaging_kw=cfg["averaging_kw"],
            progress=progress,
            _resume_from=ck,
            _resume_updated=prev.updated,
        )
        run.resumed = True  # type: ignore[attr-defined]
        return run
    finally:
        if not isinstance(store, Store):
            st.close()


class _NoBar:
    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def advance(self, step: int, loss: float) -> None:
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
    if not enabled:
        return _NoBar()
    with contextlib.suppress(Exception):
        return _RichBar(total, description, completed)
    return _NoBar()
