"""pytorch_optimizer's 2024-26 methods in the registry, each behind a parity test against its authors' algorithm.

``pytorch_optimizer`` (Kim, Apache-2.0; pinned at 4.1.0) ships ~130 optimizers. The registry exposes the ones the
lab compares, under these names (source ``pytorch_optimizer``):

    soap        SOAP: Adam in the eigenbasis of Shampoo's preconditioner (Vyas et al. 2024)
    ademamix    AdEMAMix: Adam plus a slow EMA of gradients (Pagliardini et al. 2024); decoupled decay by default
    mars        MARS-AdamW: variance-reduced gradient correction + AdamW (Yuan et al. 2024)
    lion        Lion: sign of an interpolated momentum (Chen et al. 2023)
    adopt       ADOPT: momentum of g / sqrt(v_{t-1}) (Taniguchi et al. 2024)
    scion       Scion: momentum + a norm-ball LMO per layer (Pethick et al. 2025)
    prodigy     Prodigy: Adam with a learned distance estimate d, lr = 1 (Mishchenko & Defazio 2024)
    dadapt_adam D-Adaptation Adam, lr = 1 (Defazio & Mishchenko 2023)
    po_normuon  pytorch_optimizer's NorMuon (the lab's own is ``normuon``, an option of descentlab's Muon)
    po_adamuon  pytorch_optimizer's AdaMuon, which omits the paper's sign step (the lab's ``adamuon`` has it)

Name clashes are resolved in the lab's favour and not exposed from pytorch_optimizer: ``muon``, ``shampoo``,
``sam``, ``lookahead``, ``grokfast``, ``ema`` and ``lawa`` are descentlab's, ``schedulefree_*`` come from the authors'
``schedulefree`` package, ``sgd``/``adam``/``adamw``/``adafactor``... from torch.

Where pytorch_optimizer departs from the paper or from the registry's contract, the factory corrects it and
docs/optimizers.md records what differs (tests/optim/test_parity_external.py holds the certificates):
- every factory refuses hyper-parameters the class does not take (pytorch_optimizer swallows unknown keywords);
- ``ademamix`` defaults to decoupled weight decay (the paper's ``- eta * lambda * theta``; the library's default is
  coupled L2);
- ``mars`` drives its 1-D parameters (AdamW side) with ``lr`` and ``weight_decay`` unless ``lr_1d`` /
  ``weight_decay_1d`` are given (the library fixes them at 3e-3 and 0.1, so lr = 0 did not freeze a model);
- ``prodigy`` / ``dadapt_adam`` read one lr for all groups; here a group at lr 0 is frozen (left out of the step and
  of the d estimate, as the authors' prodigyopt does) and other lrs must agree (ValueError otherwise);
- ``prodigy`` with ``weight_decouple=False`` adds the L2 term to the gradient before the step (the library adds it
  after the moments have read the gradient: coupled decay was a no-op);
- ``adopt`` clips at t^(1/4) for the t-th move and decays (decoupled) from the first move, as the authors' code;
  the library clips at (t + 1)^(1/4) and decays once more at the initializing call;
- ``scion`` takes ``norm_type`` by name ("auto", "spectral", "sign", "bias", "col", "row", "spectral_conv").
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from descentlab.optim.registry import ParamsOrModel, params_of, register

__all__ = ["FrozenGroupsMixin", "PO_VERSION", "check_keywords"]

PO_VERSION = "4.1.0"  # the version the parity certificates were made against (pyproject pins it)
SOURCE = "pytorch_optimizer"


def check_keywords(name: str, cls: type, hparams: dict[str, Any], extra: tuple[str, ...] = ()) -> None:
    """ValueError naming the hyper-parameters ``cls.__init__`` does not take (pytorch_optimizer's classes accept
    ``**kwargs`` and would silently store a typo)."""
    sig = inspect.signature(cls.__init__)
    known = {k for k, p in sig.parameters.items() if p.kind is not inspect.Parameter.VAR_KEYWORD} - {"self"}
    unknown = sorted(set(hparams) - known - set(extra))
    if unknown:
        raise ValueError(
            f"optimizer {name!r}: unexpected keyword argument(s) {unknown} (accepted: {sorted(known - {'params'})})"
        )


class FrozenGroupsMixin:
    """For optimizers that read one lr (param_groups[0]) for every group (Prodigy, D-Adaptation): a group at lr 0
    is taken out of the step (frozen, and out of the d estimate); the others must share one lr."""

    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # noqa: D102
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        groups = self.param_groups
        active = [g for g in groups if float(g["lr"]) != 0.0]
        lrs = sorted({float(g["lr"]) for g in active})
        if len(lrs) > 1:
            raise ValueError(
                f"{type(self).__name__} uses one lr for all param groups; got lrs {lrs} (lr 0 freezes a group)"
            )
        if not active:
            return loss
        self.param_groups = active
        try:
            super().step()
        finally:
            self.param_groups = groups
        shared = {
            k: active[0][k]
            for k in ("d", "d_max", "d_numerator", "d_hat", "d_de_nom", "step")
            if k in active[0]
        }
        for g in groups:
            if float(g["lr"]) == 0.0:
                g.update(shared)  # one estimate in every group: a later unfreeze starts from it
        return loss


class CoupledDecayFirstMixin:
    """Coupled (L2) decay added to the gradient before the step. pytorch_optimizer's Prodigy applies it after the
    moments and the d estimate have read the gradient, so ``weight_decouple=False`` decays nothing (the authors'
    prodigyopt adds it first)."""

    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # noqa: D102
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        held = []
        for g in self.param_groups:
            wd = g.get("weight_decay", 0.0)
            if wd and not g.get("weight_decouple", True):
                for p in g["params"]:
                    if p.grad is not None:
                        p.grad.add_(p.detach(), alpha=wd)
                held.append((g, wd))
                g["weight_decay"] = 0.0
        try:
            super().step()
        finally:
            for g, wd in held:
                g["weight_decay"] = wd
        return loss


def _po(class_name: str) -> type:
    import pytorch_optimizer

    return getattr(pytorch_optimizer, class_name)


def _simple(name: str, class_name: str, fixed_defaults: dict[str, Any] | None = None) -> Callable[..., Any]:
    defaults = dict(fixed_defaults or {})

    def factory(params_or_model: ParamsOrModel, **hparams: Any) -> torch.optim.Optimizer:
        cls = _po(class_name)
        check_keywords(name, cls, hparams)
        return cls(params_of(params_or_model), **{**defaults, **hparams})

    factory.__name__ = f"create_{name}"
    factory.__doc__ = f"Build pytorch_optimizer.{class_name} over a model or params."
    return factory


def _create_mars(params_or_model: ParamsOrModel, **hparams: Any) -> torch.optim.Optimizer:
    """MARS (mars_type 'adamw' by default); 1-D parameters follow ``lr`` and ``weight_decay`` unless set apart."""
    cls = _po("MARS")
    check_keywords("mars", cls, hparams)
    hp = dict(hparams)
    hp.setdefault("lr", 3e-3)
    hp.setdefault("lr_1d", hp["lr"])
    hp.setdefault("weight_decay_1d", hp.get("weight_decay", 0.0))
    return cls(params_of(params_or_model), **hp)


def _official_clip(step: int) -> float:
    """ADOPT's clip c_t = t^(1/4), t counting the moves (the library calls it with the call count, t + 1)."""
    return (step - 1) ** 0.25


_ADOPT_CLASS: list[type] = []


def _adopt_class() -> type:
    """pytorch_optimizer's ADOPT without the decoupled decay it applies at the initializing call (the authors'
    code decays from the first move on)."""
    if not _ADOPT_CLASS:
        base = _po("ADOPT")

        class ADOPTOfficial(base):  # type: ignore[misc, valid-type]
            def step(self, closure: Callable[[], Any] | None = None) -> Any:
                held = [(g, g["weight_decay"]) for g in self.param_groups
                        if g.get("step", 0) == 0 and g.get("weight_decouple")]  # fmt: skip
                for g, _ in held:
                    g["weight_decay"] = 0.0
                try:
                    return super().step(closure)
                finally:
                    for g, wd in held:
                        g["weight_decay"] = wd

        ADOPTOfficial.__doc__ = base.__doc__
        _ADOPT_CLASS.append(ADOPTOfficial)
    return _ADOPT_CLASS[0]


def _create_adopt(params_or_model: ParamsOrModel, **hparams: Any) -> torch.optim.Optimizer:
    """ADOPT with the authors' clip index (c = t^(1/4) at the t-th move) and decay schedule."""
    check_keywords("adopt", _po("ADOPT"), hparams)
    hp = dict(hparams)
    hp.setdefault("clip_lambda", _official_clip)
    return _adopt_class()(params_of(params_or_model), **hp)


_LMO_NAMES = {
    "none": 0,
    "auto": 1,
    "spectral": 2,
    "spectral_conv": 3,
    "sign": 4,
    "bias": 5,
    "col": 6,
    "row": 7,
}


def _create_scion(params_or_model: ParamsOrModel, **hparams: Any) -> torch.optim.Optimizer:
    """SCION with ``norm_type`` given by name (or LMONorm value); ``momentum`` is the weight of the new gradient."""
    cls = _po("SCION")
    check_keywords("scion", cls, hparams)
    hp = dict(hparams)
    params = params_of(params_or_model)
    norm = hp.pop("norm_type", "auto")
    if isinstance(norm, str):
        if norm.lower() not in _LMO_NAMES:
            raise ValueError(f"scion: norm_type must be one of {sorted(_LMO_NAMES)}, got {norm!r}")
        norm = _LMO_NAMES[norm.lower()]
    elif isinstance(norm, bool) or not isinstance(norm, int) or norm not in _LMO_NAMES.values():
        raise ValueError(f"scion: norm_type must be one of {sorted(_LMO_NAMES)}, got {norm!r}")
    for group in params:
        if isinstance(group, dict) and isinstance(group.get("norm_type"), str):
            group["norm_type"] = _LMO_NAMES[group["norm_type"].lower()]
    return cls(params, norm_type=norm, **hp)


def _frozen_groups_class(class_name: str) -> type:
    base = _po(class_name)
    mixins = (FrozenGroupsMixin, CoupledDecayFirstMixin) if class_name == "Prodigy" else (FrozenGroupsMixin,)
    return type(f"{class_name}FrozenGroups", (*mixins, base), {"__doc__": base.__doc__})


_FROZEN_CLASSES: dict[str, type] = {}


def _frozen_factory(name: str, class_name: str) -> Callable[..., Any]:
    def factory(params_or_model: ParamsOrModel, **hparams: Any) -> torch.optim.Optimizer:
        base = _po(class_name)
        check_keywords(name, base, hparams)
        if class_name not in _FROZEN_CLASSES:
            _FROZEN_CLASSES[class_name] = _frozen_groups_class(class_name)
        return _FROZEN_CLASSES[class_name](params_of(params_or_model), **hparams)

    factory.__name__ = f"create_{name}"
    factory.__doc__ = f"Build pytorch_optimizer.{class_name} (lr-0 groups frozen) over a model or params."
    return factory


def _muon_family_groups(params_or_model: ParamsOrModel, adamw_lr: float) -> list[dict[str, Any]]:
    """``use_muon`` groups for pytorch_optimizer's Muon family: hidden matrices -> Muon side, the rest (1-D, the
    head, embeddings; for plain params: every <2-D tensor) -> its AdamW side at ``adamw_lr``."""
    from descentlab.optim.muon import muon_param_groups

    if isinstance(params_or_model, nn.Module):
        groups = muon_param_groups(params_or_model, lr=adamw_lr)
        for g in groups:
            if not g["use_muon"]:
                g["eps"] = g.pop("adam_eps")
        return groups
    items = params_of(params_or_model)
    if items and isinstance(items[0], dict):
        out = []
        for group in items:
            if "use_muon" in group:
                out.append(dict(group))
                continue
            ps = [group["params"]] if isinstance(group["params"], torch.Tensor) else list(group["params"])
            rest = {k: v for k, v in group.items() if k != "params"}
            mats, vecs = [p for p in ps if p.ndim >= 2], [p for p in ps if p.ndim < 2]
            if mats:
                out.append({**rest, "params": mats, "use_muon": True})
            if vecs:
                out.append({**rest, "params": vecs, "use_muon": False})
        return out
    mats, vecs = [p for p in items if p.ndim >= 2], [p for p in items if p.ndim < 2]
    groups = [{"params": mats, "use_muon": True}] if mats else []
    if vecs:
        groups.append({"params": vecs, "use_muon": False, "lr": adamw_lr})
    return groups


def _muon_family(name: str, class_name: str) -> Callable[..., Any]:
    def factory(params_or_model: ParamsOrModel, **hparams: Any) -> torch.optim.Optimizer:
        cls = _po(class_name)
        check_keywords(name, cls, hparams)
        hp = dict(hparams)
        lr = hp.setdefault("lr", 2e-2)
        adamw_lr = hp.setdefault("adamw_lr", 3e-4 * lr / 2e-2)  # scales with lr, so lr -> 0 freezes the model
        return cls(_muon_family_groups(params_or_model, adamw_lr), **hp)

    factory.__name__ = f"create_{name}"
    factory.__doc__ = (
        f"Build pytorch_optimizer.{class_name} (hidden matrices on its Muon side) over a model or params."
    )
    return factory


def _register(name: str, factory: Callable[..., Any], description: str) -> None:
    """Register with source 'pytorch_optimizer'; the library's own exception types for bad values (negative lr or
    step, empty parameters) become ValueError naming the optimizer and the value."""

    @functools.wraps(factory)
    def checked(params_or_model: ParamsOrModel, **hparams: Any) -> torch.optim.Optimizer:
        from pytorch_optimizer.base import exception as po_exc

        try:
            return factory(params_or_model, **hparams)
        except (po_exc.NegativeLRError, po_exc.NegativeStepError, po_exc.ZeroParameterSizeError) as exc:
            raise ValueError(f"optimizer {name!r}: {exc}") from None

    register(name, checked, description, source=SOURCE)


_register(
    "soap",
    _simple("soap", "SOAP"),
    "SOAP: Adam in Shampoo's eigenbasis, lr=3e-3, betas=(0.95, 0.95) (Vyas et al. 2024)",
)
_register(
    "ademamix",
    _simple("ademamix", "AdEMAMix", {"weight_decouple": True}),
    "AdEMAMix: Adam + alpha * slow EMA (beta3=0.9999, alpha=5), decoupled decay (Pagliardini et al. 2024)",
)
_register(
    "mars",
    _create_mars,
    "MARS-AdamW: c = g + gamma b1/(1-b1) (g - g_prev), clipped, into AdamW (Yuan et al. 2024)",
)
_register(
    "lion",
    _simple("lion", "Lion"),
    "Lion: sign(b1 m + (1-b1) g), lr=1e-4, betas=(0.9, 0.99) (Chen et al. 2023)",
)
_register(
    "adopt",
    _create_adopt,
    "ADOPT: momentum of clip(g / sqrt(v_prev)), v after the step (Taniguchi et al. 2024)",
)
_register(
    "scion",
    _create_scion,
    "Scion: momentum + per-layer norm-ball LMO (spectral / bias RMS), lr=1e-3 (Pethick et al. 2025)",
)
_register(
    "prodigy",
    _frozen_factory("prodigy", "Prodigy"),
    "Prodigy: Adam with a learned distance d, lr=1 (Mishchenko & Defazio 2024)",
)
_register(
    "dadapt_adam",
    _frozen_factory("dadapt_adam", "DAdaptAdam"),
    "D-Adaptation Adam: lr-free distance estimate, lr=1 (Defazio & Mishchenko 2023)",
)
_register(
    "po_normuon",
    _muon_family("po_normuon", "NorMuon"),
    "pytorch_optimizer's NorMuon (see 'normuon' for the lab's)",
)
_register(
    "po_adamuon",
    _muon_family("po_adamuon", "AdaMuon"),
    "pytorch_optimizer's AdaMuon: no sign step, unlike the paper (see 'adamuon' for the lab's)",
)
_register(
    "sgdw",
    _simple("sgdw", "SGDW"),
    "SGDW: decoupled decay x -= lr*wd*x before torch's momentum SGD step (Loshchilov & Hutter 2019)",
)
