"""Loss-landscape projections: random (filter-normalized) directions, 1-D lines, 2-D planes, interpolation.

The loss on a grid of parameter points is evaluated many points at once: the parameter sets of a chunk of grid
points are stacked and pushed through ``torch.func.functional_call`` under ``torch.vmap``; models that vmap cannot
take fall back to a plain loop. The user's model is never modified (it is only read and used as a template).

Sources: Li et al. 2018, "Visualizing the Loss Landscape of Neural Nets" (filter normalization); seed 002,
"Визуализация с помощью проекции на прямую/плоскость": L(a) = L(w0 + a w1), L(a, b) = L(w0 + a w1 + b w2).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.overrides import TorchFunctionMode

from descentlab.threads import torch_threads

Batch = tuple[Tensor, Tensor]
Data = Union[Batch, Iterable[Batch]]  # noqa: UP007 (a runtime alias)
Criterion = Callable[[Tensor, Tensor], Tensor]

NORMALIZATIONS = ("filter", "layer", "none")
IGNORES = ("biasbn", "none")
PRECISIONS = ("fp32", "bf16")
_BF16_SLOWDOWN_AVX2 = "measured: the benchmark plane takes 17x its fp32 time"

log = logging.getLogger("descentlab.landscape")


# ----------------------------------------------------------------------------------------------- shared helpers
def as_batches(data: Any) -> list[Batch]:
    """Normalize ``data`` -- one ``(inputs, targets)`` tuple or an iterable of them -- to a non-empty list.

    ValueError when there is no batch or a batch holds no examples (targets with a zero-length first axis).
    """
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, Tensor) for t in data):
        data = [data]
    try:
        batches = list(data)
    except TypeError:
        raise TypeError(
            f"data must be an (inputs, targets) tuple or an iterable of such batches, got {type(data).__name__}"
        ) from None
    if not batches:
        raise ValueError("data is empty: give at least one (inputs, targets) batch")
    for i, b in enumerate(batches):
        if not (isinstance(b, (tuple, list)) and len(b) == 2 and all(isinstance(t, Tensor) for t in b)):
            raise TypeError(
                f"batch {i} of data is not an (inputs, targets) pair of tensors: {type(b).__name__}"
            )
        if b[1].dim() == 0 or int(b[1].shape[0]) == 0:
            raise ValueError(
                f"batch {i} of data holds no examples (targets of shape {tuple(b[1].shape)}); the loss over no "
                "examples is undefined"
            )
    return [(b[0], b[1]) for b in batches]


def check_model(model: Any, name: str = "model") -> nn.Module:
    """Raise TypeError unless ``model`` is an ``nn.Module`` with at least one trainable parameter."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(model).__name__}")
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError(f"{name} has no trainable parameters")
    return model


class FlatParams:
    """The trainable parameters of a model as one flat vector: names, shapes, and conversions dict <-> flat."""

    def __init__(self, model: nn.Module):
        self.names: list[str] = []
        self.shapes: list[torch.Size] = []
        tensors = []
        for name, p in model.named_parameters():
            if p.requires_grad:
                self.names.append(name)
                self.shapes.append(p.shape)
                tensors.append(p.detach().reshape(-1))
        self.sizes = [int(math.prod(s)) for s in self.shapes]
        self.vector: Tensor = torch.cat(tensors).clone()
        self.numel = int(self.vector.numel())

    def to_dict(self, flat: Tensor) -> dict[str, Tensor]:
        """Views of ``flat`` (..., N) as a name -> tensor dict (leading batch dims kept)."""
        lead = flat.shape[:-1]
        parts = torch.split(flat, self.sizes, dim=-1)
        return {n: t.reshape(*lead, *s) for n, t, s in zip(self.names, parts, self.shapes)}

    def from_dict(self, tensors: dict[str, Tensor], fill_missing: bool = False) -> Tensor:
        """Flatten a name -> tensor dict in this order (missing names are zeros when ``fill_missing``)."""
        out = []
        for n, s in zip(self.names, self.shapes):
            if n in tensors:
                t = tensors[n]
                if t.shape != s:
                    raise ValueError(f"tensor {n!r} has shape {tuple(t.shape)}, expected {tuple(s)}")
                out.append(t.detach().reshape(-1).to(self.vector))
            elif fill_missing:
                out.append(self.vector.new_zeros(int(math.prod(s))))
            else:
                raise ValueError(f"missing tensor for parameter {n!r}")
        return torch.cat(out)


def buffers_of(model: nn.Module) -> dict[str, Tensor]:
    """Detached clones of the model's buffers (so nothing done to them reaches the model)."""
    return {n: b.detach().clone() for n, b in model.named_buffers()}


@contextmanager
def training_mode(model: nn.Module, train: bool = False) -> Iterator[None]:
    """Temporarily set every module's ``training`` flag; the original flags are restored on exit."""
    flags = [(m, m.training) for m in model.modules()]
    model.train(train)
    try:
        yield
    finally:
        for m, t in flags:
            m.training = t


def is_classification(outputs: Tensor, targets: Tensor) -> bool:
    """Outputs are class scores: 2-D (batch, classes) and integer 1-D targets."""
    return outputs.ndim == 2 and targets.ndim == 1 and not targets.dtype.is_floating_point


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast for ``precision="bf16"``, nothing for fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _full(out: Tensor) -> Tensor:
    """A half-precision output back in fp32, so the loss and its reduction are taken in fp32."""
    return out.float() if out.dtype in (torch.bfloat16, torch.float16) else out


def evaluate(
    model: nn.Module,
    criterion: Criterion,
    batches: list[Batch],
    params: dict[str, Tensor],
    buffers: dict[str, Tensor],
    precision: str = "fp32",
) -> tuple[float, float | None]:
    """Loss (batch-size weighted mean over batches) and accuracy at one parameter set, no grad, model untouched.

    ``precision="bf16"`` runs the forward under bf16 autocast; the loss is taken in the parameters' precision.
    """
    total, loss_sum, correct, classify = 0, 0.0, 0.0, True
    with torch.no_grad():
        for x, y in batches:
            with _autocast(x.device, precision):
                out = functional_call(model, (params, buffers), (x,), tie_weights=True, strict=False)
            out = _full(out)
            n = int(y.shape[0])
            loss_sum += float(criterion(out, y)) * n
            classify = classify and is_classification(out, y)
            if classify:
                correct += float((out.argmax(-1) == y).sum())
            total += n
    return loss_sum / total, (correct / total if classify else None)


class _CountOutputs(TorchFunctionMode):
    """Counts the elements of every tensor produced while active (an upper bound on activation memory)."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, Tensor):
                self.bytes += t.numel() * t.element_size()
        return out


def _activation_bytes(model: nn.Module, params: dict, buffers: dict, x: Tensor) -> int:
    counter = _CountOutputs()
    with torch.no_grad(), counter:
        functional_call(model, (params, buffers), (x,), tie_weights=True, strict=False)
    return counter.bytes


def _no_hooks(*modules: nn.Module) -> bool:
    from torch.nn.modules import module as module_mod

    if any(getattr(module_mod, n, None) for n in ("_global_forward_hooks", "_global_forward_pre_hooks")):
        return False
    return not any(m._forward_hooks or m._forward_pre_hooks for m in modules)


_PREFIX_MIN_INPUTS = 128  # below this the first layer's GEMM is about as cheap as the per-point additions


class _AffinePrefix:
    """Exact shortcut for a model ``nn.Sequential(nn.Linear, ...)``: the first layer's output is affine in c.

    At ``w = base + c @ directions`` the first layer gives ``x W(c)^T + b(c) = Z_0 + sum_k c_k Z_k`` with
    ``Z_0 = x W^T + b`` and ``Z_k = x D_k^T + db_k``; these K + 1 products are computed once per batch, so each
    point pays a few additions instead of a matmul. Only the rest of the model runs per point. Used when the
    layer has >= ``_PREFIX_MIN_INPUTS`` inputs: with fewer, its GEMM costs about as much as the additions.
    """

    def __init__(self, rest: nn.Module, keep: list[int], tables: list[Tensor]):
        self.rest, self.keep, self.tables = rest, keep, tables
        self._partial: dict[int, tuple[list[float], Tensor]] = {}
        self._out: dict[int, Tensor] = {}

    @classmethod
    def build(
        cls, model: nn.Module, flat: FlatParams, base: Tensor, directions: Tensor, batches: list[Batch],
        budget: float, min_inputs: int | None = None, feature_major: bool = False,
    ) -> _AffinePrefix | None:  # fmt: skip
        """The shortcut, or None when it does not apply exactly (other model types, hooks, tied weights, ...).

        ``feature_major`` stores the tables as (K + 1, out, samples) for :class:`_FeatureMajorMLP` (2-D inputs).
        """
        if type(model) is not nn.Sequential or len(model) < (1 if feature_major else 2):
            return None
        key = next(iter(model._modules))
        first = model._modules[key]
        if (
            type(first) is not nn.Linear
            or first.in_features < (_PREFIX_MIN_INPUTS if min_inputs is None else min_inputs)
            or not _no_hooks(model, first)
        ):
            return None
        own = {id(p) for p in first.parameters()}
        if sum(id(p) in own for _, p in model.named_parameters(remove_duplicate=False)) != len(own):
            return None  # a first-layer tensor is shared with another layer
        for x, _ in batches:
            if (
                not x.is_floating_point()
                or x.dtype != base.dtype
                or x.device != base.device
                or x.ndim < 1
                or x.shape[-1] != first.in_features
                or (feature_major and x.ndim != 2)
            ):
                return None
        k = int(directions.shape[0])
        rows = sum(int(x.numel() // first.in_features) for x, _ in batches)
        if (k + 1) * rows * first.out_features * base.element_size() > budget:
            return None
        index = {n: i for i, n in enumerate(flat.names)}

        def part(name: str, vec: Tensor, default: Tensor | None) -> Tensor | None:
            if name in index:
                i = index[name]
                start = sum(flat.sizes[:i])
                return vec[..., start : start + flat.sizes[i]].reshape(*vec.shape[:-1], *flat.shapes[i])
            return default

        w0 = part(f"{key}.weight", base, first.weight.detach())
        b0 = part(f"{key}.bias", base, None if first.bias is None else first.bias.detach())
        dw = part(
            f"{key}.weight",
            directions,
            torch.zeros_like(first.weight.detach()).expand(k, *first.weight.shape),
        )
        db = None if first.bias is None else part(f"{key}.bias", directions, None)
        tables = []

        def product(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
            if not feature_major:
                return nn.functional.linear(x, w, b)
            return torch.mm(w, x.mT) if b is None else torch.addmm(b[:, None], w, x.mT)

        with torch.no_grad():
            for x, _ in batches:
                z = [product(x, w0.to(x), None if b0 is None else b0.to(x))]
                z += [product(x, dw[j], None if db is None else db[j]) for j in range(k)]
                tables.append(torch.stack(z))  # (K + 1, *batch, out), or (K + 1, out, batch) feature-major
        prefix = f"{key}."
        keep = [i for i, n in enumerate(flat.names) if not n.startswith(prefix)]
        return cls(model[1:], keep, tables)

    def first_layer(self, b: int, c: Tensor) -> Tensor:
        """Output of the first layer for batch ``b`` at coefficients ``c`` (K,) or (P, K)."""
        z = self.tables[b]
        if c.ndim == 1:  # Z_0 + c_1 Z_1 + ... cached up to the last term: one pass per point along a row
            cs = c.tolist()
            key, part = self._partial.get(b, (None, None))
            if key != cs[:-1]:
                part = z[0]
                for j, cj in enumerate(cs[:-1]):
                    part = torch.add(part, z[j + 1], alpha=cj)
                self._partial[b] = (cs[:-1], part)
            buf = self._out.get(b)
            if buf is None:
                buf = self._out[b] = torch.empty_like(z[0])
            return torch.add(part, z[-1], alpha=cs[-1], out=buf)  # reused: no fresh allocation per point
        return z[0] + torch.tensordot(c, z[1:], dims=([-1], [0]))


# Modules that act elementwise and hold no parameters: layout-agnostic, so they run on feature-major activations.
_ELEMENTWISE = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish, nn.Tanh, nn.Sigmoid,
    nn.Hardtanh, nn.Hardsigmoid, nn.Hardswish, nn.Softplus, nn.Softsign, nn.Tanhshrink, nn.Identity,
)  # fmt: skip


class _FeatureMajorMLP:
    """Exact fast path for ``nn.Sequential`` of ``nn.Linear`` and elementwise activations on 2-D inputs.

    Activations are kept feature-major (features x samples), so every layer is one ``addmm(b, W, h)`` with the
    samples as the long side: measured on AVX2 (1 thread, 4000 samples) the 100->10 head takes 0.25 ms instead
    of 0.78 ms as ``x W^T``, the 100->100 layer 1.57 instead of 1.74. The first layer comes from the
    :class:`_AffinePrefix` tables (K + 1 products once per batch, then one addition per point along a grid row)
    when K is small next to its inputs, else it is one more addmm. The loss is taken on the transposed view (for
    ``nn.CrossEntropyLoss`` as the equivalent (1, C, samples) form), the hits by ``torch.max(h, 0)`` (first
    maximum, like argmax). Same operations as the model's forward, in another memory order.
    """

    def __init__(
        self, specs: list, prefix: _AffinePrefix | None, inputs_t: list[Tensor | None], flat: FlatParams,
        storage: Tensor,
    ):  # fmt: skip
        self.specs, self.prefix, self.inputs_t, self.flat = specs, prefix, inputs_t, flat
        self.storage = storage  # the point's flat parameters, set in place; the layers hold views of it
        views = flat.to_dict(storage)

        def bind(t: str | Tensor | None) -> Tensor | None:
            return views[t] if isinstance(t, str) else t

        self.layers = [(kind, bind(a), bind(b)) if kind == "linear" else (kind, a, b) for kind, a, b in specs]
        self._buffers: dict[tuple, Tensor] = {}

    def replica(self) -> _FeatureMajorMLP:
        """A copy for another thread: its own parameter vector, buffers and row cache; the tables are shared."""
        prefix = self.prefix
        if prefix is not None:
            prefix = _AffinePrefix(prefix.rest, prefix.keep, prefix.tables)
        return _FeatureMajorMLP(self.specs, prefix, self.inputs_t, self.flat, self.storage.clone())

    @classmethod
    def build(
        cls, model: nn.Module, flat: FlatParams, base: Tensor, directions: Tensor, batches: list[Batch],
        budget: float,
    ) -> _FeatureMajorMLP | None:  # fmt: skip
        """The path, or None when it does not apply exactly (other modules, hooks, shared tensors, 3-D inputs)."""
        if type(model) is not nn.Sequential or len(model) == 0 or not _no_hooks(model, *model.children()):
            return None
        mods = list(model._modules.items())
        if type(mods[0][1]) is not nn.Linear or not all(
            type(m) is nn.Linear or type(m) in _ELEMENTWISE for _, m in mods
        ):
            return None
        if len(list(model.named_parameters(remove_duplicate=False))) != len(list(model.parameters())):
            return None  # a tensor shared between layers
        first = mods[0][1]
        for x, _ in batches:
            if (
                x.ndim != 2
                or x.dtype != base.dtype
                or x.device != base.device
                or x.shape[1] != first.in_features
            ):
                return None
        names = set(flat.names)

        def tensor(name: str, own: Tensor | None) -> str | Tensor | None:
            if name in names:
                return name
            if own is not None and own.dtype != base.dtype:
                raise TypeError
            return None if own is None else own.detach()

        k = int(directions.shape[0])
        prefix = None
        if k <= 2 or 5 * k <= first.in_features:  # K additions per point cost less than the GEMM (measured)
            prefix = _AffinePrefix.build(model, flat, base, directions, batches, budget, min_inputs=1,
                                         feature_major=True)  # fmt: skip
        layers = []
        try:
            for i, (key, m) in enumerate(mods):
                if type(m) is nn.Linear:
                    if i == 0 and prefix is not None:
                        continue
                    layers.append(
                        ("linear", tensor(f"{key}.weight", m.weight), tensor(f"{key}.bias", m.bias))
                    )
                else:
                    layers.append(("relu" if type(m) is nn.ReLU else "module", m, None))
        except TypeError:
            return None
        inputs_t = [None if prefix is not None else x.mT.contiguous() for x, _ in batches]
        return cls(layers, prefix, inputs_t, flat, base.clone())

    def forward(self, b: int, c: Tensor, dtype: torch.dtype | None = None) -> Tensor:
        """Feature-major output (out, samples) of batch ``b`` at coefficients ``c`` (K,); ``self.storage`` must
        hold the point's flat parameters. ``dtype`` bf16 casts each layer's inputs as bf16 autocast would.

        Every result goes into a buffer kept across points (fresh 1.6 MB results cost a page-faulting allocation
        each: measured ~0.3 ms per point of the benchmark MLP).
        """
        h = self.prefix.first_layer(b, c) if self.prefix is not None else self.inputs_t[b]
        if dtype is not None and dtype != h.dtype:
            h = self._buffer(b, -1, h.shape, dtype).copy_(h)
        for i, (kind, a, bias) in enumerate(self.layers):
            if kind == "linear":
                if dtype is not None and dtype != a.dtype:
                    a = a.to(dtype)
                    bias = None if bias is None else bias.to(dtype)
                out = self._buffer(b, i, (a.shape[0], h.shape[1]), h.dtype)
                h = torch.mm(a, h, out=out) if bias is None else torch.addmm(bias[:, None], a, h, out=out)
            elif kind == "relu":  # h is a buffer of this path here (the first module is a Linear)
                h = torch.relu_(h)
            else:
                h = a(h)
        return h

    def _buffer(self, b: int, i: int, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
        key = (b, i, dtype)
        buf = self._buffers.get(key)
        if buf is None or buf.shape != shape:
            buf = self._buffers[key] = torch.empty(shape, dtype=dtype, device=self.storage.device)
        return buf

    def loss_and_hits(self, criterion: Criterion, h: Tensor, y: Tensor) -> tuple[float, float | None]:
        """The criterion on the sample-major view of ``h``; hits when the outputs are class scores."""
        out = _full(h)
        if type(criterion) is nn.CrossEntropyLoss and criterion.reduction in ("mean", "sum") and y.ndim == 1:
            loss = nn.functional.cross_entropy(
                out[None], y[None], weight=criterion.weight, ignore_index=criterion.ignore_index,
                reduction=criterion.reduction, label_smoothing=criterion.label_smoothing,
            )  # fmt: skip
        else:
            loss = criterion(out.mT, y)
        if not (out.ndim == 2 and y.ndim == 1 and not y.dtype.is_floating_point):
            return float(loss), None
        # argmax == y, computed as "y's score is the column maximum" (4x cheaper than max(0) on a 10 x 4000
        # block); where a maximum is shared or NaN, argmax's first-index rule decides: take it there.
        top = out.amax(0)
        if bool(((out == top).sum(0) != 1).any()):
            return float(loss), float((torch.max(out, 0).indices == y).sum())
        return float(loss), float((out.gather(0, y[None])[0] == top).sum())


_MIN_POINTS_PER_WORKER = 8


def _point_workers(n_points: int) -> int:
    """Threads that each evaluate a share of the points with one torch thread: as many as torch may use here.

    Points are independent, so this scales without the per-op barriers of intra-op threads; those barriers made
    the point-by-point path 0.89x loss-landscapes' speed on 2 idle AVX2 cores, and spin on a loaded machine.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(torch.get_num_threads(), cores, n_points // _MIN_POINTS_PER_WORKER))


def _private_copy(model: nn.Module, flat: FlatParams) -> tuple[nn.Module, Tensor] | None:
    """A copy of ``model`` whose trainable parameters are views of one flat vector (set per point in one op);
    None when the model cannot be copied that way (hooks, mixed dtypes, parameters deepcopy renames)."""
    if not _no_hooks(*model.modules()) or any(p.dtype != flat.vector.dtype for p in model.parameters()):
        return None
    try:
        clone = copy.deepcopy(model)
    except Exception:  # noqa: BLE001 (a model that cannot be copied takes the functional loop)
        return None
    params = dict(clone.named_parameters())
    if any(n not in params for n in flat.names):
        return None
    storage = flat.vector.clone()
    for n, view in flat.to_dict(storage).items():
        params[n].data = view
    return clone, storage


def evaluate_points(
    model: nn.Module,
    criterion: Criterion,
    batches: list[Batch],
    base: Tensor,
    directions: Tensor,
    coefficients: Tensor,
    flat: FlatParams,
    buffers: dict[str, Tensor],
    buffer_directions: dict[str, Tensor] | None = None,
    memory_budget: float | None = None,
    vectorize: bool | None = None,
    precision: str = "fp32",
    info: dict[str, str] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Loss and accuracy at the points ``base + coefficients @ directions`` (P points, K directions).

    Float buffers listed in ``buffer_directions`` move the same way (``buf + c @ dbuf``); others stay fixed.
    ``vectorize``: None picks the fastest exact path, True forces vmap, False forces the plain loop (one
    ``functional_call`` of the whole model per point, the reference). None on CPU goes point by point when a
    point's activations exceed 1 MiB (one large GEMM per layer beats vmap's batched GEMMs there): MLPs
    (``nn.Sequential`` of Linear and elementwise layers) feature-major (:class:`_FeatureMajorMLP`), other
    ``nn.Sequential(nn.Linear, ...)`` models with a wide first layer through :class:`_AffinePrefix`, any other
    model through a private copy whose parameters are views of one vector (one op per point, no
    ``functional_call``); smaller activations take vmap, falling back to the loop for models vmap cannot take.
    Chunks of points are sized so that stacked parameters plus activations fit in ``memory_budget`` bytes
    (default: 64 MiB on CPU, 1 GiB on accelerators). ``precision="bf16"`` runs the forwards under bf16 autocast
    (the loss is taken in fp32). ``info``, if given, receives the chosen path under "path".
    """
    if memory_budget is None:
        memory_budget = 2**26 if base.device.type == "cpu" else 2**30
    if memory_budget <= 0:
        raise ValueError(f"memory_budget must be a positive number of bytes, got {memory_budget!r}")
    if not isinstance(vectorize, (bool, type(None))):
        raise ValueError(f"vectorize must be None, True or False, got {vectorize!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    coefficients = coefficients.to(base)
    n_points = int(coefficients.shape[0])
    buffer_directions = buffer_directions or {}
    moving = {k: (buffers[k], d) for k, d in buffer_directions.items()}
    fixed = {k: v for k, v in buffers.items() if k not in moving}
    info = {} if info is None else info

    def point_buffers(c: Tensor) -> dict[str, Tensor]:  # c: (..., K)
        out = {}
        for k, (b, d) in moving.items():  # d: (K, *shape)
            out[k] = b + torch.tensordot(c, d, dims=([-1], [0]))
        return out

    losses = np.zeros(n_points)
    correct = np.zeros(n_points)
    total = sum(int(y.shape[0]) for _, y in batches)
    classify = True

    def chosen(path: str) -> None:
        info["path"] = path
        log.debug("landscape: %d points, K=%d, %s: %s", n_points, int(directions.shape[0]), precision, path)

    def done() -> tuple[np.ndarray, np.ndarray | None]:
        return losses, (correct / total if classify else None)

    def add(i: int, out: torch.Tensor, y: torch.Tensor) -> None:
        """Add point ``i``'s loss (weighted by the batch size) and hits on one batch; ``out`` as the model gave it."""
        nonlocal classify
        out = _full(out)
        losses[i] += float(criterion(out, y)) * int(y.shape[0])
        classify = classify and is_classification(out, y)
        if classify:
            correct[i] += float((out.argmax(-1) == y).sum())

    def loop() -> None:
        nonlocal classify
        for i in range(n_points):
            w = base + coefficients[i] @ directions
            bufs = {**fixed, **point_buffers(coefficients[i])}
            loss, acc = evaluate(model, criterion, batches, flat.to_dict(w), bufs, precision)
            losses[i] = loss
            if acc is None:
                classify = False
            else:
                correct[i] = acc * total

    if vectorize is False:
        chosen("plain loop (functional_call per point)")
        loop()
        return done()

    biggest = max(batches, key=lambda b: b[0].shape[0])[0]
    act = _activation_bytes(model, flat.to_dict(base), buffers, biggest)
    if vectorize is None and base.device.type == "cpu" and act > 2**20:
        mlp = None
        if not moving:
            mlp = _FeatureMajorMLP.build(model, flat, base, directions, batches, memory_budget / 4)
        if mlp is not None:
            workers = _point_workers(n_points)
            chosen(
                "feature-major MLP, point by point"
                + (", first layer from tables" if mlp.prefix else "")
                + (f", {workers} threads of points" if workers > 1 else "")
            )
            dtype = torch.bfloat16 if precision == "bf16" else None

            def run(part: _FeatureMajorMLP, start: int, stop: int) -> bool:
                """Points [start, stop) into losses / correct; False when the outputs are not class scores."""
                scores = True
                with torch.no_grad():  # grad mode is per thread
                    for i in range(start, stop):
                        c = coefficients[i]
                        torch.add(base, c @ directions, out=part.storage)
                        for b, (_, y) in enumerate(batches):
                            loss, hits = part.loss_and_hits(criterion, part.forward(b, c, dtype), y)
                            losses[i] += loss * int(y.shape[0])
                            if hits is None:
                                scores = False
                            else:
                                correct[i] += hits
                return scores

            if workers == 1:
                classify = run(mlp, 0, n_points)
            else:
                bounds = [round(k * n_points / workers) for k in range(workers + 1)]
                parts = [mlp] + [mlp.replica() for _ in range(workers - 1)]
                with torch_threads(1), ThreadPoolExecutor(workers) as pool:
                    jobs = [pool.submit(run, part, lo, hi) for part, lo, hi in zip(parts, bounds, bounds[1:])]
                    classify = all([job.result() for job in jobs])
            losses /= total
            return done()
        prefix = None
        if not moving and memory_budget >= 2**20:
            prefix = _AffinePrefix.build(model, flat, base, directions, batches, memory_budget / 4)
        if prefix is None:
            private = _private_copy(model, flat)
            if private is None:
                chosen("plain loop (functional_call per point)")
                loop()
                return done()
            chosen("private copy, parameters set in place per point")
            clone, storage = private
            try:
                held = {k: clone.get_buffer(k) for k in buffers}
            except AttributeError:
                held = None
            if held is None:
                chosen("plain loop (functional_call per point)")
                loop()
                return done()
            with torch.no_grad():
                for k, v in fixed.items():
                    held[k].copy_(v)
                for i in range(n_points):
                    c = coefficients[i]
                    torch.add(base, c @ directions, out=storage)
                    for k, v in point_buffers(c).items():
                        held[k].copy_(v)
                    for x, y in batches:
                        with _autocast(base.device, precision):
                            out = clone(x)
                        add(i, out, y)
            losses /= total
            return done()
        chosen("first layer from tables, the rest by functional_call per point")
        # the rest of the model, one point at a time; its parameters are a slice of the flat vector
        names = [flat.names[i] for i in prefix.keep]
        sizes = [flat.sizes[i] for i in prefix.keep]
        shapes = [flat.shapes[i] for i in prefix.keep]
        kept = set(prefix.keep)
        mask = torch.cat([torch.full((s,), i in kept, device=base.device) for i, s in enumerate(flat.sizes)])
        rest_base, rest_dirs = base[mask], directions[:, mask]
        with torch.no_grad():
            for i in range(n_points):
                c = coefficients[i]
                w = rest_base + c @ rest_dirs
                params = {n: t.view(s) for n, t, s in zip(names, torch.split(w, sizes), shapes)}
                for b, (_, y) in enumerate(batches):
                    with _autocast(base.device, precision):
                        out = functional_call(
                            prefix.rest,
                            (params, fixed),
                            (prefix.first_layer(b, c),),
                            tie_weights=True,
                            strict=False,
                        )
                    add(i, out, y)
        losses /= total
        return done()

    prefix = None
    if not moving and memory_budget >= 2**20:
        prefix = _AffinePrefix.build(model, flat, base, directions, batches, memory_budget / 4)
    per_point = act + 2 * base.numel() * base.element_size()
    chunk = int(max(1, min(n_points, memory_budget // max(per_point, 1))))
    run_model = model if prefix is None else prefix.rest

    def one(w: Tensor, bufs: dict[str, Tensor], x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        params = flat.to_dict(w)
        if prefix is not None:
            params = {n: params[n] for n in (flat.names[i] for i in prefix.keep)}
        with _autocast(base.device, precision):
            out = functional_call(
                run_model, ({**params, **bufs}, fixed), (x,), tie_weights=True, strict=False
            )
        out = _full(out)
        loss = criterion(out, y)
        if is_classification(out, y):
            hits = (out.argmax(-1) == y).sum().to(loss.dtype)
        else:
            hits = torch.full_like(loss, float("nan"))
        return loss, hits

    chosen(f"vmap over chunks of {chunk} points" + (", first layer from tables" if prefix else ""))
    batched = torch.vmap(one, in_dims=(0, 0, None if prefix is None else 0, None))
    try:
        with torch.no_grad():
            for start in range(0, n_points, chunk):
                c = coefficients[start : start + chunk]
                w = base + c @ directions
                bufs = point_buffers(c)
                for b, (x, y) in enumerate(batches):
                    inputs = x if prefix is None else prefix.first_layer(b, c)
                    loss, hits = batched(w, bufs, inputs, y)
                    n = int(y.shape[0])
                    losses[start : start + chunk] += loss.double().numpy(force=True) * n
                    h = hits.double().numpy(force=True)
                    if np.isnan(h).any():
                        classify = False
                    else:
                        correct[start : start + chunk] += h
        losses /= total
    except Exception as err:  # vmap cannot take every model (data-dependent control flow, .item(), ...)
        if vectorize:
            raise
        warnings.warn(f"vmap failed ({type(err).__name__}: {err}); evaluating points in a loop", stacklevel=3)
        chosen("plain loop (functional_call per point; vmap failed)")
        losses[:] = 0.0
        correct[:] = 0.0
        classify = True
        loop()
    return done()


# ----------------------------------------------------------------------------------------------- directions
def random_directions(
    model: nn.Module,
    n: int = 2,
    normalization: str = "filter",
    ignore: str | None = "biasbn",
    seed: int = 0,
) -> list[dict[str, Tensor]]:
    """``n`` Gaussian directions in parameter space, each a name -> tensor dict shaped like the parameters.

    ``normalization="filter"`` scales each output-channel/row slice d_i of a >=2-D parameter to ||w_i||
    (Li et al. 2018, eq. in Sec. 4); ``"layer"`` scales each parameter tensor to ||w||; ``"none"`` leaves N(0, 1).
    ``ignore="biasbn"`` gives 1-D parameters (biases, norm scales) zero directions; otherwise they are scaled
    as a whole to ||w|| (unless ``normalization="none"``).
    """
    check_model(model)
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    ignore = "none" if ignore is None else ignore
    if ignore not in IGNORES:
        raise ValueError(f"ignore must be one of {IGNORES} or None, got {ignore!r}")
    gen = torch.Generator().manual_seed(int(seed))
    out = []
    for _ in range(n):
        direction = {}
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            w = p.detach()
            d = torch.randn(w.shape, generator=gen, dtype=torch.float64).to(dtype=w.dtype, device=w.device)
            if w.ndim <= 1 and ignore == "biasbn":
                d.zero_()
            elif normalization == "filter" and w.ndim >= 2:
                wn = w.reshape(w.shape[0], -1).norm(dim=1)
                dn = d.reshape(d.shape[0], -1).norm(dim=1)
                d = d * (wn / (dn + 1e-10)).reshape(-1, *([1] * (w.ndim - 1)))
            elif normalization in ("filter", "layer"):
                d = d * (w.norm() / (d.norm() + 1e-10))
            direction[name] = d
        out.append(direction)
    return out


# ----------------------------------------------------------------------------------------------- results
@dataclass
class LineResult:
    """Loss (and accuracy for class scores) along ``w + alpha * d`` for each ``alpha`` in ``alphas``;
    ``evaluation`` names the path that computed it (see :func:`evaluate_points`)."""

    alphas: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray | None
    direction: dict[str, Tensor] | None = None
    kind: str = "line"
    evaluation: str = ""


@dataclass
class PlaneResult:
    """Loss on ``w + a d1 + b d2``; ``loss[i, j]`` is at ``(alphas[i], betas[j])``; ``cosine`` = cos(d1, d2);
    ``evaluation`` names the path that computed it."""

    alphas: np.ndarray
    betas: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray | None
    directions: tuple[dict[str, Tensor], dict[str, Tensor]]
    cosine: float
    evaluation: str = ""


def _direction_vector(flat: FlatParams, model: nn.Module, direction: Any, name: str) -> Tensor:
    if isinstance(direction, nn.Module):
        other = FlatParams(direction)
        if other.names != flat.names or other.shapes != flat.shapes:
            raise ValueError(f"{name} is a model whose parameters do not match the model's")
        return other.vector.to(flat.vector) - flat.vector
    if isinstance(direction, dict):
        return flat.from_dict(direction, fill_missing=True)
    if isinstance(direction, Tensor):
        if direction.numel() != flat.numel:
            raise ValueError(
                f"{name} has {direction.numel()} elements, the model has {flat.numel} parameters"
            )
        return direction.detach().reshape(-1).to(flat.vector)
    raise TypeError(
        f"{name} must be None, an nn.Module, a name->tensor dict or a flat tensor, got {direction!r}"
    )


def _check_span(span: Any, name: str) -> tuple[float, float]:
    try:
        lo, hi = (float(s) for s in span)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (low, high) pair of numbers, got {span!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} must be a pair of finite numbers, got {span!r}")
    big = float(torch.finfo(torch.float32).max)
    if max(abs(lo), abs(hi)) > big or not math.isfinite(hi - lo):  # w + a d would overflow the parameters
        raise ValueError(
            f"{name} must lie within +-{big:.3g} (float32 parameters overflow beyond), got {span!r}"
        )
    if not lo < hi:
        raise ValueError(f"{name} must have low < high, got {span!r}")
    return lo, hi


def _check_precision(precision: Any, flat: FlatParams) -> str:
    """Validate ``precision``; warn when bf16 is asked for where its matmuls are emulated (slower than fp32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "bf16" and flat.vector.device.type == "cpu":
        from descentlab.hardware import current

        hw = current()
        if not hw.fast_bf16:
            warnings.warn(
                f"precision='bf16' on a CPU without native bf16 matmuls ({hw.kind}): emulated, slower than fp32 "
                f"here ({_BF16_SLOWDOWN_AVX2} on AVX2) and less exact; fp32 is the default",
                stacklevel=3,
            )
    return precision


def _check_points(points: Any, name: str) -> int:
    if not isinstance(points, int) or points < 2:
        raise ValueError(f"{name} must be an integer >= 2, got {points!r}")
    return points


def line(
    model: nn.Module,
    criterion: Criterion,
    data: Data,
    direction: nn.Module | dict[str, Tensor] | Tensor | None = None,
    span: tuple[float, float] = (-1.0, 1.0),
    points: int = 51,
    normalization: str = "filter",
    ignore: str | None = "biasbn",
    seed: int = 0,
    memory_budget: float | None = None,
    vectorize: bool | None = None,
    precision: str = "fp32",
) -> LineResult:
    """Loss along the line L(a) = L(w + a d), a in ``span`` (seed 002, "проекция на прямую").

    ``direction=None`` draws a random direction (see :func:`random_directions`); an ``nn.Module`` gives
    d = other - model (parameters only; buffers stay the model's -- use :func:`interpolate` to move them too).
    Evaluated in eval mode (BatchNorm uses its running statistics).
    """
    check_model(model)
    batches = as_batches(data)
    lo, hi = _check_span(span, "span")
    points = _check_points(points, "points")
    flat = FlatParams(model)
    if direction is None:
        direction = random_directions(model, 1, normalization, ignore, seed)[0]
    d = _direction_vector(flat, model, direction, "direction")
    alphas = torch.linspace(lo, hi, points, dtype=torch.float64)
    info: dict[str, str] = {}
    with training_mode(model, False):
        loss, acc = evaluate_points(
            model, criterion, batches, flat.vector, d[None], alphas[:, None], flat, buffers_of(model),
            memory_budget=memory_budget, vectorize=vectorize, precision=_check_precision(precision, flat),
            info=info,
        )  # fmt: skip
    return LineResult(alphas.numpy(), loss, acc, flat.to_dict(d), evaluation=info.get("path", ""))


def plane(
    model: nn.Module,
    criterion: Criterion,
    data: Data,
    directions: tuple[Any, Any] | list[Any] | None = None,
    span: tuple[tuple[float, float], tuple[float, float]] = ((-1.0, 1.0), (-1.0, 1.0)),
    points: tuple[int, int] = (51, 51),
    normalization: str = "filter",
    ignore: str | None = "biasbn",
    seed: int = 0,
    memory_budget: float | None = None,
    vectorize: bool | None = None,
    precision: str = "fp32",
) -> PlaneResult:
    """Loss on the plane L(a, b) = L(w + a d1 + b d2) over ``span`` (Li et al. 2018; seed 002).

    ``directions=None`` draws two filter-normalized Gaussian directions; otherwise give two directions, each a
    model (d = other - model), a name -> tensor dict or a flat tensor. Evaluated in eval mode.
    ``vectorize``: None (fastest exact path), True (vmap) or False (plain per-point loop); see ``evaluate_points``.
    ``precision="bf16"``: opt-in bf16 autocast for the forwards (fp32 loss); fast only where bf16 matmuls are
    native (AMX/AVX512-BF16, GPUs) -- elsewhere it warns, since it is slower than fp32 there (docs/performance.md).
    """
    check_model(model)
    batches = as_batches(data)
    try:
        (span_a, span_b), (pa, pb) = span, points
    except (TypeError, ValueError):
        raise ValueError(
            f"span must be two (low, high) pairs and points two integers, got {span!r}, {points!r}"
        ) from None
    lo_a, hi_a = _check_span(span_a, "span[0]")
    lo_b, hi_b = _check_span(span_b, "span[1]")
    pa, pb = _check_points(pa, "points[0]"), _check_points(pb, "points[1]")
    flat = FlatParams(model)
    if directions is None:
        directions = random_directions(model, 2, normalization, ignore, seed)
    if len(directions) != 2:
        raise ValueError(f"directions must hold exactly 2 directions, got {len(directions)}")
    d1 = _direction_vector(flat, model, directions[0], "directions[0]")
    d2 = _direction_vector(flat, model, directions[1], "directions[1]")
    alphas = torch.linspace(lo_a, hi_a, pa, dtype=torch.float64)
    betas = torch.linspace(lo_b, hi_b, pb, dtype=torch.float64)
    grid = torch.cartesian_prod(
        alphas, betas
    )  # (pa*pb, 2), beta fastest -> loss[i, j] = (alphas[i], betas[j])
    info: dict[str, str] = {}
    with training_mode(model, False):
        loss, acc = evaluate_points(
            model, criterion, batches, flat.vector, torch.stack([d1, d2]), grid, flat, buffers_of(model),
            memory_budget=memory_budget, vectorize=vectorize, precision=_check_precision(precision, flat),
            info=info,
        )  # fmt: skip
    cosine = float(torch.dot(d1.double(), d2.double()) / (d1.double().norm() * d2.double().norm() + 1e-300))
    return PlaneResult(
        alphas.numpy(),
        betas.numpy(),
        loss.reshape(pa, pb),
        None if acc is None else acc.reshape(pa, pb),
        (flat.to_dict(d1), flat.to_dict(d2)),
        cosine,
        evaluation=info.get("path", ""),
    )


def interpolate(
    model_a: nn.Module,
    model_b: nn.Module,
    criterion: Criterion,
    data: Data,
    points: int = 51,
    span: tuple[float, float] = (0.0, 1.0),
    memory_budget: float | None = None,
    vectorize: bool | None = None,
    precision: str = "fp32",
) -> LineResult:
    """Loss on the straight path (1 - t) w_a + t w_b, floating-point buffers interpolated too (eval mode).

    ``span=(0, 1)`` runs from model_a to model_b; a wider span extrapolates (Goodfellow et al. 2015).
    """
    check_model(model_a, "model_a")
    check_model(model_b, "model_b")
    batches = as_batches(data)
    lo, hi = _check_span(span, "span")
    points = _check_points(points, "points")
    flat = FlatParams(model_a)
    d = _direction_vector(flat, model_a, model_b, "model_b")
    buf_a, buf_b = buffers_of(model_a), buffers_of(model_b)
    if buf_a.keys() != buf_b.keys():
        raise ValueError("model_a and model_b have different buffers")
    buffer_directions = {
        k: (buf_b[k].to(v) - v)[None] for k, v in buf_a.items() if v.dtype.is_floating_point
    }  # fmt: skip
    ts = torch.linspace(lo, hi, points, dtype=torch.float64)
    info: dict[str, str] = {}
    with training_mode(model_a, False):
        loss, acc = evaluate_points(
            model_a, criterion, batches, flat.vector, d[None], ts[:, None], flat, buf_a, buffer_directions,
            memory_budget=memory_budget, vectorize=vectorize, precision=_check_precision(precision, flat),
            info=info,
        )  # fmt: skip
    return LineResult(
        ts.numpy(), loss, acc, flat.to_dict(d), kind="interpolation", evaluation=info.get("path", "")
    )
