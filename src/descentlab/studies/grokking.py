"""Grokking: validation accuracy jumps to ~100 % long after the training set is memorised.

Seeds 000/002/004, "Grokking" (Power et al. 2022, "Grokking: generalization beyond overfitting on small algorithmic
datasets") and seed 002's "Modular Division (training on 50% of data)": a 2-layer causal transformer (width 128,
4 heads, ~4e5 non-embedding parameters; the ``modular`` task) learns a / b mod 97 from half of the table with AdamW
(lr 1e-3, weight decay 1, betas (0.9, 0.98), batch 512). Training accuracy reaches 100 % early; validation accuracy
stays at chance for much longer and then rises to ~100 %. The seed's explanation: after zero training error the
weights keep moving ("a random walk") and drift to a wider minimum; we log the weight norm (and, optionally, the top
Hessian eigenvalue) along training. Without weight decay the jump does not come within the same budget.

Options: ``weight_decays`` (e.g. 0, 0.1, 1), ``train_fraction``, ``op``, ``p``, and the Grokfast-EMA gradient
filter (Lee et al. 2024, "Grokfast: accelerated grokking by amplifying slow gradients"): before every step,
e <- alpha e + (1 - alpha) g, g <- g + lambda e (alpha 0.98, lambda 2), i.e. the slow (low-frequency) part of
the gradient is amplified. :class:`GrokfastEMA` wraps any optimizer with it; the study's Grokfast run uses the
paper's recipe for algorithmic data (Adam with a coupled L2 of ``grokfast_l2`` = 5e-3) and is compared with the
paper's baseline, the run without weight decay. (Combined with AdamW's decoupled weight decay 1 instead, the filter
delayed grokking here: 2350 / 2100 / never vs 2150 / 1750 / 1700 steps over 3 seeds; docs/studies/grokking.md.)

The full variant is the seed's setting (division, p = 97, 50 %). The quick variant trains the same model on
*addition* mod 97 from 50 % of the pairs with weight decay 1, 1500 steps (addition groks in ~1300 steps instead of
~2000; the delay after memorisation is still > 3x); ``--quick --set weight_decays=[1,0]`` adds the no-weight-decay
run and its claim (twice the time: ~220 s on 2 cores), the full variant also the Grokfast run and 3 seeds.
Speed: the data are tensors, whole batches are indexed from them, AdamW uses the fused kernel and the thread count is
``threads`` (see benchmarks/grokking_speed.py for the measurements).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from descentlab.studies import Claim, Study, StudyContext, register


class GrokfastEMA(torch.optim.Optimizer):
    """Grokfast-EMA gradient filter around ``base_optimizer`` (Lee et al. 2024, Algorithm 2).

    Each ``step``: ``e <- alpha * e + (1 - alpha) * g`` (``e`` starts at the first gradient), then
    ``g <- g + lamb * e``, then the base optimizer's step. Param groups are shared with the base (exposed as
    ``.base_optimizer``); the filter state is keyed by parameter index in ``state_dict()``.
    """

    def __init__(self, base_optimizer: torch.optim.Optimizer, alpha: float = 0.98, lamb: float = 2.0):
        if not isinstance(base_optimizer, torch.optim.Optimizer):
            raise TypeError(f"base_optimizer must be a torch.optim.Optimizer, got {base_optimizer!r}")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha < 1.0:
            raise ValueError(f"alpha must be in [0, 1), got {alpha!r}")
        if (
            isinstance(lamb, bool)
            or not isinstance(lamb, (int, float))
            or not math.isfinite(lamb)
            or lamb < 0
        ):
            raise ValueError(f"lamb must be a finite number >= 0, got {lamb!r}")
        torch.optim.Optimizer.__init__(self, [{"params": []}], {})
        self.base_optimizer = base_optimizer
        self.alpha, self.lamb = float(alpha), float(lamb)
        self.defaults = dict(base_optimizer.defaults)
        self.param_groups = base_optimizer.param_groups
        self.state: dict[Tensor, dict[str, Tensor]] = {}

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group to the base optimizer."""
        if hasattr(self, "base_optimizer"):
            self.base_optimizer.add_param_group(param_group)

    def _params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    @torch.no_grad()
    def filter_gradients(self) -> None:
        """Apply the EMA filter to every ``p.grad`` in place (no optimizer step)."""
        for p in self._params():
            if p.grad is None:
                continue
            st = self.state.setdefault(p, {})
            ema = st.get("ema")
            if ema is None:
                ema = st["ema"] = p.grad.detach().clone()
            else:
                ema.mul_(self.alpha).add_(p.grad, alpha=1.0 - self.alpha)
            p.grad.add_(ema, alpha=self.lamb)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Evaluate ``closure`` (if given), filter the gradients, take the base optimizer's step."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.filter_gradients()
        self.base_optimizer.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero the gradients (through the base optimizer)."""
        self.base_optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        """The base optimizer's state dict plus "grokfast": alpha, lamb and the EMAs keyed by parameter index."""
        sd = self.base_optimizer.state_dict()
        index = {p: i for i, p in enumerate(self._params())}
        ema = {index[p]: s["ema"].clone() for p, s in self.state.items() if p in index and "ema" in s}
        sd["grokfast"] = {"alpha": self.alpha, "lamb": self.lamb, "ema": ema}
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict made by :meth:`state_dict` (into a new model's optimizer too)."""
        sd = dict(state_dict)
        gf = sd.pop("grokfast", None)
        if gf is None:
            raise ValueError("state dict has no 'grokfast' entry: it was not saved by GrokfastEMA")
        self.base_optimizer.load_state_dict(sd)
        params = self._params()
        self.alpha, self.lamb = float(gf["alpha"]), float(gf["lamb"])
        self.state = {params[int(i)]: {"ema": e.clone().to(params[int(i)])} for i, e in gf["ema"].items()}


def adamw_factory(
    weight_decay: float, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.98), grokfast: bool = False
) -> Callable[[nn.Module], torch.optim.Optimizer]:
    """``model -> AdamW(lr, betas, weight_decay)`` (fused kernel), wrapped in :class:`GrokfastEMA` (alpha 0.98,
    lambda 2) if asked."""

    def make(model: nn.Module) -> torch.optim.Optimizer:
        opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=betas, weight_decay=weight_decay, fused=True)
        return GrokfastEMA(opt, alpha=0.98, lamb=2.0) if grokfast else opt

    make.__name__ = f"adamw{'+grokfast' if grokfast else ''}"
    return make


def grokfast_factory(
    lr: float = 1e-3, l2: float = 5e-3, betas: tuple[float, float] = (0.9, 0.98)
) -> Callable[[nn.Module], torch.optim.Optimizer]:
    """Lee et al.'s Grokfast-EMA recipe for algorithmic data: ``Adam(lr, betas, weight_decay=l2)`` (coupled L2,
    5e-3 in their command line) inside :class:`GrokfastEMA` (alpha 0.98, lambda 2)."""

    def make(model: nn.Module) -> torch.optim.Optimizer:
        opt = torch.optim.Adam(model.parameters(), lr=lr, betas=betas, weight_decay=l2, fused=True)
        return GrokfastEMA(opt, alpha=0.98, lamb=2.0)

    make.__name__ = "adam+l2+grokfast"
    return make


def weight_norm(model: nn.Module) -> float:
    """Euclidean norm of all parameters, ||theta||_2."""
    with torch.no_grad():
        return float(torch.sqrt(sum((p.detach().double() ** 2).sum() for p in model.parameters())))


def first_step_at(history: list[tuple[int, float]], level: float) -> int | None:
    """The first logged step at which the metric reaches ``level`` (None if never)."""
    for s, v in history:
        if v >= level:
            return int(s)
    return None


def _hessian_callback(every: int, points: int) -> Any:
    """Callback logging the top Hessian eigenvalue of the training loss on the first ``points`` training pairs."""
    from descentlab.landscape.hessian import hessian_eigenvalues
    from descentlab.train import Callback

    def fn(ctx: Any) -> dict[str, float]:
        x, y = (t[:points] for t in ctx.task.train_data)
        was = ctx.model.training
        ctx.model.eval()
        try:
            eig = hessian_eigenvalues(ctx.model, ctx.task.outputs_loss, (x, y), k=1, tol=1e-2, max_iter=30)
        finally:
            ctx.model.train(was)
        return {"hessian_lambda_max": float(eig.values[0])}

    return Callback(fn, every=every)


def _variants(cfg: dict[str, Any]) -> list[tuple[str, float, bool]]:
    """(label, weight decay, grokfast) for every configuration of the study; the Grokfast run's "weight decay" is
    its coupled L2 coefficient (Lee et al.'s recipe: Adam, not AdamW)."""
    out = [(f"wd = {float(wd):g}", float(wd), False) for wd in cfg["weight_decays"]]
    if cfg["grokfast"]:
        l2 = float(cfg.get("grokfast_l2", 5e-3))
        out.append((f"Grokfast-EMA (Adam, L2 {l2:g})", l2, True))
    return out


def run(ctx: StudyContext, cfg: dict[str, Any]) -> tuple[dict[str, Any], list[Claim]]:
    """Train every variant and seed, draw accuracy / loss / weight norm against steps, check the claims."""
    import matplotlib.pyplot as plt

    from descentlab import tasks
    from descentlab.train import Callback

    task_kw = {
        "p": int(cfg["p"]),
        "op": str(cfg["op"]),
        "train_fraction": float(cfg["train_fraction"]),
        "width": int(cfg["width"]),
    }
    steps, every, seeds = int(cfg["steps"]), int(cfg["eval_every"]), int(cfg["seeds"])
    threads = torch.get_num_threads()
    if int(cfg["threads"]) > 0:
        torch.set_num_threads(int(cfg["threads"]))
    variants = _variants(cfg)
    runs: dict[str, list[Any]] = {}
    try:
        for label, wd, gf in variants:
            runs[label] = []
            for s in range(seeds):
                cbs = [Callback(lambda c: {"weight_norm": weight_norm(c.model)}, every=every)]
                if (
                    int(cfg["hessian_every"]) > 0
                    and wd == float(cfg["weight_decays"][0])
                    and not gf
                    and s == 0
                ):
                    cbs.append(_hessian_callback(int(cfg["hessian_every"]), int(cfg["hessian_points"])))
                runs[label].append(
                    ctx.train(
                        tasks.get("modular", seed=s, **task_kw),
                        optimizer=grokfast_factory(float(cfg["lr"]), wd)
                        if gf
                        else adamw_factory(wd, lr=float(cfg["lr"])),
                        batch_size=int(cfg["batch_size"]),
                        steps=steps,
                        eval_every=every,
                        seed=s,
                        callbacks=cbs,
                        device="cpu",
                    )
                )
    finally:
        torch.set_num_threads(threads)

    numbers: dict[str, Any] = {"variants": {}}
    for label, wd, gf in variants:
        rows = []
        for r in runs[label]:
            tr99 = first_step_at(r.metrics("train_accuracy"), 0.99)
            va99 = first_step_at(r.metrics("accuracy"), 0.99)
            times = dict(r.metrics("train_time"))
            walls = dict(r.metrics("wall_time"))
            rows.append(
                {
                    "train99_step": tr99,
                    "val99_step": va99,
                    "delay_ratio": (va99 / tr99) if (va99 and tr99) else None,
                    "val99_train_time": times.get(va99) if va99 else None,
                    "val99_wall_time": walls.get(va99) if va99 else None,
                    "final_val_accuracy": r.final.get("accuracy"),
                    "final_train_accuracy": r.final.get("train_accuracy"),
                    "wall_time": r.final["wall_time"],
                    "train_time": r.final["train_time"],
                }
            )
        numbers["variants"][label] = {"weight_decay": wd, "grokfast": gf, "seeds": rows}

    # Figure: accuracy, loss, weight norm (and lambda_max) against steps on a log axis.
    hess = [r for lab in runs for r in runs[lab] if r.metrics("hessian_lambda_max")]
    ncols = 4 if hess else 3
    fig, axes = plt.subplots(1, ncols, figsize=(5.2 * ncols, 4.4))
    for i, (label, _, _) in enumerate(variants):
        col = f"C{i}"
        for key, ax, ls, name in (
            ("accuracy", axes[0], "-", "val"),
            ("train_accuracy", axes[0], "--", "train"),
            ("loss", axes[1], "-", "val"),
            ("train_loss", axes[1], "--", "train"),
            ("weight_norm", axes[2], "-", None),
        ):
            arr = np.array([[v for _, v in r.metrics(key)] for r in runs[label]])
            st = np.array([s for s, _ in runs[label][0].metrics(key)])
            keep = st > 0
            lab = f"{label}, {name}" if name else label
            ax.plot(st[keep], arr.mean(0)[keep], ls, color=col, label=lab)
            if arr.shape[0] > 1:
                ax.fill_between(st[keep], arr.min(0)[keep], arr.max(0)[keep], color=col, alpha=0.15)
    for r in hess:
        h = r.metrics("hessian_lambda_max")
        axes[3].plot([s for s, _ in h], [v for _, v in h], "o-", color="C0", ms=3, label=variants[0][0])
        axes[3].set_ylabel("Hessian λ_max (training loss)")
        axes[3].set_yscale("log")
    titles = ["accuracy", "cross-entropy loss", "weight norm ||θ||₂", "sharpness"]
    for ax, title in zip(axes, titles):
        ax.set_xscale("log")
        ax.set_xlabel("optimization step")
        ax.set_title(title)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("accuracy")
    axes[1].set_yscale("log")
    axes[1].set_ylabel("loss")
    axes[2].set_ylabel("||θ||₂")
    op_name = {"/": "division", "+": "addition", "-": "subtraction", "*": "multiplication"}[task_kw["op"]]
    fig.suptitle(
        f"Grokking: modular {op_name} mod {task_kw['p']}, training on {100 * task_kw['train_fraction']:g}% of data "
        f"(transformer, 2 layers, width {task_kw['width']})"
    )
    fig.tight_layout()
    ctx.save_figure(fig, "grokking")

    # Claims.
    main = numbers["variants"][variants[0][0]]["seeds"]
    ratios = [row["delay_ratio"] for row in main]
    delay_ok = all(r is not None and r >= 3.0 for r in ratios)
    claims = [
        Claim(
            "Grokking: validation accuracy reaches 99 % at least 3x later than training accuracy does.",
            delay_ok,
            "; ".join(
                f"seed {s}: train 99 % at step {row['train99_step']}, val 99 % at step {row['val99_step']}"
                + (
                    f" (x{row['delay_ratio']:.1f}, {row['val99_train_time']:.0f} s training)"
                    if row["val99_step"]
                    else ""
                )
                for s, row in enumerate(main)
            ),
        )
    ]
    no_wd = [lab for lab, wd, gf in variants if wd == 0 and not gf]
    if no_wd:
        rows0 = numbers["variants"][no_wd[0]]["seeds"]
        late = [
            r0["val99_step"] is None
            or (r1["val99_step"] is not None and r0["val99_step"] >= 3 * r1["val99_step"])
            for r0, r1 in zip(rows0, main)
        ]
        claims.append(
            Claim(
                "Without weight decay validation does not reach 99 % within the same budget (or much later).",
                all(late),
                "; ".join(
                    f"seed {s}: wd = 0: val 99 % at {r0['val99_step']} (final val acc "
                    f"{r0['final_val_accuracy']:.3f}); wd = {variants[0][1]:g}: at {r1['val99_step']}"
                    for s, (r0, r1) in enumerate(zip(rows0, main))
                )
                + f"; budget {steps} steps",
            )
        )
    # After zero training error the weights keep moving (the seed's "random walk"), here shrinking under decay.
    r0 = runs[variants[0][0]][0]
    norms = dict(r0.metrics("weight_norm"))
    tr99, va99 = main[0]["train99_step"], main[0]["val99_step"]
    if tr99 and va99 and tr99 in norms and va99 in norms:
        change = abs(norms[va99] - norms[tr99]) / norms[tr99]
        numbers["weight_norm_at_train99"], numbers["weight_norm_at_val99"] = norms[tr99], norms[va99]
        claims.append(
            Claim(
                "After zero training error the weights keep evolving until generalization (norm changes >= 10 %).",
                change >= 0.10,
                f"seed 0: ||θ|| = {norms[tr99]:.1f} at train 99 % (step {tr99}), {norms[va99]:.1f} at val 99 % "
                f"(step {va99}): relative change {change:.0%}",
            )
        )
    gf_labels = [lab for lab, _, gf in variants if gf]
    if gf_labels:
        # Lee et al. compare their recipe with the baseline without weight decay (which groks only after ~40k
        # steps); that is the no-weight-decay run here when the study has one, else the main run.
        rows_gf = numbers["variants"][gf_labels[0]]["seeds"]
        base_label = no_wd[0] if no_wd else variants[0][0]
        rows_base = numbers["variants"][base_label]["seeds"]
        faster = [
            rg["val99_step"] is not None and (rb["val99_step"] is None or rg["val99_step"] < rb["val99_step"])
            for rg, rb in zip(rows_gf, rows_base)
        ]
        claims.append(
            Claim(
                f"Grokfast-EMA (Lee et al.'s recipe: Adam, L2 {numbers['variants'][gf_labels[0]]['weight_decay']:g}, "
                "alpha 0.98, lambda 2) makes "
                f"validation accuracy reach 99 % sooner than the baseline ({base_label}).",
                all(faster),
                "; ".join(
                    f"seed {s}: Grokfast at step {rg['val99_step']}, {base_label} at {rb['val99_step']}, "
                    f"{variants[0][0]} at {rm['val99_step']}"
                    for s, (rg, rb, rm) in enumerate(zip(rows_gf, rows_base, main))
                )
                + f"; budget {steps} steps",
            )
        )
    if hess:
        h = hess[0].metrics("hessian_lambda_max")
        numbers["hessian_lambda_max"] = h
    return numbers, claims


_COMMON = {
    "lr": 1e-3,
    "batch_size": 512,
    "threads": 2,
    "hessian_every": 0,
    "hessian_points": 512,
    "grokfast_l2": 5e-3,
}

register(
    Study(
        name="grokking",
        description="Grokking on modular arithmetic: validation jumps to 100 % long after training; weight decay needed.",
        slide="seeds 000/002/004: 'Grokking', 'Modular Division (training on 50% of data)'",
        seconds=(98, 1575),  # measured quick/full wall s on the 2-core CPU (tour scheduling)
        quick={
            **_COMMON,
            "p": 97,
            "op": "+",
            "train_fraction": 0.5,
            "width": 128,
            "weight_decays": [1.0],
            "grokfast": False,
            "steps": 1500,
            "eval_every": 50,
            "seeds": 1,
        },
        full={
            **_COMMON,
            "p": 97,
            "op": "/",
            "train_fraction": 0.5,
            "width": 128,
            "weight_decays": [1.0, 0.0],
            "grokfast": True,
            "steps": 3000,
            "eval_every": 50,
            "seeds": 3,
        },
        run=run,
    )
)
