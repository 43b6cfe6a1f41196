"""SGD's noise floor and the step-size theory on the strongly convex ``logreg`` problem.

Seeds 001/002, "Гладкий PL-случай с постоянным шагом" and "Основные результаты сходимости SGD": for an L-smooth,
mu-strongly convex f with E||grad f_i||^2 <= sigma^2, SGD with a constant step alpha < 1/(2 mu) satisfies
E[f(x_k) - f*] <= (1 - 2 alpha mu)^k (f(x_0) - f*) + L sigma^2 alpha / (4 mu): linear convergence down to a plateau
proportional to alpha. The decreasing step alpha_k = (2k+1) / (2 mu (k+1)^2) converges as O(1/k). Full-batch GD's
stability threshold is 2/L: just below it GD converges (the control), just above it the minimum is unstable and GD
does not converge (the seed's "Типичное поведение: Divergence").

Evaluation seed s draws SGD's sample order and the starting point; the data set is fixed. Every claim is judged per
seed (one value per seed) over the declared seed plan (quick: 3 fixed seeds; full: O'Brien-Fleming looks after 10
and 20 seeds). The evaluation seeds of each step size train as one population (``descentlab.train_many``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from descentlab import tasks
from descentlab.studies import Measurement, Prediction, Study, StudyContext, eval_seeds, register

PLATEAU_BAND = 0.3
"""Allowed |slope - 1| of log plateau vs log alpha (see the prediction's tolerance)."""
CONVERGED_DECADES = 6.0
"""GD "converges" when its gap falls by at least this many decades within the run."""

PREDICTIONS = (
    Prediction(
        name="bound_holds",
        statement="SGD with a constant step α < 1/(2μ) guarantees E[f(x_k) − f*] ≤ (1−2αμ)^k [f(x₀) − f*] + "
        "Lσ²α/(4μ).",
        source="seed 001, slide 'Гладкий PL-случай с постоянным шагом' (seed 002, same theorem)",
        quantity="per seed: max over k and over the constant steps α of (mean gap over a window of window_steps "
        "steps starting at k) / (the bound at k, with this seed's f(x₀) − f* and the measured σ²)",
        direction="<",
        threshold=1.0,
        tolerance="the theorem's inequality: a ratio < 1 everywhere",
        scale="log",
        version=2,
    ),
    Prediction(
        name="plateau_proportional_to_alpha",
        statement="The constant-step noise term Lσ²α/(4μ) is proportional to α: the plateau scales ∝ α.",
        source="seed 001, slide 'Гладкий PL-случай с постоянным шагом'",
        quantity="per seed: |s − 1|, s = least-squares slope of log(plateau) vs log(α) over the constant steps "
        "(plateau = mean gap over the last tail_fraction of the run)",
        direction="<",
        threshold=PLATEAU_BAND,
        tolerance="theory band fixed in advance: around x* the stationary SGD error of the quadratic model is "
        "Σ_i α s_i / (2(2 − α h_i)) (h_i Hessian eigenvalues, s_i noise variances), whose log-log slope lies in "
        "[1, 1 + α_max L/(2 − α_max L)] = [1, 1.15] for α ≤ 0.2, L = 1.33; ±0.3 admits that and non-quadratic "
        "effects while excluding ∝ √α (slope 0.5) and ∝ α² (slope 2)",
    ),
    Prediction(
        name="decreasing_step_converges",
        statement="With the decreasing step α_k = (2k+1)/(2μ(k+1)²) the error keeps decreasing: "
        "E[f(x_k) − f*] ≤ Lσ²/(2μ²(k+1)) = O(1/k).",
        source="seed 001, slide 'Основные результаты сходимости SGD' (the decreasing-step theorem)",
        quantity="per seed: least-squares slope of log(gap) vs log(k) over k in [T/4, T]",
        direction="<",
        threshold=-0.5,
        tolerance="O(1/k) has slope −1 and a noise floor slope 0; −0.5 is the midpoint",
    ),
    Prediction(
        name="gd_unstable_above_threshold",
        statement="GD's step-size threshold is 2/L: just above it GD does not converge (the minimum is unstable), "
        "while just below it (the control, a check) it does.",
        source="seed 001, slide 'Типичное поведение' (Divergence); GD's stability condition α < 2/L",
        quantity="per seed (starting point): log10(mean gap over the last 10 % of the GD run / gap at step 0) at "
        "α = (1 + threshold_margin)·2/λmax(∇²f(x*))",
        direction=">",
        threshold=-CONVERGED_DECADES,
        tolerance="'converged' means 6 decades down within gd_steps steps (the control at (1 − margin)·2/L, "
        "local contraction ≤ 0.9 per step, needs < 100 steps); λmax(∇²f(x*)) ≤ L is the sharp local threshold "
        "(= L on a quadratic; 0.35 % below L here)",
        scale="log-given",
    ),
)


def _second_moment(task: Any, model: torch.nn.Module) -> float:
    """1/m sum_i ||grad f_i(x)||^2 at the model's parameters (per-sample gradients with torch.func)."""
    from torch.func import functional_call, grad, vmap

    params = {k: v.detach() for k, v in model.named_parameters()}
    data = task.train_data

    def one(p: dict[str, torch.Tensor], *sample: torch.Tensor) -> torch.Tensor:
        class _Bound(torch.nn.Module):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return functional_call(model, p, (x,))

        return task.loss(_Bound(), tuple(s.unsqueeze(0) for s in sample))

    grads = vmap(grad(one), in_dims=(None, *([0] * len(data))))(params, *data)
    sq = sum(g.reshape(g.shape[0], -1).pow(2).sum(1) for g in grads.values())
    return float(sq.mean())


def hessian_top_eigenvalue(task: Any, x: torch.Tensor | None = None) -> float:
    """λmax of logreg's Hessian mu I + 1/m A^T diag(s(1-s)) A at ``x`` (default x*), s = sigmoid(y <a, x>)."""
    a, y = task.train_data[0].double(), task.train_data[1].double()
    x = task.x_star if x is None else x.double().reshape(-1)
    s = torch.sigmoid(y * (a @ x))
    hess = task.mu * torch.eye(a.shape[1], dtype=torch.float64) + (a.T * (s * (1 - s))) @ a / a.shape[0]
    return float(torch.linalg.eigvalsh(hess)[-1])


def loglog_slope(x: Any, y: Any, floor: float = 1e-16) -> float:
    """Least-squares slope of log(y) against log(x) (y clipped below at ``floor``); nan with < 2 points."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0)
    if ok.sum() < 2:
        return math.nan
    return float(np.polyfit(np.log(x[ok]), np.log(np.maximum(y[ok], floor)), 1)[0])


def plateau(ks: Any, gap: Any, tail_fraction: float) -> float:
    """Mean of ``gap`` over the evaluations with k >= k_last (1 - tail_fraction)."""
    ks, gap = np.asarray(ks, dtype=float), np.asarray(gap, dtype=float)
    return float(gap[ks >= ks[-1] * (1 - tail_fraction)].mean())


def bound_ratio(ks: Any, gap: Any, alpha: float, mu: float, L: float, sigma2: float, window: int) -> float:
    """max over k of (mean of ``gap`` over ``window`` evaluations from k) / the constant-step bound at k.

    The bound (1 - 2 alpha mu)^k gap[0] + L sigma2 alpha / (4 mu) is decreasing, so a window is compared with the
    bound at its first point.
    """
    ks, gap = np.asarray(ks, dtype=float), np.asarray(gap, dtype=float)
    bound = (1 - 2 * alpha * mu) ** ks * gap[0] + L * sigma2 * alpha / (4 * mu)
    w = max(1, int(window))
    est = np.array([gap[j : j + w].mean() for j in range(len(gap))])
    return float(np.max(est / bound))


def gd_decades(gap: Any, tail: float = 0.1, floor: float = 1e-16) -> float:
    """log10(mean gap over the last ``tail`` of a GD curve / gap at its first point); non-finite points (a run that
    blew up) are dropped, so a diverged run counts with its last finite values."""
    g = np.asarray(gap, dtype=float)
    g = g[np.isfinite(g)]
    if g.size < 2:
        return math.nan
    n = max(1, int(math.ceil(tail * (g.size - 1))))
    return float(np.log10(max(float(g[-n:].mean()), floor) / max(float(g[0]), floor)))


def _curve(run: Any, key: str = "gap") -> tuple[np.ndarray, np.ndarray]:
    h = run.metrics(key)
    return np.array([s for s, _ in h], dtype=float), np.array([v for _, v in h], dtype=float)


def run(ctx: StudyContext, cfg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Measurement]]:
    """Train the grid, measure each prediction per seed, draw the figure and record the checks."""
    import matplotlib.pyplot as plt

    task_kw = {"m": cfg["m"], "n": cfg["n"], "mu": cfg["mu"]}
    task = tasks.get("logreg", **task_kw)
    mu, L, m = float(task.mu), float(task.L), int(cfg["m"])
    lam_star = hessian_top_eigenvalue(task)
    steps, every = int(cfg["steps"]), int(cfg["eval_every"])
    seeds = eval_seeds(cfg)
    alphas = sorted((float(a) for a in cfg["alphas"]), reverse=True)
    if any(a >= 1 / (2 * mu) for a in alphas):
        raise ValueError(f"sgd-noise-floor: the theorem needs α < 1/(2μ) = {1 / (2 * mu):g}, got {alphas}")
    common = {"task_kw": task_kw, "steps": steps, "eval_every": every, "device": "cpu"}

    def population(lr: float, **kw: Any) -> list[Any]:
        """The evaluation seeds at one step size as one population (``descentlab.train_many``)."""
        runs = ctx.train_many("logreg", "sgd", [{"seed": s, "lr": lr} for s in seeds], **kw)
        ctx.advance(len(seeds) - 1)
        return runs

    constant: dict[float, list[Any]] = {}
    sigma2 = 0.0
    for a in alphas:
        constant[a] = population(a, batch_size=1, **common)
        for r in constant[a]:
            sigma2 = max(sigma2, _second_moment(task, r.model))
    # sigma^2 bounds E||grad f_i||^2 along the trajectories: also take it at each starting point.
    for s in seeds:
        sigma2 = max(sigma2, _second_moment(task, task.make_model(s)))
    decreasing = population(1.0, batch_size=1, schedule="strongly_convex", schedule_kw={"mu": mu}, **common)
    averaged = population(alphas[0], batch_size=1, schedule="inverse_sqrt", averaging="swa", **common)
    gd_steps = int(cfg["gd_steps"])
    gd_common = {
        "task_kw": task_kw,
        "steps": gd_steps,
        "eval_every": int(cfg["gd_eval_every"]),
        "device": "cpu",
    }
    margin = float(cfg["threshold_margin"])
    gd_alphas = {
        "below": (1 - margin) * 2.0 / L,
        "above": (1 + margin) * 2.0 / lam_star,
        "one_over_L": 1.0 / L,
    }
    gd = {arm: population(a, batch_size=m, **gd_common) for arm, a in gd_alphas.items()}
    alpha_div = float(cfg["divergent_factor"]) * 2.0 / mu
    div = ctx.train("logreg", optimizer="sgd", lr=alpha_div, batch_size=m, seed=seeds[0], **gd_common)

    # Per-seed statistics.
    w = max(1, int(cfg["window_steps"]) // every)
    tail = float(cfg["tail_fraction"])
    plateaus: dict[float, list[float]] = {}
    ratios: list[float] = []
    curves: dict[float, np.ndarray] = {}
    ks = np.array([])
    for a in alphas:
        per = [_curve(r) for r in constant[a]]
        ks = per[0][0]
        curves[a] = np.array([g for _, g in per])
        plateaus[a] = [plateau(k, g, tail) for k, g in per]
    for i in range(len(seeds)):
        ratios.append(max(bound_ratio(ks, curves[a][i], a, mu, L, sigma2, w) for a in alphas))
    slopes = [loglog_slope(alphas, [plateaus[a][i] for a in alphas]) for i in range(len(seeds))]
    kd_all = [_curve(r) for r in decreasing]
    kd = kd_all[0][0]
    gdec = np.array([g for _, g in kd_all])
    late = (kd >= kd[-1] / 4) & (kd >= 1)
    dec_slopes = [loglog_slope(kd[late], g[late]) for g in gdec]
    gd_curves = {arm: [_curve(r) for r in runs] for arm, runs in gd.items()}
    decades = {arm: [gd_decades(g) for _, g in cs] for arm, cs in gd_curves.items()}
    gd_status = {arm: [r.status for r in runs] for arm, runs in gd.items()}
    kk, gav = _curve(averaged[0], "avg_gap")
    gav = np.array([_curve(r, "avg_gap")[1] for r in averaged])
    gd_end = [float(g[-1]) for _, g in gd_curves["one_over_L"]]
    min_plateau = min(float(np.mean(v)) for v in plateaus.values())

    numbers: dict[str, Any] = {
        "L": L,
        "mu": mu,
        "lambda_max_at_x_star": lam_star,
        "sigma2": sigma2,
        "f_star": float(task.f_star),
        "plateau_per_seed": {f"{a:g}": plateaus[a] for a in alphas},
        "plateau": {f"{a:g}": float(np.mean(plateaus[a])) for a in alphas},
        "bound_plateau": {f"{a:g}": L * sigma2 * a / (4 * mu) for a in alphas},
        "plateau_slope_per_seed": slopes,
        "bound_max_ratio_per_seed": ratios,
        "decreasing_slope_per_seed": dec_slopes,
        "decreasing_gap_end": float(gdec[:, -1].mean()),
        "averaged_gap_end": float(gav[:, -1].mean()),
        "gd_alpha": gd_alphas,
        "gd_decades_per_seed": decades,
        "gd_status": gd_status,
        "gd_gap_end_one_over_L": gd_end,
        "divergent_alpha": alpha_div,
        "divergent_status": div.status,
        "divergent_step": div.final.get("diverged_step"),
    }

    # Checks: what theory guarantees (never counted as claims).
    below = decades["below"]
    ctx.check(
        "gd_converges_below_2_over_L",
        f"control: GD at α = (1 − {margin:g})·2/L = {gd_alphas['below']:.4g} converges (guaranteed for α < 2/L): "
        f"the gap falls ≥ {CONVERGED_DECADES:g} decades on every seed",
        all(math.isfinite(d) and d < -CONVERGED_DECADES for d in below),
        "log10(final gap / initial gap) per seed: " + ", ".join(f"{d:.1f}" for d in below),
    )
    ctx.check(
        "gd_below_sgd_floor",
        "full-batch GD at 1/L ends below every SGD plateau (no gradient noise, linear rate)",
        all(g < min_plateau for g in gd_end),
        f"GD gap after {gd_steps} steps: {', '.join(f'{g:.2g}' for g in gd_end)}; smallest SGD plateau "
        f"{min_plateau:.3g}",
    )
    ctx.check(
        "gd_blows_up_beyond_2_over_mu",
        f"GD at α = {cfg['divergent_factor']:g}·2/μ = {alpha_div:.3g} blows up (every Hessian eigenvalue is ≥ μ)",
        div.status == "diverged",
        f"status {div.status} at step {numbers['divergent_step']}",
    )
    ctx.check(
        "threshold_sharp_point",
        "λmax(∇²f(x*)) ≤ L (L = μ + λmax(AᵀA)/(4m) bounds the Hessian everywhere)",
        lam_star <= L * (1 + 1e-12),
        f"λmax(∇²f(x*)) = {lam_star:.5g}, L = {L:.5g}",
    )

    measured = {
        "bound_holds": Measurement(
            ratios,
            f"σ² = {sigma2:.3g} (max of 1/m Σ‖∇f_i‖² over starts and run ends), L = {L:.3g}, μ = {mu:g}; "
            f"α = {', '.join(f'{a:g}' for a in alphas)}; window {cfg['window_steps']} steps",
        ),
        "plateau_proportional_to_alpha": Measurement(
            [abs(s - 1) for s in slopes],
            "slopes per seed "
            + ", ".join(f"{s:.3f}" for s in slopes)
            + "; plateau means "
            + ", ".join(f"α={a:g}: {np.mean(plateaus[a]):.3g}" for a in alphas),
        ),
        "decreasing_step_converges": Measurement(
            dec_slopes,
            f"mean gap at k={int(kd[late][0])}: {gdec[:, late][:, 0].mean():.3g}; at k={int(kd[-1])}: "
            f"{gdec[:, -1].mean():.3g}",
        ),
        "gd_unstable_above_threshold": Measurement(
            decades["above"],
            f"α = {gd_alphas['above']:.4g} (2/L = {2 / L:.4g}, 2/λmax(∇²f(x*)) = {2 / lam_star:.4g}): "
            + ", ".join(f"{d:.2f}" for d in decades["above"])
            + f" (statuses {', '.join(gd_status['above'])}); control at {gd_alphas['below']:.4g}: "
            + ", ".join(f"{d:.1f}" for d in below),
        ),
    }

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, a in enumerate(alphas):
        g = curves[a]
        bound = (1 - 2 * a * mu) ** ks * g[:, 0].mean() + L * sigma2 * a / (4 * mu)
        ax = axes[0]
        ax.plot(ks, g.mean(0), color=colors[i], label=f"SGD, α={a:g}")
        ax.fill_between(ks, g.min(0), g.max(0), color=colors[i], alpha=0.2)
        ax.plot(ks, bound, "--", color=colors[i], lw=1, label=f"bound, α={a:g}")
    ax = axes[1]
    ax.plot(kd, gdec.mean(0), label="SGD, α_k=(2k+1)/(2μ(k+1)²)")
    ax.fill_between(kd, gdec.min(0), gdec.max(0), alpha=0.2)
    ax.plot(kd[1:], L * sigma2 / (2 * mu**2 * (kd[1:] + 1)), "--", lw=1, label="bound Lσ²/(2μ²(k+1))")
    ax.plot(kk, gav.mean(0), label=f"SGD, α₀/√(k+1), α₀={alphas[0]:g}, averaged iterate")
    styles = {
        "one_over_L": ("-", "1/L"),
        "below": ("-", f"(1−{margin:g})·2/L"),
        "above": ("-.", f"(1+{margin:g})·2/λ*"),
    }
    for arm, (ls, txt) in styles.items():
        kg, g = gd_curves[arm][0]
        ax.plot(kg, np.maximum(g, 1e-16), ls, label=f"GD, α={txt}={gd_alphas[arm]:.3g} (seed {seeds[0]})")
    dks, dg = _curve(div)
    if len(dks):
        ax.plot(dks, np.clip(dg, 1e-16, 1e6), ":", label=f"GD, α={alpha_div:.3g} > 2/μ: {div.status}")
    for ax, title in zip(
        axes, ["constant steps: linear rate, then a noise floor ∝ α", "decreasing steps and GD"]
    ):
        ax.set_yscale("log")
        ax.set_xscale("symlog", linthresh=10)
        ax.set_xlim(left=0)
        ax.set_xlabel("iteration k (log scale beyond 10)")
        ax.set_ylabel("E[f(x_k) − f*]")
        ax.set_title(title)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    ctx.save_figure(fig, "sgd_noise_floor")
    return numbers, measured


_BASE = {
    "m": 200,
    "n": 10,
    "mu": 1.0,
    "alphas": [0.2, 0.1, 0.05],
    "steps": 1500,
    "eval_every": 5,
    "seeds": 3,
    "window_steps": 250,
    "tail_fraction": 0.5,
    "gd_steps": 1000,
    "gd_eval_every": 5,
    "threshold_margin": 0.05,
    "divergent_factor": 1.1,
}

register(
    Study(
        name="sgd-noise-floor",
        description="SGD on logreg: constant steps plateau ∝ α under the theorem's bound; decreasing steps; GD at "
        "its 2/L threshold.",
        slide="seeds 001/002: 'Основные результаты сходимости SGD', 'Гладкий PL-случай с постоянным шагом'",
        # wall s, 2026-12-07, one torch thread: quick in the 04:15 tour, full run beside one other study
        seconds=(32, 83),  # quick: the [5, 10] plan alone, 2026-12-07 (Zen 4)
        quick={
            **_BASE,
            "seeds": 10,
            "seed_blocks": [5, 10],
        },  # issue 26: split halves (3 fixed seeds disagreed)
        full={
            **_BASE,
            "alphas": [0.2, 0.1, 0.05, 0.025],
            "steps": 6000,
            "eval_every": 10,
            "seeds": 20,
            "seed_blocks": [10, 20],
        },  # fmt: skip
        run=run,
        predictions=PREDICTIONS,
        versions=(
            (1, "2026-12-01", "the predictions as first declared"),
            (2, "2026-12-07", "issue 26: bound_holds (a ratio to the bound) judged on the log scale"),
        ),
        limits={
            "threshold_margin": (1e-3, 0.5),
            "tail_fraction": (0.05, 1.0),
            "divergent_factor": (1.0, 10.0),
        },
    )
)
