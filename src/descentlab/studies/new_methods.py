"""The methods people tune today against the baselines they claim to beat: SOAP, NorMuon and AdEMAMix.

Predictions taken from the papers before any run (issue 29), each judged like every other study's:

- SOAP (Vyas et al. 2024, "SOAP: Improving and Stabilizing Shampoo using Adam", arXiv:2409.11321, abstract: in
  language-model pre-training at 360M/660M parameters, over 40 % fewer iterations than AdamW and about 20 % fewer than
  Shampoo) reaches AdamW's and Shampoo's final training loss in fewer steps;
- NorMuon (Li et al. 2025, "NorMuon: Making Muon more efficient and scalable", arXiv:2510.05491, abstract: 11.31 %
  better training efficiency than Muon at 1.1B) reaches Muon's final training loss in fewer steps;
- AdEMAMix (Pagliardini, Ablin, Grangier 2024, "The AdEMAMix Optimizer: Better, Faster, Older", arXiv:2409.03137,
  abstract: a 1.3B model on 101B tokens matches AdamW on 197B) reaches AdamW's final training loss in fewer steps.

Every arm has one tuned dimension, its learning rate (the same grid size for all, chosen on 3 tuning seeds disjoint
from the judged ones, by the mean final training loss; a grid whose best point is at an edge is extended by ``tune``);
everything else is the implementation's default, except AdEMAMix's alpha/beta3 warm-up over the whole run
(``t_alpha_beta3 = steps``, the paper's recommendation, Algorithm 1) and Muon's AdamW part (lr 3e-3 on the biases and
the head, as in the muon-vs-adamw study). The measured quantity is the one muon-vs-adamw uses: per seed, S = the first
logged step at which the challenger's training loss is at or below the baseline's final training loss after T steps
on the same seed, and the statistic is log10(T / S) (S = T + 1 when never: counted, not dropped). The papers' sizes
come from another scale (billion-parameter language models), so they are anchors for direction and size only.

Each arm trains as one population per grid and per seed block (``descentlab.train_many``; SOAP, Shampoo, Muon,
NorMuon and AdEMAMix run member after member inside it, see ``descentlab optimizers``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from descentlab.studies import Anchor, Measurement, Prediction, Study, StudyContext, register
from descentlab.studies.claims import eval_seeds, tune, tuning_seeds
from descentlab.studies.muon_vs_adamw import final_train_loss, first_step_below, speedup
from descentlab.studies.tables import PopulationScore

ARMS: dict[str, str] = {
    "adamw": "AdamW",
    "soap": "SOAP",
    "shampoo": "Shampoo",
    "muon": "Muon",
    "normuon": "NorMuon",
    "ademamix": "AdEMAMix",
}
"""Registry name -> label of every arm (each tuned on its own lr grid ``<name>_lrs``)."""

PAIRS: dict[str, tuple[str, str]] = {
    "soap_fewer_steps_than_adamw": ("soap", "adamw"),
    "soap_fewer_steps_than_shampoo": ("soap", "shampoo"),
    "normuon_fewer_steps_than_muon": ("normuon", "muon"),
    "ademamix_fewer_steps_than_adamw": ("ademamix", "adamw"),
}
"""Prediction -> (challenger, baseline)."""

_SOAP = "Vyas et al. 2024, 'SOAP: Improving and Stabilizing Shampoo using Adam' (arXiv:2409.11321), abstract"
_NORMUON = "Li et al. 2025, 'NorMuon: Making Muon more efficient and scalable' (arXiv:2510.05491), abstract"
_ADEMAMIX = "Pagliardini, Ablin, Grangier 2024, 'The AdEMAMix Optimizer' (arXiv:2409.03137), abstract"
SOURCES = {
    "soap_fewer_steps_than_adamw": (
        _SOAP,
        "over 40 % fewer iterations than AdamW (360M/660M language models)",
        1 / 0.6,
    ),
    "soap_fewer_steps_than_shampoo": (
        _SOAP,
        "about 20 % fewer iterations than Shampoo (same models)",
        1 / 0.8,
    ),
    "normuon_fewer_steps_than_muon": (
        _NORMUON,
        "11.31 % better training efficiency than Muon at 1.1B",
        1.1131,
    ),
    "ademamix_fewer_steps_than_adamw": (
        _ADEMAMIX,
        "AdEMAMix on 101B tokens matches AdamW on 197B (1.3B model)",
        1.95,
    ),
}
"""Prediction -> (source, what it reports, the step ratio T / S that implies)."""


def _prediction(name: str, where: str = "the study's short budget", version: int = 1) -> Prediction:
    ch, base = PAIRS[name.removesuffix("_gpt")]
    source, said, _ = SOURCES[name.removesuffix("_gpt")]
    return Prediction(
        name=name,
        statement=f"{ARMS[ch]} reaches {ARMS[base]}'s final training loss in fewer steps than {ARMS[base]} takes "
        f"(equal step budget, each at its own tuned learning rate; {where}).",
        source=f"{source}: {said}",
        quantity=f"per evaluation seed: log10(T / S), S = first logged step at which {ARMS[ch]}'s training loss is "
        f"<= {ARMS[base]}'s final training loss after T steps on the same seed (T + 1 if never)"
        + ("; the mean over the ladder's widths" if name.endswith("_gpt") else ""),
        direction=">",
        threshold=0.0,
        tolerance="fewer steps: T / S > 1, a log-ratio > 0; the paper's size is an anchor (another scale)",
        scale="log-given",
        censor=f"{ARMS[ch]} never at {ARMS[base]}'s final loss: S = T + 1, applied by the study",
        version=version,
    )


PREDICTIONS = tuple(_prediction(n) for n in PAIRS)

GPT_PAIRS: dict[str, tuple[str, str]] = {
    f"{n}_gpt": PAIRS[n] for n in ("soap_fewer_steps_than_adamw", "soap_fewer_steps_than_shampoo")
}
"""new-methods-gpt: SOAP against AdamW and Shampoo on the speedrun's character GPT (the paper's setting is language
modelling with transformers)."""

GPT_PREDICTIONS = tuple(
    _prediction(n, "the NanoGPT speedrun's character GPT at the study's widths, a short budget")
    for n in GPT_PAIRS
)


def _hparams(cfg: dict[str, Any], opt: str) -> dict[str, Any]:
    """The fixed (untuned) hyper-parameters of arm ``opt``."""
    if opt == "ademamix":
        return {"t_alpha_beta3": float(cfg["steps"])}
    if opt == "muon":
        return {"lr_adam": float(cfg["muon_lr_adam"])}
    return {}


def _settings(cfg: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(label, task_kw) of every setting the pairs are measured on: the task's one ``task_kw``, or with ``widths``
    the speedrun's GPT family at each width (``head_dim``, ``depth``, ``context`` fixed)."""
    if not cfg.get("widths"):
        return [("", dict(cfg["task_kw"]))]
    from descentlab.tasks.charlm import gpt_family

    out = []
    for w in [int(v) for v in cfg["widths"]]:
        kw = gpt_family(
            w, head_dim=int(cfg["head_dim"]), depth=int(cfg["depth"]), context=int(cfg["context"])
        )
        out.append((f"width {w}", {**kw, **dict(cfg["task_kw"])}))
    return out


def _make_run(pairs: dict[str, tuple[str, str]]) -> Any:
    """The study's ``run`` for ``pairs`` (prediction -> (challenger, baseline)): per setting, tune every needed arm's
    lr on the tuning seeds and train it on the evaluation seeds; a pair's per-seed value is log10(T / S), averaged
    over the settings (the ladder's widths) when there are several."""

    def run(ctx: StudyContext, cfg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Measurement]]:
        """Tune every arm's lr on the tuning seeds, train it on the evaluation seeds, judge each pair; the figure."""
        import matplotlib.pyplot as plt

        task, steps = str(cfg["task"]), int(cfg["steps"])
        seeds = eval_seeds(cfg)
        settings = _settings(cfg)
        undecided = ctx.undecided if ctx.undecided is not None else list(pairs)
        needed = {a for p in undecided for a in pairs[p]}
        numbers: dict[str, Any] = {"tuned": {}, "final_train_loss": {}, "steps_to_baseline_final": {}}
        runs: dict[tuple[str, str], list[Any]] = {}
        off_grid: dict[str, str] = {}
        for label, task_kw in settings:
            shared = {"steps": steps, "batch_size": int(cfg["batch_size"]), "eval_every": max(1, steps // 30),
                      "task_kw": task_kw, "device": "cpu", "save_final": False}  # fmt: skip
            for opt in [a for a in ARMS if a in needed]:
                key = f"{opt} ({label})" if label else opt
                score = PopulationScore(ctx, task, opt, final_train_loss, hparams=_hparams(cfg, opt),
                                        keep_model=False, **shared)  # fmt: skip
                tuned = tune(score, [float(x) for x in cfg[f"{opt}_lrs"]], tuning_seeds(cfg),
                             metric=f"final training loss after {steps} steps")  # fmt: skip
                if not tuned.bracketed:
                    off_grid[key] = f"{ARMS[opt]}{f' at {label}' if label else ''}: {tuned.note()}"
                runs[(label, opt)] = ctx.train_many(task, opt, [{"seed": s, "lr": tuned.value} for s in seeds],
                                                    hparams=_hparams(cfg, opt), keep_model=False, **shared)  # fmt: skip
                numbers["tuned"][key] = tuned.to_dict()
                numbers["final_train_loss"][key] = [final_train_loss(r) for r in runs[(label, opt)]]

        measured: dict[str, Measurement] = {}
        for name, (ch, base) in pairs.items():
            if any((label, a) not in runs for label, _ in settings for a in (ch, base)):
                # decided at an earlier look: nothing trained for it in this block
                measured[name] = Measurement([math.nan] * len(seeds), "decided at an earlier look")
                continue
            per_setting, parts = [], []
            for label, _ in settings:
                ref = [final_train_loss(r) for r in runs[(label, base)]]
                chal = runs[(label, ch)]
                per_setting.append([speedup(c.metrics("train_loss"), f, steps) for c, f in zip(chal, ref)])
                at = [first_step_below(c.metrics("train_loss"), f) for c, f in zip(chal, ref)]
                numbers["steps_to_baseline_final"][f"{name} ({label})" if label else name] = at
                lr = {a: numbers["tuned"][f"{a} ({label})" if label else a]["value"] for a in (ch, base)}
                parts.append(
                    (f"{label}: " if label else "")
                    + f"{ARMS[base]}'s final training loss after {steps} steps per seed "
                    + ", ".join(f"{v:.3g}" for v in ref)
                    + f"; reached by {ARMS[ch]} at step "
                    + ", ".join("never" if not math.isfinite(v) else f"{v:g}" for v in at)
                    + f" (lr {ARMS[ch]} {lr[ch]:g}, {ARMS[base]} {lr[base]:g})"
                )
            values = [float(np.mean(col)) for col in zip(*per_setting)]
            keys = [k for k in off_grid if k.split(" (")[0] in (ch, base)]
            measured[name] = Measurement(
                values, "; ".join(parts), inconclusive="; ".join(off_grid[k] for k in keys) or None
            )
            _, said, ratio = SOURCES[name.removesuffix("_gpt")]
            ctx.anchor(
                Anchor(
                    f"{name}: log10(T / S)",
                    math.log10(ratio),
                    SOURCES[name.removesuffix("_gpt")][0] + f": {said}",
                    setting="other",
                    reason="billion-parameter language models, not the lab's small workloads",
                ),  # fmt: skip
                [v if math.isfinite(v) else math.nan for v in values],
            )

        fig, axes = plt.subplots(1, len(settings), figsize=(8 * len(settings), 5), squeeze=False)
        for ax, (label, _) in zip(axes[0], settings):
            for i, opt in enumerate(a for a in ARMS if (label, a) in runs):
                rs = runs[(label, opt)]
                n = min(len(r.metrics("train_loss")) for r in rs)
                x = [s for s, _ in rs[0].metrics("train_loss")[:n]]
                vals = np.array([[v for _, v in r.metrics("train_loss")[:n]] for r in rs])
                lr = numbers["tuned"][f"{opt} ({label})" if label else opt]["value"]
                ax.semilogy(x, np.exp(np.log(vals).mean(0)), color=f"C{i}", label=f"{ARMS[opt]} (lr {lr:g})")
                if len(rs) > 1:
                    ax.fill_between(x, vals.min(0), vals.max(0), color=f"C{i}", alpha=0.15)
            ax.set_xlabel("step")
            ax.set_ylabel("training loss (geometric mean over seeds, band min–max)")
            ax.set_title(f"{task}{f' {label}' if label else ''}: each method at its tuned lr, {len(seeds)} seeds "
                         f"from seed {seeds[0]}")  # fmt: skip
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=8)
        fig.tight_layout()
        ctx.save_figure(fig, "new_methods")
        return numbers, measured

    return run


run = _make_run(PAIRS)


_GRID = [1e-3, 3e-3, 1e-2, 3e-2]
_BASE: dict[str, Any] = {
    "task": "mnist1d_mlp",
    "task_kw": {},
    "batch_size": 128,
    "adamw_lrs": _GRID,
    "soap_lrs": _GRID,
    "shampoo_lrs": _GRID,
    "muon_lrs": [0.01, 0.03, 0.1, 0.3],
    "normuon_lrs": _GRID,
    "ademamix_lrs": _GRID,
    "muon_lr_adam": 3e-3,
    "tuning_seeds": 3,
}

register(
    Study(
        name="new-methods",
        description="SOAP vs AdamW and Shampoo, NorMuon vs Muon, AdEMAMix vs AdamW: steps to the baseline's final "
        "training loss, every arm tuned on its own, judged over seeds.",
        slide="beyond the lectures: SOAP (arXiv:2409.11321), NorMuon (arXiv:2510.05491), AdEMAMix (arXiv:2409.03137)",
        seconds=(149, 655),  # wall s, 2026-12-07: quick alone (1 thread), full beside another job (2 threads)
        predictions=PREDICTIONS,
        quick={**_BASE, "steps": 600, "seeds": 10, "seed_blocks": [5, 10]},
        full={**_BASE, "steps": 2000, "seeds": 20, "seed_blocks": [10, 20]},
        run=run,
        limits={"steps": (10, 100000)},
        in_tour=False,  # ~150 s: the quick tour has no room left in its 10 minutes (docs/studies.md)
    )
)


_GPT_BASE: dict[str, Any] = {
    "task": "charlm",
    "task_kw": {"eval_windows": 64},
    "head_dim": 16,
    "depth": 2,
    "context": 32,
    "batch_size": 16,
    "adamw_lrs": _GRID,
    "soap_lrs": _GRID,
    "shampoo_lrs": _GRID,
    "tuning_seeds": 3,
}

register(
    Study(
        name="new-methods-gpt",
        description="SOAP vs AdamW and Shampoo on the NanoGPT speedrun's character GPT (one width in quick, the "
        "speedrun's ladder 16/32/64 in full): steps to the baseline's final training loss, every arm tuned on its own.",
        slide="beyond the lectures: SOAP (arXiv:2409.11321) on the speedrun's GPT ladder (seed 002, 'NanoGPT speedrun')",
        seconds=(242, 1406),  # 2026-12-07, AVX2 AMD EPYC, 1 thread beside other jobs: both measured
        predictions=GPT_PREDICTIONS,
        quick={**_GPT_BASE, "widths": [32], "steps": 200, "seeds": 10, "seed_blocks": [5, 10]},
        full={**_GPT_BASE, "widths": [16, 32, 64], "steps": 300, "seeds": 20, "seed_blocks": [10, 20]},
        run=_make_run(GPT_PAIRS),
        limits={"steps": (10, 100000)},
        in_tour=False,
    )
)
