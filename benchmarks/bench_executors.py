"""Speed-up of the `processes` and `ray` executors (2 workers) over `local` on 8 small fixed-work trials.

Each trial trains the MNIST-1D CNN for a fixed number of steps (the target is switched off, the budget is large),
so every executor does the same work; wall times include process start-up and the workers' imports. Ray is timed
twice: "ray" starts a local Ray inside the timed call (its ~4-5 s `ray.init` and ~1.5 s shutdown included), and
"ray (running cluster)" joins a Ray started beforehand with `ray start --head --num-cpus 2` through
`--ray-address auto`, which is how a cluster is used (its start-up is outside the timed call; its workers are
fresh, so their imports are inside). Run:
    .venv/bin/python benchmarks/bench_executors.py [--steps 3000]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import subprocess
import sys
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
    for label, executor, address in (("local", "local", None), ("processes", "processes", None),
                                     ("ray", "ray", None), ("ray (running cluster)", "ray", "auto")):  # fmt: skip
        cluster = address is not None and _start_cluster()
        if address is not None and not cluster:
            print(f"{label}: skipped (no `ray` command)")
            continue
        try:
            import torch

            torch.set_num_threads(1)  # local: one trial at a time on one thread, like one worker
            with tempfile.TemporaryDirectory() as d:
                t0 = time.perf_counter()
                res = run_benchmark(["adamw"], [wl], trials=args.trials, studies=1, executor=executor, workers=2,
                                    store=Path(d) / "s.db", progress=False, scale=1.0,
                                    ray_address=address)  # fmt: skip
                wall = time.perf_counter() - t0
            assert res.executed == args.trials, res.executed
            rows.append((label, wall))
        except ValueError as exc:  # ray missing
            print(f"{label}: skipped ({exc})")
        finally:
            if cluster:
                _stop_cluster()
    base = rows[0][1]
    print(f"{args.trials} trials x {args.steps} steps of mnist1d_cnn (AdamW), 2 workers")
    for name, wall in rows:
        print(f"{name:22s} wall {wall:7.2f} s   speed-up over local {base / wall:5.2f}x")


def _ray_cli() -> str | None:
    exe = Path(sys.executable).with_name("ray")
    return str(exe) if exe.exists() else shutil.which("ray")


def _start_cluster() -> bool:
    """`ray start --head --num-cpus 2` (outside the timed call); False when Ray is not installed."""
    exe = _ray_cli()
    if exe is None:
        return False
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run([exe, "start", "--head", "--num-cpus", "2", "--include-dashboard", "false"], env=env,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    return True


def _stop_cluster() -> None:
    import ray

    ray.shutdown()  # the driver's connection first, then the cluster
    subprocess.run([_ray_cli() or "ray", "stop"], check=False, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)  # fmt: skip


if __name__ == "__main__":
    main()
