"""Checks of the benchmark itself. The null test: one algorithm entered twice, under two names with different study
and trial seeds, must come out tied; the size of their score difference against its interval says how large the
benchmark's noise is."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from descentlab.bench.algorithms import TWIN_SEED_OFFSET, Algorithm, get_algorithm
from descentlab.bench.runner import BenchmarkResult, run_benchmark
from descentlab.bench.workloads import Workload
from descentlab.store import Store


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
    scale: float | None = None,
    progress: bool = True,
    **run: Any,
) -> dict[str, Any]:
    """Run ``algorithm`` and its twin (``Algorithm.twin``: same everything, seeds shifted by ``seed_offset``), with
    ``others`` in the field if given, and judge them. Returns ``tied`` (their score intervals overlap: the test
    passes), the two scores with intervals, the paired difference ``a - twin`` with its interval, ``|difference|``
    against the half-width of the difference's interval, the full ``ScoreIntervals`` (``intervals``) and the
    ``BenchmarkResult`` (``result``). ``run`` goes to ``run_benchmark`` (``ray_address``, ``trial_fn``)."""
    alg = get_algorithm(algorithm) if isinstance(algorithm, str) else algorithm
    twin = alg.twin(seed_offset=seed_offset)
    field = [get_algorithm(o) if isinstance(o, str) else o for o in others]
    names = [a.name for a in field]
    if alg.name in names or twin.name in names:
        raise ValueError(f"others must not contain {alg.name!r} or {twin.name!r}, got {names}")
    result: BenchmarkResult = run_benchmark([alg, twin, *field], workloads, tuning, trials, studies, seed,
                                            executor, workers, store=store, scale=scale, progress=progress,
                                            **run)  # fmt: skip
    iv = result.intervals(ci=ci, n_boot=n_boot)
    diff, lo, hi = iv.difference(alg.name, twin.name)
    tied = alg.name in iv.ranks[twin.name]["tied_with"]
    return {
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
        f"{res['half_width']:.3f}. Verdict: **{'tied (passed)' if res['tied'] else 'NOT tied (failed)'}**.",
    ]
    return "\n".join(lines) + "\n"
