"""Uncertainty on every benchmark number: bootstrap intervals for scores and times, ties, pairwise comparisons.

The data are the raw trial times ``trial_times[algorithm][workload][study][trial]`` (seconds, ``math.inf`` for a
miss). A workload's time is AlgoPerf's statistic, the median over studies of the minimum over trials; the score is
AlgoPerf's area under the performance profile (``scoring.score``). A bootstrap replicate redraws, independently
for every algorithm,

- its **studies** with replacement (one draw of study indices shared by all workloads: a study is one Halton draw
  of the search space and one set of seeds for every workload), and
- under external tuning, within each drawn study its **trials** with replacement (again shared by all workloads).
  The trials of a study are draws from the algorithm's search space, so a study's best could have come from
  another draw of the same size; self-tuning has one trial per study and only studies are redrawn.

Workloads are not redrawn: the benchmark is defined on its workloads. Each replicate is scored with all algorithms
together (ratios are to the fastest of that replicate); a ``ci`` interval is the ``(1 - ci)/2`` and ``(1 + ci)/2``
order statistics of the replicates (lower and higher, no interpolation, so ``inf`` stays ``inf``).

With three studies and no trial redraw, the interval of a median is the range of the three study values, which
covers the population median in 75 % of experiments: few studies give wide, honest intervals, not tight ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

TrialTimes = Mapping[str, Mapping[str, Sequence[Sequence[float]]]]
VERDICTS = ("faster", "slower", "no significant difference")


def _check_ci(ci: float) -> float:
    if isinstance(ci, bool) or not isinstance(ci, (int, float)) or not 0.0 < ci < 1.0:
        raise ValueError(f"ci must be a number in (0, 1), e.g. 0.9, got {ci!r}")
    return float(ci)


def _check_n_boot(n_boot: int) -> int:
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    return n_boot


def _table(name: str, studies: Any) -> np.ndarray:
    """One (algorithm, workload) cell as a float array (studies, trials); ValueError naming a bad cell."""
    try:
        rows = [[float(t) for t in s] for s in studies]
    except (TypeError, ValueError):
        raise ValueError(
            f"trial_times{name} must be a list of studies, each a list of seconds, got {studies!r:.120}"
        ) from None
    arr = np.array(rows, dtype=float) if len({len(r) for r in rows}) == 1 else np.zeros((0,))
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"trial_times{name} must hold at least one study with at least one trial, all studies "
                         f"with the same number of trials, got {studies!r:.120}")  # fmt: skip
    if np.isnan(arr).any() or (arr < 0).any():
        raise ValueError(f"trial_times{name} must be seconds >= 0 or math.inf, got {studies!r:.120}")
    return arr


def _cube(trial_times: TrialTimes) -> tuple[list[str], list[str], dict[str, np.ndarray]]:
    """Algorithms, workloads and per algorithm an array (workloads, studies, trials)."""
    if not isinstance(trial_times, Mapping) or not trial_times:
        raise ValueError(
            "trial_times must be a non-empty mapping algorithm -> {workload: [[seconds per trial] per study]}"
        )
    algorithms = list(trial_times)
    workloads = list(trial_times[algorithms[0]])
    if not workloads:
        raise ValueError(f"algorithm {algorithms[0]!r} has no workloads in trial_times")
    cubes = {}
    for a in algorithms:
        row = trial_times[a]
        if not isinstance(row, Mapping) or set(row) != set(workloads):
            got = sorted(row) if isinstance(row, Mapping) else type(row).__name__
            raise ValueError(
                f"algorithm {a!r} has workloads {got}; every algorithm needs {sorted(workloads)}"
            )
        cells = [_table(f"[{a!r}][{w!r}]", row[w]) for w in workloads]
        shapes = {c.shape for c in cells}
        if len(shapes) != 1:
            raise ValueError(f"algorithm {a!r}: every workload needs the same studies x trials, got shapes "
                             f"{ {w: c.shape for w, c in zip(workloads, cells, strict=True)} }")  # fmt: skip
        cubes[a] = np.stack(cells)
    return algorithms, workloads, cubes


def _statistic(cube: np.ndarray) -> np.ndarray:
    """Median over studies of the min over trials, per workload (the last two axes); inf stays inf."""
    return np.median(cube.min(axis=-1), axis=-1)


def _redraw(cube: np.ndarray, n_boot: int, rng: np.random.Generator, trials: bool) -> np.ndarray:
    """``n_boot`` bootstrap replicates of ``_statistic``, shape (n_boot, workloads)."""
    _, s, n = cube.shape
    si = rng.integers(0, s, size=(n_boot, s))
    picked = cube[:, si, :]  # (W, B, S, N)
    if trials and n > 1:
        ti = rng.integers(0, n, size=(n_boot, s, n))
        picked = np.take_along_axis(picked, np.broadcast_to(ti, picked.shape), axis=-1)
    return np.median(picked.min(axis=-1), axis=-1).T  # (B, W)


def _scores(times: np.ndarray, tau_max: float) -> np.ndarray:
    """AlgoPerf scores of a stack of time tables ``times[..., algorithm, workload]`` (see ``scoring.ratios``)."""
    best = times.min(axis=-2, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(best == 0.0, np.where(times == 0.0, 1.0, np.inf), times / best)
    r = np.where(np.isinf(best) | (r > tau_max), np.inf, r)
    return np.maximum(0.0, (tau_max - r) / (tau_max - 1.0)).mean(axis=-1)


def interval(samples: Sequence[float] | np.ndarray, ci: float = 0.9) -> tuple[float, float]:
    """The ``ci`` percentile interval of bootstrap samples: the lower ``(1 - ci)/2`` and the higher ``(1 + ci)/2``
    order statistics (no interpolation, so infinite samples give infinite bounds)."""
    ci = _check_ci(ci)
    x = np.asarray(samples, dtype=float)
    if x.size == 0 or np.isnan(x).any():
        raise ValueError(f"interval needs at least one sample and no NaN, got {x!r:.80}")
    return (
        float(np.quantile(x, (1 - ci) / 2, method="lower")),
        float(np.quantile(x, (1 + ci) / 2, method="higher")),
    )


def mark_ties(
    scores: Mapping[str, float], lo: Mapping[str, float], hi: Mapping[str, float]
) -> dict[str, dict[str, Any]]:
    """Ranks that respect the intervals: ``rank`` = 1 + the number of algorithms whose interval lies entirely above
    this one's (clearly better), ``tied_with`` = the algorithms whose intervals overlap this one's (bounds touching
    counts), ``tie`` = whether there are any. Ordered by score (then name)."""
    names = sorted(scores, key=lambda a: (-scores[a], a))
    for a in names:
        if not lo[a] <= scores[a] <= hi[a]:
            raise ValueError(
                f"algorithm {a!r}: score {scores[a]!r} lies outside its interval [{lo[a]!r}, {hi[a]!r}]"
            )
    out = {}
    for a in names:
        better = sum(1 for b in names if b != a and lo[b] > hi[a])
        tied = [b for b in names if b != a and lo[b] <= hi[a] and lo[a] <= hi[b]]
        out[a] = {"rank": 1 + better, "tied_with": tied, "tie": bool(tied)}
    return out


def rank_label(entry: Mapping[str, Any]) -> str:
    """``"3"``, or ``"=3"`` for a rank shared by overlapping intervals."""
    return f"={entry['rank']}" if entry["tie"] else str(entry["rank"])


@dataclass
class ScoreIntervals:
    """Scores and per-workload times with bootstrap intervals (see the module docstring); ``ranks`` from
    ``mark_ties``; ``replicates[b, i]`` is algorithm ``algorithms[i]``'s score in replicate ``b``."""

    algorithms: list[str]
    workloads: list[str]
    ci: float
    n_boot: int
    resampled: str
    scores: dict[str, float]
    score_lo: dict[str, float]
    score_hi: dict[str, float]
    times: dict[str, dict[str, float]]
    time_lo: dict[str, dict[str, float]]
    time_hi: dict[str, dict[str, float]]
    ranks: dict[str, dict[str, Any]]
    replicates: np.ndarray = field(repr=False)

    def order(self) -> list[str]:
        """Algorithms by score, best first (then by name)."""
        return sorted(self.algorithms, key=lambda a: (-self.scores[a], a))

    def difference(self, a: str, b: str) -> tuple[float, float, float]:
        """``score[a] - score[b]`` and its ``ci`` interval over the same replicates (paired)."""
        for x in (a, b):
            if x not in self.algorithms:
                raise ValueError(f"unknown algorithm {x!r} (scored: {', '.join(self.algorithms)})")
        i, j = self.algorithms.index(a), self.algorithms.index(b)
        lo, hi = interval(self.replicates[:, i] - self.replicates[:, j], self.ci)
        return self.scores[a] - self.scores[b], lo, hi

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``None`` for an infinite time)."""

        def t(x: float) -> float | None:
            return x if math.isfinite(x) else None

        return {
            "ci": self.ci,
            "n_boot": self.n_boot,
            "resampled": self.resampled,
            "scores": self.scores,
            "score_intervals": {a: [self.score_lo[a], self.score_hi[a]] for a in self.algorithms},
            "times": {a: {w: t(v) for w, v in row.items()} for a, row in self.times.items()},
            "time_intervals": {
                a: {w: [t(self.time_lo[a][w]), t(self.time_hi[a][w])] for w in self.workloads}
                for a in self.algorithms
            },
            "ranks": self.ranks,
        }


def score_intervals(
    trial_times: TrialTimes,
    ci: float = 0.9,
    n_boot: int = 2000,
    seed: int = 0,
    resample_trials: bool = False,
    tau_max: float = 4.0,
) -> ScoreIntervals:
    """AlgoPerf scores and per-workload times with ``ci`` bootstrap intervals from the raw trial times
    ``trial_times[a][w] = [[seconds per trial] per study]`` (``math.inf`` = miss); ties marked by ``mark_ties``.

    Only studies are redrawn by default: a redrawn best-of-k can only be slower than the observed one (a one-sided
    bias) and counts the trials' variance twice (issue 27); ``resample_trials=True`` redraws the trials inside each
    drawn study too, as before 2026-12-07. Deterministic under ``seed``.
    """
    ci, n_boot = _check_ci(ci), _check_n_boot(n_boot)
    if isinstance(tau_max, bool) or not isinstance(tau_max, (int, float)) or not tau_max > 1:
        raise ValueError(f"tau_max must be a number > 1, got {tau_max!r}")
    algorithms, workloads, cubes = _cube(trial_times)
    rng = np.random.default_rng(seed)
    point = np.stack([_statistic(cubes[a]) for a in algorithms])  # (A, W)
    # (B, A, W)
    reps = np.stack([_redraw(cubes[a], n_boot, rng, resample_trials) for a in algorithms], axis=1)
    point_scores = _scores(point, tau_max)
    rep_scores = _scores(reps, tau_max)  # (B, A)
    trials_redrawn = resample_trials and any(c.shape[2] > 1 for c in cubes.values())
    res = ScoreIntervals(
        algorithms=algorithms,
        workloads=workloads,
        ci=ci,
        n_boot=n_boot,
        resampled="studies and trials within studies" if trials_redrawn else "studies",
        scores={a: float(point_scores[i]) for i, a in enumerate(algorithms)},
        score_lo={},
        score_hi={},
        times={a: {w: float(point[i, j]) for j, w in enumerate(workloads)} for i, a in enumerate(algorithms)},
        time_lo={a: {} for a in algorithms},
        time_hi={a: {} for a in algorithms},
        ranks={},
        replicates=rep_scores,
    )
    for i, a in enumerate(algorithms):
        lo, hi = interval(rep_scores[:, i], ci)
        # the point estimate always lies inside its interval (a bootstrap interval may miss it for a non-smooth score)
        res.score_lo[a], res.score_hi[a] = min(lo, res.scores[a]), max(hi, res.scores[a])
        for j, w in enumerate(workloads):
            tlo, thi = interval(reps[:, i, j], ci)
            res.time_lo[a][w], res.time_hi[a][w] = min(tlo, res.times[a][w]), max(thi, res.times[a][w])
    res.ranks = mark_ties(res.scores, res.score_lo, res.score_hi)
    return res


def _sub(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a - b`` where two misses (inf - inf) count as no difference (0)."""
    with np.errstate(invalid="ignore"):
        d = a - b
    return np.where(np.isinf(a) & np.isinf(b), 0.0, d)


@dataclass
class Comparison:
    """Two algorithms on one workload: per-study times (median over studies of ... is ``time_a``/``time_b``),
    the difference ``time_a - time_b`` in ``unit`` (seconds, or steps) with its ``ci`` interval, and a verdict for
    ``a``."""

    a: str
    b: str
    workload: str
    ci: float
    n_boot: int
    resampled: str
    studies_a: list[float]
    studies_b: list[float]
    trials_a: list[list[float]]
    trials_b: list[list[float]]
    time_a: float
    time_b: float
    diff: float
    diff_lo: float
    diff_hi: float
    verdict: str
    unit: str = "s"
    """``"s"``, or ``"steps"`` on the fewest-steps track."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``None`` for an infinite number)."""

        def t(x: float) -> float | None:
            return x if math.isfinite(x) else None

        out = {
            k: getattr(self, k)
            for k in ("a", "b", "workload", "ci", "n_boot", "resampled", "verdict", "unit")
        }
        for k in ("time_a", "time_b", "diff", "diff_lo", "diff_hi"):
            out[k] = t(getattr(self, k))
        out["studies_a"] = [t(x) for x in self.studies_a]
        out["studies_b"] = [t(x) for x in self.studies_b]
        out["trials_a"] = [[t(x) for x in s] for s in self.trials_a]
        out["trials_b"] = [[t(x) for x in s] for s in self.trials_b]
        return out

    def sentence(self) -> str:
        """One line: the verdict with the numbers behind it."""

        u = self.unit

        def s(x: float) -> str:
            return f"{x:.3g} {u}" if math.isfinite(x) else "never (missed)"

        bound = (f"{self.diff:+.3g} {u}, {round(100 * self.ci)} % interval [{self.diff_lo:+.3g}, {self.diff_hi:+.3g}] "
                 f"{u}")  # fmt: skip
        what = {
            "faster": "faster than",
            "slower": "slower than",
            VERDICTS[2]: "not significantly different from",
        }
        return (f"{self.a} is {what[self.verdict]} {self.b} on {self.workload}: {'steps' if u == 'steps' else 'time'} "
                f"to target {s(self.time_a)} vs "
                f"{s(self.time_b)} (difference {bound}; {len(self.studies_a)} vs {len(self.studies_b)} studies, "
                f"bootstrap over {self.resampled})")  # fmt: skip


def compare_times(
    trials_a: Sequence[Sequence[float]],
    trials_b: Sequence[Sequence[float]],
    a: str = "a",
    b: str = "b",
    workload: str = "",
    ci: float = 0.9,
    n_boot: int = 4000,
    seed: int = 0,
    resample_trials: bool = False,
    unit: str = "s",
) -> Comparison:
    """Compare two algorithms' times to target on one workload from their trial tables (``[[seconds per trial] per
    study]``, ``math.inf`` = miss): the workload time of each (median over studies of the best trial), the difference
    ``a - b`` with a ``ci`` bootstrap interval (studies redrawn independently for each algorithm; trials within
    studies too with ``resample_trials=True``) and the verdict for ``a``: ``faster`` (the whole interval below 0), ``slower`` (above 0) or ``no
    significant difference``. Two misses count as a difference of 0; a miss against a hit as an infinite one."""
    ci, n_boot = _check_ci(ci), _check_n_boot(n_boot)
    ca, cb = _table(f"[{a!r}]", trials_a)[None], _table(f"[{b!r}]", trials_b)[None]
    rng = np.random.default_rng(seed)
    ta, tb = float(_statistic(ca)[0]), float(_statistic(cb)[0])
    ra, rb = _redraw(ca, n_boot, rng, resample_trials)[:, 0], _redraw(cb, n_boot, rng, resample_trials)[:, 0]
    diff = float(_sub(np.array([ta]), np.array([tb]))[0])
    lo, hi = interval(_sub(ra, rb), ci)
    lo, hi = min(lo, diff), max(hi, diff)
    verdict = "faster" if hi < 0 else "slower" if lo > 0 else VERDICTS[2]
    trials_redrawn = resample_trials and max(ca.shape[2], cb.shape[2]) > 1
    return Comparison(
        a=a, b=b, workload=workload, ci=ci, n_boot=n_boot,
        resampled="studies and trials within studies" if trials_redrawn else "studies",
        studies_a=[float(x) for x in ca[0].min(axis=1)], studies_b=[float(x) for x in cb[0].min(axis=1)],
        trials_a=ca[0].tolist(), trials_b=cb[0].tolist(),
        time_a=ta, time_b=tb, diff=diff, diff_lo=lo, diff_hi=hi, verdict=verdict, unit=unit,
    )  # fmt: skip
