"""Step time of Shampoo, SAM and Lookahead against their anchors, measured side by side; prints ratios.

- Shampoo (precondition_frequency 1 and 10) vs torch.optim.Adam: optimizer.step() alone, gradients preset.
- SAM (SGD base) vs SGD, Lookahead(Adam) vs Adam: a whole training step (forward + backward + step) on an MLP.
- pytorch_optimizer's Shampoo / SAM / Lookahead where that package is installed (benchmark only, never a dependency).

Each entry is timed for --steps steps, --reps times (after one warm-up round); the median is reported.
Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/optim_wrappers.py``
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from descentlab.optim.lookahead import Lookahead
from descentlab.optim.sam import SAM
from descentlab.optim.shampoo import Shampoo

try:
    import pytorch_optimizer as po
except ImportError:  # optional anchor
    po = None


def _interleaved_medians(fns: dict[str, Callable[[], None]], steps: int, reps: int) -> dict[str, float]:
    """Seconds per call of each function: one warm-up call, then ``reps`` rounds that time every entry in turn
    (interleaved, so load drift on a shared machine hits all entries alike); the median round is reported."""
    for fn in fns.values():
        fn()  # warm-up (lazy state, first preconditioner)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(steps):
                fn()
            times[name].append((time.perf_counter() - start) / steps)
    return {name: statistics.median(t) for name, t in times.items()}


def _matrix_params(seed: int = 0) -> list[nn.Parameter]:
    """4 x 256x256 + 2 x 512x128 + 6 biases: ~0.4 M parameters, dimensions below the blocking threshold."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(256, 256)] * 4 + [(512, 128), (128, 512)] + [(256,)] * 6
    return [nn.Parameter(torch.randn(s, generator=g) * 0.02) for s in shapes]


def bench_shampoo(steps: int, reps: int) -> dict[str, float]:
    """Seconds per optimizer.step() with fixed random gradients."""

    def stepper(make: Callable[[list[nn.Parameter]], torch.optim.Optimizer]) -> Callable[[], None]:
        params = _matrix_params()
        g = torch.Generator().manual_seed(1)
        for p in params:
            p.grad = torch.randn(p.shape, generator=g) * 0.01
        return make(params).step

    fns = {"adam": stepper(lambda ps: torch.optim.Adam(ps, lr=1e-3))}
    for freq in (1, 10):
        fns[f"shampoo_f{freq}"] = stepper(lambda ps, f=freq: Shampoo(ps, lr=1e-3, precondition_frequency=f))
        if po is not None:
            fns[f"po_shampoo_f{freq}"] = stepper(
                lambda ps, f=freq: po.Shampoo(ps, lr=1e-3, preconditioning_compute_steps=f)
            )
    return _interleaved_medians(fns, steps, reps)


def _mlp_stepper(
    make: Callable[[nn.Module], torch.optim.Optimizer], grads_first: bool = False
) -> Callable[[], None]:
    """``grads_first``: run the closure before ``step(closure)`` (pytorch_optimizer's SAM reads g(w) from .grad)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
    x, y = torch.randn(256, 256), torch.randint(0, 10, (256,))
    opt = make(model)

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss

    def one_step() -> None:
        if grads_first:
            closure()
        opt.step(closure)

    return one_step


def bench_wrappers(steps: int, reps: int) -> dict[str, float]:
    """Seconds per training step (forward, backward, step) of the wrappers and their bases."""
    sgd = dict(lr=0.05, momentum=0.9)
    fns = {
        "sgd": _mlp_stepper(lambda m: torch.optim.SGD(m.parameters(), **sgd)),
        "sam_sgd": _mlp_stepper(lambda m: SAM(m.parameters(), torch.optim.SGD, rho=0.05, **sgd)),
        "adam": _mlp_stepper(lambda m: torch.optim.Adam(m.parameters(), lr=1e-3)),
        "lookahead_adam": _mlp_stepper(lambda m: Lookahead(torch.optim.Adam(m.parameters(), lr=1e-3))),
    }
    if po is not None:
        fns["po_sam_sgd"] = _mlp_stepper(
            lambda m: po.SAM(m.parameters(), torch.optim.SGD, rho=0.05, **sgd), grads_first=True
        )
        fns["po_lookahead_adam"] = _mlp_stepper(
            lambda m: po.Lookahead(torch.optim.Adam(m.parameters(), lr=1e-3))
        )
    return _interleaved_medians(fns, steps, reps)


def main() -> None:
    """Print times and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="steps per timed repetition")
    parser.add_argument("--reps", type=int, default=5, help="repetitions; the median is reported")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), median of {args.reps} x {args.steps} steps")

    s = bench_shampoo(args.steps, args.reps)
    print("\noptimizer.step() on 4x256x256 + 512x128 + 128x512 + 6 biases (0.39 M params)")
    for name, sec in s.items():
        print(f"  {name:20s} {sec * 1e3:9.2f} ms   {sec / s['adam']:7.2f}x adam")
    for freq in (1, 10):
        if f"po_shampoo_f{freq}" in s:
            ratio = s[f"shampoo_f{freq}"] / s[f"po_shampoo_f{freq}"]
            print(f"  shampoo_f{freq} / pytorch_optimizer.Shampoo: {ratio:.2f}x")

    w = bench_wrappers(args.steps, args.reps)
    print("\ntraining step (forward + backward + step), MLP 256-512-512-10, batch 256")
    for name, sec in w.items():
        base = w["sgd"] if "sgd" in name else w["adam"]
        print(f"  {name:20s} {sec * 1e3:9.2f} ms   {sec / base:7.2f}x its base")
    if "po_sam_sgd" in w:
        print(f"  sam_sgd / pytorch_optimizer.SAM: {w['sam_sgd'] / w['po_sam_sgd']:.2f}x")
        print(
            f"  lookahead_adam / pytorch_optimizer.Lookahead: {w['lookahead_adam'] / w['po_lookahead_adam']:.2f}x"
        )


if __name__ == "__main__":
    main()
