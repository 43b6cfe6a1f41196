"""The leaderboard's paired analysis on a simulated full-size board: with the exact swap test vs the bootstrap-t alone.

Run: .venv/bin/python benchmarks/board_analysis.py [--entrants 13] [--workloads 6] [--studies 12] [--repeats 3]

Times are log-normal (sigma 0.5) with 30 % misses, censored at a budget of 5; every entrant a little slower than the
last. ``bench.board.analyze`` (10^4 bootstrap replicates, all pairs) runs with its swap test and with the swap test
switched off (p = 0, so the bootstrap-t decides alone), interleaved, ``--repeats`` times each, one thread; prints the
median wall times, their ratio, and how many pairs each separates.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

import descentlab.bench.board as board


def _board(entrants: int, workloads: int, studies: int, trials: int) -> dict:
    rng = np.random.default_rng(0)
    out = {}
    for i in range(entrants):
        cells = {}
        for j in range(workloads):
            t = np.exp(rng.normal(0.0, 0.5, size=(studies, trials))) * (1 + 0.05 * i)
            t[rng.random((studies, trials)) < 0.3] = np.inf
            cells[f"w{j}"] = t
        out[f"a{i}"] = cells
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entrants", type=int, default=13)
    ap.add_argument("--workloads", type=int, default=6)
    ap.add_argument("--studies", type=int, default=12)
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    tt = _board(args.entrants, args.workloads, args.studies, args.trials)
    budgets = {f"w{j}": 5.0 for j in range(args.workloads)}
    real = board.swap_test
    times: dict[str, list[float]] = {"with swap test": [], "bootstrap-t alone": []}
    separated: dict[str, int] = {}
    for _ in range(args.repeats):
        for label in times:
            board.swap_test = real if label == "with swap test" else (lambda *a, **k: 0.0)
            try:
                t0 = time.perf_counter()
                bd = board.analyze(tt, budgets, "a0")
                times[label].append(time.perf_counter() - t0)
            finally:
                board.swap_test = real
            separated[label] = sum(p["separated"] for p in bd.pairs)
    pairs = args.entrants * (args.entrants - 1) // 2
    print(f"{args.entrants} entrants x {args.workloads} workloads x {args.studies} studies x {args.trials} trials, "
          f"{pairs} pairs; median of {args.repeats} interleaved runs, one thread\n")  # fmt: skip
    print("| analysis | wall s | pairs separated |")
    print("|---|---:|---:|")
    for label, ts in times.items():
        print(f"| {label} | {statistics.median(ts):.2f} | {separated[label]} |")
    ratio = statistics.median(times["with swap test"]) / statistics.median(times["bootstrap-t alone"])
    print(f"\nratio (with the swap test / the bootstrap-t alone): {ratio:.2f}x")


if __name__ == "__main__":
    main()
