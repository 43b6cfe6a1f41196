"""Time to 99 % validation accuracy of the `grokking` study's default run vs a naive training loop, side by side.

Run: .venv/bin/python benchmarks/grokking_speed.py [--reps 1] [--steps 3000] [--threads 2] [--per-step 40]

Both train the modular-division transformer (p = 97, 50 % of the pairs, width 128, 4 heads) with AdamW (lr 1e-3,
weight decay 1, betas (0.9, 0.98), batch 512) from the same seed. "study" = the study's configuration: train()
with tensors kept in memory, fused AdamW, ``--threads`` torch threads, evaluation every 50 steps outside the clock.
"naive" = a notebook-style loop: a DataLoader over a TensorDataset, foreach AdamW, torch's default thread count,
the plain transformer forward (``share_prefixes=False``: every position of every sequence computed), validation
evaluation every 50 steps inside the clock. Printed: training seconds to 99 % validation accuracy, wall seconds
(evaluation included), and the naive / study ratio; ``--per-step`` also times N steps of each loop plainly (fp32,
bf16 autocast and torch.compile), where the step count to 99 % would take too long.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

import descentlab
from descentlab import tasks
from descentlab.studies.grokking import adamw_factory, first_step_at

TASK_KW = {"p": 97, "op": "/", "train_fraction": 0.5, "width": 128}


def study_config(steps: int, threads: int) -> tuple[float | None, float | None, int | None]:
    """The study's run through train(): (train seconds, wall seconds, step) at the first eval with val >= 99 %."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        run = descentlab.train(
            tasks.get("modular", seed=0, **TASK_KW),
            optimizer=adamw_factory(1.0),
            batch_size=512,
            steps=steps,
            eval_every=50,
            seed=0,
            store=False,
            progress=False,
            device="cpu",
        )
    finally:
        torch.set_num_threads(old)
    step = first_step_at(run.metrics("accuracy"), 0.99)
    if step is None:
        return None, None, None
    return dict(run.metrics("train_time"))[step], dict(run.metrics("wall_time"))[step], step


def naive_loop(steps: int) -> tuple[float | None, float | None, int | None]:
    """A notebook-style loop (DataLoader, foreach AdamW, evaluation in the clock); stops at val >= 99 %."""
    task = tasks.get("modular", seed=0, **TASK_KW)
    torch.manual_seed(0)
    model = task.make_model(0)
    model.share_prefixes = False  # the plain transformer forward a notebook would write
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1.0, betas=(0.9, 0.98))
    loader = DataLoader(TensorDataset(*task.train_data), batch_size=512, shuffle=True, drop_last=True)
    xv, yv = task.val_data
    t0 = time.perf_counter()
    step = 0
    while step < steps:
        for x, y in loader:
            model.train()
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            step += 1
            if step % 50 == 0:
                model.eval()
                with torch.no_grad():
                    acc = (model(xv).argmax(-1) == yv).float().mean().item()
                if acc >= 0.99:
                    t = time.perf_counter() - t0
                    return t, t, step
            if step >= steps:
                break
    return None, None, None


def per_step(n: int, threads: int) -> dict[str, float]:
    """Seconds per training step (median of 3 blocks of n steps) for fp32 (shared-prefix forward), fp32 with the plain
    forward (``share_prefixes=False``), bf16 autocast and torch.compile."""
    task = tasks.get("modular", seed=0, **TASK_KW)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    out: dict[str, float] = {}
    try:
        for mode in ("fp32", "fp32-plain-forward", "bf16-autocast", "compile"):
            model = task.make_model(0)
            model.share_prefixes = mode != "fp32-plain-forward"
            opt = adamw_factory(1.0)(model)
            fwd = torch.compile(model) if mode == "compile" else model
            stream = task.batches(512, 0)

            def step(stream=stream, opt=opt, fwd=fwd, mode=mode) -> None:  # noqa: ANN001
                x, y = next(stream)
                opt.zero_grad()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bf16-autocast"):
                    out_ = fwd(x)
                torch.nn.functional.cross_entropy(out_.float(), y).backward()
                opt.step()

            t0 = time.perf_counter()
            for _ in range(3):
                step()
            out[f"{mode} warm-up (3 steps)"] = time.perf_counter() - t0
            blocks = []
            for _ in range(3):
                t0 = time.perf_counter()
                for _ in range(n):
                    step()
                blocks.append((time.perf_counter() - t0) / n)
            out[mode] = statistics.median(blocks)
    finally:
        torch.set_num_threads(old)
    return out


def main() -> None:
    """Measure and print the table."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--reps", type=int, default=1)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--per-step", type=int, default=0, help="also time N steps of fp32 / bf16 / compile")
    p.add_argument("--skip-naive", action="store_true")
    p.add_argument("--skip-study", action="store_true", help="only the --per-step table")
    a = p.parse_args()
    print(
        f"# grokking speed: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"default threads {torch.get_num_threads()}, study threads {a.threads}"
    )
    if a.per_step:
        for k, v in per_step(a.per_step, a.threads).items():
            print(f"per-step {k:28s} {v:8.4f} s")
    rows = []
    for r in range(0 if a.skip_study else a.reps):
        c0 = time.process_time()
        s = study_config(a.steps, a.threads)
        cs = time.process_time() - c0
        c0 = time.process_time()
        n = (None, None, None) if a.skip_naive else naive_loop(a.steps)
        cn = time.process_time() - c0
        rows.append((s, n))
        print(
            f"rep {r}: study: val>=99% at step {s[2]}, train {s[0]} s, wall {s[1]} s (process CPU {cs:.0f} s, "
            f"whole run); naive: step {n[2]}, wall {n[1]} s (CPU {cn:.0f} s)"
        )
    ts = [s[1] for s, _ in rows if s[1] is not None]
    tn = [n[1] for _, n in rows if n[1] is not None]
    if ts:
        print(f"study  time to 99% val (wall, eval included): median {statistics.median(ts):.1f} s")
    if tn:
        print(f"naive  time to 99% val (wall, eval included): median {statistics.median(tn):.1f} s")
    if ts and tn:
        print(f"ratio naive / study: {statistics.median(tn) / statistics.median(ts):.2f}x")


if __name__ == "__main__":
    main()
