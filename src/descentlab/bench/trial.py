"""One benchmark trial: a pure function of (workload, algorithm, hyper-parameters, seed) -> a plain result dict.

``run_trial(spec)`` trains through ``descentlab.train`` with no store (the driver alone writes the store, so the same
function runs in-process, in a spawned worker or as a Ray task) and stops at the first evaluation that meets the
target, at ``step_hint`` steps or at the budget. Time-to-target is ``train_time`` (train()'s clock, evaluation
excluded) at the first evaluation meeting the target, ``inf`` when none does (divergence included); on a
steps-track workload it is the step of that evaluation instead (``Workload.track``).

``run_distributed_trial(spec)`` runs the same trial data-parallel on several devices, one process per rank under
``torchrun`` (``train(..., distributed=True)``): the workload's batch size is the global batch, rank 0 alone
evaluates and returns the result (``None`` on the other ranks), so the result is produced once.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import traceback
from collections.abc import Mapping
from typing import Any

from descentlab.bench.algorithms import Algorithm
from descentlab.bench.workloads import Workload

KEY_VERSION = "descentlab-bench-1"
CURVE_METRICS = ("loss", "accuracy", "gap", "train_loss", "train_time", "lr")


def _canonical(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _canonical(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    return obj


def trial_key(
    workload: Mapping[str, Any],
    algorithm: Mapping[str, Any],
    hparams: Mapping[str, Any],
    seed: int,
    world_size: int = 1,
) -> str:
    """Stable cache key: SHA-256 of the canonical JSON (sorted keys, no spaces) of (workload, algorithm, hparams,
    seed), where workload and algorithm are their full spec dicts (so changing a target or a space changes it).
    A data-parallel trial (``world_size`` > 1) has its own key: its time-to-target is not a one-process one."""
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size must be a positive integer, got {world_size!r}")
    payload = {
        "version": KEY_VERSION,
        "workload": _canonical(workload),
        "algorithm": _canonical(algorithm),
        "hparams": _canonical(hparams),
        "seed": int(seed),
    }
    if world_size > 1:  # one-process keys stay as they were (existing caches remain valid)
        payload["world_size"] = world_size
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


MAX_SEED = 2**31 - 1
"""Largest trial seed: the training loop derives data-order seeds from it that must stay within torch's range."""


def check_seed(seed: object, name: str = "seed") -> int:
    """``seed`` if it is an integer in [0, MAX_SEED]; ValueError naming the value otherwise."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"{name} must be an integer in [0, {MAX_SEED}], got {seed!r}")
    return seed


def make_spec(
    workload: Workload,
    algorithm: Algorithm,
    hparams: Mapping[str, Any],
    seed: int,
    budget: float | None = None,
    step_hint: int | None = None,
    study: int = 0,
    trial: int = 0,
    tuning: str = "external",
    world_size: int = 1,
) -> dict[str, Any]:
    """A JSON-ready trial specification (with its ``key``); ``budget``/``step_hint`` override the workload's;
    ``world_size`` > 1 marks a data-parallel trial (its own cache key, ``spec["world_size"]``)."""
    check_seed(seed, "trial seed")
    wspec = workload.spec()
    if budget is not None:
        wspec["budget"] = float(budget)
    if step_hint is not None:
        wspec["step_hint"] = int(step_hint)
    aspec = algorithm.spec()
    hp = dict(hparams)
    spec = {
        "key": trial_key(wspec, aspec, hp, seed, world_size),
        "workload": wspec,
        "algorithm": aspec,
        "hparams": hp,
        "seed": int(seed),
        "study": int(study),
        "trial": int(trial),
        "tuning": tuning,
    }
    if world_size > 1:
        spec["world_size"] = world_size
    return spec


def _tuplify_betas(hparams: dict[str, Any]) -> dict[str, Any]:
    if isinstance(hparams.get("betas"), list):
        hparams["betas"] = tuple(hparams["betas"])
    return hparams


def time_to_target(
    workload: Workload, history: Mapping[str, list[tuple[int, float]]], gradient_evaluations: int = 1
) -> float:
    """The cost at the first evaluation whose ``workload.metric`` meets the target, in the workload's unit:
    ``train_time`` seconds (time track) or gradient evaluations (steps track: the step times
    ``gradient_evaluations`` per step, 2 for SAM); ``inf`` if none does."""
    clock = workload.clock(dict(history))
    scale = gradient_evaluations if workload.track == "steps" else 1
    for step, value in history.get(workload.metric, []):
        if workload.reached(value) and step in clock:
            return float(clock[step]) * scale
    return math.inf


def steps_to_target(workload: Workload, history: Mapping[str, list[tuple[int, float]]]) -> float:
    """The optimizer step of the first evaluation meeting the target (``inf`` if none does): the step count that
    ``bench.board`` multiplies by a cell's pooled step cost (the modeled time-to-target)."""
    for step, value in history.get(workload.metric, []):
        if workload.reached(value):
            return float(step)
    return math.inf


def run_trial(spec: Mapping[str, Any], threads: int | None = None) -> dict[str, Any] | list[dict[str, Any]]:
    """Run one trial (see the module docstring) and return its result; exceptions become ``status='failed'``.
    A shared training (``{"group": [specs]}`` from :func:`shared_trainings`) returns one result per spec.

    ``threads`` sets ``torch.set_num_threads`` in this process first (executors pass cores // workers).
    """
    if "group" in spec:
        return _execute_group(list(spec["group"]), threads)
    return _execute(spec, threads, "cpu", False)


SIDE_METHODS = ("lawa", "ema")
"""Evaluation hooks that can ride on their base's training (``optim.SideAverages``)."""


def _training_signature(spec: Mapping[str, Any]) -> str | None:
    """What a trial trains, independent of what it evaluates: its spec without the algorithm's name and evaluation
    hook; None for a trial that cannot share its training (data-parallel, or a hook other than LAWA/EMA)."""
    hook = spec["algorithm"].get("prepare_for_eval")
    if spec.get("world_size", 1) > 1 or (hook is not None and hook.get("method") not in SIDE_METHODS):
        return None
    alg = {k: v for k, v in spec["algorithm"].items() if k not in ("name", "prepare_for_eval")}
    payload = [spec["workload"], alg, spec["hparams"], spec["seed"], spec.get("tuning")]
    return json.dumps(_canonical(payload), sort_keys=True, allow_nan=False)


def shared_trainings(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``specs`` with every set of trials that train the same run and differ only in a LAWA/EMA evaluation hook
    (nadamw, nadamw_last5 and nadamw_snapema on one point and seed) merged into one item ``{"group": [...]}``:
    one training, each trial's evaluation beside the others (``run_trial`` returns one result per spec). A group
    holds at most one trial without a hook; order is kept (a group sits where its first trial was)."""
    sigs = [_training_signature(s) for s in specs]
    groups: dict[str, list[dict[str, Any]]] = {}
    for s, sig in zip(specs, sigs, strict=True):
        if sig is not None:
            groups.setdefault(sig, []).append(s)
    out, placed = [], set()
    for s, sig in zip(specs, sigs, strict=True):
        members = groups.get(sig, []) if sig is not None else []
        raw = [m for m in members if m["algorithm"].get("prepare_for_eval") is None]
        names = [m["algorithm"]["name"] for m in members]
        if len(members) < 2 or len(raw) > 1 or len(set(names)) < len(names):
            out.append(s)
        elif sig not in placed:
            placed.add(sig)
            out.append({"group": members, "key": members[0]["key"], "spec": members[0]})
    return out


def run_distributed_trial(
    spec: Mapping[str, Any], device: str = "auto", backend: str | None = None, threads: int | None = None
) -> dict[str, Any] | None:
    """Run one trial data-parallel on every rank of a process group; the result on rank 0, ``None`` elsewhere.

    Call it on every rank. Without a process group it joins the one ``torchrun`` describes in the environment
    (``backend``: ``nccl`` when the device is a GPU, ``gloo`` otherwise) and leaves it at the end. ValueError when
    there is no group to join or the workload's batch size does not divide by the world size. A trial that crashes
    on a rank raises RuntimeError there (failures are never cached), so the launcher can stop the other ranks.
    """
    import torch
    import torch.distributed as dist

    created = False
    if not dist.is_initialized():
        missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
        if missing:
            raise ValueError(
                f"no process group and no torchrun environment ({', '.join(missing)} unset): launch with "
                "`torchrun --nproc_per_node=N --no-python descentlab bench trial ...`"
            )
        gpu = device != "cpu" and torch.cuda.is_available()
        backend = backend or ("nccl" if gpu else "gloo")
        if backend not in ("nccl", "gloo"):
            raise ValueError(f"backend must be 'nccl' or 'gloo', got {backend!r}")
        if backend == "nccl" and not gpu:
            raise ValueError(f"backend 'nccl' needs GPUs, but the device is {device!r} (use backend 'gloo')")
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
        created = True
    try:
        world = dist.get_world_size()
        batch = int(spec["workload"]["batch_size"])
        if batch % world:
            raise ValueError(
                f"workload {spec['workload']['name']!r}: batch_size {batch} (the global batch) is not divisible "
                f"by the world size {world}"
            )
        result = _execute(spec, threads, device, True)
        if result["status"] == "failed":  # a crashed rank ends its process (exit code != 0): the launcher
            # (torchrun, mp.spawn) then stops the other ranks; with NCCL they could wait in a collective until the
            # timeout, and a rank exiting 0 would hide the cause behind the others' lost-connection errors
            raise RuntimeError(f"rank {dist.get_rank()}: {result['error']}")
        return result if dist.get_rank() == 0 else None
    finally:
        if created:
            dist.destroy_process_group()


def _failed(spec: Mapping[str, Any], error: str = "") -> dict[str, Any]:
    """A trial's result before (or instead of) its training: failed, no target, no history."""
    return {"key": spec["key"], "spec": dict(spec), "status": "failed", "reached": False, "time_to_target": math.inf,
            "final": {}, "history": {}, "config": {}, "error": error}  # fmt: skip


def _execute(spec: Mapping[str, Any], threads: int | None, device: str, distributed: bool) -> dict[str, Any]:
    import torch

    from descentlab.train import train

    if threads is not None:
        torch.set_num_threads(max(1, int(threads)))
    wl = Workload(**spec["workload"])
    alg = Algorithm(**spec["algorithm"])
    result = _failed(spec)
    wall0 = time.perf_counter()
    try:
        reason = alg.not_applicable(wl)
        if reason is not None:  # nothing to act on: reported as such, never run as another method
            result.update(status="finished", final={"not_applicable": 1.0}, note=reason)
            result["wall_time"] = time.perf_counter() - wall0
            return result
        kwargs = alg.train_kwargs(spec["hparams"], step_hint=wl.step_hint)
        kwargs["hparams"] = _tuplify_betas(dict(kwargs["hparams"]))
        task = wl.make_task()
        evals = alg.gradient_evaluations
        run = train(
            task,
            # the steps track's limit counts gradient evaluations (SAM: two per step)
            steps=wl.step_hint // evals if wl.track == "steps" else wl.step_hint,
            time_budget=wl.budget,
            batch_size=wl.batch_size,
            seed=int(spec["seed"]),
            eval_every=wl.eval_every,
            store=False,
            progress=False,
            device=device,
            keep_model=False,
            distributed=distributed,
            stop_when=lambda metrics: wl.reached(metrics.get(wl.metric, math.nan)),
            **kwargs,
        )
        if run.status == "interrupted":
            raise KeyboardInterrupt  # a real Ctrl-C: stop the benchmark, cache nothing
        ttt = time_to_target(wl, run.history, evals)
        result.update(
            status="diverged" if run.status == "diverged" else "finished",
            reached=math.isfinite(ttt),
            time_to_target=ttt,
            final=dict(run.final),
            history={k: v for k, v in run.history.items() if k in CURVE_METRICS or k == wl.metric},
            config=dict(run.config),
            note=run.note if run.status == "diverged" else "",
        )
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # a crash is a failure: reported, never cached
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc(limit=5)
    result["wall_time"] = time.perf_counter() - wall0
    return result


def _execute_group(specs: list[dict[str, Any]], threads: int | None) -> list[dict[str, Any]]:
    """One training for trials that differ only in a LAWA/EMA evaluation hook (``shared_trainings``): the base
    optimizer trains once inside ``optim.SideAverages``, every hooked trial's average is evaluated at every
    evaluation (outside the clock), and the run is cut into one result per trial as if it had run alone: each stops
    at its own first hit; a side's clock is the raw clock plus its own snapshot seconds (the raw clock leaves all
    snapshots out); a side's first evaluation past its budget is its last."""
    import torch

    from descentlab.train import train

    if threads is not None:
        torch.set_num_threads(max(1, int(threads)))
    wall0 = time.perf_counter()
    wl = Workload(**specs[0]["workload"])
    try:
        sides = {}
        for sp in specs:
            hook = Algorithm(**sp["algorithm"]).eval_hook(wl.step_hint)
            if hook is not None:
                sides[sp["algorithm"]["name"]] = hook
        base = Algorithm(**{**specs[0]["algorithm"], "prepare_for_eval": None})
        reason = base.not_applicable(wl)
        if reason is not None:
            return [_execute(sp, None, "cpu", False) for sp in specs]
        kwargs = base.train_kwargs(specs[0]["hparams"], step_hint=wl.step_hint)
        kwargs["hparams"] = {"base": kwargs.pop("optimizer"), **_tuplify_betas(dict(kwargs["hparams"])),
                             "sides": sides}  # fmt: skip
        names = [sp["algorithm"]["name"] if sp["algorithm"]["name"] in sides else "" for sp in specs]
        done: set[str] = set()

        def all_reached(metrics: Mapping[str, float]) -> bool:
            for n in names:
                key = f"{wl.metric}@{n}" if n else wl.metric
                if wl.reached(metrics.get(key, math.nan)):
                    done.add(n)
            return len(done) == len(names)

        evals = base.gradient_evaluations
        run = train(
            wl.make_task(),
            optimizer="side_averages",
            steps=wl.step_hint // evals if wl.track == "steps" else wl.step_hint,
            time_budget=wl.budget,
            batch_size=wl.batch_size,
            seed=int(specs[0]["seed"]),
            eval_every=wl.eval_every,
            store=False,
            progress=False,
            device="cpu",
            keep_model=False,
            stop_when=all_reached,
            **kwargs,
        )
        if run.status == "interrupted":
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # the shared training crashed: every trial of the group failed
        extra = {"traceback": traceback.format_exc(limit=5), "wall_time": time.perf_counter() - wall0}
        return [{**_failed(sp, f"{type(exc).__name__}: {exc}"), **extra} for sp in specs]
    wall = time.perf_counter() - wall0
    keys = [sp["key"] for sp in specs]
    return [_cut(sp, n, run, wl, evals, wall / len(specs), keys) for sp, n in zip(specs, names, strict=True)]


def _side_history(history: Mapping[str, list[tuple[int, float]]], side: str) -> dict[str, list]:
    """The run's history as one trial saw it: the raw metrics (``side`` empty) or ``<metric>@side`` under the plain
    names, with the clock moved by the side's own snapshot seconds."""
    out = {k: list(v) for k, v in history.items() if "@" not in k}  # the raw weights' (and the run's) series
    if not side:
        return out
    extra = dict(history.get(f"averaging_seconds@{side}", []))
    for k, v in history.items():  # the side's evaluation replaces the raw one under the same name
        if k.endswith(f"@{side}") and not k.startswith("averaging_seconds@"):
            out[k[: -len(side) - 1]] = list(v)
    out["train_time"] = [(st, t + extra.get(st, 0.0)) for st, t in history.get("train_time", [])]
    return out


def _cut(spec, side: str, run, wl: Workload, evals: int, wall: float, keys: list[str]) -> dict[str, Any]:
    """One trial's result from a shared training: its history up to its first hit (the whole run if none)."""
    hist = _side_history(run.history, side)
    if side and wl.track == "time":  # a lone side trial stops once its own clock passes the budget: its first
        # evaluation past the budget is its last (the raw clock leaves the side's snapshots out, so that evaluation
        # can come up to the side's snapshot overhead later than a lone trial's budget stop)
        over = [st for st, t in hist["train_time"] if t > wl.budget]
        if over:
            hist = {k: [(st, v) for st, v in pts if st <= over[0]] for k, pts in hist.items()}
    ttt = time_to_target(wl, hist, evals)
    hit = steps_to_target(wl, hist)
    if math.isfinite(hit):
        hist = {k: [(st, v) for st, v in pts if st <= hit] for k, pts in hist.items()}
    end = max((st for st, _ in hist.get("train_time", [])), default=0)
    final = {k: pts[-1][1] for k, pts in hist.items() if pts and pts[-1][0] == end and k != "batch_loss"}
    final["step"] = end
    status = "finished" if math.isfinite(ttt) or run.status != "diverged" else "diverged"
    return {
        "key": spec["key"],
        "spec": dict(spec),
        "status": status,
        "reached": math.isfinite(ttt),
        "time_to_target": ttt,
        "final": final,
        "history": {k: v for k, v in hist.items() if k in CURVE_METRICS or k == wl.metric},
        "config": {**dict(run.config), "shared_training": {"keys": keys, "evaluated": side or "raw weights"}},
        "error": "",
        "note": run.note if status == "diverged" else "",
        "wall_time": wall,
    }
