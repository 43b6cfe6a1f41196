"""Global gradient-norm clipping as part of an optimizer: ``create("clipped", model, base="ademamix", max_norm=0.5)``.

Before every base step the gradients of all the optimizer's parameters are scaled by min(1, max_norm / (||g|| +
1e-6)), ||g|| the Euclidean norm of all of them together (``torch.nn.utils.clip_grad_norm_``, the same factor as
AlgoPerf's submissions, ``grad_clip / (grad_norm + 1e-6)`` clamped to [0, 1]). In AlgoPerf's rules clipping belongs
to the training algorithm, not to the workload; this wrapper is how an entrant declares it (the AdEMAMix
self-tuning submission clips at 0.5). In a population each member clips by its own norm (one optimizer per member).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from descentlab.optim.registry import ParamsOrModel, create, needs_closure, register

__all__ = ["ClipGradNorm"]

CLIP_EPS = 1e-6


class ClipGradNorm(torch.optim.Optimizer):
    """Clip the global gradient norm to ``max_norm`` (> 0), then step ``base_optimizer`` (``.base_optimizer``).

    Param groups are shared with the base, so LR schedulers may drive either; the state dict is the base's plus a
    ``"clip"`` entry. The base must step without a closure (the gradients are clipped before it runs)."""

    def __init__(self, base_optimizer: torch.optim.Optimizer, max_norm: float = 1.0):
        if not isinstance(base_optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"base_optimizer must be a torch.optim.Optimizer instance, got {base_optimizer!r}"
            )
        if (
            isinstance(max_norm, bool)
            or not isinstance(max_norm, (int, float))
            or not (math.isfinite(max_norm) and max_norm > 0)
        ):
            raise ValueError(f"max_norm must be a finite number > 0, got {max_norm!r}")
        if needs_closure(base_optimizer):
            raise ValueError(
                f"ClipGradNorm's base optimizer must step without a closure; {type(base_optimizer).__name__} "
                "evaluates the loss itself"
            )
        torch.optim.Optimizer.__init__(self, [{"params": []}], {})
        self.base_optimizer = base_optimizer
        self.max_norm = float(max_norm)
        self.defaults = dict(base_optimizer.defaults)
        self.param_groups = base_optimizer.param_groups
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group to the base optimizer."""
        if hasattr(self, "base_optimizer"):
            self.base_optimizer.add_param_group(param_group)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Evaluate ``closure`` (if given), clip the gradients' global norm, take the base's step."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        params = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        if params:
            torch.nn.utils.clip_grad_norm_(params, self.max_norm)
        self.base_optimizer.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero the gradients (through the base optimizer)."""
        self.base_optimizer.zero_grad(set_to_none=set_to_none)

    def train(self) -> None:
        """Forward train mode to a base that has one (Schedule-Free)."""
        if hasattr(self.base_optimizer, "train"):
            self.base_optimizer.train()

    def eval(self) -> None:
        """Forward eval mode to a base that has one (Schedule-Free)."""
        if hasattr(self.base_optimizer, "eval"):
            self.base_optimizer.eval()

    def state_dict(self) -> dict[str, Any]:
        """The base optimizer's state dict plus "clip": max_norm."""
        sd = self.base_optimizer.state_dict()
        sd["clip"] = {"max_norm": self.max_norm}
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict made by :meth:`state_dict` (into a freshly built model's optimizer too)."""
        sd = dict(state_dict)
        own = sd.pop("clip", None)
        if own is None:
            raise ValueError("state_dict has no 'clip' entry; it was not saved by ClipGradNorm.state_dict()")
        self.base_optimizer.load_state_dict(sd)
        self.param_groups = self.base_optimizer.param_groups
        self.max_norm = float(own["max_norm"])


def _clipped_factory(
    params_or_model: ParamsOrModel, base: str = "adamw", max_norm: float = 1.0, **base_hparams: Any
) -> ClipGradNorm:
    if not isinstance(base, str):
        raise ValueError(f"base must be a registered optimizer name, got {base!r}")
    if base.lower() == "clipped":
        raise ValueError("base must be another optimizer than 'clipped'")
    return ClipGradNorm(create(base, params_or_model, **base_hparams), max_norm=max_norm)


register(
    "clipped",
    _clipped_factory,
    "Global gradient-norm clipping (max_norm=1.0) before any base's step (base='adamw'; AlgoPerf's grad_clip)",
)
