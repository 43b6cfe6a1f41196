"""Grokfast-EMA: amplify the slow part of the gradient before any optimizer's step (Lee et al. 2024, Algorithm 2).

"Grokfast: accelerated grokking by amplifying slow gradients" treats the sequence of gradients g_1, g_2, ... as a
signal and adds its low-frequency part back to it. Before every step of the base optimizer:

    h_t = alpha * h_{t-1} + (1 - alpha) * g_t        (h_1 = g_1: the filter starts at the first gradient)
    g~_t = g_t + lamb * h_t                           (written into ``p.grad``; the base optimizer steps on it)

The paper's defaults for algorithmic data are alpha = 0.98, lamb = 2, with Adam and a coupled L2 of 5e-3 as the
base. In the registry: ``create("grokfast", model, base="adam", alpha=0.98, lamb=2.0, lr=..., weight_decay=...)``
wraps any registered optimizer (the remaining hyper-parameters go to the base). ``alpha`` and ``lamb`` are the
filter's, so a base's own ``alpha`` (RMSprop's, ASGD's) cannot be set through the registry; build
``GrokfastEMA(base_instance, ...)`` directly for that.

The filter needs the gradient before the base's update, so the base steps without a closure: bases that evaluate
the closure themselves (``lbfgs``, ``sam``) do not fit. The EMAs are kept per parameter *index* in
``state_dict()`` (under "grokfast"), so a checkpoint loads into a freshly built model and optimizer.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from descentlab.optim.registry import ParamsOrModel, create, needs_closure, register

__all__ = ["GrokfastEMA"]


class GrokfastEMA(torch.optim.Optimizer):
    """Grokfast-EMA filter around an optimizer instance ``base_optimizer`` (exposed as ``.base_optimizer``).

    Each ``step``: ``h <- alpha h + (1 - alpha) g`` (``h`` starts at the first gradient), ``g <- g + lamb h``, then
    the base optimizer's step. Param groups are shared with the base, so LR schedulers may drive either.
    """

    def __init__(self, base_optimizer: torch.optim.Optimizer, alpha: float = 0.98, lamb: float = 2.0):
        if not isinstance(base_optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"base_optimizer must be a torch.optim.Optimizer instance, got {base_optimizer!r}"
            )
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha < 1.0:
            raise ValueError(f"alpha must be in [0, 1), got {alpha!r}")
        if (
            isinstance(lamb, bool)
            or not isinstance(lamb, (int, float))
            or not math.isfinite(lamb)
            or lamb < 0
        ):
            raise ValueError(f"lamb must be a finite number >= 0, got {lamb!r}")
        if needs_closure(base_optimizer):  # the filter steps its base without a closure
            raise ValueError(
                f"Grokfast's base optimizer must step without a closure; {type(base_optimizer).__name__} "
                "evaluates the loss itself (use e.g. adam or adamw)"
            )
        # The Optimizer machinery (hooks, step counting for LR schedulers) without re-adding the base's groups.
        torch.optim.Optimizer.__init__(self, [{"params": []}], {})
        self.base_optimizer = base_optimizer
        self.alpha, self.lamb = float(alpha), float(lamb)
        self.defaults = dict(base_optimizer.defaults)
        self.param_groups = base_optimizer.param_groups
        self.state: dict[Tensor, dict[str, Tensor]] = {}

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group to the base optimizer (its filter starts at its first gradient)."""
        if hasattr(self, "base_optimizer"):  # not the placeholder group of Optimizer.__init__
            self.base_optimizer.add_param_group(param_group)

    def _params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    @torch.no_grad()
    def filter_gradients(self) -> None:
        """Apply the filter to every ``p.grad`` in place (no optimizer step): h updated, g <- g + lamb h."""
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
        """Evaluate ``closure`` (if given) for the gradients, filter them, take the base optimizer's step."""
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
        """Load a state dict made by :meth:`state_dict` (into a freshly built model's optimizer too)."""
        sd = dict(state_dict)
        gf = sd.pop("grokfast", None)
        if gf is None:
            raise ValueError(
                "state_dict has no 'grokfast' entry; it was not saved by GrokfastEMA.state_dict()"
            )
        self.base_optimizer.load_state_dict(sd)
        self.param_groups = self.base_optimizer.param_groups  # torch's load replaces the groups' list
        params = self._params()
        if any(int(i) >= len(params) for i in gf["ema"]):
            raise ValueError(
                f"state_dict has filter state for {len(gf['ema'])} parameters, optimizer has {len(params)}"
            )
        self.alpha, self.lamb = float(gf["alpha"]), float(gf["lamb"])
        self.state = {
            params[int(i)]: {
                "ema": e.detach().to(device=params[int(i)].device, dtype=params[int(i)].dtype).clone()
            }
            for i, e in gf["ema"].items()
        }


def _grokfast_factory(
    params_or_model: ParamsOrModel,
    base: str = "adam",
    alpha: float = 0.98,
    lamb: float = 2.0,
    **base_hparams: Any,
) -> GrokfastEMA:
    if not isinstance(base, str):
        raise ValueError(f"base must be a registered optimizer name, got {base!r}")
    if base.lower() == "grokfast":
        raise ValueError("base must be another optimizer than 'grokfast'")
    return GrokfastEMA(create(base, params_or_model, **base_hparams), alpha=alpha, lamb=lamb)


register(
    "grokfast",
    _grokfast_factory,
    "Grokfast-EMA: h = alpha h + (1-alpha) g, g += lamb h before the base step (Lee et al. 2024); base='adam'",
)
