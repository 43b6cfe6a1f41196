"""Mode connectivity: independently trained networks are joined by a simple curve of low loss.

Seeds 000/004 (Garipov et al. 2018, "Loss Surfaces, Mode Connectivity, and Fast Ensembling of DNNs"): the straight
segment between two minima of the l2-regularized training loss crosses a ridge, while a quadratic Bezier curve (or a
polygonal chain) with one trained bend keeps the loss near-constant. Each evaluation seed is one pair of endpoints
trained to convergence (a stationarity criterion fixed in advance, :func:`stationary`); every path is judged by its
barrier, the largest excess of the loss over the straight interpolation of the endpoint losses (:func:`barrier`).
The curves' learning rates are tuned on pairs trained from tuning seeds. The figure is the seed's: the loss on the
plane through the three control points (w1, theta, w2) with the curve drawn on it, the loss along each path, and the
loss along the curve at several stages of its training.

Every run trains through ``descentlab.train_many`` and is in the study's store: the endpoints of all pairs are one
population (the registry's Adam, :func:`fit_endpoints`); a curve is a run of the curve task
(:mod:`descentlab.tasks.curve`: its model is the curve with its trainable bend, its batches carry t, its loss is J at
the point of the curve at t), and each kind's curves are one population whose members differ by seed, the seed
picking the endpoint pair (:func:`fit_curves`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from descentlab import landscape, tasks
from descentlab.landscape.connectivity import Curve
from descentlab.landscape.projections import FlatParams
from descentlab.store import Run
from descentlab.studies import Study, StudyContext, register
from descentlab.studies.claims import Measurement, Prediction, eval_seeds, tune, tuning_seeds
from descentlab.tasks.base import Task
from descentlab.tasks.curve import CurveTask, curve_task
from descentlab.train.hooks import Callback, StepContext

KINDS = ("bezier", "polychain")
FORWARDS = {"endpoints": "stacked", "curves": "vmap"}
"""The populations' forwards, pinned: ``"auto"`` times the ways at run time, so the rounding (and, through thousands
of chaotic steps, the endpoints) would depend on the machine's load. The curve task has its own loss (no stacked
MLP)."""
NEAR_ZERO = 0.1
"""'Near-constant loss' read as: the curve's barrier is below this fraction of the straight line's (same pair)."""
STATIONARY_TOL = 0.1
"""Convergence criterion, fixed before any claim was run: an endpoint is a minimum when the full-batch gradient of its
objective J is below a tenth of the gradient at its initialization (:func:`stationary`)."""

PREDICTIONS = (
    Prediction(
        "line_barrier",
        "A direct linear path between two independently trained optima incurs high loss.",
        "seed 004, slide 'Mode Connectivity' (Garipov et al. 2018, Fig. 1)",
        "barrier of the straight segment w(t) = (1 - t) w1 + t w2, max_t [J(w(t)) - ((1 - t) J(w1) + t J(w2))] "
        "with J the l2-regularized training loss, over the endpoints' mean J; one endpoint pair per seed",
        ">",
        1.0,
        "'high loss' read as: the ridge rises above the line by more than the minima's own loss",
    ),
    Prediction(
        "bezier_near_zero",
        "A quadratic Bezier curve connects the optima along a path of near-constant loss.",
        "seed 004, slide 'Mode Connectivity' (Garipov et al. 2018, Fig. 1 middle)",
        "barrier of the trained Bezier curve / barrier of the straight segment (same pair, same J)",
        "<",
        NEAR_ZERO,
        "'near-constant' read as under a tenth of the straight line's barrier; fixed before the run",
    ),
    Prediction(
        "polychain_near_zero",
        "A polygonal chain with one bend connects the optima along a path of near-constant loss.",
        "seed 004, slide 'Mode Connectivity' (Garipov et al. 2018, Fig. 1 right)",
        "barrier of the trained polygonal chain / barrier of the straight segment (same pair, same J)",
        "<",
        NEAR_ZERO,
        "'near-constant' read as under a tenth of the straight line's barrier; fixed before the run",
    ),
)


def barrier(loss: Sequence[float], ts: Sequence[float]) -> float:
    """max over t of loss(t) - ((1 - t) loss(0) + t loss(1)) on a grid of ts running from 0 to 1 (>= 0 by t = 0)."""
    f, t = np.asarray(loss, dtype=float), np.asarray(ts, dtype=float)
    if f.ndim != 1 or f.shape != t.shape or len(f) < 2:
        raise ValueError(f"loss and ts must be 1-D of the same length >= 2, got {f.shape} and {t.shape}")
    if not (math.isclose(t[0], 0.0, abs_tol=1e-12) and math.isclose(t[-1], 1.0, abs_tol=1e-12)):
        raise ValueError(f"ts must run from 0 to 1, got {t[0]!r} .. {t[-1]!r}")
    return float(np.max(f - ((1 - t) * f[0] + t * f[-1])))


def barrier_ratio(curve_barrier: float, line_barrier: float) -> float:
    """A curve's barrier over the straight line's; nan when the line has no barrier (the ratio says nothing)."""
    return float(curve_barrier / line_barrier) if line_barrier > 0 else math.nan


def stationary(grad_norm: float, grad_norm_init: float, tol: float = STATIONARY_TOL) -> tuple[bool, float]:
    """Convergence criterion: the full-batch gradient norm of J at the endpoint is below ``tol`` times its value at the
    initialization; returns (converged, ratio)."""
    if not grad_norm_init > 0:
        raise ValueError(f"the initial gradient norm must be positive, got {grad_norm_init!r}")
    ratio = float(grad_norm / grad_norm_init)
    return bool(ratio < tol), ratio


def objective_grad_norm(task: Any, model: nn.Module, weight_decay: float) -> float:
    """||grad J|| on the whole training set, J = the task's loss + weight_decay/2 ||w||^2."""
    params = [p for p in model.parameters() if p.requires_grad]
    x, y = task.train_data[0], task.train_data[1]
    j = task.outputs_loss(model(x), y) + 0.5 * weight_decay * sum((p * p).sum() for p in params)
    grads = torch.autograd.grad(j, params)
    return float(torch.sqrt(sum((g * g).sum() for g in grads)))


def plane_basis(w1: torch.Tensor, theta: torch.Tensor, w2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthonormal u, v spanning the plane through three points: u along w2 - w1, v the rest of theta - w1."""
    u = w2 - w1
    u = u / u.norm()
    r = theta - w1
    v = r - (r @ u) * u
    if float(v.norm()) < 1e-12 * float(r.norm() + 1e-30):
        raise ValueError("the three points are collinear: no plane through them")
    return u, v / v.norm()


def fit_endpoints(
    ctx: StudyContext,
    task: Task,
    seeds: Sequence[int],
    *,
    steps: int,
    lr: float,
    weight_decay: float,
    batch_size: int = 100,
    evals: int = 10,
) -> list[Run]:
    """One run per seed, as one population of ``task`` through ``ctx.train_many``: the registry's ``adam`` on
    J = loss + weight_decay/2 ||w||^2 (Adam's coupled L2) with Garipov et al.'s schedule (``garipov``: ``lr`` for half
    the steps, then linearly down to ``lr / 100`` at 90 %, held). A callback records J on the whole training set
    (metric ``objective``) ``evals`` times, evenly spaced, for the convergence criterion."""
    if evals < 2 or steps % evals:
        raise ValueError(f"need evals >= 2 dividing steps, got steps={steps!r}, evals={evals!r}")
    x, y = task.train_data[0], task.train_data[1]

    def objective(c: StepContext) -> dict[str, float]:
        with torch.no_grad():
            sq = sum((p * p).sum() for p in c.model.parameters() if p.requires_grad)
            return {"objective": float(task.outputs_loss(c.model(x), y) + 0.5 * weight_decay * sq)}

    return ctx.train_many(
        task,
        "adam",
        [{"seed": int(s), "lr": float(lr)} for s in seeds],
        hparams={"weight_decay": weight_decay},
        schedule="garipov",
        steps=steps,
        batch_size=batch_size,
        eval_every=steps // evals,
        callbacks=[Callback(objective, every=steps // evals)],
        save_final=False,
        forward=FORWARDS["endpoints"],
    )


def fit_curves(
    ctx: StudyContext,
    task: CurveTask,
    members: Sequence[tuple[int, float]],
    *,
    steps: int,
    momentum: float = 0.9,
    snapshots: Sequence[int] = (),
    batch_size: int = 100,
    keep_model: bool = True,
) -> tuple[list[Run], dict[tuple[int, int], torch.Tensor]]:
    """Garipov et al.'s curve finding (as ``landscape.connect``: SGD with momentum on the free bend, the ``garipov``
    schedule, one t ~ U(0, 1) per step drawn from the member's seed, the curve task's mini-batches) for the
    ``(seed, lr)`` members of the curve task ``task`` (the seed picks the endpoints), as one population through
    ``ctx.train_many``; evaluated at the end only. Returns the runs and ``{(seed, step): free control points}`` at
    each step in ``snapshots`` (0: the untrained curve)."""
    snaps: dict[tuple[int, int], torch.Tensor] = {}
    if snapshots and len({s for s, _ in members}) < len(members):
        raise ValueError(
            f"snapshots are kept per seed: the members' seeds must differ, got {[s for s, _ in members]}"
        )
    for s, _ in members:
        if 0 in snapshots:
            snaps[(int(s), 0)] = task.make_model(int(s)).bends.detach().clone()
    later = sorted({int(k) for k in snapshots if 0 < int(k) <= steps})

    def snapshot(c: StepContext) -> None:
        if c.step in later:
            snaps[(int(c.model.seed), c.step)] = c.model.bends.detach().clone()  # type: ignore[union-attr]

    runs = ctx.train_many(
        task,
        "sgd",
        [{"seed": int(s), "lr": float(lr)} for s, lr in members],
        hparams={"momentum": momentum},
        schedule="garipov",
        steps=steps,
        batch_size=batch_size,
        eval_every=steps,
        callbacks=[Callback(snapshot, every=math.gcd(*later))] if later else [],
        keep_model=keep_model,
        save_final=False,
        forward=FORWARDS["curves"],
    )
    return runs, snaps


def _sq_norms(w: torch.Tensor) -> np.ndarray:
    return (w.double() ** 2).sum(-1).numpy()


def _line(a: nn.Module, b: nn.Module, crit: Any, data: Any, points: int, wd: float) -> dict[str, np.ndarray]:
    """The same along the straight segment from ``a`` to ``b``."""
    res = landscape.interpolate(a, b, crit, data, points=points)
    wa, wb = FlatParams(a).vector.double(), FlatParams(b).vector.double()
    ts = torch.as_tensor(res.alphas, dtype=torch.float64)[:, None]
    sq = _sq_norms((1 - ts) * wa + ts * wb)
    err = 1 - res.accuracy if res.accuracy is not None else np.full(len(res.alphas), np.nan)
    return {"t": res.alphas, "loss": res.loss, "J": res.loss + 0.5 * wd * sq, "error": err}


def _pair(seed: int) -> tuple[int, int]:
    """The endpoint seeds of the pair judged under evaluation (or tuning) seed ``seed``: 2 seed and 2 seed + 1."""
    return 2 * int(seed), 2 * int(seed) + 1


def run(ctx: StudyContext, cfg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Measurement]]:
    """Train the endpoint pairs, tune and train the curves, measure every path's barrier, plot the seed's figure."""
    import matplotlib.pyplot as plt

    task = tasks.get("mnist1d_mlp")
    crit = task.outputs_loss
    data = task.train_data
    wd, points = float(cfg["weight_decay"]), int(cfg["points"])
    seeds, tseeds = eval_seeds(cfg), tuning_seeds(cfg)
    all_seeds = [s for p in seeds + tseeds for s in _pair(p)]
    grad0 = {s: objective_grad_norm(task, task.make_model(s), wd) for s in all_seeds}
    ends = fit_endpoints(ctx, task, all_seeds, steps=int(cfg["steps"]), lr=float(cfg["lr"]), weight_decay=wd)
    model_of = {s: r.model for s, r in zip(all_seeds, ends)}  # type: ignore[attr-defined]
    conv = {s: stationary(objective_grad_norm(task, model_of[s], wd), grad0[s]) for s in all_seeds}
    csteps = int(cfg["curve_steps"])
    lines = {
        p: _line(model_of[_pair(p)[0]], model_of[_pair(p)[1]], crit, data, points, wd) for p in seeds + tseeds
    }
    line_barrier = {p: barrier(r["J"], r["t"]) for p, r in lines.items()}
    # One curve task per kind: a run's seed p picks the endpoint pair _pair(p); every curve cycles through the same
    # first curve_batches mini-batches of 100 (data seed 0) and draws its t from its own seed.
    run_of = dict(zip(all_seeds, ends))
    curve_tasks = {
        k: curve_task(
            task,
            {p: (model_of[_pair(p)[0]], model_of[_pair(p)[1]]) for p in seeds + tseeds},
            k,
            weight_decay=wd,
            cycle=int(cfg["curve_batches"]),
            data_seed=0,
            points=points,
            sources={p: [run_of[s].id for s in _pair(p)] for p in seeds + tseeds},
        )
        for k in KINDS
    }

    # Tuning: each kind's lr by the curve-finding objective (mean J along the curve, the curve task's evaluation) on
    # the tuning pairs; each kind's grid is one population, values added by tune() (grid extension) one at a time.
    cache: dict[tuple[str, float, int], float] = {}

    def fit(keys: list[tuple[str, float, int]]) -> None:
        for kind in dict.fromkeys(k for k, _, _ in keys):
            group = [key for key in keys if key[0] == kind]
            runs, _ = fit_curves(
                ctx, curve_tasks[kind], [(s, lr) for _, lr, s in group], steps=csteps, keep_model=False
            )
            for key, r in zip(group, runs):
                cache[key] = float(r.final["objective"]) if r.status == "finished" else math.nan

    grids = {
        "bezier": [float(v) for v in cfg["curve_lrs"]],
        "polychain": [float(v) for v in cfg["chain_lrs"]],
    }
    fit([(k, lr, s) for k in KINDS for lr in grids[k] for s in tseeds])
    tuned = {}
    for kind in KINDS:

        def score(lr: float, s: int, kind: str = kind) -> float:
            if (kind, lr, s) not in cache:
                fit([(kind, lr, s)])
            return cache[(kind, lr, s)]

        tuned[kind] = tune(score, grids[kind], tseeds, metric="mean J along the curve (tuning pairs)")

    # Evaluation: each kind on every evaluation pair at its tuned lr (one population per kind).
    stages = sorted({int(s) for s in cfg["stages"] if 0 <= int(s) <= csteps} | {csteps})
    curve_of: dict[tuple[int, str], Curve] = {}
    along: dict[tuple[int, str], dict[str, np.ndarray]] = {}
    snaps: dict[tuple[int, int], torch.Tensor] = {}
    for k in KINDS:
        runs, got = fit_curves(
            ctx,
            curve_tasks[k],
            [(p, tuned[k].value) for p in seeds],
            steps=csteps,
            snapshots=stages if k == "bezier" else (),
        )
        snaps.update(got)
        for p, r in zip(seeds, runs):
            model = r.model  # type: ignore[attr-defined]
            curve_of[(p, k)] = Curve(model_of[_pair(p)[0]], crit, data, model.control_points(), k)
            along[(p, k)] = curve_tasks[k].along(model)

    per_seed: dict[str, list[float]] = {"line": [], "bezier": [], "polychain": []}
    line_rel: list[float] = []
    ratios: dict[str, list[float]] = {"bezier": [], "polychain": []}
    pairs = []
    for p in seeds:
        a, b = _pair(p)
        row = {
            "endpoint_seeds": [a, b],
            "endpoint_J": [float(lines[p]["J"][0]), float(lines[p]["J"][-1])],
            "endpoint_loss": [float(lines[p]["loss"][0]), float(lines[p]["loss"][-1])],
            "grad_ratio": [conv[a][1], conv[b][1]],
            "distance": float((FlatParams(model_of[a]).vector - FlatParams(model_of[b]).vector).norm()),
            "line_barrier": line_barrier[p],
            "line_max_error": float(np.max(lines[p]["error"])),
        }
        per_seed["line"].append(line_barrier[p])
        line_rel.append(line_barrier[p] / float(np.mean(row["endpoint_J"])))
        for k in KINDS:
            r = along[(p, k)]
            bk = barrier(r["J"], r["t"])
            row[f"{k}_barrier"] = bk
            row[f"{k}_ratio"] = barrier_ratio(bk, line_barrier[p])
            row[f"{k}_max_error"] = float(np.max(r["error"]))
            row[f"{k}_loss_barrier"] = barrier(r["loss"], r["t"])
            # below 0: the curve's interior found J lower than the endpoints' (not minima after all)
            row[f"{k}_min_excess"] = -barrier(-r["J"], r["t"])
            per_seed[k].append(bk)
            ratios[k].append(row[f"{k}_ratio"])
        row["line_loss_barrier"] = barrier(lines[p]["loss"], lines[p]["t"])
        pairs.append(row)

    # The plane through the first pair's Bezier control points, the objective J on it, the curve drawn on it.
    p0 = seeds[0]
    bez = curve_of[(p0, "bezier")]
    w1, theta, w2 = (bez.control_points[i].double() for i in range(3))
    u, v = plane_basis(w1, theta, w2)
    length = float((w2 - w1).norm())
    ts = np.linspace(0, 1, 41)
    path = torch.stack([bez.weights(float(t)).double() - w1 for t in ts])
    pu, pv = (path @ u).numpy(), (path @ v).numpy()
    b_top = float(max(pv.max(), (theta - w1) @ v))
    span = ((-0.2 * length, 1.2 * length), (-0.3 * b_top, 1.4 * b_top))
    grid = int(cfg["grid"])
    plane = landscape.plane(
        model_of[_pair(p0)[0]], crit, data, directions=(u.float(), v.float()), span=span, points=(grid, grid)
    )
    A, B = np.meshgrid(plane.alphas, plane.betas, indexing="ij")
    # ||w1 + a u + b v||^2 with u, v orthonormal
    sq_plane = float(w1 @ w1) + 2 * A * float(w1 @ u) + 2 * B * float(w1 @ v) + A**2 + B**2
    plane_J = plane.loss + 0.5 * wd * sq_plane
    stage_J = {}
    for s in stages:
        m = curve_tasks["bezier"].make_model(p0)
        with torch.no_grad():
            m.bends.copy_(snaps[(p0, s)])
        stage_J[s] = curve_tasks["bezier"].along(m)

    ctx.check(
        "endpoints converged",
        f"at every endpoint ||grad J|| < {STATIONARY_TOL:g} x its value at the initialization",
        all(conv[s][0] for s in all_seeds),
        "||grad J|| / initial: " + ", ".join(f"seed {s}: {conv[s][1]:.3f}" for s in all_seeds),
    )
    ctx.check(
        "untrained curve is the segment",
        "before training the Bezier curve (bend at the midpoint) is the straight segment: same J along t",
        bool(np.allclose(stage_J[0]["J"], lines[p0]["J"], rtol=1e-4, atol=1e-6)),
        f"max |difference| {float(np.max(np.abs(stage_J[0]['J'] - lines[p0]['J']))):.2e}",
    )

    numbers: dict[str, Any] = {
        "pairs": pairs,
        "tuned_lr": {k: tuned[k].to_dict() for k in KINDS},
        "tuning_line_barrier": {str(p): line_barrier[p] for p in tseeds},
        "stage_max_J": {str(s): float(r["J"].max()) for s, r in stage_J.items()},
        "endpoint_objective": {
            "steps": [k for k, _ in ends[0].metrics("objective")],
            "per_seed": {str(s): [v for _, v in r.metrics("objective")] for s, r in zip(all_seeds, ends)},
        },
    }

    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8))
    ax = axes[0]
    log_J = np.log10(np.maximum(plane_J, 1e-3))
    cs = ax.contourf(A, B, log_J, levels=np.linspace(log_J.min(), log_J.max(), 25), cmap="viridis")
    ax.contour(A, B, log_J, levels=cs.levels[::3], colors="k", linewidths=0.3)
    fig.colorbar(cs, ax=ax, label="log₁₀ J (l2-regularized training loss)", format="%.1f")
    ax.plot(pu, pv, "w-", lw=2, label="Bezier curve")
    ax.plot([0, length], [0, 0], "r--", lw=1.5, label="straight line")
    ax.plot([0, float((theta - w1) @ u), length], [0, float((theta - w1) @ v), 0], "wo", ms=6)
    ax.set_xlabel("u (along w₂ − w₁)")
    ax.set_ylabel("v (towards the bend θ)")
    ax.set_title(f"J on the plane through w₁, θ, w₂ (pair {p0})")
    ax.legend(fontsize=8, loc="upper right")
    ax = axes[1]
    for i, p in enumerate(seeds):
        alpha, lw = (1.0, 1.6) if i == 0 else (0.45, 0.9)
        for j, (res, label) in enumerate(
            (
                (lines[p], "straight line"),
                (along[(p, "bezier")], "Bezier curve"),
                (along[(p, "polychain")], "chain"),
            )
        ):
            key = ("line", "bezier", "polychain")[j]
            lab = f"{label}: barrier {np.mean(per_seed[key]):.3g} (mean of {len(seeds)})" if i == 0 else None
            ax.plot(res["t"], res["J"], color=f"C{j}", alpha=alpha, lw=lw, label=lab)
    ax.set_yscale("log")
    ax.set_xlabel("t")
    ax.set_ylabel("J along the path")
    ax.set_title(f"the paths of {len(seeds)} endpoint pairs (pair {p0} bold)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    ax = axes[2]
    cmap = plt.get_cmap("plasma")
    for i, s in enumerate(stages):
        ax.plot(
            stage_J[s]["t"],
            stage_J[s]["J"],
            color=cmap(i / max(1, len(stages) - 1)),
            label=f"after {s} steps",
        )
    ax.set_yscale("log")
    ax.set_xlabel("t")
    ax.set_ylabel("J along the Bezier curve")
    ax.set_title(f"the curve while it is trained (pair {p0})")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    ctx.save_figure(fig, "mode_connectivity")

    not_conv = [s for s in _eval_endpoints(seeds) if not conv[s][0]]
    why = (
        f"endpoints {not_conv} not converged (||grad J|| >= {STATIONARY_TOL:g} x initial)"
        if not_conv
        else None
    )

    def reason(kind: str | None) -> str | None:
        parts = [why] if why else []
        if kind is not None and not tuned[kind].bracketed:
            parts.append(tuned[kind].note())
        return "; ".join(parts) or None

    def fmt(xs: list[float]) -> str:
        return ", ".join(f"{x:.3g}" for x in xs)

    measured = {
        "line_barrier": Measurement(
            line_rel,
            f"straight-line barrier in J per pair {fmt(per_seed['line'])} over endpoint J "
            f"{fmt([float(np.mean(r['endpoint_J'])) for r in pairs])}; max training error on the line "
            f"{fmt([r['line_max_error'] for r in pairs])}",
            inconclusive=reason(None),
        ),
    }
    for k in KINDS:
        measured[f"{k}_near_zero"] = Measurement(
            ratios[k],
            f"{k} barrier {fmt(per_seed[k])} vs line {fmt(per_seed['line'])}; max training error on the curve "
            f"{fmt([r[f'{k}_max_error'] for r in pairs])}; {tuned[k].note()}",
            inconclusive=reason(k),
        )
    return numbers, measured


def _eval_endpoints(seeds: Sequence[int]) -> list[int]:
    return [s for p in seeds for s in _pair(p)]


register(
    Study(
        name="mode-connectivity",
        description="MNIST-1D MLP endpoint pairs: straight-line barrier vs trained Bezier/polychain curves, per pair.",
        slide="seeds 000/004: Garipov et al. 2018, 'Mode connectivity' (loss on the plane through w1, theta, w2)",
        # wall s, 2026-12-07, one torch thread: quick in the 04:15 tour, full run beside one other study
        seconds=(67, 213),
        predictions=PREDICTIONS,
        quick={
            "lr": 1e-2,
            "weight_decay": 5e-4,
            "steps": 3000,
            "curve_steps": 2000,
            "curve_lrs": [0.1, 0.3, 1.0],
            "chain_lrs": [0.015, 0.05, 0.15],
            "curve_batches": 40,
            "stages": [0, 100, 500, 2000],
            "points": 21,
            "grid": 21,
            "seeds": 10,
            "seed_blocks": [5, 10],
            "tuning_seeds": 3,
        },
        full={
            "lr": 1e-2,
            "weight_decay": 5e-4,
            "steps": 3000,
            "curve_steps": 6000,
            "curve_lrs": [0.1, 0.3, 1.0],
            "chain_lrs": [0.015, 0.05, 0.15],
            "curve_batches": 40,
            "stages": [0, 100, 500, 2000, 6000],
            "points": 41,
            "grid": 41,
            "seeds": 20,
            "seed_blocks": [10, 20],
            "tuning_seeds": 3,
        },
        limits={"weight_decay": (0.0, 1.0)},
        run=run,
    )
)
