"""train() overhead vs a bare hand-written loop (same task, optimizer, batches), median of repetitions.

Run: .venv/bin/python benchmarks/train_overhead.py [--reps 5] [--steps 300]
Prints the per-step training time of both and their ratio (goal <= 1.05x: evaluation is outside the clock in both).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

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
    )
    return run.final["train_time"] / steps


def main() -> None:
    """Measure both loops side by side and print the ratio table."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--steps", type=int, default=300)
    args = p.parse_args()
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


if __name__ == "__main__":
    main()
