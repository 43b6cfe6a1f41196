"""Checks of the benchmark itself. The null test: one algorithm entered twice, under two names with different study
and trial seeds, must not be separated by the paired test (``bench.board.paired_test``: the geometric-mean speed-up
of the restricted-mean best-of-k times, bootstrap-t over paired studies, and the exact within-study swap test), and the same data must detect a spike-in
(the twin's times and its censoring point x0.67, so its estimand is exactly x0.67, re-scored without training): a test
that can pass and can fail. Until 2026-12-07 the spike scaled only the twin's finite times, leaving its misses at
the budget, which moved the estimand less the more trials missed (x0.86 on the 12-study light board)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from descentlab.bench.algorithms import TWIN_SEED_OFFSET, Algorithm, get_algorithm
from descentlab.bench.board import MIN_STUDIES
from descentlab.bench.runner import BenchmarkResult, run_benchmark
from descentlab.bench.workloads import Workload
from descentlab.store import Store

SPIKE = 0.67
"""The spike-in factor the null test must detect on its own data (the twin's times and censoring point x0.67)."""


def null_test(
    algorithm: str | Algorithm,
    workloads: Sequence[str | Workload],
    tuning: str = "external",
    trials: int = 5,
    studies: int = 3,
    seed: int = 0,
    others: Sequence[str | Algorithm] = (),
    seed_offset: int = TWIN_SEED_OFFSET,
    ci: float = 0.9,
    n_boot: int = 2000,
    executor: str = "local",
    workers: int = 2,
    store: Store | str | os.PathLike[str] | None = None,
    scale: float | dict[str, float] | None = None,
    progress: bool = True,
    **run: Any,
) -> dict[str, Any]:
    """Run ``algorithm`` and its twin (``Algorithm.twin``: same everything, seeds shifted by ``seed_offset``), with
    ``others`` in the field if given, and judge them. Returns ``tied`` (their score intervals overlap: the test
    passes), the two scores with intervals, the paired difference ``a - twin`` with its interval, ``|difference|``
    against the half-width of the difference's interval, the full ``ScoreIntervals`` (``intervals``) and the
    ``BenchmarkResult`` (``result``). ``tied`` is now the paired test's verdict (``paired``: speed-up of the twin and
    its p-value), ``spike`` the same test against the twin's times x0.67, and ``passed`` both (tied and spike
    detected). ``run`` goes to ``run_benchmark`` (``ray_address``, ``trial_fn``)."""
    alg = get_algorithm(algorithm) if isinstance(algorithm, str) else algorithm
    twin = alg.twin(seed_offset=seed_offset)
    field = [get_algorithm(o) if isinstance(o, str) else o for o in others]
    names = [a.name for a in field]
    if alg.name in names or twin.name in names:
        raise ValueError(f"others must not contain {alg.name!r} or {twin.name!r}, got {names}")
    result: BenchmarkResult = run_benchmark([alg, twin, *field], workloads, tuning, trials, studies, seed,
                                            executor, workers, store=store, scale=scale, progress=progress,
                                            **run)  # fmt: skip
    import numpy as np

    from descentlab.bench.board import board_data, paired_test

    iv = result.intervals(ci=ci, n_boot=n_boot)
    diff, lo, hi = iv.difference(alg.name, twin.name)
    data = board_data(result)
    wls = result.workloads
    cube = {n: np.array([data["modeled"][n][w] for w in wls], dtype=float) for n in (alg.name, twin.name)}
    budgets = np.array([data["budgets"][w] for w in wls])
    pair = paired_test(cube[alg.name], cube[twin.name], budgets, ci=ci, n_boot=max(n_boot, 10_000))
    spike = paired_test(cube[alg.name], cube[twin.name], budgets, ci=ci, n_boot=max(n_boot, 10_000),
                        factor_b=SPIKE)  # fmt: skip
    tied = not pair["detected"]
    return {
        "paired": pair,
        "spike": {**spike, "factor": SPIKE},
        "passed": tied and bool(spike["detected"] and spike["speedup"] > 1),
        "algorithm": alg.name,
        "twin": twin.name,
        "seed_offset": seed_offset,
        "tied": tied,
        "scores": {n: [iv.scores[n], iv.score_lo[n], iv.score_hi[n]] for n in (alg.name, twin.name)},
        "difference": diff,
        "difference_interval": [lo, hi],
        "abs_difference": abs(diff),
        "half_width": (hi - lo) / 2,
        "zero_in_difference_interval": lo <= 0 <= hi,
        "ci": ci,
        "resampled": iv.resampled,
        "intervals": iv,
        "result": result,
    }


def null_test_markdown(res: dict[str, Any]) -> str:
    """The null test's outcome as a short Markdown table."""
    a, b = res["algorithm"], res["twin"]
    pct = round(100 * res["ci"])
    lines = [f"| entrant | score | {pct} % interval |", "|---|---:|---|"]
    for n in (a, b):
        s, lo, hi = res["scores"][n]
        lines.append(f"| {n} | {s:.3f} | [{lo:.3f}, {hi:.3f}] |")
    lo, hi = res["difference_interval"]
    lines += [
        "",
        f"Difference {a} − {b}: {res['difference']:+.3f}, {pct} % interval [{lo:+.3f}, {hi:+.3f}] (paired bootstrap "
        f"over {res['resampled']}); |difference| {res['abs_difference']:.3f} against a half-width of "
        f"{res['half_width']:.3f} (descriptive; the scores' bootstrap is not the test).",
    ]
    if "paired" in res:
        p, sp = res["paired"], res["spike"]
        lines += [
            "",
            f"Paired test (restricted-mean best-of-k times, bootstrap-t over paired studies and the exact swap test, the larger p): {b} / {a} speed-up "
            f"x{p['speedup']:.3f}, p = {p['p']:.3g} -> {'not separated' if not p['detected'] else 'SEPARATED'}. "
            f"Spike-in (the twin's times and censoring point x{sp['factor']}): speed-up x{sp['speedup']:.3f}, p = {sp['p']:.3g} -> "
            f"{'detected' if sp['detected'] else 'NOT detected'}. Verdict: "
            f"**{'passed' if res['passed'] else 'FAILED'}** (passes only when the twins are not separated and the "
            "spike-in is detected).",
        ]
        studies = len({s["study"] for s in res["result"].specs}) if "result" in res else None
        if studies is not None and studies < MIN_STUDIES:
            lines += ["", f"Only {studies} studies (< {MIN_STUDIES}): the test does not hold its level here; a pass "
                      "or a failure says little."]  # fmt: skip
    return "\n".join(lines) + "\n"
