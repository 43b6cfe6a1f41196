"""Mini-batch size: error vs iterations and vs gradient evaluations, the 1/B law of the gradient variance, and the
steps to a target loss against B (linear scaling up to a critical batch size, then a plateau).

Seed 003, "The convergence of mini-batch SGD", Theorem 1: with E||grad f_i - grad f||^2 <= sigma^2,
(1/T) sum_t E||grad f(x_t)||^2 <= O(L (f(x_0) - f*)/T + sigma/sqrt(B) sqrt(L (f(x_0) - f*)/T)). Solving for the
iterations T that reach a target eps gives T(B) ~ L (f(x_0) - f*)/eps (1 + sigma^2/(B eps)): for B below the critical
batch size B* ~ sigma^2/eps the steps fall ~1/B, beyond it they flatten at the deterministic count (McCandlish et al.
2018 measure the same S(B) = S_min (1 + B_noise/B) with the learning rate tuned for each B).

Two parts. (1) On ``logreg`` (m = 200) SGD with one constant step for B from 1 to m (figure panels, checks) and the
variance of the stream's mini-batch gradients at a fixed point (sampling B of m points *without* replacement
multiplies the variance by the finite-population factor (m - B) / (m - 1): a check, the sampler's identity).
(2) The claims: on ``softmax_digits`` plain SGD with its learning rate tuned for each B on tuning seeds (metric:
steps to the target training loss; grid started from the linear-scaling guess lr_1 * B, capped), then the steps to
the target on every evaluation seed; per seed, the log-log slope of steps vs B in the small-B and large-B regimes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from descentlab import tasks
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
from descentlab.train import Callback, StepContext

PREDICTIONS = (
    Prediction(
        name="steps_fall_as_1_over_B",
        statement="Below the critical batch size the steps to a target fall ~1/B (the noise term σ/√B of Theorem 1 "
        "dominates: T(B) ∝ 1 + σ²/(Bε)).",
        source="seed 003, slide 'The convergence of mini-batch SGD', Theorem 1 (McCandlish et al. 2018, Fig. 1 "
        "for the tuned-lr form)",
        quantity="per seed: |s + 1|, s = least-squares slope of log(steps to train loss ≤ target) vs log(B) over "
        "the small-B regime (small_regime), each B at its own lr tuned on the tuning seeds",
        direction="<",
        threshold=0.3,
        tolerance="S(B) = S_min(1 + B*/B) has slope −1/(1 + B/B*): within [−1, −0.8] for B ≤ B*/4; ±0.3 around "
        "−1 admits that and excludes a flat curve (0) or a √B law (−0.5)",
    ),
    Prediction(
        name="steps_flatten_beyond_critical_batch",
        statement="Beyond the critical batch size the steps to the target flatten: a larger batch no longer "
        "buys fewer steps (the deterministic term L(f(x₀) − f*)/T dominates).",
        source="seed 003, slide 'The convergence of mini-batch SGD', Theorem 1 (McCandlish et al. 2018, Fig. 1)",
        quantity="per seed: least-squares slope of log(steps to train loss ≤ target) vs log(B) over the large-B "
        "regime (large_regime), each B at its own tuned lr",
        direction=">",
        threshold=-0.5,
        tolerance="S(B) = S_min(1 + B*/B) has slope within [−0.2, 0] for B ≥ 4B*; −0.5 is halfway to the 1/B law",
    ),
)


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


class FirstHit:
    """A per-step callback: logs the full training loss as ``full_train_loss`` until it is <= ``target`` and remembers
    that step. Everything it gives is logged (``Callback(hit, every=1, recorded=True)``), so a stored run can be
    reused: :func:`first_hit` reads the step back from the run."""

    METRIC = "full_train_loss"

    def __init__(self, target: float):
        self.target = float(target)
        self.step: int | None = None

    def __call__(self, ctx: StepContext) -> dict[str, float] | None:
        if self.step is not None:
            return None
        with torch.no_grad():
            loss = float(ctx.task.loss(ctx.model, ctx.task.train_data))
        if loss <= self.target:
            self.step = int(ctx.step)
        return {self.METRIC: loss}


def first_hit(run: Any, target: float) -> int | None:
    """The first step at which ``run`` logged a full training loss <= ``target`` (:class:`FirstHit`), or None."""
    return next((int(k) for k, v in run.metrics(FirstHit.METRIC) if v <= target), None)


def loglog_slope(x: Any, y: Any) -> float:
    """Least-squares slope of log(y) vs log(x); nan when a value is not finite and positive or < 2 points."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.size < 2 or not (np.all(np.isfinite(y)) and np.all(y > 0) and np.all(x > 0)):
        return math.nan
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def regime_slopes(
    sizes: list[int], steps: dict[int, float], small: list[int], large: list[int]
) -> tuple[float, float]:
    """(slope over the small-B regime, slope over the large-B regime) of log steps vs log B for one seed."""
    known = set(sizes)
    missing = [b for b in (*small, *large) if b not in known]
    if missing:
        raise ValueError(f"batch-size: regime batch sizes {missing} are not in race_batch_sizes {sizes}")
    return (
        loglog_slope(small, [steps[b] for b in small]),
        loglog_slope(large, [steps[b] for b in large]),
    )


def noise_scales(task: Any, model: torch.nn.Module) -> dict[str, float]:
    """McCandlish et al.'s noise scales at the model's parameters over the training set: B_simple = tr Σ / |G|² and
    B_noise = tr(HΣ) / (GᵀHG) (Σ the per-sample gradient covariance, H the Hessian of the training loss)."""
    from torch.func import functional_call, grad, hessian, vmap

    names = [k for k, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for _, p in model.named_parameters()]).double()

    def unflat(v: torch.Tensor) -> dict[str, torch.Tensor]:
        out, i = {}, 0
        for k, sh in zip(names, shapes):
            n = int(np.prod(sh))
            out[k] = v[i : i + n].reshape(sh)
            i += n
        return out

    class _Bound(torch.nn.Module):
        def __init__(self, v: torch.Tensor):
            super().__init__()
            self.v = v

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return functional_call(model, unflat(self.v), (x,))

    data = tuple(d.double() if d.is_floating_point() else d for d in task.train_data)

    def one(v: torch.Tensor, *sample: torch.Tensor) -> torch.Tensor:
        return task.loss(_Bound(v), tuple(s.unsqueeze(0) for s in sample))

    def full(v: torch.Tensor) -> torch.Tensor:
        return task.loss(_Bound(v), data)

    per = vmap(grad(one), in_dims=(None, *([0] * len(data))))(flat, *data)
    g = per.mean(0)
    dev = per - g
    h = hessian(full)(flat)
    return {
        "B_simple": float(dev.pow(2).sum(1).mean() / g.dot(g)),
        "B_noise": float(torch.einsum("ni,ij,nj->", dev, h, dev) / dev.shape[0] / (g @ h @ g)),
    }


def _steps_to_target(
    ctx: StudyContext, cfg: dict[str, Any], b: int, lr: float, seed: int, cap: int
) -> tuple[float, Any]:
    """Train SGD at batch ``b`` and ``lr`` until the training loss is <= the target (checked every step) or ``cap``
    steps; returns (first step at the target or inf, the run)."""
    hit = FirstHit(float(cfg["target_loss"]))
    run_ = ctx.train(
        str(cfg["race_task"]),
        optimizer="sgd",
        lr=float(lr),
        batch_size=int(b),
        steps=int(cap),
        eval_every=int(cfg["race_eval_every"]),
        seed=int(seed),
        callbacks=[Callback(hit, every=1, recorded=True)],
        stop_when=lambda _m: hit.step is not None,
        device="cpu",
    )
    step = first_hit(run_, hit.target)  # from the run's metrics: a run reused from the store has them too
    if run_.status != "finished" or step is None:
        return math.inf, run_
    return float(step), run_


def _race(ctx: StudyContext, cfg: dict[str, Any]) -> dict[str, Any]:
    """Tune SGD's lr for each B on the tuning seeds (steps to the target), then measure the evaluation seeds."""
    sizes = [int(b) for b in cfg["race_batch_sizes"]]
    n_train = len(tasks.get(str(cfg["race_task"])).train_data[0])
    bad = [b for b in sizes if not 1 <= b <= n_train]
    if bad:
        raise ValueError(f"batch-size: race batch sizes must be in [1, {n_train}], got {bad}")
    cap = int(cfg["max_steps"])
    tuned: dict[int, Any] = {}
    steps: dict[int, list[float]] = {}
    last_run: Any = None
    for b in sizes:
        guess = min(float(cfg["lr_at_batch_1"]) * b, float(cfg["lr_cap"]))
        best = [math.inf]

        def score(lr: float, seed: int, b: int = b, best: list[float] = best) -> float:
            # a run slower than 3x the best one so far cannot be the best lr: stop it there (scored inf)
            limit = cap if not math.isfinite(best[0]) else min(cap, int(3 * best[0]) + 20)
            s, _ = _steps_to_target(ctx, cfg, b, lr, seed, limit)
            best[0] = min(best[0], s)
            return s

        tuned[b] = tune(
            score,
            [guess / 2, guess, guess * 2],
            tuning_seeds(cfg),
            metric=f"mean steps to training loss ≤ {cfg['target_loss']:g} over the tuning seeds",
        )
        steps[b] = []
        for s in eval_seeds(cfg):
            n, last_run = _steps_to_target(ctx, cfg, b, tuned[b].value, s, cap)
            steps[b].append(n)
    return {"sizes": sizes, "tuned": tuned, "steps": steps, "last_run": last_run}


def run(ctx: StudyContext, cfg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Measurement]]:
    """The logreg panels and checks, then the steps-to-target race over B (the claims), and the figure."""
    import matplotlib.pyplot as plt

    task_kw = {"m": int(cfg["m"]), "n": int(cfg["n"]), "mu": float(cfg["mu"])}
    task = tasks.get("logreg", **task_kw)
    m = int(cfg["m"])
    sizes = [int(b) for b in cfg["batch_sizes"]]
    bad = [b for b in sizes if not 1 <= b <= m]
    if bad:
        raise ValueError(f"batch-size: batch sizes must be in [1, m={m}], got {bad}")
    steps, every, lr = int(cfg["steps"]), int(cfg["eval_every"]), float(cfg["lr"])
    seeds = eval_seeds(cfg)

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
            for s in seeds
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

    ctx.check(
        "variance_1_over_B",
        "sampler identity: E‖g_B − ∇f‖² = σ²/B·(m−B)/(m−1) for B of m drawn without replacement (log-log slope "
        "−1 after the finite-population factor, every B within 25 %)",
        all(abs(s + 1) < 0.1 for s in slopes.values()) and worst < 0.25,
        "fitted slopes "
        + ", ".join(f"{k}: {v:.3f} (raw {raw_slopes[k]:.3f})" for k, v in slopes.items())
        + f"; max |measured / (σ²/B·(m−B)/(m−1)) − 1| = {worst:.3f}",
    )
    ctx.check(
        "equal_iterations_larger_batch_lower",
        f"logreg, one lr {lr:g} for every B: after {steps} iterations the final error falls with B (the noise "
        "floor ∝ α/B at a shared lr)",
        all(final[a] > final[b] for a, b in zip(sizes, sizes[1:])),
        ", ".join(f"B={b}: {final[b]:.3g}" for b in sizes),
    )

    race = _race(ctx, cfg)
    rsizes, tuned, rsteps = race["sizes"], race["tuned"], race["steps"]
    small = [int(b) for b in cfg["small_regime"]]
    large = [int(b) for b in cfg["large_regime"]]
    per_seed = [
        regime_slopes(rsizes, {b: rsteps[b][i] for b in rsizes}, small, large) for i in range(len(seeds))
    ]
    scales = noise_scales(tasks.get(str(cfg["race_task"])), race["last_run"].model)
    ctx.check(
        "critical_batch_between_regimes",
        "McCandlish's noise scale B_noise = tr(HΣ)/(GᵀHG), at the end of the largest-B run (near the target), "
        "lies between the small-B and the large-B regimes",
        max(small) < scales["B_noise"] < min(large),
        f"B_noise = {scales['B_noise']:.3g}, B_simple = {scales['B_simple']:.3g}; regimes {small} and {large}",
    )

    def forced(regime: list[int]) -> str | None:
        off = [b for b in regime if not tuned[b].bracketed]
        return f"the lr grid does not bracket the optimum for B = {off}" if off else None

    def text(i: int) -> str:
        return f"slope {per_seed[i][0]:.2f} / {per_seed[i][1]:.2f}"

    lr_text = ", ".join(f"B={b}: lr {tuned[b].value:g}" for b in rsizes)
    steps_text = "; ".join(
        f"B={b}: " + ", ".join("never" if not math.isfinite(x) else f"{x:.0f}" for x in rsteps[b])
        for b in rsizes
    )
    measured = {
        "steps_fall_as_1_over_B": Measurement(
            [abs(s + 1) for s, _ in per_seed],
            f"small-B slopes per seed {', '.join(f'{s:.3f}' for s, _ in per_seed)} over B = {small}; steps per "
            f"seed: {steps_text}; tuned {lr_text}",
            inconclusive=forced(small),
        ),
        "steps_flatten_beyond_critical_batch": Measurement(
            [g for _, g in per_seed],
            f"large-B slopes per seed {', '.join(f'{g:.3f}' for _, g in per_seed)} over B = {large}; "
            + "; ".join(text(i) for i in range(len(seeds))),
            inconclusive=forced(large),
        ),
    }
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
        "race": {
            "task": cfg["race_task"],
            "target_loss": float(cfg["target_loss"]),
            "tuned": {str(b): tuned[b].to_dict() for b in rsizes},
            "steps_to_target": {str(b): rsteps[b] for b in rsizes},
            "slopes_small_large_per_seed": per_seed,
            "noise_scales": scales,
        },
    }

    fig, grid = plt.subplots(2, 2, figsize=(15, 10))
    axes = grid.ravel()
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
    axes[0].set_title(f"logreg, SGD, α={lr:g}: error vs iterations\n(mean, min–max over {len(seeds)} seeds)")
    axes[1].set_title("logreg: error vs gradient evaluations\n(one lr for every B)")
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
    ax.set_title(f"logreg: variance of the mini-batch gradient (m={m})\nfitted slope {slopes['x0']:.2f}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    ax = axes[3]
    sb = np.array(rsizes, dtype=float)
    mat = np.array([rsteps[b] for b in rsizes], dtype=float)
    for i in range(mat.shape[1]):
        ax.plot(
            sb, mat[:, i], "o", color="C0", alpha=0.5, ms=4, label="one evaluation seed" if i == 0 else None
        )
    with np.errstate(invalid="ignore"):
        ax.plot(sb, np.exp(np.nanmean(np.log(mat), 1)), "-", color="C0", label="geometric mean over seeds")
    ref = float(np.nanmean(mat[0])) if np.isfinite(mat[0]).any() else 1.0
    ax.plot(sb, ref / sb, ":", color="k", lw=1, label="∝ 1/B")
    for reg, col in ((small, "C2"), (large, "C3")):
        ax.axvspan(min(reg) / 1.2, max(reg) * 1.2, color=col, alpha=0.1)
    ax.axvline(scales["B_noise"], color="C1", ls="--", lw=1, label=f"B_noise = {scales['B_noise']:.0f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(bottom=max(1.0, np.nanmin(mat[np.isfinite(mat)]) / 2) if np.isfinite(mat).any() else 1.0)
    ax.set_xlabel("batch size B")
    ax.set_ylabel(f"steps to training loss ≤ {cfg['target_loss']:g}")
    ax.set_title(
        f"{cfg['race_task']}: steps to the target, lr tuned per B\n(shaded: the small-B and large-B regimes)"
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    ctx.save_figure(fig, "batch_size")
    return numbers, measured


_BASE = {
    "m": 200,
    "n": 10,
    "mu": 1.0,
    "lr": 0.1,
    "batch_sizes": [1, 4, 16, 64, 200],
    "steps": 400,
    "eval_every": 5,
    "seeds": 3,
    "draws": 400,
    "evals_budget": 1000,
    "race_task": "softmax_digits",
    "target_loss": 0.5,
    "race_batch_sizes": [1, 2, 4, 16, 64, 256, 1024],
    "small_regime": [1, 2, 4],
    "large_regime": [256, 1024],
    "lr_at_batch_1": 0.25,
    "lr_cap": 4.0,
    "max_steps": 3000,
    "race_eval_every": 10,
    "tuning_seeds": 3,
}

register(
    Study(
        name="batch-size",
        description="Mini-batch SGD: steps to a target fall ~1/B up to a critical batch, then flatten (lr tuned per "
        "B); logreg error vs iterations/evaluations; Var ∝ 1/B.",
        slide="seed 003, 'The convergence of mini-batch SGD', Theorem 1",
        seconds=(43, 250),  # quick: the [5, 10, 20] plan alone, 1 thread, 2026-12-07 (Zen 4); full: estimated
        quick={
            **_BASE,
            "seeds": 20,
            "seed_blocks": [5, 10, 20],
        },  # issue 26: split halves (3 fixed seeds disagreed)
        full={
            **_BASE,
            "batch_sizes": [1, 2, 5, 10, 20, 50, 100, 200],
            "steps": 1000,
            "seeds": 20,
            "seed_blocks": [10, 20],
            "draws": 2000,
            "race_batch_sizes": [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
            "large_regime": [256, 512, 1024],
            "tuning_seeds": 3,
        },
        run=run,
        predictions=PREDICTIONS,
        limits={"target_loss": (1e-3, 2.3)},
    )
)
