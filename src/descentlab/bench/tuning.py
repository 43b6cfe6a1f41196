"""Tuning protocols: quasi-random (scrambled Halton) search spaces and the per-workload time of a study set.

External tuning (AlgoPerf, Dahl et al. 2023, sec. 4.4.1): ``S`` independent studies of ``N`` trials each, the
trials drawn from the algorithm's search space by a seeded scrambled Halton sequence (Bousquet et al. 2017,
"Critical hyper-parameters: no random, no cry"); the workload's time is the median over studies of the minimum
over trials of time-to-target. Self-tuning: one configuration per algorithm, run with 1.5x the budget.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

SCALINGS = ("linear", "log")


def validate_space(space: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> None:
    """ValueError unless ``space`` is ``{name: {"min", "max", "scaling"}}`` / ``{name: {"values": [...]}}`` /
    ``{name: constant}`` or a non-empty list of fixed points (dicts)."""
    if isinstance(space, Sequence) and not isinstance(space, (str, bytes)):
        if not space or not all(isinstance(p, Mapping) for p in space):
            raise ValueError(f"a list search space must be a non-empty list of dicts, got {space!r}")
        return
    if not isinstance(space, Mapping):
        raise TypeError(f"search space must be a dict or a list of dicts, got {type(space).__name__}")
    for name, spec in space.items():
        if not isinstance(spec, Mapping):
            continue  # a constant
        if "values" in spec:
            if not isinstance(spec["values"], Sequence) or not spec["values"]:
                raise ValueError(
                    f"search space {name!r}: 'values' must be a non-empty list, got {spec['values']!r}"
                )
            continue
        if set(spec) - {"min", "max", "scaling"} or "min" not in spec or "max" not in spec:
            raise ValueError(
                f"search space {name!r}: expected keys min, max and optional scaling "
                f"({'/'.join(SCALINGS)}), got {sorted(spec)}"
            )
        lo, hi, scaling = spec["min"], spec["max"], spec.get("scaling", "linear")
        if scaling not in SCALINGS:
            raise ValueError(f"search space {name!r}: scaling must be one of {SCALINGS}, got {scaling!r}")
        if not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (lo, hi)
        ):
            raise ValueError(f"search space {name!r}: min and max must be finite numbers, got {lo!r}, {hi!r}")
        if lo > hi:
            raise ValueError(f"search space {name!r}: min {lo!r} > max {hi!r}")
        if scaling == "log" and lo <= 0:
            raise ValueError(f"search space {name!r}: log scaling needs min > 0, got {lo!r}")


def halton_points(
    space: Mapping[str, Any] | Sequence[Mapping[str, Any]], n: int, seed: int = 0
) -> list[dict[str, Any]]:
    """``n`` points of ``space`` from a scrambled Halton sequence seeded with ``seed`` (deterministic).

    Ranges map ``u in [0, 1)`` to ``min + u (max - min)`` (linear) or ``exp(log min + u (log max - log min))``
    (log); ``{"values": [...]}`` picks ``values[floor(u * len)]``; constants pass through. A list of fixed points
    returns its first ``n`` points (all of them if fewer).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n (number of trials) must be a positive integer, got {n!r}")
    validate_space(space)
    if not isinstance(space, Mapping):
        return [dict(p) for p in list(space)[:n]]
    varying = [k for k, v in space.items() if isinstance(v, Mapping)]
    # imported here: scipy.stats costs ~1.5 s, paid by every benchmark worker at import
    from scipy.stats import qmc

    u = qmc.Halton(d=len(varying), scramble=True, seed=int(seed)).random(n) if varying else np.zeros((n, 0))
    points = []
    for row in u:
        point: dict[str, Any] = {}
        for name, spec in space.items():
            if not isinstance(spec, Mapping):
                point[name] = spec
                continue
            x = float(row[varying.index(name)])
            if "values" in spec:
                vals = list(spec["values"])
                point[name] = vals[min(int(x * len(vals)), len(vals) - 1)]
            elif spec.get("scaling", "linear") == "log":
                lo, hi = math.log(spec["min"]), math.log(spec["max"])
                point[name] = float(min(max(math.exp(lo + x * (hi - lo)), spec["min"]), spec["max"]))
            else:
                point[name] = float(spec["min"] + x * (spec["max"] - spec["min"]))
        points.append(point)
    return points


def study_time(trial_times: Sequence[Sequence[float]]) -> float:
    """Per-workload time of external tuning: median over studies of the minimum over trials (AlgoPerf sec. 4.4.1);
    ``trial_times[s][i]`` is trial ``i`` of study ``s`` in seconds (``math.inf`` for a miss)."""
    if not trial_times or any(len(s) == 0 for s in trial_times):
        raise ValueError("trial_times needs at least one study with at least one trial")
    best = sorted(min(float(t) for t in s) for s in trial_times)
    k = len(best)
    if k % 2:
        return best[k // 2]
    lo, hi = best[k // 2 - 1], best[k // 2]
    return math.inf if math.isinf(hi) else (lo + hi) / 2
