"""Learning-rate schedules on the MNIST-1D MLP: constant, step, exponential, cosine, linear, warmup+cosine, WSD.

Seed 003, "Learning Rate Schedules: Guiding the Descent": step decay, exponential decay eta_t = eta_0 e^{-kt},
cosine annealing eta_min + 1/2 (eta_max - eta_min)(1 + cos(pi t / T)), linear decay, warmup; plus
warmup-stable-decay (WSD). "Starting large can help escape poor local minima, while decreasing it later can help
converge to a good solution": at the same peak lr, every decaying schedule ends with a lower training loss than the
constant one. The schedules come from ``descentlab.schedules`` (built on torch.optim.lr_scheduler).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from descentlab.studies import Claim, Study, StudyContext, register

DECAYING = ("step", "exponential", "cosine", "linear", "warmup_cosine", "wsd")


def run(ctx: StudyContext, cfg: dict[str, Any]) -> tuple[dict[str, Any], list[Claim]]:
    """Train one run per schedule and seed at the same peak lr; plot lr, val loss and accuracy; check claims."""
    import matplotlib.pyplot as plt

    from descentlab import schedules

    names = list(cfg["schedules"])
    missing = [n for n in names if n not in schedules.available()]
    if missing:
        raise ValueError(f"lr-schedules: unknown schedules {missing}; available: {schedules.available()}")
    task_kw = {"width": int(cfg["width"]), "depth": int(cfg["depth"])}
    steps, every, seeds = int(cfg["steps"]), int(cfg["eval_every"]), int(cfg["seeds"])
    kws: dict[str, dict[str, Any]] = cfg["schedule_kw"]
    runs: dict[str, list[Any]] = {}
    for name in names:
        runs[name] = [
            ctx.train(
                "mnist1d_mlp",
                optimizer=cfg["optimizer"],
                lr=float(cfg["lr"]),
                hparams=dict(cfg["hparams"]),
                schedule=None if name == "constant" and "constant" not in schedules.available() else name,
                schedule_kw=dict(kws.get(name, {})),
                steps=steps,
                eval_every=every,
                batch_size=int(cfg["batch_size"]),
                seed=s,
                task_kw=task_kw,
                device="cpu",
            )
            for s in range(seeds)
        ]

    def series(name: str, key: str) -> tuple[np.ndarray, np.ndarray]:
        ks = np.array([k for k, _ in runs[name][0].metrics(key)])
        return ks, np.array([[v for _, v in r.metrics(key)] for r in runs[name]])

    def final(name: str, key: str) -> float:
        return float(np.mean([r.final[key] for r in runs[name]]))

    numbers = {
        "final_train_loss": {n: final(n, "train_loss") for n in names},
        "final_val_loss": {n: final(n, "loss") for n in names},
        "final_val_accuracy": {n: final(n, "accuracy") for n in names},
        "final_lr": {n: float(runs[n][0].metrics("lr")[-1][1]) for n in names},
    }

    fig, axes = plt.subplots(1, 4, figsize=(22, 4.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, n in enumerate(names):
        c = colors[i % len(colors)]
        ls = "--" if n == "constant" else "-"
        for ax, key in zip(axes[:3], ("lr", "loss", "accuracy")):
            ks, v = series(n, key)
            ax.plot(ks, v.mean(0), ls, color=c, label=n)
            if seeds > 1 and key != "lr":
                ax.fill_between(ks, v.min(0), v.max(0), color=c, alpha=0.15)
    axes[0].set_ylabel("learning rate")
    axes[0].set_title(f"schedules ({cfg['optimizer']}, peak lr {cfg['lr']:g})")
    axes[1].set_ylabel("validation loss")
    axes[1].set_yscale("log")
    axes[1].set_title(f"validation loss (mean, min–max over {seeds} seeds)")
    axes[2].set_ylabel("validation accuracy")
    axes[2].set_title("validation accuracy")
    for ax in axes[:3]:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    ax = axes[3]
    tl = [numbers["final_train_loss"][n] for n in names]
    acc = [numbers["final_val_accuracy"][n] for n in names]
    ax.bar(np.arange(len(names)) - 0.2, tl, 0.4, label="final training loss", color="tab:blue")
    ax.set_ylabel("final training loss")
    ax2 = ax.twinx()
    ax2.bar(np.arange(len(names)) + 0.2, acc, 0.4, label="final val accuracy", color="tab:orange")
    ax2.set_ylabel("final validation accuracy")
    ax2.set_ylim(min(acc) - 0.1, min(1.0, max(acc) + 0.05))
    ax.set_xticks(np.arange(len(names)), names, rotation=30, ha="right")
    ax.set_title("end of training")
    ax.legend(loc="upper left", fontsize=8)
    ax2.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    ctx.save_figure(fig, "lr_schedules")

    const = numbers["final_train_loss"].get("constant")
    decaying = {n: numbers["final_train_loss"][n] for n in names if n in DECAYING}
    claims = [
        Claim(
            "Decreasing the learning rate later helps converge: at the same peak lr every decaying schedule ends "
            "with a lower training loss than the constant one.",
            const is not None and bool(decaying) and all(v < const for v in decaying.values()),
            f"final training loss: constant {const:.3g}; "
            + ", ".join(f"{k} {v:.3g}" for k, v in decaying.items()),
        ),
        Claim(
            "The schedules end at (or near) their minimum learning rate, far below the peak.",
            all(numbers["final_lr"][n] <= 0.1 * float(cfg["lr"]) for n in decaying),
            "final lr: " + ", ".join(f"{n} {numbers['final_lr'][n]:.3g}" for n in names),
        ),
    ]
    return numbers, claims


_BASE = {
    "width": 100,
    "depth": 2,
    "batch_size": 100,
    "optimizer": "sgd",
    "lr": 0.3,
    "hparams": {"momentum": 0.9},
    "schedules": ["constant", "step", "exponential", "cosine", "linear", "warmup_cosine", "wsd"],
    "schedule_kw": {},
    "eval_every": 50,
}

register(
    Study(
        name="lr-schedules",
        description="Constant, step, exponential, cosine, linear, warmup+cosine and WSD schedules on the MNIST-1D MLP.",
        slide="seed 003, 'Learning Rate Schedules: Guiding the Descent'",
        seconds=(17, 132),  # measured quick/full wall s on the 2-core CPU (tour scheduling)
        quick={**_BASE, "steps": 1500, "seeds": 1},
        full={**_BASE, "steps": 4000, "seeds": 3},
        run=run,
    )
)
