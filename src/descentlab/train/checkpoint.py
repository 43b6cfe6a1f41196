"""Checkpoints: atomic save, safe load, and the resume state with its validation.

The resume state (:class:`RunState`) is everything a run needs to continue bit-identical: model, optimizer, schedule,
averaged model, the batch stream's position, the RNGs (torch, numpy, python; CUDA when present), the step and the
training clock. A checkpoint is validated and loaded into freshly built objects before the store is touched.
"""

from __future__ import annotations

import math
import os
import random
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from descentlab.optim.state_check import check_state_dict
from descentlab.store import Store

CHECKPOINT_FORMAT = "descentlab-checkpoint-1"
MODEL_FORMAT = "descentlab-model-1"
_CHECKPOINT_KEYS = ("model", "optimizer", "stream", "step", "train_time", "rng")


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
    """``torch.save`` to a temporary file, fsync, then rename over ``path`` (never a half-written file; a failed
    save removes its temporary file, and those of killed writers are removed on the next save; a symbolic link at
    ``path`` is refused: :mod:`descentlab.safe_write`)."""
    from descentlab.safe_write import atomic_open

    with atomic_open(path, "wb") as f:
        torch.save(obj, f)


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
    """Where a run's checkpoints live: ``<store dir>/<store file name>.checkpoints/<run_id>/`` (validated id)."""
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
        raise ValueError(
            f"{source} is not a descentlab resume checkpoint (format {got!r}, want {CHECKPOINT_FORMAT!r})"
        )
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
    if (
        created is not None
        and head.get("run_created") is not None
        and float(head["run_created"]) != float(created)
    ):
        raise ValueError(
            f"{source} was written by an earlier run named {run_id!r} (since replaced), not by the stored one"
        )
    if head.get("optimizer") != config.get("optimizer"):
        raise ValueError(
            f"{source} holds the state of optimizer {head.get('optimizer')!r}, not of run {run_id!r}'s "
            f"optimizer {config.get('optimizer')!r}"
        )
    step, steps = ck["step"], config.get("steps")
    if (
        isinstance(step, bool)
        or not isinstance(step, int)
        or step < 0
        or (steps is not None and step > steps)
    ):
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
    not fit them: parameter names and shapes, the optimizer's class, groups and hyper-parameter keys, every tensor of
    its state (keys per parameter, shape, dtype, device), the stream."""
    what = f"the checkpoint of run {run_id!r}"
    head = ck.get("config") or {}
    want_cls = head.get("optimizer_class")
    if want_cls is not None and want_cls != type(opt).__qualname__:
        raise ValueError(f"{what} holds a {want_cls} state; this run builds a {type(opt).__qualname__}")
    fresh_keys = [set(g) for g in opt.param_groups]
    saved = ck["optimizer"] if isinstance(ck.get("optimizer"), dict) else {}
    saved_groups = saved.get("param_groups") if isinstance(saved.get("param_groups"), list) else []
    for i, (want, group) in enumerate(zip(fresh_keys, saved_groups)):
        lost = sorted(want - set(group) - {"params"}) if isinstance(group, dict) else []
        if lost:
            raise ValueError(
                f"{what} does not fit its optimizer {type(opt).__qualname__}: parameter group {i} has no "
                f"{', '.join(map(repr, lost))} (a state saved by another optimizer?)"
            )
    try:
        model.load_state_dict(ck["model"])
        # every optimizer-state tensor checked against a fresh copy first: fused kernels trust their shapes
        check_state_dict(opt, ck["optimizer"])
        opt.load_state_dict(ck["optimizer"])
        if sched is not None and ck.get("schedule") is not None:
            sched.load_state_dict(ck["schedule"])
        if avg_model is not None and ck.get("averaged") is not None:
            avg_model.load_state_dict(ck["averaged"])
        stream.load_state_dict(ck["stream"])
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ValueError(
            f"{what} does not fit the run it should continue: {type(exc).__name__}: {first}"
        ) from None
    for i, (want, group) in enumerate(zip(fresh_keys, opt.param_groups)):
        lost = sorted(want - set(group))
        if lost:
            raise ValueError(
                f"{what} does not fit its optimizer {type(opt).__qualname__}: parameter group {i} has no "
                f"{', '.join(map(repr, lost))} (a state saved by another optimizer?)"
            )


@dataclass
class RunState:
    """The resume state of a run: the objects being trained and where the run stands (step, clock, last eval)."""

    model: nn.Module
    opt: torch.optim.Optimizer
    sched: Any
    avg_model: torch.optim.swa_utils.AveragedModel | None
    stream: Any
    step: int = 0
    train_time: float = 0.0
    last_eval: dict[str, float] = field(default_factory=dict)

    def checkpoint(self, task: str, optimizer: str, run_id: str, created: float | None) -> dict[str, Any]:
        """The full checkpoint (format ``descentlab-checkpoint-1``), header first, RNG states last."""
        return {
            "format": CHECKPOINT_FORMAT,
            "config": {
                "task": task,
                "optimizer": optimizer,
                "optimizer_class": type(self.opt).__qualname__,
                "run_id": run_id,
                "run_created": created,
            },
            "last_eval": {k: float(v) for k, v in self.last_eval.items() if isinstance(v, (int, float))},
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "schedule": self.sched.state_dict() if self.sched is not None else None,
            "averaged": self.avg_model.state_dict() if self.avg_model is not None else None,
            "stream": self.stream.state_dict(),
            "step": self.step,
            "train_time": self.train_time,
            "rng": _rng_state(),
        }

    def restore(
        self, ck: dict[str, Any], run_id: str, config: Mapping[str, Any], created: float | None
    ) -> None:
        """Validate ``ck`` for run ``run_id`` and load it, RNGs included (ValueError before the store is touched if it does not fit)."""
        validate_checkpoint(ck, run_id, config, created)
        _restore(ck, self.model, self.opt, self.sched, self.avg_model, self.stream, run_id)
        rng_before = _rng_state()
        try:
            _set_rng_state(ck["rng"])
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
            _set_rng_state(rng_before)
            raise ValueError(
                f"the checkpoint of run {run_id!r} has an unusable random state ({type(exc).__name__}: {exc})"
            ) from None
        self.step, self.train_time = int(ck["step"]), float(ck["train_time"])
        le = ck.get("last_eval")
        self.last_eval = {str(k): float(v) for k, v in le.items()} if isinstance(le, dict) else {}

    def save_model(self, path: Path, config: Mapping[str, Any]) -> None:
        """Write the trained model with its configuration (``final.pt``, format ``descentlab-model-1``)."""
        atomic_save({"format": MODEL_FORMAT, "config": config, "model": self.model.state_dict()}, path)
