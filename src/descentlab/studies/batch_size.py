"""Mini-batch size: error vs iterations and vs gradient evaluations, and the 1/B law of the gradient variance.

Seed 003, "The convergence of mini-batch SGD", Theorem 1: with E||grad f_i - grad f||^2 <= sigma^2, the mini-batch
gradient has variance sigma^2 / B, and the bound's noise term scales as sigma / sqrt(B). Sampling B of m points
*without* replacement (what an epoch-wise shuffled stream does) multiplies the variance by the finite-population
factor (m - B) / (m - 1), so E||g_B - grad f||^2 = sigma^2 / B * (m - B) / (m - 1) and B = m has none.
On ``logreg`` (m = 200) the study runs SGD with one constant step for B from 1 to m and measures the variance of
the stream's mini-batch gradients at a fixed point.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from descentlab import tasks
from descentlab.studies import Claim, Study, StudyContext, register


def batch_gradient_variance(
    task: Any, model: torch.nn.Module, batch_size: int, draws: int, seed: int = 0
) -> float:
    """Mean of ||g_B - grad f||^2 over ``draws`` mini-batches of the task's own stream (without replacement).

    ``grad f`` is the full-batch gradient at the model's parameters; ``g_B`` the gradient of ``task.loss`` on a batch.
    """
    if batch_size < 1 or draws < 1:
        raise ValueError(f"batch_size and draws must be >= 1, got {batch_size!r}, {draws!r}")

    def grad_on(batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        model.zero_grad(set_to_none=True)
        task.loss(model, batch).backward()
        return torch.cat([p.grad.reshape(-1).double() for p in model.parameters()])

    full = grad_on(task.train_data)
    stream = task.batches(batch_size, seed)
    sq = [float((grad_on(next(stream)) - full).pow(2).sum()) for _ in range(draws)]
    return float(np.mean(sq))


def run(ctx: StudyContext, cfg: dict[str, Any]) -> tuple[dict[str, Any], list[Claim]]:
    """Train SGD for each batch size, measure the variance law, plot both views and check the claims."""
    import matplotlib.pyplot as plt

    task_kw = {"m": int(cfg["m"]), "n": int(cfg["n"]), "mu": float(cfg["mu"])}
    task = tasks.get("logreg", **task_kw)
    m = int(cfg["m"])
    sizes = [int(b) for b in cfg["batch_sizes"]]
    bad = [b for b in sizes if not 1 <= b <= m]
    if bad:
        raise ValueError(f"batch-size: batch sizes must be in [1, m={m}], got {bad}")
    steps, every, seeds, lr = int(cfg["steps"]), int(cfg["eval_every"]), int(cfg["seeds"]), float(cfg["lr"])

    curves: dict[int, np.ndarray] = {}
    ks = np.array([])
    for b in sizes:
        runs = [
            ctx.train(
                "logreg",
                optimizer="sgd",
                lr=lr,
                batch_size=b,
                seed=s,
                steps=steps,
                eval_every=every,
                task_kw=task_kw,
                device="cpu",
            )
            for s in range(seeds)
        ]
        ks = np.array([k for k, _ in runs[0].metrics("gap")])
        curves[b] = np.array([[v for _, v in r.metrics("gap")] for r in runs])

    # The variance law, measured at the starting point and at x* with the task's own batch stream.
    sigma2 = {}
    var: dict[str, dict[int, float]] = {}
    points = {"x0": task.make_model(0)}
    at_star = task.make_model(0)
    with torch.no_grad():
        at_star.weight.copy_(task.x_star.float().reshape(at_star.weight.shape))
    points["x_star"] = at_star
    for name, model in points.items():
        var[name] = {}
        for b in sizes:
            var[name][b] = (
                batch_gradient_variance(task, model, b, int(cfg["draws"]), seed=1) if b < m else 0.0
            )
        sigma2[name] = batch_gradient_variance(task, model, 1, m, seed=2)  # one epoch of B=1: exactly sigma^2
        ctx.advance()
    fit_b = np.array([b for b in sizes if b < m], dtype=float)
    slopes, raw_slopes, worst = {}, {}, 0.0
    for name in points:
        v = np.array([var[name][int(b)] for b in fit_b])
        corrected = v * (m - 1) / (m - fit_b)
        slopes[name] = float(np.polyfit(np.log(fit_b), np.log(corrected), 1)[0])
        raw_slopes[name] = float(np.polyfit(np.log(fit_b), np.log(v), 1)[0])
        predicted = sigma2[name] / fit_b * (m - fit_b) / (m - 1)
        worst = max(worst, float(np.max(np.abs(v / predicted - 1))))

    final = {b: float(curves[b][:, -1].mean()) for b in sizes}
    budget = int(cfg["evals_budget"])
    at_budget = {}
    for b in sizes:
        k = budget // b
        idx = np.searchsorted(ks, k, side="right") - 1
        at_budget[b] = float(curves[b][:, idx].mean()) if idx >= 0 else float("nan")
    numbers = {
        "lr": lr,
        "final_gap": final,
        "gap_at_equal_gradient_evaluations": at_budget,
        "gradient_evaluations_budget": budget,
        "sigma2": sigma2,
        "variance": var,
        "slope_corrected": slopes,
        "slope_raw": raw_slopes,
        "variance_max_relative_error": worst,
    }

    fig, axes = plt.subplots(1, 3, figsize=(18, 4.8))
    cmap = plt.get_cmap("viridis")
    for i, b in enumerate(sizes):
        c = cmap(i / max(1, len(sizes) - 1))
        mean = curves[b].mean(0)
        lab = f"B={b}" + (" (full batch)" if b == m else "")
        axes[0].plot(ks, mean, color=c, label=lab)
        axes[0].fill_between(ks, curves[b].min(0), curves[b].max(0), color=c, alpha=0.15)
        axes[1].plot(np.maximum(ks, 1) * b, mean, color=c, label=lab)
    axes[0].set_xlabel("iteration k")
    axes[1].set_xlabel("gradient evaluations k·B")
    axes[1].set_xscale("log")
    axes[1].axvline(budget, color="k", ls=":", lw=1, label=f"{budget} evaluations")
    for ax in axes[:2]:
        ax.set_yscale("log")
        ax.set_ylim(bottom=1e-9)
        ax.set_ylabel("f(x_k) − f*")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    axes[0].set_title(f"SGD, α={lr:g}: error vs iterations (mean, min–max over {seeds} seeds)")
    axes[1].set_title("error vs gradient evaluations")
    ax = axes[2]
    bb = np.geomspace(1, m - 1, 100)
    for name, marker in zip(points, ("o", "s")):
        ax.plot(fit_b, [var[name][int(b)] for b in fit_b], marker, label=f"measured at {name}")
        ax.plot(bb, sigma2[name] / bb * (m - bb) / (m - 1), "-", lw=1, label=f"σ²/B·(m−B)/(m−1) at {name}")
        ax.plot(bb, sigma2[name] / bb, ":", lw=1, label=f"σ²/B at {name}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("batch size B")
    ax.set_ylabel("E‖g_B − ∇f‖²")
    ax.set_title(f"variance of the mini-batch gradient (m={m}); fitted slope {slopes['x0']:.2f}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    ctx.save_figure(fig, "batch_size")

    small, full = sizes[0], sizes[-1]
    claims = [
        Claim(
            "The stochastic-gradient variance is proportional to 1/B (slope −1 on log–log once the "
            "finite-population factor (m−B)/(m−1) of sampling without replacement is accounted for).",
            all(abs(s + 1) < 0.1 for s in slopes.values()) and worst < 0.25,
            "fitted slopes "
            + ", ".join(f"{k}: {v:.3f} (raw {raw_slopes[k]:.3f})" for k, v in slopes.items())
            + f"; max |measured / (σ²/B·(m−B)/(m−1)) − 1| = {worst:.3f}",
        ),
        Claim(
            "At an equal number of iterations a larger batch reaches a lower error (the noise term shrinks "
            "as σ/√B).",
            final[full] < final[small] and final[sizes[len(sizes) // 2]] < final[small],
            f"after {steps} steps: " + ", ".join(f"B={b}: {final[b]:.3g}" for b in sizes),
        ),
        Claim(
            "At an equal number of gradient evaluations mini-batches (B < m) are ahead of the full batch.",
            min(at_budget[b] for b in sizes if b < m) < 0.5 * at_budget[full],
            f"after {budget} gradient evaluations: "
            + ", ".join(f"B={b}: {at_budget[b]:.3g}" for b in sizes if np.isfinite(at_budget[b])),
        ),
    ]
    return numbers, claims


register(
    Study(
        name="batch-size",
        description="Mini-batch SGD on logreg for B = 1..m: error vs iterations and vs gradient evaluations; Var ∝ 1/B.",
        slide="seed 003, 'The convergence of mini-batch SGD', Theorem 1",
        seconds=(11, 62),  # measured quick/full wall s on the 2-core CPU (tour scheduling)
        quick={
            "m": 200,
            "n": 10,
            "mu": 1.0,
            "lr": 0.1,
            "batch_sizes": [1, 4, 16, 64, 200],
            "steps": 400,
            "eval_every": 5,
            "seeds": 2,
            "draws": 400,
            "evals_budget": 1000,
        },
        full={
            "m": 200,
            "n": 10,
            "mu": 1.0,
            "lr": 0.1,
            "batch_sizes": [1, 2, 5, 10, 20, 50, 100, 200],
            "steps": 1000,
            "eval_every": 5,
            "seeds": 5,
            "draws": 2000,
            "evals_budget": 1000,
        },
        run=run,
    )
)
