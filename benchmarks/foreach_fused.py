"""torch's optimizer kernels side by side on CPU: the default (for-loop) vs foreach=True vs fused=True.

adam, adamw, sgd and adagrad have fused CPU kernels; the others are compared default vs foreach only.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/foreach_fused.py              # adam, adamw, sgd; both sizes
    .venv/bin/python benchmarks/foreach_fused.py --reps 9 --threads 2 --device cpu

Prints one Markdown table: median step time (of >= 5 repetitions, the variants timed round-robin so that load
from other processes hits all of them alike) and the ratio to torch's default. The registry's kernel defaults in
``descentlab/optim/torch_classics.py`` (``KERNEL_DEFAULTS``) are chosen from this table.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

# An mnist1d MLP (40 -> 256 -> 256 -> 10): 6 tensors, 78k parameters.
MLP_SHAPES = [(256, 40), (256,), (256, 256), (256,), (10, 256), (10,)]
# 10.5 M parameters in 20 matrices and 20 biases, a small transformer's worth of tensors.
BIG_SHAPES = [(512, 1024), (512,)] * 20

SETTINGS = {
    "adam": (torch.optim.Adam, {"lr": 1e-3}),
    "adamw": (torch.optim.AdamW, {"lr": 1e-3, "weight_decay": 0.01}),
    "sgd": (torch.optim.SGD, {"lr": 1e-2, "momentum": 0.9}),
    "adagrad": (torch.optim.Adagrad, {"lr": 1e-2}),
    # foreach only (torch has no fused kernel for these):
    "rmsprop": (torch.optim.RMSprop, {"lr": 1e-2}),
    "nadam": (torch.optim.NAdam, {"lr": 1e-3}),
    "radam": (torch.optim.RAdam, {"lr": 1e-3}),
    "adamax": (torch.optim.Adamax, {"lr": 1e-3}),
    "adadelta": (torch.optim.Adadelta, {"lr": 1.0}),
    "asgd": (torch.optim.ASGD, {"lr": 1e-2}),
    "rprop": (torch.optim.Rprop, {"lr": 1e-2}),
    "adafactor": (torch.optim.Adafactor, {"lr": 1e-2}),
}
VARIANTS = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def make_params(shapes: list[tuple[int, ...]], device: str, seed: int = 0) -> list[torch.nn.Parameter]:
    """Parameters of the given shapes with fixed random gradients attached."""
    g = torch.Generator().manual_seed(seed)
    params = []
    for shape in shapes:
        p = torch.nn.Parameter(torch.randn(shape, generator=g).to(device))
        p.grad = torch.randn(shape, generator=g).to(device) * 1e-2
        params.append(p)
    return params


def step_times(
    name: str, shapes: list[tuple[int, ...]], device: str, reps: int, steps_per_rep: int
) -> dict[str, float]:
    """Median seconds per optimizer step for each variant, timed round-robin."""
    cls, hp = SETTINGS[name]
    opts = {}
    for variant, kw in VARIANTS.items():
        params = make_params(shapes, device)
        try:
            opts[variant] = cls(params, **hp, **kw)
        except (RuntimeError, ValueError, TypeError):  # no such kernel (for this device)
            continue
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for opt in opts.values():  # warm-up: lazily created state, first-call dispatch
        for _ in range(2):
            opt.step()
    times: dict[str, list[float]] = {v: [] for v in opts}
    for _ in range(reps):
        for variant, opt in opts.items():
            sync()
            start = time.perf_counter()
            for _ in range(steps_per_rep):
                opt.step()
            sync()
            times[variant].append((time.perf_counter() - start) / steps_per_rep)
    return {v: statistics.median(t) for v, t in times.items()}


def main() -> None:
    """Measure and print the table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=7, help="repetitions per variant (median taken; >= 5)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--only", nargs="*", default=list(SETTINGS), help=f"optimizers among {list(SETTINGS)}")
    args = p.parse_args()
    if args.reps < 5:
        raise SystemExit(f"--reps must be >= 5, got {args.reps}")
    torch.set_num_threads(args.threads)
    sizes = {"mnist1d MLP (78k)": (MLP_SHAPES, 50), "10.5M params": (BIG_SHAPES, 2)}
    print(
        f"Device {args.device}, {args.threads} thread(s), median of {args.reps} reps; ratio = time / default.\n"
    )
    print("| optimizer | parameters | default ms | foreach ms (ratio) | fused ms (ratio) |")
    print("|---|---|---|---|---|")
    for name in args.only:
        for label, (shapes, steps_per_rep) in sizes.items():
            t = step_times(name, shapes, args.device, args.reps, steps_per_rep)
            base = t["default"]
            cells = [
                f"{1e3 * t[v]:.3f} ({t[v] / base:.2f}x)" if v in t else "n/a" for v in ("foreach", "fused")
            ]
            print(f"| {name} | {label} | {1e3 * base:.3f} | {cells[0]} | {cells[1]} |", flush=True)


if __name__ == "__main__":
    main()
