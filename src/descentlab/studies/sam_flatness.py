"""SAM and flat minima: SGD vs SAM (a rho sweep) and ASAM on MNIST-1D, with and without label noise.

Seeds 000/003/004 ("a sharp minimum to which SGD converged; a wide minimum with SAM"; the seed's table of Hessian
lambda_max with and without SAM; Foret et al. 2021). For every solution: test accuracy, the Hessian's largest
eigenvalue (Lanczos on Hessian-vector products), SAM sharpness max_{||eps|| <= rho} L(w + eps) - L(w), average
flatness E L(w + N(0, sigma^2 I)) - L(w), and the loss along one filter-normalized random direction around it.
"""

from __future__ import annotations

from typing import Any

from descentlab import landscape, tasks
from descentlab.studies import Claim, Study, StudyContext, register


def _label(opt: str, hp: dict[str, Any]) -> str:
    return "SGD" if opt == "sgd" else f"{opt.upper()} (ρ={hp['rho']:g})"


def run(ctx: StudyContext, cfg: dict[str, Any]) -> tuple[dict[str, Any], list[Claim]]:
    """Train each (label noise, method), measure the geometry of each solution, plot and check the claims."""
    import matplotlib.pyplot as plt

    methods: list[tuple[str, dict[str, Any]]] = [("sgd", {"momentum": 0.9})]
    methods += [("sam", {"rho": float(r)}) for r in cfg["rhos"]]
    methods += [("asam", {"rho": float(r)}) for r in cfg["asam_rhos"]]
    noises = [float(v) for v in cfg["label_noise"]]
    numbers: dict[str, Any] = {}
    lines: dict[tuple[float, str], Any] = {}
    for noise in noises:
        task = tasks.get("mnist1d_mlp", label_noise=noise)
        data = tuple(t[: int(cfg["samples"])] for t in task.train_data)
        crit = task.outputs_loss
        for opt, hp in methods:
            label = _label(opt, hp)
            rows = []
            for seed in range(int(cfg["seeds"])):
                r = ctx.train(
                    task,
                    optimizer=opt,
                    lr=float(cfg["lr"]),
                    hparams=hp,
                    steps=int(cfg["steps"]),
                    batch_size=int(cfg["batch_size"]),
                    eval_every=int(cfg["steps"]) // 4,
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
                if seed == 0:
                    lines[(noise, label)] = landscape.line(
                        m, crit, data, span=(-1.0, 1.0), points=int(cfg["points"]), seed=0
                    )
            numbers[f"{noise:g}/{label}"] = {k: sum(row[k] for row in rows) / len(rows) for k in rows[0]}

    fig, axes = plt.subplots(1, len(noises) + 1, figsize=(5.6 * (len(noises) + 1), 4.4))
    for ax, noise in zip(axes, noises):
        for opt, hp in methods:
            label = _label(opt, hp)
            res = lines[(noise, label)]
            n = numbers[f"{noise:g}/{label}"]
            ax.plot(
                res.alphas,
                res.loss,
                label=f"{label}: λmax {n['lambda_max']:.2f}, test acc {n['test_accuracy']:.3f}",
            )
        ax.set_yscale("log")
        ax.set_xlabel("α along a filter-normalized random direction")
        ax.set_ylabel("training loss")
        ax.set_title(f"1-D landscape around each solution ({noise:.0%} label noise)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    ax = axes[-1]
    width = 0.8 / len(noises)
    labels = [_label(o, h) for o, h in methods]
    for i, noise in enumerate(noises):
        ax.bar(
            [j + i * width for j in range(len(labels))],
            [numbers[f"{noise:g}/{lab}"]["lambda_max"] for lab in labels],
            width,
            label=f"{noise:.0%} label noise",
        )
    ax.set_xticks([j + width * (len(noises) - 1) / 2 for j in range(len(labels))], labels, rotation=20)
    ax.set_ylabel("Hessian λmax at the solution")
    ax.set_title("sharpness of the solution (the seed's λmax table)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    ctx.save_figure(fig, "sam_flatness")

    main = _label("sam", {"rho": float(cfg["rho"])})
    noisy, clean = max(noises), min(noises)
    sgd_n, sam_n = numbers[f"{noisy:g}/SGD"], numbers[f"{noisy:g}/{main}"]
    sgd_c, sam_c = numbers[f"{clean:g}/SGD"], numbers[f"{clean:g}/{main}"]
    claims = [
        Claim(
            f"SAM finds a flatter minimum: with {noisy:.0%} label noise its Hessian λmax is at most half of SGD's.",
            sam_n["lambda_max"] <= 0.5 * sgd_n["lambda_max"],
            f"λmax SGD {sgd_n['lambda_max']:.2f}, {main} {sam_n['lambda_max']:.2f} "
            f"(ratio {sam_n['lambda_max'] / sgd_n['lambda_max']:.2f}); sharpness ρ={cfg['sharpness_rho']}: "
            f"{sgd_n['sharpness']:.3g} vs {sam_n['sharpness']:.3g}; without noise λmax {sgd_c['lambda_max']:.2f} vs "
            f"{sam_c['lambda_max']:.2f} (SGD's clean solution interpolates, loss {sgd_c['train_loss']:.3g}, "
            "where the cross-entropy's curvature vanishes)",
        ),
        Claim(
            "SAM's test accuracy is not lower than SGD's, and higher under label noise.",
            sam_c["test_accuracy"] >= sgd_c["test_accuracy"] - 0.005
            and sam_n["test_accuracy"] > sgd_n["test_accuracy"],
            f"clean: SGD {sgd_c['test_accuracy']:.3f}, {main} {sam_c['test_accuracy']:.3f}; {noisy:.0%} noise: "
            f"SGD {sgd_n['test_accuracy']:.3f}, {main} {sam_n['test_accuracy']:.3f}",
        ),
    ]
    return numbers, claims


register(
    Study(
        name="sam-flatness",
        description="SGD vs SAM (ρ sweep) and ASAM on MNIST-1D with 0 % / 20 % label noise: λmax, sharpness, accuracy.",
        slide="seeds 000/003/004: 'a sharp minimum to which SGD converged; a wide minimum with SAM', λmax table",
        quick={
            "label_noise": [0.0, 0.2],
            "rhos": [0.2],
            "asam_rhos": [1.0],
            "rho": 0.2,
            "lr": 0.05,
            "steps": 2000,
            "batch_size": 100,
            "samples": 1000,
            "sharpness_rho": 0.05,
            "sigma": 0.01,
            "flat_samples": 10,
            "points": 21,
            "seeds": 1,
        },
        full={
            "label_noise": [0.0, 0.2],
            "rhos": [0.05, 0.1, 0.2, 0.3],
            "asam_rhos": [0.5, 1.0],
            "rho": 0.2,
            "lr": 0.05,
            "steps": 3000,
            "batch_size": 100,
            "samples": 2000,
            "sharpness_rho": 0.05,
            "sigma": 0.01,
            "flat_samples": 20,
            "points": 41,
            "seeds": 3,
        },
        run=run,
    )
)
