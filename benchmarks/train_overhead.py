"""train() overhead vs a bare hand-written loop (same task, optimizer, batches), median of repetitions.

Run: .venv/bin/python benchmarks/train_overhead.py [--reps 5] [--steps 300] [--only overhead|threads]
Prints the per-step training time of both and their ratio (goal <= 1.05x: evaluation is outside the clock in both),
then the thread table: mnist1d_mlp through train() with the "auto" thread choice while idle and while a background
process keeps one core busy (goal: busy <= 1.1x idle), next to torch's default (every core) under the same load.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager

import torch

import descentlab
from descentlab import optim, tasks


def bare_loop(task_name: str, steps: int, batch_size: int, lr: float, task_kw: dict) -> float:
    """A hand-written loop: same model, optimizer and batch stream as train(); returns seconds per step."""
    task = tasks.get(task_name, **task_kw)
    torch.manual_seed(0)
    model = task.make_model(0)
    opt = optim.create("adam", model, lr=lr)  # the same optimizer object train() builds
    stream = task.batches(batch_size, 0)
    model.train()
    t0 = time.perf_counter()
    for _ in range(steps):
        batch = next(stream)
        opt.zero_grad(set_to_none=True)
        loss = task.loss(model, batch)
        loss.backward()
        opt.step()
        float(loss.detach())
    return (time.perf_counter() - t0) / steps


def through_train(task_name: str, steps: int, batch_size: int, lr: float, task_kw: dict) -> float:
    """descentlab.train with a store, progress bar off, evaluation every 100 steps; train seconds per step."""
    run = descentlab.train(
        task_name,
        optimizer="adam",
        lr=lr,
        steps=steps,
        batch_size=batch_size,
        task_kw=task_kw,
        eval_every=100,
        store=False,
        progress=False,
        seed=0,
        threads=torch.get_num_threads(),  # the bare loop's count: this table measures overhead, not threads
    )
    return run.final["train_time"] / steps


@contextmanager
def busy_core():  # noqa: ANN201
    """A background Python process spinning on one core for the duration of the block."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # let it reach the run queue
        yield proc
    finally:
        proc.terminate()
        proc.wait()


def train_threads(
    task_name: str, steps: int, batch_size: int, lr: float, threads: int | str
) -> tuple[float, int]:
    """train() seconds per step with ``threads`` ("auto", or "all": one per core, torch's default) and the thread
    count the run recorded in its config."""
    n = (os.cpu_count() or 1) if threads == "all" else threads
    run = descentlab.train(task_name, optimizer="adam", lr=lr, steps=steps, batch_size=batch_size, eval_every=100,
                           store=False, progress=False, seed=0, threads=n)  # fmt: skip
    return run.final["train_time"] / steps, int(run.config["threads"])


def thread_table(reps: int, steps: int) -> None:
    """mnist1d_mlp: auto threads idle vs one busy core (goal <= 1.1x), and every core under the same load."""
    name, bs, lr = "mnist1d_mlp", 100, 1e-2
    rows: dict[str, list[float]] = {
        "idle, auto": [],
        "one busy core, auto": [],
        "one busy core, all cores": [],
    }
    used: dict[str, int] = {}
    load = []
    for _ in range(reps):
        t, used["idle, auto"] = train_threads(name, steps, bs, lr, "auto")
        rows["idle, auto"].append(t)
        with busy_core():
            for key, threads in (("one busy core, auto", "auto"), ("one busy core, all cores", "all")):
                t, used[key] = train_threads(name, steps, bs, lr, threads)
                rows[key].append(t)
            load.append(os.getloadavg()[0])
    idle = statistics.median(rows["idle, auto"])
    print(f"\n{name} through train(), {reps} reps x {steps} steps, {os.cpu_count()} cores; load average during the "
          f"busy rows {statistics.median(load):.1f} (other processes included)")  # fmt: skip
    print("| setting | torch threads | train() ms/step | ratio to idle auto |")
    print("|---|---|---|---|")
    for key, times in rows.items():
        med = statistics.median(times)
        print(f"| {key} | {used[key]} | {med * 1e3:.3f} | {med / idle:.2f}x |")
    print("goal: one busy core, auto <= 1.1x idle")


def main() -> None:
    """Measure both loops side by side and print the ratio table, then the thread table."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--only", choices=["overhead", "threads"], help="one of the two tables")
    args = p.parse_args()
    if args.only == "threads":
        thread_table(args.reps, args.steps)
        return
    cases = [("mnist1d_mlp", 100, 1e-2, {}), ("modular", 512, 1e-3, {})]
    print(
        f"# train() overhead · torch {torch.__version__} · {platform.processor() or platform.machine()} · "
        f"{torch.get_num_threads()} threads"
    )
    print("| workload | bare loop ms/step | train() ms/step | ratio |")
    print("|---|---|---|---|")
    for name, bs, lr, kw in cases:
        bare, ours = [], []
        steps = args.steps if name != "modular" else max(20, args.steps // 5)
        for _ in range(args.reps):
            bare.append(bare_loop(name, steps, bs, lr, kw))
            ours.append(through_train(name, steps, bs, lr, kw))
        b, o = statistics.median(bare), statistics.median(ours)
        print(f"| {name} | {b * 1e3:.3f} | {o * 1e3:.3f} | {o / b:.3f}x |")
    if args.only is None:
        thread_table(args.reps, args.steps)


if __name__ == "__main__":
    main()
