"""Loss landscapes by projection on a line and on a plane (Li et al. 2018), with and without dropout and skips.

Seed 002, "Проекция функции потерь нейронной сети на прямую / на плоскость": L(a) = L(w0 + a w1) around the initial
point and around the final point, for a network trained without dropout and with dropout 0.2; L(a, b) =
L(w0 + a w1 + b w2) on a plane of two random filter-normalized Gaussian directions, which in high dimension are
nearly orthogonal; and the seed's figures 13/14, "The loss surface of ResNet-56 without / with skip connections",
here at CPU size: a residual MLP of 20 linear layers (BatchNorm, ReLU) on MNIST-1D, trained with and without its
identity shortcuts, and a shallow plain net of the same kind, projected on the same kind of plane over the same
span. Every architecture (and each dropout setting) gets its own learning rate, tuned on tuning seeds by the final
training loss; each claim is judged per evaluation seed.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch
from torch import nn

from descentlab import landscape, tasks
from descentlab.studies import Study, StudyContext, register
from descentlab.studies.claims import Measurement, Prediction, Tuned, eval_seeds, tune, tuning_seeds
from descentlab.studies.tables import PopulationScore


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


def line_rise(loss: np.ndarray, alphas: np.ndarray) -> float:
    """How much a line projection rises from its centre to its ends: mean(L(a_first), L(a_last)) - L(0)."""
    f, a = np.asarray(loss, dtype=float), np.asarray(alphas, dtype=float)
    if f.ndim != 1 or f.shape != a.shape or len(f) < 3:
        raise ValueError(f"loss and alphas must be 1-D of the same length >= 3, got {f.shape} and {a.shape}")
    mid = int(np.argmin(np.abs(a)))
    if not np.isclose(a[mid], 0.0, atol=1e-12):
        raise ValueError("the alphas must include 0 (the trained point)")
    return float(0.5 * (f[0] + f[-1]) - f[mid])


_LI = "Li et al. 2018, Fig. 5 and Sec. 6 (ResNet-56 with/without skip connections)"
PREDICTIONS = (
    Prediction(
        "skip_more_convex",
        "Without skip connections the deep net's loss surface is chaotic; with skip connections it is smooth and "
        "nearly convex.",
        f"seed 002, slide 'Проекция функции потерь нейронной сети на плоскость' (Figs. 13/14); {_LI}",
        "share of the plane's grid points with a negative finite-difference curvature (Li et al.'s "
        "|lambda_min/lambda_max| map, its sign): 20-layer net without skips - the same net with skips, per seed, "
        "the two compared at matched training loss (the net that ends lower is taken where its training loss first "
        "reaches the other's final loss)",
        ">",
        0.0,
        "any positive difference",
        version=3,
    ),
    Prediction(
        "depth_makes_chaotic",
        "Without skip connections the loss surface goes from nearly convex to chaotic as the network gets deeper.",
        f"{_LI}; Li et al. 2018, Sec. 6.1 ('the transition from nearly convex to chaotic' with depth)",
        "non-convex share of the plane: 20-layer plain net - shallow plain net (4 layers), per seed, at matched "
        "training loss (as skip_more_convex)",
        ">",
        0.0,
        "any positive difference",
        version=3,
    ),
    Prediction(
        "dropout_wider",
        "Around the final point the network trained with dropout 0.2 sits in a wider minimum than without dropout.",
        "seed 002, slides 'Проекция функции потерь нейронной сети на прямую' (No Dropout / Dropout 0.2, line "
        "projection around the final point) and 'Ширина локальных минимумов'",
        "rise of the final-point line projection L(±1) - L(0) (filter-normalized Gaussian direction) without "
        "dropout / with dropout, per seed",
        ">",
        1.0,
        "a ratio above 1: the no-dropout minimum is narrower",
        scale="log",
        version=2,
    ),
)


MATCHED = {"skip_more_convex": ("plain", "skip"), "depth_makes_chaotic": ("plain", "shallow")}
"""The deep-net pairs compared at matched training loss (predictions v2)."""


def _stop_below(level: float) -> Any:
    """Stop a run at the first evaluation whose training loss is <= ``level`` (``level`` is in the closure, so two
    levels are two trainings in the study's run ids)."""
    return lambda m: m.get("train_loss", math.inf) <= level


def _band(ax: Any, x: np.ndarray, ys: np.ndarray, label: str, color: str, style: str = "-") -> None:
    ax.plot(x, ys.mean(0), style, color=color, label=label)
    if len(ys) > 1:
        ax.fill_between(x, ys.min(0), ys.max(0), color=color, alpha=0.2)


def run(ctx: StudyContext, cfg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Measurement]]:
    """Tune each net's lr, train it on every seed, project its loss on lines and planes, draw the seed's figures."""
    base = tasks.get("mnist1d_mlp")
    crit = base.outputs_loss
    data = tuple(t[: int(cfg["samples"])] for t in base.train_data)
    seeds, tseeds = eval_seeds(cfg), tuning_seeds(cfg)
    span, points, grid = float(cfg["span"]), int(cfg["points"]), int(cfg["grid"])
    plane_span = ((-span, span), (-span, span))
    drops = (0.0, float(cfg["dropout"]))
    width = int(cfg["width"])
    arch = {
        "skip": (int(cfg["blocks"]), True),
        "plain": (int(cfg["blocks"]), False),
        "shallow": (int(cfg["shallow_blocks"]), False),
    }
    nets: dict[str, Any] = {}
    for p in drops:
        nets[f"dropout {p:g}"] = dataclasses.replace(
            base, model_factory=lambda s, p=p: dropout_mlp(dropout=p), name=f"mnist1d_mlp_dropout{p:g}"
        )
    for key, (blocks, skip) in arch.items():
        nets[key] = dataclasses.replace(
            base,
            model_factory=lambda s, b=blocks, k=skip: ResidualMLP(b, width, k),
            name=f"mnist1d_resmlp{blocks}{'' if skip else '_noskip'}",
        )

    def train(key: str, lr: float, seed: int, level: float | None = None) -> Any:
        """One run to its end, or (``level``) the same run stopped at the first evaluation (every ``match_every``
        steps) where its training loss is <= ``level``: the same trajectory, cut at a matched loss."""
        if key.startswith("dropout"):
            kw = {"optimizer": "adam", "steps": int(cfg["steps"])}
        else:
            kw = {"optimizer": "sgd", "hparams": {"momentum": 0.9}, "steps": int(cfg["deep_steps"])}
        every = kw["steps"]
        if level is not None:
            every = int(cfg["match_every"])
            kw.update(stop_when=_stop_below(level), schedule_steps=kw["steps"])
        return ctx.train(nets[key], lr=lr, batch_size=100, eval_every=every, seed=seed, device="cpu", **kw)

    def score(key: str) -> Any:  # the grid x tuning seeds as one population (descentlab.train_many)
        if key.startswith("dropout"):
            kw = {"optimizer": "adam", "steps": int(cfg["steps"])}
        else:
            kw = {"optimizer": "sgd", "hparams": {"momentum": 0.9}, "steps": int(cfg["deep_steps"])}
        return PopulationScore(
            ctx, nets[key], kw.pop("optimizer"), lambda r: float(r.final["train_loss"]), batch_size=100,
            eval_every=kw["steps"], device="cpu", keep_model=False, save_final=False, **kw,
        )  # fmt: skip

    tuned: dict[str, Tuned] = {}
    for key in nets:
        grid_ = cfg["lrs"] if key.startswith("dropout") else cfg["deep_lrs"]
        tuned[key] = tune(score(key), [float(v) for v in grid_], tseeds, metric="final training loss")

    numbers: dict[str, Any] = {"parameters": {}, "tuned_lr": {k: t.to_dict() for k, t in tuned.items()}}
    cosines: list[float] = []
    lines: dict[tuple[float, str], list[np.ndarray]] = {}
    planes: dict[str, Any] = {}
    rows: dict[str, list[dict[str, float]]] = {k: [] for k in nets}
    alphas = np.zeros(0)
    matched: dict[str, list[dict[str, float]]] = {c: [] for c in MATCHED}
    for seed in seeds:
        for p in drops:
            key = f"dropout {p:g}"
            r = train(key, tuned[key].value, seed)
            start = nets[key].make_model(seed)  # the same initial point train() started from
            for where, model in (("start", start), ("final", r.model)):
                res = landscape.line(model, crit, data, span=(-span, span), points=points, seed=100 + seed)
                lines.setdefault((p, where), []).append(res.loss)
                alphas = res.alphas
            final = lines[(p, "final")][-1]
            rows[key].append(
                {
                    "test_accuracy": r.final["accuracy"],
                    "train_loss": r.final["train_loss"],
                    "line_argmin_final": float(alphas[int(np.argmin(final))]),
                    "line_rise_final": line_rise(final, alphas),
                    "line_range_start": float(np.ptp(lines[(p, "start")][-1])),
                }
            )
            if seed == seeds[0]:
                planes[key] = landscape.plane(
                    r.model, crit, data, span=plane_span, points=(grid, grid), seed=200
                )
                cosines.append(planes[key].cosine)
                numbers["parameters"][key] = sum(q.numel() for q in r.model.parameters())
        ends: dict[str, Any] = {}
        for key in arch:
            r = ends[key] = train(key, tuned[key].value, seed)
            pl = landscape.plane(r.model, crit, data, span=plane_span, points=(grid, grid), seed=300 + seed)
            cosines.append(pl.cosine)
            rows[key].append(
                {
                    "test_accuracy": r.final["accuracy"],
                    "train_loss": r.final["train_loss"],
                    "nonconvex_fraction": nonconvex_fraction(pl.loss, pl.alphas, pl.betas),
                    "local_minima": local_minima(pl.loss),
                    "log_roughness": log_roughness(pl.loss),
                    "loss_min": float(pl.loss.min()),
                    "loss_max": float(pl.loss.max()),
                }
            )
            if seed == seeds[0]:
                planes[key] = pl
                numbers["parameters"][key] = sum(q.numel() for q in r.model.parameters())
        # Matched training loss (predictions v2): of each compared pair, the net that ends lower is taken where its
        # training loss first reaches the other's final loss; the other stays at its end.
        for claim, pair in MATCHED.items():
            level = max(float(ends[k].final["train_loss"]) for k in pair)
            row: dict[str, float] = {"level": level}
            for key in pair:
                if (
                    float(ends[key].final["train_loss"]) >= level
                ):  # the higher one: its end is the matched point
                    row[f"{key}_nonconvex"] = rows[key][-1]["nonconvex_fraction"]
                    row[f"{key}_loss"], row[f"{key}_step"] = level, float(ends[key].final["step"])
                    continue
                r = train(key, tuned[key].value, seed, level=level)
                pl = landscape.plane(
                    r.model, crit, data, span=plane_span, points=(grid, grid), seed=300 + seed
                )
                cosines.append(pl.cosine)
                row[f"{key}_nonconvex"] = nonconvex_fraction(pl.loss, pl.alphas, pl.betas)
                row[f"{key}_loss"], row[f"{key}_step"] = float(r.final["train_loss"]), float(r.final["step"])
            matched[claim].append(row)
    for key, rs in rows.items():
        numbers[key] = {k: [row[k] for row in rs] for k in rs[0]}
    numbers["matched"] = {c: {k: [row[k] for row in rs] for k in rs[0]} for c, rs in matched.items()}
    numbers["cosines"] = cosines
    numbers["max_abs_cosine"] = float(np.max(np.abs(cosines)))

    nc = {k: numbers[k]["nonconvex_fraction"] for k in arch}
    d0, d1 = (f"dropout {p:g}" for p in drops)
    rise = {k: numbers[k]["line_rise_final"] for k in (d0, d1)}
    step = 2 * span / (points - 1)
    ctx.check(
        "random directions nearly orthogonal",
        "two random Gaussian directions in a high-dimensional space: |cos(d1, d2)| < 0.05 for every plane",
        numbers["max_abs_cosine"] < 0.05,
        f"max |cos| over {len(cosines)} planes {numbers['max_abs_cosine']:.4f} (parameters: "
        + ", ".join(f"{k} {v}" for k, v in numbers["parameters"].items())
        + ")",
    )
    argmins = numbers[d0]["line_argmin_final"] + numbers[d1]["line_argmin_final"]
    ctx.check(
        "final point is the line's minimum",
        "every final-point line projection has its minimum within one grid step of alpha = 0",
        all(abs(a) <= step + 1e-9 for a in argmins),
        f"argmin alpha {', '.join(f'{a:+.3f}' for a in argmins)} (grid step {step:.3f})",
    )

    _figures(ctx, cfg, alphas, lines, planes, drops, nc, numbers, len(seeds))

    def fmt(xs: list[float]) -> str:
        return ", ".join(f"{x:.3g}" for x in xs)

    def reason(*keys: str) -> str | None:
        return "; ".join(tuned[k].note(f"{k} lr") for k in keys if not tuned[k].bracketed) or None

    def ev(*keys: str) -> str:
        return "; ".join(tuned[k].note(f"{k} lr") for k in keys)

    mt = numbers["matched"]

    def at_matched(claim: str, a: str, b: str, label_a: str, label_b: str) -> Measurement:
        m = mt[claim]
        return Measurement(
            [x - y for x, y in zip(m[f"{a}_nonconvex"], m[f"{b}_nonconvex"])],
            f"at matched training loss {fmt(m['level'])}: non-convex share {label_a} {fmt(m[f'{a}_nonconvex'])} "
            f"(loss {fmt(m[f'{a}_loss'])}, step {fmt(m[f'{a}_step'])}) vs {label_b} {fmt(m[f'{b}_nonconvex'])} "
            f"(loss {fmt(m[f'{b}_loss'])}, step {fmt(m[f'{b}_step'])}); at their ends {fmt(nc[a])} vs "
            f"{fmt(nc[b])} (training loss {fmt(numbers[a]['train_loss'])} vs {fmt(numbers[b]['train_loss'])}); "
            + ev(a, b),
            inconclusive=reason(a, b),
        )

    deep, shallow = 2 * int(cfg["blocks"]) + 2, 2 * int(cfg["shallow_blocks"]) + 2
    measured = {
        "skip_more_convex": at_matched("skip_more_convex", "plain", "skip", "without skips", "with"),
        "depth_makes_chaotic": at_matched(
            "depth_makes_chaotic", "plain", "shallow", f"{deep} layers", f"{shallow} layers"
        ),
        "dropout_wider": Measurement(
            [a / b if b > 0 else float("nan") for a, b in zip(rise[d0], rise[d1])],
            f"rise L(±{span:g}) - L(0) without dropout {fmt(rise[d0])} vs dropout {drops[1]:g} {fmt(rise[d1])}; "
            f"training loss {fmt(numbers[d0]['train_loss'])} vs {fmt(numbers[d1]['train_loss'])}; "
            + ev(d0, d1),
            inconclusive=reason(d0, d1),
        ),
    }
    return numbers, measured


def _figures(
    ctx: StudyContext,
    cfg: dict[str, Any],
    alphas: np.ndarray,
    lines: dict[tuple[float, str], list[np.ndarray]],
    planes: dict[str, Any],
    drops: tuple[float, float],
    nc: dict[str, list[float]],
    numbers: dict[str, Any],
    n_seeds: int,
) -> None:
    """The seed's line projections, plane projections, and the skip / no-skip surfaces."""
    import matplotlib.pyplot as plt

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
        ax.legend(fontsize=8, title=f"mean, min–max over {n_seeds} seeds" if n_seeds > 1 else None)
    fig.tight_layout()
    ctx.save_figure(fig, "loss_landscape_lines")

    keys = [f"dropout {p:g}" for p in drops]
    A, B = np.meshgrid(planes[keys[0]].alphas, planes[keys[0]].betas, indexing="ij")
    lo = min(float(planes[k].loss.min()) for k in keys)
    hi = max(float(planes[k].loss.max()) for k in keys)
    fig, axes = plt.subplots(1, len(keys), figsize=(6.4 * len(keys), 4.8), squeeze=False)
    fig.subplots_adjust(wspace=0.3)
    cs = None
    for ax, p, key in zip(axes[0], drops, keys):
        pl = planes[key]
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
    shown = {False: planes["plain"], True: planes["skip"]}
    lo = min(float(pl.loss.min()) for pl in shown.values())
    hi = max(float(pl.loss.max()) for pl in shown.values())
    A, B = np.meshgrid(shown[True].alphas, shown[True].betas, indexing="ij")
    depth = 2 * int(cfg["blocks"]) + 2
    for col, skip in enumerate((False, True)):
        pl = shown[skip]
        key = "with skips" if skip else "without skips"
        ax = fig.add_subplot(2, 2, col + 1, projection="3d")
        ax.plot_surface(A, B, np.log10(pl.loss), cmap="viridis", vmin=np.log10(lo), vmax=np.log10(hi), lw=0)
        ax.set_zlim(np.log10(lo), np.log10(hi))
        ax.set_xlabel("α")
        ax.set_ylabel("β")
        ax.set_zlabel("log₁₀ training loss")
        ax.set_title(f"{depth}-layer residual MLP {key}")
        ax = fig.add_subplot(2, 2, col + 3)
        cs = ax.contourf(A, B, np.log10(pl.loss), levels=np.linspace(np.log10(lo), np.log10(hi), 25))
        ax.contour(A, B, np.log10(pl.loss), levels=cs.levels[::2], colors="k", linewidths=0.3)
        ax.plot([0], [0], "r*", ms=10)
        ax.set_xlabel("α (d₁)")
        ax.set_ylabel("β (d₂)")
        share = nc["skip" if skip else "plain"]
        ax.set_title(
            f"{key}: non-convex share {share[0]:.2f} (mean of {n_seeds} seeds {np.mean(share):.2f}), "
            f"local minima {local_minima(pl.loss)}",
            fontsize=9,
        )
        fig.colorbar(cs, ax=ax, label="log₁₀ training loss (same levels)", format="%.1f")
    fig.tight_layout()
    ctx.save_figure(fig, "loss_landscape_skip")


register(
    Study(
        name="loss-landscape",
        description="Li et al. line/plane projections around init and final point, dropout, 20-layer MLP ± skips.",
        slide="seed 002: 'Проекция функции потерь нейронной сети на прямую / на плоскость' (ResNet-56 ± skips)",
        # wall s, 2026-12-07, one torch thread: quick in the 04:15 tour, full run beside one other study
        seconds=(69, 600),
        predictions=PREDICTIONS,
        versions=(
            (1, "2026-12-01", "the predictions as first declared"),
            (2, "2026-12-07", "issue 26: dropout_wider (a ratio of rises) judged on the log scale"),
            (3, "2026-12-07", "issue 26: skip_more_convex and depth_makes_chaotic at matched training loss"),
        ),
        quick={
            "dropout": 0.2,
            "lrs": [3e-3, 1e-2, 3e-2],
            "steps": 500,
            "blocks": 9,
            "shallow_blocks": 1,
            "width": 32,
            "deep_lrs": [0.005, 0.015, 0.045],
            "deep_steps": 450,
            "samples": 500,
            "span": 1.0,
            "points": 41,
            "grid": 15,
            "match_every": 5,
            "seeds": 10,
            "seed_blocks": [5, 10],
            "tuning_seeds": 3,
        },
        full={
            "dropout": 0.2,
            "lrs": [3e-3, 1e-2, 3e-2],
            "steps": 3000,
            "blocks": 9,
            "shallow_blocks": 1,
            "width": 64,
            "deep_lrs": [0.005, 0.015, 0.045],
            "deep_steps": 2000,
            "samples": 2000,
            "span": 1.0,
            "points": 61,
            "grid": 31,
            "match_every": 10,
            "seeds": 20,
            "seed_blocks": [10, 20],
            "tuning_seeds": 3,
        },
        limits={"dropout": (0.01, 0.9)},
        run=run,
    )
)
