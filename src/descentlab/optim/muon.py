"""Muon: momentum orthogonalized by Newton–Schulz, with AdamW for the parameters Muon is not meant for.

Seed 003 ("Muon Update Rule"): M_t = beta M_{t-1} + G_t, W_t = W_{t-1} - eta [msign(M_t) + lambda W_{t-1}];
K. Jordan, "Muon: An optimizer for hidden layers in neural networks" (2024). msign is scale invariant, so the
momentum is kept in torch.optim.Muon's lerp form M_t = beta M_{t-1} + (1 - beta) G_t (same direction, same state).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.optim.adamw import adamw as _adamw_functional

from descentlab.optim.algoperf import algoperf_update
from descentlab.optim.orthogonalize import METHODS, orthogonalize
from descentlab.optim.registry import ParamsOrModel, check_number, params_of, register

__all__ = ["ADJUST_LR", "Muon", "muon_param_groups", "muon_lr_ratio"]

ADJUST_LR = ("original", "match_rms_adamw", None)
NORMALIZE = (None, "row", "elementwise")
RESCALE = ("preserve", "orthogonal")
HeadSpec = nn.Module | str | Sequence[nn.Module | str] | None


def muon_lr_ratio(adjust_lr: str | None, rows: int, cols: int) -> float:
    """Per-matrix lr multiplier: "original" sqrt(max(1, rows/cols)) (Jordan), "match_rms_adamw"
    0.2 sqrt(max(rows, cols)) (Liu et al. 2025, "Muon is Scalable for LLM Training"), None 1."""
    if adjust_lr == "original":
        return math.sqrt(max(1.0, rows / cols))
    if adjust_lr == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, cols))
    if adjust_lr is None:
        return 1.0
    raise ValueError(f"adjust_lr must be one of {ADJUST_LR}, got {adjust_lr!r}")


def _validate_group(group: dict) -> None:
    check_number("lr", group["lr"])
    check_number("weight_decay", group["weight_decay"])
    if group["use_muon"]:
        check_number("momentum", group["momentum"], 0.0, 1.0, open_high=True)
        if not isinstance(group["nesterov"], bool):
            raise ValueError(f"nesterov must be a bool, got {group['nesterov']!r}")
        if group["ns_method"] not in METHODS:
            raise ValueError(f"ns_method must be one of {METHODS}, got {group['ns_method']!r}")
        steps = group["ns_steps"]
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"ns_steps must be a positive integer, got {steps!r}")
        if group["adjust_lr"] not in ADJUST_LR:
            raise ValueError(f"adjust_lr must be one of {ADJUST_LR}, got {group['adjust_lr']!r}")
        check_number("eps", group["eps"])
        if group.get("normalize") not in NORMALIZE:
            raise ValueError(f"normalize must be one of {NORMALIZE}, got {group.get('normalize')!r}")
        check_number("beta2", group.get("beta2", 0.95), 0.0, 1.0, open_high=True)
        check_number("norm_eps", group.get("norm_eps", 1e-8))
        if group.get("rescale", "preserve") not in RESCALE:
            raise ValueError(f"rescale must be one of {RESCALE}, got {group.get('rescale')!r}")
        for flag in ("sign_momentum", "cautious_wd", "nuclear_scale"):
            if not isinstance(group.get(flag, False), bool):
                raise ValueError(f"{flag} must be a bool, got {group.get(flag)!r}")
        dtype = group["ns_dtype"]
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise ValueError(f"ns_dtype must be None or a floating torch.dtype, got {dtype!r}")
        for p in group["params"]:
            if p.ndim < 2:
                raise ValueError(
                    f"Muon orthogonalizes matrices; got a parameter of shape {tuple(p.shape)} in a Muon group. "
                    "Route 1-D parameters (and embeddings, the head) to AdamW with muon_param_groups(model) or "
                    "descentlab.optim.create('muon', model), or put them in a group with use_muon=False."
                )
    else:
        betas = group["betas"]
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        for i, beta in enumerate(betas):
            check_number(f"betas[{i}]", beta, 0.0, 1.0, open_high=True)
        check_number("adam_eps", group["adam_eps"])
        if not isinstance(group.get("adam_nesterov", False), bool):
            raise ValueError(f"adam_nesterov must be a bool, got {group.get('adam_nesterov')!r}")


class Muon(torch.optim.Optimizer):
    """Muon on groups with ``use_muon=True`` (default), AdamW on groups with ``use_muon=False``; one optimizer.

    Muon step per matrix W (>2-D weights are flattened to (out, rest)): M <- beta M + (1 - beta) G; direction
    D = (1 - beta) G + beta M with Nesterov, else M; O = orthogonalize(D, ns_method, ns_steps, eps, ns_dtype);
    W <- (1 - lr wd) W - lr * ratio(adjust_lr) * O (decay with the unadjusted lr). Same-shape matrices are orthogonalized as one stacked batch;
    Options (each off by default, each with its formula test in tests/optim/test_muon_variants.py):
    ``sign_momentum``: O = orthogonalize(sign(D)) (AdaMuon's sign stabilization, Si et al. 2025);
    ``normalize``: "row" (NorMuon, Li et al. 2025): v <- beta2 v + (1 - beta2) mean_cols(O*O) (one entry per row),
    O <- O / (sqrt(v) + norm_eps); "elementwise" (AdaMuon): the same with v of O's shape; then O is rescaled to
    Frobenius norm ||O_before||_F (``rescale="preserve"``, NorMuon's code) or sqrt(min(rows, cols))
    (``rescale="orthogonal"``: with adjust_lr="match_rms_adamw" the step has RMS 0.2 lr, the papers' boxes);
    ``cautious_wd`` (Chen et al. 2025, "Cautious Weight Decay"): W <- W - lr wd 1[O * W >= 0] * W, decay only
    where it agrees with the update; ``nuclear_scale`` (PolarGrad, Lau et al. 2025): O <- ||D||_* O, the nuclear
    norm of the direction (without momentum this is steepest descent under the spectral norm, ``steepest``'s
    norm="spectral", scale="dual").
    under torch.distributed each rank orthogonalizes its share of every batch and the results are all-gathered.
    AdamW groups use ``lr``, ``betas``, ``adam_eps``, ``weight_decay`` through torch's functional AdamW (state:
    step, exp_avg, exp_avg_sq, as torch.optim.AdamW); ``adam_nesterov=True`` makes them AlgoPerf's NAdamW instead
    (:func:`~descentlab.optim.algoperf.algoperf_update`; the AlgoPerf Muon submission's "pair" optimizer). Muon keeps
    one state tensor per parameter (momentum_buffer).
    """

    def __init__(
        self,
        params: Any,
        lr: float = 0.02,
        momentum: float = 0.95,
        nesterov: bool = True,
        weight_decay: float = 0.0,
        ns_method: str = "newton_schulz",
        ns_steps: int = 5,
        adjust_lr: str | None = "original",
        eps: float = 1e-7,
        ns_dtype: torch.dtype | None = None,
        betas: tuple[float, float] = (0.9, 0.95),
        adam_eps: float = 1e-8,
        normalize: str | None = None,
        beta2: float = 0.95,
        norm_eps: float = 1e-8,
        rescale: str = "preserve",
        sign_momentum: bool = False,
        cautious_wd: bool = False,
        nuclear_scale: bool = False,
        adam_nesterov: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            momentum=momentum,
            nesterov=nesterov,
            weight_decay=weight_decay,
            ns_method=ns_method,
            ns_steps=ns_steps,
            adjust_lr=adjust_lr,
            eps=eps,
            ns_dtype=ns_dtype,
            betas=tuple(betas) if isinstance(betas, list) else betas,
            adam_eps=adam_eps,
            normalize=normalize,
            beta2=beta2,
            norm_eps=norm_eps,
            rescale=rescale,
            sign_momentum=sign_momentum,
            cautious_wd=cautious_wd,
            nuclear_scale=nuclear_scale,
            adam_nesterov=adam_nesterov,
            use_muon=True,
        )
        _validate_group({**defaults, "params": []})
        _validate_group({**defaults, "params": [], "use_muon": False})
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group (``use_muon`` picks Muon or AdamW) after validating its hyper-parameters."""
        super().add_param_group(param_group)
        _validate_group(self.param_groups[-1])

    def _muon_directions(self, group: dict) -> tuple[list[Tensor], list[Tensor]]:
        params, grads, bufs = [], [], []
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError("Muon does not support sparse gradients")
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            params.append(p)
            grads.append(p.grad)
            bufs.append(state["momentum_buffer"])
        if not params:
            return [], []
        beta = group["momentum"]
        torch._foreach_lerp_(bufs, grads, 1.0 - beta)
        directions = torch._foreach_lerp(grads, bufs, beta) if group["nesterov"] else bufs
        return params, list(directions)

    def _adamw_step(self, group: dict) -> None:
        if group.get("adam_nesterov", False):  # AlgoPerf's NAdamW (the Muon submission's "pair" optimizer)
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is not None:
                    algoperf_update(p, p.grad, self.state[p], float(group["lr"]), beta1, beta2,
                                    group["adam_eps"], group["weight_decay"], nesterov=True)  # fmt: skip
            return
        params, grads, exp_avgs, exp_avg_sqs, steps = [], [], [], [], []
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            if len(state) == 0:
                state["step"] = torch.tensor(0.0, dtype=torch.float32)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            params.append(p)
            grads.append(p.grad)
            exp_avgs.append(state["exp_avg"])
            exp_avg_sqs.append(state["exp_avg_sq"])
            steps.append(state["step"])
        if params:
            beta1, beta2 = group["betas"]
            _adamw_functional(
                params, grads, exp_avgs, exp_avg_sqs, [], steps,
                amsgrad=False, beta1=beta1, beta2=beta2, lr=group["lr"],
                weight_decay=group["weight_decay"], eps=group["adam_eps"], maximize=False,
            )  # fmt: skip

    def _normalize(self, p: Tensor, o: Tensor, group: dict) -> Tensor:
        """NorMuon's row / AdaMuon's elementwise second-moment normalization of the orthogonalized matrix ``o``."""
        o = o.to(p.dtype)
        sq = o.square()
        if group["normalize"] == "row":
            sq = sq.mean(dim=-1, keepdim=True)
        state = self.state[p]
        if "second_moment" not in state:
            state["second_moment"] = torch.zeros_like(sq)
        v = state["second_moment"]
        v.lerp_(sq, 1.0 - group.get("beta2", 0.95))
        eps = group.get("norm_eps", 1e-8)
        u = o / (v.sqrt() + eps)
        if group.get("rescale", "preserve") == "preserve":
            target = o.norm()
        else:
            target = math.sqrt(min(o.shape))
        return u * (target / (u.norm() + eps))

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One step: Muon on Muon groups (batched by shape), AdamW on the others. Returns the closure's loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        buckets: dict[tuple, list[tuple[Tensor, Tensor, dict]]] = defaultdict(list)
        for group in self.param_groups:
            if not group["use_muon"]:
                self._adamw_step(group)
                continue
            params, directions = self._muon_directions(group)
            for p, d in zip(params, directions):
                if group.get("sign_momentum", False):
                    d = torch.sign(d)
                matrix_shape = (p.shape[0], p[0].numel())
                key = (matrix_shape, d.dtype, d.device, group["ns_method"], group["ns_steps"], group["eps"],
                       group["ns_dtype"])  # fmt: skip
                buckets[key].append((p, d, group))
        # Distributed: every bucket's all_gather is started asynchronously and awaited only after the last bucket
        # is orthogonalized, so communication overlaps the next bucket's Newton-Schulz work.
        pending = []
        for (matrix_shape, _, _, method, steps, eps, ns_dtype), items in buckets.items():
            mats = [d.reshape(matrix_shape) for _, d, _ in items]
            stacked = mats[0].unsqueeze(0) if len(mats) == 1 else torch.stack(mats)
            pending.append(
                (matrix_shape, items, _orthogonalize_shared(stacked, method, steps, eps, ns_dtype))
            )
        for matrix_shape, items, result in pending:
            ortho = result()
            for (p, d, group), o in zip(items, ortho.unbind(0)):
                lr = group["lr"]
                if group.get("nuclear_scale", False):
                    o = o * torch.linalg.matrix_norm(d.reshape(matrix_shape).to(torch.float64), ord="nuc").to(
                        o.dtype
                    )
                ratio = muon_lr_ratio(group["adjust_lr"], *matrix_shape)
                if group.get("normalize") is not None:
                    o = self._normalize(p, o, group)
                if group["weight_decay"] != 0:
                    if group.get("cautious_wd", False):
                        p.sub_(p * (o.view_as(p) * p >= 0), alpha=lr * group["weight_decay"])
                    else:
                        p.mul_(1.0 - lr * group["weight_decay"])
                p.add_(o.view_as(p), alpha=-lr * ratio)
        return loss


def _orthogonalize_shared(
    stacked: Tensor, method: str, steps: int, eps: float, ns_dtype: torch.dtype | None
) -> Callable[[], Tensor]:
    """Orthogonalize a stacked batch; returns a function giving the result. Under torch.distributed each rank does a
    contiguous share and an asynchronous all_gather is started; the returned function waits for it."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        out = orthogonalize(stacked, method=method, steps=steps, eps=eps, dtype=ns_dtype)
        return lambda: out
    world, rank = dist.get_world_size(), dist.get_rank()
    n = stacked.shape[0]
    chunk = -(-n // world)
    mine = stacked[rank * chunk : min(n, (rank + 1) * chunk)]
    gathered = torch.empty((world * chunk, *stacked.shape[1:]), dtype=stacked.dtype, device=stacked.device)
    parts = list(gathered.chunk(world))
    k = int(mine.shape[0])
    done = orthogonalize(mine, method=method, steps=steps, eps=eps, dtype=ns_dtype) if k else None
    if done is not None and k == chunk:
        local = done.contiguous()
    else:  # the last rank's share may be short (or empty): pad with zeros to the common chunk
        local = torch.zeros_like(parts[rank])
        if done is not None:
            local[:k] = done
    inflight = (dist.all_gather(parts, local, async_op=True), local)  # the input stays alive until the wait

    def result() -> Tensor:
        inflight[0].wait()
        return gathered[:n]

    return result


def _head_modules(model: nn.Module, head: HeadSpec) -> list[nn.Module]:
    if head is None:
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        return linears[-1:]
    heads = [head] if isinstance(head, (nn.Module, str)) else list(head)
    out = []
    for h in heads:
        if isinstance(h, str):
            try:
                h = model.get_submodule(h)
            except AttributeError:
                names = [n for n, _ in model.named_modules() if n]
                raise ValueError(
                    f"head {h!r} is not a submodule of the model (submodules: {names})"
                ) from None
        if not isinstance(h, nn.Module):
            raise TypeError(
                f"head must be an nn.Module, a submodule name, or a list of them; got {type(h).__name__}"
            )
        out.append(h)
    return out


def muon_param_groups(
    model: nn.Module,
    head: HeadSpec = None,
    lr: float = 3e-4,
    betas: tuple[float, float] = (0.9, 0.95),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> list[dict[str, Any]]:
    """Param groups for :class:`Muon`: hidden >=2-D weights -> Muon; nn.Embedding weights, the output head and
    every 1-D (or 0-D) parameter -> AdamW with (lr, betas, eps, weight_decay).

    ``head``: the output layer(s), as modules or submodule names; default the last nn.Linear in module order;
    ``[]`` for none. Empty groups are left out. (Jordan 2024: Muon is for hidden layers only.)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    to_adam: set[int] = set()
    for module in _head_modules(model, head) + [m for m in model.modules() if isinstance(m, nn.Embedding)]:
        to_adam.update(id(p) for p in module.parameters())
    muon, adam, seen = [], [], set()
    for p in model.parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (adam if id(p) in to_adam or p.ndim < 2 else muon).append(p)
    groups: list[dict[str, Any]] = []
    if muon:
        groups.append({"params": muon, "use_muon": True})
    if adam:
        groups.append({"params": adam, "use_muon": False, "lr": lr, "betas": tuple(betas), "adam_eps": eps,
                       "weight_decay": weight_decay})  # fmt: skip
    return groups


def _split_plain(params: Iterable[Any], lr: float, lr_adam: float, adam_hp: dict) -> list[dict[str, Any]]:
    """Plain params / groups without ``use_muon``: >=2-D tensors to Muon, the rest to AdamW at lr * lr_adam / lr."""
    items = list(params)
    groups = items if items and isinstance(items[0], dict) else [{"params": items}]
    out: list[dict[str, Any]] = []
    for group in groups:
        if "use_muon" in group:
            out.append(group)
            continue
        ps = [group["params"]] if isinstance(group["params"], Tensor) else list(group["params"])
        mats, vecs = [p for p in ps if p.ndim >= 2], [p for p in ps if p.ndim < 2]
        rest = {k: v for k, v in group.items() if k != "params"}
        if mats:
            out.append({**rest, "params": mats, "use_muon": True})
        if vecs:
            group_lr = rest.get("lr", lr)
            adam_lr = group_lr * lr_adam / lr if lr > 0 else lr_adam
            out.append({**adam_hp, **rest, "params": vecs, "use_muon": False, "lr": adam_lr})
    return out


def _create_muon(
    params_or_model: ParamsOrModel,
    lr: float = 0.02,
    lr_adam: float | None = None,
    adam_betas: tuple[float, float] = (0.9, 0.95),
    adam_eps: float = 1e-8,
    adam_weight_decay: float = 0.0,
    head: HeadSpec = None,
    **muon_hparams: Any,
) -> Muon:
    """Registry factory: a model is split by :func:`muon_param_groups`; plain params route <2-D tensors to AdamW.

    ``lr_adam`` defaults to 3e-4 * lr / 0.02 (Jordan's 3e-4 next to Muon's 0.02, and it keeps lr = 0 a no-op).
    """
    check_number("lr", lr)
    if lr_adam is None:
        lr_adam = 3e-4 * lr / 0.02
    check_number("lr_adam", lr_adam)
    adam_hp = {"betas": tuple(adam_betas), "adam_eps": adam_eps, "weight_decay": adam_weight_decay}
    if isinstance(params_or_model, nn.Module):
        groups = muon_param_groups(params_or_model, head=head, lr=lr_adam, betas=adam_betas, eps=adam_eps,
                                   weight_decay=adam_weight_decay)  # fmt: skip
    else:
        if head is not None:
            raise ValueError("head= needs a model (nn.Module), not a list of parameters")
        groups = _split_plain(params_of(params_or_model), lr, lr_adam, adam_hp)
    return Muon(groups, lr=lr, **muon_hparams)


register("muon", _create_muon, "Muon (msign of Nesterov momentum) on hidden matrices + AdamW on the rest")


def _muon_variant(name: str, fixed: dict[str, Any]) -> Callable[..., Muon]:
    def factory(
        params_or_model: ParamsOrModel, lr: float = 1e-3, lr_adam: float | None = None, **hparams: Any
    ) -> Muon:
        clash = sorted(set(hparams) & set(fixed) & {"normalize", "sign_momentum", "nuclear_scale"})
        if clash:
            raise ValueError(f"optimizer {name!r} fixes {clash}; use 'muon' with those options instead")
        hp = {**fixed, **hparams}
        return _create_muon(params_or_model, lr=lr, lr_adam=lr if lr_adam is None else lr_adam, **hp)

    factory.__name__ = f"create_{name}"
    factory.__doc__ = f"Build Muon with {fixed} (lr_adam defaults to lr: the step has AdamW's RMS scale)."
    return factory


# The papers' boxes: the step is 0.2 lr sqrt(mn) O^ / ||O^||_F (RMS 0.2 lr, AdamW's scale), so one lr for all.
register(
    "normuon",
    _muon_variant(
        "normuon",
        {
            "normalize": "row",
            "rescale": "orthogonal",
            "adjust_lr": "match_rms_adamw",
            "nesterov": False,
            "momentum": 0.95,
            "beta2": 0.95,
        },
    ),  # fmt: skip
    "NorMuon (Li et al. 2025): Muon + per-row second-moment normalization, RMS 0.2 lr; lr=1e-3",
)
register(
    "polargrad",
    _muon_variant(
        "polargrad", {"nuclear_scale": True, "adjust_lr": None, "nesterov": False, "momentum": 0.9}
    ),
    "PolarGrad (Lau et al. 2025): ||M||_* msign(M) of the momentum (momentum=0: steepest spectral); lr=1e-3",
)
register(
    "adamuon",
    _muon_variant(
        "adamuon",
        {
            "normalize": "elementwise",
            "sign_momentum": True,
            "rescale": "orthogonal",
            "adjust_lr": "match_rms_adamw",
            "nesterov": True,
            "momentum": 0.95,
            "beta2": 0.95,
        },
    ),  # fmt: skip
    "AdaMuon (Si et al. 2025): msign(sign(M)) + elementwise second moment, RMS 0.2 lr; lr=1e-3",
)
