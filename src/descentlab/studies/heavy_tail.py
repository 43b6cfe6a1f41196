"""Heavy-tailed classes and rare features: where per-coordinate steps (Adam, AdaGrad) beat plain SGD.

Seed 002 (Kunstner et al. 2024, "Heavy-Tailed Class Imbalance and Why Adam Outperforms Gradient Descent on Language
Models"): with Zipf-distributed class frequencies, gradient descent reduces the loss of the frequent classes and
stalls on the rare ones, which hold a large share of the data in total; Adam makes progress on all of them. Seed 002's
AdaGrad notes: coordinates that are rarely active get few, small gradient steps from SGD, while AdaGrad's step
alpha / sqrt(sum of squared gradients) stays large for them. Both are shown with each optimizer at its best
learning rate (lowest final training loss over a small grid).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from descentlab import tasks
from descentlab.studies import Claim, Study, StudyContext, register
from descentlab.tasks.base import Task, seeded_generator


def sparse_features_task(
    n: int = 2000, d: int = 100, p_max: float = 0.5, noise: float = 0.01, seed: int = 0
) -> Task:
    """Linear regression whose feature j is active with probability p_max / (j+1) (Zipf-rare features).

    ``y = <w*, x> + noise``, ``w* ~ N(0, I)``; the model is a bias-free ``Linear(d, 1)`` started at zero. The task
    carries ``w_star`` and ``frequency`` (the empirical activation rate of every feature) in ``config``.
    """
    if n < 2 or d < 2 or not 0 < p_max <= 1:
        raise ValueError(f"need n >= 2, d >= 2 and 0 < p_max <= 1; got n={n}, d={d}, p_max={p_max}")
    g = seeded_generator(seed)
    p = p_max / torch.arange(1, d + 1, dtype=torch.float32)
    active = torch.rand(n, d, generator=g) < p
    x = torch.randn(n, d, generator=g) * active
    w_star = torch.randn(d, generator=g)
    y = x @ w_star + noise * torch.randn(n, generator=g)

    def model(seed: int) -> nn.Module:
        m = nn.Linear(d, 1, bias=False)
        nn.init.zeros_(m.weight)
        return m

    return Task(
        name="sparse-features",
        train_data=(x, y),
        val_data=(x, y),
        model_factory=model,
        description="linear regression with Zipf-rare features",
        kind="regression",
        default_batch_size=32,
        config={
            "n": n,
            "d": d,
            "p_max": p_max,
            "noise": noise,
            "seed": seed,
            "w_star": w_star.tolist(),
            "frequency": active.float().mean(0).tolist(),
        },
    )


def _best(runs: dict[float, Any]) -> float:
    """The learning rate whose run ended with the lowest training loss (diverged runs never win)."""

    def score(lr: float) -> float:
        r = runs[lr]
        v = r.final.get("train_loss", math.inf)
        return v if r.status == "finished" and math.isfinite(v) else math.inf

    return min(runs, key=score)


def run(ctx: StudyContext, cfg: dict[str, Any]) -> tuple[dict[str, Any], list[Claim]]:
    """Part 1: SGD vs Adam per frequency group on `imbalance`; part 2: SGD vs AdaGrad on rare features."""
    import matplotlib.pyplot as plt

    numbers: dict[str, Any] = {}
    # Part 1: heavy-tailed classes.
    task_kw = {
        "num_classes": int(cfg["classes"]),
        "num_samples": int(cfg["samples"]),
        "dim": int(cfg["dim"]),
        "noise": float(cfg["noise"]),
    }
    task = tasks.get("imbalance", **task_kw)
    groups = sorted(int(j) for j in torch.unique(task.class_group))
    rare, frequent = groups[-1], groups[0]
    common = {
        "task_kw": task_kw,
        "steps": int(cfg["steps"]),
        "batch_size": int(cfg["batch_size"]),
        "eval_every": int(cfg["eval_every"]),
        "device": "cpu",
    }
    grids = {"sgd": [float(v) for v in cfg["sgd_lrs"]], "adam": [float(v) for v in cfg["adam_lrs"]]}
    best_runs = {}
    for opt, lrs in grids.items():
        runs = {lr: ctx.train("imbalance", optimizer=opt, lr=lr, seed=0, **common) for lr in lrs}
        lr = _best(runs)
        best_runs[opt] = runs[lr]
        numbers[f"{opt}_best_lr"] = lr
        numbers[f"{opt}_grid_train_loss"] = {str(k): r.final.get("train_loss") for k, r in runs.items()}
    chance = math.log(int(cfg["classes"]))
    for opt, r in best_runs.items():
        numbers[f"{opt}_group_loss"] = {str(j): r.final[f"train_loss_g{j}"] for j in groups}
    # the gap between the rarest and the most frequent group at the end (Kunstner et al.: GD's curves fan out by
    # class frequency, Adam's stay together)
    gap = {
        opt: numbers[f"{opt}_group_loss"][str(rare)] - numbers[f"{opt}_group_loss"][str(frequent)]
        for opt in best_runs
    }
    numbers["rare_minus_frequent_gap"] = gap
    start = best_runs["sgd"].metrics(f"train_loss_g{rare}")[0][1]

    # Part 2: rare features.
    sparse = sparse_features_task(n=int(cfg["sparse_n"]), d=int(cfg["sparse_d"]), seed=0)
    w_star = torch.tensor(sparse.config["w_star"])
    freq = np.array(sparse.config["frequency"])
    rare_idx = torch.from_numpy(np.argsort(freq)[: len(freq) // 2].copy())
    freq_idx = torch.from_numpy(np.argsort(freq)[len(freq) // 2 :].copy())
    sparse_common = {
        "steps": int(cfg["sparse_steps"]),
        "batch_size": 32,
        "eval_every": int(cfg["sparse_steps"]) // 20,
        "device": "cpu",
    }
    sparse_best = {}
    for opt, lrs in (("sgd", cfg["sparse_sgd_lrs"]), ("adagrad", cfg["sparse_adagrad_lrs"])):
        runs = {
            float(lr): ctx.train(sparse, optimizer=opt, lr=float(lr), seed=0, **sparse_common) for lr in lrs
        }
        lr = _best(runs)
        sparse_best[opt] = runs[lr]
        w = runs[lr].model.weight.detach().reshape(-1)
        numbers[f"sparse_{opt}_best_lr"] = lr
        numbers[f"sparse_{opt}_rare_error"] = float(((w - w_star)[rare_idx] ** 2).sum())
        numbers[f"sparse_{opt}_frequent_error"] = float(((w - w_star)[freq_idx] ** 2).sum())
        numbers[f"sparse_{opt}_train_loss"] = runs[lr].final["train_loss"]

    # Figure: loss per frequency group (Kunstner et al. Fig. 1), and the sparse problem.
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.6))
    cmap = plt.get_cmap("viridis")
    for ax, opt in zip(axes[:2], ("sgd", "adam")):
        r = best_runs[opt]
        for j in groups:
            series = r.metrics(f"train_loss_g{j}")
            ax.plot(
                [s for s, _ in series],
                [v for _, v in series],
                color=cmap(j / max(1, groups[-1])),
                label=f"group {j}"
                + (" (most frequent)" if j == frequent else " (rarest)" if j == rare else ""),
            )
        ax.set_title(
            f"{'SGD' if opt == 'sgd' else 'Adam'} (best lr {numbers[f'{opt}_best_lr']:g}): loss per class-frequency group"
        )
        ax.set_xlabel("step")
        ax.set_ylabel("training loss of the group")
        ax.axhline(chance, color="gray", ls=":", lw=1, label="log C (uniform prediction)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    ymax = max(max(v for _, v in best_runs[o].metrics(f"train_loss_g{j}")) for o in best_runs for j in groups)
    for ax in axes[:2]:
        ax.set_ylim(0, ymax * 1.05)
    ax = axes[2]
    for opt, color in (("sgd", "C3"), ("adagrad", "C0")):
        w = sparse_best[opt].model.weight.detach().reshape(-1)
        err = ((w - w_star) ** 2).numpy()
        ax.loglog(
            freq + 1e-4,
            err + 1e-12,
            "o",
            ms=4,
            color=color,
            alpha=0.7,
            label=f"{'SGD' if opt == 'sgd' else 'AdaGrad'} (lr {numbers[f'sparse_{opt}_best_lr']:g})",
        )
    ax.set_xlabel("feature activation frequency")
    ax.set_ylabel("(w_j − w*_j)² after training")
    ax.set_title(f"rare features: {cfg['sparse_steps']} steps, batch 32")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    ctx.save_figure(fig, "heavy_tail")

    g_sgd, g_adam = numbers["sgd_group_loss"], numbers["adam_group_loss"]
    ratio = gap["sgd"] / max(gap["adam"], 1e-12)
    rare_ratio = numbers["sparse_sgd_rare_error"] / max(numbers["sparse_adagrad_rare_error"], 1e-12)
    claims = [
        Claim(
            "On heavy-tailed classes SGD stalls on the rare classes while Adam makes progress on them.",
            ratio >= float(cfg["min_ratio"]),
            f"rarest minus most frequent group's loss at the end: SGD {gap['sgd']:.2f}, Adam {gap['adam']:.2f} "
            f"(SGD's gap is {ratio:.2f}x Adam's); rarest group: SGD {g_sgd[str(rare)]:.2f}, Adam "
            f"{g_adam[str(rare)]:.2f} (from {start:.2f} at step 0)",
        ),
        Claim(
            "SGD does make progress on the frequent classes (its problem is the tail, not the head).",
            g_sgd[str(frequent)] < 0.5 * chance and g_sgd[str(frequent)] <= 1.2 * g_adam[str(frequent)],
            f"most frequent group's loss: SGD {g_sgd[str(frequent)]:.3f}, Adam {g_adam[str(frequent)]:.3f} "
            f"(log C = {chance:.2f})",
        ),
        Claim(
            "AdaGrad's per-coordinate steps beat SGD on rarely active features.",
            rare_ratio >= 2.0,
            f"squared error on the rarer half of the features: SGD {numbers['sparse_sgd_rare_error']:.3g}, "
            f"AdaGrad {numbers['sparse_adagrad_rare_error']:.3g} (ratio {rare_ratio:.1f}); frequent half: SGD "
            f"{numbers['sparse_sgd_frequent_error']:.3g}, AdaGrad {numbers['sparse_adagrad_frequent_error']:.3g}",
        ),
    ]
    return numbers, claims


_COMMON = {
    "classes": 1024,
    "samples": 16384,
    "dim": 32,
    "noise": 3.0,
    "batch_size": 512,
    "eval_every": 25,
    "sgd_lrs": [1.0, 3.0, 10.0],
    "adam_lrs": [3e-3, 1e-2, 3e-2],
    "min_ratio": 1.5,
    "sparse_n": 2000,
    "sparse_d": 100,
    "sparse_sgd_lrs": [0.01, 0.03, 0.1, 0.3],
    "sparse_adagrad_lrs": [0.1, 0.3, 1.0],
}

register(
    Study(
        name="heavy-tail",
        description="SGD vs Adam per class-frequency group on Zipf classes; SGD vs AdaGrad on rare features.",
        slide="seed 002: Kunstner et al. 2024, 'Heavy-Tailed Class Imbalance and Why Adam Outperforms Gradient "
        "Descent on Language Models'; AdaGrad on rare features",
        quick={**_COMMON, "steps": 300, "sparse_steps": 600, "seeds": 1},
        full={**_COMMON, "steps": 1000, "sparse_steps": 2000, "seeds": 1},
        run=run,
    )
)
