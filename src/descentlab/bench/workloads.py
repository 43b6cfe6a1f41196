"""Benchmark workloads (AlgoPerf rules): a task with a validation target, a metric direction, a runtime budget,
a step hint and an evaluation period.

Budgets are seconds of training time (evaluation excluded) on the reference machine: a 2-core x86 CPU (AMD EPYC)
running one trial per core with one torch thread. ``hardware_scales()`` rescales them for other hardware, one factor
per workload (``descentlab bench calibrate --hardware`` measures them the way trials run; ``$DESCENTLAB_BENCH_SCALE``
overrides them with one number). Targets live in
``targets.json`` beside this module, written by ``descentlab bench calibrate --targets --write`` (derived from the
tuned baselines and validated on fresh seeds, ``bench.targets``). A trial stops at the target, at the budget or
after ``step_hint`` steps (schedules span ``step_hint`` steps), whichever first.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from descentlab import tasks as task_registry
from descentlab._registry import unknown_name_message
from descentlab.tasks.base import Task

SCALE_ENV = "DESCENTLAB_BENCH_SCALE"
# Seconds `reference_probe()` took on the first reference 2-core CPU (Zen 3), idle, 2026-11-29. Kept for
# benchmarks/bench_workload_costs.py; budgets are no longer calibrated with it (docs/benchmark.md, "Calibration").
REFERENCE_SECONDS = 1.08
# Training seconds per step of the probe (NAdamW at its default point, the workload's own trial: processes executor,
# 2 workers, one torch thread each) on the reference machine: the idle 2-core AMD EPYC Zen 4 (family 25 model 17,
# avx512f + avx512_bf16, no AMX), torch 2.13.0+cpu, 2026-12-08 (`bench calibrate --hardware`'s step_seconds there).
# A workload's budget factor on another machine is its probe's step seconds there over these. Each is the median of
# four calibrations on that machine (repeats 2, 2, 3, 3); their spread was up to +-13 % (logreg, digits: overhead-
# bound steps of ~0.3-0.5 ms) and +-5 % for the rest, which bounds how well a factor transfers.
REFERENCE_STEP_SECONDS: dict[str, float] = {
    "logreg": 0.3353e-3,
    "digits": 0.5255e-3,
    "mnist1d_mlp": 0.7742e-3,
    "mnist1d_cnn": 2.3105e-3,
    "modular": 4.7222e-3,
    "charlm": 16.489e-3,
}
PROBE_ALGORITHM = "nadamw"
PROBE_SEED = 900_000
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


def calibrate_hardware(
    path: str | os.PathLike[str] | None = None,
    repeats: int = 3,
    workers: int = 2,
    executor: str = "processes",
) -> dict[str, float]:
    """Measure this machine's budget factors the way trials run: ``repeats`` x ``workers`` probe trials per
    workload of ``REFERENCE_STEP_SECONDS`` (NAdamW at its default point, ``workers`` at a time on one workload, so the
    contention of a board is in the number), median training seconds per step over
    ``REFERENCE_STEP_SECONDS[w]``. Returns ``{workload: factor, "*": geometric mean}`` (``"*"`` serves workloads
    without a reference) and, given ``path``, saves it with the raw step seconds as JSON."""
    for nm, v in (("repeats", repeats), ("workers", workers)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{nm} must be a positive integer, got {v!r}")
    step_seconds = probe_step_seconds(list(REFERENCE_STEP_SECONDS), repeats, workers, executor)
    factors = {w: step_seconds[w] / REFERENCE_STEP_SECONDS[w] for w in step_seconds}
    factors["*"] = statistics.geometric_mean(factors.values()) if factors else 1.0
    if path is not None:
        from descentlab.safe_write import write_text

        data = {"scale": factors["*"], "workloads": {w: v for w, v in factors.items() if w != "*"},
                "step_seconds": step_seconds, "workers": workers, "probe": PROBE_ALGORITHM,
                "measured": time.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip
        write_text(Path(path), json.dumps(data) + "\n")
    return factors


def probe_step_seconds(
    workloads: list[str], repeats: int = 3, workers: int = 2, executor: str = "processes"
) -> dict[str, float]:
    """Median training seconds per step of ``repeats`` x ``workers`` probe trials (``PROBE_ALGORITHM`` at its default
    point, full step hint, a budget no probe reaches) on each workload, run by the benchmark's own executor into a
    throw-away store, ``workers`` at a time on one workload."""
    import tempfile

    from descentlab.bench.algorithms import get_algorithm
    from descentlab.bench.runner import execute
    from descentlab.bench.trial import make_spec

    alg = get_algorithm(PROBE_ALGORITHM)
    specs = []
    for name in workloads:
        wl = get_workload(name)
        specs += [make_spec(wl, alg, alg.default, PROBE_SEED + i, budget=1e3 * wl.budget, study=i)
                  for i in range(repeats * workers)]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        result = execute(specs, executor, workers, store=Path(tmp) / "probe.db", progress=False)
        out = {}
        for name in workloads:
            per_step = [r["train_time"] / r["step"] for s in specs if s["workload"]["name"] == name
                        for r in [(result.results.get(s["key"]) or {}).get("final") or {}] if r.get("step")]  # fmt: skip
            if not per_step:
                raise ValueError(
                    f"the hardware probe on workload {name!r} trained no step; see the store's errors"
                )
            out[name] = statistics.median(per_step)
    return out


def scale_for(scale: float | dict[str, float], workload: str) -> float:
    """The budget factor of ``workload`` from one number or a per-workload mapping (``"*"``: the others)."""
    if isinstance(scale, dict):
        value = scale.get(workload, scale.get("*"))
    else:
        value = scale
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (value > 0 and math.isfinite(value))
    ):
        raise ValueError(f"budget scale for workload {workload!r} must be a positive number, got {value!r}")
    return float(value)


def hardware_scales(path: str | os.PathLike[str] | None = None) -> float | dict[str, float]:
    """The budget factors: ``$DESCENTLAB_BENCH_SCALE`` (one number for every workload) if set, else the per-workload
    factors saved at ``path`` by ``calibrate_hardware`` (``{workload: factor, "*": the rest}``; a file of the older
    format gives its one ``scale``), else 1.0 (the reference machine)."""
    overall = hardware_scale(path)
    if os.environ.get(SCALE_ENV) or path is None or not Path(path).is_file():
        return overall
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    per = data.get("workloads") if isinstance(data, dict) else None
    if per is None:
        return overall
    if not isinstance(per, dict):
        raise ValueError(f"hardware calibration {str(path)!r}: 'workloads' must map names to factors, got {per!r}; "
                         "run `descentlab bench calibrate --hardware` again")  # fmt: skip
    out = {"*": overall}
    for w, v in per.items():
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 and math.isfinite(v)
        if not ok:
            raise ValueError(f"hardware scale of workload {w!r} in {str(path)!r} must be a positive number, got "
                             f"{v!r}; run `descentlab bench calibrate --hardware` again")  # fmt: skip
        out[str(w)] = float(v)
    return out


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
