"""Initialization and depth: deep plain ReLU MLPs with Kaiming and Xavier weights, each at its own tuned lr.

Seeds 002/003 (He et al. 2015, "Delving Deep into Rectifiers", Figs. 2 and 3): "22-layer ReLU net: good init
converges faster; 30-layer: good init is able to converge" — there Xavier "completely stalls" at 30 layers.
Kaiming's N(0, 2/fan_in) keeps the second moment of the activations through ReLU layers; Xavier's
N(0, 2/(fan_in + fan_out)) = N(0, 1/fan_in) at equal widths halves it at every layer, so after 30 layers the
signal (and the gradient reaching the first layers) is ~2^-15 of the input's. The study trains plain (no skips, no
normalization) width-64 ReLU MLPs of depth 22 and 30 on the digits data with SGD + momentum; each (depth, init) arm
gets its own learning rate chosen on tuning seeds by the claim's metric (``claims.tune``). The N(0, 0.01²) init is
shown only in the activation-scale panel (a check), not trained.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from descentlab import tasks
from descentlab.studies import Anchor, Measurement, Prediction, Study, StudyContext, register
from descentlab.studies.claims import Tuned, censored_log_ratios, eval_seeds, tune, tuning_seeds
from descentlab.tasks.base import Task

INITS = ("kaiming", "xavier", "small")
TRAINED = ("kaiming", "xavier")
LABELS = {
    "kaiming": "Kaiming N(0, 2/fan_in)",
    "xavier": "Xavier N(0, 2/(fan_in+fan_out))",
    "small": "N(0, 0.01²)",
}
CHANCE = math.log(10)
SOURCE = (
    "He et al. 2015, Figs. 2-3; seed 002, 'Влияние инициализации весов нейронной сети на сходимость методов'"
)

PREDICTIONS = (
    Prediction(
        name="kaiming_converges_faster_22",
        statement="22-layer plain ReLU net: the good (Kaiming) init converges faster than Xavier.",
        source=SOURCE,
        quantity="ln(mean mini-batch training loss over the run with Xavier / the same with Kaiming) at depth 22, "
        "each init at its own lr tuned by that mean loss on the tuning seeds, per evaluation seed",
        direction=">",
        threshold=0.0,
        tolerance="any speed-up; the paper shows one curve per init",
        scale="log-given",
        censor="a diverged run (non-finite loss) counts at the chance loss ln 10: it made no progress",
        version=2,
    ),
    Prediction(
        name="kaiming_converges_30",
        statement="30-layer plain ReLU net: the good (Kaiming) init is able to converge.",
        source=SOURCE,
        quantity="final training loss (full training set) with Kaiming at depth 30 divided by the chance loss "
        "ln 10, at its lr tuned by final training loss on the tuning seeds, per evaluation seed",
        direction="<",
        threshold=0.1,
        tolerance="'converges': below 10 % of the chance loss (the net fits its training set)",
        scale="log",
        censor="a diverged run (non-finite loss) counts at the chance loss ln 10: it made no progress",
        version=2,
    ),
    Prediction(
        name="kaiming_beats_xavier_30",
        statement="30-layer plain ReLU net: Kaiming converges where Xavier does not (Xavier 'completely stalls').",
        source=SOURCE,
        quantity="ln(final training loss with Xavier / with Kaiming) at depth 30, each at its own lr tuned by final "
        "training loss on the tuning seeds, per evaluation seed",
        direction=">",
        threshold=0.0,
        tolerance="any gap; the paper's Xavier curve does not move",
        scale="log-given",
        censor="a diverged run (non-finite loss) counts at the chance loss ln 10: it made no progress",
        version=2,
    ),
)

STALL_ANCHOR = Anchor(
    quantity="30-layer plain ReLU net with Xavier init: final training loss / chance loss ln 10 (1 = stalled)",
    published=1.0,
    source="He et al. 2015, 'Delving Deep into Rectifiers' (arXiv:1502.01852), Fig. 3: the 30-layer model with "
    "Xavier init 'completely stalls' while Kaiming's converges",
    tolerance=0.05,
    kind="additive",
    reason="a stated margin: a stalled run stays within 5 % of the chance loss (the paper's Xavier curve does not "
    "move off its start)",
)


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


def log_loss_ratio(worse: Sequence[float], better: Sequence[float]) -> list[float]:
    """Per seed ln(worse / better) of two positive losses (> 0: ``better`` is lower); nan when not finite/positive."""
    out = []
    for a, b in zip(worse, better):
        a, b = float(a), float(b)
        ok = a > 0 and b > 0 and math.isfinite(a) and math.isfinite(b)
        out.append(math.log(a / b) if ok else math.nan)
    return out


def _finite_or_inf(x: float) -> float:
    return x if math.isfinite(x) else math.inf


def make_model(depth: int, width: int, init: str, seed: int) -> nn.Module:
    """The ``deep_relu_mlp`` of ``init``, drawn deterministically from ``seed`` (global RNG left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return deep_relu_mlp(depth, width, init)(int(seed))


Arm = tuple[int, str, float, int]
"""(depth, init, lr, seed)."""


class _Trainer:
    """Trains (depth, init, lr, seed) arms in batches; caches mean mini-batch loss and final training loss."""

    def __init__(self, cfg: dict[str, Any], ctx: StudyContext):
        self.cfg, self.ctx = cfg, ctx
        self.base = tasks.get("digits_mlp")
        self.mean_loss: dict[Arm, float] = {}
        self.final_loss: dict[Arm, float] = {}
        self.curves: dict[Arm, np.ndarray] = {}
        self._tasks: dict[tuple[int, str], Task] = {}

    def task(self, depth: int, init: str) -> Task:
        """The digits data with the (depth, init) plain ReLU MLP as its model (``make_model`` of a seed)."""
        if (depth, init) not in self._tasks:
            width = int(self.cfg["width"])

            def factory(seed: int, d: int = depth, i: str = init) -> nn.Module:
                return make_model(d, width, i, seed)

            self._tasks[(depth, init)] = dataclasses.replace(
                self.base, name=f"digits_relu{depth}_{init}", model_factory=factory,
                config={**self.base.config, "depth": depth, "width": width, "init": init},
            )  # fmt: skip
        return self._tasks[(depth, init)]

    def train(self, arms: list[Arm]) -> None:
        """Train ``arms`` as one population per (depth, init) (``descentlab.train_many``: torch's SGD with
        momentum, each member its own seed's batches); fills the caches and the mini-batch loss curves. A diverged
        member's losses count as infinite."""
        steps = int(self.cfg["steps"])
        for key in sorted({a[:2] for a in arms}):
            # lr-major: stacked blocks
            group = sorted((a for a in arms if a[:2] == key), key=lambda a: (a[2], a[3]))
            runs = self.ctx.train_many(
                self.task(*key), "sgd", [{"seed": s, "lr": lr} for *_, lr, s in group],
                hparams={"momentum": float(self.cfg["momentum"])}, steps=steps,
                batch_size=int(self.cfg["batch_size"]), eval_every=steps, keep_model=False, save_final=False,
            )  # fmt: skip
            self.ctx.advance(len(group) - 1)
            for arm, run in zip(group, runs):
                batch = np.full(steps, np.nan)
                got = [v for _, v in run.metrics("batch_loss")]
                batch[: len(got)] = got
                self.curves[arm] = batch
                ended = run.status == "finished"
                self.mean_loss[arm] = _finite_or_inf(float(np.mean(batch))) if ended else math.inf
                self.final_loss[arm] = _finite_or_inf(float(run.final["train_loss"])) if ended else math.inf

    def score(self, depth: int, init: str, metric: str) -> Callable[[float, int], float]:
        """score(lr, seed) for ``tune``: ``metric`` ("mean" or "final" training loss), trained on a cache miss."""

        def f(lr: float, seed: int) -> float:
            table = self.mean_loss if metric == "mean" else self.final_loss
            if (depth, init, lr, seed) not in table:
                self.train([(depth, init, lr, seed)])
            return table[(depth, init, lr, seed)]

        return f


def run(ctx: StudyContext, cfg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Measurement]]:
    """Tune each (depth, init) arm's lr, train all on the evaluation seeds, judge the claims and the anchor."""
    d_fast, d_deep = int(cfg["depth_faster"]), int(cfg["depth_deep"])
    if d_fast == d_deep:
        raise ValueError(f"init-depth: depth_faster and depth_deep must differ, got {d_fast} and {d_deep}")
    tu, ev = tuning_seeds(cfg), eval_seeds(cfg)
    grid = [float(v) for v in cfg["lr_grid"]]
    trainer = _Trainer(cfg, ctx)
    metric = {d_fast: "mean", d_deep: "final"}
    trainer.train([(d, i, lr, s) for d in (d_fast, d_deep) for i in TRAINED for lr in grid for s in tu])
    tuned: dict[tuple[int, str], Tuned] = {}
    for d in (d_fast, d_deep):
        for init in TRAINED:
            name = "mean mini-batch training loss" if metric[d] == "mean" else "final training loss"
            tuned[(d, init)] = tune(trainer.score(d, init, metric[d]), grid, tu, metric=name, minimize=True)
    lr = {k: t.value for k, t in tuned.items()}
    trainer.train([(d, i, lr[(d, i)], s) for d in (d_fast, d_deep) for i in TRAINED for s in ev])

    def per_seed(table: dict[Arm, float], d: int, init: str) -> list[float]:
        return [table[(d, init, lr[(d, init)], s)] for s in ev]

    def unbracketed(*keys: tuple[int, str]) -> str | None:
        notes = [tuned[k].note(f"{k[0]}-layer {k[1]} lr") for k in keys if not tuned[k].bracketed]
        return "; ".join(notes) or None

    mean_k, mean_x = (
        per_seed(trainer.mean_loss, d_fast, "kaiming"),
        per_seed(trainer.mean_loss, d_fast, "xavier"),
    )
    fin_k, fin_x = (
        per_seed(trainer.final_loss, d_deep, "kaiming"),
        per_seed(trainer.final_loss, d_deep, "xavier"),
    )
    fast_v, fast_b = censored_log_ratios(mean_x, mean_k, at=CHANCE)  # a diverged arm counts at chance
    deep_v, deep_b = censored_log_ratios(fin_x, fin_k, at=CHANCE)
    measured = {
        "kaiming_converges_faster_22": Measurement(
            fast_v,
            f"mean mini-batch training loss over {cfg['steps']} steps at depth {d_fast}: Kaiming (lr "
            f"{lr[(d_fast, 'kaiming')]:g}) {np.mean(mean_k):.3g}, Xavier (lr {lr[(d_fast, 'xavier')]:g}) "
            f"{np.mean(mean_x):.3g}",
            inconclusive=unbracketed((d_fast, "kaiming"), (d_fast, "xavier")),
            budget=fast_b,
        ),
        "kaiming_converges_30": Measurement(
            [v / CHANCE for v in fin_k],
            f"final training loss at depth {d_deep}, Kaiming (lr {lr[(d_deep, 'kaiming')]:g}): "
            f"{np.mean(fin_k):.3g} (chance ln 10 = {CHANCE:.3f})",
            inconclusive=unbracketed((d_deep, "kaiming")),
            budget=1.0,  # a diverged run: the chance loss
        ),
        "kaiming_beats_xavier_30": Measurement(
            deep_v,
            f"final training loss at depth {d_deep}: Kaiming {np.mean(fin_k):.3g}, Xavier (lr "
            f"{lr[(d_deep, 'xavier')]:g}) {np.mean(fin_x):.3g}",
            inconclusive=unbracketed((d_deep, "kaiming"), (d_deep, "xavier")),
            budget=deep_b,
        ),
    }
    ctx.anchor(
        STALL_ANCHOR,
        [v / CHANCE for v in fin_x],
        f"Xavier at its own tuned lr {lr[(d_deep, 'xavier')]:g} ({tuned[(d_deep, 'xavier')].note()}); "
        f"Kaiming's ratio {np.mean(fin_k) / CHANCE:.3g}",
    )

    x = trainer.base.train_data[0][:512]
    stds = {
        (d, init): activation_stds(make_model(d, int(cfg["width"]), init, 0), x)
        for d in (d_fast, d_deep)
        for init in INITS
    }
    ratio = {init: stds[(d_deep, init)][-1] / stds[(d_deep, init)][0] for init in INITS}
    halving = 0.5 ** ((d_deep - 1) / 2)
    ctx.check(
        "kaiming_keeps_activation_scale",
        f"at init, the last layer's pre-activation std over the first's stays within [0.1, 10] with Kaiming "
        f"({d_deep} layers; He et al.'s variance-preserving derivation)",
        0.1 < ratio["kaiming"] < 10,
        f"Kaiming {ratio['kaiming']:.3g}",
    )
    ctx.check(
        "xavier_halves_variance_per_relu_layer",
        f"with Xavier at equal widths each ReLU layer halves the second moment: std ratio within a factor 10 of "
        f"(1/2)^(({d_deep} - 1)/2) = {halving:.2g}",
        halving / 10 < ratio["xavier"] < halving * 10,
        f"Xavier {ratio['xavier']:.3g}; N(0, 0.01²) {ratio['small']:.3g}",
    )

    numbers = {
        "tuning": {f"{d}/{i}": tuned[(d, i)].to_dict() for d, i in tuned},
        "lr": {f"{d}/{i}": v for (d, i), v in lr.items()},
        "mean_minibatch_loss": {
            f"{d}/{i}": per_seed(trainer.mean_loss, d, i) for d in (d_fast, d_deep) for i in TRAINED
        },
        "final_train_loss": {
            f"{d}/{i}": per_seed(trainer.final_loss, d, i) for d in (d_fast, d_deep) for i in TRAINED
        },
        "activation_std": {f"{d}/{i}": v for (d, i), v in stds.items()},
        "activation_std_ratio_last_over_first": {f"{d_deep}/{i}": v for i, v in ratio.items()},
    }
    _figure(ctx, cfg, trainer, lr, tuned, stds, ev, (d_fast, d_deep))
    return numbers, measured


def _smooth(y: np.ndarray, k: int) -> np.ndarray:
    """Moving average over ``k`` steps (shorter at the start)."""
    c = np.cumsum(np.insert(np.nan_to_num(y, nan=1e3, posinf=1e3), 0, 0.0))
    idx = np.arange(1, len(y) + 1)
    lo = np.maximum(0, idx - k)
    return (c[idx] - c[lo]) / (idx - lo)


def _figure(
    ctx: StudyContext,
    cfg: dict[str, Any],
    trainer: _Trainer,
    lr: dict[tuple[int, str], float],
    tuned: dict[tuple[int, str], Tuned],
    stds: dict[tuple[int, str], list[float]],
    ev: list[int],
    depths: tuple[int, int],
) -> None:
    """Training curves per depth (own tuned lr), tuning curves, activation scale at init."""
    import matplotlib.pyplot as plt

    colors = {"kaiming": "C0", "xavier": "C1", "small": "C2"}
    fig, axes = plt.subplots(1, 4, figsize=(22, 4.8))
    for ax, d in zip(axes, depths):
        for init in TRAINED:
            v = np.stack([_smooth(trainer.curves[(d, init, lr[(d, init)], s)], 25) for s in ev])
            steps = np.arange(1, v.shape[1] + 1)
            ax.plot(steps, v.mean(0), color=colors[init], label=f"{LABELS[init]}, lr {lr[(d, init)]:g}")
            if len(ev) > 1:
                ax.fill_between(steps, v.min(0), v.max(0), color=colors[init], alpha=0.2)
        ax.axhline(CHANCE, color="gray", ls=":", lw=1, label="chance: ln 10")
        ax.set_title(
            f"{d}-layer plain ReLU MLP (SGD + momentum {cfg['momentum']:g}, own tuned lr)\n"
            f"mini-batch loss, 25-step average; mean and min–max of {len(ev)} seeds",
            fontsize=10,
        )
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.set_ylim(0, max(3.0, CHANCE * 1.2))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax = axes[2]
    for d, ls in zip(depths, ("--", "-")):
        for init in TRAINED:
            t = tuned[(d, init)]
            xs = t.grid
            ax.plot(
                xs,
                [min(t.scores[x], 10.0) for x in xs],
                "o" + ls,
                color=colors[init],
                ms=4,
                label=f"{d} layers, {init} ({t.metric})",
            )
            ax.plot([t.value], [t.scores[t.value]], "*", color=colors[init], ms=13, mec="k")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss on the tuning seeds")
    ax.set_title("tuning: each arm's own lr (star); diverged runs drawn at 10", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    ax = axes[3]
    deepest = depths[1]
    for init in INITS:
        s = stds[(deepest, init)]
        ax.semilogy(
            range(1, len(s) + 1), np.maximum(s, 1e-300), "o-", ms=3, color=colors[init], label=LABELS[init]
        )
    ax.set_title(f"activation scale at init ({deepest} layers)", fontsize=10)
    ax.set_xlabel("layer")
    ax.set_ylabel("std of pre-activations")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    ctx.save_figure(fig, "init_depth")


_BASE = {
    "depth_faster": 22,
    "depth_deep": 30,
    "width": 64,
    "batch_size": 64,
    "momentum": 0.9,
    "lr_grid": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1],
}

register(
    Study(
        name="init-depth",
        description="Deep plain ReLU MLPs (22, 30 layers): Kaiming vs Xavier initialization, each at its own tuned lr.",
        slide="seeds 002/003: Kaiming He et al. 2015, '22-layer ReLU net: good init converges faster; "
        "30-layer: good init is able to converge'",
        # wall s, 2026-12-07, one torch thread: quick in the 04:15 tour, full run beside one other study
        seconds=(102, 260),
        quick={**_BASE, "steps": 800, "seeds": 3, "tuning_seeds": 3},
        full={**_BASE, "steps": 1500, "seeds": 20, "seed_blocks": [10, 20], "tuning_seeds": 3},
        run=run,
        predictions=PREDICTIONS,
        versions=(
            (1, "2026-12-01", "the predictions as first declared"),
            (
                2,
                "2026-12-07",
                "issue 26: a diverged run (non-finite loss) counts at the chance loss ln 10 instead of making "
                "the ratio NaN; kaiming_converges_30 (a loss ratio to chance) judged on the log scale",
            ),
        ),
        limits={"momentum": (0.0, 0.999), "depth_faster": (2, 200), "depth_deep": (2, 200)},
    )
)
