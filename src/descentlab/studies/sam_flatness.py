"""SAM and flat minima: SGD vs SAM on MNIST-1D, with and without label noise, judged per seed.

Seeds 000/003 ("a sharp minimum to which SGD converged; a wide minimum with SAM"; the seed's table of Hessian
lambda_max with and without SAM; "SAM consistently improves classification tasks, particularly with label noises";
Foret et al. 2021). Both arms run the same recipe, SGD with momentum 0.9 and weight decay 5e-4 (the SAM paper's), SAM
on top of it. Each arm's learning rate is tuned on tuning seeds by validation accuracy (a held-out fifth of the
training set); SAM's lr at Foret et al.'s rho = 0.05, then rho over Foret et al.'s grid at that lr. On evaluation
seeds: test accuracy, training loss and the Hessian's largest eigenvalue (Lanczos) of each solution, for the tuned
rho and for rho = 0.05; and lambda_max at equal training loss (SGD's snapshot where its training loss first reaches
SAM's final one), since SAM stops at a higher loss. The figures show the loss on a line and a plane of
filter-normalized random directions around each solution (the same draws for every model, same axes).

All runs of a phase train together (``torch.func.vmap`` over stacked parameters; SGD's update is elementwise and
SAM's perturbation is normalized per model, so this is the arithmetic of one run per model; see the tests).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from descentlab import landscape, tasks
from descentlab.studies import Study, StudyContext, register
from descentlab.studies.claims import Anchor, Measurement, Prediction, eval_seeds, tune, tuning_seeds
from descentlab.tasks.base import BatchStream

FORET_RHO = 0.05
"""Foret et al.'s default rho, always reported beside the tuned one."""

_FLAT = (
    "seed 000, slides 'Sharpness-Aware Minimization' (Fig. 1 sharp minimum with SGD, Fig. 2 wide with SAM)"
)
_TABLE = "seed 003, slide 'Results on ViT (and MLP-Mixer)' (Hessian lambda_max with and without SAM)"
_GAIN = "seed 003, slide 'Results (i.e., SAM > ERM)'"


def _flat(name: str, labels: str, which: str, extra: str = "") -> Prediction:
    return Prediction(
        name,
        f"SGD converges to a sharp minimum, SAM to a wide one: SAM's Hessian lambda_max is lower ({labels}{extra}).",
        f"{_FLAT}; {_TABLE}",
        f"lambda_max(SGD) / lambda_max(SAM, {which}) at the final weights, {labels}, one ratio per seed",
        ">",
        1.0,
        "a ratio above 1: SAM's solution is flatter",
        scale="log",
        version=2,
    )


PREDICTIONS = (
    _flat("flatter_clean", "clean labels", "tuned rho"),
    _flat("flatter_noisy", "label noise", "tuned rho"),
    _flat("flatter_foret_clean", "clean labels", "rho = 0.05", ", at Foret et al.'s rho = 0.05"),
    _flat("flatter_foret_noisy", "label noise", "rho = 0.05", ", at Foret et al.'s rho = 0.05"),
    Prediction(
        "flatter_equal_loss_clean",
        "SAM's minimum is flatter than SGD's also where both have the same training loss (clean labels).",
        f"{_FLAT}; {_TABLE}",
        "lambda_max(SGD) / lambda_max(SAM, tuned rho), SGD taken where its training loss first reaches SAM's final "
        "one (or SAM where it reaches SGD's, whichever ends lower), one ratio per seed",
        ">",
        1.0,
        "a ratio above 1; tests whether the flatness is more than SAM stopping at a higher loss",
        scale="log",
        version=2,
    ),
    Prediction(
        "flatter_equal_loss_noisy",
        "SAM's minimum is flatter than SGD's also where both have the same training loss (label noise).",
        f"{_FLAT}; {_TABLE}",
        "as flatter_equal_loss_clean, with label noise",
        ">",
        1.0,
        "a ratio above 1",
        scale="log",
        version=2,
    ),
    Prediction(
        "accuracy_clean",
        "SAM consistently improves classification tasks (clean labels).",
        _GAIN,
        "test accuracy of SAM (tuned rho) - test accuracy of SGD, clean labels, per seed",
        ">",
        0.0,
        "any gain",
    ),
    Prediction(
        "accuracy_noisy",
        "SAM consistently improves classification tasks, particularly with label noise.",
        _GAIN,
        "test accuracy of SAM (tuned rho) - test accuracy of SGD, training labels with label noise, per seed",
        ">",
        0.0,
        "any gain",
    ),
)

_SAM_TABLE = (
    "seed 003_fa69b919c7b239b5.txt, slide 'Results on ViT (and MLP-Mixer)', table row 'Hessian lambda_max' "
    "(Chen, Hsieh & Gong 2022, 'When Vision Transformers Outperform ResNets without Pretraining or Strong Data "
    "Augmentations', Table)"
)
ANCHORS = (
    Anchor(
        "lambda_max ratio SGD / SAM, ResNet-152 (ImageNet)",
        179.8 / 42.0,
        f"{_SAM_TABLE}: 179.8 -> 42.0",
        setting="other",
    ),
    Anchor(
        "lambda_max ratio SGD / SAM, ViT-B/16 (ImageNet)",
        738.8 / 20.9,
        f"{_SAM_TABLE}: 738.8 -> 20.9",
        setting="other",
    ),
)


@dataclass(frozen=True)
class Job:
    """One training run of a batch: its training data, seed (init and batch order), learning rate and rho
    (0 = plain SGD)."""

    data: tuple[torch.Tensor, torch.Tensor]
    seed: int
    lr: float
    rho: float = 0.0


@dataclass
class Trained:
    """The models of :func:`train_batch`, with each one's full training loss after ``steps[i]`` steps and (when
    kept) the flat parameters there."""

    models: list[torch.nn.Module]
    steps: list[int] = field(default_factory=list)
    train_loss: list[list[float]] = field(default_factory=list)
    snapshots: list[list[torch.Tensor]] = field(default_factory=list)


def train_batch(
    task: Any,
    jobs: Sequence[Job],
    *,
    steps: int,
    batch_size: int,
    momentum: float,
    weight_decay: float,
    evals: int = 0,
) -> Trained:
    """Train every job at once: SGD (momentum, weight decay; torch's update) on the gradient at w + eps, with
    eps = rho g / ||g|| (g the mini-batch loss gradient at w, the norm over all of one model's parameters; eps = 0
    for rho = 0), as ``descentlab.optim`` SAM over SGD. Job ``i`` starts at ``task.make_model(seed)`` and draws its
    own batches (``BatchStream(data, batch_size, seed)``). With ``evals`` > 0 the full training loss and the
    parameters are kept at ``evals`` evenly spaced steps."""
    from torch.func import functional_call, stack_module_state, vmap

    if not jobs:
        raise ValueError("train_batch needs at least one job")
    models = [task.make_model(int(j.seed)) for j in jobs]
    if any(True for _ in models[0].buffers()):
        raise ValueError("batched training needs a model without buffers (no BatchNorm)")
    template = copy.deepcopy(models[0])
    stacked, _ = stack_module_state(models)
    P = {k: v.detach().clone() for k, v in stacked.items()}

    def col(values: Sequence[float], like: torch.Tensor) -> torch.Tensor:
        return torch.tensor(values, dtype=like.dtype).view(-1, *([1] * (like.dim() - 1)))

    lrs = {k: col([j.lr for j in jobs], v) for k, v in P.items()}
    sam = [i for i, j in enumerate(jobs) if j.rho > 0]
    rho = torch.tensor([jobs[i].rho for i in sam])
    streams = [BatchStream(j.data, batch_size, int(j.seed)) for j in jobs]

    def forward(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(template, p, (x,))

    def grads(params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        p = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        out = vmap(forward)(p, x)
        loss = task.outputs_loss(out.reshape(-1, out.shape[-1]), y.reshape(-1)) * x.shape[0]
        return dict(zip(p, torch.autograd.grad(loss, list(p.values()))))

    marks = {round(steps * (i + 1) / evals) for i in range(evals)} if evals else set()
    out = Trained(models, [], [[] for _ in jobs], [[] for _ in jobs])
    buf: dict[str, torch.Tensor] | None = None
    for k in range(steps):
        xs, ys = zip(*(next(s)[:2] for s in streams))
        x, y = torch.stack(xs), torch.stack(ys)
        g = grads(P, x, y)
        if sam:
            idx = torch.tensor(sam)
            sub = {n: v[idx] for n, v in g.items()}
            norm = torch.sqrt(sum(v.reshape(len(sam), -1).pow(2).sum(1) for v in sub.values()))
            scale = torch.where(norm > 0, rho / torch.where(norm > 0, norm, 1.0), 0.0)
            pert = {n: P[n][idx] + col(scale.tolist(), v) * sub[n] for n, v in sub.items()}
            g2 = grads(pert, x[idx], y[idx])
            for n in g:
                g[n] = g[n].clone()
                g[n][idx] = g2[n]
        d = {n: g[n] + weight_decay * P[n] for n in P} if weight_decay else g
        buf = {n: d[n].clone() for n in P} if buf is None else {n: momentum * buf[n] + d[n] for n in P}
        P = {n: P[n] - lrs[n] * buf[n] for n in P}
        if k + 1 in marks:
            out.steps.append(k + 1)
            with torch.no_grad():
                for i, j in enumerate(jobs):
                    p = {n: v[i] for n, v in P.items()}
                    out.train_loss[i].append(float(task.outputs_loss(forward(p, j.data[0]), j.data[1])))
                    out.snapshots[i].append(torch.cat([v[i].reshape(-1) for v in P.values()]).clone())
    for i, model in enumerate(models):
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(P[name][i])
    return out


def equal_loss_index(losses: Sequence[float], target: float) -> int:
    """The first index whose loss is at most ``target`` (a run passing through another run's final loss); the last
    index when none is (the run never gets that low)."""
    for i, v in enumerate(losses):
        if v <= target:
            return i
    return len(losses) - 1


def _load(model: torch.nn.Module, flat: torch.Tensor) -> torch.nn.Module:
    out = copy.deepcopy(model)
    torch.nn.utils.vector_to_parameters(flat, out.parameters())
    return out


def _label(rho: float) -> str:
    return "SGD" if rho == 0 else f"SAM ρ={rho:g}"


def run(ctx: StudyContext, cfg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Measurement]]:
    """Tune each arm on tuning seeds, train SGD and SAM on evaluation seeds, measure lambda_max, plot, judge."""
    noises = {"clean": 0.0, "noisy": float(cfg["noise"])}
    seeds, tseeds = eval_seeds(cfg), tuning_seeds(cfg)
    kw = {
        "steps": int(cfg["steps"]),
        "batch_size": int(cfg["batch_size"]),
        "momentum": float(cfg["momentum"]),
        "weight_decay": float(cfg["weight_decay"]),
    }
    lr_grid = [float(v) for v in cfg["lrs"]]
    rho_grid = [float(v) for v in cfg["rhos"]]
    tasks_of = {key: tasks.get("mnist1d_mlp", label_noise=nz) for key, nz in noises.items()}
    task0 = tasks_of["clean"]
    crit = task0.outputs_loss

    # Tuning data: the first (1 - val_fraction) of the training set to train, the rest to validate (same labels).
    def split(key: str) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        x, y = tasks_of[key].train_data[:2]
        cut = int(round(len(y) * (1 - float(cfg["val_fraction"]))))
        return (x[:cut], y[:cut]), (x[cut:], y[cut:])

    splits = {key: split(key) for key in noises}
    val_acc: dict[tuple[str, float, float, int], float] = {}

    def fit(keys: list[tuple[str, float, float, int]]) -> None:
        keys = [k for k in dict.fromkeys(keys) if k not in val_acc]
        if not keys:
            return
        jobs = [Job(splits[key][0], s, lr, rho) for key, lr, rho, s in keys]
        res = train_batch(task0, jobs, **kw)
        ctx.advance(len(jobs))
        for k, model in zip(keys, res.models):
            xv, yv = splits[k[0]][1]
            with torch.no_grad():
                val_acc[k] = float((model(xv).argmax(-1) == yv).float().mean())

    # Phase 1: SGD's lr and SAM's lr at rho = 0.05, per label-noise level; phase 2: SAM's rho at its lr.
    fit([(key, lr, r, s) for key in noises for lr in lr_grid for r in (0.0, FORET_RHO) for s in tseeds])
    tuned: dict[str, dict[str, Any]] = {}
    for key in noises:

        def by_lr(lr: float, s: int, rho: float, key: str = key) -> float:
            fit([(key, lr, rho, s)])
            return val_acc[(key, lr, rho, s)]

        sgd = tune(
            lambda lr, s: by_lr(lr, s, 0.0), lr_grid, tseeds, metric="validation accuracy", minimize=False
        )
        sam_lr = tune(
            lambda lr, s: by_lr(lr, s, FORET_RHO),
            lr_grid,
            tseeds,
            metric="validation accuracy",
            minimize=False,
        )
        tuned[key] = {"sgd_lr": sgd, "sam_lr": sam_lr}
    fit([(key, tuned[key]["sam_lr"].value, r, s) for key in noises for r in rho_grid for s in tseeds])
    for key in noises:
        lr = tuned[key]["sam_lr"].value

        def by_rho(rho: float, s: int, key: str = key, lr: float = lr) -> float:
            fit([(key, lr, rho, s)])
            return val_acc[(key, lr, rho, s)]

        tuned[key]["rho"] = tune(by_rho, rho_grid, tseeds, metric="validation accuracy", minimize=False)

    # Evaluation: SGD, SAM at the tuned rho and at rho = 0.05 on every evaluation seed, full training set.
    arms = {key: sorted({0.0, FORET_RHO, tuned[key]["rho"].value}) for key in noises}
    keys = [(key, r, s) for key in noises for r in arms[key] for s in seeds]
    jobs = [
        Job(
            tuple(tasks_of[key].train_data[:2]),
            s,
            tuned[key]["sgd_lr"].value if r == 0 else tuned[key]["sam_lr"].value,
            r,
        )
        for key, r, s in keys
    ]
    res = train_batch(task0, jobs, evals=int(cfg["evals"]), **kw)
    ctx.advance(len(jobs))
    n_lam = int(cfg["samples"])

    def lam(model: torch.nn.Module, key: str) -> float:
        data = tuple(t[:n_lam] for t in tasks_of[key].train_data[:2])
        return float(landscape.hessian_eigenvalues(model, crit, data, k=1).values[0])

    sol: dict[tuple[str, float, int], dict[str, Any]] = {}
    for (key, r, s), job, model, losses, snaps in zip(keys, jobs, res.models, res.train_loss, res.snapshots):
        xt, yt = tasks_of[key].val_data[:2]
        with torch.no_grad():
            acc = float((model(xt).argmax(-1) == yt).float().mean())
        sol[(key, r, s)] = {
            "model": model,
            "lr": job.lr,
            "test_accuracy": acc,
            "train_loss": losses[-1],
            "lambda_max": lam(model, key),
            "losses": losses,
            "snapshots": snaps,
        }

    numbers: dict[str, Any] = {"tuning": {}, "solutions": {}, "equal_loss": {}}
    per: dict[str, list[float]] = {p.name: [] for p in PREDICTIONS}
    for key in noises:
        rho_t = tuned[key]["rho"].value
        numbers["tuning"][key] = {
            "sgd_lr": tuned[key]["sgd_lr"].to_dict(),
            "sam_lr_at_rho_0.05": tuned[key]["sam_lr"].to_dict(),
            "rho": tuned[key]["rho"].to_dict(),
        }
        for r in arms[key]:
            rows = [sol[(key, r, s)] for s in seeds]
            numbers["solutions"][f"{key}/{_label(r)}"] = {
                "lr": rows[0]["lr"],
                **{m: [row[m] for row in rows] for m in ("test_accuracy", "train_loss", "lambda_max")},
            }
        matched = []
        for s in seeds:
            b, a = sol[(key, 0.0, s)], sol[(key, rho_t, s)]
            per[f"flatter_{key}"].append(b["lambda_max"] / a["lambda_max"])
            f = sol[(key, FORET_RHO, s)]
            per[f"flatter_foret_{key}"].append(b["lambda_max"] / f["lambda_max"])
            per[f"accuracy_{key}"].append(a["test_accuracy"] - b["test_accuracy"])
            # equal training loss: the arm that ends lower is taken where it first reaches the other's final loss
            low, high = (b, a) if b["train_loss"] <= a["train_loss"] else (a, b)
            i = equal_loss_index(low["losses"], high["train_loss"])
            lam_low = lam(_load(low["model"], low["snapshots"][i]), key)
            lam_b, lam_a = (lam_low, a["lambda_max"]) if low is b else (b["lambda_max"], lam_low)
            per[f"flatter_equal_loss_{key}"].append(lam_b / lam_a)
            matched.append(
                {
                    "seed": s,
                    "matched_arm": "SGD" if low is b else _label(rho_t),
                    "matched_step": res.steps[i],
                    "matched_loss": low["losses"][i],
                    "target_loss": high["train_loss"],
                    "lambda_max_sgd": lam_b,
                    "lambda_max_sam": lam_a,
                }
            )
        numbers["equal_loss"][key] = matched
    numbers["lambda_ratio"] = {k: v for k, v in per.items() if k.startswith("flatter")}

    ctx.check(
        "positive curvature at the solutions",
        "every solution's Hessian lambda_max is positive (a minimum, not a saddle's top)",
        all(v["lambda_max"] > 0 for v in sol.values()),
        f"smallest lambda_max {min(v['lambda_max'] for v in sol.values()):.3g}",
    )
    gaps = [
        abs(m["matched_loss"] - m["target_loss"]) / m["target_loss"]
        for k in noises
        for m in numbers["equal_loss"][k]
    ]
    ctx.check(
        "equal-loss match",
        "the matched snapshot's training loss is within 25 % of the other arm's final loss",
        all(g <= 0.25 for g in gaps),
        "relative gaps " + ", ".join(f"{g:.2f}" for g in gaps) + f" (snapshots every {res.steps[0]} steps)",
    )
    for anchor in ANCHORS:
        ctx.anchor(
            anchor,
            per["flatter_clean"],
            "ours: an MNIST-1D MLP (40-100-100-10) with SGD vs SAM at the tuned rho, clean labels, lambda_max on "
            f"{n_lam} training samples; a different model and data set: compare the size of the drop only",
        )

    _figures(ctx, cfg, tasks_of, sol, arms, seeds[0], crit, n_lam)

    def fmt(xs: list[float]) -> str:
        return ", ".join(f"{x:.3g}" for x in xs)

    measured: dict[str, Measurement] = {}
    for key in noises:
        rho_t = tuned[key]["rho"]
        notes = {
            "sgd": tuned[key]["sgd_lr"].note("SGD lr"),
            "sam": tuned[key]["sam_lr"].note("SAM lr (at rho 0.05)"),
            "rho": rho_t.note("rho"),
        }
        lr_reason = "; ".join(
            t.note(n)
            for n, t in (("SGD lr", tuned[key]["sgd_lr"]), ("SAM lr", tuned[key]["sam_lr"]))
            if not t.bracketed
        )
        rho_reason = "; ".join(x for x in (lr_reason, "" if rho_t.bracketed else rho_t.note("rho")) if x)
        lam_s = [sol[(key, 0.0, s)]["lambda_max"] for s in seeds]
        lam_a = [sol[(key, rho_t.value, s)]["lambda_max"] for s in seeds]
        lam_f = [sol[(key, FORET_RHO, s)]["lambda_max"] for s in seeds]
        measured[f"flatter_{key}"] = Measurement(
            per[f"flatter_{key}"],
            f"lambda_max SGD {fmt(lam_s)} vs SAM ρ={rho_t.value:g} {fmt(lam_a)}; {notes['sgd']}; {notes['sam']}; "
            f"{notes['rho']}",
            inconclusive=rho_reason or None,
        )
        measured[f"flatter_foret_{key}"] = Measurement(
            per[f"flatter_foret_{key}"],
            f"lambda_max SGD {fmt(lam_s)} vs SAM ρ=0.05 {fmt(lam_f)}; {notes['sgd']}; {notes['sam']}",
            inconclusive=lr_reason or None,
        )
        eq = numbers["equal_loss"][key]
        measured[f"flatter_equal_loss_{key}"] = Measurement(
            per[f"flatter_equal_loss_{key}"],
            "; ".join(
                f"seed {m['seed']}: {m['matched_arm']} at step {m['matched_step']} (loss {m['matched_loss']:.3g} vs "
                f"{m['target_loss']:.3g}): lambda_max SGD {m['lambda_max_sgd']:.3g}, SAM {m['lambda_max_sam']:.3g}"
                for m in eq
            ),
            inconclusive=rho_reason or None,
        )
        acc_s = [sol[(key, 0.0, s)]["test_accuracy"] for s in seeds]
        acc_a = [sol[(key, rho_t.value, s)]["test_accuracy"] for s in seeds]
        measured[f"accuracy_{key}"] = Measurement(
            per[f"accuracy_{key}"],
            f"test accuracy SGD {fmt(acc_s)} vs SAM ρ={rho_t.value:g} {fmt(acc_a)}; training loss SGD "
            f"{fmt([sol[(key, 0.0, s)]['train_loss'] for s in seeds])} vs SAM "
            f"{fmt([sol[(key, rho_t.value, s)]['train_loss'] for s in seeds])}",
            inconclusive=rho_reason or None,
        )
    return numbers, measured


def _figures(
    ctx: StudyContext,
    cfg: dict[str, Any],
    tasks_of: dict[str, Any],
    sol: dict[tuple[str, float, int], dict[str, Any]],
    arms: dict[str, list[float]],
    seed: int,
    crit: Any,
    n_lam: int,
) -> None:
    """The seed's figures: lines around each solution and the lambda_max bars; planes around SGD's and SAM's."""
    import matplotlib.pyplot as plt

    span, points, grid = float(cfg["span"]), int(cfg["points"]), int(cfg["grid"])
    keys = list(tasks_of)
    fig, axes = plt.subplots(1, len(keys) + 1, figsize=(5.8 * (len(keys) + 1), 4.6))
    planes = {}
    for ax, key in zip(axes, keys):
        data = tuple(t[:n_lam] for t in tasks_of[key].train_data[:2])
        for i, r in enumerate(arms[key]):
            m = sol[(key, r, seed)]
            res = landscape.line(m["model"], crit, data, span=(-span, span), points=points, seed=0)
            ax.plot(
                res.alphas,
                res.loss,
                color="C3" if r == 0 else f"C{i}",
                lw=2.2 if r == 0 else 1.4,
                label=f"{_label(r)}: λmax {m['lambda_max']:.2f}, test acc {m['test_accuracy']:.3f}",
            )
            planes[(key, r)] = landscape.plane(
                m["model"], crit, data, span=((-span, span), (-span, span)), points=(grid, grid), seed=0
            )
        ax.set_yscale("log")
        ax.set_xlabel("α along a filter-normalized random direction (same draw for all)")
        ax.set_ylabel("training loss")
        noise = tasks_of[key].config["label_noise"]
        ax.set_title(
            f"1-D landscape around each solution (seed {seed}), {noise:.0%} label noise", fontsize=10
        )
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    ax = axes[-1]
    labels = sorted({_label(r) for key in keys for r in arms[key]}, key=lambda s: (s != "SGD", s))
    width = 0.8 / len(keys)
    for i, key in enumerate(keys):
        xs, means, lo, hi = [], [], [], []
        for j, lab in enumerate(labels):
            r = next((r for r in arms[key] if _label(r) == lab), None)
            if r is None:
                continue
            vals = [v["lambda_max"] for (k, rr, _), v in sol.items() if k == key and rr == r]
            xs.append(j + i * width)
            means.append(float(np.mean(vals)))
            lo.append(means[-1] - min(vals))
            hi.append(max(vals) - means[-1])
        noise = tasks_of[key].config["label_noise"]
        ax.bar(xs, means, width, yerr=[lo, hi], capsize=2, label=f"{noise:.0%} label noise")
    ax.set_xticks([j + width * (len(keys) - 1) / 2 for j in range(len(labels))], labels, rotation=20)
    ax.set_ylabel("Hessian λmax at the solution")
    ax.set_title("the seed's λmax table: SGD vs SAM (mean, min–max over seeds)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    ctx.save_figure(fig, "sam_flatness")

    ncol = max(len(arms[k]) for k in keys)
    fig, axes = plt.subplots(len(keys), ncol, figsize=(5 * ncol, 4.5 * len(keys)), squeeze=False)
    fig.subplots_adjust(wspace=0.32, hspace=0.35)
    for row, key in enumerate(keys):
        logs = {r: np.log10(planes[(key, r)].loss) for r in arms[key]}
        levels = np.linspace(min(v.min() for v in logs.values()), max(v.max() for v in logs.values()), 25)
        cs = None
        for ax, r in zip(axes[row], arms[key]):
            pl = planes[(key, r)]
            A, B = np.meshgrid(pl.alphas, pl.betas, indexing="ij")
            cs = ax.contourf(A, B, logs[r], levels=levels)
            ax.contour(A, B, logs[r], levels=levels[::3], colors="k", linewidths=0.3)
            ax.plot([0], [0], "r*", ms=9)
            noise = tasks_of[key].config["label_noise"]
            ax.set_title(
                f"{_label(r)}, {noise:.0%} noise: λmax {sol[(key, r, seed)]['lambda_max']:.2f}", fontsize=10
            )
            ax.set_xlabel("α (d₁)")
            ax.set_ylabel("β (d₂)")
        for ax in axes[row][len(arms[key]) :]:
            ax.axis("off")
        fig.colorbar(cs, ax=axes[row].tolist(), label="log₁₀ training loss (same levels)", format="%.1f")
    ctx.save_figure(fig, "sam_flatness_planes")


register(
    Study(
        name="sam-flatness",
        description="SGD vs SAM (tuned ρ and Foret's ρ = 0.05) on MNIST-1D, clean and 20 % label noise: λmax, accuracy.",
        slide="seeds 000/003: 'a sharp minimum to which SGD converged; a wide minimum with SAM', λmax table",
        seconds=(90, 450),  # estimated idle 2-core wall s (quick: old 53 s idle = 1000 s loaded, new 1701 s)
        predictions=PREDICTIONS,
        versions=(
            (1, "2026-12-01", "the predictions as first declared"),
            (
                2,
                "2026-12-07",
                "issue 26: the six lambda_max ratios (flatter_*) judged on the log scale (scale='log'); threshold 1 "
                "and direction unchanged",
            ),
        ),
        quick={
            "noise": 0.2,
            "lrs": [0.01, 0.02, 0.05, 0.1, 0.2, 0.5],
            "rhos": [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0],
            "momentum": 0.9,
            "weight_decay": 5e-4,
            "steps": 1500,
            "batch_size": 100,
            "val_fraction": 0.2,
            "samples": 1000,
            "evals": 30,
            "span": 1.0,
            "points": 41,
            "grid": 15,
            "seeds": 3,
            "tuning_seeds": 1,
        },
        full={
            "noise": 0.2,
            "lrs": [0.01, 0.02, 0.05, 0.1, 0.2, 0.5],
            "rhos": [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0],
            "momentum": 0.9,
            "weight_decay": 5e-4,
            "steps": 2000,
            "batch_size": 100,
            "val_fraction": 0.2,
            "samples": 2000,
            "evals": 40,
            "span": 1.0,
            "points": 61,
            "grid": 25,
            "seeds": 5,
            "tuning_seeds": 2,
        },
        limits={"noise": (0.0, 0.9), "val_fraction": (0.05, 0.5), "momentum": (0.0, 0.999)},
        run=run,
    )
)
