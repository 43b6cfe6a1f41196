"""The demo: a real end-to-end comparison of three optimizers on two workloads, with a table and a figure."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

DEMO_PLAN: dict[str, dict[str, Any]] = {
    # task -> steps and per-optimizer (name, lr, hparams)
    "logreg": {
        "steps": 300,
        "batch_size": 20,
        "optimizers": [("sgd", 0.1, {}), ("sgd", 0.1, {"momentum": 0.9}), ("adam", 0.05, {})],
        "metric": "gap",
        "log": True,
    },
    "mnist1d_mlp": {
        "steps": 1500,
        "batch_size": 100,
        "optimizers": [
            ("sgd", 0.1, {"momentum": 0.9}),
            ("adam", 1e-2, {}),
            ("adamw", 1e-2, {"weight_decay": 0.05}),
        ],
        "metric": "accuracy",
        "log": False,
    },
}


def _label(name: str, hp: dict[str, Any]) -> str:
    return name + ("" if not hp else "(" + ", ".join(f"{k}={v}" for k, v in hp.items()) + ")")


def run_demo(out: Path, quick: bool = False, console: Any = None) -> Path:
    """Train the demo plan, store the runs under ``out``, print a table and write ``out/demo.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from rich.console import Console
    from rich.table import Table

    from descentlab.store import Store
    from descentlab.train import train

    console = console or Console()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    fig, axes = plt.subplots(1, len(DEMO_PLAN), figsize=(6 * len(DEMO_PLAN), 4.2))
    table = Table(title="descentlab demo: three optimizers on two workloads")
    for col in ("task", "optimizer", "lr", "steps", "val loss", "val accuracy / gap", "train s"):
        table.add_column(col, justify="right")
    with Store(out / "demo.db") as store:
        for ax, (task, plan) in zip(axes, DEMO_PLAN.items()):
            steps = plan["steps"] // (3 if quick else 1)
            for name, lr, hp in plan["optimizers"]:
                run = train(
                    task,
                    optimizer=name,
                    lr=lr,
                    hparams=hp,
                    steps=steps,
                    batch_size=plan["batch_size"],
                    eval_every=max(1, steps // 30),
                    store=store,
                    seed=0,
                    progress=True,
                )
                series = run.metrics(plan["metric"])
                ax.plot([s for s, _ in series], [v for _, v in series], label=_label(name, hp) + f", lr={lr}")
                f = run.final
                table.add_row(
                    task,
                    _label(name, hp),
                    f"{lr:g}",
                    str(f["step"]),
                    f"{f['loss']:.4f}",
                    f"{f.get(plan['metric'], float('nan')):.4g}",
                    f"{f['train_time']:.2f}",
                )
            ax.set_title(task)
            ax.set_xlabel("step")
            ax.set_ylabel("f(x) - f*" if plan["metric"] == "gap" else "validation accuracy")
            if plan["log"]:
                ax.set_yscale("log")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "demo.png"
    from descentlab.safe_write import save_figure

    try:  # atomic; a symbolic link at the path is refused, never written through
        save_figure(fig, path, dpi=120)
    finally:
        plt.close(fig)
    console.print(table)
    console.print(  # the folder is the user's: text, never markup
        f"figure: {path}  ·  store: {out / 'demo.db'}  ·  {time.perf_counter() - t0:.1f} s", markup=False
    )
    return path
