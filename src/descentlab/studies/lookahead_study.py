"""Lookahead's robustness to the learning rate: SGD vs Lookahead(SGD) and Adam vs Lookahead(Adam) on MNIST-1D.

Seed 003, "Lookahead Optimizer: k steps forward, 1 step back" (Zhang, Lucas, Hinton, Ba 2019, Algorithm 2): the
fast weights take k steps of the inner optimizer, then the slow weights move theta <- theta + alpha (fast - theta).
The paper reports that Lookahead is more robust to the inner learning rate; the study sweeps the learning rate of
each base method with and without Lookahead (k=5, alpha=0.5) and compares the final training loss.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from descentlab.studies import Claim, Study, StudyContext, register


def _final_loss(run: Any) -> float:
    """Final training loss of a run; +inf when it diverged (or the loss is not finite)."""
    val = run.final.get("train_loss", math.inf)
    return float(val) if run.status == "finished" and math.isfinite(val) else math.inf


def _spread(values: list[float]) -> float:
    """Worst over best final loss; inf when any is inf (or there is none)."""
    return float(max(values) / min(values)) if values and math.isfinite(max(values)) else math.inf


def robustness(lrs: list[float], plain: list[float], look: list[float]) -> tuple[int, float, float, str]:
    """Judge Lookahead against its base over an lr grid (final losses, inf = diverged).

    A learning rate at which both diverge says nothing about robustness, so only the lrs where at least one of the
    two trains count. Returns (index of the largest such lr, the base's worst/best final loss over them,
    Lookahead's, a line of evidence)."""
    keep = [i for i in range(len(lrs)) if math.isfinite(plain[i]) or math.isfinite(look[i])]
    i = keep[-1] if keep else len(lrs) - 1
    both = [f"{lr:g}" for j, lr in enumerate(lrs) if j not in keep]
    note = f"{look[i]:.3g} vs {plain[i]:.3g} at lr={lrs[i]:g}" + (
        f" (both diverge at lr={', '.join(both)}: not judged)" if both else ""
    )
    return i, _spread([plain[j] for j in keep]), _spread([look[j] for j in keep]), note


def run(ctx: StudyContext, cfg: dict[str, Any]) -> tuple[dict[str, Any], list[Claim]]:
    """Sweep lr for each base with and without Lookahead, plot final loss vs lr, check the robustness claims."""
    import matplotlib.pyplot as plt

    task_kw = {"width": int(cfg["width"]), "depth": int(cfg["depth"])}
    steps, seeds = int(cfg["steps"]), int(cfg["seeds"])
    la = {"k": int(cfg["k"]), "alpha": float(cfg["alpha"])}
    bases = {"sgd": [float(x) for x in cfg["sgd_lrs"]], "adam": [float(x) for x in cfg["adam_lrs"]]}
    results: dict[str, dict[str, np.ndarray]] = {}
    curves: dict[str, dict[float, Any]] = {}
    for base, lrs in bases.items():
        for wrapped in (False, True):
            key = f"lookahead({base})" if wrapped else base
            finals = np.zeros((len(lrs), seeds))
            curves[key] = {}
            for i, lr in enumerate(lrs):
                for s in range(seeds):
                    r = ctx.train(
                        "mnist1d_mlp",
                        optimizer="lookahead" if wrapped else base,
                        lr=lr,
                        hparams={"base": base, **la} if wrapped else {},
                        steps=steps,
                        eval_every=int(cfg["eval_every"]),
                        batch_size=int(cfg["batch_size"]),
                        seed=s,
                        task_kw=task_kw,
                        device="cpu",
                    )
                    finals[i, s] = _final_loss(r)
                    if s == 0:
                        curves[key][lr] = r.metrics("train_loss")
            results[key] = finals

    def summary(key: str) -> list[float]:
        f = results[key]
        return [float(np.mean(row)) if np.all(np.isfinite(row)) else math.inf for row in f]

    numbers: dict[str, Any] = {
        "lrs": bases,
        "final_train_loss": {k: summary(k) for k in results},
        "k": la["k"],
        "alpha": la["alpha"],
    }
    ratios: dict[str, float] = {}
    wins: dict[str, str] = {}
    judged: dict[str, int] = {}
    for base, lrs in bases.items():
        plain, look = summary(base), summary(f"lookahead({base})")
        judged[base], ratios[base], ratios[f"lookahead({base})"], wins[base] = robustness(lrs, plain, look)
    numbers["worst_over_best"] = ratios
    numbers["judged_lr"] = {b: bases[b][i] for b, i in judged.items()}

    fig, axes = plt.subplots(1, 3, figsize=(18, 4.8))
    colors = {"sgd": "tab:blue", "adam": "tab:orange"}
    ax = axes[0]
    for base, lrs in bases.items():
        for wrapped, ls in ((False, "--"), (True, "-")):
            key = f"lookahead({base})" if wrapped else base
            f = results[key]
            mean = np.array(summary(key))
            ok = np.isfinite(mean)
            label = (
                f"Lookahead({base.upper() if base == 'sgd' else 'Adam'})"
                if wrapped
                else base.replace("sgd", "SGD").replace("adam", "Adam")
            )
            ax.plot(np.array(lrs)[ok], mean[ok], ls, marker="o", color=colors[base], label=label)
            if seeds > 1:
                lo = np.where(np.isfinite(f), f, np.nan).min(1)
                hi = np.where(np.isfinite(f), f, np.nan).max(1)
                ax.fill_between(np.array(lrs)[ok], lo[ok], hi[ok], color=colors[base], alpha=0.15)
            for x in np.array(lrs)[~ok]:
                ax.plot(x, ax.get_ylim()[1] if ax.lines else 10, "x", color=colors[base], ms=10)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("learning rate of the inner optimizer")
    ax.set_ylabel(f"final training loss after {steps} steps")
    ax.set_title(f"final loss vs lr (mean over {seeds} seeds; k={la['k']}, α={la['alpha']:g})")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    for ax, base in zip(axes[1:], bases):
        cmap = plt.get_cmap("viridis")
        lrs = bases[base]
        for i, lr in enumerate(lrs):
            c = cmap(i / max(1, len(lrs) - 1))
            for wrapped, ls in ((False, "--"), (True, "-")):
                key = f"lookahead({base})" if wrapped else base
                pts = curves[key][lr]
                if pts:
                    ax.plot(
                        [p[0] for p in pts],
                        [p[1] for p in pts],
                        ls,
                        color=c,
                        label=f"lr={lr:g}" + (" Lookahead" if wrapped else ""),
                    )
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.set_title(f"{base.upper() if base == 'sgd' else 'Adam'} (dashed) vs Lookahead (solid), seed 0")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    ctx.save_figure(fig, "lookahead")

    claims = []
    for base in bases:
        plain, look = summary(base), summary(f"lookahead({base})")
        claims.append(
            Claim(
                f"Lookahead is more robust to a large learning rate than plain {base}: at the largest lr where "
                "either trains it ends with a lower training loss.",
                look[judged[base]] < plain[judged[base]],
                f"final training loss {wins[base]} (Lookahead vs plain)",
            )
        )
    claims.append(
        Claim(
            "Over the learning-rate range (where either trains) Lookahead's worst final loss is closer to its best "
            "than the base optimizer's (a flatter loss-vs-lr curve).",
            all(ratios[f"lookahead({b})"] < ratios[b] for b in bases),
            "worst/best final loss over the lr grid: " + ", ".join(f"{k} {v:.3g}" for k, v in ratios.items()),
        )
    )
    return numbers, claims


_BASE = {
    "width": 100,
    "depth": 2,
    "batch_size": 100,
    "k": 5,
    "alpha": 0.5,
    "sgd_lrs": [0.1, 0.3, 1.0, 3.0],
    "adam_lrs": [0.003, 0.01, 0.03, 0.1],
    "eval_every": 50,
}

register(
    Study(
        name="lookahead",
        description="SGD vs Lookahead(SGD) and Adam vs Lookahead(Adam) across learning rates on the MNIST-1D MLP.",
        slide="seed 003, 'Lookahead Optimizer: k steps forward, 1 step back'",
        seconds=(17, 203),  # measured quick/full wall s on the 2-core CPU (tour scheduling)
        quick={**_BASE, "steps": 600, "seeds": 1},
        full={**_BASE, "steps": 3000, "seeds": 3},
        run=run,
    )
)
