"""Speed-up of the `processes` and `ray` executors (2 workers) over `local` on 8 small fixed-work trials.

Each trial trains the MNIST-1D CNN for a fixed number of steps (the target is switched off, the budget is large),
so every executor does the same work; wall times include process / Ray start-up. Run:
    .venv/bin/python benchmarks/bench_executors.py [--steps 3000]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from descentlab.bench import get_workload, run_benchmark


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3000, help="training steps per trial")
    ap.add_argument("--trials", type=int, default=8)
    args = ap.parse_args()
    wl = dataclasses.replace(get_workload("mnist1d_cnn"), name="mnist1d_cnn_fixed", target=2.0, budget=1e4,
                             step_hint=args.steps, eval_every=args.steps)  # fmt: skip
    rows = []
    for executor in ("local", "processes", "ray"):
        try:
            import torch

            torch.set_num_threads(1)  # local: one trial at a time on one thread, like one worker
            with tempfile.TemporaryDirectory() as d:
                t0 = time.perf_counter()
                res = run_benchmark(["adamw"], [wl], trials=args.trials, studies=1, executor=executor, workers=2,
                                    store=Path(d) / "s.db", progress=False, scale=1.0)  # fmt: skip
                wall = time.perf_counter() - t0
            assert res.executed == args.trials, res.executed
            rows.append((executor, wall))
        except ValueError as exc:  # ray missing
            print(f"{executor}: skipped ({exc})")
    base = rows[0][1]
    print(f"{args.trials} trials x {args.steps} steps of mnist1d_cnn (AdamW), 2 workers")
    for name, wall in rows:
        print(f"{name:10s} wall {wall:7.2f} s   speed-up over local {base / wall:5.2f}x")


if __name__ == "__main__":
    main()
