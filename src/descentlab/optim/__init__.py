"""Optimization methods as ``torch.optim.Optimizer``s: torch's classics by name plus descentlab's own methods.

``create(name, params_or_model, **hparams)`` builds any of ``available()``; the classes are importable directly.
Each module registers its names on import.
"""

# ruff: noqa: I001  (import order matters: the registry first, then the modules that register into it)
from __future__ import annotations

from descentlab.optim.registry import available, create, describe, params_of, register, sources
from descentlab.optim import torch_classics, external, collection  # noqa: F401
from descentlab.optim.orthogonalize import orthogonalize
from descentlab.optim.steepest import SteepestDescent
from descentlab.optim.muon import Muon, muon_param_groups
from descentlab.optim.shampoo import Shampoo
from descentlab.optim.sam import SAM
from descentlab.optim.lookahead import Lookahead
from descentlab.optim.averaging import EMA, LAWA, SideAverages
from descentlab.optim.grokfast import GrokfastEMA
from descentlab.optim.cautious import Cautious
from descentlab.optim.clip import ClipGradNorm
from descentlab.optim.algoperf import AlgoPerfNAdamW

__all__ = [
    "AlgoPerfNAdamW",
    "Cautious",
    "ClipGradNorm",
    "EMA",
    "LAWA",
    "SAM",
    "SideAverages",
    "GrokfastEMA",
    "Lookahead",
    "Muon",
    "Shampoo",
    "SteepestDescent",
    "available",
    "create",
    "describe",
    "muon_param_groups",
    "orthogonalize",
    "params_of",
    "register",
    "sources",
]
