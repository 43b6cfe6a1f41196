"""Lookahead: k steps forward with a base optimizer, one step back (Zhang, Lucas, Hinton, Ba 2019; seed 003).

Algorithm 2 of seed 003: the fast weights take k base-optimizer steps from the slow weights theta_{t-1}; then
theta_t = theta_{t-1} + alpha (v_k - theta_{t-1}) and the fast weights restart from theta_t.

The inner optimizer's state at a synchronization (``pullback``, the options of pytorch_optimizer's Lookahead):
- "none": kept as it is (the paper's default, "maintain");
- "reset": its momentum (``momentum_buffer`` of SGD, ``exp_avg`` of Adam-type methods) is set to zero;
- "pullback": its momentum is interpolated like the weights, m <- m_slow + alpha (m - m_slow), where m_slow is the
  momentum left by the previous synchronization (zero at the start). Second moments are never touched.

Slow weights are kept per parameter *index* inside ``state_dict()`` (under "lookahead"), so a checkpoint loads into a
freshly built model and optimizer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from descentlab.optim.registry import ParamsOrModel, create, register

__all__ = ["MOMENTUM_KEYS", "PULLBACK_MODES", "Lookahead"]

PULLBACK_MODES = ("none", "reset", "pullback")
MOMENTUM_KEYS = ("momentum_buffer", "exp_avg")


class Lookahead(torch.optim.Optimizer):
    """Lookahead around an optimizer instance ``base_optimizer`` (exposed as ``.base_optimizer``; param groups shared)."""

    def __init__(
        self, base_optimizer: torch.optim.Optimizer, k: int = 5, alpha: float = 0.5, pullback: str = "none"
    ):
        if not isinstance(base_optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"base_optimizer must be a torch.optim.Optimizer instance, got {base_optimizer!r}"
            )
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be an integer >= 1, got {k!r}")
        if not (isinstance(alpha, (int, float)) and 0.0 <= alpha <= 1.0):
            raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
        if pullback not in PULLBACK_MODES:
            raise ValueError(f"pullback must be one of {PULLBACK_MODES}, got {pullback!r}")
        # The Optimizer machinery (hooks, step counting for LR schedulers) without re-adding the base's groups.
        torch.optim.Optimizer.__init__(self, [{"params": []}], {})
        self.base_optimizer = base_optimizer
        self.k, self.alpha, self.pullback = k, float(alpha), pullback
        self.defaults = dict(base_optimizer.defaults)
        self.param_groups = base_optimizer.param_groups
        self.state: dict[
            Tensor, dict[str, Tensor]
        ] = {}  # slow weights (and slow momenta), keyed by parameter
        self.lookahead_step = 0
        for p in self._params():
            self.state[p] = {"slow": p.detach().clone()}

    def _params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def _slow(self, p: Tensor) -> dict[str, Tensor]:
        if p not in self.state:  # a param group added after construction
            self.state[p] = {"slow": p.detach().clone()}
        return self.state[p]

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group to the base optimizer (its slow weights start at the current values)."""
        if not hasattr(self, "base_optimizer"):
            return  # called by Optimizer.__init__ with the placeholder group
        self.base_optimizer.add_param_group(param_group)
        for p in self.base_optimizer.param_groups[-1]["params"]:
            self._slow(p)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One base step; every k-th step pulls the fast weights back: slow += alpha (fast - slow), fast = slow."""
        loss = self.base_optimizer.step(closure) if closure is not None else self.base_optimizer.step()
        self.lookahead_step += 1
        if self.lookahead_step % self.k == 0:
            self._synchronize()
        return loss

    @torch.no_grad()
    def _synchronize(self) -> None:
        for p in self._params():
            slow_state = self._slow(p)
            slow = slow_state["slow"]
            slow.add_(p.detach() - slow, alpha=self.alpha)
            p.copy_(slow)
            if self.pullback == "none":
                continue
            base_state = self.base_optimizer.state.get(p, {})
            for key in MOMENTUM_KEYS:
                buf = base_state.get(key)
                if not isinstance(buf, Tensor):
                    continue
                if self.pullback == "reset":
                    buf.zero_()
                else:
                    slow_key = "slow_" + key
                    slow_mom = slow_state.get(slow_key)
                    if slow_mom is None:
                        slow_mom = slow_state[slow_key] = torch.zeros_like(buf)
                    slow_mom.add_(buf - slow_mom, alpha=self.alpha)
                    buf.copy_(slow_mom)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero the gradients of all parameters (the base optimizer's)."""
        self.base_optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        """The base optimizer's state dict plus "lookahead": step count and slow weights keyed by parameter index."""
        sd = self.base_optimizer.state_dict()
        index = {p: i for i, p in enumerate(self._params())}
        slow = {index[p]: {k: v.clone() for k, v in s.items()} for p, s in self.state.items() if p in index}
        sd["lookahead"] = {
            "step": self.lookahead_step,
            "k": self.k,
            "alpha": self.alpha,
            "pullback": self.pullback,
            "slow": slow,
        }
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a ``state_dict()``; the slow weights are matched to this optimizer's parameters by index."""
        state_dict = dict(state_dict)
        la = state_dict.pop("lookahead", None)
        if la is None:
            raise ValueError(
                "state_dict has no 'lookahead' entry; it was not saved by Lookahead.state_dict()"
            )
        self.base_optimizer.load_state_dict(state_dict)
        self.param_groups = self.base_optimizer.param_groups
        params = self._params()
        if any(i >= len(params) for i in la["slow"]):
            raise ValueError(
                f"state_dict has slow weights for {len(la['slow'])} parameters, optimizer has {len(params)}"
            )
        self.lookahead_step = int(la["step"])
        self.k, self.alpha, self.pullback = la["k"], la["alpha"], la["pullback"]
        self.state = {}
        for i, s in la["slow"].items():
            p = params[i]
            self.state[p] = {k: v.detach().to(device=p.device, dtype=p.dtype).clone() for k, v in s.items()}
        for p in params:
            self._slow(p)


def _lookahead_factory(
    params_or_model: ParamsOrModel,
    base: str = "adam",
    k: int = 5,
    alpha: float = 0.5,
    pullback: str = "none",
    **base_hparams: Any,
) -> Lookahead:
    if not isinstance(base, str):
        raise ValueError(f"base must be a registered optimizer name, got {base!r}")
    return Lookahead(create(base, params_or_model, **base_hparams), k=k, alpha=alpha, pullback=pullback)


register(
    "lookahead",
    _lookahead_factory,
    "Lookahead: k base steps forward, then slow += alpha (fast - slow) (Zhang et al. 2019); base='adam'",
)
