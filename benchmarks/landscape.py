"""descentlab.landscape vs PyHessian (top Hessian eigenvalue) and loss-landscapes (51x51 plane), side by side.

Workload: an MLP 40-100-100-10 (ReLU) on mnist1d data generated with ``make_dataset(get_dataset_args())``
(4000 training samples), trained briefly with Adam so the Hessian is that of a partly trained model.
The anchors are benchmark-only extras: ``.venv/bin/pip install pyhessian loss-landscapes``.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/landscape.py [--reps 3] [--plane-reps 2]``
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


def timed(fn, reps: int):  # noqa: ANN001, ANN201
    times, out = [], None
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def bench_hessian(model: nn.Module, x: torch.Tensor, y: torch.Tensor, reps: int) -> None:
    crit = nn.CrossEntropyLoss()
    reference = hessian_eigenvalues(model, crit, (x, y), k=1, tol=1e-9, max_iter=500).values[0]
    print(
        f"\n== top Hessian eigenvalue, {sum(p.numel() for p in model.parameters())} params, {len(y)} samples"
    )
    print(f"reference (Lanczos, tol 1e-9): {reference:.6f}")
    t_ours, ours = timed(lambda: hessian_eigenvalues(model, crit, (x, y), k=1, tol=1e-2), reps)
    err = abs(ours.values[0] - reference) / abs(reference)
    print(f"descentlab lanczos tol=1e-2 : {t_ours:7.3f} s  hvps={ours.hvps:3d}  rel.err={err:.1e}")

    op = HessianOperator(model, crit, (x, y))
    lin = scipy.sparse.linalg.LinearOperator(
        (op.size, op.size), matvec=lambda v: op.matvec(torch.from_numpy(np.asarray(v).ravel())).numpy(),
        dtype=np.float64,
    )  # fmt: skip
    val = scipy.sparse.linalg.eigsh(lin, k=1, which="LA", tol=1e-3, v0=np.ones(op.size))[0][0]
    print(
        f"scipy eigsh (ARPACK) tol=1e-3: hvps={op.hvps:3d}  rel.err={abs(val - reference) / abs(reference):.1e}"
    )

    try:
        import pyhessian  # noqa: F401  (its package attribute `hessian` is the class; take the module)

        ph = sys.modules["pyhessian.hessian"]
    except Exception as err:  # noqa: BLE001
        print(f"PyHessian not available ({type(err).__name__}: {err}); skipped")
        return
    count = {"n": 0}
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

    t_ph, val = timed(run_pyhessian, reps)
    err_ph = abs(val - reference) / abs(reference)
    print(f"PyHessian power tol=1e-3    : {t_ph:7.3f} s  hvps={count['n']:3d}  rel.err={err_ph:.1e}")
    print(
        f"time ratio descentlab / PyHessian = {t_ours / t_ph:.2f}  (goal <= 0.5); hvps {ours.hvps} (goal <= 30)"
    )


def bench_plane(model: nn.Module, x: torch.Tensor, y: torch.Tensor, reps: int) -> None:
    crit = nn.CrossEntropyLoss()
    print(f"\n== 51x51 plane over {len(y)} samples")
    t_ours, res = timed(lambda: plane(model, crit, (x, y), points=(51, 51)), reps)
    print(f"descentlab plane (vmap)     : {t_ours:7.3f} s")
    t_loop, loop = timed(lambda: plane(model, crit, (x, y), points=(51, 51), vectorize=False), reps)
    print(
        f"descentlab plane (loop)     : {t_loop:7.3f} s  max |vmap - loop| = {np.abs(res.loss - loop.loss).max():.1e}"
    )
    try:
        import loss_landscapes
        import loss_landscapes.metrics
    except Exception as err:  # noqa: BLE001
        print(f"loss-landscapes not available ({type(err).__name__}: {err}); skipped")
        return
    metric = loss_landscapes.metrics.Loss(crit, x, y)
    t_ll, _ = timed(
        lambda: loss_landscapes.random_plane(model, metric, distance=1, steps=51, normalization="filter",
                                             deepcopy_model=True),
        reps,
    )  # fmt: skip
    print(f"loss-landscapes random_plane: {t_ll:7.3f} s")
    print(f"speed-up loss-landscapes / descentlab = {t_ll / t_ours:.2f}x (goal >= 10x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="repetitions of the eigenvalue timings (median)")
    parser.add_argument("--plane-reps", type=int, default=1, help="repetitions of the plane timings (median)")
    parser.add_argument("--skip-plane", action="store_true", help="only the eigenvalue comparison")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    model, x, y = workload()
    bench_hessian(model, x, y, args.reps)
    if not args.skip_plane:
        bench_plane(model, x, y, args.plane_reps)


if __name__ == "__main__":
    main()
