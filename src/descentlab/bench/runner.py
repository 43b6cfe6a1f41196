"""The benchmark driver: plan the trials, skip cached ones, execute the rest, write every result to the store.

Only the driver writes the store (one run per trial, id ``bench-<key[:20]>``, the trial spec under
``config["bench"]``). A trial whose run is stored as ``finished`` or ``diverged`` is cached; a ``failed`` one is run
again, so an interrupted or crashed benchmark resumes where it stopped by re-running the same command.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from descentlab.bench.algorithms import Algorithm, get_algorithm
from descentlab.bench.executors import make_executor
from descentlab.bench.scoring import score
from descentlab.bench.trial import check_seed, make_spec, run_trial, shared_trainings
from descentlab.bench.tuning import halton_points, study_time
from descentlab.bench.uncertainty import Comparison, ScoreIntervals, compare_times, score_intervals
from descentlab.bench.workloads import Workload, get_workload, hardware_scales, scale_for
from descentlab.store import Store

TUNINGS = ("external", "self")
SELF_TUNING_FACTOR = 1.5
CACHED_STATUSES = ("finished", "diverged")


def _resolve(items: Iterable[str | Any], getter: Callable[[str], Any]) -> list[Any]:
    return [getter(x) if isinstance(x, str) else x for x in items]


def plan(
    algorithms: Sequence[str | Algorithm],
    workloads: Sequence[str | Workload],
    tuning: str = "external",
    trials: int = 5,
    studies: int = 3,
    seed: int = 0,
    scale: float | dict[str, float] = 1.0,
) -> list[dict[str, Any]]:
    """Trial specs. External: per algorithm, ``studies`` Halton draws of ``trials`` points (study ``s`` seeded
    ``seed + o + 1000 s``, the same points on every workload), trial seed ``seed + o + 1000 s + i``, where ``o`` is
    the algorithm's ``seed_offset`` (0 but for a null-test twin). Self-tuning: the algorithm's default point once per
    study (seed ``seed + o + 1000 s``), with ``1.5x`` the budget and the step hint. Budgets are multiplied by
    ``scale``."""
    if tuning not in TUNINGS:
        raise ValueError(f"tuning must be one of {TUNINGS}, got {tuning!r}")
    check_seed(seed)
    for nm, v in (("trials", trials), ("studies", studies)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{nm} must be a positive integer, got {v!r}")
    if not isinstance(scale, dict) and not (
        isinstance(scale, (int, float)) and scale > 0 and math.isfinite(scale)
    ):
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    algs = _resolve(algorithms, get_algorithm)
    wls = _resolve(workloads, get_workload)
    factor = {w.name: scale_for(scale, w.name) for w in wls}
    if not algs or not wls:
        raise ValueError("need at least one algorithm and one workload")
    for alg in algs:
        if tuning not in alg.rulesets:
            raise ValueError(f"algorithm {alg.name!r} enters the {'/'.join(alg.rulesets)} ruleset only (a submission's "
                             f"fixed configuration), not {tuning!r} tuning")  # fmt: skip
    from descentlab.bench.targets import TARGET_SEED_BASE

    top = seed + max(a.seed_offset for a in algs) + 1000 * (studies - 1) + max(trials, 1000)
    if top >= TARGET_SEED_BASE:  # the target-setting stream starts there (bench.targets)
        raise ValueError(f"seed {seed} with {studies} studies reaches seed {top}, into the target-setting stream "
                         f"(>= {TARGET_SEED_BASE}); use a smaller seed")  # fmt: skip
    tracks = {w.track for w in wls}
    if len(tracks) > 1:
        by = {t: [w.name for w in wls if w.track == t] for t in sorted(tracks)}
        raise ValueError(f"one benchmark scores one track, got workloads of several: {by} (seconds and steps do not "
                         "mix in one leaderboard; run them apart)")  # fmt: skip
    specs = []
    for alg in algs:
        base = seed + alg.seed_offset
        draws = [halton_points(alg.space, trials, seed=base + 1000 * s) for s in range(studies)]
        for wl in wls:
            for s in range(studies):
                if tuning == "self":
                    specs.append(make_spec(wl, alg, alg.default, base + 1000 * s, study=s, tuning="self",
                                           budget=wl.budget * factor[wl.name] * SELF_TUNING_FACTOR,
                                           step_hint=int(round(wl.step_hint * SELF_TUNING_FACTOR))))  # fmt: skip
                    continue
                for i, point in enumerate(draws[s]):
                    specs.append(make_spec(wl, alg, point, base + 1000 * s + i, budget=wl.budget * factor[wl.name],
                                           study=s, trial=i, tuning="external"))  # fmt: skip
    return specs


def run_id_for(key: str) -> str:
    """Store run id of the trial with cache key ``key``."""
    return f"bench-{key[:20]}"


def load_cached(store: Store, spec: Mapping[str, Any]) -> dict[str, Any] | None:
    """The stored result of ``spec`` if it finished or diverged (failures and unfinished runs are not cached)."""
    rid = run_id_for(spec["key"])
    if not store.has_run(rid):
        return None
    run = store.load_run(rid)
    if run.status not in CACHED_STATUSES or run.config.get("bench", {}).get("key") != spec["key"]:
        return None
    ttt = run.final.get("time_to_target", math.inf)
    ttt = math.inf if ttt is None else float(ttt)
    return {
        "key": spec["key"],
        "spec": dict(spec),
        "status": run.status,
        "reached": math.isfinite(ttt),
        "time_to_target": ttt,
        "final": dict(run.final),
        "history": run.history,
        "config": run.config,
        "error": "",
        "cached": True,
    }


def write_result(store: Store, result: Mapping[str, Any]) -> str:
    """Write a trial result as a run (driver only); returns the run id."""
    spec = result["spec"]
    rid = run_id_for(result["key"])
    bench = {k: spec[k] for k in ("key", "hparams", "seed", "study", "trial", "tuning")}
    bench["workload"] = spec["workload"]["name"]
    bench["algorithm"] = spec["algorithm"]["name"]
    bench["budget"] = spec["workload"]["budget"]
    config = {**result.get("config", {}), "bench": bench, "bench_spec": spec}
    config.setdefault("task", spec["workload"]["task"])
    store.create_run(rid, config, overwrite=True)  # a re-run trial replaces its run in one transaction
    rows = [(s, name, v) for name, pts in result.get("history", {}).items() for s, v in pts]
    store.log_metrics(rid, rows)
    final = {
        **result.get("final", {}),
        "time_to_target": result["time_to_target"],
        "reached": result["reached"],
    }
    status = result["status"] if result["status"] in ("finished", "diverged", "failed") else "failed"
    note = result.get("error") or result.get("note", "") or ("target reached" if result["reached"] else "")
    store.set_status(rid, status, final=final, note=note)
    return rid


@dataclass
class BenchmarkResult:
    """Trial specs and their results (by key); ``times()`` gives AlgoPerf's per-workload times."""

    specs: list[dict[str, Any]]
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    executed: int = 0

    @property
    def algorithms(self) -> list[str]:
        """Algorithm names in plan order."""
        return list(dict.fromkeys(s["algorithm"]["name"] for s in self.specs))

    @property
    def workloads(self) -> list[str]:
        """Workload names in plan order."""
        return list(dict.fromkeys(s["workload"]["name"] for s in self.specs))

    def missing(self) -> list[dict[str, Any]]:
        """Specs with no result (not run yet)."""
        return [s for s in self.specs if s["key"] not in self.results]

    @property
    def unit(self) -> str:
        """What the times are counted in: ``"s"`` (time track) or ``"steps"`` (the fewest-steps track)."""
        track = self.specs[0]["workload"].get("track", "time") if self.specs else "time"
        return "steps" if track == "steps" else "s"

    @property
    def tuning(self) -> str:
        """``external`` or ``self`` (from the specs)."""
        return str(self.specs[0].get("tuning", "external")) if self.specs else "external"

    def trial_times(self) -> dict[str, dict[str, list[list[float]]]]:
        """``trial_times[algorithm][workload][study][trial]``: time-to-target of every planned trial (seconds, or
        steps on the steps track; ``inf`` for a miss, a failure or a trial with no result yet), studies and trials in plan order."""
        grouped: dict[str, dict[str, dict[int, list[float]]]] = {a: {} for a in self.algorithms}
        for s in self.specs:
            res = self.results.get(s["key"])
            t = float(res["time_to_target"]) if res and res["status"] != "failed" else math.inf
            by_study = grouped[s["algorithm"]["name"]].setdefault(s["workload"]["name"], {})
            by_study.setdefault(int(s["study"]), []).append(t)
        return {a: {w: [st[k] for k in sorted(st)] for w, st in row.items()} for a, row in grouped.items()}

    def times(self) -> dict[str, dict[str, float]]:
        """``times[algorithm][workload]``: median over studies of the min over trials of time-to-target
        (AlgoPerf; self-tuning has one trial per study). Missing or failed trials count as inf."""
        return {a: {w: study_time(st) for w, st in row.items()} for a, row in self.trial_times().items()}

    def scores(self, tau_max: float = 4.0) -> dict[str, float]:
        """AlgoPerf score per algorithm from ``times()``."""
        return score(self.times(), tau_max)

    def intervals(
        self, ci: float = 0.9, n_boot: int = 2000, seed: int = 0, tau_max: float = 4.0
    ) -> ScoreIntervals:
        """Scores and times with ``ci`` bootstrap intervals and tie-aware ranks (``uncertainty.score_intervals``):
        studies redrawn (trials are not: a redrawn best-of-k is biased slow)."""
        return score_intervals(self.trial_times(), ci, n_boot, seed, tau_max=tau_max)

    def compare(
        self, a: str, b: str, workload: str, ci: float = 0.9, n_boot: int = 4000, seed: int = 0
    ) -> Comparison:
        """Algorithm ``a`` against ``b`` on ``workload`` (``uncertainty.compare_times``)."""
        tt = self.trial_times()
        for name in (a, b):
            if name not in tt:
                raise ValueError(f"algorithm {name!r} is not in this benchmark (it has {', '.join(tt)})")
        if workload not in tt[a]:
            raise ValueError(f"workload {workload!r} is not in this benchmark (it has {', '.join(tt[a])})")
        return compare_times(tt[a][workload], tt[b][workload], a, b, workload, ci, n_boot, seed,
                             unit=self.unit)  # fmt: skip

    def best_trials(self) -> dict[tuple[str, str], dict[str, Any]]:
        """(algorithm, workload) -> its fastest result (or, if none reached the target, the one that got closest)."""
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for s in self.specs:
            res = self.results.get(s["key"])
            if not res or res["status"] == "failed":
                continue
            k = (s["algorithm"]["name"], s["workload"]["name"])
            sign = 1.0 if s["workload"]["higher_is_better"] else -1.0
            metric = res["final"].get(s["workload"]["metric"], math.nan)
            rank = (float(res["time_to_target"]), -sign * metric if math.isfinite(metric) else math.inf)
            if k not in out or rank < out[k]["_rank"]:
                out[k] = {**res, "_rank": rank}
        return out


def collect(
    specs: list[dict[str, Any]], store: Store | str | os.PathLike[str] | None = None
) -> BenchmarkResult:
    """Results of ``specs`` found in the store (missing ones are listed by ``BenchmarkResult.missing()``)."""
    st = store if isinstance(store, Store) else Store(store)
    try:
        res = BenchmarkResult(specs)
        for s in specs:
            cached = load_cached(st, s)
            if cached is not None:
                res.results[s["key"]] = cached
        return res
    finally:
        if not isinstance(store, Store):
            st.close()


def run_benchmark(
    algorithms: Sequence[str | Algorithm],
    workloads: Sequence[str | Workload],
    tuning: str = "external",
    trials: int = 5,
    studies: int = 3,
    seed: int = 0,
    executor: str = "local",
    workers: int = 2,
    ray_address: str | None = None,
    store: Store | str | os.PathLike[str] | None = None,
    scale: float | dict[str, float] | None = None,
    progress: bool = True,
    trial_fn: Callable[..., dict[str, Any]] = run_trial,
) -> BenchmarkResult:
    """Run (or resume) a benchmark and return its results; cached trials are not run again.

    ``scale`` multiplies every budget (default: ``hardware_scales()``, per workload). ``trial_fn`` must be a module-level function
    ``(spec, threads=None) -> result`` (picklable for the process and Ray executors).
    """
    if scale is None:
        scale = hardware_scales()
    specs = plan(algorithms, workloads, tuning, trials, studies, seed, scale)
    return execute(specs, executor, workers, ray_address, store, progress, trial_fn)


def execute(
    specs: list[dict[str, Any]],
    executor: str = "local",
    workers: int = 2,
    ray_address: str | None = None,
    store: Store | str | os.PathLike[str] | None = None,
    progress: bool = True,
    trial_fn: Callable[..., dict[str, Any]] = run_trial,
) -> BenchmarkResult:
    """Run the trial ``specs`` that the store does not hold yet (each distinct key once), write every result to the
    store and return them all (cached ones included). With the default ``trial_fn``, trials that train the same run
    and differ only in a LAWA/EMA evaluation hook share one training (``trial.shared_trainings``)."""
    st = store if isinstance(store, Store) else Store(store)
    result = BenchmarkResult(specs)
    try:
        todo, seen = [], set()
        for s in specs:
            cached = load_cached(st, s)
            if cached is not None:
                result.results[s["key"]] = cached
            elif s["key"] not in seen:
                seen.add(s["key"])
                todo.append(s)
        if not todo:
            return result
        ex = make_executor(executor, workers, ray_address)
        threads = None if executor == "local" else getattr(ex, "threads", None)
        fn = functools.partial(trial_fn, threads=threads)
        bar = _Bar(progress, len(specs), len(specs) - len(todo))
        if trial_fn is run_trial:  # trials that differ only in a LAWA/EMA evaluation share one training
            todo = shared_trainings(todo)
        try:
            with bar:
                for out in ex.map(fn, todo):
                    for res in out if isinstance(out, list) else [out]:
                        write_result(st, res)
                        result.results[res["key"]] = res
                        result.executed += 1
                        bar.advance(res)
        finally:
            ex.close()
        return result
    finally:
        if not isinstance(store, Store):
            st.close()


class _Bar:
    """A rich progress bar over trials (a no-op when disabled)."""

    def __init__(self, enabled: bool, total: int, done: int):
        self._p = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._p = Progress(TextColumn("[bold]trials"), BarColumn(), MofNCompleteColumn(),
                               TextColumn("{task.fields[last]}"), TimeElapsedColumn())  # fmt: skip
            self._t = self._p.add_task("trials", total=total, completed=done, last="")

    def __enter__(self) -> _Bar:
        if self._p is not None:
            self._p.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._p is not None:
            self._p.__exit__(None, None, None)

    def advance(self, res: Mapping[str, Any]) -> None:
        if self._p is None:
            return
        s = res["spec"]
        t = res["time_to_target"]
        steps = s["workload"].get("track") == "steps"
        hit = f"{t:.0f} steps" if steps else f"{t:.2f}s"
        what = hit if math.isfinite(t) else res["status"] if res["status"] != "finished" else "missed"
        last = f"{s['algorithm']['name']} on {s['workload']['name']}: {what}"
        self._p.update(self._t, advance=1, last=last)
