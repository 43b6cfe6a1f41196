"""Cautious optimizers: keep only the coordinates of an update that agree in sign with the gradient (Liang et al.
2024, "Cautious Optimizers: Improving Training with One Line of Code"), around any base optimizer.

Per parameter tensor, with u_t the base optimizer's update direction (the step is ``x <- x - eta u_t``) and g_t the
gradient:

    phi_t = 1[u_t * g_t > 0]                                  (elementwise)
    x_{t+1} = x_t - eta * u_t * phi_t * numel / (sum(phi_t) + xi)     (xi = 1 in the paper)
    x_{t+1} <- x_{t+1} * (1 - eta * weight_decay)              (decoupled, unmasked, after the step: C-AdamW)

The wrapper does not look inside the base: it takes the base's step ``delta = x_after - x_before`` (= -eta u_t), so
any registered optimizer can be made cautious (``create("cautious", model, base="adamw", lr=...)``). The base is
built with ``weight_decay=0`` and the decay is the wrapper's, as in the paper's C-AdamW, where the mask applies to
the Adam part only. ``delta`` is a difference of two parameter values, so the masked step carries a relative
rounding error of about ulp(x) / |delta| (float32: 1e-4 for a step 1e-3 of |x|); it is exact in float64. During
a step the wrapper holds one copy of the parameters and of the gradients (the memory of two more parameter sets).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from descentlab.optim.registry import ParamsOrModel, create, register
from descentlab.optim.wrapping import GroupSharingWrapper

__all__ = ["Cautious", "cautious_mask"]


def cautious_mask(update: Tensor, grad: Tensor, xi: float = 1.0, floor: float | None = None) -> Tensor:
    """The paper's scaled mask: 1[update * grad > 0] * numel / (count + xi); ``update`` is the descent direction.
    With ``floor`` the scale is 1 / max(mean(mask), floor) instead (AlgoPerf's cautious NAdamW submission, 1e-3)."""
    mask = (update * grad > 0).to(update.dtype)
    if floor is not None:
        return mask / max(float(mask.mean()), floor)
    return mask * (mask.numel() / (float(mask.sum()) + xi))


class Cautious(GroupSharingWrapper):
    """The cautious mask around an optimizer instance ``base_optimizer`` (exposed as ``.base_optimizer``).

    ``xi``: the mask's normalizer offset (paper: 1; 0 makes an all-ones mask exactly the base's step);
    ``weight_decay``: decoupled decay x <- x (1 - lr wd), unmasked (give the base none): after the masked step
    (``decay_order="after"``, the paper's C-AdamW) or on the weights before it (``"before"``: x <- x (1 - lr wd) -
    lr u phi, the simultaneous form of an optax chain, as AlgoPerf's cautious NAdamW submission);
    ``mask_floor``: scale the mask by 1 / max(mean, mask_floor) instead of numel / (count + xi) (that submission: 1e-3).
    Param groups are shared with the base, so LR schedulers may drive either.
    """

    STATE_KEY = "cautious"
    CLOSURE_HINT = " (use e.g. adamw or lion)"

    def __init__(
        self,
        base_optimizer: torch.optim.Optimizer,
        xi: float = 1.0,
        weight_decay: float = 0.0,
        mask_floor: float | None = None,
        decay_order: str = "after",
    ):
        for label, value in (("xi", xi), ("weight_decay", weight_decay)):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value < 0
            ):
                raise ValueError(f"{label} must be a finite number >= 0, got {value!r}")
        if mask_floor is not None and (
            isinstance(mask_floor, bool)
            or not isinstance(mask_floor, (int, float))
            or not 0 < mask_floor <= 1
        ):
            raise ValueError(f"mask_floor must be None or a number in (0, 1], got {mask_floor!r}")
        if decay_order not in ("after", "before"):
            raise ValueError(f"decay_order must be 'after' or 'before', got {decay_order!r}")
        super().__init__(base_optimizer)
        self.xi, self.weight_decay = float(xi), float(weight_decay)
        self.mask_floor = None if mask_floor is None else float(mask_floor)
        self.decay_order = decay_order

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Evaluate ``closure`` (if given), take the base's step, keep its sign-agreeing coordinates, rescale."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        items = [(p, group) for group in self.param_groups for p in group["params"] if p.grad is not None]
        before = [p.detach().clone() for p, _ in items]
        grads = [p.grad.detach().clone() for p, _ in items]  # some bases modify p.grad in place
        self.base_optimizer.step()
        for (p, group), x0, g in zip(items, before, grads):
            delta = p.detach() - x0
            mask = cautious_mask(-delta, g, self.xi, self.mask_floor)
            if self.weight_decay and self.decay_order == "before":
                x0.mul_(1.0 - float(group["lr"]) * self.weight_decay)
            p.copy_(x0 + delta * mask)
            if self.weight_decay and self.decay_order == "after":
                p.mul_(1.0 - float(group["lr"]) * self.weight_decay)
        return loss

    def _own_state(self) -> dict[str, Any]:
        return {"xi": self.xi, "weight_decay": self.weight_decay, "mask_floor": self.mask_floor,
                "decay_order": self.decay_order}  # fmt: skip

    def _load_own_state(self, own: dict[str, Any]) -> None:
        self.xi, self.weight_decay = float(own["xi"]), float(own["weight_decay"])
        self.mask_floor, self.decay_order = own.get("mask_floor"), own.get("decay_order", "after")


def _cautious_factory(
    params_or_model: ParamsOrModel,
    base: str = "adamw",
    xi: float = 1.0,
    weight_decay: float = 0.0,
    mask_floor: float | None = None,
    decay_order: str = "after",
    **base_hparams: Any,
) -> Cautious:
    if not isinstance(base, str):
        raise ValueError(f"base must be a registered optimizer name, got {base!r}")
    if base.lower() == "cautious":
        raise ValueError("base must be another optimizer than 'cautious'")
    if "weight_decay" in base_hparams:
        raise ValueError("give weight_decay to the cautious wrapper, not the base")
    try:
        inner = create(base, params_or_model, weight_decay=0.0, **base_hparams)
    except ValueError as exc:
        if "weight_decay" not in str(exc):
            raise
        inner = create(base, params_or_model, **base_hparams)
    return Cautious(inner, xi=xi, weight_decay=weight_decay, mask_floor=mask_floor, decay_order=decay_order)


register(
    "cautious",
    _cautious_factory,
    "Cautious mask around any base (base='adamw'): keep update coords agreeing with g, rescale (Liang et al. 2024)",
)
