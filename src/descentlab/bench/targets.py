"""Targets that the baseline reliably reaches: derive them AlgoPerf's way, then validate them on fresh seeds.

AlgoPerf (Dahl et al. 2023, sec. 4.3) sets a workload's validation target from well-tuned baselines: tune them, rerun
the best configuration several times and take the median of what it reaches. Here, per workload:

1. **Tune** (target switched off, whole budget): ``trials`` scrambled-Halton points of each baseline (NAdamW and
   AdamW by default; study 0, seed ``seed``) plus the hand-set target-setting points of ``TARGET_SETTING_POINTS``.
   A trial's value is the best validation value it reached within ``fraction`` (2/3) of the budget.
2. **Pick** the tuned configuration: the trial with the best value (ties: the best within the whole budget).
3. **Repeat** it on ``repeats`` fresh seeds (``seed + 10000 + r``), target off. The first candidate is the median over
   the repeats of the value within 2/3 of the budget, rounded toward the easier side (accuracy down to a multiple of
   0.005, loss up to 0.01, f - f* up to one significant digit).
4. **Validate** a candidate: the tuned configuration on ``studies`` (3) other fresh seeds (``seed + 20000 + 100 k +
   s`` in round ``k``), target on. It passes when the target is reached in at least ``need`` (2) of them and the
   median time-to-target is at most ``fraction`` (2/3) of the budget. A failing candidate is **recalibrated**: the
   next one is the value that two thirds of all runs so far reached within 2/3 of the budget (repeats and validation
   runs; a run that reached the target counts with its value there), rounded easier, and at least one rounding step
   easier than the failed one; it is validated in a new round on new seeds. After ``rounds`` rounds a workload that
   still fails is reported as failed, with its last candidate.

**Own streams**: every seed and Halton seed of steps 1-4 is offset by ``TARGET_SEED_BASE`` (10^9), so target setting
never shares a data order, an initialization or a search-space point with a scored trial (``runner.plan`` refuses
seeds that would reach it; ``tests/bench/test_board.py`` asserts the two sets are disjoint).

``derive_targets`` does all four steps; ``validate_targets`` reruns step 4 for targets already shipped
(``targets.json`` beside this module, read by ``workloads.py``); ``validation_markdown`` prints the table that
docs/benchmark.md shows.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from descentlab.bench.algorithms import get_algorithm
from descentlab.bench.runner import execute
from descentlab.bench.trial import make_spec, steps_to_target
from descentlab.bench.tuning import halton_points
from descentlab.bench.workloads import TARGETS_FILE, Workload, get_workload, hardware_scales, scale_for
from descentlab.store import Store

BASELINES = ("nadamw", "adamw")
# Hand-set target-setting points tried besides the Halton draws (AlgoPerf tuned its target-setting baselines
# far more than 2 x 8 trials). Grokking on `modular` needs strong decoupled decay at a high learning rate
# (lr x weight decay >= ~5e-3), a corner holding ~5 % of the search space.
TARGET_SETTING_POINTS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "modular": [
        ("adamw", {"lr": 1e-2, "weight_decay": 1.0, "beta2": 0.98}),
        ("nadamw", {"lr": 1e-2, "one_minus_beta1": 0.1, "weight_decay": 1.0}),
    ],
}
REPEAT_SEED = 10_000
TARGET_SEED_BASE = 1_000_000_000
"""Offset of every target-setting seed (its own stream, disjoint from the scoring seeds below it)."""
VALIDATION_SEED = 20_000


def round_easier(value: float, metric: str, higher_is_better: bool) -> float:
    """``value`` rounded toward the easier side: accuracy down to a multiple of 0.005, loss up to 0.01, a gap
    (f - f*) up to one significant digit; other metrics to 3 significant digits."""
    if not math.isfinite(value):
        raise ValueError(f"cannot round a non-finite {metric} value {value!r} into a target")
    if metric == "accuracy":
        return round(math.floor(round(value / 0.005, 9)) * 0.005, 6)
    if metric == "loss":
        return round(math.ceil(round(value / 0.01, 9)) * 0.01, 6)
    if value == 0:
        return 0.0
    digits = 1 if metric == "gap" else 3
    m = 10 ** (math.floor(math.log10(abs(value))) - digits + 1)
    q = value / m
    q = math.floor(round(q, 9)) if higher_is_better else math.ceil(round(q, 9))
    return float(f"{q * m:.{digits}g}")


def step_easier(target: float, metric: str, higher_is_better: bool) -> float:
    """The next rounded target on the easier side of ``target`` (one rounding step: 0.005 accuracy, 0.01 loss, one
    unit of the significant digit of a gap)."""
    nudge = abs(target) * 1e-6 + 1e-12
    return round_easier(target - nudge if higher_is_better else target + nudge, metric, higher_is_better)


def easier_quantile(values: Sequence[float], higher_is_better: bool, share: float = 2 / 3) -> float:
    """The hardest value that at least a ``share`` of the finite ``values`` meet or beat: the ``ceil(share n)``-th
    best (e.g. the 2nd best of 3, the 4th best of 6)."""
    x = sorted((v for v in values if math.isfinite(v)), reverse=higher_is_better)
    if not x:
        raise ValueError(f"no finite values to set a target from, got {list(values)!r}")
    return float(x[max(1, math.ceil(share * len(x) - 1e-9)) - 1])


def best_within(
    result: Mapping[str, Any], workload: Workload, fraction: float, criterion: str = "time"
) -> float:
    """The best validation value a trial reached at evaluations within ``fraction`` of its budget (the step hint on
    a steps-track workload, or with ``criterion="steps"``; ``-inf``/``inf``, i.e. the worst possible, when there is
    none)."""
    sign = 1.0 if workload.higher_is_better else -1.0
    history = result.get("history", {})
    if criterion == "steps":
        clock = {int(st): float(st) for st, _ in history.get(workload.metric, [])}
        budget = float(result["spec"]["workload"]["step_hint"])
    else:
        clock = workload.clock(history)
        budget = workload.limit(result["spec"]["workload"])
    best = -math.inf
    for step, v in history.get(workload.metric, []):
        if math.isfinite(v) and clock.get(step, math.inf) <= fraction * budget:
            best = max(best, sign * v)
    return sign * best


def _off(w: Workload) -> Workload:
    """``w`` with its target switched off (never reached), same name."""
    return Workload(**{**w.spec(), "target": 1e30 if w.higher_is_better else -1e30})


def _better(w: Workload, a: float, b: float) -> bool:
    return a > b if w.higher_is_better else a < b


def _check_fraction(fraction: float) -> float:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    return float(fraction)


def _validation_specs(
    w: Workload,
    target: float,
    baseline: str,
    hparams: Mapping[str, Any],
    studies: int,
    seed: int,
    scale: float | dict[str, float],
) -> list[dict[str, Any]]:
    wt = Workload(**{**w.spec(), "target": float(target)})
    alg = get_algorithm(baseline)
    return [make_spec(wt, alg, dict(hparams), TARGET_SEED_BASE + seed + s, budget=w.budget * scale_for(scale, w.name), study=s,
                      tuning="external")
            for s in range(studies)]  # fmt: skip


CRITERIA = ("time", "steps")


def needed(studies: int) -> int:
    """Seeds that must reach a target for it to pass: two thirds of them, rounded up (2 of 3, 7 of 10)."""
    return math.ceil(2 * studies / 3)


def target_noise(w: Workload, target: float) -> float | None:
    """The validation metric's own noise at ``target``: the binomial standard deviation of an accuracy measured on
    the workload's validation set, sqrt(t (1 - t) / n); None for a metric that is not a share of examples."""
    if w.metric != "accuracy" or not 0.0 <= target <= 1.0:
        return None
    n = int(w.make_task().val_data[0].shape[0])
    return math.sqrt(target * (1.0 - target) / n)


def _judge(
    w: Workload,
    target: float,
    specs: list[dict[str, Any]],
    results: Mapping[str, Any],
    need: int,
    fraction: float,
    criterion: str = "time",
) -> dict[str, Any]:
    """The validation verdict of ``specs`` (one per seed) from their ``results`` (by key): the target reached on
    ``need`` seeds, and the median time-to-target within ``fraction`` of the budget (``criterion="time"``) or the
    median step of the first hit within ``fraction`` of the step hint (``"steps"``: no clock in the verdict)."""
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    got = [results.get(s["key"]) for s in specs]
    ok = [r is not None and r["status"] != "failed" for r in got]
    times = [float(r["time_to_target"]) if k else math.inf for r, k in zip(got, ok, strict=True)]
    wt = Workload(**{**w.spec(), "target": float(target)})  # the candidate's target, not the registered one
    steps = [steps_to_target(wt, r["history"]) if k else math.inf for r, k in zip(got, ok, strict=True)]
    steps = [st if math.isfinite(t) else math.inf for st, t in zip(steps, times, strict=True)]
    values = [best_within(r, w, fraction, criterion) if k else math.nan for r, k in zip(got, ok, strict=True)]
    med = statistics.median(times)
    med_steps = statistics.median(steps)
    budget = w.limit(specs[0]["workload"])
    hint = int(specs[0]["workload"]["step_hint"])
    reached = sum(math.isfinite(t) for t in times)
    within = med <= fraction * budget if criterion == "time" else med_steps <= fraction * hint
    noise = target_noise(w, target)
    return {
        "target": float(target),
        "seeds": [int(s["seed"]) for s in specs],
        "times": [t if math.isfinite(t) else None for t in times],
        "steps": [st if math.isfinite(st) else None for st in steps],
        "values": values,
        "reached": reached,
        "need": need,
        "studies": len(specs),
        "median_time": med if math.isfinite(med) else None,
        "median_steps": med_steps if math.isfinite(med_steps) else None,
        "budget": budget,
        "step_hint": hint,
        "unit": w.unit,
        "criterion": criterion,
        **({"metric_sd": noise} if noise is not None else {}),
        "passed": reached >= need and within,
    }


def validate_target(
    workload: str | Workload,
    target: float,
    baseline: str,
    hparams: Mapping[str, Any],
    studies: int = 3,
    need: int | None = None,
    seed: int = VALIDATION_SEED,
    fraction: float = 2 / 3,
    scale: float | dict[str, float] = 1.0,
    criterion: str = "time",
    **run: Any,
) -> dict[str, Any]:
    """Rerun ``baseline`` at ``hparams`` on ``studies`` fresh seeds (``seed + s``) with ``target`` on; the verdict
    ``passed`` needs the target reached in ``need`` of them (default: ``needed(studies)``, two thirds) and a median
    time-to-target within ``fraction`` of the budget (``criterion="steps"``: a median first-hit step within
    ``fraction`` of the step hint). ``run`` goes to ``execute`` (executor, workers, store, progress)."""
    fraction = _check_fraction(fraction)
    w = get_workload(workload) if isinstance(workload, str) else workload
    specs = _validation_specs(w, target, baseline, hparams, studies, seed, scale)
    need = needed(studies) if need is None else need
    return _judge(w, target, specs, execute(specs, **run).results, need, fraction, criterion)


def derive_targets(
    workloads: Sequence[str | Workload],
    baselines: Sequence[str] = BASELINES,
    trials: int = 8,
    repeats: int = 3,
    studies: int = 3,
    need: int = 2,
    seed: int = 0,
    fraction: float = 2 / 3,
    rounds: int = 3,
    extra_points: Mapping[str, Sequence[tuple[str, Mapping[str, Any]]]] | None = None,
    executor: str = "local",
    workers: int = 2,
    store: Store | str | os.PathLike[str] | None = None,
    scale: float | dict[str, float] | None = None,
    progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """Derive and validate the targets of ``workloads`` (module docstring, steps 1-4); returns per workload the
    entry ``targets.json`` keeps: ``target``, ``status`` (validated / failed), the tuned configuration
    (``baseline``, ``hparams``), the candidates and every validation round."""
    fraction = _check_fraction(fraction)
    for nm, v in (
        ("trials", trials),
        ("repeats", repeats),
        ("studies", studies),
        ("need", need),
        ("rounds", rounds),
    ):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{nm} must be a positive integer, got {v!r}")
    if need > studies:
        raise ValueError(f"need ({need}) cannot exceed studies ({studies})")
    scale = hardware_scales() if scale is None else scale
    extra = TARGET_SETTING_POINTS if extra_points is None else extra_points
    wls = [get_workload(w) if isinstance(w, str) else w for w in workloads]
    run = {"executor": executor, "workers": workers, "store": store, "progress": progress}
    # 1. tuning, target off
    specs = []
    for w in wls:
        for b in baselines:
            alg = get_algorithm(b)
            for i, point in enumerate(halton_points(alg.space, trials, seed=TARGET_SEED_BASE + seed)):
                specs.append(make_spec(_off(w), alg, point, TARGET_SEED_BASE + seed + i, budget=w.budget * scale_for(scale, w.name),
                                       trial=i))  # fmt: skip
        for j, (b, point) in enumerate(extra.get(w.name, [])):
            specs.append(make_spec(_off(w), get_algorithm(b), dict(point), TARGET_SEED_BASE + seed + trials + j,
                                   budget=w.budget * scale_for(scale, w.name), trial=trials + j))  # fmt: skip
    tuned = execute(specs, **run)
    out: dict[str, dict[str, Any]] = {}
    for w in wls:
        rows = []
        for s in specs:
            r = tuned.results.get(s["key"])
            if s["workload"]["name"] != w.name or r is None or r["status"] == "failed":
                continue
            rows.append((best_within(r, w, fraction), best_within(r, w, 1.0), s))
        if not rows:
            raise ValueError(
                f"workload {w.name!r}: every target-setting trial failed; nothing to set a target from"
            )
        sign = 1.0 if w.higher_is_better else -1.0
        v23, vfull, pick = max(rows, key=lambda x: (sign * x[0], sign * x[1]))
        out[w.name] = {
            "metric": w.metric,
            "higher_is_better": w.higher_is_better,
            "baseline": pick["algorithm"]["name"],
            "hparams": pick["hparams"],
            "tuning": {"best_within_fraction": v23, "best_within_budget": vfull, "trials": len(rows)},
        }
    # 2-3. repeats of the tuned configuration, target off
    rep_specs = {
        w.name: [make_spec(_off(w), get_algorithm(out[w.name]["baseline"]), out[w.name]["hparams"], TARGET_SEED_BASE + seed + REPEAT_SEED + r,
                           budget=w.budget * scale_for(scale, w.name), study=r) for r in range(repeats)]
        for w in wls
    }  # fmt: skip
    reps = execute([s for v in rep_specs.values() for s in v], **run)
    for w in wls:
        results = [reps.results[s["key"]] for s in rep_specs[w.name] if s["key"] in reps.results]
        at = [best_within(r, w, fraction) for r in results if r["status"] != "failed"]
        if not any(math.isfinite(v) for v in at):
            raise ValueError(
                f"workload {w.name!r}: no repeat of the tuned configuration produced a finite value"
            )
        first = round_easier(
            statistics.median([v for v in at if math.isfinite(v)]), w.metric, w.higher_is_better
        )
        out[w.name].update(repeats={"seeds": [TARGET_SEED_BASE + seed + REPEAT_SEED + r for r in range(repeats)], "within_fraction": at},
                           candidates=[first], validation=[])  # fmt: skip
    # 4. validation rounds on fresh seeds (one batch of trials per round); a failing candidate is recalibrated from
    # every run so far
    pending = list(wls)
    for k in range(rounds):
        if not pending:
            break
        batch = {w.name: _validation_specs(w, out[w.name]["candidates"][-1], out[w.name]["baseline"],
                                           out[w.name]["hparams"], studies, seed + VALIDATION_SEED + 100 * k, scale)
                 for w in pending}  # fmt: skip
        done = execute([s for v in batch.values() for s in v], **run)
        for w in list(pending):
            entry = out[w.name]
            target = entry["candidates"][-1]
            val = _judge(w, target, batch[w.name], done.results, need, fraction)
            val["round"] = k
            entry["validation"].append(val)
            entry["target"] = target
            entry["status"] = "validated" if val["passed"] else "failed"
            if val["passed"]:
                pending.remove(w)
                continue
            if k + 1 < rounds:
                entry["candidates"].append(next_candidate(w, entry, target))
    for w in wls:
        out[w.name].update(budget=w.budget, step_hint=w.step_hint, scale=scale_for(scale, w.name),
                           derived=time.strftime("%Y-%m-%d %H:%M"))  # fmt: skip
    return out


def _pool(entry: Mapping[str, Any]) -> list[float]:
    """Every value the target-setting configuration reached within 2/3 of the budget so far: the repeats, then each
    validation run (a run that reached its target counts with that target; under the step criterion, the best value
    within 2/3 of the step hint)."""
    pool = [float(x) for x in entry.get("repeats", {}).get("within_fraction", [])]
    for v in [*entry.get("validation", []), *entry.get("revalidation", [])]:
        if v.get("criterion") == "steps":  # the best value within 2/3 of the step hint (a hit there included)
            pool += [float(x) for x in v["values"]]
            continue
        pool += [v["target"] if t is not None else x for t, x in zip(v["times"], v["values"], strict=True)]
    return pool


def next_candidate(w: Workload, entry: Mapping[str, Any], failed: float) -> float:
    """The recalibrated target after ``failed`` failed its validation: the value two thirds of all runs so far
    reached within 2/3 of the budget (``_pool``), rounded easier, and at least one rounding step easier than
    ``failed``."""
    nxt = round_easier(easier_quantile(_pool(entry), w.higher_is_better), w.metric, w.higher_is_better)
    if not _better(w, failed, nxt):
        nxt = step_easier(failed, w.metric, w.higher_is_better)
    return nxt


def validate_targets(
    workloads: Sequence[str],
    targets: Mapping[str, Mapping[str, Any]] | None = None,
    studies: int = 3,
    need: int | None = None,
    seed: int = VALIDATION_SEED + 10_000,
    fraction: float = 2 / 3,
    scale: float | dict[str, float] | None = None,
    recalibrate: bool = False,
    rounds: int = 3,
    criterion: str = "time",
    **run: Any,
) -> dict[str, dict[str, Any]]:
    """Validate shipped targets (``targets.json`` by default): each workload's target-setting configuration rerun
    on ``studies`` fresh seeds with the entry's target (the workload's current one if the entry has none); returns per workload the ``validate_target``
    result plus ``baseline``/``hparams``.

    With ``recalibrate``, a workload that fails is recalibrated as in ``derive_targets`` (``next_candidate`` from
    every run so far, this one included) and the new candidate validated on new seeds (``seed + 100 k``), for at
    most ``rounds`` rounds in all; the result then also holds ``entry``: the targets-file entry with the rounds
    appended under ``revalidation`` and the final ``target``/``status`` (what ``write_targets`` takes).
    ``need`` defaults to two thirds of ``studies``; ``criterion`` as in ``validate_target``."""
    fraction = _check_fraction(fraction)
    need = needed(studies) if need is None else need
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be a positive integer, got {rounds!r}")
    entries = load_targets() if targets is None else targets
    scale = hardware_scales() if scale is None else scale
    batch = {}
    for name in workloads:
        w = get_workload(name)
        e = entries.get(name)
        if not isinstance(e, Mapping) or "baseline" not in e or "hparams" not in e:
            raise ValueError(f"workload {name!r} has no target-setting configuration (baseline, hparams) in the "
                             "targets; derive one with `descentlab bench calibrate --targets`")  # fmt: skip
        t = float(e["target"]) if isinstance(e.get("target"), (int, float)) else w.target
        batch[name] = (w, e, _validation_specs(w, t, e["baseline"], e["hparams"], studies, seed, scale))
    out: dict[str, dict[str, Any]] = {}
    entry = {
        name: {**e, "revalidation": list(e.get("revalidation", []))} for name, (_, e, _) in batch.items()
    }
    target = {name: float(v[2][0]["workload"]["target"]) for name, v in batch.items()}
    for k in range(rounds if recalibrate else 1):
        done = execute([s for _, _, v in batch.values() for s in v], **run)
        for name, (w, e, specs) in batch.items():
            val = _judge(w, target[name], specs, done.results, need, fraction, criterion)
            out[name] = {**val, "round": k, "baseline": e["baseline"], "hparams": dict(e["hparams"]),
                         "status": "validated" if val["passed"] else "failed"}  # fmt: skip
            entry[name]["revalidation"].append({**val, "round": k})
            entry[name].update(target=target[name], status=out[name]["status"])
            out[name]["entry"] = entry[name]
        failing = {n: b for n, b in batch.items() if not out[n]["passed"]}
        if not recalibrate or not failing or k + 1 == rounds:
            break
        batch = {}
        for name, (w, e, _) in failing.items():
            target[name] = next_candidate(w, entry[name], target[name])
            entry[name].setdefault("candidates", []).append(target[name])
            batch[name] = (w, e, _validation_specs(w, target[name], e["baseline"], e["hparams"], studies,
                                                   seed + 100 * (k + 1), scale))  # fmt: skip
    return out


def load_targets(path: str | os.PathLike[str] = TARGETS_FILE) -> dict[str, dict[str, Any]]:
    """The target entries of ``path`` (``{"workloads": {name: {"target": ..., ...}}}``)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"targets file {str(path)!r} is unreadable: {exc}") from None
    entries = data.get("workloads") if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        raise ValueError(f"targets file {str(path)!r} has no 'workloads' object")
    return entries


def _jsonable(x: Any) -> Any:
    """``x`` with non-finite floats as None and tuples as lists (strict JSON)."""
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_targets(
    entries: Mapping[str, Mapping[str, Any]], path: str | os.PathLike[str] = TARGETS_FILE
) -> Path:
    """Merge ``entries`` into the targets file at ``path`` (other workloads kept) and return the path."""
    p = Path(path)
    data: dict[str, Any] = {"workloads": {}}
    if p.is_file():
        data = json.loads(p.read_text(encoding="utf-8"))
        data.setdefault("workloads", {})
    data["procedure"] = "descentlab.bench.targets (docs/benchmark.md, 'Targets')"
    for name, e in entries.items():
        data["workloads"][name] = _jsonable(e)
    p.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    return p


def _fmt(v: float | None, digits: int = 3) -> str:
    return "—" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}g}"


def validation_markdown(entries: Mapping[str, Mapping[str, Any]], fraction: float = 2 / 3) -> str:
    """The validation table (Markdown): per workload the target with the validation metric's own noise (binomial
    sd of an accuracy), the target-setting configuration, the last validation round's reached count against the
    count needed, the median time-to-target against ``fraction`` of the budget, the median first-hit step against
    ``fraction`` of the step hint, the criterion that decided, and the verdict."""
    last = {
        name: (e["validation"] if isinstance(e.get("validation"), list) else [e])[-1]
        for name, e in entries.items()
    }
    units = {v.get("unit", "s") for v in last.values()}
    u = units.pop() if len(units) == 1 else "s or steps"
    lines = [
        f"| workload | target | metric sd | set by | round | reached / needed | times to target ({u}) | median ({u}) "
        f"| 2/3 budget ({u}) | median step of first hit | 2/3 step hint | criterion | verdict |",
        "|---|---:|---:|---|---:|---:|---|---:|---:|---:|---:|---|---|",
    ]
    for name, e in entries.items():
        v = last[name]
        cfg = ", ".join(
            f"{k}={_fmt(x) if isinstance(x, float) else x}" for k, x in e.get("hparams", {}).items()
        )
        op = "≥" if e.get("higher_is_better", True) else "≤"
        times = ", ".join(_fmt(t) for t in v.get("times", []))
        hint = v.get("step_hint")
        need = v.get("need", needed(int(v["studies"])))
        lines.append(
            f"| {name} | {op}{v['target']:g} {e.get('metric', '')} | {_fmt(v.get('metric_sd'), 2)} | "
            f"{e.get('baseline', '')} ({cfg}) | {v.get('round', 0)} | {v['reached']}/{v['studies']} (need {need}) "
            f"| {times} | {_fmt(v.get('median_time'))} | {_fmt(fraction * v['budget'])} | "
            f"{_fmt(v.get('median_steps'), 4)} | {_fmt(None if hint is None else fraction * hint, 4)} | "
            f"{v.get('criterion', 'time')} | {'passed' if v['passed'] else 'FAILED'} |"
        )
    return "\n".join(lines) + "\n"
