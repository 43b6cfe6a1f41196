"""descentlab.landscape vs PyHessian (top Hessian eigenvalue) and loss-landscapes (51x51 plane), side by side.

Workload: an MLP 40-100-100-10 (ReLU) on mnist1d data generated with ``make_dataset(get_dataset_args())``
(4000 training samples), trained briefly with Adam so the Hessian is that of a partly trained model.
The anchors are benchmark-only extras (the ``bench`` extra, which ``make bench`` installs):
``.venv/bin/pip install pyhessian loss-landscapes``.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/landscape.py [--reps 5] [--plane-reps 3] [--with-vmap]``
Tools are timed round-robin in one process (medians of wall and CPU time), so a busy machine hits all alike.
Plane goals: >= 1.2x loss-landscapes' speed in fp32 and never slower on any CPU kind; the opt-in bf16 mode
(``precision="bf16"``) >= 2x where bf16 matmuls are native (AMX), with its error against fp32 printed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import scipy.sparse.linalg
import torch
from torch import nn

from descentlab.landscape import hessian_eigenvalues, plane
from descentlab.landscape.hessian import HessianOperator


def workload(seed: int = 0, train_steps: int = 300) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = seed
    data = make_dataset(args)
    x = torch.tensor(np.asarray(data["x"]), dtype=torch.float32)
    y = torch.tensor(np.asarray(data["y"]), dtype=torch.long)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(40, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(train_steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval(), x, y


def interleaved(fns: dict, reps: int) -> tuple[dict, dict, dict]:  # noqa: ANN001
    """Run the callables round-robin ``reps`` times (fair under a shared, noisy machine).

    Returns median wall seconds, median CPU seconds (``time.process_time``; robust when other processes steal the
    cores) and the last result, each a dict by name.
    """
    wall = {k: [] for k in fns}
    cpu = {k: [] for k in fns}
    out = {}
    for _ in range(reps):
        for k, fn in fns.items():
            t, c = time.perf_counter(), time.process_time()
            out[k] = fn()
            cpu[k].append(time.process_time() - c)
            wall[k].append(time.perf_counter() - t)
    med = statistics.median
    return {k: med(v) for k, v in wall.items()}, {k: med(v) for k, v in cpu.items()}, out


def bench_hessian(model: nn.Module, x: torch.Tensor, y: torch.Tensor, reps: int) -> None:
    crit = nn.CrossEntropyLoss()
    reference = hessian_eigenvalues(model, crit, (x, y), k=1, tol=1e-9, max_iter=500).values[0]
    print(
        f"\n== top Hessian eigenvalue, {sum(p.numel() for p in model.parameters())} params, {len(y)} samples"
    )
    print(f"reference (Lanczos, tol 1e-9): {reference:.6f}")

    op = HessianOperator(model, crit, (x, y))
    lin = scipy.sparse.linalg.LinearOperator(
        (op.size, op.size), matvec=lambda v: op.matvec(torch.from_numpy(np.asarray(v).ravel())).numpy(),
        dtype=np.float64,
    )  # fmt: skip
    val = scipy.sparse.linalg.eigsh(lin, k=1, which="LA", tol=1e-3, v0=np.ones(op.size))[0][0]
    print(
        f"scipy eigsh (ARPACK) tol=1e-3: hvps={op.hvps:3d}  rel.err={abs(val - reference) / abs(reference):.1e}"
    )

    fns = {
        "ours": lambda: hessian_eigenvalues(model, crit, (x, y), k=1, tol=1e-2),
        "ours, random start": lambda: hessian_eigenvalues(
            model, crit, (x, y), k=1, tol=1e-2, start_with_gradient=False
        ),
    }
    count = {"n": 0}
    try:
        import pyhessian  # noqa: F401  (its package attribute `hessian` is the class; take the module)

        ph = sys.modules["pyhessian.hessian"]
        original = ph.hessian_vector_product

        def counted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            count["n"] += 1
            return original(*args, **kwargs)

        ph.hessian_vector_product = counted

        def run_pyhessian() -> float:
            count["n"] = 0
            torch.manual_seed(0)
            comp = ph.hessian(model, crit, data=(x, y), cuda=False)
            return comp.eigenvalues(maxIter=100, tol=1e-3, top_n=1)[0][0]

        fns["PyHessian"] = run_pyhessian
    except Exception as err:  # noqa: BLE001
        print(f"PyHessian not available ({type(err).__name__}: {err}); skipped")
    wall, cpu, out = interleaved(fns, reps)
    print(f"\n| top eigenvalue ({reps} interleaved reps, medians) | wall s | CPU s | HVPs | rel. error |")
    print("|---|---|---|---|---|")
    for k in fns:
        if k == "PyHessian":
            label, hvps, value = "PyHessian power iteration, tol 1e-3", count["n"], out[k]
        else:
            label, hvps, value = f"descentlab Lanczos, tol 1e-2 ({k})", out[k].hvps, out[k].values[0]
        err = abs(value - reference) / abs(reference)
        print(f"| {label} | {wall[k]:.3f} | {cpu[k]:.3f} | {hvps} | {err:.1e} |")
    if "PyHessian" in fns:
        print(
            f"\ntime ratio descentlab / PyHessian = {wall['ours'] / wall['PyHessian']:.2f} wall, "
            f"{cpu['ours'] / cpu['PyHessian']:.2f} CPU (goal <= 0.5); hvps {out['ours'].hvps} (goal <= 30)"
        )


def _plane_table(title: str, fns: dict, reps: int, ref_name: str) -> tuple[dict, dict, dict]:
    """Time ``fns`` round-robin and print one table; differences are to ``ref_name``'s losses."""
    wall, cpu, out = interleaved(fns, reps)
    print(f"\n| {title} ({reps} interleaved reps, medians) | wall s | CPU s | max abs diff to {ref_name} "
          "| max rel. diff |")  # fmt: skip
    print("|---|---|---|---|---|")
    ref = out[ref_name].loss
    for k in fns:
        if k.startswith("loss-"):
            diff = rel = ""
        else:
            d = np.abs(out[k].loss - ref)
            diff, rel = f"{d.max():.1e}", f"{(d / np.abs(ref)).max():.1e}"
        print(f"| {k} | {wall[k]:.2f} | {cpu[k]:.2f} | {diff} | {rel} |")
    return wall, cpu, out


def bench_plane(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, reps: int, with_vmap: bool = False
) -> None:
    """The 51x51 plane: default (fp32), the plain loop, loss-landscapes; bf16 autocast on the same grid where
    bf16 is native, else on an 11x11 grid next to fp32 and loss-landscapes (emulated bf16 is ~16x slower)."""
    import warnings

    from descentlab.hardware import current

    crit = nn.CrossEntropyLoss()
    hw = current()
    print(f"\n== 51x51 plane over {len(y)} samples; {hw.describe()}")
    ours, loop, ll = "descentlab `plane` (default, fp32)", "plain loop", "loss-landscapes `random_plane`"
    bf16 = "descentlab `plane`, bf16 autocast (`precision='bf16'`)"

    def group(steps: int, with_loop: bool, with_bf16: bool) -> dict:
        fns = {ours: lambda: plane(model, crit, (x, y), points=(steps, steps))}
        if with_loop:
            fns[f"descentlab `plane`, {loop} (`vectorize=False`)"] = lambda: plane(
                model, crit, (x, y), points=(steps, steps), vectorize=False
            )
        if with_vmap and with_loop:
            fns["descentlab `plane`, vmap (`vectorize=True`)"] = lambda: plane(
                model, crit, (x, y), points=(steps, steps), vectorize=True
            )
        if with_bf16:

            def plane_bf16():  # noqa: ANN202
                with warnings.catch_warnings():  # the "bf16 is emulated here" warning: this row measures it
                    warnings.simplefilter("ignore")
                    return plane(model, crit, (x, y), points=(steps, steps), precision="bf16")

            fns[bf16] = plane_bf16
        try:
            import loss_landscapes
            import loss_landscapes.metrics

            metric = loss_landscapes.metrics.Loss(crit, x, y)
            fns[ll] = lambda: loss_landscapes.random_plane(
                model, metric, distance=1, steps=steps, normalization="filter", deepcopy_model=True
            )
        except Exception as err:  # noqa: BLE001
            print(f"loss-landscapes not available ({type(err).__name__}: {err}); skipped")
        return fns

    fns = group(51, True, hw.fast_bf16)
    wall, cpu, out = _plane_table("51x51 plane", fns, reps, ours)
    print(f"\ndefault path: {out[ours].evaluation}")
    if ll in fns:
        print(f"speed-up loss-landscapes / descentlab fp32 = {wall[ll] / wall[ours]:.2f}x wall, "
              f"{cpu[ll] / cpu[ours]:.2f}x CPU (goal >= 1.2x, never < 1)")  # fmt: skip
    if not hw.fast_bf16:
        print(f"\nbf16 is emulated on this CPU ({hw.kind}): bf16 measured on an 11x11 plane instead")
        fns = group(11, False, True)
        wall, cpu, out = _plane_table("11x11 plane", fns, reps, ours)
    if ll in fns:
        print(f"speed-up loss-landscapes / descentlab bf16 = {wall[ll] / wall[bf16]:.2f}x wall, "
              f"{cpu[ll] / cpu[bf16]:.2f}x CPU; bf16 / fp32 time = {cpu[bf16] / cpu[ours]:.1f}x CPU (goal >= 2x "
              f"loss-landscapes' speed where bf16 is native; this CPU: "
              f"{'native' if hw.fast_bf16 else 'emulated, fp32 stays the default'})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="repetitions of the eigenvalue timings (median)")
    parser.add_argument("--plane-reps", type=int, default=3, help="repetitions of the plane timings (median)")
    parser.add_argument("--with-vmap", action="store_true", help="also time the plane with vmap forced")
    parser.add_argument("--skip-plane", action="store_true", help="only the eigenvalue comparison")
    parser.add_argument("--skip-hessian", action="store_true", help="only the plane comparison")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    model, x, y = workload()
    if not args.skip_hessian:
        bench_hessian(model, x, y, args.reps)
    if not args.skip_plane:
        bench_plane(model, x, y, args.plane_reps, args.with_vmap)


if __name__ == "__main__":
    main()
