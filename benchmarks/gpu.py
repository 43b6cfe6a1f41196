"""Issue 10's GPU figures, measured side by side on one device: run it when the device tool lends a GPU.

    .venv/bin/python benchmarks/gpu.py                       # CUDA; one line and exit 2 when there is none
    .venv/bin/python benchmarks/gpu.py --device cpu --small  # the same code on CPU, small sizes (a smoke run)

Rows (median of ``--reps`` timings after a warm-up, CUDA synchronized around every timing):
- Muon step on 11.5 M parameters (12 x 512x512, 4 x 2048x512, 4 x 512x2048): descentlab bf16 Newton–Schulz vs
  fp32, and descentlab bf16 vs torch.optim.Muon (bf16 too);
- orthogonalization of 16 matrices 512x512: one batched call vs a Python loop over them;
- top Hessian eigenvalue of the MNIST-1D MLP (Lanczos) vs the same number of Hessian-vector products done plainly;
- the grokking transformer's training step (batch 512): bf16 autocast vs fp32, and the shared-prefix forward vs
  the plain one.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable

import torch

from descentlab import tasks
from descentlab.landscape import hessian_eigenvalues
from descentlab.optim.muon import Muon
from descentlab.optim.orthogonalize import orthogonalize
from descentlab.studies.grokking import adamw_factory

BIG = [(512, 512)] * 12 + [(2048, 512)] * 4 + [(512, 2048)] * 4
SMALL = [(64, 64)] * 4 + [(128, 64)] * 2


def timed(fn: Callable[[], object], reps: int, device: torch.device) -> float:
    """Median seconds of ``fn`` over ``reps`` calls after one warm-up, synchronizing CUDA around each call."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    fn()
    sync()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _params(shapes: list[tuple[int, int]], device: torch.device) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(0)
    out = []
    for s in shapes:
        p = torch.nn.Parameter((torch.randn(s, generator=g) * 0.02).to(device))
        p.grad = torch.randn(s, generator=g).to(device)
        out.append(p)
    return out


def muon_rows(
    device: torch.device, shapes: list[tuple[int, int]], reps: int
) -> list[tuple[str, float, float, str]]:
    """(what, ours s, anchor s, note) for the Muon step."""
    bf16 = Muon(_params(shapes, device), lr=0.02, ns_dtype=torch.bfloat16)
    fp32 = Muon(_params(shapes, device), lr=0.02, ns_dtype=torch.float32)
    anchor = torch.optim.Muon(_params(shapes, device), lr=0.02, adjust_lr_fn="original")
    n = sum(a * b for a, b in shapes)
    t_bf16, t_fp32, t_torch = (timed(o.step, reps, device) for o in (bf16, fp32, anchor))
    return [
        (f"Muon step, {n:,} params: bf16 NS vs fp32 NS", t_bf16, t_fp32, "descentlab both sides"),
        (f"Muon step, {n:,} params: descentlab bf16 vs torch.optim.Muon", t_bf16, t_torch, "both bf16"),
    ]


def batched_rows(device: torch.device, side: int, reps: int) -> list[tuple[str, float, float, str]]:
    """One batched orthogonalize call on 16 matrices vs a loop over them."""
    G = torch.randn(16, side, side, device=device)
    t_batch = timed(lambda: orthogonalize(G), reps, device)
    t_loop = timed(lambda: [orthogonalize(g) for g in G], reps, device)
    return [(f"orthogonalize 16 x {side}x{side}: batched vs loop", t_batch, t_loop, "default dtype")]


def hessian_rows(device: torch.device, reps: int) -> list[tuple[str, float, float, str]]:
    """Top Hessian eigenvalue (Lanczos) vs the same number of Hessian-vector products written plainly."""
    task = tasks.get("mnist1d_mlp")
    model = task.make_model(0).to(device)
    x, y = (t.to(device) for t in task.train_data)
    res = hessian_eigenvalues(model, task.outputs_loss, (x, y), k=1)
    params = [p for p in model.parameters() if p.requires_grad]

    def plain() -> None:
        v = [torch.randn_like(p) for p in params]
        for _ in range(res.hvps):
            loss = task.outputs_loss(model(x), y)
            grads = torch.autograd.grad(loss, params, create_graph=True)
            hv = torch.autograd.grad(grads, params, grad_outputs=v)
            norm = torch.sqrt(sum((h * h).sum() for h in hv))
            v = [h / norm for h in hv]

    t_ours = timed(lambda: hessian_eigenvalues(model, task.outputs_loss, (x, y), k=1), reps, device)
    t_plain = timed(plain, reps, device)
    return [
        (f"top Hessian eigenvalue, MNIST-1D MLP ({res.hvps} HVPs) vs plain HVP loop", t_ours, t_plain, "")
    ]


def grokking_rows(device: torch.device, p: int, steps: int, reps: int) -> list[tuple[str, float, float, str]]:
    """Seconds per grokking training step: bf16 autocast vs fp32, shared-prefix forward vs plain."""
    task = tasks.get("modular", seed=0, p=p, op="/", train_fraction=0.5, width=128)

    def runner(share: bool, bf16: bool) -> Callable[[], None]:
        model = task.make_model(0).to(device)
        model.share_prefixes = share
        opt = adamw_factory(1.0)(model)
        stream = task.batches(512, 0)

        def run() -> None:
            for _ in range(steps):
                x, y = (t.to(device) for t in next(stream))
                opt.zero_grad()
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    out = model(x)
                torch.nn.functional.cross_entropy(out.float(), y).backward()
                opt.step()

        return run

    t = {k: timed(runner(*k), reps, device) / steps for k in ((True, False), (True, True), (False, False))}
    return [
        (
            "grokking step (batch 512): bf16 autocast vs fp32",
            t[(True, True)],
            t[(True, False)],
            "shared prefixes",
        ),
        (
            "grokking step (batch 512): shared-prefix vs plain forward",
            t[(True, False)],
            t[(False, False)],
            "fp32",
        ),
    ]


def main() -> None:
    """Parse the options, measure, print one table of ratios."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--small", action="store_true", help="small sizes (a smoke run of the code paths)")
    args = ap.parse_args()
    if args.device not in ("cuda", "cpu"):
        print(f"--device must be cuda or cpu, got {args.device!r}", file=sys.stderr)
        sys.exit(2)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            "no CUDA device here: run this on a GPU (or --device cpu --small for a smoke run)",
            file=sys.stderr,
        )
        sys.exit(2)
    if args.reps < 1:
        print(f"--reps must be >= 1, got {args.reps}", file=sys.stderr)
        sys.exit(2)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
    rows = muon_rows(device, SMALL if args.small else BIG, args.reps)
    rows += batched_rows(device, 64 if args.small else 512, args.reps)
    rows += hessian_rows(device, args.reps)
    rows += grokking_rows(device, 11 if args.small else 97, 2 if args.small else 20, args.reps)
    print(f"{name}; torch {torch.__version__}; median of {args.reps}\n")
    print("| what | ours (s) | anchor (s) | ratio | note |\n|---|---:|---:|---:|---|")
    for what, ours, anchor, note in rows:
        print(f"| {what} | {ours:.5f} | {anchor:.5f} | {ours / anchor:.3f}x | {note} |")


if __name__ == "__main__":
    main()
