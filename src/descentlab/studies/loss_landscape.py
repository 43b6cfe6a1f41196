"""Loss landscapes by projection on a line and on a plane (Li et al. 2018), with and without dropout and skips.

Seed 002, "Проекция функции потерь нейронной сети на прямую / на плоскость": L(a) = L(w0 + a w1) around the initial
point and around the final point, for a network trained without dropout and with dropout 0.2; L(a, b) =
L(w0 + a w1 + b w2) on a plane of two random filter-normalized Gaussian directions, which in high dimension are
nearly orthogonal; and the seed's figures 13/14, "The loss surface of ResNet-56 without / with skip connections",
here at CPU size: a residual MLP of 20 linear layers of width 64 (BatchNorm, ReLU) on MNIST-1D, trained once with
and once without its identity shortcuts, projected on the same kind of plane over the same span.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import nn

from descentlab import landscape, tasks
from descentlab.studies import Claim, Study, StudyContext, register


class ResidualMLP(nn.Module):
    """A ResNet-style MLP: stem Linear-BN-ReLU, ``blocks`` blocks of Linear-BN-ReLU-Linear-BN, a linear head.

    With ``skip=True`` a block computes relu(h + F(h)) (He et al. 2016), with ``skip=False`` relu(F(h)); the
    parameters are the same either way. 2 * blocks + 2 linear layers in all (``blocks=9``: 20 layers).
    """

    def __init__(
        self, blocks: int = 9, width: int = 64, skip: bool = True, inputs: int = 40, classes: int = 10
    ):
        super().__init__()
        if not isinstance(blocks, int) or blocks < 1 or not isinstance(width, int) or width < 1:
            raise ValueError(
                f"ResidualMLP: need integer blocks >= 1 and width >= 1, got {blocks!r}, {width!r}"
            )
        self.skip = bool(skip)
        self.stem = nn.Sequential(nn.Linear(inputs, width), nn.BatchNorm1d(width), nn.ReLU())
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Linear(width, width),
                nn.BatchNorm1d(width),
                nn.ReLU(),
                nn.Linear(width, width),
                nn.BatchNorm1d(width),
            )
            for _ in range(blocks)
        )
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for block in self.blocks:
            h = torch.relu(h + block(h) if self.skip else block(h))
        return self.head(h)


def dropout_mlp(width: int = 100, depth: int = 2, dropout: float = 0.2, inputs: int = 40, classes: int = 10):
    """The MNIST-1D ReLU MLP with ``nn.Dropout(dropout)`` after every hidden activation (dropout 0: none)."""
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    layers: list[nn.Module] = []
    d = inputs
    for _ in range(depth):
        layers += [nn.Linear(d, width), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        d = width
    layers.append(nn.Linear(d, classes))
    return nn.Sequential(*layers)


def nonconvex_fraction(loss: np.ndarray, alphas: np.ndarray, betas: np.ndarray) -> float:
    """Share of interior grid points where the finite-difference Hessian of the surface has a negative eigenvalue.

    The 2x2 Hessian at (i, j) comes from central second differences; Li et al. 2018 (Sec. 6) map
    |lambda_min / lambda_max| of this Hessian to show where a projected surface is non-convex.
    """
    f = np.asarray(loss, dtype=float)
    if f.ndim != 2 or min(f.shape) < 3:
        raise ValueError(f"loss must be a 2-D grid of at least 3 x 3 points, got shape {f.shape}")
    ha, hb = float(alphas[1] - alphas[0]), float(betas[1] - betas[0])
    faa = (f[2:, 1:-1] - 2 * f[1:-1, 1:-1] + f[:-2, 1:-1]) / ha**2
    fbb = (f[1:-1, 2:] - 2 * f[1:-1, 1:-1] + f[1:-1, :-2]) / hb**2
    fab = (f[2:, 2:] - f[2:, :-2] - f[:-2, 2:] + f[:-2, :-2]) / (4 * ha * hb)
    half_trace = 0.5 * (faa + fbb)
    lam_min = half_trace - np.sqrt(np.maximum(half_trace**2 - (faa * fbb - fab**2), 0.0))
    return float((lam_min < 0).mean())


def local_minima(loss: np.ndarray) -> int:
    """Number of interior grid points lower than all 8 neighbours (a roughness count)."""
    f = np.asarray(loss, dtype=float)
    c = f[1:-1, 1:-1]
    lower = np.ones_like(c, dtype=bool)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            if di or dj:
                lower &= c < f[1 + di : f.shape[0] - 1 + di, 1 + dj : f.shape[1] - 1 + dj]
    return int(lower.sum())


def log_roughness(loss: np.ndarray) -> float:
    """Mean absolute discrete Laplacian of the log-loss over the grid's interior (0 for a log-linear surface)."""
    f = np.log(np.maximum(np.asarray(loss, dtype=float), 1e-300))
    lap = f[2:, 1:-1] + f[:-2, 1:-1] + f[1:-1, 2:] + f[1:-1, :-2] - 4 * f[1:-1, 1:-1]
    return float(np.abs(lap).mean())


def _band(ax: Any, x: np.ndarray, ys: np.ndarray, label: str, color: str, style: str = "-") -> None:
    ax.plot(x, ys.mean(0), style, color=color, label=label)
    if len(ys) > 1:
        ax.fill_between(x, ys.min(0), ys.max(0), color=color, alpha=0.2)


def run(ctx: StudyContext, cfg: dict[str, Any]) -> tuple[dict[str, Any], list[Claim]]:
    """Train the nets, project their losses on lines and planes, draw the seed's figures and check the claims."""
    import matplotlib.pyplot as plt

    base = tasks.get("mnist1d_mlp")
    crit = base.outputs_loss
    data = tuple(t[: int(cfg["samples"])] for t in base.train_data)
    seeds, span, points, grid = int(cfg["seeds"]), float(cfg["span"]), int(cfg["points"]), int(cfg["grid"])
    # The skip / no-skip comparison gets its own seed count: one no-skip net's non-convex share varies with its
    # trajectory (0.10-0.38 over seeds on a 17 x 17 grid, while every residual net gives 0.00), so the claim is
    # judged on a mean over seeds even in the quick variant (the deep nets train in seconds).
    deep_seeds = int(cfg.get("deep_seeds", seeds))
    if deep_seeds < 1:
        raise ValueError(f"deep_seeds must be a positive integer, got {cfg.get('deep_seeds')!r}")
    plane_span = ((-span, span), (-span, span))
    drops = [float(p) for p in cfg["dropouts"]]
    cosines: list[float] = []
    numbers: dict[str, Any] = {"parameters": {}}

    # 1. The MLP without and with dropout: lines around the initial and the final point, a plane at the end.
    lines: dict[tuple[float, str], list[np.ndarray]] = {}
    planes: dict[float, Any] = {}
    for p in drops:
        task = dataclasses.replace(
            base, model_factory=lambda s, p=p: dropout_mlp(dropout=p), name=f"mnist1d_mlp_dropout{p:g}"
        )
        rows = []
        for seed in range(seeds):
            r = ctx.train(
                task,
                optimizer="adam",
                lr=float(cfg["lr"]),
                steps=int(cfg["steps"]),
                batch_size=100,
                eval_every=int(cfg["steps"]),
                seed=seed,
                device="cpu",
            )
            start = task.make_model(seed)  # the same initial point train() started from
            for where, model in (("start", start), ("final", r.model)):
                res = landscape.line(model, crit, data, span=(-span, span), points=points, seed=100 + seed)
                lines.setdefault((p, where), []).append(res.loss)
                alphas = res.alphas
            mid = points // 2
            final = lines[(p, "final")][-1]
            rows.append(
                {
                    "test_accuracy": r.final["accuracy"],
                    "train_loss": r.final["train_loss"],
                    "line_argmin_final": float(alphas[int(np.argmin(final))]),
                    "line_rise_final": float(0.5 * (final[0] + final[-1]) - final[mid]),
                    "line_range_start": float(np.ptp(lines[(p, "start")][-1])),
                }
            )
            if seed == 0:
                planes[p] = landscape.plane(
                    r.model, crit, data, span=plane_span, points=(grid, grid), seed=200
                )
                cosines.append(planes[p].cosine)
                numbers["parameters"][f"dropout {p:g}"] = sum(q.numel() for q in r.model.parameters())
        numbers[f"dropout {p:g}"] = {k: float(np.mean([row[k] for row in rows])) for k in rows[0]}

    # 2. The deep residual MLP with and without skip connections: the same plane span and grid.
    skips: dict[bool, Any] = {}
    for skip in (False, True):
        task = dataclasses.replace(
            base,
            model_factory=lambda s, skip=skip: ResidualMLP(int(cfg["blocks"]), int(cfg["width"]), skip),
            name=f"mnist1d_resmlp{'' if skip else '_noskip'}",
        )
        rows = []
        for seed in range(deep_seeds):
            r = ctx.train(
                task,
                optimizer="sgd",
                lr=float(cfg["deep_lr"]),
                hparams={"momentum": 0.9},
                steps=int(cfg["deep_steps"]),
                batch_size=100,
                eval_every=int(cfg["deep_steps"]),
                seed=seed,
                device="cpu",
            )
            pl = landscape.plane(r.model, crit, data, span=plane_span, points=(grid, grid), seed=300 + seed)
            cosines.append(pl.cosine)
            rows.append(
                {
                    "test_accuracy": r.final["accuracy"],
                    "train_loss": r.final["train_loss"],
                    "nonconvex_fraction": nonconvex_fraction(pl.loss, pl.alphas, pl.betas),
                    "local_minima": local_minima(pl.loss),
                    "log_roughness": log_roughness(pl.loss),
                    "loss_min": float(pl.loss.min()),
                    "loss_max": float(pl.loss.max()),
                    "log10_loss_range": float(np.log10(pl.loss.max() / pl.loss.min())),
                }
            )
            if seed == 0:
                skips[skip] = pl
                numbers["parameters"]["residual" if skip else "no skip"] = sum(
                    q.numel() for q in r.model.parameters()
                )
        key = "with skips" if skip else "without skips"
        numbers[key] = {k: float(np.mean([row[k] for row in rows])) for k in rows[0]}
        numbers[key]["nonconvex_fraction_per_seed"] = [row["nonconvex_fraction"] for row in rows]
    numbers["cosines"] = cosines
    numbers["max_abs_cosine"] = float(np.max(np.abs(cosines)))

    # Figures: the seed's line projections, plane projections, and the skip / no-skip surfaces.
    colors = {p: f"C{i}" for i, p in enumerate(drops)}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    for ax, where, title in zip(
        axes,
        ("start", "final"),
        (
            "line projection around the starting point\n(dropout has no parameters: the same network)",
            "line projection around the final point",
        ),
    ):
        for p in drops:
            name = "no dropout" if p == 0 else f"dropout {p:g}"
            style = "-" if p == drops[0] else "--"
            _band(ax, alphas, np.array(lines[(p, where)]), name, colors[p], style)
        ax.set_yscale("log")
        ax.set_xlabel("α  (L(α) = L(w₀ + α w₁), w₁ filter-normalized Gaussian)")
        ax.set_ylabel("training loss")
        ax.set_title(title, fontsize=11)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, title=f"mean, min–max over {seeds} seeds" if seeds > 1 else None)
    fig.tight_layout()
    ctx.save_figure(fig, "loss_landscape_lines")

    A, B = np.meshgrid(planes[drops[0]].alphas, planes[drops[0]].betas, indexing="ij")
    lo = min(float(pl.loss.min()) for pl in planes.values())
    hi = max(float(pl.loss.max()) for pl in planes.values())
    fig, axes = plt.subplots(1, len(drops), figsize=(6.4 * len(drops), 4.8), squeeze=False)
    fig.subplots_adjust(wspace=0.3)
    for ax, p in zip(axes[0], drops):
        pl = planes[p]
        cs = ax.contourf(A, B, np.log10(pl.loss), levels=np.linspace(np.log10(lo), np.log10(hi), 25))
        ax.contour(A, B, np.log10(pl.loss), levels=cs.levels[::2], colors="k", linewidths=0.3)
        ax.plot([0], [0], "r*", ms=10)
        ax.set_xlabel("α (d₁)")
        ax.set_ylabel("β (d₂)")
        name = "no dropout" if p == 0 else f"dropout {p:g}"
        ax.set_title(f"{name}: L(ŵ + α d₁ + β d₂)\ncos(d₁, d₂) = {pl.cosine:.4f}", fontsize=10)
    fig.colorbar(cs, ax=axes[0].tolist(), label="log₁₀ training loss (same levels)", format="%.1f")
    ctx.save_figure(fig, "loss_landscape_planes")

    fig = plt.figure(figsize=(12, 10))
    lo = min(float(pl.loss.min()) for pl in skips.values())
    hi = max(float(pl.loss.max()) for pl in skips.values())
    A, B = np.meshgrid(skips[True].alphas, skips[True].betas, indexing="ij")
    for col, skip in enumerate((False, True)):
        pl = skips[skip]
        key = "with skips" if skip else "without skips"
        ax = fig.add_subplot(2, 2, col + 1, projection="3d")
        ax.plot_surface(A, B, np.log10(pl.loss), cmap="viridis", vmin=np.log10(lo), vmax=np.log10(hi), lw=0)
        ax.set_zlim(np.log10(lo), np.log10(hi))
        ax.set_xlabel("α")
        ax.set_ylabel("β")
        ax.set_zlabel("log₁₀ training loss")
        depth = 2 * int(cfg["blocks"]) + 2
        ax.set_title(f"{depth}-layer residual MLP {key}")
        ax = fig.add_subplot(2, 2, col + 3)
        cs = ax.contourf(A, B, np.log10(pl.loss), levels=np.linspace(np.log10(lo), np.log10(hi), 25))
        ax.contour(A, B, np.log10(pl.loss), levels=cs.levels[::2], colors="k", linewidths=0.3)
        ax.plot([0], [0], "r*", ms=10)
        ax.set_xlabel("α (d₁)")
        ax.set_ylabel("β (d₂)")
        ax.set_title(
            f"{key}: non-convex share {nonconvex_fraction(pl.loss, pl.alphas, pl.betas):.2f}, "
            f"local minima {local_minima(pl.loss)}",
            fontsize=10,
        )
        fig.colorbar(cs, ax=ax, label="log₁₀ training loss (same levels)", format="%.1f")
    fig.tight_layout()
    ctx.save_figure(fig, "loss_landscape_skip")

    ns, ws = numbers["without skips"], numbers["with skips"]
    clean = numbers[f"dropout {drops[0]:g}"]
    step = 2 * span / (points - 1)
    claims = [
        Claim(
            "Two random Gaussian vectors in a high-dimensional space are nearly orthogonal (|cos(d₁, d₂)| < 0.05).",
            numbers["max_abs_cosine"] < 0.05,
            f"max |cos| over {len(cosines)} planes: {numbers['max_abs_cosine']:.4f} "
            f"(parameters: {', '.join(f'{k} {v}' for k, v in numbers['parameters'].items())})",
        ),
        Claim(
            "Without skip connections the deep net's landscape is chaotic; with skips it is smooth and nearly "
            "convex (non-convex share of the plane at least 0.1 higher without skips).",
            ns["nonconvex_fraction"] >= ws["nonconvex_fraction"] + 0.1,
            f"share of grid points with a negative finite-difference curvature, mean of {deep_seeds} seeds: "
            f"{ns['nonconvex_fraction']:.2f} without skips (per seed "
            f"{', '.join(f'{v:.2f}' for v in ns['nonconvex_fraction_per_seed'])}) vs {ws['nonconvex_fraction']:.2f} "
            f"with; grid local minima {ns['local_minima']:.1f} "
            f"vs {ws['local_minima']:.1f}; training loss at the centre {ns['train_loss']:.3f} vs "
            f"{ws['train_loss']:.3f}, test accuracy {ns['test_accuracy']:.3f} vs {ws['test_accuracy']:.3f}; "
            f"loss over the plane {ns['loss_min']:.3g}–{ns['loss_max']:.3g} vs {ws['loss_min']:.3g}–"
            f"{ws['loss_max']:.3g} (the residual net's loss grows faster far from ŵ)",
        ),
        Claim(
            "Around the final point the line projection is a basin with its minimum at the trained weights.",
            all(abs(numbers[f"dropout {p:g}"]["line_argmin_final"]) <= step + 1e-9 for p in drops),
            "argmin α of the final-point line: "
            + ", ".join(
                f"dropout {p:g}: {numbers[f'dropout {p:g}']['line_argmin_final']:+.3f}" for p in drops
            )
            + f" (grid step {step:.3f}); no-dropout rise to α=±{span:g}: {clean['line_rise_final']:.2f}",
        ),
    ]
    return numbers, claims


register(
    Study(
        name="loss-landscape",
        description="Li et al. line/plane projections around init and final point, dropout, 20-layer MLP ± skips.",
        slide="seed 002: 'Проекция функции потерь нейронной сети на прямую / на плоскость' (ResNet-56 ± skips)",
        seconds=(69, 265),  # measured quick/full wall s on the 2-core CPU (tour scheduling)
        quick={
            "dropouts": [0.0, 0.2],
            "lr": 1e-2,
            "steps": 1000,
            "blocks": 9,
            "width": 64,
            "deep_lr": 0.05,
            "deep_steps": 800,
            "samples": 1000,
            "span": 1.0,
            "points": 41,
            "grid": 17,
            "seeds": 1,
            "deep_seeds": 3,
        },
        full={
            "dropouts": [0.0, 0.2],
            "lr": 1e-2,
            "steps": 3000,
            "blocks": 9,
            "width": 64,
            "deep_lr": 0.05,
            "deep_steps": 2000,
            "samples": 2000,
            "span": 1.0,
            "points": 61,
            "grid": 31,
            "seeds": 3,
            "deep_seeds": 3,
        },
        run=run,
    )
)
