"""Loss landscapes by projection on a line and on a plane (Li et al. 2018).

Seed 002, «Проекция функции потерь нейронной сети на прямую» / «на плоскость»: the loss along a filter-normalized
random direction around the initial point and around the trained point, for an MLP trained without and with dropout
0.2; the loss on the plane of two such directions; and the seed's ResNet-56 picture at CPU size — the same plane for a
deep MLP with and without skip connections. In high dimension two random directions are nearly orthogonal, as the
slide says; the study reports their cosine.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import nn

from descentlab import landscape, tasks
from descentlab.studies import Claim, Study, StudyContext, register


class DeepMLP(nn.Module):
    """``depth`` hidden ReLU layers of ``width``, with or without identity skip connections around each."""

    def __init__(
        self, d_in: int = 40, classes: int = 10, depth: int = 12, width: int = 64, skip: bool = True
    ):
        super().__init__()
        self.skip = skip
        self.inp = nn.Linear(d_in, width)
        self.blocks = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.out = nn.Linear(width, classes)
        if not skip:  # without skips the plain net needs He init to train at all (see the init-depth study)
            for b in self.blocks:
                nn.init.kaiming_normal_(b.weight, nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.inp(x))
        for b in self.blocks:
            h = h + torch.relu(b(h)) if self.skip else torch.relu(b(h))
        return self.out(h)


def mlp(dropout: float) -> nn.Module:
    """The MNIST-1D MLP 40-100-100-10 with optional dropout after each hidden layer."""
    layers: list[nn.Module] = []
    d = 40
    for _ in range(2):
        layers += [nn.Linear(d, 100), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout > 0 else [])
        d = 100
    return nn.Sequential(*layers, nn.Linear(d, 10))


def roughness(loss: np.ndarray) -> float:
    """Mean absolute discrete Laplacian of log-loss over the grid's interior (0 for a flat or log-linear surface)."""
    L = np.log(np.maximum(loss, 1e-12))
    lap = L[2:, 1:-1] + L[:-2, 1:-1] + L[1:-1, 2:] + L[1:-1, :-2] - 4 * L[1:-1, 1:-1]
    return float(np.abs(lap).mean())


def run(ctx: StudyContext, cfg: dict[str, Any]) -> tuple[dict[str, Any], list[Claim]]:
    """Train the four models, project their landscapes, plot and check the claims."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    base = tasks.get("mnist1d_mlp")
    data = tuple(t[: int(cfg["samples"])] for t in base.train_data)
    points, grid = int(cfg["points"]), int(cfg["grid"])
    numbers: dict[str, Any] = {"lines": {}, "planes": {}}
    lines = {}
    for p in (0.0, float(cfg["dropout"])):
        task = dataclasses.replace(
            base, model_factory=lambda seed, p=p: mlp(p), name=f"mnist1d-mlp-dropout{p:g}"
        )
        init = task.make_model(0)
        run_ = ctx.train(
            task,
            optimizer="adam",
            lr=1e-3,
            steps=int(cfg["steps"]),
            batch_size=100,
            eval_every=int(cfg["steps"]) // 4,
            seed=0,
            device="cpu",
        )
        for where, model in (("init", init), ("final", run_.model)):
            res = landscape.line(model, task.outputs_loss, data, span=(-1.0, 1.0), points=points, seed=0)
            lines[(p, where)] = res
            numbers["lines"][f"dropout {p:g}/{where}"] = {
                "center": float(res.loss[points // 2]),
                "max": float(res.loss.max()),
            }
        numbers["lines"][f"dropout {p:g}/test_accuracy"] = run_.final["accuracy"]
    planes = {}
    for skip in (True, False):
        task = dataclasses.replace(
            base,
            model_factory=lambda seed, s=skip: DeepMLP(depth=int(cfg["depth"]), skip=s),
            name=f"mnist1d-deep{cfg['depth']}-{'skip' if skip else 'noskip'}",
        )
        run_ = ctx.train(
            task,
            optimizer="adam",
            lr=1e-3,
            steps=int(cfg["steps"]),
            batch_size=100,
            eval_every=int(cfg["steps"]) // 4,
            seed=0,
            device="cpu",
        )
        res = landscape.plane(run_.model, task.outputs_loss, data, points=(grid, grid), seed=0)
        planes[skip] = res
        numbers["planes"]["skip" if skip else "no skip"] = {
            "center": float(res.loss[grid // 2, grid // 2]),
            "mean": float(res.loss.mean()),
            "roughness": roughness(res.loss),
            "cosine": res.cosine,
            "train_loss": run_.final["train_loss"],
            "test_accuracy": run_.final["accuracy"],
        }

    fig, axes = plt.subplots(1, 4, figsize=(22, 5.0), constrained_layout=True)
    for ax, where in zip(axes[:2], ("init", "final")):
        for p in (0.0, float(cfg["dropout"])):
            res = lines[(p, where)]
            ax.plot(res.alphas, res.loss, label="no dropout" if p == 0 else f"dropout {p:g}")
        ax.set_yscale("log")
        ax.set_xlabel("α along a filter-normalized random direction")
        ax.set_ylabel("training loss")
        ax.set_title(
            f"line through the {'initial' if where == 'init' else 'trained'} point"
            + ("\n(the same network: dropout has no parameters)" if where == "init" else "")
        )
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    lo = min(float(r.loss.min()) for r in planes.values())
    hi = max(float(r.loss.max()) for r in planes.values())
    levels = np.geomspace(max(lo, 1e-3), hi, 30)
    for ax, skip in zip(axes[2:], (True, False)):
        res = planes[skip]
        A, B = np.meshgrid(res.alphas, res.betas, indexing="ij")
        cs = ax.contourf(A, B, res.loss, levels=levels, cmap="viridis", norm=LogNorm())
        ax.contour(A, B, res.loss, levels=levels[::3], colors="k", linewidths=0.3)
        n = numbers["planes"]["skip" if skip else "no skip"]
        ax.set_title(
            f"{cfg['depth']}-layer MLP {'with' if skip else 'without'} skip connections\n"
            f"roughness {n['roughness']:.3f}, cos(d₁, d₂) = {n['cosine']:.3f}",
            fontsize=10,
        )
        ax.set_xlabel("α (d₁)")
        ax.set_ylabel("β (d₂)")
    fig.colorbar(cs, ax=axes[2:], label="training loss (log scale, same levels)")
    ctx.save_figure(fig, "loss_landscape")

    s, ns = numbers["planes"]["skip"], numbers["planes"]["no skip"]
    cosines = [s["cosine"], ns["cosine"]]
    claims = [
        Claim(
            "Without skip connections the loss surface is sharper and more chaotic than with them.",
            ns["roughness"] > 1.3 * s["roughness"] and ns["mean"] > 1.3 * s["mean"],
            f"roughness (mean |Laplacian of log-loss|): no skip {ns['roughness']:.3f}, skip {s['roughness']:.3f}; "
            f"mean loss over the plane: {ns['mean']:.3g} vs {s['mean']:.3g} (centers {ns['center']:.3f}, "
            f"{s['center']:.3f})",
        ),
        Claim(
            "Two random directions in a high-dimensional parameter space are nearly orthogonal.",
            max(abs(c) for c in cosines) < 0.05,
            "cos(d₁, d₂) = " + ", ".join(f"{c:.4f}" for c in cosines),
        ),
    ]
    return numbers, claims


register(
    Study(
        name="loss-landscape",
        description="Line and plane projections (Li et al.): with/without dropout; deep MLP with/without skips.",
        slide="seed 002: 'Проекция функции потерь нейронной сети на прямую / на плоскость' (Li et al. 2018)",
        quick={
            "steps": 1500,
            "dropout": 0.2,
            "depth": 12,
            "samples": 1000,
            "points": 41,
            "grid": 21,
            "seeds": 1,
        },
        full={
            "steps": 3000,
            "dropout": 0.2,
            "depth": 20,
            "samples": 4000,
            "points": 51,
            "grid": 41,
            "seeds": 1,
        },
        run=run,
    )
)
