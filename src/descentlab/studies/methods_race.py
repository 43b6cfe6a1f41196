"""The methods race on 2-D functions: trajectories of nine optimizers on Rosenbrock and an ill-conditioned quadratic.

Seed 002, "Много методов" ("Rosenbrock Function. Adaptive stochastic gradient algorithms. Learning rate 0.003"):
GD, heavy-ball, Nesterov, AdaGrad, RMSProp, Adam, AdamW, sign and normalized steepest descent race from the same
start, deterministically and with Gaussian gradient noise. Each method's learning rate is tuned on the tuning seeds
(``tune`` over its grid, extended at an edge) by the metric its claim uses; tuning seed 1000 is the lecture's start
(Rosenbrock (-1.2, 1), the quadratic's (1, 1)), so the figure, the GIF and ``trajectories.json`` show that start.
The race is deterministic, so the evaluation seeds are starting points drawn around the lecture's start
(N(0, start_spread^2) per coordinate): a claim about "the methods on Rosenbrock" should not rest on one point.
Seed 002, "Весёлые истории": "GD converges to a local minimum; SGD jumps out of local minima" — on ``multiminima``
GD from (2.3, -1.7) settles in the nearest local minimum, while SGD with gradient noise (one noise stream per
evaluation seed) ends in a lower basin (found by polishing its last iterate with GD).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from descentlab.studies import (
    Measurement,
    Prediction,
    Study,
    StudyContext,
    eval_seeds,
    register,
    tune,
    tuning_seeds,
)
from descentlab.studies.claims import TUNING_SEED_OFFSET
from descentlab.tasks import functions as fns
from descentlab.train import Callback

# label -> (registry name, hyper-parameters, legend text)
METHODS: dict[str, tuple[str, dict[str, Any], str]] = {
    "gd": ("sgd", {}, "GD"),
    "heavy_ball": ("sgd", {"momentum": 0.9}, "heavy-ball (β=0.9)"),
    "nesterov": ("sgd", {"momentum": 0.9, "nesterov": True}, "Nesterov (β=0.9)"),
    "adagrad": ("adagrad", {}, "AdaGrad"),
    "rmsprop": ("rmsprop", {}, "RMSProp"),
    "adam": ("adam", {}, "Adam"),
    "adamw": ("adamw", {"weight_decay": 0.01}, "AdamW (λ=0.01)"),
    "sign": ("signsgd", {}, "sign descent"),
    "normalized": ("normalized_sgd", {}, "normalized GD"),
}
MOMENTUM = ("heavy_ball", "nesterov")
ADAPTIVE = ("rmsprop", "adam", "adamw")
ADAPTIVE_OR_MOMENTUM = MOMENTUM + ADAPTIVE

PREDICTIONS = (
    Prediction(
        name="rosenbrock_momentum_faster_than_gd",
        statement="On Rosenbrock, momentum methods (heavy-ball, Nesterov) race down the valley faster than plain GD: "
        "they reach f ≤ rosenbrock_target in fewer steps, each at its own tuned learning rate.",
        source="seed 002, slide 'Много методов' (Rosenbrock function, the methods' trajectories)",
        quantity="per starting point: min over heavy-ball and Nesterov of log10(steps_GD / steps_method), steps = "
        "first step with f ≤ target (a run that never gets there counts rosenbrock_steps + 1: a lower bound)",
        direction=">",
        threshold=0.0,
        tolerance="faster = fewer steps: a log-ratio > 0; censoring at T + 1 can only pull the value toward 0",
        scale="log-given",
        censor="a run that never reaches the target counts rosenbrock_steps + 1 (a lower bound), applied by the study",
    ),
    Prediction(
        name="rosenbrock_adaptive_faster_than_gd",
        statement="On Rosenbrock, adaptive methods (RMSProp, Adam, AdamW) race down the valley faster than plain "
        "GD: they reach f ≤ rosenbrock_target in fewer steps, each at its own tuned learning rate.",
        source="seed 002, slide 'Много методов' (adaptive stochastic gradient algorithms on Rosenbrock)",
        quantity="per starting point: min over RMSProp, Adam and AdamW of log10(steps_GD / steps_method), "
        "censored as above",
        direction=">",
        threshold=0.0,
        tolerance="as above",
        scale="log-given",
        censor="as rosenbrock_momentum_faster_than_gd",
    ),
    Prediction(
        name="quadratic_heavy_ball_beats_gd",
        statement="On an ill-conditioned quadratic heavy-ball converges faster than GD (rate 1 − 1/√κ against "
        "1 − 1/κ): it ends lower after the same number of steps.",
        source="seed 002, slide 'Много методов'; Polyak's heavy-ball rate on quadratics",
        quantity="per starting point: log10(final loss of GD / final loss of heavy-ball) after quadratic_steps, "
        "each at its own lr tuned on the tuning seeds by the final loss",
        direction=">",
        threshold=0.0,
        tolerance="lower final loss: a log-ratio > 0",
        scale="log-given",
    ),
    Prediction(
        name="sgd_escapes_local_minimum",
        statement="GD converges to the nearest local minimum; SGD jumps out of local minima (into a lower one).",
        source="seed 002, slide 'Весёлые истории'",
        quantity="per SGD noise seed: f(GD's basin) − f(SGD's basin), both end points polished by noise-free GD, "
        "same start and lr",
        direction=">",
        threshold=0.0,
        tolerance="a lower basin: a difference > 0",
    ),
)


def _coords(ctx: Any) -> dict[str, float]:
    """Log the iterate ``x`` and the noise-free ``f(x)`` at every step (the trajectory)."""
    x = ctx.model().detach().double()
    return {"path_x0": float(x[0]), "path_x1": float(x[1]), "f": float(ctx.task.value(x))}


def _path(run: Any, start: tuple[float, float]) -> np.ndarray:
    """The run's trajectory as an array (steps + 1, 2), starting at ``start``."""
    xs = [v for _, v in run.metrics("path_x0")]
    ys = [v for _, v in run.metrics("path_x1")]
    return np.array([list(start)] + [[a, b] for a, b in zip(xs, ys)], dtype=float)


def _losses(run: Any, f0: float) -> np.ndarray:
    """Noise-free loss at every step (step 0 first); NaN-padded where a run diverged."""
    return np.array([f0] + [v for _, v in run.metrics("f")], dtype=float)


def _final(run: Any) -> float:
    """Final noise-free loss, +inf for a diverged run."""
    vals = run.metrics("f")
    if run.status != "finished" or not vals or not math.isfinite(vals[-1][1]):
        return math.inf
    return float(vals[-1][1])


def race_key(losses: np.ndarray, target: float) -> tuple[float, float]:
    """How a run placed in the race: (first step with loss <= ``target``, or inf if never; final loss, inf when
    diverged). Sorting by it ranks who got there first, then, among those that never did, who ended lower."""
    f = np.asarray(losses, dtype=float)
    hit = np.nonzero(f <= target)[0]
    final = float(f[-1]) if f.size and math.isfinite(f[-1]) else math.inf
    return (float(hit[0]) if hit.size else math.inf), final


def _grid(fn_name: str, cfg: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A grid over the plotting window of ``fn_name``, its values and contour levels (log-spaced on Rosenbrock)."""
    if fn_name == "rosenbrock":
        xs, ys = np.linspace(-2.0, 2.0, 121), np.linspace(-1.0, 3.0, 121)
        xx, yy = np.meshgrid(xs, ys)
        zz = fns.rosenbrock(xx, yy)
        levels = np.logspace(-1, 3.5, 14)
    elif fn_name == "quadratic":
        xs, ys = np.linspace(-1.6, 1.6, 101), np.linspace(-1.6, 1.6, 101)
        xx, yy = np.meshgrid(xs, ys)
        zz = fns.quadratic(xx, yy, float(cfg["kappa"]), float(cfg["angle"]))
        levels = np.logspace(-3, 2.5, 14)
    else:
        xs, ys = np.linspace(-3.0, 3.0, 121), np.linspace(-3.0, 3.0, 121)
        xx, yy = np.meshgrid(xs, ys)
        zz = fns.multiminima(xx, yy)
        levels = np.linspace(0.0, 1.6, 17)
    return xs, ys, zz, levels


def _task_kw(fn_name: str, cfg: dict[str, Any], noise: float) -> dict[str, Any]:
    kw: dict[str, Any] = {"noise": noise}
    if fn_name == "quadratic":
        kw.update(kappa=float(cfg["kappa"]), angle=float(cfg["angle"]))
    return kw


def censored_steps(losses: np.ndarray, target: float, steps: int) -> float:
    """First step with loss <= ``target``; ``steps + 1`` (a lower bound on the true count) when the run never gets
    there within ``steps`` steps or diverged first."""
    hit = np.nonzero(np.asarray(losses, dtype=float) <= target)[0]
    return float(hit[0]) if hit.size else float(steps + 1)


def race_score(losses: np.ndarray, target: float, steps: int) -> float:
    """The race as one number to minimize when tuning: steps to ``target`` if reached, else ``steps + 1`` plus the
    final loss (so that among runs that never get there the lower one wins); inf for a diverged run."""
    first, final = race_key(losses, target)
    if math.isfinite(first):
        return first
    return float(steps + 1) + final if math.isfinite(final) and len(losses) == steps + 1 else math.inf


def log_ratio(a: float, b: float) -> float:
    """log10(a / b) for positive ``a``, ``b`` (nan otherwise)."""
    return math.log10(a / b) if a > 0 and b > 0 and math.isfinite(a) and math.isfinite(b) else math.nan


def start_point(fn_name: str, seed: int, spread: float) -> tuple[float, float]:
    """The lecture's start for tuning seed 1000; for any other seed that start plus N(0, spread^2) per coordinate."""
    from descentlab import tasks

    base = tuple(float(v) for v in tasks.get(fn_name).start)
    if seed == TUNING_SEED_OFFSET:
        return base  # type: ignore[return-value]
    d = np.random.default_rng(seed).normal(0.0, spread, size=2)
    return (base[0] + float(d[0]), base[1] + float(d[1]))


class _Tracker:
    """Per-step callback: logs the iterate and the noise-free f(x) (the trajectory) and remembers the first step with
    f <= ``target`` (the race), so that a run can stop there."""

    def __init__(self, target: float | None):
        self.target = target
        self.hit: int | None = None

    def __call__(self, ctx: Any) -> dict[str, float]:
        out = _coords(ctx)
        if self.target is not None and self.hit is None and out["f"] <= self.target:
            self.hit = int(ctx.step)
        return out


def _run(
    ctx: StudyContext,
    cfg: dict[str, Any],
    fn_name: str,
    label: str,
    lr: float,
    start: Any,
    noise: float,
    seed: int,
    stop_at: float | None = None,
    steps: int | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """One race run: (path, noise-free losses from step 0, final loss or inf). With ``stop_at`` the run ends (within
    ``race_check_every`` steps) once f <= ``stop_at``: the race only needs the first step there. ``steps`` cuts the
    run shorter than ``<fn>_steps``."""
    from descentlab import tasks

    steps = int(cfg[f"{fn_name}_steps"]) if steps is None else int(steps)
    name, hp, _ = METHODS[label]
    kw = {**_task_kw(fn_name, cfg, noise), "start": [float(start[0]), float(start[1])]}
    tracker = _Tracker(stop_at)
    r = ctx.train(
        fn_name,
        optimizer=name,
        lr=float(lr),
        hparams=hp,
        task_kw=kw,
        seed=seed,
        steps=steps,
        eval_every=int(cfg["race_check_every"]) if stop_at is not None else steps,
        stop_when=(lambda _m: tracker.hit is not None) if stop_at is not None else None,
        device="cpu",
        callbacks=[Callback(tracker, every=1, recorded=True)],  # the path and f are read back from the run
    )
    f0 = float(tasks.get(fn_name, **kw).value(np.array(start)))
    return _path(r, tuple(start)), _losses(r, f0), _final(r)


def _race(ctx: StudyContext, cfg: dict[str, Any], fn_name: str, claimed: tuple[str, ...]) -> dict[str, Any]:
    """Tune every method's lr (the claim's metric; methods in ``claimed`` on all tuning seeds, the others — drawn
    only — on the lecture's start), run the ``claimed`` methods on every evaluation start, redo each method's tuned
    run from the lecture's start in full for the figure, and the noisy race from that start."""
    steps = int(cfg[f"{fn_name}_steps"])
    lrs: dict[str, list[float]] = cfg["lrs"][fn_name]
    unknown = sorted(set(lrs) - set(METHODS))
    if unknown:
        raise ValueError(f"methods-race: unknown methods {unknown}; allowed: {sorted(METHODS)}")
    spread = float(cfg["start_spread"])
    lecture = start_point(fn_name, TUNING_SEED_OFFSET, spread)
    out: dict[str, Any] = {"start": lecture, "det": {}, "noisy": {}, "main_lr": {}, "tuned": {}, "eval": {}}
    target = float(cfg["rosenbrock_target"]) if fn_name == "rosenbrock" else None
    n_noisy = min(len(eval_seeds(cfg)), int(cfg["noisy_seeds"]))
    for label, grid in lrs.items():
        out["det"][label] = {}

        best = [math.inf]

        def score(lr: float, seed: int, label: str = label, best: list[float] = best) -> float:
            # in the race, a run still short of the target at 3x the best first step so far cannot be the best lr:
            # it is cut there (scored inf)
            cap = steps if target is None or not math.isfinite(best[0]) else min(steps, int(3 * best[0]) + 20)
            path, losses, final = _run(
                ctx,
                cfg,
                fn_name,
                label,
                lr,
                start_point(fn_name, seed, spread),
                0.0,
                seed,
                stop_at=target,
                steps=cap,
            )
            if seed == TUNING_SEED_OFFSET:
                out["det"][label][float(lr)] = (path, losses, final)
            if target is None:
                return final
            first = race_key(losses, target)[0]
            best[0] = min(best[0], first)
            return race_score(losses, target, steps) if cap == steps or math.isfinite(first) else math.inf

        metric = (
            f"race: first step with f ≤ {target:g} (never: {steps} + 1 + final loss)"
            if target is not None
            else f"final loss after {steps} steps"
        )
        seeds = tuning_seeds(cfg) if label in claimed else [TUNING_SEED_OFFSET]
        tuned = tune(score, [float(g) for g in grid], seeds, metric=metric)
        out["tuned"][label] = tuned
        out["main_lr"][label] = tuned.value
        if label in claimed:
            out["eval"][label] = [
                _run(
                    ctx,
                    cfg,
                    fn_name,
                    label,
                    tuned.value,
                    start_point(fn_name, s, spread),
                    0.0,
                    s,
                    stop_at=target,
                )
                for s in eval_seeds(cfg)
            ]
        out["noisy"][label] = [
            _run(ctx, cfg, fn_name, label, tuned.value, lecture, float(cfg["noise"]), s)
            for s in eval_seeds(cfg)[:n_noisy]
        ]
    return out


def _best(race: dict[str, Any], label: str) -> tuple[float, float]:
    """(final loss from the lecture's start at the tuned lr, the tuned lr)."""
    lr = race["main_lr"][label]
    return race["det"][label][lr][2], lr


def _plot_race(ctx: StudyContext, cfg: dict[str, Any], races: dict[str, dict[str, Any]]) -> None:
    """Contours with the paths (deterministic and noisy, main lr) and the loss curves, one row per function."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"] + ["#333333"]
    fig, axes = plt.subplots(len(races), 3, figsize=(18, 5.6 * len(races)), squeeze=False)
    for row, (fn_name, race) in enumerate(races.items()):
        xs, ys, zz, levels = _grid(fn_name, cfg)
        for col, kind in enumerate(("det", "noisy")):
            ax = axes[row, col]
            ax.contour(
                xs, ys, np.maximum(zz, 1e-12), levels=levels, norm=LogNorm(), cmap="Greys", linewidths=0.7
            )
            for i, label in enumerate(race["det"]):
                lr = race["main_lr"][label]
                path = race["det"][label][lr][0] if kind == "det" else race["noisy"][label][0][0]
                path = path[np.all(np.isfinite(path), axis=1)]
                ax.plot(
                    path[:, 0],
                    path[:, 1],
                    "-",
                    color=colors[i % len(colors)],
                    lw=1.2,
                    label=f"{METHODS[label][2]}, lr={lr:g}",
                )
                ax.plot(path[-1, 0], path[-1, 1], "o", color=colors[i % len(colors)], ms=4)
            ax.plot(*race["start"], "k^", ms=8, label="start")
            ax.plot(*(1.0, 1.0) if fn_name == "rosenbrock" else (0.0, 0.0), "r*", ms=12, label="minimum")
            ax.set_xlim(xs[0], xs[-1])
            ax.set_ylim(ys[0], ys[-1])
            ax.set_xlabel("x₁")
            ax.set_ylabel("x₂")
            noise = "deterministic" if kind == "det" else f"gradient noise σ={cfg['noise']:g}"
            if kind == "det" and fn_name == "rosenbrock":
                noise += f" (each run stops at f ≤ {cfg['rosenbrock_target']:g})"
            ax.set_title(f"{fn_name}: {noise}")
            if col == 0:
                ax.legend(handles=ax.get_legend_handles_labels()[0][-2:], fontsize=8, loc="upper left")
        ax = axes[row, 2]
        for i, label in enumerate(race["det"]):
            lr = race["main_lr"][label]
            curve = race["det"][label][lr][1]
            ax.plot(
                np.arange(len(curve)),
                np.maximum(curve, 1e-16),
                color=colors[i % len(colors)],
                label=f"{METHODS[label][2]}, lr={lr:g}",
            )
            curves = [c[1] for c in race["noisy"][label]]  # a diverged run's curve is shorter: NaN-padded
            noisy = np.full((len(curves), max(len(c) for c in curves)), np.nan)
            for j, c in enumerate(curves):
                noisy[j, : len(c)] = c
            with np.errstate(all="ignore"):
                noisy_mean = np.nanmean(noisy, 0)
            ax.plot(
                np.arange(noisy.shape[1]),
                np.maximum(noisy_mean, 1e-16),
                ":",
                lw=1,
                color=colors[i % len(colors)],
            )
        ax.set_yscale("log")
        top = max(float(race["det"][lab][race["main_lr"][lab]][1][0]) for lab in race["det"])
        ax.set_ylim(top=100 * top)  # a diverging noisy run would squash the rest
        ax.set_xlabel("iteration k")
        ax.set_ylabel("f(x_k) − f*")
        ax.set_title(f"{fn_name}: loss (solid: deterministic, dotted: noisy, mean over seeds)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    ctx.save_figure(fig, "methods_race")


def _gif(ctx: StudyContext, cfg: dict[str, Any], race: dict[str, Any]) -> str:
    """An animated GIF of the deterministic Rosenbrock race at each method's main lr (PillowWriter)."""
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter
    from matplotlib.colors import LogNorm

    xs, ys, zz, levels = _grid("rosenbrock", cfg)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"] + ["#333333"]
    paths = {lab: race["det"][lab][race["main_lr"][lab]][0] for lab in race["det"]}
    n = max(len(p) for p in paths.values())
    frames = np.unique(np.linspace(1, n, int(cfg["gif_frames"])).astype(int))
    fig, ax = plt.subplots(figsize=(6.4, 5.4))
    ax.contour(xs, ys, np.maximum(zz, 1e-12), levels=levels, norm=LogNorm(), cmap="Greys", linewidths=0.6)
    ax.plot(1.0, 1.0, "r*", ms=12)
    lines = {
        lab: ax.plot([], [], "-", color=colors[i % len(colors)], lw=1.3, label=METHODS[lab][2])[0]
        for i, lab in enumerate(paths)
    }
    ax.set_xlim(xs[0], xs[-1])
    ax.set_ylim(ys[0], ys[-1])
    ax.set_xlabel("x₁")
    ax.set_ylabel("x₂")
    ax.legend(fontsize=7, loc="lower left")
    title = ax.set_title("")

    def draw(k: int) -> list[Any]:
        for lab, line in lines.items():
            p = paths[lab][:k]
            p = p[np.all(np.isfinite(p), axis=1)]
            line.set_data(p[:, 0], p[:, 1])
        title.set_text(f"Rosenbrock race, iteration {k - 1}")
        return [*lines.values(), title]

    anim = FuncAnimation(fig, draw, frames=frames, blit=False)
    path = ctx.out / "methods_race.gif"
    anim.save(path, writer=PillowWriter(fps=8), dpi=70)
    plt.close(fig)
    return path.name


def _multiminima(ctx: StudyContext, cfg: dict[str, Any]) -> dict[str, Any]:
    """GD vs noisy SGD on ``multiminima``; each end point is polished by noise-free GD to name its basin."""
    steps, lr = int(cfg["multiminima_steps"]), float(cfg["multiminima_lr"])
    cb = [Callback(_coords, every=1, recorded=True)]
    common = {
        "optimizer": "sgd",
        "lr": lr,
        "steps": steps,
        "eval_every": steps,
        "device": "cpu",
        "callbacks": cb,
    }
    task = fns.make_multiminima()
    start = task.start
    gd = ctx.train("multiminima", task_kw={"noise": 0.0}, seed=0, **common)
    sgd = [
        ctx.train("multiminima", task_kw={"noise": float(cfg["multiminima_noise"])}, seed=s, **common)
        for s in eval_seeds(cfg)
    ]
    polish = {
        "optimizer": "sgd",
        "lr": 0.01,
        "steps": int(cfg["polish_steps"]),
        "eval_every": int(cfg["polish_steps"]),
    }

    def basin(run: Any) -> tuple[float, list[float]]:
        end = _path(run, start)[-1]
        p = ctx.train(
            "multiminima",
            task_kw={"noise": 0.0, "start": [float(end[0]), float(end[1])]},
            seed=0,
            device="cpu",
            **polish,
        )
        return float(p.final["loss"]), [float(p.final["x0"]), float(p.final["x1"])]

    gd_f, gd_x = basin(gd)
    sgd_b = [basin(r) for r in sgd]
    return {
        "start": start,
        "gd_path": _path(gd, start),
        "sgd_paths": [_path(r, start) for r in sgd],
        "gd_basin_f": gd_f,
        "gd_basin_x": gd_x,
        "sgd_basin_f": [b[0] for b in sgd_b],
        "sgd_basin_x": [b[1] for b in sgd_b],
    }


def _plot_multiminima(ctx: StudyContext, cfg: dict[str, Any], mm: dict[str, Any]) -> None:
    import matplotlib.pyplot as plt

    xs, ys, zz, levels = _grid("multiminima", cfg)
    fig, ax = plt.subplots(figsize=(7, 6))
    cs = ax.contourf(xs, ys, zz, levels=levels, cmap="Greys_r")
    fig.colorbar(cs, ax=ax, label="f(x)")
    p = mm["sgd_paths"][0]
    ax.plot(
        p[:, 0],
        p[:, 1],
        "-",
        color="tab:orange",
        lw=0.6,
        alpha=0.8,
        label=f"SGD, noise σ={cfg['multiminima_noise']:g} (seed 0)",
    )
    for i, xb in enumerate(mm["sgd_basin_x"]):
        ax.plot(*xb, "o", color="tab:orange", ms=7, mec="k", label="SGD end basins" if i == 0 else None)
    g = mm["gd_path"]
    ax.plot(g[:, 0], g[:, 1], "-", color="tab:blue", lw=2.5, label="GD")
    ax.plot(
        *mm["gd_basin_x"], "s", color="tab:blue", ms=9, mec="k", label=f"GD end, f={mm['gd_basin_f']:.3f}"
    )
    ax.plot(*mm["start"], "k^", ms=9, label="start")
    ax.plot(0, 0, "r*", ms=14, label="global minimum")
    ax.set_xlabel("x₁")
    ax.set_ylabel("x₂")
    ax.set_title("GD stays in the nearest local minimum; SGD's noise carries it out")
    ax.legend(fontsize=8, loc="upper left")
    ctx.save_figure(fig, "methods_race_multiminima")


def _trajectories_json(ctx: StudyContext, cfg: dict[str, Any], races: dict[str, dict[str, Any]]) -> str:
    """Write ``trajectories.json``: per function, a contour grid and the paths of every method at every lr."""
    out: dict[str, Any] = {"functions": {}}
    for fn_name, race in races.items():
        xs, ys, zz, levels = _grid(fn_name, cfg)
        sub = slice(None, None, 3)
        runs = {
            label: {
                f"{lr:g}": [[round(float(a), 5), round(float(b), 5)] for a, b in v[0] if math.isfinite(a + b)]
                for lr, v in grid.items()
            }
            for label, grid in race["det"].items()
        }
        out["functions"][fn_name] = {
            "function": fn_name,
            "options": _task_kw(fn_name, cfg, 0.0),
            "start": list(race["start"]),
            "contours": {
                "x": np.round(xs[sub], 4).tolist(),
                "y": np.round(ys[sub], 4).tolist(),
                "z": np.round(zz[sub, sub], 4).tolist(),
                "levels": np.round(levels, 5).tolist(),
            },
            "labels": {label: METHODS[label][2] for label in race["det"]},
            "runs": runs,
        }
    path = ctx.out / "trajectories.json"
    from descentlab.safe_write import write_text

    write_text(path, json.dumps(out))  # atomic; never through a planted link
    return path.name


STEP_KEYS = ("rosenbrock_steps", "quadratic_steps", "multiminima_steps", "polish_steps")


def _apply_steps(cfg: dict[str, Any]) -> dict[str, Any]:
    """``steps`` (when set) overrides every run length: ``--set steps=300`` shortens the whole study."""
    n = cfg.get("steps")
    if n is None:
        return cfg
    if isinstance(n, bool) or not isinstance(n, (int, float)) or int(n) != n or n < 1:
        raise ValueError(f"methods-race: setting 'steps' must be an integer >= 1, got {n!r}")
    return {**cfg, **{k: int(n) for k in STEP_KEYS}}


def run(ctx: StudyContext, cfg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Measurement]]:
    """Tune and race every method on both functions, run the multiminima escape, draw the figures, measure."""
    cfg = _apply_steps(cfg)
    for fn_name in ("rosenbrock", "quadratic"):
        for needed in ("gd", "heavy_ball"):
            if needed not in cfg["lrs"][fn_name]:
                raise ValueError(
                    f"methods-race: the lr grids must include {needed!r} on {fn_name} (its claims)"
                )
    evaluate_r = ("gd", *ADAPTIVE_OR_MOMENTUM)
    races = {
        "rosenbrock": _race(ctx, cfg, "rosenbrock", evaluate_r),
        "quadratic": _race(ctx, cfg, "quadratic", ("gd", "heavy_ball")),
    }
    mm = _multiminima(ctx, cfg)
    _plot_race(ctx, cfg, races)
    _plot_multiminima(ctx, cfg, mm)
    gif = _gif(ctx, cfg, races["rosenbrock"]) if cfg["gif"] else None
    traj = _trajectories_json(ctx, cfg, races)

    numbers: dict[str, Any] = {"gif": gif, "trajectories": traj, "starts": {}}
    for fn_name, race in races.items():
        numbers[fn_name] = {
            label: {
                "best_final_loss": _best(race, label)[0],
                "best_lr": _best(race, label)[1],
                "tuned": race["tuned"][label].to_dict(),
                "noisy_final_loss_mean": float(np.mean([c[2] for c in race["noisy"][label]])),
                "main_lr": race["main_lr"][label],
            }
            for label, grid in race["det"].items()
        }
        numbers["starts"][fn_name] = [
            list(start_point(fn_name, s, float(cfg["start_spread"]))) for s in eval_seeds(cfg)
        ]
    rb, qd = numbers["rosenbrock"], numbers["quadratic"]
    steps_r, steps_q = int(cfg["rosenbrock_steps"]), int(cfg["quadratic_steps"])
    target = float(cfg["rosenbrock_target"])
    race_r, race_q = races["rosenbrock"], races["quadratic"]
    to_target = {
        lab: [censored_steps(v[1], target, steps_r) for v in race_r["eval"][lab]] for lab in race_r["eval"]
    }
    for lab, per in to_target.items():
        rb[lab]["steps_to_target_per_start"] = per
    n_seeds = len(eval_seeds(cfg))

    def faster(group: tuple[str, ...]) -> Measurement:
        labs = [lab for lab in group if lab in to_target]
        if not labs:
            return Measurement([math.nan] * n_seeds, "no method of the group in the lr grids")
        vals = [min(log_ratio(to_target["gd"][i], to_target[lab][i]) for lab in labs) for i in range(n_seeds)]
        off = [lab for lab in ("gd", *labs) if not race_r["tuned"][lab].bracketed]

        def fmt(x: float) -> str:
            return "never" if x > steps_r else f"{x:.0f}"

        return Measurement(
            vals,
            f"steps to f ≤ {target:g} per start (of {steps_r}): "
            + "; ".join(
                f"{METHODS[lab][2]} (lr {race_r['main_lr'][lab]:g}) "
                + ", ".join(fmt(x) for x in to_target[lab])
                for lab in ("gd", *labs)
            ),
            inconclusive=f"lr grid does not bracket the optimum for {off}" if off else None,
        )

    fq = {lab: [max(v[2], 1e-300) for v in race_q["eval"][lab]] for lab in ("gd", "heavy_ball")}
    off_q = [lab for lab in ("gd", "heavy_ball") if not race_q["tuned"][lab].bracketed]
    for lab, per in fq.items():
        qd[lab]["final_loss_per_start"] = per
    numbers["multiminima"] = {
        "gd_basin_f": mm["gd_basin_f"],
        "gd_basin_x": mm["gd_basin_x"],
        "sgd_basin_f": mm["sgd_basin_f"],
        "sgd_basin_x": mm["sgd_basin_x"],
    }
    measured = {
        "rosenbrock_momentum_faster_than_gd": faster(MOMENTUM),
        "rosenbrock_adaptive_faster_than_gd": faster(ADAPTIVE),
        "quadratic_heavy_ball_beats_gd": Measurement(
            [log_ratio(a, b) for a, b in zip(fq["gd"], fq["heavy_ball"])],
            f"final loss after {steps_q} steps per start: heavy-ball (lr {race_q['main_lr']['heavy_ball']:g}) "
            + ", ".join(f"{v:.3g}" for v in fq["heavy_ball"])
            + f"; GD (lr {race_q['main_lr']['gd']:g}) "
            + ", ".join(f"{v:.3g}" for v in fq["gd"]),
            inconclusive=f"lr grid does not bracket the optimum for {off_q}" if off_q else None,
        ),
        "sgd_escapes_local_minimum": Measurement(
            [mm["gd_basin_f"] - f for f in mm["sgd_basin_f"]],
            f"GD ends at {np.round(mm['gd_basin_x'], 2).tolist()} with f={mm['gd_basin_f']:.3f}; SGD ends "
            f"(polished) with f = {', '.join(f'{f:.3f}' for f in mm['sgd_basin_f'])}",
        ),
    }

    converged = {lab: v for lab, v in qd.items() if v["best_final_loss"] < 1e-4}
    ctx.check(
        "noise_floor",
        f"with gradient noise σ={cfg['noise']:g} the methods that converge deterministically (final loss < 1e-4 on "
        "the quadratic) stall at a noise floor > 100x their deterministic loss (same lr and start)",
        len(converged) >= 1
        and all(v["noisy_final_loss_mean"] > 100 * v["best_final_loss"] for v in converged.values()),
        ", ".join(
            f"{METHODS[k][2]} {v['noisy_final_loss_mean']:.3g} vs {v['best_final_loss']:.3g}"
            for k, v in converged.items()
        ),
    )
    ctx.check(
        "gd_stays_in_a_local_minimum",
        "GD from (2.3, −1.7) on multiminima ends in a local, not the global, minimum (f > 0.1 after polishing)",
        mm["gd_basin_f"] > 0.1,
        f"f = {mm['gd_basin_f']:.3f} at {np.round(mm['gd_basin_x'], 2).tolist()}",
    )
    return numbers, measured


_LRS = {
    "rosenbrock": {
        "gd": [1e-3, 2e-3, 4e-3],
        "heavy_ball": [1e-4, 3e-4, 1e-3],
        "nesterov": [1e-4, 3e-4, 1e-3],
        "adagrad": [0.1, 0.3, 1.0],
        "rmsprop": [3e-3, 1e-2, 3e-2],
        "adam": [3e-2, 1e-1, 3e-1, 1.0],
        "adamw": [3e-2, 1e-1, 3e-1, 1.0],
        "sign": [1e-3, 3e-3, 1e-2],
        "normalized": [3e-3, 1e-2, 3e-2],
    },
    "quadratic": {
        "gd": [3e-3, 1e-2, 1.9e-2],
        "heavy_ball": [1e-3, 3e-3, 1e-2],
        "nesterov": [1e-3, 3e-3, 1e-2],
        "adagrad": [0.1, 0.3, 1.0],
        "rmsprop": [3e-3, 1e-2, 3e-2],
        "adam": [1e-2, 3e-2, 1e-1],
        "adamw": [1e-2, 3e-2, 1e-1],
        "sign": [3e-3, 1e-2, 3e-2],
        "normalized": [3e-3, 1e-2, 3e-2],
    },
}

_BASE = {
    "steps": None,
    "rosenbrock_steps": 1000,
    "rosenbrock_target": 0.1,
    "quadratic_steps": 200,
    "kappa": 100.0,
    "angle": math.pi / 6,
    "noise": 1.0,
    "lrs": _LRS,
    "start_spread": 0.1,
    "tuning_seeds": 3,
    "race_check_every": 10,
    "noisy_seeds": 1,
    "multiminima_steps": 1000,
    "multiminima_lr": 0.05,
    "multiminima_noise": 2.5,
    "polish_steps": 1000,
    "gif": True,
    "gif_frames": 40,
}

register(
    Study(
        name="methods-race",
        description="Nine optimizers race on Rosenbrock and an ill-conditioned quadratic (lrs tuned per method); "
        "GD vs SGD on many minima.",
        slide="seed 002, 'Много методов' (Rosenbrock, adaptive methods) and 'Весёлые истории' (local minima)",
        seconds=(44, 250),  # quick: the [5, 10] plan alone, 1 thread, 2026-12-07 (Zen 4); full: estimated
        quick={
            **_BASE,
            "seeds": 10,
            "seed_blocks": [5, 10],
        },  # issue 26: split halves (3 fixed starts disagreed)
        full={
            **_BASE,
            "rosenbrock_steps": 1500,
            "quadratic_steps": 300,
            "seeds": 8,
            "tuning_seeds": 3,
            "noisy_seeds": 3,
            "gif_frames": 60,
        },
        run=run,
        predictions=PREDICTIONS,
        limits={"start_spread": (0.0, 1.0), "rosenbrock_target": (1e-12, 1e3)},
    )
)
