"""The methods race on 2-D functions: trajectories of nine optimizers on Rosenbrock and an ill-conditioned quadratic.

Seed 002, "Много методов" ("Rosenbrock Function. Adaptive stochastic gradient algorithms. Learning rate 0.003"):
GD, heavy-ball, Nesterov, AdaGrad, RMSProp, Adam, AdamW, sign and normalized steepest descent race from the same
start, deterministically and with Gaussian gradient noise; each method runs a small grid of learning rates (its
trajectories are saved to ``trajectories.json`` for the HTML report). Seed 002, "Весёлые истории": "GD converges to
a local minimum; SGD jumps out of local minima" — on ``multiminima`` GD from (2.3, -1.7) settles in the nearest
local minimum, while SGD with gradient noise ends in a lower basin (found by polishing its last iterate with GD).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from descentlab.studies import Claim, Study, StudyContext, register
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
ADAPTIVE_OR_MOMENTUM = ("heavy_ball", "nesterov", "rmsprop", "adam", "adamw")


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


def _race(ctx: StudyContext, cfg: dict[str, Any], fn_name: str) -> dict[str, Any]:
    """Run every method over its lr grid (deterministic) and at its main lr with noise; collect paths and losses."""
    steps = int(cfg[f"{fn_name}_steps"])
    lrs: dict[str, list[float]] = cfg["lrs"][fn_name]
    unknown = sorted(set(lrs) - set(METHODS))
    if unknown:
        raise ValueError(f"methods-race: unknown methods {unknown}; allowed: {sorted(METHODS)}")
    det_task = _task_kw(fn_name, cfg, 0.0)
    from descentlab import tasks

    task = tasks.get(fn_name, **det_task)
    start = task.start
    f0 = float(task.value(np.array(start)))
    out: dict[str, Any] = {"start": start, "f0": f0, "det": {}, "noisy": {}, "main_lr": {}}
    common = {"steps": steps, "eval_every": steps, "device": "cpu", "callbacks": [Callback(_coords, every=1)]}
    for label, grid in lrs.items():
        name, hp, _ = METHODS[label]
        out["det"][label] = {}
        for lr in grid:
            r = ctx.train(
                fn_name, optimizer=name, lr=float(lr), hparams=hp, task_kw=det_task, seed=0, **common
            )
            out["det"][label][float(lr)] = (_path(r, start), _losses(r, f0), _final(r))
        main = _best(out, label)[1]  # race each method at its best lr of the grid
        out["main_lr"][label] = main
        noisy_kw = _task_kw(fn_name, cfg, float(cfg["noise"]))
        out["noisy"][label] = [
            ctx.train(fn_name, optimizer=name, lr=main, hparams=hp, task_kw=noisy_kw, seed=s, **common)
            for s in range(int(cfg["seeds"]))
        ]
        out["noisy"][label] = [(_path(r, start), _losses(r, f0), _final(r)) for r in out["noisy"][label]]
    return out


def _best(race: dict[str, Any], label: str) -> tuple[float, float]:
    """(best final loss, its lr) of a method over its deterministic lr grid."""
    finals = {lr: v[2] for lr, v in race["det"][label].items()}
    lr = min(finals, key=lambda k: finals[k])
    return finals[lr], lr


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
            noisy = np.array([c[1] for c in race["noisy"][label]])
            ax.plot(
                np.arange(noisy.shape[1]),
                np.maximum(noisy.mean(0), 1e-16),
                ":",
                lw=1,
                color=colors[i % len(colors)],
            )
        ax.set_yscale("log")
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
    cb = [Callback(_coords, every=1)]
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
        for s in range(int(cfg["seeds"]))
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
    path.write_text(json.dumps(out))
    return path.name


def run(ctx: StudyContext, cfg: dict[str, Any]) -> tuple[dict[str, Any], list[Claim]]:
    """Race every method on both functions, run the multiminima escape, draw the figures and check the claims."""
    races = {fn_name: _race(ctx, cfg, fn_name) for fn_name in ("rosenbrock", "quadratic")}
    mm = _multiminima(ctx, cfg)
    _plot_race(ctx, cfg, races)
    _plot_multiminima(ctx, cfg, mm)
    gif = _gif(ctx, cfg, races["rosenbrock"]) if cfg["gif"] else None
    traj = _trajectories_json(ctx, cfg, races)

    numbers: dict[str, Any] = {"gif": gif, "trajectories": traj}
    for fn_name, race in races.items():
        numbers[fn_name] = {
            label: {
                "final_loss": {f"{lr:g}": v[2] for lr, v in grid.items()},
                "best_final_loss": _best(race, label)[0],
                "best_lr": _best(race, label)[1],
                "noisy_final_loss_mean": float(np.mean([c[2] for c in race["noisy"][label]])),
                "main_lr": race["main_lr"][label],
            }
            for label, grid in race["det"].items()
        }
    rb, qd = numbers["rosenbrock"], numbers["quadratic"]
    for needed in ("gd", "heavy_ball"):
        if needed not in rb or needed not in qd:
            raise ValueError(
                f"methods-race: the lr grids must include {needed!r} on both functions (its claims)"
            )
    target = float(cfg["rosenbrock_target"])
    race_r = races["rosenbrock"]
    placed = {  # each method at its best lr of the grid for the race: first to the target, else lowest final
        lab: min(race_key(v[1], target) for v in race_r["det"][lab].values()) for lab in race_r["det"]
    }
    for lab, (first, _) in placed.items():
        rb[lab]["steps_to_target"] = first if math.isfinite(first) else None
    gd_r = placed["gd"]
    better = {lab: placed[lab] for lab in ADAPTIVE_OR_MOMENTUM if lab in rb}

    def _place(key: tuple[float, float]) -> str:
        return f"step {key[0]:.0f}" if math.isfinite(key[0]) else f"never (final {key[1]:.3g})"
    steps_r, steps_q = int(cfg["rosenbrock_steps"]), int(cfg["quadratic_steps"])
    converged = {lab: v for lab, v in qd.items() if v["best_final_loss"] < 1e-4}
    numbers["multiminima"] = {
        "gd_basin_f": mm["gd_basin_f"],
        "gd_basin_x": mm["gd_basin_x"],
        "sgd_basin_f": mm["sgd_basin_f"],
        "sgd_basin_x": mm["sgd_basin_x"],
    }
    escaped = [f < mm["gd_basin_f"] - 1e-3 for f in mm["sgd_basin_f"]]
    claims = [
        Claim(
            f"On Rosenbrock, momentum and adaptive methods race down the valley faster than plain GD: they reach "
            f"f ≤ {target:g} in fewer steps (or, when neither does within {steps_r} steps, end lower), each at its "
            "best learning rate of the grid.",
            bool(better) and all(v < gd_r for v in better.values()),
            f"first step with f ≤ {target:g}: GD {_place(gd_r)}; "
            + ", ".join(f"{METHODS[k][2]} {_place(v)}" for k, v in better.items()),
        ),
        Claim(
            f"On the ill-conditioned quadratic (κ={cfg['kappa']:g}) heavy-ball beats GD.",
            qd["heavy_ball"]["best_final_loss"] < 1e-3 * qd["gd"]["best_final_loss"],
            f"best final loss after {steps_q} steps: heavy-ball {qd['heavy_ball']['best_final_loss']:.3g} "
            f"(lr {qd['heavy_ball']['best_lr']:g}) vs GD {qd['gd']['best_final_loss']:.3g} (lr {qd['gd']['best_lr']:g})",
        ),
        Claim(
            "With gradient noise the methods stall at a noise floor far above their deterministic loss.",
            len(converged) >= 2
            and all(v["noisy_final_loss_mean"] > 100 * v["best_final_loss"] for v in converged.values()),
            f"quadratic, σ={cfg['noise']:g}, mean over {cfg['seeds']} seeds, same lr: "
            + ", ".join(
                f"{METHODS[k][2]} {v['noisy_final_loss_mean']:.3g} vs {v['best_final_loss']:.3g}"
                for k, v in converged.items()
            ),
        ),
        Claim(
            "GD converges to the nearest local minimum; SGD jumps out of local minima into a lower one.",
            mm["gd_basin_f"] > 0.1 and sum(escaped) > len(escaped) / 2,
            f"GD ends at {np.round(mm['gd_basin_x'], 2).tolist()} with f={mm['gd_basin_f']:.3f}; SGD ends (polished) "
            f"with f = {', '.join(f'{f:.3f}' for f in mm['sgd_basin_f'])}: {sum(escaped)}/{len(escaped)} lower",
        ),
    ]
    return numbers, claims


_LRS = {
    "rosenbrock": {
        "gd": [3e-4, 1e-3, 2e-3],
        "heavy_ball": [1e-4, 3e-4, 1e-3],
        "nesterov": [1e-4, 3e-4, 1e-3],
        "adagrad": [0.1, 0.3, 1.0],
        "rmsprop": [3e-3, 1e-2, 3e-2],
        "adam": [1e-2, 3e-2, 1e-1],
        "adamw": [1e-2, 3e-2, 1e-1],
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
    "rosenbrock_steps": 500,
    "rosenbrock_target": 0.1,
    "quadratic_steps": 200,
    "kappa": 100.0,
    "angle": math.pi / 6,
    "noise": 1.0,
    "lrs": _LRS,
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
        description="Nine optimizers race on Rosenbrock and an ill-conditioned quadratic; GD vs SGD on many minima.",
        slide="seed 002, 'Много методов' (Rosenbrock, adaptive methods) and 'Весёлые истории' (local minima)",
        seconds=(57, 198),  # measured quick/full wall s on the 2-core CPU (tour scheduling)
        quick={**_BASE, "seeds": 3},
        full={**_BASE, "rosenbrock_steps": 1500, "quadratic_steps": 300, "seeds": 8, "gif_frames": 60},
        run=run,
    )
)
