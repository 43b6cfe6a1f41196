"""What one benchmark trial costs per workload, in reference seconds: a training step, an evaluation, the set-up.

Each number is measured on one torch thread next to the hardware probe (``bench.workloads.reference_probe``) and
divided by the probe's time over ``REFERENCE_SECONDS``, so it reads as seconds on the reference machine even when
this machine is loaded (load slows probe and workload alike). From them, the worst-case wall time of a protocol
(every trial runs its whole budget, no early stop at the target) is

    sum over algorithms, workloads, trials of  setup_w + budget_w + evals_w * eval_w

divided by the number of workers (evals_w: as many evaluations as the fastest step reaches in the budget or the step
hint). Early stops at the target only shorten it; worker start-up (~10 s per worker) is left out.

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
    """Measure every shipped workload and print the costs and the protocols' wall-time estimates."""
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
    n_alg = len(available_algorithms("external"))
    lines = ["| workload | step (ms) | eval (ms) | set-up (s) | step hint | budget (s) | NAdamW trial (s) | "
             "bound per trial (s) |", "|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    per_point = {"nadamw": 0.0, "bound": 0.0}
    for name, c in rows.items():
        wl = get_workload(name)
        # NAdamW: the step hint or the budget ends the trial; the bound: the whole budget for any algorithm, with
        # as many evaluations as the fastest step could reach (a slower optimizer gets fewer)
        evals = 1 + math.ceil(min(wl.step_hint, wl.budget / c["step"]) / wl.eval_every)
        nadamw = c["setup"] + min(wl.budget, wl.step_hint * c["step"]) + evals * c["eval"]
        bound = c["setup"] + wl.budget + evals * c["eval"]
        c.update(nadamw_trial=nadamw, bound_trial=bound)
        per_point["nadamw"] += nadamw
        per_point["bound"] += bound
        lines.append(f"| {name} | {1e3 * c['step']:.2f} | {1e3 * c['eval']:.1f} | {c['setup']:.2f} | {wl.step_hint} | "
                     f"{wl.budget:g} | {nadamw:.1f} | {bound:.1f} |")  # fmt: skip
    ext = n_alg * args.trials * args.studies
    est = {
        "external_bound_min": per_point["bound"] * ext / args.workers / 60,
        "external_nadamw_speed_min": per_point["nadamw"] * ext / args.workers / 60,
        "self_bound_min": 1.5 * per_point["bound"] * n_alg * args.studies / args.workers / 60,
    }
    if args.json:
        print(json.dumps({"workloads": rows, "per_point_s": per_point, "estimates": est}, indent=1))
        return
    print("\n".join(lines))
    print(
        f"\nPer search-space point over all workloads (reference seconds): {per_point['nadamw']:.1f} at NAdamW's "
        f"speed, {per_point['bound']:.1f} at most (every trial to its budget)."
    )
    print(
        f"External tuning, {n_alg} algorithms x {args.studies} studies x {args.trials} trials, {args.workers} "
        f"workers, scale 1: at most {est['external_bound_min']:.1f} min ({est['external_nadamw_speed_min']:.1f} "
        f"min if every algorithm stepped as fast as NAdamW and no trial stopped early at its target)."
    )
    print(f"Self-tuning, {args.studies} studies, 1.5x budgets: at most {est['self_bound_min']:.1f} min.")


if __name__ == "__main__":
    main()
