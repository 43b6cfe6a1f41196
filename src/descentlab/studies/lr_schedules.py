"""Learning-rate schedules on the MNIST-1D MLP, each at its own tuned learning rate.

Seed 003, "Learning Rate Schedules: Guiding the Descent": "The optimal learning rate often changes during training.
Starting large can help escape poor local minima, while decreasing it later can help converge to a good solution";
common schedules: step decay, exponential decay eta_0 e^{-kt}, cosine annealing, linear decay, warmup (plus
warmup-stable-decay here). The claims, fixed before the run:

- at equal budget, each decaying schedule the slide lists (step, exponential, cosine, linear) ends with a lower
  training loss than the best constant learning rate — every schedule, the constant included, at its own peak lr
  chosen by the final training loss on tuning seeds (``claims.tune``, grid extended past an edge);
- starting large then decaying beats a small constant: step decay from its tuned peak eta reaches a higher held-out
  accuracy than the constant eta / 10, the lr step decay drops to (the slide's "reduce eta by a factor (e.g. 0.1)").

All runs are SGD with momentum on the same MLP and batches, trained as populations (``descentlab.train_many``, one
per schedule; the runs are in the store); schedules come from ``descentlab.schedules`` (torch's ``lr_scheduler``). That the
decaying schedules end at <= 10 % of their peak is a check of the schedules, not a claim.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from descentlab.studies import Measurement, Prediction, Study, StudyContext, register
from descentlab.studies.claims import Tuned, censored_log_ratios, eval_seeds, tune, tuning_seeds
from descentlab.studies.tables import as_tensors

DECAYING = ("step", "exponential", "cosine", "linear", "warmup_cosine", "wsd")
CLAIMED = ("step", "exponential", "cosine", "linear")
"""The decaying schedules the slide lists; each gets its own claim against the best constant."""
SOURCE = "seed 003, slide 'Learning Rate Schedules: Guiding the Descent'"


def _beats_constant(name: str) -> Prediction:
    return Prediction(
        name=f"{name}_beats_best_constant",
        statement=f"Decreasing the learning rate later helps converge: at equal budget the {name} schedule ends with "
        "a lower training loss than the best constant learning rate.",
        source=SOURCE,
        quantity=f"ln(final training loss of the constant schedule / final training loss of {name}), each at its "
        "own peak lr tuned by final training loss on the tuning seeds, per evaluation seed",
        direction=">",
        threshold=0.0,
        tolerance="any improvement; the slide gives no size",
        scale="log-given",
        censor="a diverged run (non-finite final loss) counts at the chance loss ln 10: it made no progress",
        version=2,
    )


PREDICTIONS = (
    *(_beats_constant(n) for n in CLAIMED),
    Prediction(
        name="large_then_decay_beats_small_constant",
        statement="Starting large can help escape poor local minima: step decay from its tuned peak lr eta reaches a "
        "better solution than the small constant lr eta / 10 it decays to.",
        source=SOURCE,
        quantity="held-out accuracy (percentage points) of step decay (peak eta tuned as above) minus the constant "
        "eta / 10, at the end of the same budget, per evaluation seed",
        direction=">",
        threshold=0.0,
        tolerance="any improvement; 'small' is the slide's step factor 0.1, fixed before the run",
    ),
)


# ---------------------------------------------------------------- pure helpers (unit-tested)


def lr_multipliers(name: str, steps: int, kw: dict[str, Any] | None = None) -> np.ndarray:
    """The factor schedule ``name`` applies to the peak lr at each step k = 0 .. steps-1 (torch's scheduler)."""
    from descentlab import schedules

    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=1.0)
    sched = schedules.create(name, opt, int(steps), **dict(kw or {}))
    out = np.empty(int(steps))
    for k in range(int(steps)):
        out[k] = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
    return out


def log_ratio(constant: Sequence[float], schedule: Sequence[float]) -> list[float]:
    """Per seed ln(constant / schedule) of two final losses (> 0: the schedule ends lower); nan if not both > 0."""
    out = []
    for a, b in zip(constant, schedule):
        a, b = float(a), float(b)
        out.append(math.log(a / b) if a > 0 and b > 0 and math.isfinite(a) and math.isfinite(b) else math.nan)
    return out


# ---------------------------------------------------------------- training


class _Trainer:
    """Trains (schedule, peak lr, seed) arms in batches and caches their final training loss."""

    def __init__(self, task: Any, cfg: dict[str, Any], ctx: StudyContext):
        self.task, self.cfg, self.ctx = task, cfg, ctx
        self.steps = int(cfg["steps"])
        self.kws: dict[str, dict[str, Any]] = dict(cfg["schedule_kw"])
        self.mult = {n: lr_multipliers(n, self.steps, self.kws.get(n)) for n in cfg["schedules"]}
        self.final: dict[tuple[str, float, int], float] = {}

    def train(self, arms: list[tuple[str, float, int]], curves: bool = False) -> dict[str, Any]:
        """Train ``arms`` as one population per schedule (``descentlab.train_many``: torch's SGD with momentum and
        the registry's schedule, each member its own seed's batches). Returns ``{"steps", "batch_loss" [steps, M],
        "train_loss"/"train_accuracy" (and with ``curves`` "val_loss"/"val_accuracy", every ``eval_every`` steps)
        [n_evals, M]}`` in the order of ``arms`` (NaN after a member diverged)."""
        every = int(self.cfg["eval_every"]) if curves else self.steps
        runs: dict[tuple[str, float, int], Any] = {}
        for name in sorted({a[0] for a in arms}):
            group = sorted({a for a in arms if a[0] == name}, key=lambda a: (a[1], a[2]))  # lr-major blocks
            got = self.ctx.train_many(
                self.task, "sgd", [{"seed": s, "lr": lr} for _, lr, s in group],
                hparams={"momentum": float(self.cfg["momentum"])}, schedule=name,
                schedule_kw=self.kws.get(name) or None, steps=self.steps, batch_size=int(self.cfg["batch_size"]),
                eval_every=every, keep_model=False, save_final=False,
            )  # fmt: skip
            self.ctx.advance(len(group) - 1)
            runs.update(zip(group, got))
        ordered = [runs[a] for a in arms]
        for r in ordered:  # the evaluation's names of the batched loop: val_* for the held-out metrics
            r.history["val_loss"], r.history["val_accuracy"] = r.metrics("loss"), r.metrics("accuracy")
        res = as_tensors(
            ordered, self.steps, every, ["train_loss", "train_accuracy", "val_loss", "val_accuracy"]
        )
        for k, arm in enumerate(arms):
            self.final[arm] = float(res["train_loss"][-1][k])
        return res

    def score(self, name: str):
        """score(lr, seed) for ``tune``: the final training loss of schedule ``name`` (trained on a cache miss)."""

        def f(lr: float, seed: int) -> float:
            if (name, lr, seed) not in self.final:
                self.train([(name, lr, seed)])
            return self.final[(name, lr, seed)]

        return f


def run(ctx: StudyContext, cfg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Measurement]]:
    """Tune every schedule's peak lr on tuning seeds, train all at their own lr on the evaluation seeds, judge."""
    from descentlab import schedules, tasks

    names = list(cfg["schedules"])
    missing = [n for n in names if n not in schedules.available()]
    if missing:
        raise ValueError(f"lr-schedules: unknown schedules {missing}; available: {schedules.available()}")
    needed = [n for n in ("constant", *CLAIMED) if n not in names]
    if needed:
        raise ValueError(f"lr-schedules: the claims need the schedules {needed} in 'schedules'")
    task = tasks.get("mnist1d_mlp", width=int(cfg["width"]), depth=int(cfg["depth"]))
    trainer = _Trainer(task, cfg, ctx)
    tu, ev = tuning_seeds(cfg), eval_seeds(cfg)
    grid = [float(v) for v in cfg["lr_grid"]]
    trainer.train([(n, lr, s) for n in names for lr in grid for s in tu])  # the whole grid in one batch
    tuned: dict[str, Tuned] = {
        n: tune(trainer.score(n), grid, tu, metric="final training loss", minimize=True) for n in names
    }
    peak = {n: tuned[n].value for n in names}
    small = peak["step"] / 10
    arms = [(n, peak[n], s) for n in names for s in ev] + [("constant", small, s) for s in ev]
    res = trainer.train(arms, curves=True)
    idx = {arm: k for k, arm in enumerate(arms)}

    def final(name: str, lr: float, key: str) -> np.ndarray:
        return np.array([float(res[key][-1][idx[(name, lr, s)]]) for s in ev])

    train_loss = {n: final(n, peak[n], "train_loss") for n in names}
    val_acc = {n: final(n, peak[n], "val_accuracy") for n in names}
    small_acc = final("constant", small, "val_accuracy")
    small_loss = final("constant", small, "train_loss")

    measured: dict[str, Measurement] = {}
    for n in CLAIMED:
        reasons = [tuned[a].note(f"{a} lr") for a in ("constant", n) if not tuned[a].bracketed]
        values, at_chance = censored_log_ratios(train_loss["constant"], train_loss[n], at=math.log(10))
        measured[f"{n}_beats_best_constant"] = Measurement(
            values,
            f"final training loss: constant (lr {peak['constant']:g}) {np.mean(train_loss['constant']):.3g}, "
            f"{n} (peak lr {peak[n]:g}) {np.mean(train_loss[n]):.3g} (means over {len(ev)} seeds)",
            inconclusive="; ".join(reasons) or None,
            budget=at_chance,  # MNIST-1D has 10 classes: a diverged run counts at the chance loss ln 10
        )
    measured["large_then_decay_beats_small_constant"] = Measurement(
        list(100 * (val_acc["step"] - small_acc)),
        f"held-out accuracy: step from peak {peak['step']:g} {np.mean(val_acc['step']):.3f}, constant "
        f"{small:g} {np.mean(small_acc):.3f}; final training loss {np.mean(train_loss['step']):.3g} vs "
        f"{np.mean(small_loss):.3g}",
        inconclusive=None if tuned["step"].bracketed else tuned["step"].note("step lr"),
    )

    ends = {n: float(trainer.mult[n][-1]) for n in names if n in DECAYING}
    ctx.check(
        "decaying_schedules_end_low",
        "every decaying schedule's last learning rate is at most 10 % of its peak (the schedules' definition)",
        all(v <= 0.1 for v in ends.values()),
        ", ".join(f"{n} {v:.3g}" for n, v in ends.items()),
    )
    numbers = {
        "tuning": {n: tuned[n].to_dict() for n in names},
        "peak_lr": peak,
        "small_constant_lr": small,
        "final_train_loss": {n: train_loss[n] for n in names},
        "final_val_accuracy": {n: val_acc[n] for n in names},
        "small_constant": {"final_train_loss": small_loss, "final_val_accuracy": small_acc},
        "final_lr_over_peak": {n: float(trainer.mult[n][-1]) for n in names},
    }
    _figure(ctx, cfg, names, peak, small, tuned, trainer, res, idx, ev, numbers)
    return numbers, measured


def _figure(
    ctx: StudyContext,
    cfg: dict[str, Any],
    names: list[str],
    peak: dict[str, float],
    small: float,
    tuned: dict[str, Tuned],
    trainer: _Trainer,
    res: dict[str, Any],
    idx: dict[tuple[str, float, int], int],
    ev: list[int],
    numbers: dict[str, Any],
) -> None:
    """lr, training loss and held-out accuracy per schedule; tuning curves; final losses; step vs small constant."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(19, 10))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    ks = np.array(res["steps"])
    arms = [(n, peak[n], f"{n} (peak {peak[n]:g})") for n in names] + [
        ("constant", small, f"constant {small:g} (step's peak / 10)")
    ]
    for c, (n, lr, label) in enumerate(arms):
        col = colors[c % len(colors)]
        ls = "--" if n == "constant" else "-"
        axes[0, 0].plot(np.arange(trainer.steps), lr * trainer.mult[n], ls, color=col, label=label)
        for ax, key in ((axes[0, 1], "train_loss"), (axes[0, 2], "val_accuracy")):
            v = np.stack([res[key][:, idx[(n, lr, s)]].numpy() for s in ev])
            ax.plot(ks, v.mean(0), ls, color=col, label=label)
            if len(ev) > 1:
                ax.fill_between(ks, v.min(0), v.max(0), color=col, alpha=0.12)
    axes[0, 0].set_yscale("log")
    axes[0, 0].set_ylabel("learning rate")
    axes[0, 0].set_title(f"schedules at their own tuned peak lr (SGD, momentum {cfg['momentum']:g})")
    axes[0, 1].set_yscale("log")
    axes[0, 1].set_ylabel("training loss (full training set)")
    axes[0, 1].set_title(f"training loss (mean, min–max over {len(ev)} eval seeds)")
    axes[0, 2].set_ylabel("held-out accuracy")
    axes[0, 2].set_title("held-out accuracy")
    for ax in axes[0]:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    ax = axes[1, 0]
    for c, n in enumerate(names):
        t = tuned[n]
        xs = t.grid
        ax.plot(xs, [t.scores[x] for x in xs], "o-", color=colors[c % len(colors)], label=n)
        ax.plot([t.value], [t.scores[t.value]], "*", color=colors[c % len(colors)], ms=14, mec="k")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("peak learning rate")
    ax.set_ylabel("final training loss (tuning seeds)")
    ax.set_title("tuning: each schedule's own peak lr (star)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    ax = axes[1, 1]
    for c, n in enumerate(names):
        v = numbers["final_train_loss"][n]
        ax.bar(c, np.mean(v), color=colors[c % len(colors)], alpha=0.7)
        ax.plot(np.full(len(v), c), v, "k.", ms=6)
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylabel("final training loss")
    ax.set_title("equal budget, own tuned lr: final training loss per eval seed")
    ax.grid(alpha=0.3, axis="y", which="both")
    ax = axes[1, 2]
    step_acc = numbers["final_val_accuracy"]["step"]
    small_acc = numbers["small_constant"]["final_val_accuracy"]
    for a, b in zip(small_acc, step_acc):
        ax.plot([0, 1], [a, b], "o-", color="gray", alpha=0.7)
    ax.set_xticks([0, 1], [f"constant {small:g}", f"step from {peak['step']:g}"])
    ax.set_xlim(-0.4, 1.4)
    ax.set_ylabel("final held-out accuracy")
    ax.set_title("starting large, then decaying vs the small constant (each eval seed)")
    ax.grid(alpha=0.3)
    fig.suptitle(
        f"MNIST-1D MLP {cfg['width']}x{cfg['depth']}, {cfg['steps']} steps, batch {cfg['batch_size']}",
        fontsize=11,
    )
    fig.tight_layout()
    ctx.save_figure(fig, "lr_schedules")


_BASE = {
    "width": 100,
    "depth": 2,
    "batch_size": 100,
    "momentum": 0.9,
    "lr_grid": [0.01, 0.03, 0.1, 0.3, 1.0],
    "schedules": ["constant", "step", "exponential", "cosine", "linear", "warmup_cosine", "wsd"],
    "schedule_kw": {},
    "eval_every": 100,
}

register(
    Study(
        name="lr-schedules",
        description="Constant, step, exponential, cosine, linear, warmup+cosine and WSD schedules on the MNIST-1D "
        "MLP, each at its own tuned peak lr.",
        slide="seed 003, 'Learning Rate Schedules: Guiding the Descent'",
        # wall s, 2026-12-07, one torch thread: quick in the 04:15 tour, full run beside one other study
        seconds=(106, 474),
        quick={**_BASE, "steps": 1500, "seeds": 10, "seed_blocks": [5, 10], "tuning_seeds": 3},
        full={**_BASE, "steps": 4000, "seeds": 20, "seed_blocks": [10, 20], "tuning_seeds": 3},
        run=run,
        predictions=PREDICTIONS,
        versions=(
            (1, "2026-12-01", "the predictions as first declared"),
            (
                2,
                "2026-12-07",
                "issue 26: the four loss ratios declare their censoring: a diverged run counts at the chance "
                "loss ln 10 instead of making the ratio NaN",
            ),
        ),
        limits={"momentum": (0.0, 0.999)},
    )
)
