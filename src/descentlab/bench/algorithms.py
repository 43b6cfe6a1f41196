"""Benchmark algorithms: an optimizer (registry name) + a schedule + a search space, declared as one small object.

An algorithm touches only optimizer state and parameters (AlgoPerf's rule): it chooses the update, the learning-rate
schedule and its hyper-parameters, never the model, loss, data, evaluation or budget. Add your own in one file::

    from descentlab.bench import Algorithm, register_algorithm
    register_algorithm(Algorithm("my_adam", "adam", space={"lr": {"min": 1e-4, "max": 1e-2, "scaling": "log"}},
                                 default={"lr": 1e-3}, schedule="warmup_cosine"))

A point of the search space maps onto ``train()``: ``lr`` -> ``lr``; ``warmup_fraction``/``min_lr_ratio`` ->
the schedule; ``one_minus_beta1``/``beta2`` -> ``betas``; ``one_minus_momentum`` -> ``momentum``; anything else ->
an optimizer hyper-parameter; ``tie={"adam_weight_decay": "weight_decay"}`` copies one tuned value to another
hyper-parameter (Muon's two weight decays are one dimension).

**Search spaces** follow one rule: every built-in entrant tunes exactly ``TUNED_DIMENSIONS`` (3) dimensions, the
learning rate and two of its own (``tuned_dimensions()``; ``tests/bench/test_entrants.py`` checks it).
**Not applicable**: ``not_applicable(workload)`` names why an entrant has nothing to act on in a workload (Muon on a
model without hidden matrices); such a cell is reported "n/a", never silently run as another method.

**Evaluation hook** (AlgoPerf's ``prepare_for_eval``): ``prepare_for_eval={"method": "lawa", "k": 5,
"every_fraction": 0.02}`` makes what is evaluated differ from what is trained. ``method`` names an optimizer wrapper
of ``descentlab.optim`` (``lawa``, ``ema``, or your own) built around the algorithm's optimizer (``base=``); the
training loop calls its ``eval()`` before every evaluation (it swaps the averaged weights in) and ``train()`` after
(it swaps the raw ones back), and its state is part of every checkpoint. ``every_fraction``/``start_fraction`` are
fractions of the workload's step hint, turned into the wrapper's ``every``/``start`` steps when a trial starts; other
keys go to the wrapper as they are. Schedule-Free optimizers need no hook: their own ``eval()`` already evaluates
the averaged sequence. The hook runs inside evaluation, outside the clock (AlgoPerf times ``prepare_for_eval``; here
it is one copy and mean of the parameters per evaluation).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from descentlab._registry import unknown_name_message
from descentlab.bench.tuning import validate_space

SCHEDULE_KEYS = ("warmup_fraction", "min_lr_ratio")
STEP_FRACTION_KEYS = {"every_fraction": "every", "start_fraction": "start"}
TWIN_SEED_OFFSET = 100_000
TUNED_DIMENSIONS = 3
"""The number of tuned search-space dimensions of every built-in entrant (docs/benchmark.md, "Entrants")."""
MUON_FAMILY = ("muon", "normuon", "adamuon")
"""Entrants whose optimizer acts on hidden matrices only (n/a on a model without one)."""
RULESETS = ("external", "self")
"""AlgoPerf's tuning rulesets; an entrant declares the ones it enters (the self-tuning submissions: "self" only)."""
GRADIENT_EVALUATIONS = {"sam": 2, "asam": 2}
"""Gradient evaluations per optimizer step (1 unless listed): what the fewest-steps track counts."""


@dataclass(frozen=True)
class Algorithm:
    """A training algorithm: ``optimizer`` with ``fixed`` hyper-parameters, a ``schedule`` (with ``schedule_kw``),
    an external-tuning search ``space`` (``{name: {"min", "max", "scaling"}}`` or a list of points) and the one
    ``default`` configuration used for self-tuning. ``prepare_for_eval`` declares an evaluation hook (module
    docstring); ``seed_offset`` shifts the algorithm's study and trial seeds (``twin`` uses it for the null test)."""

    name: str
    optimizer: str
    space: Mapping[str, Any] | Sequence[Mapping[str, Any]]
    default: Mapping[str, Any]
    schedule: str | None = "warmup_cosine"
    schedule_kw: Mapping[str, Any] = field(default_factory=dict)
    fixed: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    prepare_for_eval: Mapping[str, Any] | None = None
    seed_offset: int = 0
    tie: Mapping[str, str] = field(default_factory=dict)
    rulesets: tuple[str, ...] = RULESETS

    def __post_init__(self) -> None:
        validate_space(self.space)
        if isinstance(self.rulesets, list):  # a spec read back from JSON
            object.__setattr__(self, "rulesets", tuple(self.rulesets))
        if (
            not isinstance(self.rulesets, tuple)
            or not self.rulesets
            or any(r not in RULESETS for r in self.rulesets)
        ):
            raise ValueError(
                f"algorithm {self.name!r}: rulesets must be a non-empty tuple of {RULESETS}, got {self.rulesets!r}"
            )
        if not isinstance(self.default, Mapping):
            raise TypeError(
                f"algorithm {self.name!r}: default must be a dict, got {type(self.default).__name__}"
            )
        hook = self.prepare_for_eval
        if hook is not None and (not isinstance(hook, Mapping) or not isinstance(hook.get("method"), str)):
            raise ValueError(
                f"algorithm {self.name!r}: prepare_for_eval must be a dict with a 'method' (an optimizer wrapper "
                f"name such as 'lawa' or 'ema'), got {hook!r}"
            )
        if hook is not None:
            for key in STEP_FRACTION_KEYS:
                v = hook.get(key)
                if v is not None and (
                    isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1
                ):
                    raise ValueError(
                        f"algorithm {self.name!r}: prepare_for_eval {key} must be in [0, 1], got {v!r}"
                    )
        if (
            isinstance(self.seed_offset, bool)
            or not isinstance(self.seed_offset, int)
            or self.seed_offset < 0
        ):
            raise ValueError(
                f"algorithm {self.name!r}: seed_offset must be an integer >= 0, got {self.seed_offset!r}"
            )
        if not isinstance(self.tie, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.tie.items()
        ):
            raise ValueError(
                f"algorithm {self.name!r}: tie must map hyper-parameter names to names, got {self.tie!r}"
            )

    def tuned_dimensions(self) -> list[str]:
        """The search-space dimensions that vary (ranges and value lists; constants and point lists excluded)."""
        if not isinstance(self.space, Mapping):
            return []
        return [k for k, v in self.space.items() if isinstance(v, Mapping)]

    @property
    def gradient_evaluations(self) -> int:
        """Gradient evaluations per optimizer step: 2 for SAM (its ascent step), else 1."""
        names = [self.optimizer, str(self.fixed.get("base", ""))]
        return max(GRADIENT_EVALUATIONS.get(n, 1) for n in names)

    def not_applicable(self, workload: Any) -> str | None:
        """Why this entrant has nothing to act on in ``workload`` (a ``Workload``), or None when it applies: Muon
        needs at least one hidden matrix (its split sends embeddings, the output head and vectors to AdamW)."""
        if self.optimizer not in MUON_FAMILY:
            return None
        from descentlab.optim import muon_param_groups

        model = workload.make_task().make_model(seed=0)
        if any(g.get("use_muon") for g in muon_param_groups(model, head=self.fixed.get("head"))):
            return None
        return (f"{self.name} has no hidden matrix to act on in {workload.name!r} (every parameter would go to its "
                "AdamW part)")  # fmt: skip

    def train_kwargs(self, point: Mapping[str, Any], step_hint: int | None = None) -> dict[str, Any]:
        """``train()`` keyword arguments (optimizer, lr, hparams, schedule, schedule_kw) for a search-space point;
        with an evaluation hook the optimizer is the hook's wrapper around this algorithm's optimizer, its
        ``*_fraction`` settings resolved against ``step_hint`` (the workload's)."""
        hparams: dict[str, Any] = dict(self.fixed)
        schedule_kw: dict[str, Any] = dict(self.schedule_kw)
        lr = None
        beta1 = beta2 = None
        for key, value in point.items():
            if key == "lr":
                lr = float(value)
            elif key in SCHEDULE_KEYS:
                schedule_kw[key] = value
            elif key == "one_minus_beta1":
                beta1 = 1.0 - float(value)
            elif key == "beta2":
                beta2 = float(value)
            elif key == "one_minus_momentum":
                hparams["momentum"] = 1.0 - float(value)
            else:
                hparams[key] = value
        if beta1 is not None or beta2 is not None:
            b1, b2 = hparams.get("betas", (0.9, 0.999))
            hparams["betas"] = (b1 if beta1 is None else beta1, b2 if beta2 is None else beta2)
        if lr is None:
            raise ValueError(f"algorithm {self.name!r}: the point {dict(point)!r} has no 'lr'")
        for dst, src in self.tie.items():
            if src not in hparams:
                raise ValueError(
                    f"algorithm {self.name!r}: tie {dst!r} <- {src!r}, but the point has no {src!r}"
                )
            hparams[dst] = hparams[src]
        optimizer = self.optimizer
        hook = self.eval_hook(step_hint)
        if hook is not None:
            optimizer = hook.pop("method")
            hparams = {"base": self.optimizer, **hparams, **hook}
        return {
            "optimizer": optimizer,
            "lr": lr,
            "hparams": hparams,
            "schedule": self.schedule,
            "schedule_kw": schedule_kw if self.schedule else {},
        }

    def eval_hook(self, step_hint: int | None = None) -> dict[str, Any] | None:
        """The evaluation hook with its ``*_fraction`` settings turned into steps of ``step_hint`` (``method``
        kept), or None without one."""
        if self.prepare_for_eval is None:
            return None
        hook = dict(self.prepare_for_eval)
        for key, target in STEP_FRACTION_KEYS.items():
            if key in hook:
                if step_hint is None:
                    raise ValueError(
                        f"algorithm {self.name!r}: prepare_for_eval {key} needs the workload's step_hint"
                    )
                frac = hook.pop(key)
                hook[target] = max(1 if target == "every" else 0, int(round(frac * step_hint)))
        return hook

    def spec(self) -> dict[str, Any]:
        """The algorithm as a plain dict (part of every trial's cache key)."""
        space = dict(self.space) if isinstance(self.space, Mapping) else [dict(p) for p in self.space]
        return {
            "name": self.name,
            "optimizer": self.optimizer,
            "schedule": self.schedule,
            "schedule_kw": dict(self.schedule_kw),
            "fixed": dict(self.fixed),
            "space": space,
            "default": dict(self.default),
            **(
                {"prepare_for_eval": dict(self.prepare_for_eval)} if self.prepare_for_eval is not None else {}
            ),
            **({"seed_offset": self.seed_offset} if self.seed_offset else {}),
            **({"tie": dict(self.tie)} if self.tie else {}),
            **({"rulesets": list(self.rulesets)} if self.rulesets != RULESETS else {}),
        }  # the last three only when set: the cache keys of existing algorithms stay as they were

    def twin(self, name: str | None = None, seed_offset: int = TWIN_SEED_OFFSET) -> Algorithm:
        """The same algorithm under another name (default ``<name>_twin``) with other study and trial seeds: the
        null test's second entrant, which should come out tied with this one."""
        return dataclasses.replace(
            self, name=name or f"{self.name}_twin", seed_offset=self.seed_offset + seed_offset
        )


ALGORITHMS: dict[str, Algorithm] = {}


def register_algorithm(algorithm: Algorithm) -> Algorithm:
    """Add ``algorithm`` to the registry (replacing one of the same name) and return it."""
    if not isinstance(algorithm, Algorithm):
        raise TypeError(f"expected an Algorithm, got {type(algorithm).__name__}")
    ALGORITHMS[algorithm.name] = algorithm
    return algorithm


def get_algorithm(name: str) -> Algorithm:
    """The registered algorithm ``name`` (ValueError with suggestions otherwise)."""
    if name not in ALGORITHMS:
        raise ValueError(unknown_name_message("algorithm", name, sorted(ALGORITHMS)))
    return ALGORITHMS[name]


def available_algorithms(tuning: str | None = None) -> list[str]:
    """Names of the registered algorithms, in registration order; with ``tuning`` ("external" or "self") only
    those that enter that ruleset (the self-tuning submissions enter "self" only)."""
    if tuning is not None and tuning not in RULESETS:
        raise ValueError(f"tuning must be one of {RULESETS}, got {tuning!r}")
    return [n for n, a in ALGORITHMS.items() if tuning is None or tuning in a.rulesets]


def _log(lo: float, hi: float) -> dict[str, Any]:
    return {"min": lo, "max": hi, "scaling": "log"}


def _builtin() -> None:
    # One rule: every entrant tunes 3 dimensions, the learning rate and two of its own (TUNED_DIMENSIONS).
    wd = _log(1e-3, 1.0)  # up to 1: grokking (modular) needs strong decoupled decay
    b1 = _log(0.03, 0.3)  # 1 - beta1 (or 1 - momentum): beta1 in [0.7, 0.97]
    adam_lr = _log(3e-4, 3e-2)
    register_algorithm(Algorithm(
        "nadamw", "algoperf_nadamw", space={"lr": adam_lr, "one_minus_beta1": b1, "weight_decay": wd},
        default={"lr": 3e-3, "one_minus_beta1": 0.1, "weight_decay": 1e-2},
        fixed={"betas": (0.9, 0.99)}, schedule_kw={"warmup_fraction": 0.05},
        description="AlgoPerf's NAdamW baseline update (descentlab.optim.AlgoPerfNAdamW, parity-tested), beta2 "
                    "0.99, linear warmup 5 % then cosine decay",
    ))  # fmt: skip
    nadamw = ALGORITHMS["nadamw"]
    register_algorithm(dataclasses.replace(
        nadamw, name="nadamw_last5", prepare_for_eval={"method": "lawa", "k": 5, "every_fraction": 0.02},
        description="NAdamW's trials, evaluated at the mean of the last 5 weight snapshots (one every 2 % of the "
                    "step hint, from step 0, a partial queue before 5); not AlgoPerf v0.5's LAWA submission",
    ))  # fmt: skip
    register_algorithm(dataclasses.replace(
        nadamw, name="nadamw_snapema", prepare_for_eval={"method": "ema", "decay": 0.9, "every_fraction": 0.01},
        description="NAdamW's trials, evaluated at an EMA (decay 0.9) of weight snapshots taken every 1 % of the "
                    "step hint; not AlgoPerf v0.5's LAWA EMA submission",
    ))  # fmt: skip
    register_algorithm(Algorithm(
        "adamw", "algoperf_adamw", space={"lr": adam_lr, "one_minus_beta1": b1, "weight_decay": wd},
        default={"lr": 3e-3, "one_minus_beta1": 0.1, "weight_decay": 1e-2}, fixed={"betas": (0.9, 0.99)},
        schedule_kw={"warmup_fraction": 0.05},
        description="AlgoPerf's AdamW baseline update (= torch AdamW, parity-tested), beta2 0.99, warmup + cosine",
    ))  # fmt: skip
    register_algorithm(Algorithm(
        "sgd_nesterov", "sgd",
        space={"lr": _log(3e-3, 1.0), "one_minus_momentum": _log(0.01, 0.3), "weight_decay": _log(1e-5, 1e-2)},
        default={"lr": 0.05, "one_minus_momentum": 0.1, "weight_decay": 1e-4}, fixed={"momentum": 0.9, "nesterov": True},
        schedule_kw={"warmup_fraction": 0.05}, description="SGD + Nesterov momentum, warmup + cosine",
    ))  # fmt: skip
    register_algorithm(Algorithm(
        "muon", "muon", space={"lr": _log(3e-3, 1e-1), "lr_adam": adam_lr, "weight_decay": wd},
        default={"lr": 0.02, "lr_adam": 3e-3, "weight_decay": 1e-2}, tie={"adam_weight_decay": "weight_decay"},
        fixed={"adam_betas": (0.9, 0.99)}, schedule_kw={"warmup_fraction": 0.05},
        description="Muon on hidden matrices + AdamW on the rest, the AdamW part's lr a tuned dimension (AdamW's "
                    "range), one weight decay for both parts; n/a on a model without hidden matrices",
    ))  # fmt: skip
    register_algorithm(dataclasses.replace(
        ALGORITHMS["muon"], name="normuon", optimizer="normuon",
        description="NorMuon (Muon with row normalization after orthogonalization; descentlab's Muon option) on "
                    "hidden matrices + AdamW on the rest, tuned as muon; n/a without hidden matrices",
    ))  # fmt: skip
    register_algorithm(Algorithm(
        "soap", "soap", space={"lr": adam_lr, "one_minus_beta1": b1, "weight_decay": wd},
        default={"lr": 3e-3, "one_minus_beta1": 0.05, "weight_decay": 1e-2},
        fixed={"betas": (0.95, 0.95), "precondition_frequency": 10}, schedule_kw={"warmup_fraction": 0.05},
        description="SOAP (Adam in Shampoo's eigenbasis; pytorch_optimizer's, parity-checked in docs/optimizers.md), "
                    "betas (0.95, 0.95), preconditioner every 10 steps, warmup + cosine",
    ))  # fmt: skip
    register_algorithm(Algorithm(
        "shampoo", "shampoo", space={"lr": adam_lr, "one_minus_beta1": b1, "weight_decay": wd},
        default={"lr": 3e-3, "one_minus_beta1": 0.1, "weight_decay": 1e-3},
        fixed={"precondition_frequency": 10, "betas": (0.9, 1.0)}, schedule_kw={"warmup_fraction": 0.05},
        description="Shampoo, Adam-grafted, preconditioners refreshed every 10 steps, warmup + cosine",
    ))  # fmt: skip
    register_algorithm(Algorithm(
        "sam", "sam", space={"lr": _log(3e-3, 1.0), "rho": _log(0.01, 0.2), "weight_decay": _log(1e-5, 1e-2)},
        default={"lr": 0.05, "rho": 0.05, "weight_decay": 1e-4}, fixed={"base": "sgd", "momentum": 0.9, "nesterov": True},
        schedule_kw={"warmup_fraction": 0.05},
        description="SAM around SGD + Nesterov 0.9 (two gradient evaluations per step), warmup + cosine",
    ))  # fmt: skip
    register_algorithm(Algorithm(
        "lookahead", "lookahead", space={"lr": adam_lr, "alpha": {"min": 0.3, "max": 0.8}, "weight_decay": wd},
        default={"lr": 3e-3, "alpha": 0.5, "weight_decay": 1e-2}, fixed={"base": "adamw", "k": 5},
        schedule_kw={"warmup_fraction": 0.05}, description="Lookahead(AdamW), k = 5, warmup + cosine",
    ))  # fmt: skip
    register_algorithm(Algorithm(
        "schedulefree_adamw", "schedulefree_adamw",
        space={"lr": _log(1e-3, 3e-2), "one_minus_beta1": b1, "weight_decay": wd},
        default={"lr": 5e-3, "one_minus_beta1": 0.1, "weight_decay": 1e-3},
        fixed={"warmup_steps": 50, "betas": (0.9, 0.999)}, schedule=None,
        description="Schedule-Free AdamW, 50 warmup steps, no schedule",
    ))  # fmt: skip
    register_algorithm(Algorithm(
        "signsgd", "signsgd",
        space={"lr": _log(1e-4, 1e-2), "one_minus_momentum": _log(0.01, 1.0),
               "warmup_fraction": {"min": 0.02, "max": 0.1}},
        default={"lr": 1e-3, "one_minus_momentum": 1.0, "warmup_fraction": 0.05},
        description="signSGD (Signum with momentum), warmup + cosine",
    ))  # fmt: skip


SUBMISSIONS_SOURCE = "mlcommons/submissions_algorithms @ 12c8e4ea (2026-06-24)"
"""Where the self-tuning entrants' fixed hyper-parameters come from (each entrant names its file)."""


def _self_tuning_2026() -> None:
    """AlgoPerf's self-tuning field (accepted, being scored in 2026): each submission's one fixed configuration
    (``HPARAMS`` in ``submissions/self_tuning/<name>/submission.py`` of SUBMISSIONS_SOURCE), transferred unchanged
    to the lab's workloads; self-tuning ruleset only. What the transfer cannot keep (dropout, absolute warmup
    lengths, the JAX parameter layout) is listed in docs/benchmark.md, "AlgoPerf-2026 self-tuning preview"; the
    update rules are checked against transcriptions of the submissions in tests/bench/test_self_tuning_2026.py."""
    st = ("self",)
    nadamw_point = {"lr": 0.0017486387539278373, "one_minus_beta1": 0.06733926164, "beta2": 0.9955159689799007,
                    "weight_decay": 0.08121616522670176}  # fmt: skip
    register_algorithm(Algorithm(
        "st_nadamw", "algoperf_nadamw", space=[nadamw_point], default=nadamw_point, fixed={"eps": 1e-8},
        schedule_kw={"warmup_fraction": 0.02}, rulesets=st,
        description="AlgoPerf's self-tuning baseline (previous_leaderboards/algoperf_v06/submissions/self_tuning/"
                    "baseline): NAdamW at its one point, warmup 2 % + cosine",
    ))  # fmt: skip
    register_algorithm(Algorithm(
        "st_cautious_nadamw", "algoperf_nadamw", space=[nadamw_point], default=nadamw_point,
        fixed={"eps": 1e-8, "cautious_floor": 1e-3},
        schedule_kw={"warmup_fraction": 0.02}, rulesets=st,
        description="submissions/self_tuning/cautious_nadamw: the baseline's NAdamW and point with the cautious "
                    "mask 1[m g > 0] / max(mean, 1e-3) on its Nesterov moment inside the update (AlgoPerfNAdamW's "
                    "cautious_floor; the `cautious` wrapper with mask_floor=1e-3, decay_order='before' is the same "
                    "update, slower: it copies parameters and gradients every step); decay unmasked",
    ))  # fmt: skip
    lion_point = {"lr": 2e-4, "one_minus_beta1": 0.05, "beta2": 0.98, "weight_decay": 0.5}
    register_algorithm(Algorithm(
        "st_lion", "lion", space=[lion_point], default=lion_point, schedule_kw={"warmup_fraction": 0.02},
        rulesets=st, description="submissions/self_tuning/lion: Lion, lr 2e-4, betas (0.95, 0.98), decoupled decay "
                                 "0.5 (x lr), warmup 2 % + cosine",
    ))  # fmt: skip
    ademamix_point = {"lr": 2e-3, "weight_decay": 0.1}
    register_algorithm(Algorithm(
        "st_ademamix", "clipped", space=[ademamix_point], default=ademamix_point,
        fixed={"base": "ademamix", "max_norm": 0.5, "betas": (0.8, 0.995, 0.9995), "alpha": 8.0,
               "t_alpha_beta3": 500_000, "eps": 1e-8},
        schedule_kw={"warmup_fraction": 0.02}, rulesets=st,
        description="submissions/self_tuning/ademamix: AdEMAMix, lr 2e-3, betas (0.8, 0.995, 0.9995), alpha 8 with "
                    "alpha/beta3 warm-up over 500k steps, decay 0.1, global gradient clipping at 0.5, warmup 2 % + "
                    "cosine",
    ))  # fmt: skip
    muon_lr = 0.0001357495179
    muon_point = {"lr": muon_lr * 28.61130298, "lr_adam": muon_lr, "weight_decay": 0.02397563985,
                  "adam_weight_decay": 0.01275028385}  # fmt: skip
    register_algorithm(Algorithm(
        "st_muon", "muon", space=[muon_point], default=muon_point,
        fixed={"momentum": 0.9560745273, "nesterov": False, "adjust_lr": "original", "head": [],
               "adam_betas": (0.96586744, 0.8629173173), "adam_eps": 1e-8, "adam_nesterov": True},
        schedule_kw={"warmup_fraction": 0.0}, rulesets=st,
        description="submissions/self_tuning/muon: Muon (momentum 0.956, no Nesterov, lr 28.6 x 1.36e-4, decay "
                    "0.024) on every >= 2-D weight but embeddings (the output head included), AlgoPerf's NAdamW "
                    "(betas 0.966, 0.863, decay 0.0128, lr 1.36e-4) on the rest, no warmup, cosine",
    ))  # fmt: skip


_builtin()
_self_tuning_2026()
