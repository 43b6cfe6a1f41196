"""How the cost of descentlab.landscape grows: plane time vs grid points, top-eigenvalue time vs parameters.

Anchors measured in the same process, round-robin: loss-landscapes ``random_plane`` (planes) and PyHessian power
iteration (eigenvalues); each is skipped when not installed (``.venv/bin/pip install pyhessian loss-landscapes``).
Workload: mnist1d (``make_dataset(get_dataset_args())``, 4000 training samples); planes on the MLP 40-100-100-10 of
benchmarks/landscape.py, eigenvalues on MLPs 40-w-w-10 for several widths w (each trained 100 Adam steps).
Prints Markdown tables and saves docs/img/perf_growth_landscape.png (CPU times: robust on a shared machine).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/growth_landscape.py [--grids 11 21 31 51] [--widths ...]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from descentlab.landscape import hessian_eigenvalues, plane  # noqa: E402
from landscape import workload  # noqa: E402

PNG = HERE.parent / "docs" / "img" / "perf_growth_landscape.png"


def clock(fn):  # noqa: ANN001, ANN201
    """(wall seconds, CPU seconds, result) of one call."""
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t, time.process_time() - c, out


def mlp(width: int, x: torch.Tensor, y: torch.Tensor, steps: int = 100, seed: int = 0) -> nn.Module:
    """MLP 40-w-w-10 (ReLU), trained ``steps`` full-batch Adam steps."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(40, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10)
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


def planes(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, grids: list[int], anchor_max: int
) -> list[dict]:
    """Plane times for each grid side (ours; loss-landscapes too up to ``anchor_max`` points a side)."""
    crit = nn.CrossEntropyLoss()
    try:
        import loss_landscapes
        import loss_landscapes.metrics

        metric = loss_landscapes.metrics.Loss(crit, x, y)
    except Exception:  # noqa: BLE001
        loss_landscapes = None
    plane(model, crit, (x, y), points=(3, 3))  # warm-up (first calls pay one-off costs)
    rows = []
    for s in grids:
        row = {"side": s, "points": s * s}
        row["ours_wall"], row["ours_cpu"], _ = clock(lambda s=s: plane(model, crit, (x, y), points=(s, s)))
        if loss_landscapes is not None and s <= anchor_max:
            row["ll_wall"], row["ll_cpu"], _ = clock(
                lambda s=s: loss_landscapes.random_plane(
                    model, metric, distance=1, steps=s, normalization="filter", deepcopy_model=True
                )
            )
        rows.append(row)
    return rows


def eigen(x: torch.Tensor, y: torch.Tensor, widths: list[int], reps: int) -> list[dict]:
    """Top-eigenvalue times (ours, Lanczos tol 1e-2; PyHessian, power tol 1e-3) per width, medians of ``reps``."""
    crit = nn.CrossEntropyLoss()
    try:
        import pyhessian  # noqa: F401

        ph = sys.modules["pyhessian.hessian"]
    except Exception:  # noqa: BLE001
        ph = None
    rows = []
    for w in widths:
        model = mlp(w, x, y)
        row = {"width": w, "params": sum(p.numel() for p in model.parameters())}
        runs = {"ours": [], "ph": []}
        for _ in range(reps):  # round-robin
            runs["ours"].append(clock(lambda m=model: hessian_eigenvalues(m, crit, (x, y), tol=1e-2)))
            if ph is not None:
                torch.manual_seed(0)
                runs["ph"].append(
                    clock(
                        lambda m=model: ph.hessian(m, crit, data=(x, y), cuda=False).eigenvalues(
                            maxIter=100, tol=1e-3
                        )[0][0]
                    )
                )
        for k, got in runs.items():
            if got:
                row[f"{k}_wall"] = statistics.median(g[0] for g in got)
                row[f"{k}_cpu"] = statistics.median(g[1] for g in got)
        res = runs["ours"][-1][2]
        row["hvps"], row["value"] = res.hvps, float(res.values[0])
        if runs["ph"]:
            row["ph_value"] = float(runs["ph"][-1][2])
        rows.append(row)
    return rows


def plot(plane_rows: list[dict], eig_rows: list[dict]) -> None:
    """Two log-log panels, saved to PNG (Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    pts = [r["points"] for r in plane_rows]
    a.loglog(pts, [r["ours_cpu"] for r in plane_rows], "o-", label="descentlab plane")
    ll = [r for r in plane_rows if "ll_cpu" in r]
    if ll:
        a.loglog(
            [r["points"] for r in ll], [r["ll_cpu"] for r in ll], "s--", label="loss-landscapes random_plane"
        )
    a.set_xticks(pts, [f"{r['side']}x{r['side']}" for r in plane_rows])
    a.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    a.set(xlabel="grid points", ylabel="CPU time (s)", title="plane, MLP 40-100-100-10, 4000 samples")
    a.legend()
    n = [r["params"] for r in eig_rows]
    b.loglog(n, [r["ours_cpu"] for r in eig_rows], "o-", label="descentlab Lanczos (tol 1e-2)")
    if "ph_cpu" in eig_rows[0]:
        b.loglog(n, [r["ph_cpu"] for r in eig_rows], "s--", label="PyHessian power (tol 1e-3)")
    b.set(xlabel="parameters", ylabel="CPU time (s)", title="top Hessian eigenvalue, 4000 samples")
    b.legend()
    fig.tight_layout()
    PNG.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PNG, dpi=110)
    plt.close(fig)


def main() -> None:
    """Measure, print Markdown, save the plot."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--grids", type=int, nargs="+", default=[11, 21, 31, 51], help="plane grid sides")
    p.add_argument("--reps", type=int, default=3, help="round-robin repetitions of the eigenvalue timings")
    p.add_argument(
        "--anchor-max-side", type=int, default=21, help="largest grid side timed with loss-landscapes"
    )
    p.add_argument("--widths", type=int, nargs="+", default=[25, 50, 100, 200, 400], help="MLP hidden widths")
    args = p.parse_args()
    threads = os.environ.get("OMP_NUM_THREADS")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads (OMP_NUM_THREADS={threads}); planes: one run "
        f"each; eigenvalues: medians of {args.reps} round-robin runs"
    )
    model, x, y = workload()
    plane_rows = planes(model, x, y, args.grids, args.anchor_max_side)
    print(
        "\n| plane grid | points | descentlab wall s (CPU s) | ms / point | loss-landscapes wall s (CPU s) | speed-up |"
    )
    print("|---|---|---|---|---|---|")
    for r in plane_rows:
        ll = f"{r['ll_wall']:.2f} ({r['ll_cpu']:.2f})" if "ll_wall" in r else "–"
        up = f"{r['ll_cpu'] / r['ours_cpu']:.2f}x CPU" if "ll_wall" in r else "–"
        per = 1e3 * r["ours_wall"] / r["points"]
        print(
            f"| {r['side']}x{r['side']} | {r['points']} | {r['ours_wall']:.2f} ({r['ours_cpu']:.2f}) | {per:.2f} | {ll} | {up} |"
        )
    eig_rows = eigen(x, y, args.widths, args.reps)
    print("\n| MLP 40-w-w-10 | params | descentlab wall s (CPU s) | HVPs | PyHessian wall s (CPU s) | ratio (CPU) | "
          "rel. diff of the values |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for r in eig_rows:
        ph = f"{r['ph_wall']:.3f} ({r['ph_cpu']:.3f})" if "ph_wall" in r else "–"
        ratio = f"{r['ours_cpu'] / r['ph_cpu']:.2f}" if "ph_wall" in r else "–"
        diff = f"{abs(r['value'] - r['ph_value']) / abs(r['value']):.1e}" if "ph_wall" in r else "–"
        print(f"| w={r['width']} | {r['params']} | {r['ours_wall']:.3f} ({r['ours_cpu']:.3f}) | {r['hvps']} | {ph} | "
              f"{ratio} | {diff} |")  # fmt: skip
    pts = np.array([r["points"] for r in plane_rows], dtype=float)
    t = np.array([r["ours_cpu"] for r in plane_rows])
    if len(pts) > 1:
        slope = np.polyfit(np.log(pts), np.log(t), 1)[0]
        print(f"\nplane CPU time grows as points^{slope:.2f} (1 = linear: a fixed cost per point)")
    plot(plane_rows, eig_rows)
    print(f"\n![cost growth of descentlab.landscape](img/{PNG.name})")


if __name__ == "__main__":
    main()
