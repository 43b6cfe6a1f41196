"""The one training loop: ``train(task, optimizer, ...) -> Run`` and ``resume(run_id)``.

``train`` checks its arguments into a :class:`~descentlab.train.config.RunConfig`, opens the run in the store,
builds the resume state (resuming: validates and loads the checkpoint before the store is touched) and runs
:class:`_Loop`, which reads top to bottom: step, record, evaluate on cadence, callbacks, checkpoint, stop. Whether it
runs in one process or data-parallel is the strategy's business (``descentlab.train.parallel``), not the loop's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from descentlab import optim as optim_registry
from descentlab import schedules as schedule_registry
from descentlab.store import Run, Store, default_path, validate_run_id
from descentlab.tasks.base import Task
from descentlab.threads import choose_threads, forward_flops, torch_threads
from descentlab.train.checkpoint import (
    RunState,
    _seed_everything,
    atomic_save,
    checkpoint_dir,
    load_checkpoint,
    validate_checkpoint,
)
from descentlab.train.config import OptimizerSpec, RunConfig, configure, train_keywords
from descentlab.train.hooks import Callback, Diverged, StepContext, as_callbacks
from descentlab.train.interrupt import Interrupted, _DeferredInterrupt, signal_name
from descentlab.train.parallel import SingleProcess
from descentlab.train.progress import _escape_markup
from descentlab.train.recorder import Recorder

DONE_STATUSES = ("finished", "diverged")
Batch = tuple[torch.Tensor, ...]


def _call_mode(optimizer: torch.optim.Optimizer, mode: str) -> None:
    """Switch Schedule-Free style optimizers (and wrappers around them) between train and eval mode."""
    for opt in (optimizer, getattr(optimizer, "base_optimizer", None)):
        fn = getattr(opt, mode, None) if opt is not None else None
        if callable(fn):
            fn()
            return


def _finite_params(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def _make_optimizer(optimizer: OptimizerSpec, model: nn.Module, config: RunConfig) -> torch.optim.Optimizer:
    """A registry optimizer with the configured lr and hyper-parameters, or what the user's callable builds."""
    if isinstance(optimizer, str):
        return optim_registry.create(optimizer, model, lr=config.lr, **config.hparams)
    opt = optimizer(model)
    if not isinstance(opt, torch.optim.Optimizer):
        raise TypeError(f"optimizer callable must return a torch.optim.Optimizer, got {type(opt).__name__}")
    return opt


def _averaged(model: nn.Module, config: RunConfig) -> torch.optim.swa_utils.AveragedModel | None:
    """The weight-averaging model (``ema`` with ``averaging_kw['decay']``, or ``swa``), None without averaging."""
    swa = torch.optim.swa_utils
    if config.averaging == "ema":
        decay = float(config.averaging_kw.get("decay", 0.999))
        return swa.AveragedModel(model, multi_avg_fn=swa.get_ema_multi_avg_fn(decay), use_buffers=True)
    if config.averaging == "swa":
        return swa.AveragedModel(model, use_buffers=True)
    return None


def _threads(config: RunConfig, threads: int | str, task: Task, model: nn.Module) -> RunConfig:
    """The configuration with the torch thread count for the loop chosen (``descentlab.threads``) and recorded:
    "auto" counts the model's forward FLOPs on a slice of the training data (nothing is drawn from the stream)."""
    flops = None
    if threads == "auto":
        data = task.train_data
        if isinstance(data, tuple) and data and isinstance(data[0], torch.Tensor):
            flops = forward_flops(model, data[0][: config.batch_size].to(config.device))
    choice = choose_threads(threads, flops=flops)
    return dataclasses.replace(config, threads=choice.threads, threads_reason=choice.reason)


def _build(config: RunConfig, task: Task, optimizer: OptimizerSpec, ex: SingleProcess) -> RunState:
    """Everything deterministically from the seed: model, optimizer, schedule, batch stream, averaged model."""
    _seed_everything(config.seed)
    device = torch.device(config.device)
    task.to(device)
    model = task.make_model(config.seed).to(device)
    opt = _make_optimizer(optimizer, model, config)
    sched = None
    if config.schedule:
        sched = schedule_registry.create(config.schedule, opt, config.schedule_span, **config.schedule_kw)
    stream = task.batches(config.batch_size, config.seed)
    ex.check_stream(stream, config.batch_size)
    return RunState(model, opt, sched, _averaged(model, config), stream)


class _Loop:
    """One call of ``train()`` once everything is built: the loop, its evaluation and how the run ends."""

    def __init__(
        self,
        config: RunConfig,
        task: Task,
        ex: SingleProcess,
        rec: Recorder,
        state: RunState,
        intr: _DeferredInterrupt,
        callbacks: list[Callback],
        stop_when: Callable[[Mapping[str, float]], bool] | None,
    ):
        self.config, self.task, self.ex, self.rec, self.state, self.intr = config, task, ex, rec, state, intr
        self.callbacks, self.stop_when = callbacks, stop_when
        rec.run_id = ex.agree(rec.run_id)  # data-parallel: rank 0's id on every rank
        self.module = ex.attach(state.model, state.opt)  # what the loss sees: the model, or its DDP wrapper
        self.avg_start = int(config.averaging_kw.get("start", 0))
        self.batch: Batch = ()
        self.mid_step = False  # True while model, optimizer, stream and step count may disagree
        self.wall0 = 0.0
        self.keep_final_state = False  # also write the full state (last.pt) when the run ends
        self.save_final = True  # write final.pt when the run ends

    def loop(self, bar: Any) -> str:
        """Step, record, evaluate on cadence, call back, checkpoint; stop at the budget, a verdict or Ctrl-C."""
        s, cfg = self.state, self.config
        if s.step == 0:
            s.last_eval = self.evaluate()
        while True:
            self.intr.stop()  # Ctrl-C or SIGTERM arrived: stop here, where the state is whole
            if cfg.budget_spent(s.step, s.train_time):
                return ""
            loss = self.step()
            self.rec.record(s.step, "batch_loss", loss)
            if not math.isfinite(loss):
                raise Diverged(f"loss became {loss} at step {s.step}")
            bar.advance(s.step, loss)
            if s.step % cfg.eval_every == 0 or cfg.budget_spent(s.step, s.train_time):
                if not _finite_params(s.model):
                    raise Diverged(f"parameters became non-finite at step {s.step}")
                s.last_eval = self.evaluate()
                stop = self.ex.verdict(s.last_eval, self.stop_when, s.step)  # the same on every process
                self.rec.flush()
                if stop:
                    return f"stopped at step {s.step}: stop_when was met"
            self.call_back()
            if cfg.checkpoint_every and s.step % cfg.checkpoint_every == 0:
                self.save_checkpoint()

    def step(self) -> float:
        """One optimizer step on the next batch; returns the batch's loss (the mean over processes)."""
        s = self.state
        self.mid_step = True
        t0 = time.perf_counter()
        self.batch = self.ex.begin_step(next(s.stream))
        loss = s.opt.step(self.closure)
        if s.sched is not None:
            s.sched.step()
        s.step += 1
        loss_value = float(loss.detach()) if loss is not None else math.nan
        if s.avg_model is not None and s.step > self.avg_start:
            s.avg_model.update_parameters(s.model)
        # work the optimizer did for evaluation only (side averages' snapshots) stays off the clock, as evaluation
        sides = getattr(s.opt, "side_averages", None)
        off_clock = float(sides.untimed_seconds()) if sides is not None else 0.0
        s.train_time += self.ex.step_seconds(time.perf_counter() - t0 - off_clock)
        self.mid_step = False
        return loss_value

    def closure(self) -> torch.Tensor:
        """Forward and backward on this process's batch (L-BFGS and SAM call it more than once per step)."""
        self.state.opt.zero_grad(set_to_none=True)
        with self.ex.sync():
            with self.autocast():
                loss = self.task.loss(self.module, self.batch)
            loss.backward()
        return self.ex.mean_loss(loss)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """``torch.autocast`` in bfloat16 on the run's device when ``precision="bf16"``, else nothing."""
        if self.config.precision != "bf16":
            return contextlib.nullcontext()
        return torch.autocast(device_type=torch.device(self.config.device).type, dtype=torch.bfloat16)

    def evaluate(self) -> dict[str, float]:
        """Evaluate (outside the training clock, on the writing process) with Schedule-Free style optimizers in
        eval mode on every process, so that parameters stay identical."""
        _call_mode(self.state.opt, "eval")
        try:  # back in train mode whatever happens (an interrupt inside must not leave eval-mode parameters)
            return self.ex.on_main(self._measure)
        finally:
            _call_mode(self.state.opt, "train")

    def _measure(self) -> dict[str, float]:
        s, record = self.state, self.rec.record
        res = dict(self.task.evaluate(s.model))
        if s.avg_model is not None and s.step > self.avg_start:
            res.update({f"avg_{k}": v for k, v in self.task.evaluate(s.avg_model.module).items()})
        sides = getattr(s.opt, "side_averages", None)  # optim.SideAverages: more weights evaluated, `k@side`
        for side, swapped, extra in sides.side_evaluations() if sides is not None else ():
            with swapped():
                res.update({f"{k}@{side}": v for k, v in self.task.evaluate(s.model).items()})
            res.update({f"{k}@{side}": v for k, v in extra.items()})
        for k, v in res.items():
            record(s.step, k, v)
        record(s.step, "train_time", s.train_time)
        record(s.step, "wall_time", time.perf_counter() - self.wall0)
        record(s.step, "lr", s.opt.param_groups[0]["lr"])
        return res

    def call_back(self) -> None:
        """Call the callbacks due at this step; record what they log or return."""
        s = self.state
        for cb in self.callbacks:
            if s.step % cb.every == 0:
                ctx = StepContext(s.step, s.model, s.opt, self.task)
                out = cb.fn(ctx)
                for k, v in {**ctx.metrics, **dict(out or {})}.items():
                    self.rec.record(s.step, k, v)

    def save_checkpoint(self) -> None:
        """Write the pending rows, then the full resume state to ``last.pt`` (atomically)."""
        folder = self.rec.checkpoints
        if folder is None:
            return
        self.rec.flush()
        ck = self.state.checkpoint(self.config.task, self.config.optimizer, self.rec.run_id, self.rec.created)
        atomic_save(ck, folder / "last.pt")

    def run(self, progress: bool) -> Run:
        """Train until the run ends (finished, stopped, diverged, interrupted or failed) and write it down."""
        s = self.state
        self.wall0 = time.perf_counter()
        s.model.train()
        _call_mode(s.opt, "train")
        # the names are the user's: shown as text in the bar, never as markup
        description = _escape_markup(f"{self.task.name} · {self.config.optimizer}")
        bar = sys.modules[__package__]._progress(  # looked up on the package: tests replace it there
            progress and self.ex.writes, total=self.config.steps, description=description, completed=s.step
        )
        try:
            with bar:
                note = self.loop(bar)
            status = "finished"
        except Diverged as exc:
            status, note = "diverged", str(exc)
            self.rec.record(s.step, "diverged_step", s.step)
        except KeyboardInterrupt:
            status, note = "interrupted", self.interrupted()
        except Exception as exc:
            self.intr.__exit__()
            self.rec.fail(exc, s.step)
            raise
        return self.write_down(status, note)

    def interrupted(self) -> str:
        """After Ctrl-C: checkpoint at the step boundary (not inside a step) and say how to continue."""
        self.intr.hold = True  # more signals while the run is written down: remembered, not raised
        step, run_id, by = self.state.step, self.rec.run_id, signal_name(self.intr.signum)
        # A second signal inside a step: this state is half-updated, keep the last checkpoint.
        if self.mid_step:
            return (
                f"interrupted ({by}) inside step {step + 1} (a second signal), not checkpointed there; "
                f"`descentlab resume {run_id}` continues from the last checkpoint"
            )
        try:
            self.save_checkpoint()  # a signal leaves the run resumable whenever it has a store
        except OSError as exc:  # a full disk: the last periodic checkpoint (if any) stays valid
            return (
                f"interrupted ({by}) at step {step}; its checkpoint could not be written ({exc.strerror or exc}), "
                f"`descentlab resume {run_id}` continues from the last one if there is one"
            )
        return f"interrupted ({by}) at step {step}; `descentlab resume {run_id}` continues it"

    def write_down(self, status: str, note: str) -> Run:
        """Store the status and final metrics (and ``final.pt`` for an ended run); return the Run."""
        self.intr.hold = True
        s, config = self.state, self.config.record()
        final = {k: v for k, v in s.last_eval.items() if isinstance(v, (int, float))}
        final.update(
            {"step": s.step, "train_time": s.train_time, "wall_time": time.perf_counter() - self.wall0}
        )
        if status == "diverged":
            final["diverged_step"] = s.step
        folder = self.rec.checkpoints
        if status in DONE_STATUSES and folder is not None:
            try:  # the model is on disk before the run is called finished (a full disk must not lose it)
                if self.keep_final_state:  # a study reopens the run from its end state when run again
                    self.save_checkpoint()
                if self.save_final:
                    s.save_model(folder / "final.pt", config)
            except OSError as exc:
                self.intr.__exit__()
                self.rec.fail(exc, s.step)  # not finished: `resume` finishes it from the last checkpoint
                raise
        self.rec.finish(status, final, note)
        run = Run(
            id=self.rec.run_id, config=config, status=status, final=final, history=self.rec.history, note=note
        )
        run.signal = self.intr.signum if status == "interrupted" else None  # type: ignore[attr-defined]
        return run


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
    threads: int | str = "auto",
    precision: str = "fp32",
    _keep_final_state: bool = False,
    _reopen: str | None = None,
    save_final: bool = True,
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
    checkpoint). SIGTERM is handled the same way (``run.signal`` says which one stopped it). Inside a study or tour
    that is already stopping, ``train`` raises :class:`~descentlab.train.interrupt.Interrupted` before it writes
    anything. ``final.pt`` is on disk before the run is marked finished (an OSError there marks it failed).

    ``threads``: torch threads for the loop, "auto" (default: one for models under 50 MFLOP per forward pass,
    else the cores not busy elsewhere, never above the caller's setting; see ``descentlab.threads``) or a count.
    The choice is recorded in the run's config; the caller's thread setting is restored on return.
    ``save_final=False`` writes no ``final.pt`` (for runs whose weights no later step reads).
    ``precision="bf16"`` runs the forward pass and the loss under ``torch.autocast`` in bfloat16 (fast on GPUs and
    AMX CPUs, emulated on AVX2); parameters, gradients, optimizer state and evaluation stay in fp32.
    """
    choose_threads(threads, flops=0.0)  # a bad ``threads`` is refused before any work
    config, task_obj, ex, run_id = configure(
        task, optimizer, lr=lr, hparams=hparams, schedule=schedule, schedule_kw=schedule_kw, steps=steps,
        time_budget=time_budget, batch_size=batch_size, seed=seed, eval_every=eval_every, device=device,
        task_kw=task_kw, checkpoint_every=checkpoint_every, averaging=averaging, averaging_kw=averaging_kw,
        schedule_steps=schedule_steps, distributed=distributed, run_id=run_id, overwrite=overwrite, store=store,
        precision=precision,
    )  # fmt: skip
    resuming, cbs = _resume_from is not None, as_callbacks(callbacks, config.eval_every)
    with Recorder(store, run_id, ex.writes) as rec, contextlib.ExitStack() as stack:
        rec.check(resuming, overwrite)
        state = _build(config, task_obj, optimizer, ex)
        config = _threads(config, threads, task_obj, state.model)
        stack.enter_context(torch_threads(config.threads))  # restored on return, whatever happens
        if _resume_from is not None:  # validate and load everything before the store is touched
            state.restore(_resume_from, run_id, config.record(), rec.created)
        if _reopen is not None:  # a study run again: only what it stored under this id (same configuration)
            stored = _stored_as_configured(rec, run_id, config)
            if _reopen == "ended":  # the run as it ended, rebuilt from its final state; nothing written
                return _reopened(stored, state, keep_model)
        intr = stack.enter_context(ex.interrupts())  # from here on signals wait for a step boundary
        intr.stop()  # the study or tour around this call is stopping: no run starts
        rec.begin(config.record(), overwrite, state.step if resuming else None, _resume_updated)
        loop = _Loop(config, task_obj, ex, rec, state, intr, cbs, stop_when)
        loop.keep_final_state = _keep_final_state
        loop.save_final = save_final
        run = loop.run(progress)
    if intr.pending and run.status != "interrupted":
        raise Interrupted(intr.signum or 2)  # a signal came while the run was written down: stored, then stop
    if keep_model:
        run.model = state.model  # type: ignore[attr-defined]
        run.optimizer = state.opt  # type: ignore[attr-defined]
        run.averaged_model = state.avg_model.module if state.avg_model is not None else None  # type: ignore[attr-defined]
    return run


_UNCOMPARED = ("threads", "threads_reason")  # chosen by the machine's load ("auto"), not by the run


def comparable_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A run's configuration as the store keeps it (JSON round trip), without the thread count chosen for it."""
    import json

    from descentlab.store import _dumps

    return {k: v for k, v in json.loads(_dumps(dict(config))).items() if k not in _UNCOMPARED}


def _stored_as_configured(rec: Recorder, run_id: str, config: RunConfig) -> Run:
    """The stored run ``run_id``; ValueError if its stored configuration is not ``config``."""
    if rec.store is None:
        raise ValueError("reopening a run needs a store")
    stored = rec.store.load_run(run_id)
    if comparable_config(stored.config) != comparable_config(config.record()):
        raise ValueError(f"run {run_id!r} in the store was trained with another configuration")
    return stored


def _reopened(stored: Run, state: RunState, keep_model: bool) -> Run:
    """The stored (ended) run with its model and optimizer rebuilt from its final full state."""
    if keep_model:
        stored.model = state.model  # type: ignore[attr-defined]
        stored.optimizer = state.opt  # type: ignore[attr-defined]
        stored.averaged_model = state.avg_model.module if state.avg_model is not None else None  # type: ignore[attr-defined]
    stored.signal = None  # type: ignore[attr-defined]
    return stored


def resume(run_id: str, store: Store | str | os.PathLike[str] | None = None, progress: bool = True) -> Run:
    """Continue run ``run_id`` from its last checkpoint; ends exactly where an uninterrupted run would.

    A run that already ended (``finished`` or ``diverged``) is returned as stored and nothing is written (its
    ``resumed`` attribute is False). Otherwise the checkpoint is loaded and fully validated (format, run id, task,
    optimizer and its state, step) before the store is touched: a resume that fails leaves the run as it was.
    """
    validate_run_id(run_id)
    if not isinstance(store, Store):  # a missing store is reported, never created empty
        where = Path(store) if store is not None else default_path()
        if not where.exists():
            raise ValueError(f"no store at {str(where)!r}; nothing to resume")
    st = store if isinstance(store, Store) else Store(store)
    try:
        prev = st.load_run(run_id)
        if isinstance(prev.config.get("population"), dict):  # a member: its whole population continues
            from descentlab.train.population import resume_many

            return next(r for r in resume_many(run_id, store=st, progress=progress) if r.id == run_id)
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
        kw = train_keywords(cfg)
        if isinstance(cfg.get("threads"), int) and not isinstance(cfg.get("threads"), bool):
            kw["threads"] = cfg["threads"]  # the thread count it ran with: bitwise results depend on it
        run = train(cfg["task"], store=st, run_id=run_id, progress=progress, _resume_from=ck,
                    _resume_updated=prev.updated, **kw)  # fmt: skip
        run.resumed = True  # type: ignore[attr-defined]
        return run
    finally:
        if not isinstance(store, Store):
            st.close()
