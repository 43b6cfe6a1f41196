"""What one benchmark trial costs per workload, in reference seconds: a training step, an evaluation, the set-up.

Each number is measured on one torch thread next to the hardware probe (``bench.workloads.reference_probe``) and
divided by the probe's time over ``REFERENCE_SECONDS``, so it reads as seconds on the reference machine even when
this machine is loaded (load slows probe and workload alike). From them, the worst-case wall time of a protocol
(every trial runs its whole budget, no early stop at the target) is

    sum over algorithms, workloads, trials of  setup_w + budget_w * (1 + eval_w / (eval_every_w * step_w))

divided by the number of workers. ``--protocol`` prints that bound for the shipped algorithms and workloads.

    .venv/bin/python benchmarks/bench_workload_costs.py [--steps 200] [--trials 5 --studies 3 --workers 2]
"""

from __future__ import annotations

import argparse
import json
import math
import time


def measure(name: str, steps: int) -> dict[str, float]:
    """Reference-second costs of workload ``name`` (NAdamW default point): step, evaluation, set-up."""
    import torch

    from descentlab.bench import get_algorithm, get_workload
    from descentlab.train import train

    wl = get_workload(name)
    alg = get_algorithm("nadamw")
    t0 = time.perf_counter()
    task = wl.make_task()
    model = task.make_model(0)
    setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    reps = 3
    for _ in range(reps):
        task.evaluate(model)
    evaluation = (time.perf_counter() - t0) / reps
    kw = alg.train_kwargs(alg.default)
    kw["hparams"]["betas"] = tuple(kw["hparams"]["betas"])
    run = train(task, steps=steps, eval_every=steps, batch_size=wl.batch_size, store=False, progress=False,
                device="cpu", keep_model=False, **kw)  # fmt: skip
    step = float(run.final["train_time"]) / steps
    del torch
    return {"step": step, "eval": evaluation, "setup": setup}


def main() -> None:
    """Measure every shipped workload and print the costs and the protocol's worst-case wall time."""
    import torch

    from descentlab.bench import available_algorithms, available_workloads, get_workload
    from descentlab.bench.workloads import REFERENCE_SECONDS, reference_probe

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--studies", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = {}
    for name in available_workloads():
        before = reference_probe()
        raw = measure(name, args.steps)
        after = reference_probe()
        factor = REFERENCE_SECONDS / (0.5 * (before + after))  # this machine's seconds -> reference seconds
        rows[name] = {k: v * factor for k, v in raw.items()} | {"probe": 0.5 * (before + after)}
    n_alg = len(available_algorithms())
    total = 0.0
    lines = ["| workload | step (ms) | eval (ms) | set-up (s) | budget (s) | evals | worst-case trial (s) |",
             "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for name, c in rows.items():
        wl = get_workload(name)
        steps_in_budget = min(wl.step_hint, wl.budget / c["step"])
        evals = 1 + math.ceil(steps_in_budget / wl.eval_every)
        trial = c["setup"] + min(wl.budget, wl.step_hint * c["step"]) + evals * c["eval"]
        c["worst_trial"] = trial
        total += trial
        lines.append(f"| {name} | {1e3 * c['step']:.2f} | {1e3 * c['eval']:.1f} | {c['setup']:.2f} | "
                     f"{wl.budget:g} | {evals} | {trial:.1f} |")  # fmt: skip
    n_trials = n_alg * args.trials * args.studies
    wall = total * n_trials / args.workers
    if args.json:
        print(json.dumps({"workloads": rows, "per_point_s": total, "trials_per_workload": n_trials,
                          "worst_case_wall_s": wall}, indent=1))  # fmt: skip
        return
    print("\n".join(lines))
    print(f"\nper search-space point over all workloads: {total:.1f} reference s (worst case, no early stop)")
    print(f"{n_alg} algorithms x {args.studies} studies x {args.trials} trials = {n_trials} points per workload; "
          f"{args.workers} workers: worst case {wall / 60:.1f} min at scale 1")  # fmt: skip


if __name__ == "__main__":
    main()
