"""How one optimizer step grows with the matrix size: Muon (ours and torch.optim.Muon) and Shampoo on one n x n weight.

Each step is timed on a single square parameter with a fixed random gradient; ours and torch.optim.Muon are timed
alternately in the same process (so background load hits both alike), median of the repetitions (fewer for big n,
no warm-up call at the largest sizes). torch.optim.Muon hard-codes bf16 for its Newton–Schulz; on a CPU without
native bf16 matmuls (no AVX512-BF16/AMX) that is 30-100x slower than fp32, so there the anchor runs torch's own step
with its NS in fp32 (``optim_step.torch_newton_schulz_fp32``) and both sides compute in fp32. Shampoo (descentlab's,
no blocking: max_preconditioner_dim = n, preconditioners recomputed every step by eigh) is capped at
``--shampoo-max`` (default 2048: one 4096 step is two 4096^2 eigh calls, minutes on one thread).
Prints Markdown tables with log-log slopes and saves docs/img/perf_growth_optim.png.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/growth_optim.py [--sizes 128 256 ...] [--shampoo-max 2048]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import numpy as np
import torch
import torch.optim._muon as torch_muon

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from optim_step import torch_newton_schulz_fp32  # noqa: E402

from descentlab.optim.muon import Muon  # noqa: E402
from descentlab.optim.orthogonalize import _cpu_has_fast_bf16  # noqa: E402
from descentlab.optim.shampoo import Shampoo  # noqa: E402

PNG = HERE.parent / "docs" / "img" / "perf_growth_optim.png"
SIZES = [128, 256, 512, 1024, 2048, 4096]


def reps_for(n: int) -> tuple[int, bool]:
    """(timed repetitions, warm-up?) for size n: 7 up to 512, 3 at 1024, 1 without warm-up above."""
    if n <= 512:
        return 7, True
    if n <= 1024:
        return 3, True
    return 1, n <= 2048


def _param(n: int, seed: int = 0) -> torch.nn.Parameter:
    g = torch.Generator().manual_seed(seed)
    p = torch.nn.Parameter(torch.randn(n, n, generator=g) * 0.02)
    p.grad = torch.randn(n, n, generator=g)
    return p


def timed(fns: dict[str, Callable[[], object]], reps: int, warm: bool) -> dict[str, float]:
    """Median wall time of each function, called round-robin ``reps`` times (after one warm-up call each)."""
    if warm:
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def measure(sizes: list[int], shampoo_max: int) -> list[dict]:
    """One row per size: ours, torch.optim.Muon and (up to ``shampoo_max``) Shampoo step times in seconds."""
    anchor_ns = torch_muon._zeropower_via_newtonschulz if _cpu_has_fast_bf16() else torch_newton_schulz_fp32
    rows = []
    for n in sizes:
        reps, warm = reps_for(n)
        ours = Muon([_param(n)], lr=0.02, momentum=0.95)
        anchor = torch.optim.Muon([_param(n)], lr=0.02, momentum=0.95, adjust_lr_fn="original")

        def anchor_step(anchor: torch.optim.Optimizer = anchor) -> None:
            with mock.patch.object(torch_muon, "_zeropower_via_newtonschulz", anchor_ns):
                anchor.step()

        t = timed({"ours": ours.step, "torch": anchor_step}, reps, warm)
        row = {"n": n, "reps": reps, "ours": t["ours"], "torch": t["torch"], "shampoo": None}
        if n <= shampoo_max:
            sh = Shampoo([_param(n)], lr=1e-3, max_preconditioner_dim=n)
            row["shampoo"] = timed({"shampoo": sh.step}, reps, warm)["shampoo"]
        rows.append(row)
    return rows


def slope(ns: list[int], ts: list[float]) -> float:
    """Least-squares slope of log t against log n."""
    return float(np.polyfit(np.log(ns), np.log(ts), 1)[0])


def plot(rows: list[dict]) -> None:
    """Log-log step time vs n, with an n^3 guide; saved to PNG (Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    ns = [r["n"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.loglog(ns, [r["ours"] for r in rows], "o-", label="descentlab Muon")
    anchor = "torch.optim.Muon" + ("" if _cpu_has_fast_bf16() else " (its NS in fp32)")
    ax.loglog(ns, [r["torch"] for r in rows], "s--", label=anchor)
    sh = [r for r in rows if r["shampoo"] is not None]
    if sh:
        ax.loglog([r["n"] for r in sh], [r["shampoo"] for r in sh], "^-", label="descentlab Shampoo (eigh)")
    ref = rows[-1]["torch"] * (np.array(ns, dtype=float) / ns[-1]) ** 3
    ax.loglog(ns, ref, ":", color="gray", label="n^3")
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set(xlabel="n (one n x n weight)", ylabel="step wall time (s)", title="optimizer step vs matrix size")
    ax.legend()
    fig.tight_layout()
    PNG.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PNG, dpi=110)
    plt.close(fig)


def main() -> None:
    """Measure, print Markdown, save the plot."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=SIZES, help="square matrix sides")
    p.add_argument("--shampoo-max", type=int, default=2048, help="largest n timed for Shampoo")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG")
    args = p.parse_args()
    sizes = sorted(args.sizes)
    if not sizes or sizes[0] < 2:
        p.error("sizes must be >= 2")
    prec = (
        "bf16 both"
        if _cpu_has_fast_bf16()
        else "fp32 both (torch's NS run in fp32: no fast bf16 on this CPU)"
    )
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads "
          f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}); Muon precision: {prec}")  # fmt: skip
    rows = measure(sizes, args.shampoo_max)
    print("\n| n | reps | descentlab Muon s | torch.optim.Muon s | ratio | torch NS GFLOP/s | Shampoo s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        gflops = 30 * r["n"] ** 3 / r["torch"] / 1e9  # 5 NS steps x 3 products of 2 n^3 flops
        sh = f"{r['shampoo']:.4f}" if r["shampoo"] is not None else f"skipped (n > {args.shampoo_max})"
        print(f"| {r['n']} | {r['reps']} | {r['ours']:.4f} | {r['torch']:.4f} | {r['ours'] / r['torch']:.2f} | "
              f"{gflops:.1f} | {sh} |")  # fmt: skip
    big = [r for r in rows if r["n"] >= 512]
    if len(big) >= 2:
        ns = [r["n"] for r in big]
        line = (f"\nLog-log slope over n >= 512 (O(n^3) products should give ~3): descentlab Muon "
                f"{slope(ns, [r['ours'] for r in big]):.2f}, torch.optim.Muon {slope(ns, [r['torch'] for r in big]):.2f}")  # fmt: skip
        sh = [r for r in big if r["shampoo"] is not None]
        if len(sh) >= 2:
            line += f", Shampoo {slope([r['n'] for r in sh], [r['shampoo'] for r in sh]):.2f}"
        print(line + ".")
    if not args.no_plot:
        plot(rows)
        print("\n![optimizer step time vs matrix size](img/perf_growth_optim.png)")


if __name__ == "__main__":
    main()
