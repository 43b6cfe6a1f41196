"""Optimizer step time side by side with its anchor, printed as ratios measured in one run.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/optim_step.py            # every comparison
    .venv/bin/python benchmarks/optim_step.py --only muon_vs_torch --reps 7

Each comparison is one function returning rows (dicts: name, ours_s, anchor_s, ratio, note); ``main`` runs the
selected ones and prints one table. Add a comparison by writing a function and listing it in COMPARISONS.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from descentlab.optim.muon import Muon
from descentlab.optim.orthogonalize import orthogonalize, singular_value_band

# 12 x 512x512 + 4 x 2048x512 + 4 x 512x2048 = 11.5 M parameters (issue 3).
MUON_SHAPES = [(512, 512)] * 12 + [(2048, 512)] * 4 + [(512, 2048)] * 4


def median_time(fn: Callable[[], object], reps: int) -> float:
    """Median wall time of ``fn`` over ``reps`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def paired_median_times(
    fn_a: Callable[[], object], fn_b: Callable[[], object], reps: int
) -> tuple[float, float]:
    """Median wall times of ``fn_a`` and ``fn_b`` timed alternately (one warm-up each), so that load from
    other processes hits both alike."""
    wall, _ = paired_wall_and_cpu(fn_a, fn_b, reps)
    return wall


def paired_wall_and_cpu(
    fn_a: Callable[[], object], fn_b: Callable[[], object], reps: int
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Median (wall, wall) and (CPU, CPU) seconds of ``fn_a`` and ``fn_b`` timed alternately after a warm-up.
    CPU time (this process) is the steadier figure on a shared machine; on an idle one the two agree."""
    fn_a()
    fn_b()
    walls: tuple[list, list] = ([], [])
    cpus: tuple[list, list] = ([], [])
    for _ in range(reps):
        for i, fn in enumerate((fn_a, fn_b)):
            w, c = time.perf_counter(), time.process_time()
            fn()
            cpus[i].append(time.process_time() - c)
            walls[i].append(time.perf_counter() - w)
    med = statistics.median
    return (med(walls[0]), med(walls[1])), (med(cpus[0]), med(cpus[1]))


def _load() -> str:
    return f"load {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "load n/a"


def _muon_params(seed: int = 0) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    params = [torch.nn.Parameter(torch.randn(s, generator=g) * 0.02) for s in MUON_SHAPES]
    for p in params:
        p.grad = torch.randn(p.shape, generator=g)
    return params


def _band_over(matrices: list[torch.Tensor]) -> tuple[float, float]:
    bands = [singular_value_band(m) for m in matrices]
    return min(b[0] for b in bands), max(b[1] for b in bands)


NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def torch_newton_schulz_fp32(grad: torch.Tensor, ns_coefficients, ns_steps: int, eps: float) -> torch.Tensor:
    """torch.optim.Muon's Newton–Schulz (same addmm form and operation order) without its cast to bf16."""
    a, b, c = ns_coefficients
    X = grad.float()
    tall = X.size(0) > X.size(1)
    if tall:
        X = X.T
    X = X / X.norm().clamp(min=eps)
    for _ in range(ns_steps):
        A = X @ X.T
        X = torch.addmm(X, torch.addmm(A, A, A, beta=b, alpha=c), X, beta=a)
    return X.T if tall else X


def muon_vs_torch(reps: int) -> list[dict]:
    """descentlab Muon (fp32) vs torch.optim.Muon with its NS run in fp32 (same hyper-parameters) on MUON_SHAPES.

    torch.optim.Muon hard-codes bf16 for its NS; on a CPU without native bf16 matmuls (no AVX512-BF16/AMX) that is
    30-100x slower than fp32 (see ``torch_bf16_cost``), so the fair anchor runs torch's own step with its NS in fp32.
    Where the CPU has fast bf16 both sides run bf16 and the anchor is torch.optim.Muon unchanged.
    """
    from unittest import mock

    import torch.optim._muon as torch_muon

    from descentlab.optim.orthogonalize import _cpu_has_fast_bf16

    ours_params, torch_params = _muon_params(), _muon_params()
    ours = Muon(ours_params, lr=0.02, momentum=0.95, weight_decay=0.0)
    anchor = torch.optim.Muon(torch_params, lr=0.02, momentum=0.95, weight_decay=0.0, adjust_lr_fn="original")
    fast_bf16 = _cpu_has_fast_bf16()
    anchor_ns = torch_muon._zeropower_via_newtonschulz if fast_bf16 else torch_newton_schulz_fp32

    def anchor_step() -> None:
        with mock.patch.object(torch_muon, "_zeropower_via_newtonschulz", anchor_ns):
            anchor.step()

    (t_ours, t_torch), (c_ours, c_torch) = paired_wall_and_cpu(ours.step, anchor_step, reps)
    grads = [p.grad for p in ours_params]
    band_ours = _band_over([orthogonalize(g) for g in grads])
    band_torch = _band_over([anchor_ns(g, NS_COEFFICIENTS, 5, 1e-7) for g in grads])
    prec = "both bf16" if fast_bf16 else "both fp32"
    note = (f"{prec}; band ours [{band_ours[0]:.3f}, {band_ours[1]:.3f}] vs torch "
            f"[{band_torch[0]:.3f}, {band_torch[1]:.3f}]; {_load()}")  # fmt: skip
    return [dict(name="muon step (11.5M params) vs torch.optim.Muon, wall", ours_s=t_ours, anchor_s=t_torch,
                 ratio=t_ours / t_torch, note=note),
            dict(name="muon step (11.5M params) vs torch.optim.Muon, CPU", ours_s=c_ours, anchor_s=c_torch,
                 ratio=c_ours / c_torch, note="process CPU time (steadier under load)")]  # fmt: skip


def torch_bf16_cost(reps: int) -> list[dict]:
    """torch.optim.Muon's own NS (bf16) vs the same NS in fp32 on one 512x512 matrix: the price of bf16 here."""
    from torch.optim._muon import _zeropower_via_newtonschulz as torch_ns

    G = torch.randn(512, 512)
    t_bf16, t_fp32 = paired_median_times(
        lambda: torch_ns(G, NS_COEFFICIENTS, 5, 1e-7),
        lambda: torch_newton_schulz_fp32(G, NS_COEFFICIENTS, 5, 1e-7),
        min(reps, 2),
    )
    return [dict(name="torch NS 512x512: bf16 (as shipped) vs fp32", ours_s=t_bf16, anchor_s=t_fp32,
                 ratio=t_bf16 / t_fp32, note="not ours: torch's bf16 cast vs fp32 on this CPU")]  # fmt: skip


def _distributed_worker(rank: int, world: int, init_file: str, reps: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    if world > 1:
        dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    opt = Muon(_muon_params(), lr=0.02)

    def step() -> None:
        if world > 1:
            dist.barrier()
        opt.step()

    step()
    walls, cpus = [], []
    for _ in range(reps):
        w, c = time.perf_counter(), time.process_time()
        step()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    with open(os.path.join(out_dir, f"t{world}_{rank}"), "w") as f:
        f.write(f"{statistics.median(walls)!r} {statistics.median(cpus)!r}")
    if world > 1:
        dist.destroy_process_group()


def muon_distributed(reps: int) -> list[dict]:
    """Muon step on 2 gloo ranks vs 1 process, one torch thread per process: wall time (needs 2 idle cores to mean
    anything) and the busiest rank's CPU time (the share of the work each rank does, less sensitive to load)."""
    wall, cpu = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for world in (1, 2):
            init_file = os.path.join(tmp, f"init{world}")
            mp.spawn(_distributed_worker, args=(world, init_file, reps, tmp), nprocs=world, join=True)
            per_rank = []
            for rank in range(world):
                with open(os.path.join(tmp, f"t{world}_{rank}")) as f:
                    per_rank.append(tuple(float(x) for x in f.read().split()))
            wall[world] = max(w for w, _ in per_rank)
            cpu[world] = max(c for _, c in per_rank)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return [
        dict(name="muon step, 2 gloo ranks vs 1 process (1 thread each), wall", ours_s=wall[2], anchor_s=wall[1],
             ratio=wall[2] / wall[1], note=f"each rank orthogonalizes half of each shape bucket; load {load:.1f}"),
        dict(name="muon step, 2 gloo ranks vs 1 process, busiest rank's CPU time", ours_s=cpu[2], anchor_s=cpu[1],
             ratio=cpu[2] / cpu[1], note="work per rank (incl. all_gather); wall approaches this on idle cores"),
    ]  # fmt: skip


def orthogonalize_vs_torch_ns(reps: int) -> list[dict]:
    """orthogonalize (Gram iteration) vs torch.optim.Muon's Newton–Schulz on one 512x2048 matrix."""
    from torch.optim._muon import _zeropower_via_newtonschulz as torch_ns

    from descentlab.optim.orthogonalize import _cpu_has_fast_bf16

    anchor_ns = torch_ns if _cpu_has_fast_bf16() else torch_newton_schulz_fp32
    from descentlab.optim.orthogonalize import choose_plan

    G = torch.randn(512, 2048)
    _, (t_ours, t_torch) = paired_wall_and_cpu(
        lambda: orthogonalize(G), lambda: anchor_ns(G, NS_COEFFICIENTS, 5, 1e-7), reps
    )
    plan = choose_plan(G.shape)
    note = (f"CPU time; plan: {str(plan.dtype).removeprefix('torch.')}, {'Gram' if plan.gram else 'direct'}, "
            f"{'strips' if plan.strips else 'plain products'}")  # fmt: skip
    return [dict(name="orthogonalize 512x2048 vs torch NS", ours_s=t_ours, anchor_s=t_torch, ratio=t_ours / t_torch,
                 note=note)]  # fmt: skip


def singular_value_bands(seed: int = 0) -> list[str]:
    """Markdown rows: (min, max) singular value of each method's output on 256x1024 matrices of cond 10 and 1e3."""
    g = torch.Generator().manual_seed(seed)

    def matrix(cond: float) -> torch.Tensor:
        U, _ = torch.linalg.qr(torch.randn(256, 256, generator=g, dtype=torch.float64))
        V, _ = torch.linalg.qr(torch.randn(1024, 256, generator=g, dtype=torch.float64))
        s = torch.logspace(0, -math.log10(cond), 256, dtype=torch.float64)
        return ((U * s) @ V.T).float()

    methods = [("newton_schulz", torch.float32), ("newton_schulz", torch.bfloat16), ("polar_express", torch.float32),
               ("polar_express", torch.bfloat16), ("svd", None)]  # fmt: skip
    rows = ["| matrix | method (5 steps) | dtype | min sv | max sv |", "|---|---|---|---|---|"]
    for cond in (10.0, 1e3):
        G = matrix(cond)
        for method, dtype in methods:
            lo, hi = singular_value_band(orthogonalize(G, method=method, dtype=dtype))
            dt = "float64" if dtype is None else str(dtype).removeprefix("torch.")
            rows.append(f"| 256x1024, cond {cond:g} | {method} | {dt} | {lo:.3f} | {hi:.3f} |")
    from torch.optim._muon import _zeropower_via_newtonschulz as torch_ns

    for cond in (10.0, 1e3):
        lo, hi = singular_value_band(torch_ns(matrix(cond), (3.4445, -4.7750, 2.0315), 5, 1e-7))
        rows.append(f"| 256x1024, cond {cond:g} | torch.optim.Muon NS | bfloat16 | {lo:.3f} | {hi:.3f} |")
    return rows


COMPARISONS: dict[str, Callable[[int], list[dict]]] = {
    "muon_vs_torch": muon_vs_torch,
    "orthogonalize_vs_torch_ns": orthogonalize_vs_torch_ns,
    "muon_distributed": muon_distributed,
    "torch_bf16_cost": torch_bf16_cost,
}


def print_table(rows: list[dict]) -> None:
    """One line per row: name, ours, anchor, ratio, note."""
    width = max(len(r["name"]) for r in rows)
    print(f"{'comparison':<{width}}  {'ours (s)':>9}  {'anchor (s)':>10}  {'ratio':>6}  note")
    for r in rows:
        print(
            f"{r['name']:<{width}}  {r['ours_s']:9.4f}  {r['anchor_s']:10.4f}  {r['ratio']:6.2f}  {r['note']}"
        )


def main() -> None:
    """Run the selected comparisons and print one table of ratios (ours / anchor; < 1 is faster)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", nargs="*", choices=sorted(COMPARISONS), help="comparisons to run (default: all)"
    )
    parser.add_argument(
        "--reps", type=int, default=5, help="timed repetitions per measurement (median is kept)"
    )
    parser.add_argument("--bands", action="store_true", help="print the singular-value band table and exit")
    args = parser.parse_args()
    if args.reps < 1:
        parser.error(f"--reps must be >= 1, got {args.reps}")
    if args.bands:
        print("\n".join(singular_value_bands()))
        return
    rows: list[dict] = []
    for name in args.only or list(COMPARISONS):
        rows.extend(COMPARISONS[name](args.reps))
    from descentlab.hardware import current

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {current().describe()}; {_load()}")
    print_table(rows)


if __name__ == "__main__":
    main()
