"""Heavy-tailed classes and rare features: where per-coordinate steps (Adam, AdaGrad) beat plain SGD.

Seed 002 (Kunstner et al. 2024, "Heavy-Tailed Class Imbalance and Why Adam Outperforms Gradient Descent on Language
Models"): with Zipf-distributed class frequencies, gradient descent reduces the loss of the frequent classes and
stalls on the rare ones, which hold a large share of the data in total; Adam makes progress on all of them. Seed 002's
AdaGrad notes: coordinates that are rarely active get few, small gradient steps from SGD, while AdaGrad's step
alpha / sqrt(sum of squared gradients) stays large for them. Three parts: the Zipf-imbalanced ``imbalance`` task
(loss per class-frequency group), the character GPT ``charlm`` (loss per character-frequency group: the heavy tail
of a real text) and a sparse linear problem with Zipf-rare features (SGD vs AdaGrad). Each optimizer runs at its
best learning rate (lowest final training loss over a small grid).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from descentlab import tasks
from descentlab.studies import Claim, Study, StudyContext, register
from descentlab.tasks.base import Task, seeded_generator
from descentlab.tasks.charlm import CharLMTask, windows
from descentlab.tasks.imbalance import GroupLossMixin, frequency_groups, mean_by_group


@dataclasses.dataclass
class CharGroupsTask(GroupLossMixin, CharLMTask):
    """``charlm`` whose evaluation adds ``train_loss_g{j}``: the next-character loss on fixed training windows
    averaged over the targets whose character is in frequency group ``j`` (group 0 = most frequent characters,
    each group ~1/groups of the text; Kunstner et al. 2024, Fig. 1, with characters for tokens)."""

    char_group: torch.Tensor = dataclasses.field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    group_windows: int = 256

    @torch.no_grad()
    def loss_by_group(self, model: nn.Module) -> dict[int, float]:
        """Mean cross-entropy per character-frequency group of the target, on ``group_windows`` evenly spaced
        training windows."""
        tokens = self.train_data[0]
        starts = torch.linspace(0, len(tokens) - self.context - 1, self.group_windows).long()
        x, y = windows(tokens, starts, self.context)
        logits = model(x.to(next(model.parameters()).device)).cpu()
        per = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none")
        g = self.char_group[y.reshape(-1)]
        return mean_by_group(per, g)



def char_groups_task(groups: int = 10, group_windows: int = 256, **charlm_kw: Any) -> CharGroupsTask:
    """The ``charlm`` task (``charlm_kw``) with its characters cut into ``groups`` frequency groups of ~equal
    share of the training text (:func:`descentlab.tasks.imbalance.frequency_groups` on the character counts)."""
    base = tasks.get("charlm", **charlm_kw)
    if not isinstance(base, CharLMTask):
        raise TypeError(f"expected the charlm task to be a CharLMTask, got {type(base).__name__}")
    if group_windows < 1:
        raise ValueError(f"group_windows must be >= 1, got {group_windows!r}")
    vocab = int(base.make_model(0)(base.train_data[0][:2].unsqueeze(0)).shape[-1])
    counts = torch.bincount(base.train_data[0], minlength=vocab)
    fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
    fields["name"] = "charlm-groups"
    return CharGroupsTask(**fields, char_group=frequency_groups(counts, groups), group_windows=group_windows)


def sparse_features_task(
    n: int = 2000, d: int = 100, p_max: float = 0.5, noise: float = 0.01, seed: int = 0
) -> Task:
    """Linear regression whose feature j is active with probability p_max / (j+1) (Zipf-rare features).

    ``y = <w*, x> + noise``, ``w* ~ N(0, I)``; the model is a bias-free ``Linear(d, 1)`` started at zero. The task
    carries ``w_star`` and ``frequency`` (the empirical activation rate of every feature) in ``config``.
    """
    if n < 2 or d < 2 or not 0 < p_max <= 1:
        raise ValueError(f"need n >= 2, d >= 2 and 0 < p_max <= 1; got n={n}, d={d}, p_max={p_max}")
    g = seeded_generator(seed)
    p = p_max / torch.arange(1, d + 1, dtype=torch.float32)
    active = torch.rand(n, d, generator=g) < p
    x = torch.randn(n, d, generator=g) * active
    w_star = torch.randn(d, generator=g)
    y = x @ w_star + noise * torch.randn(n, generator=g)

    def model(seed: int) -> nn.Module:
        m = nn.Linear(d, 1, bias=False)
        nn.init.zeros_(m.weight)
        return m

    return Task(
        name="sparse-features",
        train_data=(x, y),
        val_data=(x, y),
        model_factory=model,
        description="linear regression with Zipf-rare features",
        kind="regression",
        default_batch_size=32,
        config={
            "n": n,
            "d": d,
            "p_max": p_max,
            "noise": noise,
            "seed": seed,
            "w_star": w_star.tolist(),
            "frequency": active.float().mean(0).tolist(),
        },
    )


def _best(runs: dict[float, Any]) -> float:
    """The learning rate whose run ended with the lowest training loss (diverged runs never win)."""

    def score(lr: float) -> float:
        r = runs[lr]
        v = r.final.get("train_loss", math.inf)
        return v if r.status == "finished" and math.isfinite(v) else math.inf

    return min(runs, key=score)


def _plot_groups(
    axes: Any,
    runs: dict[str, Any],
    groups: list[int],
    level: float,
    level_label: str,
    what: str,
    numbers: dict[str, Any],
    prefix: str,
) -> None:
    """One panel per optimizer: the training loss of every frequency group against steps."""
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("viridis")
    first, last = groups[0], groups[-1]
    for ax, opt in zip(axes, ("sgd", "adam")):
        for j in groups:
            series = runs[opt].metrics(f"train_loss_g{j}")
            tag = " (most frequent)" if j == first else " (rarest)" if j == last else ""
            ax.plot(
                [s for s, _ in series],
                [v for _, v in series],
                color=cmap(j / max(1, last)),
                label=f"group {j}{tag}",
            )
        name = "SGD" if opt == "sgd" else "Adam"
        task = "charlm" if prefix else "imbalance"
        ax.set_title(
            f"{task}, {name} (best lr {numbers[f'{prefix}{opt}_best_lr']:g}): loss per {what}-frequency group"
        )
        ax.set_xlabel("step")
        ax.set_ylabel("training loss of the group")
        ax.axhline(level, color="gray", ls=":", lw=1, label=level_label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    ymax = max(
        max(v for _, v in runs[o].metrics(f"train_loss_g{j}")) for o in ("sgd", "adam") for j in groups
    )
    for ax in axes:
        ax.set_ylim(0, ymax * 1.05)


def run(ctx: StudyContext, cfg: dict[str, Any]) -> tuple[dict[str, Any], list[Claim]]:
    """Part 1: SGD vs Adam per frequency group on `imbalance`; part 2: SGD vs AdaGrad on rare features."""
    import matplotlib.pyplot as plt

    numbers: dict[str, Any] = {}
    # Part 1: heavy-tailed classes.
    task_kw = {
        "num_classes": int(cfg["classes"]),
        "num_samples": int(cfg["samples"]),
        "dim": int(cfg["dim"]),
        "noise": float(cfg["noise"]),
    }
    task = tasks.get("imbalance", **task_kw)
    groups = sorted(int(j) for j in torch.unique(task.class_group))
    rare, frequent = groups[-1], groups[0]
    common = {
        "task_kw": task_kw,
        "steps": int(cfg["steps"]),
        "batch_size": int(cfg["batch_size"]),
        "eval_every": int(cfg["eval_every"]),
        "device": "cpu",
    }
    grids = {"sgd": [float(v) for v in cfg["sgd_lrs"]], "adam": [float(v) for v in cfg["adam_lrs"]]}
    best_runs = {}
    for opt, lrs in grids.items():
        runs = {lr: ctx.train("imbalance", optimizer=opt, lr=lr, seed=0, **common) for lr in lrs}
        lr = _best(runs)
        best_runs[opt] = runs[lr]
        numbers[f"{opt}_best_lr"] = lr
        numbers[f"{opt}_grid_train_loss"] = {str(k): r.final.get("train_loss") for k, r in runs.items()}
    chance = math.log(int(cfg["classes"]))
    for opt, r in best_runs.items():
        numbers[f"{opt}_group_loss"] = {str(j): r.final[f"train_loss_g{j}"] for j in groups}
    # the gap between the rarest and the most frequent group at the end (Kunstner et al.: GD's curves fan out by
    # class frequency, Adam's stay together)
    gap = {
        opt: numbers[f"{opt}_group_loss"][str(rare)] - numbers[f"{opt}_group_loss"][str(frequent)]
        for opt in best_runs
    }
    numbers["rare_minus_frequent_gap"] = gap
    start = best_runs["sgd"].metrics(f"train_loss_g{rare}")[0][1]
    numbers["rarest_group_drop"] = {
        opt: r.metrics(f"train_loss_g{rare}")[0][1] - r.final[f"train_loss_g{rare}"]
        for opt, r in best_runs.items()
    }

    # Part 1b: the heavy tail of a real text, characters of the charlm corpus in frequency groups.
    char_task = char_groups_task(
        depth=int(cfg["charlm_depth"]), width=int(cfg["charlm_width"]), context=int(cfg["charlm_context"])
    )
    char_common = {
        "steps": int(cfg["charlm_steps"]),
        "batch_size": 32,
        "eval_every": max(1, int(cfg["charlm_steps"]) // 10),
        "device": "cpu",
    }
    char_best = {}
    for opt in ("sgd", "adam"):
        lrs = [float(v) for v in cfg[f"charlm_{opt}_lrs"]]
        runs = {lr: ctx.train(char_task, optimizer=opt, lr=lr, seed=0, **char_common) for lr in lrs}
        lr = _best(runs)
        char_best[opt] = runs[lr]
        numbers[f"charlm_{opt}_best_lr"] = lr
    char_groups = sorted(int(j) for j in torch.unique(char_task.char_group))
    c_rare, c_freq = char_groups[-1], char_groups[0]
    c_start, c_end = {}, {}
    for opt, r in char_best.items():
        c_start[opt] = {j: r.metrics(f"train_loss_g{j}")[0][1] for j in char_groups}
        c_end[opt] = {j: r.final[f"train_loss_g{j}"] for j in char_groups}
        numbers[f"charlm_{opt}_group_loss"] = {str(j): c_end[opt][j] for j in char_groups}
        numbers[f"charlm_{opt}_train_loss"] = r.final["train_loss"]
    c_drop = {opt: c_start[opt][c_rare] - c_end[opt][c_rare] for opt in char_best}
    numbers["charlm_rarest_group_drop"] = c_drop

    # Part 2: rare features.
    sparse = sparse_features_task(n=int(cfg["sparse_n"]), d=int(cfg["sparse_d"]), seed=0)
    w_star = torch.tensor(sparse.config["w_star"])
    freq = np.array(sparse.config["frequency"])
    rare_idx = torch.from_numpy(np.argsort(freq)[: len(freq) // 2].copy())
    freq_idx = torch.from_numpy(np.argsort(freq)[len(freq) // 2 :].copy())
    sparse_common = {
        "steps": int(cfg["sparse_steps"]),
        "batch_size": 32,
        "eval_every": int(cfg["sparse_steps"]) // 20,
        "device": "cpu",
    }
    sparse_best = {}
    for opt, lrs in (("sgd", cfg["sparse_sgd_lrs"]), ("adagrad", cfg["sparse_adagrad_lrs"])):
        runs = {
            float(lr): ctx.train(sparse, optimizer=opt, lr=float(lr), seed=0, **sparse_common) for lr in lrs
        }
        lr = _best(runs)
        sparse_best[opt] = runs[lr]
        w = runs[lr].model.weight.detach().reshape(-1)
        numbers[f"sparse_{opt}_best_lr"] = lr
        numbers[f"sparse_{opt}_rare_error"] = float(((w - w_star)[rare_idx] ** 2).sum())
        numbers[f"sparse_{opt}_frequent_error"] = float(((w - w_star)[freq_idx] ** 2).sum())
        numbers[f"sparse_{opt}_train_loss"] = runs[lr].final["train_loss"]

    # Figure: loss per frequency group (Kunstner et al. Fig. 1) on both tasks, and the sparse problem.
    fig, axes = plt.subplots(2, 3, figsize=(17, 9.2))
    rows = (
        (best_runs, groups, chance, "class", "log C (uniform prediction)", ""),
        (
            char_best,
            char_groups,
            math.log(char_task.char_group.numel()),
            "character",
            "log V (uniform)",
            "charlm_",
        ),
    )
    for (runs_, grps, level, what, level_label, pre), row in zip(rows, axes):
        _plot_groups(row[:2], runs_, grps, level, level_label, what, numbers, pre)
    ax = axes[1][2]
    width = 0.4
    xs = np.arange(len(char_groups))
    for k, (opt, color) in enumerate((("sgd", "C3"), ("adam", "C0"))):
        drops = [c_start[opt][j] - c_end[opt][j] for j in char_groups]
        ax.bar(xs + (k - 0.5) * width, drops, width, color=color, label="SGD" if opt == "sgd" else "Adam")
    ax.set_xticks(xs, [str(j) for j in char_groups])
    ax.set_xlabel("character-frequency group (0 = most frequent)")
    ax.set_ylabel("loss decrease, step 0 → end")
    ax.set_title(f"charlm: how much each group's loss fell in {cfg['charlm_steps']} steps")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    ax = axes[0][2]
    for opt, color in (("sgd", "C3"), ("adagrad", "C0")):
        w = sparse_best[opt].model.weight.detach().reshape(-1)
        err = ((w - w_star) ** 2).numpy()
        ax.loglog(
            freq + 1e-4,
            err + 1e-12,
            "o",
            ms=4,
            color=color,
            alpha=0.7,
            label=f"{'SGD' if opt == 'sgd' else 'AdaGrad'} (lr {numbers[f'sparse_{opt}_best_lr']:g})",
        )
    ax.set_xlabel("feature activation frequency")
    ax.set_ylabel("(w_j − w*_j)² after training")
    ax.set_title(f"rare features: {cfg['sparse_steps']} steps, batch 32")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    ctx.save_figure(fig, "heavy_tail")

    g_sgd, g_adam = numbers["sgd_group_loss"], numbers["adam_group_loss"]
    c_ratio = c_drop["adam"] / max(c_drop["sgd"], 1e-3)
    numbers["charlm_rarest_drop_ratio_adam_over_sgd"] = c_ratio
    numbers["imbalance_rarest_drop_ratio_adam_over_sgd"] = numbers["rarest_group_drop"]["adam"] / max(
        numbers["rarest_group_drop"]["sgd"], 1e-3
    )
    rare_ratio = numbers["sparse_sgd_rare_error"] / max(numbers["sparse_adagrad_rare_error"], 1e-12)
    # Adam's lead over SGD (SGD's loss minus Adam's) on the rarest and on the most frequent group: Kunstner et al.'s
    # picture is a lead concentrated in the tail (both optimizers do about as well on the frequent classes).
    lead = {
        "rare": g_sgd[str(rare)] - g_adam[str(rare)],
        "frequent": g_sgd[str(frequent)] - g_adam[str(frequent)],
    }
    c_lead = {
        "rare": c_end["sgd"][c_rare] - c_end["adam"][c_rare],
        "frequent": c_end["sgd"][c_freq] - c_end["adam"][c_freq],
    }
    numbers["adam_lead"], numbers["charlm_adam_lead"] = lead, c_lead
    margin = float(cfg["min_lead"])
    i_ratio = numbers["imbalance_rarest_drop_ratio_adam_over_sgd"]
    claims = [
        Claim(
            "On heavy-tailed classes SGD stalls on the rare classes while Adam makes progress on all: at equal steps "
            "Adam is ahead on the rarest group, not on the most frequent.",
            lead["rare"] >= margin and lead["rare"] >= lead["frequent"] + margin,
            f"Adam's lead (SGD's loss − Adam's): rarest group {lead['rare']:.2f}, most frequent {lead['frequent']:.2f} "
            f"(margin {margin:g}); rarest group: SGD {g_sgd[str(rare)]:.2f}, Adam {g_adam[str(rare)]:.2f} from "
            f"{start:.2f} at step 0 (Adam's decrease {i_ratio:.2f}x SGD's); rarest − most frequent: SGD "
            f"{gap['sgd']:.2f}, Adam {gap['adam']:.2f}",
        ),
        Claim(
            "SGD does make progress on the frequent classes (its problem is the tail, not the head).",
            g_sgd[str(frequent)] < 0.5 * chance and g_sgd[str(frequent)] <= 1.2 * g_adam[str(frequent)],
            f"most frequent group's loss: SGD {g_sgd[str(frequent)]:.3f}, Adam {g_adam[str(frequent)]:.3f} "
            f"(log C = {chance:.2f})",
        ),
        Claim(
            "On a language model's heavy-tailed tokens (characters of charlm), Adam's loss on the rarest group falls "
            "further than SGD's, while both do about as well on the most frequent group.",
            c_lead["rare"] >= margin and c_lead["rare"] >= c_lead["frequent"] + margin,
            f"rarest character group's loss: SGD {c_start['sgd'][c_rare]:.2f} → {c_end['sgd'][c_rare]:.2f}, Adam "
            f"{c_start['adam'][c_rare]:.2f} → {c_end['adam'][c_rare]:.2f} (Adam's decrease is {c_ratio:.1f}x SGD's); "
            f"most frequent group: SGD {c_end['sgd'][c_freq]:.2f}, Adam {c_end['adam'][c_freq]:.2f}",
        ),
        Claim(
            "AdaGrad's per-coordinate steps beat SGD on rarely active features.",
            rare_ratio >= 2.0,
            f"squared error on the rarer half of the features: SGD {numbers['sparse_sgd_rare_error']:.3g}, "
            f"AdaGrad {numbers['sparse_adagrad_rare_error']:.3g} (ratio {rare_ratio:.1f}); frequent half: SGD "
            f"{numbers['sparse_sgd_frequent_error']:.3g}, AdaGrad {numbers['sparse_adagrad_frequent_error']:.3g}",
        ),
    ]
    return numbers, claims


_COMMON = {
    "classes": 1024,
    "samples": 16384,
    "dim": 32,
    "noise": 3.0,
    "batch_size": 512,
    "eval_every": 25,
    "sgd_lrs": [0.3, 1.0, 3.0, 10.0],
    "adam_lrs": [3e-3, 1e-2, 3e-2, 1e-1],
    "min_lead": 0.25,
    "sparse_n": 4000,
    "sparse_d": 300,
    "sparse_sgd_lrs": [0.3, 1.0, 2.0, 3.0],
    "sparse_adagrad_lrs": [0.3, 1.0, 3.0],
    "charlm_depth": 1,
    "charlm_width": 64,
    "charlm_context": 32,
}

register(
    Study(
        name="heavy-tail",
        description="SGD vs Adam per class-frequency group on Zipf classes; SGD vs AdaGrad on rare features.",
        slide="seed 002: Kunstner et al. 2024, 'Heavy-Tailed Class Imbalance and Why Adam Outperforms Gradient "
        "Descent on Language Models'; AdaGrad on rare features",
        seconds=(51, 214),  # measured quick/full wall s on the 2-core CPU (tour scheduling)
        quick={
            **_COMMON,
            "steps": 300,
            "sparse_steps": 600,
            "charlm_steps": 400,
            "charlm_sgd_lrs": [1.0],
            "charlm_adam_lrs": [1e-2],
            "seeds": 1,
        },
        full={
            **_COMMON,
            "steps": 1000,
            "sparse_steps": 2000,
            "charlm_steps": 1500,
            "charlm_sgd_lrs": [0.3, 1.0, 2.0],
            "charlm_adam_lrs": [3e-3, 1e-2, 3e-2],
            "seeds": 1,
        },
        run=run,
    )
)
