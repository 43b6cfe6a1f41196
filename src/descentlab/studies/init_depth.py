"""Initialization and depth: deep plain ReLU MLPs with Kaiming, Xavier and N(0, 0.01^2) weights.

Seeds 002/003 (He et al. 2015, "Delving Deep into Rectifiers"): "22-layer ReLU net: good init converges faster;
30-layer: good init is able to converge". Kaiming's N(0, 2/fan_in) keeps the activations' scale through ReLU layers;
Xavier's N(0, 2/(fan_in + fan_out)) halves their variance at every ReLU layer; N(0, 0.01^2) shrinks them by
0.01 sqrt(fan_in) per layer, so a deep net's output and gradients vanish. The study trains depth-22 and depth-30 MLPs
on the digits data with SGD + momentum and measures the activation scale per layer at initialization.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from descentlab import tasks
from descentlab.studies import Claim, Study, StudyContext, register

INITS = ("kaiming", "xavier", "small")
LABELS = {
    "kaiming": "Kaiming N(0, 2/fan_in)",
    "xavier": "Xavier N(0, 2/(fan_in+fan_out))",
    "small": "N(0, 0.01²)",
}


def deep_relu_mlp(
    depth: int, width: int, init: str, d_in: int = 64, classes: int = 10
) -> Callable[[int], nn.Module]:
    """A factory for a plain ReLU MLP with ``depth`` linear layers, initialized by ``init`` (biases zero)."""
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if depth < 2:
        raise ValueError(f"depth must be >= 2, got {depth}")

    def make(seed: int) -> nn.Module:
        layers: list[nn.Module] = []
        d = d_in
        for _ in range(depth - 1):
            layers += [nn.Linear(d, width), nn.ReLU()]
            d = width
        layers.append(nn.Linear(d, classes))
        model = nn.Sequential(*layers)
        for m in model:
            if isinstance(m, nn.Linear):
                if init == "kaiming":
                    nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                elif init == "xavier":
                    nn.init.xavier_normal_(m.weight)
                else:
                    nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)
        return model

    return make


@torch.no_grad()
def activation_stds(model: nn.Module, x: torch.Tensor) -> list[float]:
    """Standard deviation of the pre-activations of every linear layer for the batch ``x``."""
    out: list[float] = []
    h = x
    for m in model:
        h = m(h)
        if isinstance(m, nn.Linear):
            out.append(float(h.std()))
    return out


def _first_below(series: list[tuple[int, float]], level: float) -> float:
    for step, value in series:
        if value <= level:
            return float(step)
    return math.inf


def run(ctx: StudyContext, cfg: dict[str, Any]) -> tuple[dict[str, Any], list[Claim]]:
    """Train every (depth, init), measure activation scales at init, plot and check the claims."""
    import matplotlib.pyplot as plt

    base = tasks.get("digits_mlp")
    depths = [int(d) for d in cfg["depths"]]
    seeds = int(cfg["seeds"])
    chance = math.log(10)
    level = chance / 2
    curves: dict[tuple[int, str], np.ndarray] = {}
    steps_axis: np.ndarray | None = None
    numbers: dict[str, Any] = {"final_train_loss": {}, "steps_to_half_chance_loss": {}, "activation_std": {}}
    for depth in depths:
        for init in INITS:
            task = dataclasses.replace(
                base,
                model_factory=deep_relu_mlp(depth, int(cfg["width"]), init),
                name=f"digits-relu{depth}-{init}",
            )
            runs = [
                ctx.train(
                    task,
                    optimizer="sgd",
                    lr=float(cfg["lr"]),
                    hparams={"momentum": 0.9},
                    steps=int(cfg["steps"]),
                    batch_size=int(cfg["batch_size"]),
                    eval_every=int(cfg["eval_every"]),
                    seed=s,
                    device="cpu",
                )
                for s in range(seeds)
            ]
            series = [r.metrics("train_loss") for r in runs]
            steps_axis = np.array([s for s, _ in series[0]])
            vals = np.array([[min(v, 1e3) if math.isfinite(v) else 1e3 for _, v in ser] for ser in series])
            curves[(depth, init)] = vals
            key = f"{depth}/{init}"
            numbers["final_train_loss"][key] = float(vals[:, -1].mean())
            numbers["steps_to_half_chance_loss"][key] = float(
                np.median([_first_below(ser, level) for ser in series])
            )
            model0 = task.make_model(0)
            numbers["activation_std"][key] = activation_stds(model0, base.train_data[0][:512])

    assert steps_axis is not None
    fig, axes = plt.subplots(1, len(depths) + 1, figsize=(5.2 * (len(depths) + 1), 4.2))
    colors = {"kaiming": "C0", "xavier": "C1", "small": "C2"}
    for ax, depth in zip(axes, depths):
        for init in INITS:
            vals = curves[(depth, init)]
            ax.plot(steps_axis, vals.mean(0), color=colors[init], label=LABELS[init])
            if seeds > 1:
                ax.fill_between(steps_axis, vals.min(0), vals.max(0), color=colors[init], alpha=0.2)
        ax.axhline(chance, color="gray", ls=":", lw=1, label="chance: log 10")
        band = f"\nmean of {seeds} seeds, band min–max" if seeds > 1 else ""
        ax.set_title(f"{depth}-layer ReLU MLP (SGD + momentum, lr {cfg['lr']}){band}", fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax = axes[-1]
    deepest = max(depths)
    for init in INITS:
        stds = numbers["activation_std"][f"{deepest}/{init}"]
        ax.semilogy(
            range(1, len(stds) + 1),
            np.maximum(stds, 1e-300),
            "o-",
            ms=3,
            color=colors[init],
            label=LABELS[init],
        )
    ax.set_title(f"activation scale at init ({deepest} layers)")
    ax.set_xlabel("layer")
    ax.set_ylabel("std of pre-activations")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    ctx.save_figure(fig, "init_depth")

    d_small, d_deep = min(depths), deepest
    fl, st = numbers["final_train_loss"], numbers["steps_to_half_chance_loss"]
    k_std = numbers["activation_std"][f"{d_deep}/kaiming"]
    s_std = numbers["activation_std"][f"{d_deep}/small"]
    k_ratio = k_std[-1] / k_std[0]
    s_ratio = s_std[-1] / s_std[0]
    small_moved = float(np.abs(curves[(d_deep, "small")] - chance).max())
    numbers["small_init_max_distance_from_chance"] = small_moved
    claims = [
        Claim(
            f"{d_small}-layer ReLU net: good (Kaiming) init converges faster than Xavier.",
            st[f"{d_small}/kaiming"] < 0.5 * st[f"{d_small}/xavier"],
            f"steps to training loss ≤ log(10)/2: Kaiming {st[f'{d_small}/kaiming']:g}, Xavier "
            f"{st[f'{d_small}/xavier']:g}; final loss {fl[f'{d_small}/kaiming']:.3f} vs {fl[f'{d_small}/xavier']:.3f}",
        ),
        Claim(
            f"{d_deep}-layer ReLU net: good (Kaiming) init is able to converge; with N(0, 0.01²) the loss does not "
            "move from log(classes).",
            fl[f"{d_deep}/kaiming"] < 0.25 * chance and small_moved < 0.05 * chance,
            f"final training loss: Kaiming {fl[f'{d_deep}/kaiming']:.3f}, Xavier {fl[f'{d_deep}/xavier']:.3f}, "
            f"N(0, 0.01²) {fl[f'{d_deep}/small']:.3f} (chance log 10 = {chance:.3f}; the small init's curve stays "
            f"within {small_moved:.2g} of it at every evaluation)",
        ),
        Claim(
            "Kaiming keeps the activations' scale through depth; a small init makes them vanish.",
            0.1 < k_ratio < 10 and s_ratio < 1e-10,
            f"std(last layer)/std(first layer) at init, {d_deep} layers: Kaiming {k_ratio:.3g}, "
            f"Xavier {numbers['activation_std'][f'{d_deep}/xavier'][-1] / numbers['activation_std'][f'{d_deep}/xavier'][0]:.3g}, "
            f"N(0, 0.01²) {s_ratio:.3g}",
        ),
    ]
    return numbers, claims


register(
    Study(
        name="init-depth",
        description="Deep plain ReLU MLPs (22, 30 layers): Kaiming vs Xavier vs N(0, 0.01²) initialization.",
        slide="seeds 002/003: Kaiming He et al. 2015, '22-layer ReLU net: good init converges faster; "
        "30-layer: good init is able to converge'",
        seconds=(32, 204),  # measured quick/full wall s on the 2-core CPU (tour scheduling)
        quick={
            "depths": [22, 30],
            "width": 64,
            "lr": 0.003,
            "steps": 800,
            "batch_size": 64,
            "eval_every": 50,
            "seeds": 1,
        },
        full={
            "depths": [22, 30],
            "width": 64,
            "lr": 0.003,
            "steps": 1500,
            "batch_size": 64,
            "eval_every": 50,
            "seeds": 3,
        },
        run=run,
    )
)
