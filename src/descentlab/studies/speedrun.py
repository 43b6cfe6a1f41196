"""The NanoGPT speedrun at laptop scale: a ladder of records with significance, at several model sizes.

Seed 002 ("NanoGPT speedrun", "Работают ли трюки, если увеличить размер модели?"); K. Jordan et al.,
modded-nanogpt (2024): GPT-2 small trained to 3.28 FineWeb validation loss in ever less time, each record adding an
idea, a record accepted only when the mean over n runs beats the target significantly (p < 0.01, t-test over runs).

Here the workload is charlm's character GPT (:func:`descentlab.tasks.charlm.gpt_family`: width is the one knob).
Record 0 is AdamW with warmup + cosine; each next record adds one idea: the warmup-stable-decay ("trapezoidal")
schedule, Muon on the hidden matrices (embeddings, head and gains stay on AdamW), then the architecture options
of :class:`descentlab.tasks.charlm.GPT` (rotary, ReLU², QK-norm, zero-initialized projections and head, logit
soft-cap), cumulatively. Every record's lr is tuned on tuning seeds (:func:`descentlab.studies.tune`); the
validation-loss target of a size is fixed from record 0 on the tuning seeds before any evaluation run. On each
evaluation seed a record's run stops at the target: steps (linearly interpolated between evaluations) and
training seconds to the target. Acceptance (:func:`acceptance`): the per-seed log step ratio previous/new must be
> 0 at one-sided p < ``acceptance_p`` (mean minus t · sd / sqrt(n) > 0), else "not a record at this scale".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from descentlab.studies import (
    Anchor,
    Measurement,
    Prediction,
    Study,
    StudyContext,
    eval_seeds,
    register,
    tune,
    tuning_seeds,
)
from descentlab.studies.claims import t_interval

RECORDS: dict[str, dict[str, Any]] = {
    "adamw_cosine": {"idea": "AdamW, warmup + cosine (record 0)"},
    "wsd": {"idea": "warmup-stable-decay schedule", "schedule": "wsd"},
    "muon": {"idea": "Muon on the hidden matrices", "optimizer": "muon"},
    "rotary": {"idea": "rotary position embeddings", "option": ("rotary", True)},
    "relu2": {"idea": "ReLU² MLP activation", "option": ("relu2", True)},
    "qk_norm": {"idea": "QK-norm", "option": ("qk_norm", True)},
    "zero_init": {"idea": "zero-initialized projections and head", "option": ("zero_init", True)},
    "softcap": {"idea": "logit soft-cap", "option": ("softcap", None)},
}
"""The ladder in order: each record adds its idea to the records listed before it."""

_SPEEDRUN = "Jordan et al., modded-nanogpt (2024), README"
_SEED = "seed 002, slides 'NanoGPT speedrun' and 'Работают ли трюки, если увеличить размер модели?'"
_IDEA_SOURCES = {
    "wsd": "record 2 'Architectural modernizations & tuned learning rate' (trapezoidal schedule)",
    "muon": "record 3 'Introduced the Muon optimizer'; Muon: '~1.5x better sample-efficiency'",
    "rotary": "'Modernized architecture: Rotary embeddings, QK-Norm, and ReLU^2'",
    "relu2": "'Modernized architecture: Rotary embeddings, QK-Norm, and ReLU^2'",
    "qk_norm": "'Modernized architecture: Rotary embeddings, QK-Norm, and ReLU^2'",
    "zero_init": "'Projection and classification layers initialized to zero (muP-like)'; 'Untied head from "
    "embedding' (charlm's head is untied already)",
    "softcap": "'Logit softcapping (following Gemma 2)'; record 18 'Lower logit softcap from 30 to 15'",
}


def _record_prediction(name: str) -> Prediction:
    return Prediction(
        name=f"record_{name}",
        statement=f"Adding {RECORDS[name]['idea']} to the previous record reaches the validation-loss target in "
        "fewer steps (it was accepted as a speedrun record at 124M parameters).",
        source=f"{_SPEEDRUN}: {_IDEA_SOURCES[name]}; {_SEED}",
        quantity="per evaluation seed at the largest size: log2(steps to the target of the previous record / "
        "steps of this record), each record at its own lr tuned on tuning seeds",
        direction=">",
        threshold=0.0,
        tolerance="fewer steps: a ratio > 1, log2 > 0",
    )


PREDICTIONS = (
    Prediction(
        name="muon_speedup_grows_with_size",
        statement="Muon's speed-up over AdamW grows (or does not shrink) with model size: the tricks survive a "
        "bigger model.",
        source=f"{_SEED} (figure 'Scaling up the NanoGPT (124M) speedrun'); {_SPEEDRUN}: 'Straightforwardly "
        "scaling up the speedrun (10/18/24 version) to 1.5B parameters yields ... 2.5x more cheaply'",
        quantity="per evaluation seed: least-squares slope of log2(steps of the AdamW + WSD record / steps of the "
        "Muon record) against log2(parameter count) over the model sizes",
        direction=">",
        threshold=0.0,
        tolerance="grows: slope > 0; shrinks: slope < 0 (fails); 'does not shrink' without a detectable growth "
        "leaves the interval across 0 (inconclusive)",
    ),
    *(_record_prediction(n) for n in list(RECORDS)[1:]),
)


# ---------------------------------------------------------------- pure statistics (unit-tested)


def steps_to_target(curve: Sequence[tuple[float, float]], target: float) -> float:
    """First step at which a logged ``(step, loss)`` curve reaches ``loss <= target``, linearly interpolated between
    the evaluation before and the one that reached it; ``inf`` if it never does."""
    prev: tuple[float, float] | None = None
    for step, loss in curve:
        if math.isfinite(loss) and loss <= target:
            if prev is None or not math.isfinite(prev[1]) or prev[1] <= loss:
                return float(step)
            frac = (prev[1] - target) / (prev[1] - loss)
            return float(prev[0] + frac * (step - prev[0]))
        prev = (float(step), float(loss))
    return math.inf


def interpolate(series: Sequence[tuple[float, float]], step: float) -> float:
    """``series`` (``(step, value)``, increasing steps) linearly interpolated at ``step`` (nan outside)."""
    if not series or not math.isfinite(step):
        return math.nan
    xs = [float(s) for s, _ in series]
    if step < xs[0] or step > xs[-1]:
        return math.nan
    return float(np.interp(step, xs, [float(v) for _, v in series]))


def acceptance(previous: Sequence[float], new: Sequence[float], p: float = 0.01) -> dict[str, Any]:
    """The speedrun's acceptance rule on paired per-seed costs (steps or seconds to the target) of the previous and
    the new record: with d_i = log2(previous_i / new_i), the new one is a record when mean(d) - t_{1-p, n-1} sd(d) /
    sqrt(n) > 0 (one-sided t-test at level p: the mean beats the old one by a margin shrinking as 1 / sqrt(n)).

    ``verdict``: "record" or "not a record at this scale"; ``outcome``: "faster" (a record), "slower" (the
    mirror bound below 0) or "inconclusive"; ``speedup``: 2^mean(d) with its one-sided bounds.
    """
    if not 0 < p < 0.5:
        raise ValueError(f"p must lie in (0, 0.5), got {p!r}")
    pairs = [
        (a, b) for a, b in zip(previous, new) if a > 0 and b > 0 and math.isfinite(a) and math.isfinite(b)
    ]
    d = [math.log2(a / b) for a, b in pairs]
    n = len(d)
    out: dict[str, Any] = {"n": n, "p": p, "log2_ratios": d}
    if n < 2:
        out.update(verdict="not a record at this scale", outcome="inconclusive", speedup=math.nan,
                   bounds=[math.nan, math.nan], note=f"{n} paired seed(s): a t-test needs at least 2")  # fmt: skip
        return out
    from scipy import stats

    mean = sum(d) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
    margin = float(stats.t.ppf(1 - p, n - 1)) * sd / math.sqrt(n)
    lo, hi = mean - margin, mean + margin
    outcome = "faster" if lo > 0 else "slower" if hi < 0 else "inconclusive"
    out.update(
        verdict="record" if outcome == "faster" else "not a record at this scale",
        outcome=outcome,
        speedup=2.0**mean,
        bounds=[2.0**lo, 2.0**hi],
        note=f"mean log2 ratio {mean:.3f}, margin t·sd/√n = {margin:.3f} (one-sided p < {p:g}, n = {n})",
    )
    return out


def slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of ``y`` on ``x`` (nan with fewer than 2 distinct finite points)."""
    pts = [(a, b) for a, b in zip(x, y) if math.isfinite(a) and math.isfinite(b)]
    if len({a for a, _ in pts}) < 2:
        return math.nan
    xa, ya = np.array([a for a, _ in pts]), np.array([b for _, b in pts])
    return float(np.polyfit(xa, ya, 1)[0])


def ladder(names: Sequence[str], softcap: float) -> list[dict[str, Any]]:
    """Each record's setup (optimizer, schedule, model options), adding each idea to the records before it."""
    names = list(names)
    if not names or names[0] != "adamw_cosine":
        raise ValueError(f"the ladder starts with record 0 'adamw_cosine', got {names!r}")
    unknown = [n for n in names if n not in RECORDS]
    if unknown:
        raise ValueError(f"unknown records {unknown}; records: {list(RECORDS)}")
    order = list(RECORDS)
    if [order.index(n) for n in names] != sorted(order.index(n) for n in set(names)):
        raise ValueError(f"records must be distinct and in ladder order {order}, got {names!r}")
    setup: dict[str, Any] = {"optimizer": "adamw", "schedule": "warmup_cosine", "options": {}}
    out = []
    for n in names:
        r = RECORDS[n]
        setup = {**setup, "options": dict(setup["options"])}
        if "schedule" in r:
            setup["schedule"] = r["schedule"]
        if "optimizer" in r:
            setup["optimizer"] = r["optimizer"]
        if "option" in r:
            key, value = r["option"]
            setup["options"][key] = float(softcap) if key == "softcap" else value
        out.append({"name": n, "idea": r["idea"], **setup})
    return out


# ---------------------------------------------------------------- the study


def _task_kw(cfg: dict[str, Any], width: int, options: dict[str, Any]) -> dict[str, Any]:
    from descentlab.tasks.charlm import gpt_family

    kw = gpt_family(
        width, head_dim=int(cfg["head_dim"]), depth=int(cfg["depth"]), context=int(cfg["context"])
    )
    return {**kw, **options, "eval_windows": int(cfg["eval_windows"])}


def _schedule_kw(cfg: dict[str, Any], schedule: str) -> dict[str, Any]:
    kw = {"warmup_fraction": float(cfg["warmup_fraction"])}
    if schedule == "wsd":
        kw["decay_fraction"] = float(cfg["decay_fraction"])
    return kw


def run(ctx: StudyContext, cfg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Measurement]]:
    """The ladder at every width: tune, fix the target from record 0 on tuning seeds, race to it on eval seeds
    (the widths in parallel processes when ``workers`` allows; each width's ladder is sequential)."""
    cfg = resolve_preset(cfg)
    records = ladder(cfg["records"], float(cfg["softcap"]))
    names = [r["name"] for r in records]
    widths = [int(w) for w in cfg["widths"]]
    seeds = eval_seeds(cfg)
    per: dict[tuple[int, str], dict[str, Any]] = {}
    numbers: dict[str, Any] = {
        "records": records,
        "sizes": {},
        "ladder": {},
        "targets": {},
        "preset": cfg["preset"],
        "device": cfg["device"],
        "precision": cfg["precision"],
        "settings": {k: cfg[k] for k in GPU_PRESET},
    }  # what ran (after the preset)
    curves: dict[tuple[int, str], list[tuple[int, float]]] = {}

    workers = _workers(cfg, len(widths))
    numbers["workers"] = workers
    if workers == 1:
        for width in widths:
            _ladder_at(ctx, cfg, width, records, numbers, per, curves)
    else:  # the sizes are independent ladders: one process each, the largest first
        _parallel_sizes(ctx, cfg, widths, records, workers, numbers, per, curves)

    _figure(ctx, numbers, widths, names, curves)
    measured = _measure(ctx, numbers, per, widths, names, seeds)
    return numbers, measured


def _workers(cfg: dict[str, Any], sizes: int) -> int:
    """Processes for the sizes: ``workers`` (0 = the torch threads this process may use, e.g. a tour worker's cap),
    at most one per size; one on a GPU (the sizes would share it)."""
    import torch

    if str(cfg["device"]) not in ("cpu",):
        return 1
    w = int(cfg["workers"]) or torch.get_num_threads()
    return max(1, min(w, sizes))


def _size_job(job: dict[str, Any]) -> dict[str, Any]:
    """One width in a worker process (one torch thread): the same ``_ladder_at`` with a context of its own that writes
    to the same store (run ids carry their own token); returns what the parent merges."""
    import torch

    from descentlab.store import Store

    torch.set_num_threads(1)
    store = Store(job["store"]) if job["store"] is not None else None
    ctx = StudyContext(name=job["name"], out=Path(job["out"]), store=store, quick=job["quick"])
    numbers: dict[str, Any] = {"sizes": {}, "ladder": {}, "targets": {}}
    per: dict[tuple[int, str], dict[str, Any]] = {}
    curves: dict[tuple[int, str], list[tuple[int, float]]] = {}
    try:
        _ladder_at(ctx, job["cfg"], job["width"], job["records"], numbers, per, curves)
    finally:
        if store is not None:
            store.close()
    return {"numbers": numbers, "per": per, "curves": curves, "runs": ctx.runs, "checks": ctx.checks}


def _parallel_sizes(
    ctx: StudyContext,
    cfg: dict[str, Any],
    widths: list[int],
    records: list[dict[str, Any]],
    workers: int,
    numbers: dict[str, Any],
    per: dict[tuple[int, str], dict[str, Any]],
    curves: dict[tuple[int, str], list[tuple[int, float]]],
) -> None:
    """Run ``_ladder_at`` for every width in ``workers`` spawned processes and merge the results in width order."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    store = str(ctx.store.path) if ctx.store is not None else None
    jobs = {w: {"name": ctx.name, "out": str(ctx.out), "store": store, "quick": ctx.quick, "cfg": dict(cfg),
                "width": w, "records": records} for w in widths}  # fmt: skip
    done: dict[int, dict[str, Any]] = {}
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(_size_job, jobs[w]): w for w in sorted(widths, reverse=True)}
        for fut in futures:
            res = fut.result()
            done[futures[fut]] = res
            ctx.advance(len(res["runs"]))
    for w in widths:
        res = done[w]
        for key in ("sizes", "ladder", "targets"):
            numbers[key].update(res["numbers"][key])
        per.update(res["per"])
        curves.update(res["curves"])
        ctx.runs.extend(res["runs"])
        ctx.checks.extend(res["checks"])


def _stop_at(target: float | None) -> Any:
    return None if target is None else (lambda m: m.get("loss", math.inf) <= target)


class _Runner:
    """Trains one record at one width (the AdamW lr last tuned at this width also drives Muon's AdamW part)."""

    def __init__(self, ctx: StudyContext, cfg: dict[str, Any], width: int):
        self.ctx, self.cfg, self.width = ctx, cfg, width
        self.lrs: dict[str, float] = {}
        self.target = math.inf

    def train(self, rec: dict[str, Any], lr: float, seed: int, stop: bool) -> Any:
        """One run of ``rec`` at ``lr`` (stopping at the target when ``stop``)."""
        cfg = self.cfg
        hp: dict[str, Any] = {}
        if rec["optimizer"] == "muon":  # embeddings, head, gains: AdamW at the last tuned AdamW lr
            hp = {"lr_adam": self.lrs.get("adamw", float(cfg["adamw_lrs"][1]))}
        return self.ctx.train(
            "charlm",
            optimizer=rec["optimizer"],
            lr=float(lr),
            hparams=hp,
            schedule=rec["schedule"],
            schedule_kw=_schedule_kw(cfg, rec["schedule"]),
            steps=int(cfg["steps"]),
            batch_size=int(cfg["batch_size"]),
            task_kw=_task_kw(cfg, self.width, rec["options"]),
            eval_every=int(cfg["eval_every"]),
            seed=seed,
            device=str(cfg["device"]),
            precision=str(cfg["precision"]),
            stop_when=_stop_at(self.target if stop else None),
            keep_state=False,  # the study reads steps and losses, never the weights: no final.pt / end state
        )

    def final_loss(self, rec: dict[str, Any], lr: float, seed: int) -> float:
        """Record 0's tuning metric: the final validation loss after the whole horizon (inf if diverged)."""
        r = self.train(rec, lr, seed, stop=False)
        v = r.final.get("loss", math.inf) if r.status == "finished" else math.inf
        return float(v) if v is not None else math.inf

    def steps_score(self, rec: dict[str, Any], lr: float, seed: int) -> float:
        """Later records' tuning metric: steps to the target; not reached: horizon x final loss / target."""
        r = self.train(rec, lr, seed, stop=True)
        if r.status != "finished":
            return math.inf
        s = steps_to_target(r.metrics("loss"), self.target)  # type: ignore[arg-type]
        if math.isfinite(s):
            return s
        final = r.final.get("loss", math.inf)
        return int(self.cfg["steps"]) * float(final) / self.target if final is not None else math.inf


def _ladder_at(
    ctx: StudyContext,
    cfg: dict[str, Any],
    width: int,
    records: list[dict[str, Any]],
    numbers: dict[str, Any],
    per: dict[tuple[int, str], dict[str, Any]],
    curves: dict[tuple[int, str], list[tuple[int, float]]],
) -> None:
    """The whole ladder at one width: its parameter count, target, tuned lrs and races (fills ``numbers``, ``per``
    and ``curves``)."""
    from descentlab import tasks
    from descentlab.tasks.charlm import parameter_count

    params = parameter_count(tasks.get("charlm", **_task_kw(cfg, width, {})).make_model(0))
    numbers["sizes"][str(width)] = {"width": width, "parameters": params}
    names = [r["name"] for r in records]
    seeds = eval_seeds(cfg)
    horizon = int(cfg["steps"])
    factor = float(cfg["lr_factor"])
    runner = _Runner(ctx, cfg, width)
    for k, rec in enumerate(records):
        opt = rec["optimizer"]
        if k == 0:
            tuned = tune(lambda lr, seed, rec=rec: runner.final_loss(rec, lr, seed),
                         [float(x) for x in cfg["adamw_lrs"]], tuning_seeds(cfg),
                         metric=f"final validation loss after {horizon} steps")  # fmt: skip
            base = tuned.scores[tuned.value]
            runner.target = base * (1 + float(cfg["target_slack"])) if math.isfinite(base) else math.inf
            numbers["targets"][str(width)] = {
                "target": runner.target,
                "record0_tuning_final_loss": base,
                "rule": f"record 0's mean final validation loss on tuning seeds {tuning_seeds(cfg)} at its "
                f"tuned lr, times 1 + {float(cfg['target_slack']):g}",
            }
        else:
            lr0 = runner.lrs.get(opt)
            grid = [lr0 / factor, lr0, lr0 * factor] if lr0 else [float(x) for x in cfg[f"{opt}_lrs"]]
            tuned = tune(lambda lr, seed, rec=rec: runner.steps_score(rec, lr, seed), grid, tuning_seeds(cfg),
                         metric=f"steps to the target (not reached: {horizon} x final loss / target)")  # fmt: skip
        runner.lrs[opt] = tuned.value
        steps, secs, reached = [], [], []
        for i, s in enumerate(seeds):
            r = runner.train(rec, tuned.value, s, stop=True)
            curve = r.metrics("loss") if r.status == "finished" else []
            st = steps_to_target(curve, runner.target)  # type: ignore[arg-type]
            reached.append(math.isfinite(st))
            steps.append(st if math.isfinite(st) else float(horizon))  # not reached: censored at the horizon
            tt = interpolate(r.metrics("train_time"), st) if math.isfinite(st) else math.nan  # type: ignore[arg-type]
            secs.append(tt if math.isfinite(tt) else float(r.final.get("train_time") or math.nan))
            if i == 0:
                curves[(width, rec["name"])] = list(r.metrics("loss"))
        per[(width, rec["name"])] = {"steps": steps, "seconds": secs, "reached": reached}
        entry: dict[str, Any] = {
            "idea": rec["idea"],
            "lr": tuned.value,
            "tuned": tuned.to_dict(),
            "bracketed": tuned.bracketed,
            "steps": steps,
            "seconds": secs,
            "reached": reached,
        }
        for key, vals in (("steps", steps), ("seconds", secs)):
            m, lo, hi = t_interval([math.log(v) for v in vals if v > 0])
            entry[f"{key}_geomean"], entry[f"{key}_interval"] = math.exp(m), [math.exp(lo), math.exp(hi)]
        if k > 0:
            prev = per[(width, names[k - 1])]
            entry["acceptance"] = acceptance(prev["steps"], steps, float(cfg["acceptance_p"]))
            entry["acceptance_seconds"] = acceptance(prev["seconds"], secs, float(cfg["acceptance_p"]))
            m, lo, hi = t_interval([math.log(a / b) for a, b in zip(prev["steps"], steps)])
            entry["speedup"], entry["speedup_interval"] = math.exp(m), [math.exp(lo), math.exp(hi)]
        numbers["ladder"].setdefault(str(width), {})[rec["name"]] = entry


def _measure(
    ctx: StudyContext,
    numbers: dict[str, Any],
    per: dict[tuple[int, str], dict[str, Any]],
    widths: list[int],
    names: list[str],
    seeds: list[int],
) -> dict[str, Measurement]:
    """Per-seed values of every declared prediction (records not in this ladder: inconclusive, not run)."""
    measured: dict[str, Measurement] = {}
    top = widths[-1]
    for n in list(RECORDS)[1:]:
        key = f"record_{n}"
        if n not in names:
            measured[key] = Measurement([math.nan] * len(seeds), "", "record not in this run's ladder")
            continue
        prev, new = per[(top, names[names.index(n) - 1])], per[(top, n)]
        vals = [math.log2(a / b) for a, b in zip(prev["steps"], new["steps"])]
        entry = numbers["ladder"][str(top)][n]
        missed = sum(not r for r in new["reached"])
        ev = (f"width {top}: steps previous {_fmt(prev['steps'])} -> {_fmt(new['steps'])}; acceptance "
              f"'{entry['acceptance']['verdict']}' ({entry['acceptance']['note']})")  # fmt: skip
        reasons = []
        if missed and min(vals) > 0:  # a censored new record only looks faster than it is
            reasons.append(f"the record missed the target on {missed} seed(s) (censored at the horizon)")
        if not entry["bracketed"]:
            reasons.append(f"lr grid {entry['tuned']['scores']} does not bracket the optimum")
        measured[key] = Measurement(vals, ev, "; ".join(reasons) or None)
    if "muon" in names and names.index("muon") > 0:
        prev_name = names[names.index("muon") - 1]
        logp = [math.log2(numbers["sizes"][str(w)]["parameters"]) for w in widths]
        vals, censored = [], 0
        for i in range(len(seeds)):
            ratios = [
                math.log2(per[(w, prev_name)]["steps"][i] / per[(w, "muon")]["steps"][i]) for w in widths
            ]
            censored += sum(not per[(w, nm)]["reached"][i] for w in widths for nm in (prev_name, "muon"))
            vals.append(slope(logp, ratios))
        speed = {str(w): numbers["ladder"][str(w)]["muon"]["speedup"] for w in widths}
        reasons = []
        if len(widths) < 2:
            reasons.append("one model size: no slope")
        if censored:
            reasons.append(f"{censored} run(s) missed the target (censored steps bias the slope)")
        measured["muon_speedup_grows_with_size"] = Measurement(
            vals,
            "AdamW/Muon steps ratio by width: " + ", ".join(f"{w}: {v:.2f}" for w, v in speed.items()),
            "; ".join(reasons) or None,
        )
        ctx.anchor(
            Anchor(
                "steps to the target, AdamW / Muon (largest size)",
                5625 / 3250,
                "modded-nanogpt fewest-steps track: tuned Adam 5,625 steps, Muon 3,250 (Shampoo 4,100) to 3.28 "
                "FineWeb validation loss at 124M (repository KellerJordan/modded-nanogpt, README.md, the records "
                "and the fewest-steps comparison)",
                setting="other",
            ),
            [
                a / b
                for a, b in zip(per[(widths[-1], prev_name)]["steps"], per[(widths[-1], "muon")]["steps"])
            ],
            f"ours: a char GPT of {numbers['sizes'][str(widths[-1])]['parameters']} parameters at a fixed "
            "schedule horizon (the speedrun tunes the step count per optimizer): a scale and protocol apart",
        )
    else:
        measured["muon_speedup_grows_with_size"] = Measurement(
            [math.nan] * len(seeds), "", "the Muon record is not in this run's ladder"
        )
    # Sanity: every size's target comes from tuning seeds and record 0 reaches it on most evaluation seeds.
    for w in widths:
        r0 = per[(w, names[0])]["reached"]
        ctx.check(
            f"record0_reaches_target_w{w}",
            "record 0 reaches its own target (fixed on tuning seeds) on at least half the evaluation seeds",
            sum(r0) * 2 >= len(r0),
            f"width {w}: target {numbers['targets'][str(w)]['target']:.4f}, reached on {sum(r0)}/{len(r0)} seeds",
        )
    return measured


def _fmt(xs: Sequence[float]) -> str:
    return "[" + ", ".join(f"{x:.0f}" for x in xs) + "]"


def _figure(
    ctx: StudyContext,
    numbers: dict[str, Any],
    widths: list[int],
    names: list[str],
    curves: dict[tuple[int, str], list[tuple[int, float]]],
) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    fig, axes = plt.subplots(1, 3, figsize=(18, 5))
    params = [numbers["sizes"][str(w)]["parameters"] for w in widths]
    ax = axes[0]
    for j, n in enumerate(names[1:]):
        e = [numbers["ladder"][str(w)][n] for w in widths]
        y = np.array([x["speedup"] for x in e])
        lo = np.array([x["speedup_interval"][0] for x in e])
        hi = np.array([x["speedup_interval"][1] for x in e])
        yerr = np.vstack([np.clip(y - lo, 0, None), np.clip(hi - y, 0, None)])
        yerr[~np.isfinite(yerr)] = 0
        ax.errorbar(np.array(params) * (1 + 0.03 * (j - len(names) / 2)), y, yerr=yerr, marker="o", capsize=3,
                    label=RECORDS[n]["idea"])  # fmt: skip
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(ScalarFormatter())
    ax.set_xlabel("parameters")
    ax.set_ylabel("speed-up over the previous record (steps ratio)")
    ax.set_title("each idea's speed-up vs model size (95 % interval over seeds)")
    if len(names) > 1:  # a ladder of one record has no speed-ups to label
        ax.legend(fontsize=7)
    ax = axes[1]
    for w in widths:
        e = numbers["ladder"][str(w)]
        ax.plot(range(len(names)), [e[n]["steps_geomean"] for n in names], "o-", label=f"width {w}")
    ax.set_xticks(range(len(names)), names, rotation=40, ha="right", fontsize=8)
    ax.set_ylabel("steps to the target (geometric mean over seeds)")
    ax.set_title("the ladder at each size")
    ax.legend(fontsize=8)
    ax = axes[2]
    top = widths[-1]
    for n in names:
        c = curves.get((top, n), [])
        if c:
            ax.plot([s for s, _ in c], [v for _, v in c], label=n)
    ax.axhline(numbers["targets"][str(top)]["target"], color="k", ls="--", lw=0.8, label="target")
    ax.set_xlabel("step")
    ax.set_ylabel("validation loss (nats / char)")
    ax.set_title(f"width {top}: validation loss to the target (seed 0)")
    ax.legend(fontsize=7)
    for a in axes:
        a.grid(alpha=0.3, which="both")
    fig.tight_layout()
    ctx.save_figure(fig, "speedrun")


_BASE: dict[str, Any] = {
    "widths": [16, 32, 64],
    "head_dim": 16,
    "depth": 2,
    "context": 32,
    "batch_size": 16,
    "steps": 150,
    "eval_every": 10,
    "eval_windows": 64,
    "warmup_fraction": 0.05,
    "decay_fraction": 0.3,
    "softcap": 15.0,
    "records": list(RECORDS),
    "adamw_lrs": [3e-3, 1e-2, 3e-2],
    "muon_lrs": [0.01, 0.03, 0.1],
    "lr_factor": 2.0,
    "target_slack": 0.01,
    "acceptance_p": 0.01,
    "seeds": 3,
    "tuning_seeds": 1,
    "device": "auto",
    "precision": "fp32",
    "preset": "auto",
    "workers": 0,
}

GPU_PRESET: dict[str, Any] = {
    "widths": [128, 256, 512],
    "head_dim": 64,
    "depth": 4,
    "context": 128,
    "batch_size": 64,
    "steps": 1000,
    "eval_every": 25,
    "precision": "bf16",
}
"""What ``preset="gpu"`` (the default ``"auto"`` where CUDA is present) puts over the CPU settings: 0.8 M to
12.6 M parameters, bf16 autocast; a size closer to the speedrun's, same code path."""


def resolve_preset(cfg: dict[str, Any], cuda: bool | None = None) -> dict[str, Any]:
    """``cfg`` with its preset applied: ``"cpu"`` keeps it, ``"gpu"`` overlays :data:`GPU_PRESET` and runs on
    ``cuda``; ``"auto"`` is ``"gpu"`` when CUDA is available (``cuda``, default: asked) and the device is not
    ``cpu``, else ``"cpu"``. The resolved ``preset`` and ``device`` are in the result."""
    import torch

    preset, device = str(cfg["preset"]), str(cfg["device"])
    if preset not in ("auto", "cpu", "gpu"):
        raise ValueError(f"speedrun: preset must be 'auto', 'cpu' or 'gpu', got {preset!r}")
    if str(cfg["precision"]) not in ("fp32", "bf16"):
        raise ValueError(f"speedrun: precision must be 'fp32' or 'bf16', got {cfg['precision']!r}")
    cuda = torch.cuda.is_available() if cuda is None else cuda
    if preset == "auto":
        preset = "gpu" if cuda and device != "cpu" else "cpu"
    if preset == "gpu":
        return {
            **cfg,
            **GPU_PRESET,
            "preset": "gpu",
            "device": "cuda" if device in ("auto", "cpu") else device,
        }
    return {**cfg, "preset": "cpu", "device": "cpu" if device == "auto" else device}


register(
    Study(
        name="speedrun",
        description="The NanoGPT speedrun at laptop scale: a ladder of records (WSD, Muon, rotary, ReLU², QK-norm, "
        "zero-init, soft-cap) on the char GPT at 3 sizes, steps to a target with the speedrun's acceptance rule.",
        slide="seed 002: 'NanoGPT speedrun', 'Работают ли трюки, если увеличить размер модели?'",
        # quick: the 2026-12-07 04:15 tour (Zen 4, 1 thread); full: 33 min wall, 2 procs
        seconds=(134, 2000),
        quick=dict(_BASE),
        full={**_BASE, "widths": [32, 64, 128], "steps": 500, "eval_every": 20, "batch_size": 32, "seeds": 5},
        run=run,
        predictions=PREDICTIONS,
        limits={
            "target_slack": (0.0, 1.0),
            "acceptance_p": (1e-6, 0.49),
            "lr_factor": (1.01, 100.0),
            "workers": (0, 64),
        },
    )
)
