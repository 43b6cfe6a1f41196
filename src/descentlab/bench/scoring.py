"""AlgoPerf scoring: time-to-target ratios, performance profiles and the benchmark score.

Dahl et al. 2023, "Benchmarking Neural Network Training Algorithms", section 4.5 (and Dolan & More 2002 for
performance profiles). With ``t[a][w]`` the time algorithm ``a`` needs to reach workload ``w``'s target
(``math.inf`` when it never does), the ratio is ``r[a][w] = t[a][w] / min_b t[b][w]``; a ratio above ``tau_max``
(4 in AlgoPerf) counts as a failure (``inf``); a workload that every algorithm fails is a failure for all.
The profile is ``rho_a(tau) = |{w : r[a][w] <= tau}| / |W|`` on ``[1, tau_max]`` and the score is its normalized
area, ``1/(tau_max - 1) * integral_1^tau_max rho_a(tau) dtau = mean_w max(0, (tau_max - r[a][w]) / (tau_max - 1))``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

Times = Mapping[str, Mapping[str, float]]


def _validate(times: Times, tau_max: float) -> tuple[list[str], list[str]]:
    """Algorithms and workloads of ``times`` (ValueError for ragged tables, NaN or negative times)."""
    if isinstance(tau_max, bool) or not isinstance(tau_max, (int, float)) or not tau_max > 1:
        raise ValueError(f"tau_max must be a number > 1, got {tau_max!r}")
    if not isinstance(times, Mapping) or not times:
        raise ValueError("times must be a non-empty mapping algorithm -> {workload: seconds}")
    algorithms = list(times)
    workloads = list(times[algorithms[0]])
    if not workloads:
        raise ValueError(f"algorithm {algorithms[0]!r} has no workloads in times")
    for a in algorithms:
        row = times[a]
        if not isinstance(row, Mapping) or set(row) != set(workloads):
            got = sorted(row) if isinstance(row, Mapping) else type(row).__name__
            raise ValueError(
                f"algorithm {a!r} has workloads {got}; every algorithm needs {sorted(workloads)}"
            )
        for w, t in row.items():
            if isinstance(t, bool) or not isinstance(t, (int, float)) or math.isnan(t) or t < 0:
                raise ValueError(f"times[{a!r}][{w!r}] must be seconds >= 0 or math.inf, got {t!r}")
    return algorithms, workloads


def ratios(times: Times, tau_max: float = 4.0) -> dict[str, dict[str, float]]:
    """Performance ratios ``t[a][w] / min_b t[b][w]``; ``inf`` for a failure, a ratio above ``tau_max`` or a
    workload that every algorithm fails (AlgoPerf's rules, Dahl et al. 2023, sec. 4.5)."""
    algorithms, workloads = _validate(times, tau_max)
    out: dict[str, dict[str, float]] = {a: {} for a in algorithms}
    for w in workloads:
        best = min(float(times[a][w]) for a in algorithms)
        for a in algorithms:
            t = float(times[a][w])
            if math.isinf(best):
                r = math.inf  # nobody reached the target: a failure for all
            elif best == 0.0:
                r = 1.0 if t == 0.0 else math.inf
            else:
                r = t / best
            out[a][w] = r if r <= tau_max else math.inf
    return out


def performance_profiles(
    times: Times, tau_max: float = 4.0, num_points: int = 301
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Performance profile of every algorithm: ``{a: (taus, rho)}`` with ``taus`` evenly spaced on ``[1, tau_max]``
    and ``rho(tau)`` the fraction of workloads with ratio ``<= tau`` (Dolan & More 2002; AlgoPerf sec. 4.5)."""
    if not isinstance(num_points, int) or num_points < 2:
        raise ValueError(f"num_points must be an integer >= 2, got {num_points!r}")
    r = ratios(times, tau_max)
    taus = np.linspace(1.0, float(tau_max), num_points)
    out = {}
    for a, row in r.items():
        vals = np.array(list(row.values()), dtype=float)
        rho = (vals[None, :] <= taus[:, None]).mean(axis=1)
        out[a] = (taus, rho)
    return out


def score(times: Times, tau_max: float = 4.0) -> dict[str, float]:
    """AlgoPerf benchmark score per algorithm: the normalized area under its performance profile on
    ``[1, tau_max]``, computed exactly as ``mean_w max(0, (tau_max - r_w) / (tau_max - 1))`` (a number in [0, 1])."""
    r = ratios(times, tau_max)
    span = float(tau_max) - 1.0
    return {a: float(np.mean([max(0.0, (tau_max - x) / span) for x in row.values()])) for a, row in r.items()}
