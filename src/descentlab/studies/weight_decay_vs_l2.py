"""L2 regularization vs decoupled weight decay in momentum SGD and Adam, as Loshchilov & Hutter (2019) tested it.

Seed 003, "Weight decay in SGD and Adam: why AdamW matters": "L2 regularization and weight decay are not identical
(for momentum/adaptive SGD); L2 regularization is not effective in Adam; weight decay is equally effective in both
SGD and Adam". Loshchilov & Hutter's evidence (ICLR 2019, Fig. 2) is a grid over the initial learning rate and the
decay for each of SGD + L2, SGDW, Adam + L2 and AdamW: AdamW's best cell beats Adam + L2's, and the decoupled
variants have "a more separable hyperparameter space" (the best decay does not move with the learning rate).

The study trains that grid on the MNIST-1D MLP as one population per family (``descentlab.train_many``; the runs
are in the store): four families, each ``lrs x decays``, over tuning and evaluation seeds. Decay is in the paper's parametrization: L2 adds ``λ x`` to the
gradient (torch's ``weight_decay`` of SGD / Adam), decoupled decay applies ``x <- x - λ x`` each step, not
multiplied by the learning rate (torch's AdamW, and SGDW from pytorch_optimizer, with ``weight_decay = λ / lr``). Each family's best cell is chosen by
validation accuracy on the tuning seeds and judged by test accuracy on the evaluation seeds. The separation
statistic (fixed before any run): per lr row the test-accuracy argmax over the decays, refined by a parabola in
log(decay); ``s`` = the least-squares slope of log(best decay) on log(lr). Coupling through the lr predicts
``|s| = 1`` (best L2 factor ∝ 1/lr), separation ``s = 0``. The algebra (AdamW's decay is exactly lr·wd, Adam + L2's
is rescaled by 1/(√v̂+ε), plain SGD + L2 is decoupled decay with factor lr·λ) is listed as checks, not claims.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from descentlab.studies import Measurement, Prediction, Study, StudyContext, register
from descentlab.studies.claims import eval_seeds, tuning_seeds
from descentlab.tasks.base import Task

FAMILIES: dict[str, tuple[str, str]] = {
    "Adam + L2": ("adam", "l2"),
    "AdamW": ("adam", "decay"),
    "SGD + L2": ("sgd", "l2"),
    "SGDW": ("sgd", "decay"),
}
"""Family -> (base optimizer, how the decay enters: coupled ``l2`` or decoupled ``decay``)."""

SOURCE = "seed 003, slide 'Weight decay in SGD and Adam: why AdamW matters'; Loshchilov & Hutter 2019, Fig. 2"

PREDICTIONS = (
    Prediction(
        name="adamw_beats_adam_l2",
        statement="L2 regularization is not effective in Adam, decoupled weight decay is: AdamW reaches a higher "
        "test accuracy than Adam + L2, each at its own best (learning rate, decay) cell.",
        source=SOURCE,
        quantity="test accuracy (percentage points) of AdamW minus Adam + L2, each at its best cell of the "
        "lr x decay grid chosen by validation accuracy on the tuning seeds, per evaluation seed",
        direction=">",
        threshold=0.0,
        tolerance="any positive difference; the source gives no size for this task",
    ),
    Prediction(
        name="adamw_more_separable",
        statement="Decoupled weight decay separates the two hyper-parameters: AdamW's best decay moves less with "
        "the learning rate than Adam + L2's ('a more separable hyperparameter space').",
        source=SOURCE,
        quantity="|s(AdamW)| - |s(Adam + L2)|, s = least-squares slope of log(best decay per lr row, test-accuracy "
        "argmax refined by a parabola) on log(lr), per evaluation seed; decoupled decay x <- x - λx per step",
        direction="<",
        threshold=0.0,
        tolerance="coupling through the lr predicts |s| = 1, separation |s| = 0",
    ),
    Prediction(
        name="sgdw_more_separable",
        statement="With momentum SGD, L2 regularization and weight decay are not identical: SGDW's best decay "
        "moves less with the learning rate than SGD + L2's ('a more separable hyperparameter space').",
        source=SOURCE,
        quantity="|s(SGDW)| - |s(SGD + L2)| with s as for Adam (momentum 0.9), per evaluation seed",
        direction="<",
        threshold=0.0,
        tolerance="coupling through the lr predicts |s| = 1, separation |s| = 0",
    ),
)


# ---------------------------------------------------------------- statistics (pure functions, unit-tested)


def best_decay_per_row(acc: np.ndarray, decays: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Per lr row of ``acc`` [n_lr, n_decay]: log of the best decay and whether it sits at the grid's edge.

    The argmax (first of ties) is refined by the vertex of the parabola through it and its two neighbours in
    log(decay), kept within half-way to each neighbour; at an edge the edge value is kept.
    """
    acc = np.asarray(acc, dtype=float)
    logd = np.log(np.asarray(decays, dtype=float))
    if acc.ndim != 2 or acc.shape[1] != len(logd) or len(logd) < 3:
        raise ValueError(f"acc must be [n_lr, n_decay] with n_decay = len(decays) >= 3, got {acc.shape}")
    if not (np.diff(logd) > 0).all():
        raise ValueError(f"decays must be positive and increasing, got {list(decays)}")
    best = np.empty(len(acc))
    edge = np.zeros(len(acc), dtype=bool)
    for i, row in enumerate(np.nan_to_num(acc, nan=-np.inf)):
        j = int(np.argmax(row))
        best[i] = logd[j]
        if j == 0 or j == len(row) - 1:
            edge[i] = True
            continue
        xs, ys = logd[j - 1 : j + 2], row[j - 1 : j + 2]
        if not np.isfinite(ys).all():
            continue
        a, b, _ = np.polyfit(xs - xs[1], ys, 2)
        if a < 0:
            lo, hi = (xs[0] - xs[1]) / 2, (xs[2] - xs[1]) / 2
            best[i] += float(np.clip(-b / (2 * a), lo, hi))
    return best, edge


def separation_slope(acc: np.ndarray, lrs: Sequence[float], decays: Sequence[float]) -> tuple[float, float]:
    """(s, edge fraction): least-squares slope of log(best decay) on log(lr), and the share of rows at an edge."""
    best, edge = best_decay_per_row(acc, decays)
    x = np.log(np.asarray(lrs, dtype=float))
    if len(x) != len(best) or len(x) < 2:
        raise ValueError(f"need one lr per row (>= 2 rows), got {len(x)} lrs for {len(best)} rows")
    xc = x - x.mean()
    return float(np.sum(xc * (best - best.mean())) / np.sum(xc * xc)), float(edge.mean())


def best_cell(score: np.ndarray) -> tuple[int, int, bool]:
    """(lr index, decay index, bracketed) of the highest ``score`` [n_lr, n_decay]; bracketed = not on an edge."""
    s = np.nan_to_num(np.asarray(score, dtype=float), nan=-np.inf)
    i, j = np.unravel_index(int(np.argmax(s)), s.shape)
    return int(i), int(j), bool(0 < i < s.shape[0] - 1 and 0 < j < s.shape[1] - 1)


def separation_difference(
    decoupled: Sequence[float], coupled: Sequence[float], edge_fraction: Sequence[float], name: str
) -> Measurement:
    """Per seed |s(decoupled)| - |s(coupled)|; inconclusive when most lr rows' best decay is at the grid's edge."""
    vals = [abs(a) - abs(b) for a, b in zip(decoupled, coupled)]
    mean_edge = float(np.mean(edge_fraction)) if len(edge_fraction) else 1.0
    reason = None
    if mean_edge > 0.5:
        reason = f"the decay grid does not bracket the best decay in {mean_edge:.0%} of the lr rows ({name})"
    return Measurement(
        vals,
        f"s(decoupled) per seed {[round(v, 2) for v in decoupled]}, s(coupled) {[round(v, 2) for v in coupled]}; "
        f"rows at the decay grid's edge {mean_edge:.0%}",
        inconclusive=reason,
    )


# ---------------------------------------------------------------- checks on torch's optimizers (the algebra)


def effective_decay(run: Any, task: Any, wd: float, batch_size: int = 100) -> np.ndarray:
    """Per coordinate, the decay one step applies, divided by lr*wd*x (1 for AdamW; 1/(sqrt(v_hat)+eps) for Adam+L2).

    The trained model and optimizer are copied twice; one copy steps with the weight decay, the other with
    ``weight_decay=0`` on the same batch, and the difference of their updates is the shrink attributable to decay.
    For Adam + L2 the penalty gradient enters the first moment with weight (1 - beta1) / (1 - beta1^t) in one step,
    so the measured one-step shrink is divided by that factor (its steady-state value).
    """
    batch = tuple(t[:batch_size] for t in task.train_data)
    params_after = []
    for decay in (wd, 0.0):
        model, opt = copy.deepcopy((run.model, run.optimizer))
        for g in opt.param_groups:
            g["weight_decay"] = decay
        opt.zero_grad()
        task.loss(model, batch).backward()
        opt.step()
        params_after.append(torch.cat([p.detach().reshape(-1).double() for p in model.parameters()]))
    x = torch.cat([p.detach().reshape(-1).double() for p in run.model.parameters()])
    group = run.optimizer.param_groups[0]
    lr = float(group["lr"])
    shrink = params_after[1] - params_after[0]  # positive along x when decay pulls toward 0
    keep = x.abs() > 1e-3
    ratio = shrink[keep] / (lr * wd * x[keep])
    if isinstance(run.optimizer, torch.optim.Adam) and not isinstance(run.optimizer, torch.optim.AdamW):
        beta1 = group["betas"][0]
        state = next(iter(run.optimizer.state.values()))
        t = float(state["step"]) + 1
        ratio = ratio / ((1 - beta1) / (1 - beta1**t))
    return ratio.numpy()


def adam_preconditioner(run: Any) -> np.ndarray:
    """1 / (sqrt(v_hat) + eps) per coordinate from a trained Adam's state (the closed form of the L2 rescaling)."""
    group = run.optimizer.param_groups[0]
    beta2, eps = group["betas"][1], group["eps"]
    xs, out = [], []
    for p in run.model.parameters():
        st = run.optimizer.state[p]
        v_hat = st["exp_avg_sq"] / (1 - beta2 ** float(st["step"]))
        out.append((1.0 / (v_hat.sqrt() + eps)).reshape(-1).double())
        xs.append(p.detach().reshape(-1).double())
    x = torch.cat(xs)
    return torch.cat(out)[x.abs() > 1e-3].numpy()


class DecoupledDecay(torch.optim.Optimizer):
    """Decoupled weight decay around a base optimizer: x <- (1 - lr*wd) x, then the base step on grad f(x).

    Seed 003, eq. (11) "weight decay": the decay does not pass through the base optimizer's statistics. With
    plain SGD it equals torch's coupled L2 ``weight_decay`` (a check of the study and a unit test).
    """

    def __init__(self, base_optimizer: torch.optim.Optimizer, weight_decay: float):
        if not isinstance(base_optimizer, torch.optim.Optimizer):
            raise TypeError(f"base_optimizer must be a torch.optim.Optimizer, got {base_optimizer!r}")
        if not weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
        self.base_optimizer = base_optimizer
        self.weight_decay = float(weight_decay)
        self.param_groups = base_optimizer.param_groups
        self.defaults = base_optimizer.defaults
        self.state = base_optimizer.state
        self._optimizer_step_pre_hooks = {}  # type: ignore[assignment]
        self._optimizer_step_post_hooks = {}  # type: ignore[assignment]

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Evaluate the gradient at x (closure), shrink x by (1 - lr*wd), then take the base step."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                p.mul_(1 - group["lr"] * self.weight_decay)
        self.base_optimizer.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients (the base optimizer's)."""
        self.base_optimizer.zero_grad(set_to_none=set_to_none)


def _algebra_checks(ctx: StudyContext, task: Any, cfg: dict[str, Any], steps: int) -> dict[str, Any]:
    """Short torch runs: AdamW's decay is exactly lr·wd, Adam + L2's is 1/(√v̂+ε), plain SGD + L2 = decoupled."""
    task_kw = {"width": int(cfg["width"]), "depth": int(cfg["depth"])}
    lr, l2, wd = 3e-3, 1e-2, 1e-2
    common = {
        "steps": steps,
        "seed": tuning_seeds(cfg)[0],
        "task_kw": task_kw,
        "device": "cpu",
        "batch_size": 100,
    }
    run_l2 = ctx.train("mnist1d_mlp", optimizer="adam", lr=lr, hparams={"weight_decay": l2}, **common)
    run_w = ctx.train("mnist1d_mlp", optimizer="adamw", lr=lr, hparams={"weight_decay": wd}, **common)
    run_sgd = ctx.train("mnist1d_mlp", optimizer="sgd", lr=0.1, hparams={"weight_decay": l2}, **common)
    eff_l2, eff_w = effective_decay(run_l2, task, l2), effective_decay(run_w, task, wd)
    eff_sgd = effective_decay(run_sgd, task, l2)
    rel = float(np.median(np.abs(eff_l2 / adam_preconditioner(run_l2) - 1)))
    p10, p50, p90 = (float(v) for v in np.percentile(eff_l2, [10, 50, 90]))
    w_dev = float(np.max(np.abs(eff_w - 1)))
    sgd_dev = float(np.max(np.abs(eff_sgd - 1)))
    ctx.check(
        "adamw_decay_is_lr_times_wd",
        "torch's AdamW shrinks every coordinate by exactly lr·wd per step (decay / (lr·wd·x) = 1)",
        w_dev < 1e-2,
        f"max |ratio - 1| over coordinates {w_dev:.2e}",
    )
    ctx.check(
        "adam_l2_rescaled_by_preconditioner",
        "inside Adam the L2 gradient is divided by √v̂+ε: the decay each coordinate feels is λ/(√v̂+ε)",
        rel < 0.1 and p90 / p10 > 1,
        f"median relative error vs 1/(√v̂+ε) {rel:.1%}; decay/(lr·λ) p10 {p10:.3g}, median {p50:.3g}, "
        f"p90 {p90:.3g} (p90/p10 {p90 / p10:.1f})",
    )
    ctx.check(
        "plain_sgd_l2_is_decoupled_decay",
        "for plain SGD (no momentum) L2 with factor λ is decoupled decay with factor lr·λ (seed 003, eq. 11)",
        sgd_dev < 1e-2,
        f"one step of SGD + L2: max |decay/(lr·λ) - 1| over coordinates {sgd_dev:.2e}",
    )
    return {
        "adam_l2_effective_decay": eff_l2,
        "adam_l2_effective_decay_percentiles": {"p10": p10, "p50": p50, "p90": p90},
        "adam_l2_vs_preconditioner_median_relative_error": rel,
        "adamw_effective_decay_max_deviation": w_dev,
        "plain_sgd_l2_effective_decay_max_deviation": sgd_dev,
    }


# ---------------------------------------------------------------- the study


def split(task: Any, n_train: int, n_val: int) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """The first ``n_train`` training examples to train on, the last ``n_val`` as validation (disjoint)."""
    x, y = task.train_data
    if n_train + n_val > len(y):
        raise ValueError(f"n_train + n_val must be <= {len(y)}, got {n_train} + {n_val}")
    return (x[:n_train], y[:n_train]), (x[len(y) - n_val :], y[len(y) - n_val :])


@dataclasses.dataclass
class _HeldOut(Task):
    """The training split with two held-out sets: ``loss``/``accuracy`` on ``val_data`` (the validation split that
    picks each family's cell) and ``test_loss``/``test_accuracy`` on ``test_data`` (the judged test set)."""

    test_data: tuple[torch.Tensor, ...] = ()

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        """Validation and test loss and accuracy."""
        was = model.training
        model.eval()
        try:
            out = self._metrics(model, self.val_data)
            out.update({f"test_{k}": v for k, v in self._metrics(model, self.test_data).items()})
        finally:
            model.train(was)
        return out


def _member_hparams(family: str, lr: float, decay: float, momentum: float) -> tuple[str, dict[str, Any]]:
    """The registry optimizer and hyper-parameters of one grid cell, in the paper's parametrization: L2 adds
    ``decay * x`` to the gradient (torch's coupled ``weight_decay``), decoupled decay shrinks ``x <- x - decay * x``
    each step (``adamw`` / ``sgdw`` with ``weight_decay = decay / lr``)."""
    base, kind = FAMILIES[family] if family in FAMILIES else (family, "none")
    hp: dict[str, Any] = {"momentum": momentum} if base == "sgd" else {}
    if kind == "l2":
        return base, {**hp, "weight_decay": decay}
    if kind == "decay":
        return ("adamw" if base == "adam" else "sgdw"), {**hp, "weight_decay": decay / lr}
    return base, hp


def _train_grids(task: Any, cfg: dict[str, Any], seeds: list[int], ctx: StudyContext) -> dict[str, Any]:
    """Train every family's lr x decay grid (plus decay 0 per lr) for every seed, one population per family
    (``descentlab.train_many``); accuracies and final weight norms ``[seed, lr, decay]``."""
    train, val = split(task, int(cfg["n_train"]), int(cfg["n_val"]))
    held = _HeldOut(
        name=f"{task.name}_split{len(train[1])}", train_data=train, val_data=val, model_factory=task.model_factory,
        kind=task.kind, default_batch_size=task.default_batch_size,
        config={**task.config, "n_train": len(train[1]), "n_val": len(val[1])}, test_data=task.val_data,
    )  # fmt: skip
    decays = [float(d) for d in cfg["decays"]]
    steps, momentum = int(cfg["steps"]), float(cfg["momentum"])
    out: dict[str, Any] = {}
    for base in ("adam", "sgd"):
        lrs = [float(v) for v in cfg[f"{base}_lrs"]]
        for fam in [f for f, (b, _) in FAMILIES.items() if b == base] + [f"{base} (no decay)"]:
            key = base if fam.endswith("(no decay)") else fam
            ds = [0.0] if key == base else decays
            # blocks of seeds
            cells = [(i, j, s) for i in range(len(lrs)) for j in range(len(ds)) for s in seeds]
            name, _ = _member_hparams(key, lrs[0], ds[0], momentum)
            members = [{"seed": s, "lr": lrs[i], **_member_hparams(key, lrs[i], ds[j], momentum)[1]}
                       for i, j, s in cells]  # fmt: skip
            runs = ctx.train_many(held, name, members, steps=steps, batch_size=int(cfg["batch_size"]),
                                  eval_every=steps, save_final=False)  # fmt: skip
            ctx.advance(len(cells) - 1)
            shape = (len(seeds), len(lrs), len(ds))
            grid = {k: np.full(shape, np.nan) for k in ("val", "test", "norm")}
            for (i, j, s), run in zip(cells, runs):
                if (
                    run.status != "finished"
                ):  # diverged: no accuracy (NaN), as a model with NaN weights has none
                    continue
                at = (seeds.index(s), i, j)
                grid["val"][at], grid["test"][at] = run.final["accuracy"], run.final["test_accuracy"]
                grid["norm"][at] = float(
                    torch.sqrt(sum((p.detach().double() ** 2).sum() for p in run.model.parameters()))
                )
            out[fam] = {"lrs": lrs, **grid}
    return out


def run(ctx: StudyContext, cfg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Measurement]]:
    """Train the four lr x decay grids over tuning and evaluation seeds; judge the three predictions; checks; plot."""
    from descentlab import tasks

    task = tasks.get("mnist1d_mlp", width=int(cfg["width"]), depth=int(cfg["depth"]))
    ev, tu = eval_seeds(cfg), tuning_seeds(cfg)
    seeds = tu + ev
    decays = [float(d) for d in cfg["decays"]]
    grids = _train_grids(task, cfg, seeds, ctx)
    nt = len(tu)
    numbers: dict[str, Any] = {"decays": decays, "families": {}}
    chosen: dict[str, dict[str, Any]] = {}
    slopes: dict[str, list[float]] = {}
    edges: dict[str, list[float]] = {}
    for fam in FAMILIES:
        g = grids[fam]
        lrs = g["lrs"]
        i, j, bracketed = best_cell(g["val"][:nt].mean(0))
        acc_eval = g["test"][nt:, i, j]
        per_seed = [separation_slope(g["test"][nt + k], lrs, decays) for k in range(len(ev))]
        slopes[fam] = [s for s, _ in per_seed]
        edges[fam] = [e for _, e in per_seed]
        chosen[fam] = {"lr": lrs[i], "decay": decays[j], "bracketed": bracketed, "test": acc_eval}
        numbers["families"][fam] = {
            "lrs": lrs,
            "best_cell": {"lr": lrs[i], "decay": decays[j], "bracketed": bracketed},
            "tuning_val_accuracy": g["val"][:nt].mean(0),
            "test_accuracy_mean_over_eval_seeds": g["test"][nt:].mean(0),
            "best_cell_test_accuracy_per_seed": acc_eval,
            "slope_per_seed": slopes[fam],
            "edge_fraction_per_seed": edges[fam],
            "final_weight_norm_mean": g["norm"][nt:].mean(0),
        }
        if FAMILIES[fam][1] == "decay":  # torch's AdamW / lr-scaled decay: wd_torch = λ / lr, slope s - 1
            numbers["families"][fam]["slope_per_seed_in_lr_scaled_parametrization"] = [
                s - 1 for s in slopes[fam]
            ]
    for base in ("adam", "sgd"):
        g = grids[f"{base} (no decay)"]
        numbers[f"{base}_no_decay_test_accuracy_per_lr"] = dict(
            zip(map(str, g["lrs"]), g["test"][nt:, :, 0].mean(0))
        )

    def cell_note(fam: str) -> str:
        c = chosen[fam]
        edge = "" if c["bracketed"] else " (at the grid's edge)"
        return f"{fam} lr {c['lr']:g}, decay {c['decay']:g}{edge}"

    reasons = [
        f"{cell_note(f)}: the grid does not bracket the best cell"
        for f in ("Adam + L2", "AdamW")
        if not chosen[f]["bracketed"]
    ]
    diff = 100 * (np.asarray(chosen["AdamW"]["test"]) - np.asarray(chosen["Adam + L2"]["test"]))
    measured: dict[str, Measurement] = {
        "adamw_beats_adam_l2": Measurement(
            list(diff),
            f"best cells on tuning seeds {tu}: {cell_note('AdamW')}, {cell_note('Adam + L2')}; test accuracy "
            f"AdamW {np.mean(chosen['AdamW']['test']):.3f}, Adam + L2 {np.mean(chosen['Adam + L2']['test']):.3f}",
            inconclusive="; ".join(reasons) or None,
        ),
        "adamw_more_separable": separation_difference(
            slopes["AdamW"], slopes["Adam + L2"], edges["AdamW"] + edges["Adam + L2"], "AdamW / Adam + L2"
        ),
        "sgdw_more_separable": separation_difference(
            slopes["SGDW"], slopes["SGD + L2"], edges["SGDW"] + edges["SGD + L2"], "SGDW / SGD + L2"
        ),
    }
    # the decay shrinks the weights (a sanity check of the decay, not a claim)
    shrink = []
    for fam in FAMILIES:
        base = FAMILIES[fam][0]
        i = grids[fam]["lrs"].index(chosen[fam]["lr"])
        j = decays.index(chosen[fam]["decay"])
        shrink.append(
            (
                fam,
                float(grids[fam]["norm"][nt:, i, j].mean()),
                float(grids[f"{base} (no decay)"]["norm"][nt:, i, 0].mean()),
            )
        )
    ctx.check(
        "decay_shrinks_the_norm",
        "at each family's best cell the final weight norm is below the same lr's run without decay",
        all(a < b for _, a, b in shrink),
        "; ".join(f"{f}: ‖w‖ {a:.3g} vs {b:.3g} without decay" for f, a, b in shrink),
    )
    numbers.update(_algebra_checks(ctx, task, cfg, int(cfg["check_steps"])))
    _figure(ctx, grids, chosen, numbers, decays, nt, cfg)
    numbers.pop("adam_l2_effective_decay")
    return numbers, measured


def _figure(
    ctx: StudyContext,
    grids: dict[str, Any],
    chosen: dict[str, dict[str, Any]],
    numbers: dict[str, Any],
    decays: list[float],
    nt: int,
    cfg: dict[str, Any],
) -> None:
    """Heatmaps of test accuracy per family with the best decay per lr; per-coordinate decay; best cells."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(18, 9.5))
    where = {"Adam + L2": (0, 0), "AdamW": (0, 1), "SGD + L2": (1, 0), "SGDW": (1, 1)}
    n_eval = grids["AdamW"]["test"].shape[0] - nt
    for fam, (r, c) in where.items():
        ax = axes[r, c]
        g = grids[fam]
        lrs = g["lrs"]
        mean = g["test"][nt:].mean(0)
        im = ax.imshow(mean, origin="lower", cmap="viridis", aspect="auto")
        fig.colorbar(im, ax=ax, label=f"test accuracy (mean of {n_eval} eval seeds)")
        for i in range(len(lrs)):
            for j in range(len(decays)):
                ax.text(j, i, f"{mean[i, j]:.2f}", ha="center", va="center", fontsize=7, color="w")
        step = math.log(decays[1] / decays[0])
        for k in range(n_eval):
            best, _ = best_decay_per_row(g["test"][nt + k], decays)
            ax.plot(
                (best - math.log(decays[0])) / step,
                range(len(lrs)),
                "o-",
                color="tab:red",
                ms=3,
                lw=0.8,
                alpha=0.7,
                label="best decay per lr (each eval seed)" if k == 0 else None,
            )
        ch = chosen[fam]
        ax.plot(
            decays.index(ch["decay"]),
            lrs.index(ch["lr"]),
            "*",
            color="w",
            mec="k",
            ms=16,
            label="best cell on the tuning seeds",
        )
        ax.set_xticks(range(len(decays)), [f"{d:g}" for d in decays], fontsize=8)
        ax.set_yticks(range(len(lrs)), [f"{v:g}" for v in lrs], fontsize=8)
        kind = "L2 factor λ (gradient + λx)" if FAMILIES[fam][1] == "l2" else "decay λ per step (x ← x − λx)"
        ax.set_xlabel(kind)
        ax.set_ylabel("learning rate")
        s = numbers["families"][fam]["slope_per_seed"]
        ax.set_title(f"{fam}: slope of log best decay on log lr s = {np.mean(s):+.2f}", fontsize=10)
        if (r, c) == (0, 0):
            ax.legend(fontsize=7, loc="lower right", framealpha=0.8)
    ax = axes[0, 2]
    eff = numbers["adam_l2_effective_decay"]
    lo = max(float(np.min(eff)), 1e-3)
    bins = np.logspace(np.log10(lo), np.log10(float(np.max(eff)) * 1.1), 60)
    pct = numbers["adam_l2_effective_decay_percentiles"]
    ax.hist(eff, bins=bins, alpha=0.7, label=f"Adam + L2: p90/p10 = {pct['p90'] / pct['p10']:.1f}")
    ax.axvline(1.0, color="tab:green", lw=2, label="AdamW and plain SGD + L2: 1 for every coordinate")
    ax.set_xscale("log")
    ax.set_xlabel("decay per step / (lr·λ)   [Adam + L2: ≈ 1/(√v̂ + ε)]")
    ax.set_ylabel("number of coordinates")
    ax.set_title("decay felt by each coordinate (one step of torch's optimizers)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    ax = axes[1, 2]
    fams = list(FAMILIES)
    for k, fam in enumerate(fams):
        vals = np.asarray(chosen[fam]["test"])
        ax.bar(k, vals.mean(), color=["tab:orange", "tab:green", "tab:blue", "tab:red"][k], alpha=0.6)
        ax.plot(np.full(len(vals), k), vals, "k.", ms=6)
        ax.text(
            k,
            vals.mean(),
            f"{vals.mean():.3f}\nlr {chosen[fam]['lr']:g}\nλ {chosen[fam]['decay']:g}",
            ha="center",
            va="bottom",
            fontsize=8,
        )
    for base, x0 in (("adam", 0.5), ("sgd", 2.5)):
        best = max(numbers[f"{base}_no_decay_test_accuracy_per_lr"].values())
        ax.hlines(
            best,
            x0 - 0.9,
            x0 + 0.9,
            colors="gray",
            linestyles=":",
            label="best lr without decay" if base == "adam" else None,
        )
    ax.set_xticks(range(len(fams)), fams)
    ax.set_ylabel("test accuracy at the tuned best cell")
    accs = np.concatenate([np.asarray(chosen[f]["test"]) for f in fams])
    ax.set_ylim(max(0.0, accs.min() - 0.08), min(1.0, accs.max() + 0.08))
    ax.set_title(f"best cell per family (tuning seeds), judged on {n_eval} eval seeds", fontsize=10)
    ax.legend(fontsize=8)
    fig.suptitle(
        f"MNIST-1D MLP {cfg['width']}x{cfg['depth']}, {cfg['n_train']} training examples, {cfg['steps']} steps",
        fontsize=11,
    )
    fig.tight_layout()
    ctx.save_figure(fig, "weight_decay_vs_l2")


_BASE = {
    "width": 64,
    "depth": 2,
    "batch_size": 100,
    "n_train": 1000,
    "n_val": 500,
    "momentum": 0.9,
    "adam_lrs": [1e-3, 3e-3, 1e-2, 3e-2],
    "sgd_lrs": [0.01, 0.03, 0.1, 0.3],
    "decays": [3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1],
    "check_steps": 100,
}

register(
    Study(
        name="weight-decay-vs-l2",
        description="Loshchilov & Hutter's lr x decay grids for Adam + L2, AdamW, SGD + L2, SGDW: best cells, "
        "separability, per-coordinate decay.",
        slide="seed 003, 'Weight decay in SGD and Adam: why AdamW matters'; seed 002, 'AdamW'",
        # wall s: quick in the 2026-12-07 04:15 tour (one torch thread); full estimated
        seconds=(71, 190),
        quick={**_BASE, "steps": 600, "seeds": 3, "tuning_seeds": 3},
        full={**_BASE, "steps": 1500, "seeds": 20, "seed_blocks": [10, 20], "tuning_seeds": 3},
        run=run,
        predictions=PREDICTIONS,
        limits={"momentum": (0.0, 0.999), "n_train": (100, 3900), "n_val": (100, 3900)},
    )
)
