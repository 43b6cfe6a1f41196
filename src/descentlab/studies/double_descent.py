"""Double descent: the test risk peaks where the model can first interpolate, then descends again.

Seeds 000/002/004, "Double Descent" (Belkin et al. 2019, "Reconciling modern machine-learning practice and the
classical bias-variance trade-off"; Nakkiran et al. 2019, "Deep double descent"), the seed's "Polynomial Fitting"
and "Modular Division (training on 50% of data)" pictures. Four parts:

(a) polynomial: y = 2x + cos(25x), x ~ U[-1, 1], n training points, features P_1(x) .. P_d(x) (Legendre, so the
    model has exactly d parameters and interpolates from d = n on), minimum-norm least squares
    w = pinv(Phi) y (``numpy.linalg.lstsq``); median test MSE over repeats against d. The classical U-curve for d < n,
    a spike at d = n, and a second descent for d > n (the setting of Schaeffer et al. 2023, "Double descent
    demystified");
(b) model-wise: MNIST-1D MLPs (2 hidden ReLU layers of width h) with label noise, trained long enough to
    interpolate; test and train error against h with the interpolation threshold marked;
(c) epoch-wise: test error of the widest model against training steps;
(d) the modular-division transformer (the grokking workload) — train and validation accuracy against steps.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from numpy.polynomial import legendre

from descentlab.studies import Claim, Study, StudyContext, register


def target_function(x: np.ndarray) -> np.ndarray:
    """The seed's "Polynomial Fitting" target y = 2x + cos(25x)."""
    return 2.0 * x + np.cos(25.0 * x)


def legendre_features(x: np.ndarray, degree: int) -> np.ndarray:
    """Features ``[P_1(x), ..., P_degree(x)]`` (Legendre polynomials on [-1, 1]); shape ``[len(x), degree]``."""
    if isinstance(degree, bool) or not isinstance(degree, (int, np.integer)) or degree < 1:
        raise ValueError(f"degree must be an integer >= 1, got {degree!r}")
    return legendre.legvander(np.asarray(x, dtype=np.float64), int(degree))[:, 1:]


def polynomial_risk(
    degrees: list[int] | np.ndarray,
    n: int = 15,
    repeats: int = 100,
    n_test: int = 1000,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Train and test MSE (``repeats x len(degrees)``) of minimum-norm least squares on Legendre features.

    Each repeat draws ``n`` training and ``n_test`` test points x ~ U[-1, 1] with y = 2x + cos(25x); for each
    degree d the fit is w = argmin ||w|| over the minimisers of ||Phi_d w - y||^2 (``numpy.linalg.lstsq``, i.e.
    pinv(Phi_d) y), as in Belkin et al. 2019's random-features experiments.
    """
    degs = np.asarray(degrees, dtype=int)
    if degs.ndim != 1 or len(degs) == 0 or degs.min() < 1:
        raise ValueError(f"degrees must be a non-empty list of integers >= 1, got {degrees!r}")
    for nm, v in (("n", n), ("repeats", repeats), ("n_test", n_test)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{nm} must be a positive integer, got {v!r}")
    rng = np.random.default_rng(seed)
    dmax = int(degs.max())
    train = np.empty((repeats, len(degs)))
    test = np.empty((repeats, len(degs)))
    for r in range(repeats):
        x, xt = rng.uniform(-1, 1, n), rng.uniform(-1, 1, n_test)
        y, yt = target_function(x), target_function(xt)
        phi, phit = legendre_features(x, dmax), legendre_features(xt, dmax)
        for j, d in enumerate(degs):
            w = np.linalg.lstsq(phi[:, :d], y, rcond=None)[0]
            train[r, j] = np.mean((phi[:, :d] @ w - y) ** 2)
            test[r, j] = np.mean((phit[:, :d] @ w - yt) ** 2)
    return {"degrees": degs, "train_mse": train, "test_mse": test}


def _errors(run: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps, test error and train error (1 - accuracy) along a run."""
    steps = np.array([s for s, _ in run.metrics("accuracy")])
    test = 1 - np.array([v for _, v in run.metrics("accuracy")])
    train = 1 - np.array([v for _, v in run.metrics("train_accuracy")])
    return steps, test, train


def _model_wise(ctx: StudyContext, cfg: dict[str, Any]) -> dict[str, Any]:
    """Train the MLP width sweep (every width x seed) and collect final and per-step errors."""
    widths = [int(w) for w in cfg["widths"]]
    seeds = int(cfg["seeds"])
    test = np.empty((seeds, len(widths)))
    train = np.empty((seeds, len(widths)))
    curves: dict[int, list[Any]] = {w: [] for w in widths}
    for j, w in enumerate(widths):
        for s in range(seeds):
            task_kw = {
                "width": w,
                "depth": int(cfg["depth"]),
                "num_samples": int(cfg["num_samples"]),
                "label_noise": float(cfg["label_noise"]),
            }
            run = ctx.train(
                "mnist1d_mlp",
                task_kw=task_kw,
                optimizer="adam",
                lr=float(cfg["lr"]),
                batch_size=int(cfg["batch_size"]),
                steps=int(cfg["steps"]),
                eval_every=int(cfg["eval_every"]),
                seed=s,
                device="cpu",
            )
            test[s, j] = 1 - run.final["accuracy"]
            train[s, j] = 1 - run.final["train_accuracy"]
            curves[w].append(_errors(run))
    params = [w * (40 + 1) + w * (w + 1) * (int(cfg["depth"]) - 1) + 10 * (w + 1) for w in widths]
    return {"widths": widths, "params": params, "test": test, "train": train, "curves": curves}


def run(ctx: StudyContext, cfg: dict[str, Any]) -> tuple[dict[str, Any], list[Claim]]:
    """Compute the polynomial risk curve, train the width sweep (and the modular run), plot, check the claims."""
    import matplotlib.pyplot as plt

    from descentlab import tasks

    n = int(cfg["poly_n"])
    degrees = np.arange(1, int(cfg["poly_max_degree"]) + 1)
    poly = [
        polynomial_risk(degrees, n=n, repeats=int(cfg["poly_repeats"]), seed=1000 + s)
        for s in range(int(cfg["seeds"]))
    ]
    ctx.advance()
    test_mse = np.concatenate([p["test_mse"] for p in poly])  # all repeats of all seeds
    train_mse = np.concatenate([p["train_mse"] for p in poly])
    med = np.median(test_mse, axis=0)
    med_seed = np.array([np.median(p["test_mse"], axis=0) for p in poly])
    med_train = np.median(train_mse, axis=0)
    i_peak = int(np.argmax(med))
    d_peak = int(degrees[i_peak])
    beyond = degrees >= 2 * n
    d_best_beyond = int(degrees[beyond][np.argmin(med[beyond])]) if beyond.any() else None

    def at(d: int) -> float:
        return float(med[d - 1]) if 1 <= d <= len(med) else float("nan")

    numbers: dict[str, Any] = {
        "poly": {
            "n": n,
            "argmax_degree": d_peak,
            "peak_median_mse": float(med[i_peak]),
            "median_mse_d1": at(1),
            "median_mse_dn": at(n),
            "median_mse_d2n": at(2 * n),
            "median_mse_dmax": float(med[-1]),
            "min_median_mse_beyond_2n": float(med[beyond].min()) if beyond.any() else None,
            "argmin_beyond_2n": d_best_beyond,
            "min_median_mse_below_n": float(med[degrees < n].min()),
            "argmin_below_n": int(degrees[degrees < n][np.argmin(med[degrees < n])]),
            "published": {"d1": 0.51, "d15": 6.7e6, "d30": 0.35},
        }
    }

    mw: dict[str, Any] | None = None
    if cfg["widths"]:
        threads = torch.get_num_threads()
        torch.set_num_threads(int(cfg["threads"]))  # small MLPs: one thread is fastest (measured)
        try:
            mw = _model_wise(ctx, cfg)
        finally:
            torch.set_num_threads(threads)
        n_train = int(round(0.8 * int(cfg["num_samples"])))
        test_mean, train_mean = mw["test"].mean(0), mw["train"].mean(0)
        interp = [w for w, e in zip(mw["widths"], train_mean) if e <= float(cfg["interp_train_error"])]
        threshold = interp[0] if interp else None
        j_peak = int(np.argmax(test_mean))
        numbers["model_wise"] = {
            "widths": mw["widths"],
            "params": mw["params"],
            "n_train": n_train,
            "test_error_mean": test_mean,
            "train_error_mean": train_mean,
            "test_error": mw["test"],
            "train_error": mw["train"],
            "interpolation_threshold_width": threshold,
            "peak_width": mw["widths"][j_peak],
            "peak_test_error": float(test_mean[j_peak]),
            "widest_test_error": float(test_mean[-1]),
            "min_test_error_before_peak": float(test_mean[: j_peak + 1].min()),
        }
        numbers["epoch_wise"] = {}
        for w in dict.fromkeys(
            [mw["widths"][-1], threshold if threshold is not None else mw["widths"][j_peak]]
        ):
            steps, te, tr = (np.array(a) for a in zip(*mw["curves"][w]))
            numbers["epoch_wise"][str(w)] = {
                "steps": steps[0],
                "test_error_mean": te.mean(0),
                "train_error_mean": tr.mean(0),
                "best_test_error": float(te.mean(0).min()),
                "best_step": int(steps[0][int(np.argmin(te.mean(0)))]),
                "final_test_error": float(te.mean(0)[-1]),
            }

    modular = None
    if int(cfg["modular_steps"]) > 0:
        modular = ctx.train(
            tasks.get("modular", p=97, op="/", train_fraction=0.5),
            optimizer="adamw",
            lr=1e-3,
            hparams={"weight_decay": 1.0, "betas": (0.9, 0.98)},
            batch_size=512,
            steps=int(cfg["modular_steps"]),
            eval_every=int(cfg["modular_eval_every"]),
            seed=0,
            device="cpu",
        )
        ms = np.array([s for s, _ in modular.metrics("accuracy")])
        numbers["modular_division"] = {
            "steps": ms,
            "val_accuracy": [v for _, v in modular.metrics("accuracy")],
            "train_accuracy": [v for _, v in modular.metrics("train_accuracy")],
            "wall_time": modular.final["wall_time"],
        }

    # Figure.
    panels = 1 + (2 if mw is not None else 0) + (1 if modular is not None else 0)
    ncols = 2 if panels > 1 else 1
    nrows = (panels + 1) // 2
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.5 * ncols, 4.6 * nrows), squeeze=False)
    axs = list(axes.ravel())
    ax = axs[0]
    ax.plot(degrees, med, color="C0", label="test MSE (median over repeats)")
    if len(med_seed) > 1:
        ax.fill_between(
            degrees, med_seed.min(0), med_seed.max(0), color="C0", alpha=0.25, label="seeds' range"
        )
    ax.plot(degrees, np.maximum(med_train, 1e-30), "--", color="C1", label="train MSE (median)")
    ax.axvline(n, color="k", ls=":", label=f"interpolation threshold d = n = {n}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(1e-3 * min(med.min(), 1), med.max() * 10)
    ax.set_xlabel("number of Legendre features d (degree)")
    ax.set_ylabel("mean squared error")
    ax.set_title(f"(a) polynomial fitting, y = 2x + cos(25x), n = {n}, min-norm least squares")
    ax.legend(fontsize=8)
    k = 1
    if mw is not None:
        mwn = numbers["model_wise"]
        ax = axs[k]
        w = np.array(mw["widths"])
        for arr, lab, col, ls in (
            (mw["test"], "test error", "C0", "-"),
            (mw["train"], "train error", "C1", "--"),
        ):
            ax.plot(w, arr.mean(0), ls, color=col, marker="o", ms=3, label=lab)
            if arr.shape[0] > 1:
                ax.fill_between(w, arr.min(0), arr.max(0), color=col, alpha=0.2)
        if mwn["interpolation_threshold_width"] is not None:
            ax.axvline(
                mwn["interpolation_threshold_width"], color="k", ls=":", label="interpolation threshold"
            )
        ax.set_xscale("log")
        ax.set_xlabel("hidden width h (MLP, 2 hidden layers)")
        ax.set_ylabel("error")
        ax.set_title(f"(b) model-wise: MNIST-1D, {int(100 * cfg['label_noise'])}% label noise")
        ax.legend(fontsize=8)
        ax = axs[k + 1]
        for i, (w, ew) in enumerate(numbers["epoch_wise"].items()):
            kind = "widest" if int(w) == mw["widths"][-1] else "at the threshold"
            ax.plot(
                ew["steps"][1:], ew["test_error_mean"][1:], color=f"C{2 * i}", label=f"test, h = {w} ({kind})"
            )
            ax.plot(
                ew["steps"][1:], ew["train_error_mean"][1:], "--", color=f"C{2 * i}", label=f"train, h = {w}"
            )
        ax.set_xscale("log")
        ax.set_xlabel("training step (full batch)")
        ax.set_ylabel("error")
        ax.set_title("(c) epoch-wise: error against training steps")
        ax.legend(fontsize=8)
        k += 2
    if modular is not None:
        md = numbers["modular_division"]
        ax = axs[k]
        ax.plot(md["steps"][1:], md["train_accuracy"][1:], color="C3", label="train")
        ax.plot(md["steps"][1:], md["val_accuracy"][1:], color="C2", label="validation")
        ax.set_xscale("log")
        ax.set_xlabel("optimization step")
        ax.set_ylabel("accuracy")
        ax.set_title("(d) Modular Division (training on 50% of data)")
        ax.legend(fontsize=8)
        k += 1
    for ax in axs[k:]:
        ax.set_visible(False)
    for ax in axs[:k]:
        ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    ctx.save_figure(fig, "double_descent")

    p = numbers["poly"]
    claims = [
        Claim(
            f"The polynomial test error peaks at the interpolation threshold d = n = {n} (within ±1).",
            abs(d_peak - n) <= 1,
            f"argmax of the median test MSE over d = 1..{degrees[-1]}: d = {d_peak} "
            f"(median MSE {p['peak_median_mse']:.3g}); published run: 6.7e6 at d = 15",
        ),
        Claim(
            "Beyond the threshold the error descends again: at d >= 2n it is far below the peak (< 1e-3 x).",
            bool(beyond.any()) and p["min_median_mse_beyond_2n"] < 1e-3 * p["peak_median_mse"],
            f"median MSE at d = 2n = {2 * n}: {p['median_mse_d2n']:.3g}; best at d >= 2n: "
            f"{p['min_median_mse_beyond_2n']:.3g} (d = {d_best_beyond}); peak {p['peak_median_mse']:.3g}; "
            f"d = 1: {p['median_mse_d1']:.3g} (published 0.51, 6.7e6, 0.35 at d = 1, 15, 30)",
        ),
    ]
    if mw is not None:
        mwn = numbers["model_wise"]
        thr = mwn["interpolation_threshold_width"]
        near = thr is not None and thr / 2.5 <= mwn["peak_width"] <= thr * 2.5
        widths = mw["widths"]
        j_peak = widths.index(mwn["peak_width"])
        rises = j_peak > 0 and mwn["peak_test_error"] >= mwn["min_test_error_before_peak"] + 0.02
        falls = mwn["widest_test_error"] <= mwn["peak_test_error"] - 0.03
        claims.append(
            Claim(
                "Model-wise double descent: the test error peaks near the interpolation threshold and falls again "
                "for wider networks.",
                bool(near and rises and falls),
                f"interpolation threshold (train error <= {cfg['interp_train_error']}) at h = {thr}; test error "
                f"peaks at h = {mwn['peak_width']} ({mwn['peak_test_error']:.3f}, lowest before it "
                f"{mwn['min_test_error_before_peak']:.3f}); widest h = {widths[-1]}: "
                f"{mwn['widest_test_error']:.3f}",
            )
        )
    return numbers, claims


register(
    Study(
        name="double-descent",
        description="Test risk peaks at the interpolation threshold and descends again: polynomials, MLP widths.",
        slide="seeds 000/002/004: 'Double Descent' ('Polynomial Fitting', 'Modular Division (training on 50% of data)')",
        seconds=(47, 856),  # measured quick/full wall s on the 2-core CPU (tour scheduling)
        quick={
            "seeds": 1,
            "poly_n": 15,
            "poly_max_degree": 200,
            "poly_repeats": 100,
            "widths": [6, 12, 18, 24, 32, 48, 64, 128],
            "depth": 2,
            "num_samples": 2000,
            "label_noise": 0.15,
            "lr": 1e-2,
            "batch_size": 1600,
            "steps": 1500,
            "eval_every": 50,
            "interp_train_error": 0.01,
            "threads": 1,
            "modular_steps": 0,
            "modular_eval_every": 50,
        },
        full={
            "seeds": 3,
            "poly_n": 15,
            "poly_max_degree": 200,
            "poly_repeats": 100,
            "widths": [8, 16, 24, 32, 40, 48, 56, 64, 96, 128, 256],
            "depth": 2,
            "num_samples": 5000,
            "label_noise": 0.15,
            "lr": 1e-2,
            "batch_size": 4000,
            "steps": 2000,
            "eval_every": 50,
            "interp_train_error": 0.01,
            "threads": 1,
            "modular_steps": 3000,
            "modular_eval_every": 50,
        },
        run=run,
    )
)
