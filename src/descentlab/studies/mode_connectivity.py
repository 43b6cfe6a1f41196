"""Mode connectivity: independently trained networks are joined by a simple curve of low loss.

Seeds 000/004 (Garipov et al. 2018, "Loss Surfaces, Mode Connectivity, and Fast Ensembling of DNNs"): the straight
segment between two minima of the l2-regularized training loss crosses a ridge, while a quadratic Bezier curve (or a
polygonal chain) with one trained bend keeps the loss near-constant. Each evaluation seed is one pair of endpoints
trained to convergence (a stationarity criterion fixed in advance, :func:`stationary`); every path is judged by its
barrier, the largest excess of the loss over the straight interpolation of the endpoint losses (:func:`barrier`).
The curves' learning rates are tuned on pairs trained from tuning seeds. The figure is the seed's: the loss on the
plane through the three control points (w1, theta, w2) with the curve drawn on it, the loss along each path, and the
loss along the curve at several stages of its training.

The endpoints of all pairs are trained together and so are the curves (``torch.func.vmap`` over stacked parameters:
Adam and SGD are elementwise, so this is the same arithmetic as one run per model; see the tests).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from descentlab import landscape, tasks
from descentlab.landscape.connectivity import Curve, _basis, garipov_lr_factor
from descentlab.landscape.projections import FlatParams
from descentlab.studies import Study, StudyContext, register
from descentlab.studies.claims import Measurement, Prediction, eval_seeds, tune, tuning_seeds
from descentlab.tasks.base import BatchStream

KINDS = ("bezier", "polychain")
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


def _plain(model: nn.Module) -> None:
    if any(True for _ in model.buffers()):
        raise ValueError("batched training needs a model without buffers (no BatchNorm)")


@dataclass
class Endpoints:
    """Models trained by :func:`train_endpoints` and each one's objective J after ``steps[i]`` steps."""

    models: list[nn.Module]
    steps: list[int]
    objective: list[list[float]]


def train_endpoints(
    task: Any,
    seeds: Sequence[int],
    *,
    steps: int,
    lr: float,
    weight_decay: float,
    batch_size: int = 100,
    evals: int = 10,
) -> Endpoints:
    """Train one model per seed, all at once: Adam on J = loss + weight_decay/2 ||w||^2 (coupled L2) with Garipov et
    al.'s schedule (``lr`` for half the steps, then linearly down to ``lr / 100`` at 90 %, held).

    Model ``i`` starts at ``task.make_model(seeds[i])`` and sees the mini-batches of ``task.batches(batch_size,
    seeds[i])`` (as ``train(seed=seeds[i])`` would); the objective J on the whole training set is recorded ``evals``
    times, evenly spaced, for the convergence criterion.
    """
    from torch.func import functional_call, stack_module_state, vmap

    if steps < evals or evals < 2:
        raise ValueError(f"need steps >= evals >= 2, got steps={steps!r}, evals={evals!r}")
    models = [task.make_model(int(s)) for s in seeds]
    _plain(models[0])
    template = copy.deepcopy(models[0])
    params, _ = stack_module_state(models)
    params = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    opt = torch.optim.Adam(params.values(), lr=lr, weight_decay=weight_decay)
    streams = [task.batches(batch_size, int(s)) for s in seeds]
    x_all, y_all = task.train_data[0], task.train_data[1]

    def forward(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(template, p, (x,))

    def objective() -> list[float]:
        with torch.no_grad():
            out = vmap(forward, in_dims=(0, None))(params, x_all)
            sq = sum(v.reshape(v.shape[0], -1).pow(2).sum(1) for v in params.values())
            return [float(task.outputs_loss(o, y_all) + 0.5 * weight_decay * s) for o, s in zip(out, sq)]

    marks = {round(steps * (i + 1) / evals) for i in range(evals)}
    done, traj = [], []
    for k in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr * garipov_lr_factor(k / steps)
        xs, ys = zip(*(next(s)[:2] for s in streams))
        x, y = torch.stack(xs), torch.stack(ys)
        out = vmap(forward)(params, x)
        # the sum over models of each one's mean loss: model i's gradient is its own run's gradient
        loss = task.outputs_loss(out.reshape(-1, out.shape[-1]), y.reshape(-1)) * len(seeds)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if k + 1 in marks:
            done.append(k + 1)
            traj.append(objective())
    out_models = []
    for i, m in enumerate(models):
        with torch.no_grad():
            for name, p in m.named_parameters():
                p.copy_(params[name][i])
        out_models.append(m)
    return Endpoints(out_models, done, [list(col) for col in zip(*traj)])


@dataclass
class CurveJob:
    """One curve to train: its kind, endpoints (models), learning rate and the seed of its t ~ U(0, 1) draws."""

    kind: str
    model_a: nn.Module
    model_b: nn.Module
    lr: float
    seed: int = 0


def train_curves(
    jobs: Sequence[CurveJob],
    criterion: Any,
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    *,
    steps: int,
    weight_decay: float,
    momentum: float = 0.9,
    snapshots: Sequence[int] = (),
) -> tuple[list[Curve], dict[int, list[torch.Tensor]]]:
    """Garipov et al.'s curve finding (``landscape.connect`` with one free bend and its default schedule) for several
    curves at once: each step draws its own t per curve, all curves take the same mini-batch, SGD with momentum
    and each curve's own lr. Returns the curves and, for each step in ``snapshots``, every curve's control points."""
    from torch.func import functional_call, vmap

    if not jobs:
        raise ValueError("train_curves needs at least one job")
    for j in jobs:
        if j.kind not in KINDS:
            raise ValueError(f"curve kind must be one of {KINDS}, got {j.kind!r}")
    _plain(jobs[0].model_a)
    template = copy.deepcopy(jobs[0].model_a)
    flat = FlatParams(template)
    ends = [(FlatParams(j.model_a).vector, FlatParams(j.model_b).vector) for j in jobs]
    free = [(0.5 * (a + b)).clone().requires_grad_(True) for a, b in ends]  # the bend starts mid-segment
    opt = torch.optim.SGD(
        [{"params": [f], "lr": j.lr} for f, j in zip(free, jobs)], lr=jobs[0].lr, momentum=momentum
    )
    gens = [torch.Generator().manual_seed(int(j.seed)) for j in jobs]
    snaps: dict[int, list[torch.Tensor]] = {}

    def control() -> list[torch.Tensor]:
        return [torch.stack([a, f.detach().clone(), b]) for (a, b), f in zip(ends, free)]

    def forward(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(template, p, (x,))

    for k in range(steps):
        if k in snapshots:
            snaps[k] = control()
        for g, j in zip(opt.param_groups, jobs):
            g["lr"] = j.lr * garipov_lr_factor(k / steps)
        x, y = batches[k % len(batches)][:2]
        rows = []
        for (a, b), f, j, gen in zip(ends, free, jobs, gens):
            t = torch.rand((), generator=gen, dtype=torch.float64)
            c = _basis(j.kind, 3, t)[0].to(a)
            rows.append(c[0] * a + c[2] * b + c[1] * f)
        w = torch.stack(rows)
        out = vmap(forward, in_dims=(0, None))(flat.to_dict(w), x)
        loss = criterion(out.reshape(-1, out.shape[-1]), y.repeat(len(jobs))) * len(jobs)
        if weight_decay:
            loss = loss + 0.5 * weight_decay * (w * w).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    final = control()
    if steps in snapshots:
        snaps[steps] = final
    curves = [Curve(j.model_a, criterion, list(batches), cp, j.kind) for j, cp in zip(jobs, final)]
    return curves, snaps


def _sq_norms(w: torch.Tensor) -> np.ndarray:
    return (w.double() ** 2).sum(-1).numpy()


def _along(curve: Curve, points: int, data: Any, wd: float) -> dict[str, np.ndarray]:
    """Training loss, the objective J and the error along a curve at ``points`` evenly spaced ts."""
    res = curve.loss_along(points, data=data)
    sq = _sq_norms(curve.weights(torch.as_tensor(res.alphas)))
    err = 1 - res.accuracy if res.accuracy is not None else np.full(len(res.alphas), np.nan)
    return {"t": res.alphas, "loss": res.loss, "J": res.loss + 0.5 * wd * sq, "error": err}


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
    ends = train_endpoints(
        task, all_seeds, steps=int(cfg["steps"]), lr=float(cfg["lr"]), weight_decay=wd, evals=10
    )
    ctx.advance(len(all_seeds))
    model_of = dict(zip(all_seeds, ends.models))
    conv = {s: stationary(objective_grad_norm(task, model_of[s], wd), grad0[s]) for s in all_seeds}
    stream = BatchStream(task.train_data, 100, seed=0)
    batches = [next(stream) for _ in range(int(cfg["curve_batches"]))]
    csteps = int(cfg["curve_steps"])
    lines = {
        p: _line(model_of[_pair(p)[0]], model_of[_pair(p)[1]], crit, data, points, wd) for p in seeds + tseeds
    }
    line_barrier = {p: barrier(r["J"], r["t"]) for p, r in lines.items()}

    # Tuning: each kind's lr by the curve-finding objective (mean J along the curve) on the tuning pairs; the grid
    # is trained in one batch, values added by tune() (grid extension) one at a time.
    cache: dict[tuple[str, float, int], float] = {}

    def fit(keys: list[tuple[str, float, int]]) -> None:
        jobs = [CurveJob(k, model_of[_pair(s)[0]], model_of[_pair(s)[1]], lr, seed=s) for k, lr, s in keys]
        curves, _ = train_curves(jobs, crit, batches, steps=csteps, weight_decay=wd)
        ctx.advance(len(jobs))
        for key, c in zip(keys, curves):
            cache[key] = float(np.mean(_along(c, points, data, wd)["J"]))

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

    # Evaluation: both kinds on every evaluation pair at the tuned lrs, trained together.
    stages = sorted({int(s) for s in cfg["stages"] if 0 <= int(s) <= csteps} | {csteps})
    jobs = [
        CurveJob(k, model_of[_pair(p)[0]], model_of[_pair(p)[1]], tuned[k].value, seed=p)
        for p in seeds
        for k in KINDS
    ]
    curves, snaps = train_curves(jobs, crit, batches, steps=csteps, weight_decay=wd, snapshots=stages)
    ctx.advance(len(jobs))
    curve_of = {(p, k): c for (p, k), c in zip([(p, k) for p in seeds for k in KINDS], curves)}
    along = {key: _along(c, points, data, wd) for key, c in curve_of.items()}

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
        c = Curve(bez.model, crit, batches, snaps[s][KINDS.index("bezier")], "bezier")
        stage_J[s] = _along(c, points, data, wd)

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
            "steps": ends.steps,
            "per_seed": {str(s): traj for s, traj in zip(all_seeds, ends.objective)},
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
        seconds=(60, 155),  # estimated idle 2-core wall s (quick: old 25 s idle = 304 s loaded, new 721 s)
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
            "seeds": 3,
            "tuning_seeds": 1,
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
            "seeds": 5,
            "tuning_seeds": 2,
        },
        limits={"weight_decay": (0.0, 1.0)},
        run=run,
    )
)
