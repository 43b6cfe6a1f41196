"""SAM and ASAM: sharpness-aware minimization as a wrapper around any base optimizer.

SAM (Foret et al. 2021; seeds 000/003) minimizes max_{||eps||_p <= rho} L(w + eps) with the first-order perturbation
(seed 000, "How to minimize L^SAM"):  eps = rho * sign(g) |g|^(q-1) / (||g||_q^q)^(1/p),  1/p + 1/q = 1,
computed as rho * sign(g) (|g| / ||g||_q)^(q-1); p = inf gives rho * sign(g), p = 1 puts rho on the largest |g_i|
(shared equally among ties), p = 2 is rho g / ||g||_2. The norm is taken over all parameters together, every param
group included; a group's own ``rho`` scales its part of that one direction (davda54/sam's convention), so groups
must share ``p``.
ASAM (Kwon et al. 2021, "Adaptive Sharpness-Aware Minimization"): with T_w = |w| + eta the perturbation is computed
for T_w g and scaled by T_w, e.g. eps = rho T_w^2 g / ||T_w g||_2 for p = 2. ``adaptive=True`` applies T_w to every
parameter of the group, biases included; Kwon et al.'s reference code applies it only to parameters whose name
contains "weight" (T = 1 for the rest, in the same norm). ``create("asam", model, adaptive_params="weights")``
gives their variant: the other parameters go into a group with ``adaptive=False``.

The base optimizer then steps at w with the gradient taken at w + eps. ``step(closure)`` calls the closure twice:
once at w (its loss is returned) and once at w + eps (grads of the first call are *not* reused, so a closure that
zeroes the grads, runs forward and backward and returns the loss is all that is needed).

Usage notes:
- BatchNorm: pass ``model=`` (the registry does, given a model) and ``step(closure)`` freezes running statistics on
  the perturbed pass; with the two-step API wrap the second forward in ``with disable_running_stats(model):``.
- AMP with a GradScaler: ``scaler.scale(loss).backward(); scaler.unscale_(sam); sam.first_step(zero_grad=True);
  scaler.scale(loss_at_w_eps).backward(); sam.unperturb(); scaler.step(sam.base_optimizer); scaler.update()``.
  The perturbation is invariant to the loss scale anyway; a non-finite first gradient means no perturbation, and
  restoring before ``scaler.step`` leaves w intact when the scaler skips the step.
- DDP: run the first backward under ``model.no_sync()``; ``first_step`` averages the gradients over the ranks (unless
  ``local_perturbation=True``: each rank perturbs with its own gradient, the m-sharpness of Foret et al. §4), so the
  result equals one process on the concatenated batch. The second backward is synchronized by DDP as usual.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from descentlab.optim.registry import ParamsOrModel, create, needs_closure, params_of, register

__all__ = ["SAM", "disable_running_stats", "sam_perturbation", "weight_groups"]


@contextlib.contextmanager
def disable_running_stats(model: nn.Module) -> Iterator[None]:
    """Inside the block, normalization layers of ``model`` keep their running statistics (buffers restored on exit)."""
    saved = []
    for module in model.modules():
        if (
            getattr(module, "track_running_stats", False)
            and getattr(module, "running_mean", None) is not None
        ):
            buffers = {
                name: buf.clone()
                for name, buf in module.named_buffers(recurse=False)
                if name in ("running_mean", "running_var", "num_batches_tracked")
            }
            saved.append((module, buffers))
    try:
        yield
    finally:
        with torch.no_grad():
            for module, buffers in saved:
                for name, value in buffers.items():
                    getattr(module, name).copy_(value)


def _dual_exponent(p: float) -> float:
    """q with 1/p + 1/q = 1 (p = 1 -> inf, p = inf -> 1)."""
    if math.isinf(p):
        return 1.0
    if p == 1.0:
        return math.inf
    return p / (p - 1.0)


def sam_perturbation(grads: list[Tensor], rho: float, p: float) -> list[Tensor]:
    """eps = rho sign(g) |g|^(q-1) / (||g||_q^q)^(1/p) over the concatenation of ``grads`` (seed 000, Foret et al.).

    Zero or non-finite gradients give eps = 0.
    """
    if not grads:
        return []
    q = _dual_exponent(p)
    work = torch.promote_types(grads[0].dtype, torch.float32)  # half precision is computed in float32
    if p == 2.0:  # the common case in one pass: rho g / ||g||_2
        norm = torch.linalg.vector_norm(
            torch.stack([torch.linalg.vector_norm(g.detach(), dtype=work) for g in grads])
        )
        if not (torch.isfinite(norm) and norm > 0):
            return [torch.zeros_like(g) for g in grads]
        return [g.detach() * (rho / norm).to(g.dtype) for g in grads]
    gmax = torch.stack([g.detach().abs().max().to(work) for g in grads]).max()
    if not (torch.isfinite(gmax) and gmax > 0):
        return [torch.zeros_like(g) for g in grads]
    scaled = [g.detach().to(work) / gmax for g in grads]  # |a| <= 1 with max 1: no overflow in |a|^q
    if math.isinf(q):  # p = 1: all of rho on the coordinates of largest |g|, shared among ties
        masks = [(a.abs() == 1.0).float() for a in scaled]
        count = sum(m.sum() for m in masks)
        return [(rho * torch.sign(a) * m / count).to(g.dtype) for a, m, g in zip(scaled, masks, grads)]
    if q == 1.0:  # p = inf
        return [(rho * torch.sign(a)).to(g.dtype) for a, g in zip(scaled, grads)]
    norm_q = sum(a.abs().pow(q).sum() for a in scaled) ** (1.0 / q)
    return [
        (rho * torch.sign(a) * (a.abs() / norm_q).pow(q - 1.0)).to(g.dtype) for a, g in zip(scaled, grads)
    ]


class SAM(torch.optim.Optimizer):
    """Sharpness-aware minimization (Foret et al. 2021) around ``base_optimizer``; ``adaptive=True`` is ASAM.

    ``base_optimizer`` is an optimizer class (or any ``factory(param_groups, **base_kwargs)``); it is built over the
    same param groups and exposed as ``.base_optimizer`` (state and param groups are shared, so LR schedulers
    attach to either and ``state_dict`` is the base's). Extra keywords: ``model`` (BatchNorm statistics frozen on the
    perturbed pass of ``step``), ``local_perturbation`` (DDP: no averaging of the first gradient).
    """

    steps_with_closure = (
        True  # step(closure) evaluates the loss at the perturbed point (registry.needs_closure)
    )

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        base_optimizer: Callable[..., torch.optim.Optimizer],
        rho: float = 0.05,
        p: float = 2,
        adaptive: bool = False,
        eta: float = 0.01,
        *,
        model: nn.Module | None = None,
        local_perturbation: bool = False,
        **base_kwargs: Any,
    ):
        if isinstance(base_optimizer, torch.optim.Optimizer) or not callable(base_optimizer):
            raise TypeError(
                f"base_optimizer must be an optimizer class or factory (e.g. torch.optim.SGD), got {base_optimizer!r}"
            )
        if not (isinstance(rho, (int, float)) and 0.0 <= rho < math.inf):
            raise ValueError(f"rho must be a finite number >= 0, got {rho!r}")
        if not (isinstance(p, (int, float)) and p >= 1.0):
            raise ValueError(f"p must be in [1, inf], got {p!r}")
        if not isinstance(adaptive, bool):
            raise ValueError(f"adaptive must be True or False, got {adaptive!r}")
        if not (isinstance(eta, (int, float)) and 0.0 <= eta < math.inf):
            raise ValueError(f"eta must be a finite number >= 0, got {eta!r}")
        if model is not None and not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module or None, got {type(model).__name__}")
        defaults = dict(rho=rho, p=float(p), adaptive=adaptive, eta=eta)
        super().__init__(params, defaults)
        self.base_optimizer = base_optimizer(self.param_groups, **base_kwargs)
        if needs_closure(self.base_optimizer):  # SAM steps its base without a closure
            raise ValueError(
                f"SAM's base optimizer must step without a closure; {type(self.base_optimizer).__name__} "
                "evaluates the loss itself (use e.g. sgd, adam or adamw)"
            )
        self._share_with_base()
        self.defaults.update(self.base_optimizer.defaults)
        self.model = model
        self.local_perturbation = local_perturbation
        self._backup: dict[Tensor, Tensor] = {}

    def _share_with_base(self) -> None:
        self.param_groups = self.base_optimizer.param_groups
        self.state = self.base_optimizer.state

    def _params_with_grad(self) -> list[tuple[Tensor, dict]]:
        return [(p, g) for g in self.param_groups for p in g["params"] if p.grad is not None]

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> None:
        """Move to w + eps(w) using the current gradients g(w) (saved w is restored by ``second_step``)."""
        if self._backup:
            raise RuntimeError("first_step called twice without second_step/unperturb in between")
        pairs = self._params_with_grad()
        if (
            dist.is_available()
            and dist.is_initialized()
            and dist.get_world_size() > 1
            and not self.local_perturbation
        ):
            world = dist.get_world_size()
            for p, _ in pairs:
                dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
                p.grad.div_(world)
        # One dual-norm step over all parameters together (every group); each group's rho scales its part, and
        # adaptive groups perturb T_w g and scale by T_w = |w| + eta (groups without adaptive use T = 1).
        if pairs:
            pnorms = sorted({float(g["p"]) for _, g in pairs})
            if len(pnorms) > 1:
                raise ValueError(
                    f"SAM: param groups must share p (the perturbation is one step over all parameters "
                    f"together), got p = {pnorms}"
                )
            rhos = {float(g["rho"]) for _, g in pairs}
            common_rho = rhos.pop() if len(rhos) == 1 else None
            scales = [p.abs() + g["eta"] if g["adaptive"] else None for p, g in pairs]
            vectors = [p.grad if t is None else p.grad * t for (p, _), t in zip(pairs, scales)]
            eps = sam_perturbation(vectors, 1.0 if common_rho is None else common_rho, pnorms[0])
            for (param, g), t, e in zip(pairs, scales, eps):
                if common_rho is None:
                    e = e * g["rho"]
                self._backup[param] = param.detach().clone()
                param.add_(e if t is None else e * t)
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def unperturb(self) -> None:
        """Restore the weights saved by ``first_step`` (w + eps -> w); the gradients are left as they are."""
        for param, saved in self._backup.items():
            param.copy_(saved)
        self._backup.clear()

    def second_step(self, zero_grad: bool = False) -> None:
        """Restore w and step the base optimizer with the gradient taken at w + eps."""
        self.unperturb()
        self.base_optimizer.step()
        if zero_grad:
            self.zero_grad()

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Full SAM step: closure() at w, perturb, closure() at w + eps, restore, base step; returns the first loss."""
        if closure is None:
            raise ValueError(
                "SAM.step needs a closure (zero grads, forward, backward, return loss); "
                "or use first_step() / second_step()"
            )
        with torch.enable_grad():
            loss = closure()
        self.first_step(zero_grad=True)
        try:
            ctx = disable_running_stats(self.model) if self.model is not None else contextlib.nullcontext()
            with ctx, torch.enable_grad():
                closure()
        except BaseException:
            self.unperturb()
            raise
        self.second_step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero the gradients of all parameters (the base optimizer's)."""
        self.base_optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        """The base optimizer's state dict (its state and the shared param groups with rho, p, adaptive, eta)."""
        return self.base_optimizer.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load into the base optimizer and share its (new) param groups and state again."""
        self.base_optimizer.load_state_dict(state_dict)
        self._share_with_base()


ADAPTIVE_PARAMS = ("all", "weights")
"""``adaptive_params`` of the ``asam`` registry entry: T_w = |w| + eta on every parameter, or (Kwon et al.'s
reference code) only on parameters whose name contains "weight"."""


def weight_groups(model: nn.Module) -> list[dict[str, Any]]:
    """Param groups for Kwon et al.'s ASAM convention: parameters named ``*weight*`` (adaptive, T_w = |w| + eta),
    then the rest (biases ...) with ``adaptive=False`` (T = 1); empty groups are left out."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    weights = [p for n, p in named if "weight" in n]
    rest = [p for n, p in named if "weight" not in n]
    groups: list[dict[str, Any]] = [{"params": weights}] if weights else []
    if rest:
        groups.append({"params": rest, "adaptive": False})
    return groups


def _sam_factory(adaptive: bool, default_rho: float) -> Callable[..., SAM]:
    def factory(
        params_or_model: ParamsOrModel,
        base: str = "sgd",
        rho: float = default_rho,
        p: float = 2,
        eta: float = 0.01,
        local_perturbation: bool = False,
        adaptive_params: str = "all",
        **base_hparams: Any,
    ) -> SAM:
        if not isinstance(base, str):
            raise ValueError(f"base must be a registered optimizer name, got {base!r}")
        if adaptive_params not in ADAPTIVE_PARAMS:
            raise ValueError(f"adaptive_params must be one of {ADAPTIVE_PARAMS}, got {adaptive_params!r}")
        if adaptive_params != "all" and not adaptive:
            raise ValueError(f"adaptive_params={adaptive_params!r} applies to 'asam' only")
        if base.lower() == "sgd":
            base_hparams.setdefault("momentum", 0.9)
        model = params_or_model if isinstance(params_or_model, nn.Module) else None
        params = params_of(params_or_model)
        if adaptive_params == "weights":
            if model is None:
                raise ValueError("adaptive_params='weights' needs a model (it picks parameters by name)")
            params = weight_groups(model)

        def make_base(groups: list[dict], **kw: Any) -> torch.optim.Optimizer:
            return create(base, groups, **kw)

        return SAM(
            params,
            make_base,
            rho=rho,
            p=p,
            adaptive=adaptive,
            eta=eta,
            model=model,
            local_perturbation=local_perturbation,
            **base_hparams,
        )

    return factory


register(
    "sam",
    _sam_factory(False, 0.05),
    "SAM: step at w with the gradient at w + rho g/||g|| (Foret et al. 2021)",
)
register(
    "asam",
    _sam_factory(True, 0.5),
    "ASAM: SAM with the perturbation scaled by |w| + eta, rho = 0.5 (Kwon et al. 2021)",
)
