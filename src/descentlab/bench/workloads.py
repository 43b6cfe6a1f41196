"""Benchmark workloads (AlgoPerf rules): a task with a validation target, a metric direction, a runtime budget,
a step hint and an evaluation period.

Budgets are seconds of training time (evaluation excluded) on the reference machine: a 2-core x86 CPU (AMD EPYC)
running one trial per core with one torch thread. ``hardware_scale()`` rescales them for other hardware
(``descentlab bench calibrate --hardware`` measures it; ``$DESCENTLAB_BENCH_SCALE`` overrides it). Targets live in
``targets.json`` beside this module, written by ``descentlab bench calibrate --targets --write`` (derived from the
tuned baselines and validated on fresh seeds, ``bench.targets``). A trial stops at the target, at the budget or
after ``step_hint`` steps (schedules span ``step_hint`` steps), whichever first.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from descentlab import tasks as task_registry
from descentlab._registry import unknown_name_message
from descentlab.tasks.base import Task

SCALE_ENV = "DESCENTLAB_BENCH_SCALE"
# Seconds `reference_probe()` takes on the reference 2-core CPU, idle (docs/benchmark.md, "Calibration").
REFERENCE_SECONDS = 1.08
TARGETS_FILE = Path(__file__).with_name("targets.json")
TRACKS = ("time", "steps")


@dataclass(frozen=True)
class Workload:
    """A benchmark workload: ``task`` (registry name) with ``task_kw``, a target on ``metric`` (validation
    ``accuracy``/``loss``, or ``gap`` = f - f* for logreg), its direction, a budget in reference seconds, a step
    hint, an evaluation period and a batch size. The workload owns model, loss, evaluation, target and budget.

    ``track`` says what a trial is scored by: ``"time"`` (AlgoPerf: seconds of training time to the target, within
    ``budget``) or ``"steps"`` (modded-nanogpt's fewest-steps track: optimizer steps to the target, within
    ``step_hint`` steps; ``budget`` is then only a safety cap on the clock)."""

    name: str
    task: str
    metric: str
    target: float
    higher_is_better: bool
    budget: float
    step_hint: int
    eval_every: int
    batch_size: int
    task_kw: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    track: str = "time"

    def __post_init__(self) -> None:
        if self.track not in TRACKS:
            raise ValueError(f"workload {self.name!r}: track must be one of {TRACKS}, got {self.track!r}")
        if not (isinstance(self.budget, (int, float)) and self.budget > 0 and math.isfinite(self.budget)):
            raise ValueError(f"workload {self.name!r}: budget must be positive seconds, got {self.budget!r}")
        for nm in ("step_hint", "eval_every", "batch_size"):
            v = getattr(self, nm)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"workload {self.name!r}: {nm} must be a positive integer, got {v!r}")

    def make_task(self) -> Task:
        """A fresh task (data + model factory + loss + evaluation) for this workload."""
        return task_registry.get(self.task, **self.task_kw)

    def reached(self, value: float) -> bool:
        """Whether a validation value meets the target (``>=`` or ``<=`` by the metric's direction)."""
        if not math.isfinite(value):
            return False
        return value >= self.target if self.higher_is_better else value <= self.target

    @property
    def unit(self) -> str:
        """What a trial's cost is counted in: ``"s"`` (time track) or ``"steps"`` (steps track)."""
        return "steps" if self.track == "steps" else "s"

    def limit(self, spec: dict[str, Any] | None = None) -> float:
        """The cost a trial may spend, in :attr:`unit`: the budget (time track) or the step hint (steps track);
        from ``spec`` (a trial's workload dict, whose budget is scaled to the hardware) when given."""
        d = self.spec() if spec is None else spec
        return float(d["step_hint"] if self.track == "steps" else d["budget"])

    def clock(self, history: dict[str, list[tuple[int, float]]]) -> dict[int, float]:
        """``{step: cost so far}`` at the evaluated steps of a trial's ``history``: ``train_time`` (time track) or
        the step itself (steps track)."""
        if self.track == "steps":
            return {int(s): float(s) for s, _ in history.get(self.metric, [])}
        return {int(s): float(t) for s, t in history.get("train_time", [])}

    def spec(self) -> dict[str, Any]:
        """The workload as a plain dict (part of every trial's cache key; ``track`` only when it is not the
        default, so the keys of time-track trials are those of earlier versions)."""
        d = asdict(self)
        if d["track"] == "time":
            del d["track"]
        return d


# Reference numbers: docs/benchmark.md ("Calibration") records how they were measured.
WORKLOADS: dict[str, Workload] = {}


def register_workload(workload: Workload) -> Workload:
    """Add ``workload`` to the registry (replacing one of the same name) and return it."""
    if not isinstance(workload, Workload):
        raise TypeError(f"expected a Workload, got {type(workload).__name__}")
    WORKLOADS[workload.name] = workload
    return workload


def get_workload(name: str) -> Workload:
    """The registered workload ``name`` (ValueError with suggestions otherwise)."""
    if name not in WORKLOADS:
        raise ValueError(unknown_name_message("workload", name, sorted(WORKLOADS)))
    return WORKLOADS[name]


def available_workloads(include_tiny: bool = False, track: str = "time") -> list[str]:
    """Names of the shipped workloads of one ``track`` (``"time"``: AlgoPerf's leaderboard; ``"steps"``: the
    fewest-steps track); the ``tiny`` smoke-test workloads only on request."""
    if track not in TRACKS:
        raise ValueError(f"track must be one of {TRACKS}, got {track!r}")
    return [
        n for n, w in WORKLOADS.items() if w.track == track and (include_tiny or not n.startswith("tiny"))
    ]


def shipped_targets(path: str | os.PathLike[str] = TARGETS_FILE) -> dict[str, float]:
    """``{workload: target}`` from the shipped targets file (ValueError naming the file if it is unusable)."""
    try:
        entries = json.loads(Path(path).read_text(encoding="utf-8"))["workloads"]
        return {name: float(e["target"]) for name, e in entries.items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"targets file {str(path)!r} is unusable ({type(exc).__name__}: {exc})") from None


def _builtin() -> None:
    t = shipped_targets()
    register_workload(Workload(
        "mnist1d_mlp", "mnist1d_mlp", "accuracy", t["mnist1d_mlp"], True, budget=4.0, step_hint=2000,
        eval_every=100, batch_size=100, description="MLP 40-100-100-10 on MNIST-1D (4000 train / 1000 val)",
    ))  # fmt: skip
    register_workload(Workload(
        "mnist1d_cnn", "mnist1d_cnn", "accuracy", t["mnist1d_cnn"], True, budget=4.0, step_hint=750,
        eval_every=50, batch_size=100, description="the MNIST-1D paper's 3-layer Conv1d network",
    ))  # fmt: skip
    register_workload(Workload(
        "digits", "digits_mlp", "accuracy", t["digits"], True, budget=2.0, step_hint=1000, eval_every=50,
        batch_size=64, description="MLP 64-128-10 on scikit-learn's 8x8 digits",
    ))  # fmt: skip
    register_workload(Workload(
        "modular", "modular", "accuracy", t["modular"], True, budget=4.0, step_hint=500, eval_every=25,
        batch_size=256, task_kw={"p": 31, "op": "+", "train_fraction": 0.6, "width": 64, "depth": 1},
        description="a + b mod 31, 1-layer transformer, 60% train (grokking-style accuracy target)",
    ))  # fmt: skip
    register_workload(Workload(
        "charlm", "charlm", "loss", t["charlm"], False, budget=4.5, step_hint=150, eval_every=10,
        batch_size=32, task_kw={"width": 64, "depth": 2, "context": 32},
        description="character-level GPT (2 layers, width 64, context 32) on pydoc text; val loss target",
    ))  # fmt: skip
    register_workload(Workload(
        "logreg", "logreg", "gap", t["logreg"], False, budget=1.0, step_hint=1000, eval_every=20,
        batch_size=20, description="mu-strongly convex logistic regression (m=200, n=10); target f - f*",
    ))  # fmt: skip
    register_workload(Workload(
        "charlm_steps", "charlm", "loss", t["charlm_steps"], False, budget=60.0, step_hint=300,
        eval_every=10, batch_size=32, track="steps",
        task_kw={"width": 64, "heads": 4, "depth": 2, "context": 32, "rotary": True, "relu2": True,
                 "qk_norm": True, "zero_init": True, "softcap": 15.0},
        description="fewest-steps track: the speedrun's GPT (rotary, ReLU², QK-norm, zero-init, soft-cap 15; "
                    "width 64, 2 layers, context 32, batch 32) on pydoc text; steps to the val loss target",
    ))  # fmt: skip
    register_workload(Workload(
        "mnist1d_steps", "mnist1d_mlp", "accuracy", t["mnist1d_steps"], True, budget=60.0,
        step_hint=2000, eval_every=50, batch_size=100, track="steps",
        description="fewest-steps track: MLP 40-100-100-10 on MNIST-1D (4000 train / 1000 val); steps to the val "
                    "accuracy target",
    ))  # fmt: skip
    register_workload(Workload(
        "tiny_steps", "logreg", "gap", 1e-2, False, budget=20.0, step_hint=200, eval_every=10, batch_size=50,
        task_kw={"m": 100, "n": 5}, track="steps", description="smoke-test workload of the steps track",
    ))  # fmt: skip
    register_workload(Workload(
        "tiny", "logreg", "gap", 1e-2, False, budget=2.0, step_hint=200, eval_every=10, batch_size=50,
        task_kw={"m": 100, "n": 5}, description="smoke-test workload for the tests (seconds)",
    ))  # fmt: skip


_builtin()


def reference_probe() -> float:
    """Seconds one thread takes for a fixed piece of work (300 AdamW steps of the MNIST-1D CNN, no evaluation)."""
    import torch

    from descentlab.train import train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = train("mnist1d_cnn", "adamw", lr=1e-3, steps=300, eval_every=300, batch_size=100, store=False,
                    progress=False, device="cpu", keep_model=False)  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    return float(run.final["train_time"])


def calibrate_hardware(path: str | os.PathLike[str] | None = None, repeats: int = 3) -> float:
    """Measure this machine against the reference CPU; returns (and, given ``path``, saves as JSON) the factor
    that multiplies every budget: ``min over repeats of reference_probe() / REFERENCE_SECONDS``."""
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    scale = min(reference_probe() for _ in range(repeats)) / REFERENCE_SECONDS
    if path is not None:
        from descentlab.safe_write import write_text

        write_text(
            Path(path), json.dumps({"scale": scale, "measured": time.strftime("%Y-%m-%d %H:%M:%S")}) + "\n"
        )
    return scale


def hardware_scale(path: str | os.PathLike[str] | None = None) -> float:
    """The budget factor: ``$DESCENTLAB_BENCH_SCALE`` if set, else the ``scale`` saved at ``path`` by
    ``calibrate_hardware``, else 1.0 (the reference machine)."""
    env = os.environ.get(SCALE_ENV)
    if env:
        try:
            value = float(env)
        except ValueError:
            value = -1.0
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"${SCALE_ENV} must be a positive number, got {env!r}")
        return value
    if path is not None and Path(path).is_file():
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise ValueError(
                f"hardware calibration {str(path)!r} is unreadable ({type(exc).__name__}: {str(exc)[:80]}); "
                "delete it or run `descentlab bench calibrate` again"
            ) from None
        raw = data.get("scale") if isinstance(data, dict) else None
        value = float(raw) if isinstance(raw, (int, float)) and not isinstance(raw, bool) else math.nan
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(
                f"hardware scale in {str(path)!r} must be a positive number, got {raw!r}; "
                "delete the file or run `descentlab bench calibrate` again"
            )
        return value
    return 1.0
