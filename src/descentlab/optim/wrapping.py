"""The plumbing of an optimizer that wraps another one and shares its param groups (``cautious``, ``clipped``).

A subclass sets ``STATE_KEY`` and ``CLOSURE_HINT``, implements ``step`` and the two hooks of its own settings
(``_own_state`` / ``_load_own_state``); adding groups, zeroing gradients, train/eval modes and the state dict (the
base's, plus one entry under ``STATE_KEY``) go through the base optimizer.
"""

from __future__ import annotations

from typing import Any

import torch

from descentlab.optim.registry import needs_closure

__all__ = ["GroupSharingWrapper"]


class GroupSharingWrapper(torch.optim.Optimizer):
    """An optimizer around the instance ``base_optimizer`` (exposed as ``.base_optimizer``) whose param groups are the
    base's, so LR schedulers may drive either. The base must step without a closure (the wrapper acts around its
    step)."""

    STATE_KEY = ""
    CLOSURE_HINT = ""

    def __init__(self, base_optimizer: torch.optim.Optimizer):
        name = type(self).__name__
        if not isinstance(base_optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"base_optimizer must be a torch.optim.Optimizer instance, got {base_optimizer!r}"
            )
        if needs_closure(base_optimizer):
            raise ValueError(
                f"{name}'s base optimizer must step without a closure; {type(base_optimizer).__name__} "
                f"evaluates the loss itself{self.CLOSURE_HINT}"
            )
        torch.optim.Optimizer.__init__(self, [{"params": []}], {})
        self.base_optimizer = base_optimizer
        self.defaults = dict(base_optimizer.defaults)
        self.param_groups = base_optimizer.param_groups
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group to the base optimizer."""
        if hasattr(self, "base_optimizer"):
            self.base_optimizer.add_param_group(param_group)

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

    def _own_state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load_own_state(self, own: dict[str, Any]) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """The base optimizer's state dict plus this wrapper's settings under ``STATE_KEY``."""
        sd = self.base_optimizer.state_dict()
        sd[self.STATE_KEY] = self._own_state()
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict made by :meth:`state_dict` (into a freshly built model's optimizer too)."""
        sd = dict(state_dict)
        own = sd.pop(self.STATE_KEY, None)
        if own is None:
            raise ValueError(
                f"state_dict has no {self.STATE_KEY!r} entry; it was not saved by {type(self).__name__}.state_dict()"
            )
        self.base_optimizer.load_state_dict(sd)
        self.param_groups = self.base_optimizer.param_groups
        self._load_own_state(own)
