"""Many small ReLU MLPs trained at once: one batched matmul per layer for a whole grid of arms and seeds.

A study that compares optimizers, learning rates, decays, schedules or initializations over several seeds trains
dozens of identical small MLPs. :func:`train_stacked` stacks them (weights ``[M, in, out]``) and takes every step
for all ``M`` models together: the forward and backward passes are ``torch.baddbmm`` calls and the optimizer is
written out for tensors with a leading model axis, with per-model hyper-parameters. Each model keeps its own
initialization (the ``nn.Linear`` weights it is built from) and its own mini-batch stream (``BatchStream`` of its
seed, so models that share a seed see the same batches: paired comparisons). The update rules are those of
``torch.optim.SGD`` (momentum, coupled L2 ``weight_decay``) and ``torch.optim.Adam`` / ``AdamW``, plus Loshchilov &
Hutter's decoupled decay ``x <- x - lambda x`` (not multiplied by the learning rate); ``tests/studies/
test_batched.py`` checks them against torch's optimizers on single models.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from descentlab.tasks.base import BatchStream


def stack_mlps(models: Sequence[nn.Module]) -> tuple[list[Tensor], list[Tensor]]:
    """Weights ``[M, in, out]`` and biases ``[M, 1, out]`` of ``M`` same-shaped ``Sequential(Linear, ReLU, ...)``."""
    per_model = []
    for m in models:
        lins = [x for x in m.modules() if isinstance(x, nn.Linear)]
        others = [x for x in m.children() if not isinstance(x, (nn.Linear, nn.ReLU))]
        if not lins or others:
            raise TypeError(f"stack_mlps takes Sequential(Linear, ReLU, ..., Linear) models, got {m}")
        per_model.append(lins)
    shapes = [[tuple(lin.weight.shape) for lin in lins] for lins in per_model]
    if any(s != shapes[0] for s in shapes):
        raise ValueError("stack_mlps: the models do not all have the same layer shapes")
    ws = [
        torch.stack([lins[i].weight.detach().t() for lins in per_model]).contiguous()
        for i in range(len(shapes[0]))
    ]
    bs = [torch.stack([lins[i].bias.detach()[None, :] for lins in per_model]) for i in range(len(shapes[0]))]
    return ws, bs


def forward(ws: Sequence[Tensor], bs: Sequence[Tensor], x: Tensor) -> Tensor:
    """Logits ``[M, B, classes]`` of the stacked ReLU MLPs; ``x`` is ``[M, B, d]`` or shared ``[B, d]``."""
    h = x
    last = len(ws) - 1
    for i, (w, b) in enumerate(zip(ws, bs)):
        h = torch.baddbmm(b, h, w) if h.dim() == 3 else torch.matmul(h, w) + b
        if i < last:
            h = torch.relu(h)
    return h


@torch.no_grad()
def evaluate(
    ws: Sequence[Tensor], bs: Sequence[Tensor], data: tuple[Tensor, Tensor], chunk: int = 2048
) -> tuple[Tensor, Tensor]:
    """Per-model mean cross-entropy and accuracy ``([M], [M])`` on ``data`` (shared by all models)."""
    x, y = data
    loss = torch.zeros(ws[0].shape[0], dtype=torch.float64)
    correct = torch.zeros(ws[0].shape[0], dtype=torch.float64)
    for i in range(0, len(y), chunk):
        xb, yb = x[i : i + chunk], y[i : i + chunk]
        out = forward(ws, bs, xb)  # [M, b, C]
        m, b, c = out.shape
        ce = nn.functional.cross_entropy(out.reshape(m * b, c), yb.repeat(m), reduction="none").view(m, b)
        loss += ce.double().sum(1)
        correct += (out.argmax(-1) == yb).double().sum(1)
    n = len(y)
    return loss / n, correct / n


def _per_model(value: Any, m: int, name: str) -> Tensor:
    """A per-model hyper-parameter as a ``[M, 1, 1]`` float tensor (a scalar is broadcast)."""
    t = torch.as_tensor(value, dtype=torch.float32).reshape(-1)
    if t.numel() == 1:
        t = t.expand(m)
    if t.numel() != m:
        raise ValueError(f"{name}: need one value or {m} (one per model), got {t.numel()}")
    if not bool(torch.isfinite(t).all()) or bool((t < 0).any()):
        raise ValueError(f"{name} must be finite and >= 0, got {t.tolist()}")
    return t.reshape(m, 1, 1).clone()


def train_stacked(
    models: Sequence[nn.Module],
    seeds: Sequence[int],
    train: tuple[Tensor, Tensor],
    *,
    steps: int,
    batch_size: int,
    lr: Any,
    optimizer: str = "sgd",
    momentum: Any = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    l2: Any = 0.0,
    decay: Any = 0.0,
    evals: dict[str, tuple[Tensor, Tensor]] | None = None,
    eval_every: int | None = None,
) -> dict[str, Any]:
    """Train ``M = len(models)`` MLPs together for ``steps`` steps; model ``i`` draws batches from ``seeds[i]``.

    ``lr`` is one value, one per model ``[M]``, or a table ``[steps, M]`` (a schedule per model). ``optimizer``:
    ``"sgd"`` (torch's heavy-ball ``momentum``, dampening 0) or ``"adam"``. ``l2`` adds ``l2 * x`` to the gradient
    (torch's coupled ``weight_decay``: it passes through momentum and Adam's preconditioner); ``decay`` shrinks
    ``x <- x - decay * x`` each step before the update (Loshchilov & Hutter's decoupled decay: torch's AdamW with
    ``weight_decay = decay / lr``). Returns ``{"steps": [k...], "batch_loss": [steps, M], name + "_loss"/"_accuracy":
    [n_evals, M] for each of ``evals`` at steps ``0, eval_every, ..., steps``, "params": (ws, bs)}``; a model whose
    parameters stop being finite keeps NaN (it does not disturb the others).
    """
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    m = len(models)
    if m < 1 or len(seeds) != m:
        raise ValueError(f"need one seed per model: {m} models, {len(seeds)} seeds")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    lr_t = torch.as_tensor(lr, dtype=torch.float32)
    if lr_t.dim() == 2:
        if tuple(lr_t.shape) != (steps, m):
            raise ValueError(f"an lr table must be [steps, M] = [{steps}, {m}], got {list(lr_t.shape)}")
        if not bool(torch.isfinite(lr_t).all()) or bool((lr_t < 0).any()):
            raise ValueError("the lr table must be finite and >= 0")
        table = lr_t.reshape(steps, m, 1, 1)
    else:
        table = _per_model(lr_t, m, "lr").expand(steps, m, 1, 1)
    mom = _per_model(momentum, m, "momentum")
    l2_t, dec_t = _per_model(l2, m, "l2"), _per_model(decay, m, "decay")
    use_l2, use_decay = bool((l2_t > 0).any()), bool((dec_t > 0).any())
    ws, bs = stack_mlps(models)
    params = [p.requires_grad_(True) for pair in zip(ws, bs) for p in pair]
    state1 = [torch.zeros_like(p) for p in params]
    state2 = [torch.zeros_like(p) for p in params] if optimizer == "adam" else []
    xtr, ytr = train
    distinct = sorted(set(int(s) for s in seeds))
    where = torch.tensor([distinct.index(int(s)) for s in seeds])
    streams = [BatchStream((torch.arange(len(ytr)),), int(batch_size), s) for s in distinct]
    evals = dict(evals or {})
    every = int(eval_every) if eval_every else steps
    out: dict[str, Any] = {"steps": [], "batch_loss": torch.empty(steps, m)}
    for name in evals:
        out[f"{name}_loss"], out[f"{name}_accuracy"] = [], []

    def record(k: int) -> None:
        out["steps"].append(k)
        for name, data in evals.items():
            loss, acc = evaluate(ws, bs, data)
            out[f"{name}_loss"].append(loss)
            out[f"{name}_accuracy"].append(acc)

    record(0)
    b1, b2 = betas
    for t in range(steps):
        idx = torch.stack([next(st)[0] for st in streams])[where]  # [M, B]
        logits = forward(ws, bs, xtr[idx])
        _, bsz, c = logits.shape
        ce = nn.functional.cross_entropy(logits.reshape(m * bsz, c), ytr[idx].reshape(-1), reduction="none")
        per = ce.view(m, bsz).mean(1)
        grads = torch.autograd.grad(per.sum(), params)
        out["batch_loss"][t] = per.detach()
        lr_k = table[t]
        with torch.no_grad():
            for i, (p, g) in enumerate(zip(params, grads)):
                if use_l2:
                    g.addcmul_(p, l2_t)  # coupled L2: through momentum / the preconditioner
                if use_decay:
                    p.mul_(1 - dec_t)  # decoupled: x <- x - decay * x (uses x before the update)
                if optimizer == "sgd":
                    buf = state1[i]
                    buf.mul_(mom).add_(g)
                    p.addcmul_(buf, lr_k, value=-1.0)
                else:
                    e1, e2 = state1[i], state2[i]
                    e1.lerp_(g, 1 - b1)
                    e2.mul_(b2).addcmul_(g, g, value=1 - b2)
                    bc1, bc2 = 1 - b1 ** (t + 1), 1 - b2 ** (t + 1)
                    denom = e2.sqrt().div_(math.sqrt(bc2)).add_(eps).div_(lr_k / bc1)
                    p.addcdiv_(e1, denom, value=-1.0)
        if (t + 1) % every == 0 or t + 1 == steps:
            record(t + 1)
    for key in list(out):
        if key.endswith("_loss") or key.endswith("_accuracy"):
            if key != "batch_loss":
                out[key] = torch.stack(out[key])
    out["params"] = ([w.detach() for w in ws], [b.detach() for b in bs])
    return out
