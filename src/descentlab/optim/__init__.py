"""Optimization methods as ``torch.optim.Optimizer``s: torch's classics by name plus descentlab's own methods."""

from __future__ import annotations

from descentlab.optim.registry import available, create, describe, params_of, register
from descentlab.optim.orthogonalize import orthogonalize  # noqa: F401
from descentlab.optim.muon import Muon, muon_param_groups  # noqa: F401
from descentlab.optim.steepest import SteepestDescent  # noqa: F401

# Each module registers its names on import.
from descentlab.optim import torch_classics as _torch_classics  # noqa: E402,F401,I001
from descentlab.optim import orthogonalize as _orthogonalize_module  # noqa: E402,F401
from descentlab.optim import steepest as _steepest  # noqa: E402,F401
from descentlab.optim import muon as _muon  # noqa: E402,F401
from descentlab.optim import shampoo as _shampoo  # noqa: E402,F401
from descentlab.optim import sam as _sam  # noqa: E402,F401
from descentlab.optim import lookahead as _lookahead  # noqa: E402,F401
from descentlab.optim import external as _external  # noqa: E402,F401

__all__ = ["available", "create", "describe", "params_of", "register"]
