"""AlgoPerf's baseline update rules (Dahl et al. 2023; mlcommons/algorithmic-efficiency, ``paper_baselines``).

``AlgoPerfNAdamW`` is the NAdamW of AlgoPerf's baseline submission, which is *not* ``torch.optim.NAdam`` with
decoupled weight decay (torch's NAdam has Dozat's momentum schedule and another bias correction). Per parameter,
with the scheduled learning rate ``lr`` at step ``t`` (1-based)::

    p <- p * (1 - lr * weight_decay)                       # decoupled decay, scaled by the scheduled lr
    m <- beta1 m + (1 - beta1) g
    v <- beta2 v + (1 - beta2) g^2
    m_nesterov = beta1 m + (1 - beta1) g                   # the look-ahead first moment (NAdam, Dozat 2016)
    p <- p - lr / (1 - beta1^t) * m_nesterov / (sqrt(v / (1 - beta2^t)) + eps)

With ``nesterov=False`` the update uses ``m`` instead of ``m_nesterov``: AdamW exactly as ``torch.optim.AdamW``
computes it, which is what AlgoPerf's PyTorch AdamW baseline runs. Registered as ``algoperf_nadamw`` and
``algoperf_adamw``; ``tests/optim/test_algoperf.py`` checks both against a plain transcription of the reference
update over many steps on the same gradients.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from descentlab.optim.cautious import cautious_mask
from descentlab.optim.registry import ParamsOrModel, check_number, params_of, register

__all__ = ["AlgoPerfNAdamW", "algoperf_update"]


def algoperf_update(
    p: torch.Tensor,
    g: torch.Tensor,
    state: dict[str, Any],
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    nesterov: bool,
    cautious_floor: float | None = None,
) -> None:
    """One in-place AlgoPerf NAdamW (``nesterov``) or AdamW update of ``p`` with gradient ``g`` (module docstring);
    ``state`` holds step, exp_avg and exp_avg_sq (created on the first call, the keys of torch's AdamW). Shared by
    :class:`AlgoPerfNAdamW` and the AdamW side of :class:`~descentlab.optim.Muon` (``adam_nesterov``).
    ``cautious_floor``: the cautious mask inside the update (AlgoPerf's cautious NAdamW submission): the numerator
    times 1[numerator * g > 0] / max(mean of that mask, cautious_floor); the decay stays unmasked."""
    if not state:
        state["step"] = torch.tensor(0.0)
        state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    state["step"] += 1
    t = float(state["step"])
    m, v = state["exp_avg"], state["exp_avg_sq"]
    p.mul_(1.0 - lr * weight_decay)
    m.lerp_(g, 1.0 - beta1)
    v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
    numerator = m.lerp(g, 1.0 - beta1) if nesterov else m
    if cautious_floor is not None:
        numerator = numerator * cautious_mask(numerator, g, floor=cautious_floor)
    denom = (v.sqrt() / math.sqrt(1.0 - beta2**t)).add_(eps)
    p.addcdiv_(numerator, denom, value=-lr / (1.0 - beta1**t))


class AlgoPerfNAdamW(torch.optim.Optimizer):
    """AlgoPerf's NAdamW baseline (``nesterov=True``) or AdamW (``nesterov=False``); see the module docstring.

    Hyper-parameters: ``lr`` > 0, ``betas`` in [0, 1) each, ``eps`` >= 0, ``weight_decay`` >= 0 (decoupled,
    multiplied by the current lr as AlgoPerf does). ValueError naming a bad value."""

    def __init__(
        self,
        params: ParamsOrModel,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        nesterov: bool = True,
        cautious_floor: float | None = None,
    ):
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        b1 = check_number("betas[0]", betas[0], 0.0, 1.0, open_high=True)
        b2 = check_number("betas[1]", betas[1], 0.0, 1.0, open_high=True)
        eps = check_number("eps", eps, 0.0)
        weight_decay = check_number("weight_decay", weight_decay, 0.0)
        if not isinstance(nesterov, bool):
            raise TypeError(f"nesterov must be a bool, got {nesterov!r}")
        if cautious_floor is not None:
            cautious_floor = check_number("cautious_floor", cautious_floor, 0.0, 1.0)
            if cautious_floor == 0:
                raise ValueError("cautious_floor must be > 0 (it bounds the mask's rescaling), got 0")
        defaults = {
            "lr": lr,
            "betas": (b1, b2),
            "eps": eps,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "cautious_floor": cautious_floor,
        }
        super().__init__(params_of(params), defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter with a gradient; returns the closure's loss (if given)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
            lr = float(lr)
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("AlgoPerfNAdamW does not support sparse gradients")
                algoperf_update(p, p.grad, self.state[p], lr, beta1, beta2, eps, wd, group["nesterov"],
                                group.get("cautious_floor"))  # fmt: skip
        return loss


def _factory(nesterov: bool) -> Callable[..., torch.optim.Optimizer]:
    def make(params_or_model: ParamsOrModel, **hparams: Any) -> torch.optim.Optimizer:
        if "nesterov" in hparams:
            raise ValueError(
                f"nesterov is fixed by the registry name (here {nesterov}); use the class to change it"
            )
        return AlgoPerfNAdamW(params_of(params_or_model), nesterov=nesterov, **hparams)

    return make


register("algoperf_nadamw", _factory(True), "AlgoPerf's NAdamW baseline update (not torch's NAdam)")
register(
    "algoperf_adamw", _factory(False), "AlgoPerf's AdamW baseline update (decay by lr * wd, = torch AdamW)"
)
