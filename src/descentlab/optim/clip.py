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

from descentlab.optim.registry import ParamsOrModel, create, register
from descentlab.optim.wrapping import GroupSharingWrapper

__all__ = ["ClipGradNorm"]


class ClipGradNorm(GroupSharingWrapper):
    """Clip the global gradient norm to ``max_norm`` (> 0), then step ``base_optimizer`` (``.base_optimizer``).

    Param groups are shared with the base, so LR schedulers may drive either; the state dict is the base's plus a
    ``"clip"`` entry. The base must step without a closure (the gradients are clipped before it runs)."""

    STATE_KEY = "clip"

    def __init__(self, base_optimizer: torch.optim.Optimizer, max_norm: float = 1.0):
        if (
            isinstance(max_norm, bool)
            or not isinstance(max_norm, (int, float))
            or not (math.isfinite(max_norm) and max_norm > 0)
        ):
            raise ValueError(f"max_norm must be a finite number > 0, got {max_norm!r}")
        super().__init__(base_optimizer)
        self.max_norm = float(max_norm)

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

    def _own_state(self) -> dict[str, Any]:
        return {"max_norm": self.max_norm}

    def _load_own_state(self, own: dict[str, Any]) -> None:
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
