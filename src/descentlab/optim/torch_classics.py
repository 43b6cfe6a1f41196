"""torch.optim's classic optimizers in the registry, by lower-case name (``sgd``, ``adam``, ``amsgrad`` ...).

Each factory passes ``params_of(params_or_model)`` and the hyper-parameters to the torch class unchanged; nothing
is re-implemented. The only thing added is a kernel choice measured by ``benchmarks/foreach_fused.py`` (see
``KERNEL_DEFAULTS``): where torch has a faster kernel for the parameters' device, it is the default. A ``foreach``,
``fused`` or ``differentiable`` given by the caller always wins. The update rules and how torch's conventions map
onto the lecture slides are in docs/optimizers.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from descentlab.optim.registry import ParamsOrModel, params_of, register

# Kernel defaults chosen from benchmarks/foreach_fused.py on CPU (1 thread, median of 7; docs/optimizers.md):
# fused was 0.11-0.34x the default step time for adam/adamw, 0.51-0.82x for sgd, 0.37-0.43x for adagrad;
# foreach=True was 0.43-0.74x for radam on CPU but slower or mixed for the rest (torch already picks foreach on
# CUDA by itself). "fused" is applied only where every parameter is a floating-point tensor on a device torch
# has fused kernels for; otherwise torch's own default is kept.
KERNEL_DEFAULTS: dict[str, str] = {
    "sgd": "fused",
    "adam": "fused",
    "adamw": "fused",
    "amsgrad": "fused",
    "adagrad": "fused",
    "radam": "foreach_cpu",
}
_KERNEL_KEYS = ("foreach", "fused", "differentiable")


def _all_params(params: list[Any]) -> list[torch.Tensor]:
    """Flatten a list of tensors or param-group dicts to the tensors."""
    out: list[torch.Tensor] = []
    for item in params:
        if isinstance(item, dict):
            group = item.get("params", [])
            out.extend([group] if isinstance(group, torch.Tensor) else list(group))
        else:
            out.append(item)
    return out


def _fused_ok(tensors: list[torch.Tensor]) -> bool:
    """True when torch's fused kernels accept every tensor (floating point, on a fused-capable device)."""
    from torch.optim.optimizer import _get_fused_kernels_supported_devices

    devices = set(_get_fused_kernels_supported_devices())
    return bool(tensors) and all(
        isinstance(t, torch.Tensor) and torch.is_floating_point(t) and t.device.type in devices
        for t in tensors
    )


def kernel_kwargs(name: str, params: list[Any], hparams: dict[str, Any]) -> dict[str, Any]:
    """The foreach/fused keyword to add for optimizer ``name`` over ``params`` (empty when the caller chose)."""
    if any(k in hparams for k in _KERNEL_KEYS):
        return {}
    choice = KERNEL_DEFAULTS.get(name)
    tensors = _all_params(params)
    if choice == "fused" and _fused_ok(tensors):
        return {"fused": True}
    if choice == "foreach_cpu" and tensors and all(t.device.type == "cpu" for t in tensors):
        return {"foreach": True}
    return {}


def _torch_factory(
    name: str, cls: type[torch.optim.Optimizer], fixed: dict[str, Any] | None = None
) -> Callable[..., torch.optim.Optimizer]:
    fixed = dict(fixed or {})

    def factory(params_or_model: ParamsOrModel, **hparams: Any) -> torch.optim.Optimizer:
        clash = sorted(set(hparams) & set(fixed))
        if clash:
            raise ValueError(
                f"optimizer {name!r} fixes {clash} = {[fixed[k] for k in clash]}; use 'adam' instead"
            )
        params = params_of(params_or_model)
        kernel = kernel_kwargs(name, params, hparams)
        if kernel:
            try:
                return cls(params, **fixed, **hparams, **kernel)
            except (
                RuntimeError,
                ValueError,
                TypeError,
            ) as exc:  # a kernel torch refuses: fall back to its default
                if not any(k in str(exc) for k in kernel):
                    raise
        return cls(params, **fixed, **hparams)

    factory.__name__ = f"create_{name}"
    factory.__doc__ = (
        f"Build torch.optim.{cls.__name__}{' with ' + str(fixed) if fixed else ''} over a model or params."
    )
    return factory


class Rprop(torch.optim.Rprop):
    """``torch.optim.Rprop`` whose param groups with lr 0 do not move (the registry's convention: lr 0 freezes a
    group). torch's Rprop only seeds its per-weight step sizes from lr and clamps them to at least
    ``step_sizes[0]`` (1e-6), so a group with lr 0 would still move; here such a group's gradients are hidden from
    the step (its parameters and state stay as they are). Every other group steps exactly as in torch."""

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        """One Rprop step of the groups whose lr is not 0 (the closure, if any, is evaluated first)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        hidden = [(p, p.grad) for g in self.param_groups if g["lr"] == 0 for p in g["params"]]
        for p, _ in hidden:
            p.grad = None  # torch's Rprop skips parameters without a gradient
        try:
            super().step()
        finally:
            for p, grad in hidden:
                p.grad = grad
        return loss


_O = torch.optim
CLASSICS: dict[str, tuple[type[torch.optim.Optimizer], dict[str, Any], str]] = {
    "sgd": (_O.SGD, {}, "SGD, heavy-ball or Nesterov momentum (torch.optim.SGD; momentum=0 by default)"),
    "adagrad": (_O.Adagrad, {}, "AdaGrad: step / sqrt(sum of squared gradients) (Duchi et al. 2011)"),
    "rmsprop": (_O.RMSprop, {}, "RMSProp: step / sqrt(EMA of squared gradients) (Tieleman & Hinton 2012)"),
    "adam": (_O.Adam, {}, "Adam: bias-corrected EMAs of g and g^2 (Kingma & Ba 2015)"),
    "adamw": (
        _O.AdamW,
        {},
        "AdamW: Adam with decoupled weight decay x -= lr*wd*x (Loshchilov & Hutter 2019)",
    ),
    "amsgrad": (_O.Adam, {"amsgrad": True}, "AMSGrad: Adam with the running max of v (Reddi et al. 2018)"),
    "adadelta": (_O.Adadelta, {}, "Adadelta: RMS of updates / RMS of gradients, lr=1 (Zeiler 2012)"),
    "adamax": (_O.Adamax, {}, "Adamax: Adam under the infinity norm (Kingma & Ba 2015)"),
    "nadam": (_O.NAdam, {}, "NAdam: Adam with Nesterov momentum (Dozat 2016)"),
    "radam": (_O.RAdam, {}, "RAdam: Adam with rectified variance warm-up (Liu et al. 2020)"),
    "asgd": (_O.ASGD, {}, "ASGD: SGD with Polyak-Ruppert iterate averaging (torch.optim.ASGD)"),
    "rprop": (
        Rprop,
        {},
        "Rprop: sign-based steps with per-weight adaptive sizes (Riedmiller & Braun 1993)",
    ),
    "lbfgs": (_O.LBFGS, {}, "L-BFGS quasi-Newton; step(closure) is required (torch.optim.LBFGS)"),
    "adafactor": (_O.Adafactor, {}, "Adafactor: factored second moments, lr=1e-2 (Shazeer & Stern 2018)"),
}

for _name, (_cls, _fixed, _description) in CLASSICS.items():
    register(_name, _torch_factory(_name, _cls, _fixed), _description, source="torch")
