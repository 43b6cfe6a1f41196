"""One training, three evaluations: nadamw, nadamw_last5 and nadamw_snapema on one point and seed as one shared
training (``bench.trial.shared_trainings``) against the three trials run one after another.

Run: .venv/bin/python benchmarks/shared_training.py [--repeats 5]
Prints, per workload, the wall time of the three trials of two Halton points (shared / alone, interleaved repeats,
medians; targets on, so trials stop where a benchmark's would), whether every trial reached its target at the same
step both ways, and the raw weights' training clock per step over the whole step hint with the target off (what the
leaderboard's time model multiplies; the shared run leaves the side averages' snapshots out of it), shared against
nadamw alone, interleaved.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from descentlab.bench.runner import plan
from descentlab.bench.trial import run_trial, shared_trainings, steps_to_target
from descentlab.bench.workloads import get_workload

TRIO = ["nadamw", "nadamw_last5", "nadamw_snapema"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--workloads", default="digits,mnist1d_mlp,logreg")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print("| workload | wall, 3 trials shared (s) | wall, 3 trials alone (s) | ratio | raw clock per step shared / "
          "alone (ms) | same steps to target |")  # fmt: skip
    print("|---|---:|---:|---:|---|---|")
    for name in args.workloads.split(","):
        wl = get_workload(name)
        items = [it for it in shared_trainings(plan(TRIO, [name], trials=2, studies=1)) if "group" in it]
        run_trial(items[0]["group"][0])  # warm-up (imports, data)
        wall = {"shared": [], "alone": []}
        same = True
        for _ in range(args.repeats):
            for it in items:
                t0 = time.perf_counter()
                shared = run_trial(it)
                wall["shared"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                alone = [run_trial(sp) for sp in it["group"]]
                wall["alone"].append(time.perf_counter() - t0)
                same &= all(
                    steps_to_target(wl, a["history"]) == steps_to_target(wl, b["history"])
                    for a, b in zip(shared, alone, strict=True)
                )
        # the raw weights' clock per step over the whole step hint (target off), shared and alone interleaved
        group = [dict(sp, workload={**sp["workload"], "target": 1e9 if wl.higher_is_better else -1e9,
                                    "budget": 1e6}) for sp in items[0]["group"]]  # fmt: skip
        per_step = {"shared": [], "alone": []}
        for _ in range(args.repeats):
            res = {"shared": run_trial({"group": group})[0], "alone": run_trial(group[0])}
            for key, r in res.items():
                per_step[key].append(1000 * r["final"]["train_time"] / max(1, r["final"]["step"]))
        ws, wa = statistics.median(wall["shared"]), statistics.median(wall["alone"])
        ps, pa = statistics.median(per_step["shared"]), statistics.median(per_step["alone"])
        print(f"| {name} | {ws:.3f} | {wa:.3f} | {wa / ws:.2f}x | {ps:.3f} / {pa:.3f} ({ps / pa:.3f}) | "
              f"{'yes' if same else 'NO'} |")  # fmt: skip


if __name__ == "__main__":
    main()
