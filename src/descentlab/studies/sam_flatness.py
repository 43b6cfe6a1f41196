"""SAM and flat minima: SGD vs SAM (a rho sweep) and ASAM on MNIST-1D, with and without label noise.

Seeds 000/003/004 ("a sharp minimum to which SGD converged; a wide minimum with SAM"; the seed's table of Hessian
lambda_max with and without SAM; Foret et al. 2021, Kwon et al. 2021). Every method runs the same recipe (SGD with
momentum 0.9 and weight decay 5e-4 as the base, the same lr, steps and batch); for every solution: test accuracy,
the Hessian's largest eigenvalue (Lanczos on Hessian-vector products), SAM sharpness
max_{||eps|| <= rho} L(w + eps) - L(w), average flatness E L(w + N(0, sigma^2 I)) - L(w), and the loss on a line and
on a plane of filter-normalized random directions around it (the same random draws for every model, each
normalized to that model's filters, plotted on the same axes).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from descentlab import landscape, tasks
from descentlab.studies import Claim, Study, StudyContext, register

METRICS = ("test_accuracy", "train_loss", "lambda_max", "sharpness", "average_flatness")


def _label(opt: str, hp: dict[str, Any]) -> str:
    return "SGD" if opt == "sgd" else f"{opt.upper()} ρ={hp['rho']:g}"


def run(ctx: StudyContext, cfg: dict[str, Any]) -> tuple[dict[str, Any], list[Claim]]:
    """Train each (label noise, method, seed), measure each solution's geometry, plot and check the claims."""
    import matplotlib.pyplot as plt

    common = {"momentum": 0.9, "weight_decay": float(cfg["weight_decay"])}
    methods: list[tuple[str, dict[str, Any]]] = [("sgd", dict(common))]
    methods += [("sam", {"rho": float(r), **common}) for r in cfg["rhos"]]
    methods += [("asam", {"rho": float(r), **common}) for r in cfg["asam_rhos"]]
    labels = [_label(o, h) for o, h in methods]
    main = _label("sam", {"rho": float(cfg["rho"])})
    main_asam = _label("asam", {"rho": float(cfg["asam_rho"])})
    if main not in labels or main_asam not in labels:
        raise ValueError(f"rho {cfg['rho']} must be in rhos and asam_rho {cfg['asam_rho']} in asam_rhos")
    noises = [float(v) for v in cfg["label_noise"]]
    span, grid = float(cfg["span"]), int(cfg["grid"])
    numbers: dict[str, Any] = {}
    lines: dict[tuple[float, str], Any] = {}
    planes: dict[tuple[float, str], Any] = {}
    for noise in noises:
        task = tasks.get("mnist1d_mlp", label_noise=noise)
        data = tuple(t[: int(cfg["samples"])] for t in task.train_data)
        crit = task.outputs_loss
        for (opt, hp), label in zip(methods, labels):
            rows = []
            for seed in range(int(cfg["seeds"])):
                r = ctx.train(
                    task,
                    optimizer=opt,
                    lr=float(cfg["lr"]),
                    hparams=hp,
                    steps=int(cfg["steps"]),
                    batch_size=int(cfg["batch_size"]),
                    eval_every=int(cfg["steps"]),
                    seed=seed,
                    task_kw={"label_noise": noise},
                    device="cpu",
                )
                m = r.model
                eig = landscape.hessian_eigenvalues(m, crit, data, k=1)
                sh = landscape.sharpness(m, crit, data, rho=float(cfg["sharpness_rho"]))
                flat = landscape.average_flatness(
                    m, crit, data, sigma=float(cfg["sigma"]), samples=int(cfg["flat_samples"])
                )
                rows.append(
                    {
                        "test_accuracy": r.final["accuracy"],
                        "train_loss": r.final["train_loss"],
                        "lambda_max": float(eig.values[0]),
                        "sharpness": float(sh.value),
                        "average_flatness": float(flat[0]),
                    }
                )
                if seed == 0:  # the same random draws (seed 0) for every model, filter-normalized to each
                    lines[(noise, label)] = landscape.line(
                        m, crit, data, span=(-span, span), points=int(cfg["points"]), seed=0
                    )
                    planes[(noise, label)] = landscape.plane(
                        m, crit, data, span=((-span, span), (-span, span)), points=(grid, grid), seed=0
                    )
            row = {k: float(np.mean([x[k] for x in rows])) for k in METRICS}
            row.update({f"{k}_per_seed": [x[k] for x in rows] for k in ("test_accuracy", "lambda_max")})
            numbers[f"{noise:g}/{label}"] = row

    # Figure 1: the 1-D landscapes and the seed's lambda_max table as bars.
    fig, axes = plt.subplots(1, len(noises) + 1, figsize=(5.8 * (len(noises) + 1), 4.6))
    cmap = plt.get_cmap("viridis")
    sams = [lab for lab in labels if lab.startswith("SAM")]
    asams = [lab for lab in labels if lab.startswith("ASAM")]

    def style(label: str) -> dict[str, Any]:
        if label == "SGD":
            return {"color": "C3", "lw": 2.2}
        if label in sams:
            return {"color": cmap(0.15 + 0.7 * sams.index(label) / max(1, len(sams) - 1)), "lw": 1.4}
        return {
            "color": "C1",
            "lw": 1.4,
            "ls": "--",
            "alpha": 0.6 + 0.4 * asams.index(label) / max(1, len(asams)),
        }

    for ax, noise in zip(axes, noises):
        for label in labels:
            res, n = lines[(noise, label)], numbers[f"{noise:g}/{label}"]
            ax.plot(
                res.alphas,
                res.loss,
                label=f"{label}: λmax {n['lambda_max']:.2f}, test acc {n['test_accuracy']:.3f}",
                **style(label),
            )
        ax.set_yscale("log")
        ax.set_xlabel("α along a filter-normalized random direction (same draw for all)")
        ax.set_ylabel("training loss")
        ax.set_title(f"1-D landscape around each solution, {noise:.0%} label noise", fontsize=11)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    ax = axes[-1]
    width = 0.8 / len(noises)
    for i, noise in enumerate(noises):
        vals = [numbers[f"{noise:g}/{lab}"]["lambda_max"] for lab in labels]
        lo = [v - min(numbers[f"{noise:g}/{lab}"]["lambda_max_per_seed"]) for v, lab in zip(vals, labels)]
        hi = [max(numbers[f"{noise:g}/{lab}"]["lambda_max_per_seed"]) - v for v, lab in zip(vals, labels)]
        ax.bar(
            [j + i * width for j in range(len(labels))],
            vals,
            width,
            yerr=[lo, hi] if int(cfg["seeds"]) > 1 else None,
            capsize=2,
            label=f"{noise:.0%} label noise",
        )
    ax.set_xticks([j + width * (len(noises) - 1) / 2 for j in range(len(labels))], labels, rotation=30)
    ax.set_ylabel("Hessian λmax at the solution")
    seeds_note = f" (mean, min–max over {cfg['seeds']} seeds)" if int(cfg["seeds"]) > 1 else ""
    ax.set_title("the seed's λmax table: SGD vs SAM" + seeds_note, fontsize=11)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    ctx.save_figure(fig, "sam_flatness")

    # Figure 2: 2-D landscapes of SGD, SAM and ASAM on the same axes and colour levels.
    shown = ["SGD", main, main_asam]
    fig, axes = plt.subplots(len(noises), 3, figsize=(15, 4.5 * len(noises)), squeeze=False)
    fig.subplots_adjust(wspace=0.32, hspace=0.35)
    for row, noise in enumerate(noises):
        logs = {lab: np.log10(planes[(noise, lab)].loss) for lab in shown}
        levels = np.linspace(min(v.min() for v in logs.values()), max(v.max() for v in logs.values()), 25)
        for ax, lab in zip(axes[row], shown):
            pl = planes[(noise, lab)]
            A, B = np.meshgrid(pl.alphas, pl.betas, indexing="ij")
            cs = ax.contourf(A, B, logs[lab], levels=levels)
            ax.contour(A, B, logs[lab], levels=levels[::3], colors="k", linewidths=0.3)
            ax.plot([0], [0], "r*", ms=9)
            n = numbers[f"{noise:g}/{lab}"]
            ax.set_title(f"{lab}, {noise:.0%} noise: λmax {n['lambda_max']:.2f}", fontsize=10)
            ax.set_xlabel("α (d₁)")
            ax.set_ylabel("β (d₂)")
        fig.colorbar(cs, ax=axes[row].tolist(), label="log₁₀ training loss (same levels)", format="%.1f")
    ctx.save_figure(fig, "sam_flatness_planes")

    ratios = {
        nz: numbers[f"{nz:g}/{main}"]["lambda_max"] / numbers[f"{nz:g}/SGD"]["lambda_max"] for nz in noises
    }
    numbers["lambda_ratio_main"] = {f"{nz:g}": v for nz, v in ratios.items()}
    holds_from = {}
    for nz in noises:  # the smallest rho of the sweep at which SAM's lambda_max is at most half of SGD's
        ok = [
            h["rho"]
            for (o, h), lab in zip(methods, labels)
            if o == "sam" and lambda_ratio(numbers, nz, lab) <= 0.5
        ]
        holds_from[f"{nz:g}"] = min(ok) if ok else None
    numbers["smallest_rho_halving"] = holds_from
    clean, noisy = min(noises), max(noises)
    sgd_c, sam_c = numbers[f"{clean:g}/SGD"], numbers[f"{clean:g}/{main}"]
    sgd_n, sam_n = numbers[f"{noisy:g}/SGD"], numbers[f"{noisy:g}/{main}"]
    asam_ratios = {nz: lambda_ratio(numbers, nz, main_asam) for nz in noises}
    claims = [
        Claim(
            f"SAM converges to a wider minimum: its Hessian λmax is at most half of SGD's ({main}, at every label "
            "noise level).",
            all(v <= 0.5 for v in ratios.values()),
            "; ".join(
                f"{nz:.0%} noise: λmax SGD {numbers[f'{nz:g}/SGD']['lambda_max']:.2f}, {main} "
                f"{numbers[f'{nz:g}/{main}']['lambda_max']:.2f} (ratio {ratios[nz]:.2f}; {main_asam} "
                f"{asam_ratios[nz]:.2f}; sharpness ρ={cfg['sharpness_rho']:g} {numbers[f'{nz:g}/SGD']['sharpness']:.3g} "
                f"vs {numbers[f'{nz:g}/{main}']['sharpness']:.3g}; halving from ρ={holds_from[f'{nz:g}']})"
                for nz in noises
            ),
        ),
        Claim(
            "SAM's test accuracy is not lower than SGD's (within 0.5 points), and higher under label noise.",
            sam_c["test_accuracy"] >= sgd_c["test_accuracy"] - 0.005
            and sam_n["test_accuracy"] > sgd_n["test_accuracy"],
            f"{clean:.0%} noise: SGD {sgd_c['test_accuracy']:.3f}, {main} {sam_c['test_accuracy']:.3f}; "
            f"{noisy:.0%} noise: SGD {sgd_n['test_accuracy']:.3f}, {main} {sam_n['test_accuracy']:.3f} "
            f"(training loss {sgd_n['train_loss']:.3f} vs {sam_n['train_loss']:.3f}: SAM fits less of the noise)",
        ),
    ]
    return numbers, claims


def lambda_ratio(numbers: dict[str, Any], noise: float, label: str) -> float:
    """lambda_max of method ``label`` over SGD's at label noise ``noise`` (from the study's numbers)."""
    return numbers[f"{noise:g}/{label}"]["lambda_max"] / numbers[f"{noise:g}/SGD"]["lambda_max"]


register(
    Study(
        name="sam-flatness",
        description="SGD vs SAM (ρ sweep) and ASAM on MNIST-1D with 0 % / 20 % label noise: λmax, sharpness, accuracy.",
        slide="seeds 000/003/004: 'a sharp minimum to which SGD converged; a wide minimum with SAM', λmax table",
        seconds=(53, 306),  # measured quick/full wall s on the 2-core CPU (tour scheduling)
        quick={
            "label_noise": [0.0, 0.2],
            "rhos": [0.2, 0.5],
            "asam_rhos": [1.0],
            "rho": 0.5,
            "asam_rho": 1.0,
            "lr": 0.05,
            "weight_decay": 5e-4,
            "steps": 2000,
            "batch_size": 100,
            "samples": 1000,
            "sharpness_rho": 0.05,
            "sigma": 0.01,
            "flat_samples": 10,
            "span": 1.0,
            "points": 41,
            "grid": 15,
            "seeds": 1,
        },
        full={
            "label_noise": [0.0, 0.2],
            "rhos": [0.05, 0.1, 0.2, 0.5],
            "asam_rhos": [0.5, 1.0, 2.0],
            "rho": 0.5,
            "asam_rho": 1.0,
            "lr": 0.05,
            "weight_decay": 5e-4,
            "steps": 2000,
            "batch_size": 100,
            "samples": 2000,
            "sharpness_rho": 0.05,
            "sigma": 0.01,
            "flat_samples": 20,
            "span": 1.0,
            "points": 61,
            "grid": 25,
            "seeds": 3,
        },
        run=run,
    )
)
