"""A leaderboard that can rank: a paired analysis over studies, its estimand, and the self-checks shipped with it.

AlgoPerf's score (``scoring.score``) stays the descriptive headline. Inference is on an estimand that uses every
trial and is continuous in the hit rate:

- **Cell time** ``T[a, w]``: the restricted mean time-to-target of the best of ``k`` trials (``k`` = trials per
  study), over all ``S x k`` trials of the cell, misses censored at the budget. With the pooled, censored times
  sorted, ``x_(1) <= ... <= x_(n)``, the mean of the minimum over all ``C(n, k)`` subsets of size ``k`` is
  ``sum_j x_(j) C(n - j, k - 1) / C(n, k)`` (every trial counts; a miss counts as the budget).
- **Speed-up** of ``a`` over the baseline (NAdamW): the geometric mean over workloads of ``T[base, w] / T[a, w]``
  (AlgoPerf's own alternative score); between two entrants ``a``, ``b``: the geometric mean of ``T[b, w] / T[a, w]``
  over the workloads where both apply (an entrant with nothing to act on in a workload is "n/a" there).
- **Paired bootstrap over studies only**: one resample of study indices serves every entrant (the design shares
  seeds across entrants), trials are never redrawn (a best-of-k is not resampled within a study). Intervals are
  studentized (bootstrap-t: each replicate divided by its own jackknife-over-studies standard error) with
  ``n_boot`` (>= 10^4) replicates; their Monte-Carlo error is the spread of the t-quantiles over 10 batches of the
  replicates, divided by sqrt(10). Studentized rather than BCa: on simulated boards (censored log-normal times,
  30 % misses) BCa's A/A false-positive rate at a nominal 10 % was 0.20 at 6 studies and 0.15 at 12, the
  bootstrap-t's 0.08 and 0.095 (200 boards each); ``scipy.stats.bootstrap`` offers BCa, not bootstrap-t.
- **Pairwise tests**: the two-sided p-value of "no speed-up" is the larger of two: the smallest level whose
  bootstrap-t interval excludes 1, and the exact within-study swap test's (``swap_test``: study ``s`` of one entrant
  exchanged with study ``s`` of the other, every pattern up to 12 studies), whose level holds for any data (the
  bootstrap-t alone flagged 23-31 % of A/A splits on a one-trial-per-study board); Holm's step-down adjustment
  (``statsmodels.stats.multitest.multipletests``) over all pairs at family-wise level ``1 - ci``; each pair's interval is shown at its Holm step's level. Entrants are "separated"
  only when Holm rejects; **rank intervals** follow: ``[1 + #entrants separated as faster, A - #separated as
  slower]``.
- With fewer than ``MIN_STUDIES`` studies no interval is printed: the bootstrap over so few studies has too few
  distinct resamples to hold its level (``tests/bench/test_board.py`` checks the coverage at the shipped number).

Self-checks (``self_checks``) use the baseline's own trials: disjoint random halves of its studies are compared as
if they were two entrants (A/A: the false-positive rate, with its Clopper-Pearson interval from
``scipy.stats.binomtest``), and again with the second half's times multiplied by a factor (spike-in, re-scored
without training; the censoring point too, so the half's estimand is exactly that factor times its own): the power
at x0.8 and x0.67 and the minimum detectable effect at 80 % power. These run at half the
studies and unpaired, so they understate the power of the paired full board (stated with the numbers).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MIN_STUDIES = 6
"""Fewest studies for which intervals are printed (below: "too few studies for a 90 % interval")."""
N_BOOT = 10_000
SPIKE_FACTORS = (0.9, 0.85, 0.8, 0.75, 0.7, 0.67, 0.6, 0.5)
"""Time ratios tried for the minimum detectable effect (x0.8 and x0.67 always reported)."""

Cube = np.ndarray  # (workloads, studies, trials) of times; inf = miss


# -- the estimand ---------------------------------------------------------------------------------------------------
def best_of_k_weights(n: int, k: int) -> np.ndarray:
    """Weights ``C(n - j, k - 1) / C(n, k)`` (j = 1..n) of the sorted pool in the mean of the minimum of a random
    ``k``-subset of ``n`` values (they sum to 1)."""
    if not (isinstance(n, int) and isinstance(k, int) and 1 <= k <= n):
        raise ValueError(f"need 1 <= k <= n, got n={n!r}, k={k!r}")
    j = np.arange(1, n + 1)
    w = np.array([math.comb(n - int(i), k - 1) for i in j], dtype=float) / math.comb(n, k)
    return w


def cell_time(times: np.ndarray, budget: float, k: int | None = None) -> np.ndarray:
    """Restricted mean time of the best of ``k`` over the pooled trials of the last two axes (studies, trials),
    misses (``inf``) and times beyond the budget censored at ``budget``; ``k`` defaults to trials per study."""
    x = np.asarray(times, dtype=float)
    if x.ndim < 2:
        raise ValueError(f"times must have (studies, trials) as last axes, got shape {x.shape}")
    if not (isinstance(budget, (int, float)) and budget > 0 and math.isfinite(budget)):
        raise ValueError(f"budget must be a positive finite number, got {budget!r}")
    k = x.shape[-1] if k is None else k
    pool = np.sort(np.minimum(x, budget).reshape(*x.shape[:-2], -1), axis=-1)
    return pool @ best_of_k_weights(pool.shape[-1], k)


def _log_cell_times(cubes: np.ndarray, budgets: np.ndarray, idx: np.ndarray, k: int) -> np.ndarray:
    """``log T`` for study indices ``idx`` (..., S'): cubes (A, W, S, N) -> (..., A, W); ``budgets`` per workload
    (W,) or per entrant and workload (A, W) (a spiked entrant's censoring point scales with its times)."""
    picked = cubes[:, :, idx, :]  # (A, W, ..., S', N)
    picked = np.moveaxis(picked, (0, 1), (-4, -3))  # (..., A, W, S', N)
    pool = np.sort(np.minimum(picked, budgets[..., None, None]).reshape(*picked.shape[:-2], -1), axis=-1)
    return np.log(pool @ best_of_k_weights(pool.shape[-1], k))


def _check_cubes(
    trial_times: Mapping[str, Mapping[str, Any]], budgets: Mapping[str, float]
) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    algorithms = list(trial_times)
    if not algorithms:
        raise ValueError("trial_times must hold at least one algorithm")
    workloads = list(trial_times[algorithms[0]])
    if not workloads:
        raise ValueError(f"algorithm {algorithms[0]!r} has no workloads")
    arrs = []
    for a in algorithms:
        if set(trial_times[a]) != set(workloads):
            raise ValueError(
                f"algorithm {a!r} has workloads {sorted(trial_times[a])}; every one needs {sorted(workloads)}"
            )
        row = []
        for w in workloads:
            try:
                cell = np.asarray(trial_times[a][w], dtype=float)
            except (TypeError, ValueError):
                raise ValueError(f"trial_times[{a!r}][{w!r}] must be studies x trials of times") from None
            if cell.ndim != 2 or cell.size == 0 or np.isnan(cell).any() or (cell < 0).any():
                raise ValueError(f"trial_times[{a!r}][{w!r}] must be a non-empty studies x trials table of times >= 0 "
                                 f"(inf = miss), got shape {cell.shape}")  # fmt: skip
            row.append(cell)
        arrs.append(row)
    shapes = {c.shape for row in arrs for c in row}
    if len(shapes) != 1:
        raise ValueError(
            f"every cell needs the same studies x trials (paired design), got shapes {sorted(shapes)}"
        )
    for w in workloads:
        if w not in budgets:
            raise ValueError(f"no budget for workload {w!r}")
    b = np.array([float(budgets[w]) for w in workloads])
    if not (np.isfinite(b).all() and (b > 0).all()):
        raise ValueError(f"budgets must be positive finite numbers, got {dict(budgets)!r}")
    return algorithms, workloads, np.array(arrs, dtype=float), b


def _norm_ppf(q: np.ndarray) -> np.ndarray:
    from scipy.special import ndtri

    return ndtri(q)


# -- the studentized bootstrap over studies -------------------------------------------------------------------
def studentized_bootstrap(
    stat, studies: int, n_boot: int, rng: np.random.Generator, chunk: int = 250
) -> dict[str, Any]:
    """Bootstrap-t over ``studies`` study indices: ``stat(idx)`` maps index arrays (..., S') to outputs (..., Q).

    Every replicate resamples the study indices once (the same for every output: paired) and studentizes by the
    jackknife standard error over its own studies. Returns ``theta`` (Q,), ``se`` (Q,) and ``t`` (B, Q), the
    replicates' ``(theta* - theta) / se*``."""
    S = int(studies)
    if S < 3:
        raise ValueError(f"a studentized bootstrap needs at least 3 studies, got {S}")
    ar = np.arange(S)
    pos = np.array([np.delete(ar, s) for s in range(S)])

    def jse(idx: np.ndarray) -> np.ndarray:
        j = stat(idx[..., pos])  # (..., S, Q)
        return np.sqrt((S - 1) / S * ((j - j.mean(axis=-2, keepdims=True)) ** 2).sum(axis=-2))

    theta, se = stat(ar), jse(ar)
    ts = []
    for start in range(0, n_boot, chunk):
        idx = rng.integers(0, S, size=(min(chunk, n_boot - start), S))
        th, sb = stat(idx), jse(idx)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (th - theta) / sb
            degenerate = np.where(np.isclose(th, theta), 0.0, np.sign(th - theta) * np.inf)
        t = np.where(sb > 0, t, degenerate)
        ts.append(t)
    return {"theta": theta, "se": se, "t": np.concatenate(ts, axis=0)}


def _t_interval(boot: Mapping[str, np.ndarray], level: np.ndarray) -> np.ndarray:
    """Bootstrap-t intervals ``[theta - q(1 - a/2) se, theta - q(a/2) se]`` at two-sided levels ``level`` (Q,)."""
    theta, se, t = boot["theta"], boot["se"], boot["t"]
    alpha = 1 - np.broadcast_to(level, theta.shape)
    qlo = np.array([np.quantile(t[:, q], a / 2) for q, a in enumerate(alpha)])
    qhi = np.array([np.quantile(t[:, q], 1 - a / 2) for q, a in enumerate(alpha)])
    lo, hi = theta - qhi * se, theta - qlo * se
    return np.stack([np.where(se > 0, lo, theta), np.where(se > 0, hi, theta)], axis=1)


def _t_pvalue(boot: Mapping[str, np.ndarray]) -> np.ndarray:
    """Two-sided p-value of ``theta = 0``: the smallest level whose bootstrap-t interval excludes 0,
    ``2 min(P(t* >= t0), P(t* <= t0))`` with ``t0 = theta / se`` (at least 1 / (B + 1))."""
    theta, se, t = boot["theta"], boot["se"], boot["t"]
    B = t.shape[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        t0 = np.where(se > 0, theta / se, np.where(theta == 0, 0.0, np.sign(theta) * np.inf))
    p = 2 * np.minimum((t >= t0).mean(axis=0), (t <= t0).mean(axis=0))
    p = np.where((se == 0) & (theta == 0), 1.0, p)
    return np.clip(p, 1.0 / (B + 1), 1.0)


def _mc_error(boot: Mapping[str, np.ndarray], level: float, batches: int = 10) -> np.ndarray:
    """Monte-Carlo error of the interval endpoints: ``se`` times the spread (sd / sqrt(batches)) of the t-quantiles
    over ``batches`` equal parts of the replicates; the larger of the two ends, per output."""
    t, se = boot["t"], boot["se"]
    a = 1 - level
    parts = np.array_split(t, batches, axis=0)
    out = np.zeros(t.shape[1])
    for q in (a / 2, 1 - a / 2):
        ends = np.stack([np.quantile(p_, q, axis=0) for p_ in parts])  # (batches, Q)
        with np.errstate(invalid="ignore"):
            spread = np.nan_to_num(ends.std(axis=0, ddof=1) / math.sqrt(batches), nan=0.0, posinf=0.0)
        out = np.maximum(out, spread * se)
    return out


# -- the exact within-study swap test --------------------------------------------------------------------------------
SWAP_EXACT_STUDIES = 12
"""Up to this many studies the swap test enumerates every pattern (2^S); beyond, ``SWAP_DRAWS`` random ones."""
SWAP_DRAWS = 4095


def swap_test(
    pair: np.ndarray,
    budgets: np.ndarray,
    k: int,
    weights: np.ndarray | None = None,
    seed: int = 0,
) -> float:
    """Two-sided p-value of "the two entrants are exchangeable within each study" by swapping study ``s`` of one with
    study ``s`` of the other (a paired randomization test; exact, so its level holds for any data, near-binary cells
    and few studies included).

    ``pair``: (2, W, S, N) times (inf = miss); ``budgets``: (W,) or (2, W) censoring points (each entrant's trials are
    censored at its own before any swap); ``weights``: (W,) 1 where the pair is compared, NaN where not. The statistic
    is the mean over compared workloads of ``log T_0 - log T_1`` (the board's estimand); the p-value is the share of
    swap patterns whose |statistic| is at least the observed one: every pattern up to ``SWAP_EXACT_STUDIES`` studies
    (the smallest p is 2 / 2^S), else ``SWAP_DRAWS`` random patterns with the observed one counted ((1 + r) / (1 + n))."""
    x = np.asarray(pair, dtype=float)
    if x.ndim != 4 or x.shape[0] != 2:
        raise ValueError(f"pair must be (2, workloads, studies, trials), got shape {x.shape}")
    _, W, S, N = x.shape
    b = np.asarray(budgets, dtype=float)
    if b.shape not in ((W,), (2, W)) or not (np.isfinite(b).all() and (b > 0).all()):
        raise ValueError(
            f"budgets must be {W} (or 2 x {W}) positive finite numbers, got shape {b.shape}: {b!r}"
        )
    bud = np.broadcast_to(b, (2, W))
    w = np.ones(W) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != (W,):
        raise ValueError(f"weights must be one number (1 or NaN) per workload ({W}), got shape {w.shape}")
    capped = np.minimum(x, bud[:, :, None, None])
    if S <= SWAP_EXACT_STUDIES:
        patterns = ((np.arange(2**S)[:, None] >> np.arange(S)) & 1).astype(bool)
        exact = True
    else:
        rng = np.random.default_rng(seed)
        patterns = np.concatenate(
            [np.zeros((1, S), bool), rng.integers(0, 2, size=(SWAP_DRAWS, S)).astype(bool)]
        )
        exact = False
    wts = best_of_k_weights(S * N, k)
    d = np.empty(len(patterns))
    for start in range(0, len(patterns), 512):
        m = patterns[start : start + 512][:, None, :, None]  # (P, 1, S, 1)
        arm0 = np.where(m, capped[1][None], capped[0][None])  # (P, W, S, N)
        arm1 = np.where(m, capped[0][None], capped[1][None])
        logs = [np.log(np.sort(a.reshape(*a.shape[:2], -1), axis=-1) @ wts) for a in (arm0, arm1)]
        diff = (logs[0] - logs[1]) * w
        n = np.isfinite(diff).sum(axis=-1)
        with np.errstate(invalid="ignore"):
            d[start : start + 512] = np.where(n > 0, np.nansum(diff, axis=-1) / np.maximum(n, 1), np.nan)
    obs = d[0]  # pattern 0 swaps nothing
    if not np.isfinite(obs):
        return 1.0
    tol = 1e-12 * max(1.0, abs(obs))
    extreme = np.abs(d) >= abs(obs) - tol
    if exact:
        return float(extreme.mean())
    return float(extreme.sum() / len(d))  # the observed pattern is one of the len(d) = n + 1


# -- the board --------------------------------------------------------------------------------------------------------
@dataclass
class Board:
    """The paired analysis of one leaderboard (see the module docstring). Speed-ups are ratios (> 1 = faster);
    ``intervals`` is None when there are fewer than ``MIN_STUDIES`` studies (``note`` says so)."""

    algorithms: list[str]
    workloads: list[str]
    baseline: str
    studies: int
    trials: int
    ci: float
    n_boot: int
    cell_times: dict[str, dict[str, float | None]]
    speedup: dict[str, float]
    speedup_interval: dict[str, tuple[float, float]] | None
    mc_error: dict[str, float] | None
    pairs: list[dict[str, Any]]
    rank_interval: dict[str, tuple[int, int]]
    not_applicable: list[tuple[str, str]] = field(default_factory=list)
    note: str = ""

    def order(self) -> list[str]:
        """Entrants by speed-up over the baseline, fastest first (one with no applicable workload last)."""
        return sorted(
            self.algorithms, key=lambda a: (math.isnan(self.speedup[a]), -np.nan_to_num(self.speedup[a]), a)
        )

    def separated(self, a: str, b: str) -> bool:
        """Whether Holm separates ``a`` and ``b`` (either direction)."""
        for p in self.pairs:
            if {p["a"], p["b"]} == {a, b}:
                return bool(p["separated"])
        raise ValueError(f"no pair ({a!r}, {b!r}) on this board (entrants: {', '.join(self.algorithms)})")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "baseline": self.baseline, "studies": self.studies, "trials": self.trials, "ci": self.ci,
            "n_boot": self.n_boot, "cell_times": self.cell_times,
            "speedup": {a: (v if math.isfinite(v) else None) for a, v in self.speedup.items()},
            "speedup_interval": None if self.speedup_interval is None else {k: list(v) for k, v in self.speedup_interval.items()},
            "mc_error": self.mc_error, "pairs": self.pairs,
            "rank_interval": {k: list(v) for k, v in self.rank_interval.items()},
            "not_applicable": [list(x) for x in self.not_applicable], "note": self.note,
        }  # fmt: skip

    def markdown(self) -> str:
        """The board as Markdown: speed-ups with intervals and rank intervals, then the separated pairs."""
        pct = round(100 * self.ci)
        lines = [
            f"Estimand: geometric-mean speed-up over {self.baseline} of the restricted mean time of the best of "
            f"{self.trials} (all {self.studies} x {self.trials} trials of a cell, misses censored at the budget). "
            f"Paired bootstrap over the {self.studies} studies only (studentized, {self.n_boot} replicates), pairwise "
            f"tests Holm-adjusted at family-wise {100 - pct} %.",
            "",
        ]
        if self.note:
            lines += [f"**{self.note}**", ""]
        head = "| rank interval | entrant | speed-up over " + self.baseline
        head += f" | {pct} % interval | MC error |" if self.speedup_interval is not None else " |"
        lines.append(head)
        lines.append("|---|---|---:|" + ("---|---:|" if self.speedup_interval is not None else ""))
        for a in self.order():
            if a not in self.rank_interval:
                lines.append(
                    f"| n/a | {a} | n/a (no workload it applies to) |"
                    + (" — | — |" if self.speedup_interval is not None else "")
                )
                continue
            lo, hi = self.rank_interval[a]
            r = f"{lo}" if lo == hi else f"{lo}-{hi}"
            row = f"| {r} | {a} | {self.speedup[a]:.3f}"
            if self.speedup_interval is not None and self.mc_error is not None:
                ilo, ihi = self.speedup_interval[a]
                row += f" | [{ilo:.3f}, {ihi:.3f}] | {self.mc_error[a]:.3f} |"
            else:
                row += " |"
            lines.append(row)
        sep = [p for p in self.pairs if p["separated"]]
        lines += ["", f"Separated pairs (Holm, family-wise {100 - pct} %): "
                  + (", ".join(f"{p['faster']} faster than {p['slower']} (x{p['ratio']:.2f}, adjusted p "
                               f"{p['p_holm']:.3g})" for p in sep) if sep else "none: every pair is not separated.")]  # fmt: skip
        mdes = sorted(p["mde"] for p in self.pairs if p.get("mde") is not None)
        if mdes and self.speedup_interval is not None:
            mid = mdes[len(mdes) // 2]
            lines += ["", f"Paired minimum detectable effect at 80 % power (normal approximation from each pair's "
                      f"bootstrap standard error, {100 - pct} % two-sided, before Holm): a time ratio of x{mid:.2f} "
                      f"(median over pairs; x{mdes[-1]:.2f} to x{mdes[0]:.2f})."]  # fmt: skip
        if self.not_applicable:
            lines += ["", "Not applicable (n/a, left out of that entrant's means): "
                      + ", ".join(f"{a} on {w}" for a, w in self.not_applicable)]  # fmt: skip
        return "\n".join(lines) + "\n"


def rank_intervals(ranked: Sequence[str], pairs: Sequence[Mapping[str, Any]]) -> dict[str, tuple[int, int]]:
    """``[1 + #entrants separated as faster, len(ranked) - #separated as slower]`` for each of ``ranked``."""
    ranks = {}
    for a in ranked:
        better = sum(1 for p in pairs if p["separated"] and p["slower"] == a)
        worse = sum(1 for p in pairs if p["separated"] and p["faster"] == a)
        ranks[a] = (1 + better, len(ranked) - worse)
    return ranks


def analyze(
    trial_times: Mapping[str, Mapping[str, Any]],
    budgets: Mapping[str, float],
    baseline: str,
    not_applicable: Sequence[tuple[str, str]] = (),
    ci: float = 0.9,
    n_boot: int = N_BOOT,
    seed: int = 0,
    min_studies: int = MIN_STUDIES,
) -> Board:
    """The paired analysis of ``trial_times[a][w] = [[time per trial] per study]`` (``inf`` = miss; the same
    studies x trials everywhere) with the workloads' ``budgets`` (censoring) against ``baseline``; cells listed in
    ``not_applicable`` ((algorithm, workload)) are left out of that entrant's means. See the module docstring."""
    from statsmodels.stats.multitest import multipletests

    if isinstance(ci, bool) or not isinstance(ci, (int, float)) or not 0 < ci < 1:
        raise ValueError(f"ci must be a number in (0, 1), got {ci!r}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 100:
        raise ValueError(f"n_boot must be an integer >= 100, got {n_boot!r}")
    algorithms, workloads, cubes, b = _check_cubes(trial_times, budgets)
    if baseline not in algorithms:
        raise ValueError(f"baseline {baseline!r} is not on the board (entrants: {', '.join(algorithms)})")
    A, W, S, N = cubes.shape
    mask = np.ones((A, W), dtype=bool)
    for a, w in not_applicable:
        if a not in algorithms or w not in workloads:
            raise ValueError(f"not_applicable names an unknown cell ({a!r}, {w!r})")
        if a == baseline:
            raise ValueError(f"the baseline {baseline!r} must apply to every workload, not to {w!r}")
        mask[algorithms.index(a), workloads.index(w)] = False
    ib = algorithms.index(baseline)
    pairs_idx = [(i, j) for i in range(A) for j in range(i + 1, A)]
    alpha = 1 - ci
    m = np.where(mask, 1.0, np.nan)

    def nanmean(x: np.ndarray) -> np.ndarray:  # NaN where no workload applies (no warning)
        n = np.isfinite(x).sum(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, np.nansum(x, axis=-1) / n, np.nan)

    def stat(idx: np.ndarray) -> np.ndarray:
        """(..., S') study indices -> (..., A + P): log speed-up over the baseline, then of i over j per pair."""
        logT = _log_cell_times(cubes, b, idx, N)  # (..., A, W)
        over_base = nanmean((logT[..., ib : ib + 1, :] - logT) * m)
        pair = [nanmean((logT[..., j, :] - logT[..., i, :]) * m[i] * m[j]) for i, j in pairs_idx]
        return np.concatenate([over_base, np.stack(pair, axis=-1)] if pair else [over_base], axis=-1)

    cell = np.exp(_log_cell_times(cubes, b, np.arange(S), N))
    cell_times = {a: {w: (float(cell[i, j]) if mask[i, j] else None) for j, w in enumerate(workloads)}
                  for i, a in enumerate(algorithms)}  # fmt: skip
    enough = S >= min_studies
    if S >= 3:
        boot = studentized_bootstrap(stat, S, n_boot, np.random.default_rng(seed))
        point = boot["theta"]
    else:
        boot, point = None, stat(np.arange(S))
    pairs: list[dict[str, Any]] = []
    P = len(pairs_idx)
    if P and boot is not None:
        pb = {k: (v[..., A:]) for k, v in boot.items()}
        comparable = np.isfinite(pb["theta"])  # a pair with no workload where both apply is not tested
        p_t = np.where(comparable, _t_pvalue({k: np.nan_to_num(v) for k, v in pb.items()}), 1.0)
        # a pair is separated only where the exact swap test agrees (max of two valid p-values is valid): the
        # bootstrap-t alone is anti-conservative on few studies with near-binary cells (docs/benchmark.md)
        p_swap = np.array([
            swap_test(cubes[[i, j]], b, N, m[i] * m[j], seed=seed + q) if comparable[q] else 1.0
            for q, (i, j) in enumerate(pairs_idx)
        ])  # fmt: skip
        pvals = np.maximum(p_t, p_swap)
        reject = np.zeros(P, dtype=bool)
        p_holm = np.ones(P)
        level = np.full(P, alpha)
        k = int(comparable.sum())
        if k:
            r_, ph_, _, _ = multipletests(pvals[comparable], alpha=alpha, method="holm")
            reject[comparable], p_holm[comparable] = r_, ph_
            sub = np.empty(k)
            sub[np.argsort(pvals[comparable], kind="stable")] = alpha / (
                k - np.arange(k)
            )  # Holm step i: a/(k-i+1)
            level[comparable] = sub
        with np.errstate(over="ignore"):
            iv = np.exp(_t_interval({kk: np.nan_to_num(v) for kk, v in pb.items()}, 1 - level))
        for q, (i, j) in enumerate(pairs_idx):
            if not comparable[q]:
                pairs.append({"a": algorithms[i], "b": algorithms[j], "ratio_a_over_b": None, "ratio": None,
                              "faster": None, "slower": None, "interval": None, "interval_level": None, "p": None,
                              "p_bootstrap_t": None, "p_swap": None, "p_holm": None, "separated": False,
                              "mde": None})  # fmt: skip
                continue
            d = float(pb["theta"][q])
            # paired minimum detectable effect at 80 % power (normal approximation, before Holm): a time ratio
            mde = math.exp(
                -(_norm_ppf(np.array(1 - alpha / 2)) + _norm_ppf(np.array(0.8))) * float(pb["se"][q])
            )
            faster, slower = (algorithms[i], algorithms[j]) if d >= 0 else (algorithms[j], algorithms[i])
            pairs.append({
                "a": algorithms[i], "b": algorithms[j], "ratio_a_over_b": float(np.exp(d)),
                "ratio": float(np.exp(abs(d))), "faster": faster, "slower": slower,
                "interval": [float(iv[q, 0]), float(iv[q, 1])], "interval_level": float(1 - level[q]),
                "p": float(pvals[q]), "p_bootstrap_t": float(p_t[q]), "p_swap": float(p_swap[q]),
                "p_holm": float(p_holm[q]), "separated": bool(reject[q]) and enough,
                "mde": float(mde),
            })  # fmt: skip
    ranks = rank_intervals([a for i, a in enumerate(algorithms) if np.isfinite(point[i])], pairs)
    speedup = {a: float(np.exp(point[i])) for i, a in enumerate(algorithms)}
    iv_sp = mc = None
    if enough and boot is not None:
        head = {k: v[..., :A] for k, v in boot.items()}
        iv0 = _t_interval(head, np.full(A, ci))
        err = _mc_error(head, ci)
        iv_sp = {
            a: (float(np.exp(iv0[i, 0])), float(np.exp(iv0[i, 1])))
            for i, a in enumerate(algorithms)
            if a in ranks
        }
        # on the ratio scale: the endpoint's error times the endpoint (delta method)
        mc = {a: float(err[i] * np.exp(iv0[i, 1])) for i, a in enumerate(algorithms) if a in ranks}
    note = "" if enough else (
        f"Too few studies for a {round(100 * ci)} % interval: {S} < {min_studies} (a bootstrap over so few studies "
        "does not hold its level); no interval, no separation, every rank interval is the whole field."
    )  # fmt: skip
    tested = sum(p["ratio"] is not None for p in pairs)
    if enough and tested and tested * swap_floor(S) > alpha:
        need = [n for n in range(S, SWAP_EXACT_STUDIES + 2) if tested * swap_floor(n) <= alpha]
        note = (f"No pair can be separated on this board whatever the data: the exact swap test's smallest p-value "
                f"on {S} studies ({swap_floor(S):.3g}) times the {tested} pairs exceeds {alpha:.3g}. "
                + (f"Run at least {need[0]} studies or compare fewer entrants." if need else
                   "Compare fewer entrants."))  # fmt: skip
    return Board(
        algorithms=algorithms, workloads=workloads, baseline=baseline, studies=S, trials=N, ci=float(ci),
        n_boot=n_boot, cell_times=cell_times, speedup=speedup, speedup_interval=iv_sp, mc_error=mc, pairs=pairs,
        rank_interval=ranks, not_applicable=[(a, w) for a, w in not_applicable], note=note,
    )  # fmt: skip


# -- paired test of two cubes (the null test and the self-checks) ------------------------------------------------
# -- studies in blocks: a sequential rule that stops spending on resolved pairs -------------------------------------
Fetch = Callable[[list[str], int], tuple[Mapping[str, Any], Mapping[str, float], Sequence[tuple[str, str]]]]
"""``fetch(entrants, studies)`` -> (``trial_times`` of those entrants over the first ``studies`` studies, budgets,
not-applicable cells): runs the missing trials (``bench sequential``) or reads them (a replay)."""


def check_blocks(blocks: Sequence[int], min_studies: int = MIN_STUDIES) -> list[int]:
    """``blocks`` as a list of strictly increasing study counts, the first >= ``min_studies`` (ValueError else)."""
    out = list(blocks) if isinstance(blocks, (list, tuple)) else None
    if (
        not out
        or any(isinstance(b, bool) or not isinstance(b, (int, np.integer)) for b in out)
        or any(b2 <= b1 for b1, b2 in zip(out, out[1:]))
        or out[0] < min_studies
    ):
        raise ValueError(
            f"blocks must be strictly increasing study counts starting at >= {min_studies}, got {blocks!r}"
        )
    return [int(b) for b in out]


def swap_floor(studies: int) -> float:
    """The smallest p-value ``swap_test`` can return on ``studies`` studies: 2 / 2^S when every swap pattern is
    enumerated, 1 / (SWAP_DRAWS + 1) beyond. Times the number of pairs, the smallest Holm-adjusted p of a board."""
    return 2.0 / 2**studies if studies <= SWAP_EXACT_STUDIES else 1.0 / (SWAP_DRAWS + 1)


def sequential_board(
    fetch: Fetch,
    algorithms: Sequence[str],
    blocks: Sequence[int],
    baseline: str,
    ci: float = 0.9,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> dict[str, Any]:
    """Studies added in blocks, with a stopping rule declared before any trial: at look ``k`` of ``K`` (after
    ``blocks[k]`` studies) the entrants still running are analysed by ``analyze`` at family-wise level
    ``(1 - ci) / K`` (Holm within the look, Bonferroni over the looks, so the whole procedure's family-wise error is
    at most ``1 - ci`` however the looks fall); a pair Holm separates there is **resolved** and keeps that look's
    verdict. An entrant gets the next block only while one of its pairs is unresolved (the baseline always does, for
    the headline); the board stops when no pair is open or after the last block. Returns ``looks`` (per look: the
    studies, the entrants run, the level, the pairs resolved there), ``pairs`` (final: resolved ones from their look,
    open ones from the last look that saw them), ``rank_interval``, ``studies_used`` per entrant, the entrant-studies
    spent against the fixed design's, and ``markdown``."""
    blocks = check_blocks(blocks)
    algorithms = list(algorithms)
    if baseline not in algorithms:
        raise ValueError(f"baseline {baseline!r} is not among the entrants ({', '.join(algorithms)})")
    if isinstance(ci, bool) or not isinstance(ci, (int, float)) or not 0 < ci < 1:
        raise ValueError(f"ci must be a number in (0, 1), got {ci!r}")
    K = len(blocks)
    ci_look = 1 - (1 - ci) / K
    alive = list(algorithms)
    resolved: dict[frozenset[str], dict[str, Any]] = {}
    last_pair: dict[frozenset[str], dict[str, Any]] = {}
    studies_used = {a: 0 for a in algorithms}
    speedup: dict[str, tuple[float, int]] = {}
    looks: list[dict[str, Any]] = []
    for k, S in enumerate(blocks):
        times, budgets, na = fetch(list(alive), S)
        na_alive = [(a, w) for a, w in na if a in alive]
        bd = analyze({a: times[a] for a in alive}, budgets, baseline, na_alive, ci=ci_look, n_boot=n_boot,
                     seed=seed + k)  # fmt: skip
        if bd.studies != S:
            raise ValueError(f"look {k + 1}: fetch returned {bd.studies} studies, expected {S}")
        for a in alive:
            studies_used[a] = S
            speedup[a] = (bd.speedup[a], S)
        new = []
        for p in bd.pairs:
            key = frozenset((p["a"], p["b"]))
            if key in resolved:
                continue
            last_pair[key] = {**p, "look": k + 1, "studies": S}
            if p["separated"]:
                resolved[key] = last_pair[key]
                new.append(last_pair[key])
        open_pairs = [key for key, p in last_pair.items() if key not in resolved and p["ratio"] is not None]
        nxt = [a for a in alive if a == baseline or any(a in key for key in open_pairs)]
        tested = sum(p["ratio"] is not None for p in bd.pairs)
        looks.append({"look": k + 1, "studies": S, "entrants": list(alive), "level": 1 - ci_look,
                      "resolved": [(p["faster"], p["slower"]) for p in new], "open": len(open_pairs),
                      "decidable": tested * swap_floor(S) <= 1 - ci_look})  # fmt: skip
        if not open_pairs or len(nxt) < 2:
            break
        alive = nxt
    pairs = list(last_pair.values())
    ranks = rank_intervals([a for a in algorithms if math.isfinite(speedup[a][0])], pairs)
    spent = sum(studies_used.values())
    fixed = len(algorithms) * blocks[-1]
    out = {"blocks": blocks, "baseline": baseline, "ci": float(ci), "looks": looks, "pairs": pairs,
           "rank_interval": ranks, "studies_used": studies_used,
           "speedup": {a: {"speedup": v, "studies": n} for a, (v, n) in speedup.items()},
           "entrant_studies": spent, "entrant_studies_fixed": fixed}  # fmt: skip
    out["markdown"] = sequential_markdown(out)
    return out


def sequential_markdown(sq: Mapping[str, Any]) -> str:
    """A sequential board as Markdown: the looks, then every entrant's studies, speed-up and rank interval."""
    K, pct = len(sq["blocks"]), round(100 * (1 - sq["ci"]), 1)
    lines = [f"Studies in blocks of {', '.join(map(str, sq['blocks']))}; at each of the {K} looks the running "
             f"entrants are analysed at family-wise {pct / K:.3g} % (Holm within a look, Bonferroni over the {K} "
             f"looks: {pct:g} % in all); a separated pair is resolved and its entrants stop when none of their "
             "pairs is open (the baseline runs on).", "",
             "| look | studies | entrants run | level | resolved here | still open |", "|---:|---:|---:|---:|---|---:|"]  # fmt: skip
    for lk in sq["looks"]:
        res = ", ".join(f"{f} > {s}" for f, s in lk["resolved"]) or "—"
        lines.append(f"| {lk['look']} | {lk['studies']} | {len(lk['entrants'])} | {100 * lk['level']:.3g} % | {res} | "
                     f"{lk['open']} |")  # fmt: skip
    blind = [lk["look"] for lk in sq["looks"] if not lk["decidable"]]
    if blind:
        lines += ["", f"At look(s) {', '.join(map(str, blind))} no pair could be separated whatever the data: the "
                  f"exact swap test's smallest p-value (2 / 2^S up to {SWAP_EXACT_STUDIES} studies) times the number of pairs exceeds "
                  "the look's level. Start the blocks later or compare fewer entrants."]  # fmt: skip
    lines += [
        "",
        f"| rank interval | entrant | studies | speed-up over {sq['baseline']} |",
        "|---|---|---:|---:|",
    ]
    order = sorted(sq["speedup"], key=lambda a: (not math.isfinite(sq["speedup"][a]["speedup"]),
                                                 -np.nan_to_num(sq["speedup"][a]["speedup"]), a))  # fmt: skip
    for a in order:
        ri = sq["rank_interval"].get(a)
        r = "n/a" if ri is None else (f"{ri[0]}" if ri[0] == ri[1] else f"{ri[0]}-{ri[1]}")
        v = sq["speedup"][a]["speedup"]
        lines.append(f"| {r} | {a} | {sq['studies_used'][a]} | {v:.3f} |" if math.isfinite(v) else
                     f"| {r} | {a} | {sq['studies_used'][a]} | n/a |")  # fmt: skip
    lines += ["", f"Entrant-studies spent: {sq['entrant_studies']} of the fixed design's {sq['entrant_studies_fixed']} "
              f"({100 * sq['entrant_studies'] / sq['entrant_studies_fixed']:.0f} %)."]  # fmt: skip
    return "\n".join(lines) + "\n"


def paired_test(
    cube_a: np.ndarray,
    cube_b: np.ndarray,
    budgets: np.ndarray,
    ci: float = 0.9,
    n_boot: int = 2000,
    seed: int = 0,
    factor_b: float = 1.0,
) -> dict[str, float]:
    """Speed-up of ``b`` over ``a`` (geometric mean over workloads of ``T_a / T_b``) with its paired bootstrap (study
    ``s`` of one with study ``s`` of the other) bootstrap-t two-sided p-value and the exact swap test's
    (:func:`swap_test`); cubes are (workloads, studies, trials). ``p`` is the larger of the two, ``detected`` when
    p < 1 - ci. ``factor_b`` spikes ``b`` in: its times *and* its censoring point
    (the budget) are multiplied by it, so every cell's restricted mean is exactly ``factor_b`` times ``b``'s."""
    a, b = np.asarray(cube_a, dtype=float), np.asarray(cube_b, dtype=float)
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(
            f"cubes must be (workloads, studies, trials) of the same shape, got {a.shape} and {b.shape}"
        )
    if not (isinstance(factor_b, (int, float)) and 0 < factor_b and math.isfinite(factor_b)):
        raise ValueError(f"factor_b must be a positive number, got {factor_b!r}")
    cubes = np.stack([a, b * factor_b])
    bud = np.asarray(budgets, dtype=float)
    bud = np.stack([bud, bud * factor_b])
    S, N = a.shape[1], a.shape[2]

    def stat(idx: np.ndarray) -> np.ndarray:
        lt = _log_cell_times(cubes, bud, idx, N)
        return (lt[..., 0, :] - lt[..., 1, :]).mean(axis=-1, keepdims=True)

    boot = studentized_bootstrap(stat, S, n_boot, np.random.default_rng(seed))
    point = boot["theta"]
    p_t = float(_t_pvalue(boot)[0])
    p_swap = swap_test(cubes, bud, N, seed=seed)
    p = max(p_t, p_swap)  # as on the board: the bootstrap-t and the exact swap test must both reject
    return {
        "speedup": float(np.exp(point[0])),
        "p": p,
        "p_bootstrap_t": p_t,
        "p_swap": p_swap,
        "detected": p < 1 - ci,
    }


def self_checks(
    cube: np.ndarray,
    budgets: np.ndarray,
    splits: int = 100,
    ci: float = 0.9,
    n_boot: int = 2000,
    seed: int = 0,
    factors: Sequence[float] = SPIKE_FACTORS,
) -> dict[str, Any]:
    """A/A false-positive rate and spike-in power from disjoint halves of one entrant's studies (``cube``:
    workloads x studies x trials); see the module docstring. Returns ``aa`` (rate, count, splits, interval),
    ``power`` {factor: rate}, ``mde`` (the largest time ratio < 1 detected in >= 80 % of splits, or None), and
    ``studies_per_half``."""
    from scipy.stats import binomtest

    x = np.asarray(cube, dtype=float)
    if x.ndim != 3:
        raise ValueError(f"cube must be (workloads, studies, trials), got shape {x.shape}")
    S = x.shape[1]
    if S < 4:
        raise ValueError(f"self-checks need at least 4 studies (two halves of 2), got {S}")
    h = S // 2
    bud = np.asarray(budgets, dtype=float)
    rng = np.random.default_rng(seed)
    fs = sorted({*factors, 0.8, 0.67}, reverse=True)
    hits = {f: 0 for f in [1.0, *fs]}
    for r in range(splits):
        perm = rng.permutation(S)
        a, b = x[:, perm[:h]], x[:, perm[h : 2 * h]]
        for f in hits:
            res = paired_test(a, b, bud, ci, n_boot, seed=seed + r, factor_b=f)
            hits[f] += int(res["detected"] and (f == 1.0 or res["speedup"] > 1))
    k = hits.pop(1.0)
    bt = binomtest(k, splits, 1 - ci)
    lo, hi = bt.proportion_ci(confidence_level=0.95, method="exact")
    power = {f: hits[f] / splits for f in fs}
    passing = [f for f in fs if power[f] >= 0.8]
    mde = max(passing) if passing else None
    return {
        "aa": {"rate": k / splits, "count": k, "splits": splits, "interval": [float(lo), float(hi)],
               "nominal": 1 - ci, "ok": lo <= 1 - ci},
        "power": power, "mde": mde, "studies_per_half": h, "ci": ci, "n_boot": n_boot,
    }  # fmt: skip


def self_checks_markdown(checks: Mapping[str, Any]) -> str:
    """The self-checks as a few Markdown lines."""
    aa = checks["aa"]
    p = checks["power"]
    mde = checks["mde"]
    h = checks["studies_per_half"]
    lines = [
        f"- A/A (disjoint halves of the baseline's studies, {h} vs {h}, {aa['splits']} random splits): false-positive "
        f"rate {aa['rate']:.2f} ({aa['count']}/{aa['splits']}; 95 % Clopper-Pearson [{aa['interval'][0]:.2f}, "
        f"{aa['interval'][1]:.2f}]) against the nominal {aa['nominal']:.2f} (splits overlap, so the interval is "
        "approximate).",
        f"- Spike-in (the second half's times and censoring point x0.8 / x0.67, re-scored without training): power "
        f"{p.get(0.8, float('nan')):.2f} / {p.get(0.67, float('nan')):.2f}.",
        "- Minimum detectable effect at 80 % power: "
        + (
            f"a time ratio of x{mde:.2f}"
            if mde is not None
            else f"none of the ratios tried (down to x{min(p):.2f})"
        )
        + f" at {h} studies per arm, unpaired (the paired full board has more power than this).",
    ]
    return "\n".join(lines) + "\n"


# -- from a benchmark's results -------------------------------------------------------------------------------------
AUDIT_TOLERANCE = 0.05
"""Largest relative gap between measured and modeled times the audit accepts (pooled over the board's hits)."""
CLOCK_CUT_WARN = 0.25
"""Share of the baseline's trials on a workload stopped by the clock before their step hint above which the board
says its budgets are tight for this machine (budgets are set so that the baseline runs its schedule)."""


def clock_cuts(result: Any) -> dict[str, dict[str, float]]:
    """``cuts[algorithm][workload]``: the share of a cell's trials that the clock budget stopped before their step
    hint without reaching the target (finished trials only; failed, diverged and not-applicable ones are left out;
    ``nan`` when none is left). Zero on the fewest-steps track, which has no clock budget."""
    counts: dict[str, dict[str, list[int]]] = {}
    timed = result.unit != "steps"
    for s in result.specs:
        res = result.results.get(s["key"])
        if res is None or res.get("status") != "finished" or res.get("final", {}).get("not_applicable"):
            continue
        cell = counts.setdefault(s["algorithm"]["name"], {}).setdefault(s["workload"]["name"], [0, 0])
        cell[1] += 1
        if (
            timed
            and not res.get("reached")
            and int(res["final"].get("step", 0) or 0) < int(s["workload"]["step_hint"])
        ):
            cell[0] += 1
    return {a: {w: (c / n if n else math.nan) for w, (c, n) in row.items()} for a, row in counts.items()}


def clock_cut_markdown(cuts: Mapping[str, Mapping[str, float]], baseline: str) -> str:
    """One line: how many trials the clock stopped, the baseline's share per workload, and a warning when the
    baseline itself is cut on a workload in more than ``CLOCK_CUT_WARN`` of its trials."""
    shares = [v for row in cuts.values() for v in row.values() if math.isfinite(v)]
    if not shares:
        return "- Clock budget: no finished trial to count.\n"
    base = {w: v for w, v in cuts.get(baseline, {}).items() if math.isfinite(v)}
    tight = sorted(w for w, v in base.items() if v > CLOCK_CUT_WARN)
    out = (f"- Clock budget: {100 * sum(shares) / len(shares):.0f} % of trials (mean over cells) stopped by the clock "
           f"before their step hint without reaching the target; {baseline}'s share per workload: "
           + ", ".join(f"{w} {100 * v:.0f} %" for w, v in base.items()))  # fmt: skip
    if tight:
        out += (
            f". **Budgets tight for this machine on {', '.join(tight)}**: the baseline's own schedule does not fit "
            f"in more than {100 * CLOCK_CUT_WARN:.0f} % of its trials, so the clock, not only the algorithms, "
            "decides these cells (run `descentlab bench calibrate --hardware` with the board's --workers)"
        )
    return out + ".\n"


def board_data(result: Any) -> dict[str, Any]:
    """The analysis inputs of a ``BenchmarkResult``: ``measured`` and ``modeled`` trial times
    (``[a][w][study][trial]``, inf = miss), ``budgets`` (the limit per workload in the board's unit),
    ``not_applicable`` cells, ``step_cost`` per cell, and the ``audit`` of modeled against measured times.

    Modeled time-to-target = the step of the first evaluation meeting the target x the cell's step cost, pooled
    over its trials (sum of training seconds / sum of steps): the clock's noise no longer decides which trial is
    fastest. Cells that run the same computation (the same optimizer, fixed settings, schedule and evaluation hook
    on one workload: an entrant and its null-test twin) share one pooled cost, so a twin run in another session at
    another machine load is not timed differently. On the steps track both are the gradient evaluations to target
    (no clock involved)."""
    import json

    from descentlab.bench.trial import steps_to_target
    from descentlab.bench.workloads import Workload

    measured = result.trial_times()
    steps_track = result.unit == "steps"
    cells: dict[tuple[str, str], list[tuple[int, int, Any, dict[str, Any] | None]]] = {}
    budgets: dict[str, float] = {}
    for s in result.specs:
        a, w = s["algorithm"]["name"], s["workload"]["name"]
        budgets[w] = float(s["workload"]["step_hint"] if steps_track else s["workload"]["budget"])
        cells.setdefault((a, w), []).append(
            (int(s["study"]), int(s["trial"]), s, result.results.get(s["key"]))
        )

    def computation(spec: Mapping[str, Any]) -> str:
        a = spec["algorithm"]
        keep = {
            k: a.get(k) for k in ("optimizer", "fixed", "schedule", "schedule_kw", "prepare_for_eval", "tie")
        }
        return json.dumps([spec["workload"]["name"], keep], sort_keys=True, default=str)

    pooled: dict[str, list[float]] = {}
    for rows in cells.values():
        for _study, _trial, spec, res in rows:
            if res is None or res.get("status") == "failed" or res.get("final", {}).get("not_applicable"):
                continue
            acc = pooled.setdefault(computation(spec), [0.0, 0.0])
            acc[0] += float(res["final"].get("train_time", 0) or 0)
            acc[1] += float(res["final"].get("step", 0) or 0)
    na, cost, modeled = [], {}, {a: {} for a in measured}
    audit_cells = {}
    tot_meas = tot_mod = 0.0
    for (a, w), rows in cells.items():
        ok = [r for r in rows if r[3] is not None and r[3].get("status") != "failed"]
        if ok and all(r[3].get("final", {}).get("not_applicable") for r in ok):
            na.append((a, w))
        secs, steps = pooled.get(computation(rows[0][2]), [0.0, 0.0])
        c = secs / steps if steps > 0 else math.nan
        cost[f"{a}/{w}"] = c
        studies: dict[int, list[float]] = {}
        m_sum = d_sum = 0.0
        for study, _trial, spec, res in sorted(rows, key=lambda r: (r[0], r[1])):
            if res is None or res.get("status") == "failed" or res.get("final", {}).get("not_applicable"):
                t = math.inf
            elif steps_track or not math.isfinite(
                c
            ):  # no step counts recorded (an old cache): the measured time
                t = float(res["time_to_target"])
            else:
                k = steps_to_target(Workload(**spec["workload"]), res.get("history", {}))
                t = k * c if math.isfinite(k) and math.isfinite(c) else math.inf
                tm = float(res["time_to_target"])
                if math.isfinite(t) and math.isfinite(tm):
                    m_sum, d_sum = m_sum + tm, d_sum + t
            studies.setdefault(study, []).append(t)
        modeled[a][w] = [studies[k] for k in sorted(studies)]
        if d_sum > 0:
            audit_cells[f"{a}/{w}"] = m_sum / d_sum
            tot_meas, tot_mod = tot_meas + m_sum, tot_mod + d_sum
    ratio = tot_meas / tot_mod if tot_mod > 0 else math.nan
    off = {k: v for k, v in audit_cells.items() if abs(v - 1) > AUDIT_TOLERANCE}
    timed = any(math.isfinite(c) for c in cost.values())
    audit = {"ratio": ratio, "cells": audit_cells, "outside": off, "tolerance": AUDIT_TOLERANCE,
             "ok": (not math.isfinite(ratio)) or abs(ratio - 1) <= AUDIT_TOLERANCE,
             "applies": not steps_track and timed, "steps_track": steps_track}  # fmt: skip
    return {"measured": measured, "modeled": modeled, "budgets": budgets, "not_applicable": na, "step_cost": cost,
            "audit": audit, "unit": result.unit}  # fmt: skip


def audit_markdown(audit: Mapping[str, Any]) -> str:
    """One line on the measured-vs-modeled audit."""
    if audit.get("steps_track"):
        return "- Time model: not used on the fewest-steps track (gradient evaluations are counted, not timed).\n"
    if not audit["applies"]:
        return "- Time model: no step counts recorded with these results; the measured times are used.\n"
    if not math.isfinite(audit["ratio"]):
        return "- Time model audit: no trial reached its target, nothing to compare.\n"
    tol = round(100 * audit["tolerance"])
    out = (f"- Time model audit: measured / modeled time-to-target over every hit = {audit['ratio']:.3f} "
           f"({'within' if audit['ok'] else 'OUTSIDE'} {tol} %); {len(audit['cells']) - len(audit['outside'])} of "
           f"{len(audit['cells'])} cells within {tol} %")  # fmt: skip
    if audit["outside"]:
        worst = sorted(audit["outside"].items(), key=lambda kv: -abs(kv[1] - 1))[:4]
        out += " (furthest: " + ", ".join(f"{k} {v:.2f}" for k, v in worst) + ")"
    return out + ".\n"


def board_report(
    result: Any,
    baseline: str | None = None,
    ci: float = 0.9,
    n_boot: int = N_BOOT,
    splits: int = 100,
    seed: int = 0,
) -> dict[str, Any]:
    """The paired analysis of a ``BenchmarkResult`` on modeled times, its self-checks on the baseline's trials
    and the time-model audit: ``{"board": Board, "checks": dict | None, "data": board_data(...), "markdown": str}``.
    ``baseline`` defaults to ``nadamw`` when on the board, else the first entrant."""
    data = board_data(result)
    algs = list(data["modeled"])
    base = baseline or ("nadamw" if "nadamw" in algs else algs[0])
    bd = analyze(
        data["modeled"], data["budgets"], base, data["not_applicable"], ci=ci, n_boot=n_boot, seed=seed
    )
    wls = bd.workloads
    cube = np.array([data["modeled"][base][w] for w in wls], dtype=float)
    checks = None
    if cube.shape[1] // 2 >= 3:
        checks = self_checks(
            cube, np.array([data["budgets"][w] for w in wls]), splits=splits, ci=ci, seed=seed
        )
    lines = ["### Paired analysis", "", bd.markdown(), "### Self-checks", ""]
    if checks is None:
        lines.append(f"- Too few studies for the A/A and spike-in checks ({cube.shape[1]}; they need 6, two halves "
                     "of 3): no minimum detectable effect can be measured, so no difference on this board is "
                     "established.")  # fmt: skip
    else:
        lines.append(self_checks_markdown(checks).rstrip())
    lines.append(audit_markdown(data["audit"]).rstrip())
    cuts = clock_cuts(result)
    lines.append(clock_cut_markdown(cuts, base).rstrip())
    return {"board": bd, "checks": checks, "data": data, "cuts": cuts, "markdown": "\n".join(lines) + "\n"}


def paired_comparison(
    result: Any, a: str, b: str, workload: str, ci: float = 0.9, n_boot: int = 10_000
) -> dict:
    """The leaderboard's test for one pair on one workload: ``a``'s speed-up over ``b`` (``T_b / T_a`` of the
    restricted-mean best-of-k modeled times, bootstrap-t over paired studies and the exact swap test, ``paired_test``)
    with its p-value and a verdict (``faster`` / ``slower`` / ``not separated`` at ``ci``). ``verdict`` is ``too few studies`` below
    ``MIN_STUDIES`` and ``n/a`` where either entrant is not applicable on the workload (no test then)."""
    data = board_data(result)
    studies = len({int(s["study"]) for s in result.specs})
    out: dict[str, Any] = {"a": a, "b": b, "workload": workload, "studies": studies, "ci": ci}
    na = data["not_applicable"]
    if any((n, workload) in na for n in (a, b)):
        return {**out, "verdict": "n/a", "speedup": None, "p": None}
    if studies < MIN_STUDIES:
        return {**out, "verdict": "too few studies", "speedup": None, "p": None}
    cube = {n: np.array([data["modeled"][n][workload]], dtype=float) for n in (a, b)}
    res = paired_test(cube[b], cube[a], np.array([data["budgets"][workload]]), ci=ci, n_boot=n_boot)
    verdict = "not separated" if not res["detected"] else "faster" if res["speedup"] > 1 else "slower"
    return {**out, "verdict": verdict, "speedup": res["speedup"], "p": res["p"]}


def paired_comparison_sentence(cmp: Mapping[str, Any]) -> str:
    """One line for ``paired_comparison``'s result."""
    head = (f"Paired test (the leaderboard's: restricted-mean best-of-k modeled times, bootstrap-t over "
            f"{cmp['studies']} paired studies): ")  # fmt: skip
    if cmp["verdict"] == "n/a":
        return head + f"not run: an entrant is not applicable on {cmp['workload']}."
    if cmp["verdict"] == "too few studies":
        return (
            head
            + f"not run: {cmp['studies']} studies (it needs {MIN_STUDIES}; add --studies {MIN_STUDIES} --run)."
        )
    says = f"{cmp['a']} {cmp['verdict']}" if cmp["verdict"] != "not separated" else "not separated"
    return head + (f"{cmp['a']} over {cmp['b']} speed-up x{cmp['speedup']:.3f}, p = {cmp['p']:.3g} -> {says} at "
                   f"{100 * cmp['ci']:g} %.")  # fmt: skip
