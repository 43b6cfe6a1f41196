"""msign(G) = U V^T, the orthogonal polar factor, by Newton–Schulz, Polar Express or SVD.

Seed 003 ("Understanding the Matrix Sign Function"): msign(M) = U_{[:, :r]} V_{[:, :r]}^T for the reduced SVD
M = U S V^T of rank r; it is the spectral-norm LMO that Muon steps along. The iterations only use matrix products:
each step maps X -> a X + b (X X^T) X + c (X X^T)^2 X, i.e. applies the odd quintic p(s) = a s + b s^3 + c s^5 to every
singular value of X (after a Frobenius normalization puts them in [0, 1]).
"""

from __future__ import annotations

import functools
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch
from torch import Tensor

from descentlab.hardware import Hardware, current
from descentlab.threads import torch_threads

__all__ = [
    "METHODS",
    "NEWTON_SCHULZ_COEFFICIENTS",
    "POLAR_EXPRESS_COEFFICIENTS",
    "POLAR_EXPRESS_SAFETY",
    "Plan",
    "choose_plan",
    "explain_plans",
    "orthogonalize",
    "singular_value_band",
]

log = logging.getLogger("descentlab.kernels")

METHODS = ("newton_schulz", "polar_express", "svd")

# K. Jordan, "Muon: An optimizer for hidden layers in neural networks" (2024): one quintic for every step.
NEWTON_SCHULZ_COEFFICIENTS: tuple[float, float, float] = (3.4445, -4.7750, 2.0315)

# Amsel, Persson, Musco, Gower, "The Polar Express: Optimal Matrix Sign Methods and Their Application to the Muon
# Algorithm" (2025), Algorithm 1: the optimal degree-5 polynomial of each step (l = 1e-3), later steps repeat the last.
_POLAR_EXPRESS_RAW: tuple[tuple[float, float, float], ...] = (
    (8.28721201814563, -23.595886519098837, 17.300387312530933),
    (4.107059111542203, -2.9478499167379106, 0.5448431082926601),
    (3.9486908534822946, -2.908902115962949, 0.5518191394370137),
    (3.3184196573706015, -2.488488024314874, 0.51004894012372),
    (2.300652019954817, -1.6689039845747493, 0.4188073119525673),
    (1.891301407787398, -1.2679958271945868, 0.37680408948524835),
    (1.8750014808534479, -1.2500016453999487, 0.3750001645474248),
    (1.875, -1.25, 0.375),
)
# The paper's safety factor for half precision (its Section 4.4): every polynomial but the last is evaluated at
# s / 1.01, and the input is normalized by 1.01 * ||G||_F.
POLAR_EXPRESS_SAFETY = 1.01
POLAR_EXPRESS_COEFFICIENTS: tuple[tuple[float, float, float], ...] = tuple(
    (a / POLAR_EXPRESS_SAFETY, b / POLAR_EXPRESS_SAFETY**3, c / POLAR_EXPRESS_SAFETY**5)
    for a, b, c in _POLAR_EXPRESS_RAW[:-1]
) + (_POLAR_EXPRESS_RAW[-1],)

# The Gram iteration pays 2 (rows x rows x cols) products once plus ~4 rows^3 per step, the direct one
# 2 rows^2 cols + rows^3 per step: it wins on flops once cols / rows exceeds ~1.6; 2 keeps a margin.
_GRAM_MIN_ASPECT = 2.0


def _coefficients(method: str, steps: int) -> list[tuple[float, float, float]]:
    if method == "newton_schulz":
        return [NEWTON_SCHULZ_COEFFICIENTS] * steps
    table = list(POLAR_EXPRESS_COEFFICIENTS)
    return table[:steps] + [table[-1]] * max(0, steps - len(table))


def _cpu_has_fast_bf16() -> bool:
    """bf16 matmuls are native on this CPU (AMX or AVX512-BF16)."""
    return current().fast_bf16


def _msign_svd(G: Tensor) -> Tensor:
    """Exact U_r V_r^T in float64 (singular values below the numerical rank threshold are dropped)."""
    X = G.to(torch.float64)
    U, S, Vh = torch.linalg.svd(X, full_matrices=False)
    tol = S.amax(dim=-1, keepdim=True) * max(X.shape[-2:]) * torch.finfo(torch.float64).eps
    keep = (S > tol).to(X.dtype)
    return ((U * keep.unsqueeze(-2)) @ Vh).to(G.dtype)


def _mm(A: Tensor, B: Tensor) -> Tensor:
    return A @ B


def _addmm(C: Tensor, A: Tensor, B: Tensor, beta: float, alpha: float = 1.0) -> Tensor:
    """beta C + alpha A B for one matrix (addmm) or a batch (baddbmm)."""
    if A.ndim == 2:
        return torch.addmm(C, A, B, beta=beta, alpha=alpha)
    return torch.baddbmm(C, A, B, beta=beta, alpha=alpha)


# Products whose result is symmetric (X X^T, and every product of two polynomials in the same Gram matrix) are
# computed block row by block row on and above the diagonal, the rest mirrored: (k + 1) / (2k) of the flops for k
# strips. Below _SYM_MIN_ROWS the plain product wins (measured, 1 thread: 256 is 1.1x slower with strips, 512
# 0.88x, 1024 0.76x of the plain NS); CPU matrices only (CUDA takes the batch).
_SYM_MIN_ROWS = 384
_SYM_STRIP_ROWS = 128


def _sym_strips(n: int) -> int:
    """Number of row strips for an n x n symmetric product (1: plain product)."""
    return 1 if n < _SYM_MIN_ROWS else max(2, round(n / _SYM_STRIP_ROWS))


def _sym_mm(
    A: Tensor, B: Tensor, C: Tensor | None = None, beta: float = 0.0, alpha: float = 1.0, strips: bool = True
) -> Tensor:
    """A B (or beta C + alpha A B with C symmetric) for a square product known to be symmetric.

    One matrix with ``strips``: only the strips on and above the diagonal are multiplied (addmm into views of
    the output), the blocks below are transposed copies. A batch, a small matrix or ``strips=False`` takes the
    plain product.
    """
    n = A.shape[-2]
    k = _sym_strips(n) if strips else 1
    if A.ndim != 2 or k == 1:
        if C is None:
            return _mm(A, B) if alpha == 1.0 else _mm(A, B).mul_(alpha)
        return _addmm(C, A, B, beta=beta, alpha=alpha)
    out = torch.empty((n, n), dtype=A.dtype, device=A.device)
    bounds = [round(i * n / k) for i in range(k + 1)]
    for r0, r1 in zip(bounds[:-1], bounds[1:]):
        if C is None:
            torch.mm(A[r0:r1], B[:, r0:], out=out[r0:r1, r0:])
            if alpha != 1.0:
                out[r0:r1, r0:].mul_(alpha)
        else:
            torch.addmm(C[r0:r1, r0:], A[r0:r1], B[:, r0:], beta=beta, alpha=alpha, out=out[r0:r1, r0:])
    for r0, r1 in zip(bounds[1:-1], bounds[2:]):
        out[r0:r1, :r0].copy_(out[:r0, r0:r1].mT)
    return out


def _iterate_direct(X: Tensor, coefficients: list[tuple[float, float, float]], strips: bool = True) -> Tensor:
    """X <- a X + (b A + c A^2) X with A = X X^T (X wide; one matrix or a batch); A and A^2 by ``_sym_mm``."""
    for a, b, c in coefficients:
        A = _sym_mm(X, X.mT, strips=strips)
        B = _sym_mm(A, A, A, beta=b, alpha=c, strips=strips)
        X = _addmm(X, B, X, beta=a)
    return X


def _iterate_gram(
    X: Tensor, coefficients: list[tuple[float, float, float]], restart_every: int, strips: bool = True
) -> Tensor:
    """Same polynomial as ``_iterate_direct`` carried on the small side: X_k = Q_k X_0, R_k = X_k X_k^T.

    With P_k = a I + b R_k + c R_k^2 (a polynomial in R_k, so they commute): Q_{k+1} = P_k Q_k and
    R_{k+1} = P_k R_k P_k. Only rows x rows products inside the loop, all of them symmetric (products of
    polynomials in R_0), so all go through ``_sym_mm``; X is touched at the start and the end.
    R squares the condition number, so in low precision the iteration restarts (X <- Q X, R <- X X^T) every
    ``restart_every`` steps; 0 never restarts.
    """

    def sym(*args: Tensor, **kwargs: float) -> Tensor:
        return _sym_mm(*args, **kwargs, strips=strips)

    R = sym(X, X.mT)
    eye = torch.eye(R.shape[-1], dtype=R.dtype, device=R.device)
    Q: Tensor | None = None
    last = len(coefficients) - 1
    for k, (a, b, c) in enumerate(coefficients):
        if restart_every and k and k % restart_every == 0 and Q is not None:
            X = _mm(Q, X)
            Q = None
            R = sym(X, X.mT)
        P = sym(R, R, R, beta=b, alpha=c).add_(eye, alpha=a)
        Q = P if Q is None else sym(P, Q)
        if k < last:
            R = sym(sym(P, R), P)
    assert Q is not None
    return _mm(Q, X)


@dataclass(frozen=True)
class Plan:
    """How ``orthogonalize`` computes msign for one (device, dtype, shape): the working precision, the Gram
    iteration or the direct one, strip-wise symmetric products or plain ones, the batch in one bmm or a loop."""

    dtype: torch.dtype
    gram: bool
    strips: bool
    batched: bool
    reasons: tuple[str, ...] = ()
    source: str = "rule"
    split: bool = False

    def describe(self) -> str:
        """One line: the choices, then why."""
        dt = str(self.dtype).removeprefix("torch.")
        order = "one batched product" if self.batched else "matrix by matrix"
        if self.split:
            order = "matrices split over torch's threads, one thread each"
        head = (f"{dt}, {'Gram' if self.gram else 'direct'} iteration, "
                f"{'strip-wise symmetric' if self.strips else 'plain'} products, {order} ({self.source})")  # fmt: skip
        return head + "".join(f"; {r}" for r in self.reasons)


# The measurements behind the rule (Muon step on 12x512^2 + 4x2048x512 + 4x512x2048, benchmarks/optim_step.py):
# AVX2 (AMD EPYC, 2 cores): bf16 is emulated, torch's NS on 512^2 in bf16 takes 63x its fp32 time -> fp32;
#   strip-wise symmetric products, 1 thread: 256 rows 1.1x slower, 512 rows 0.88x, 1024 rows 0.76x of plain.
# AMX (Intel Xeon, 2 cores, issue 21): with strips in bf16 our step took 1.27x torch.optim.Muon's (bf16, plain
#   products): the tile engine wants one large product, so bf16 on AMX takes plain products.
_SPLIT_MIN_WORK = 128**3  # rows^2 cols below which a thread per matrix costs more than it gives
_EMULATED_BF16 = "bf16 is emulated here (torch's NS 512^2: 63x its fp32 time on AVX2)"


def _rule(
    rows: int, cols: int, batch: int, device: str, work: torch.dtype, gram: bool | None, hw: Hardware
) -> Plan:
    reasons = []
    if gram is None:
        use_gram = cols >= _GRAM_MIN_ASPECT * rows
        if use_gram:
            reasons.append(f"Gram: cols/rows = {cols / rows:.1f} >= {_GRAM_MIN_ASPECT:g} (fewer flops)")
    else:
        use_gram = bool(gram)
    low = torch.finfo(work).bits <= 16
    if device != "cpu":
        return Plan(work, use_gram, False, True, (*reasons, f"{device}: plain batched products"))
    if rows < _SYM_MIN_ROWS:
        strips = False
        reasons.append(f"plain products: {rows} rows < {_SYM_MIN_ROWS} (strips measured slower)")
    elif low and hw.amx:
        strips = False
        reasons.append("plain products: on AMX strip-wise bf16 products lose to one large product (issue 21: "
                       "with strips our step took 1.27x torch's)")  # fmt: skip
    else:
        strips = True
        why = "measured 0.88x at 512 rows, 0.76x at 1024 (AVX2, fp32)"
        if low and not hw.fast_bf16:
            why += "; " + _EMULATED_BF16
        elif low:
            why += "; AVX512-BF16 without AMX not measured: treated as vector units"
        reasons.append(f"strip-wise symmetric products: {why}")
    reasons.append("CPU: matrix by matrix (bmm measured 1.3x slower)")
    split = batch > 1 and rows * rows * cols >= _SPLIT_MIN_WORK
    if split:
        reasons.append("a batch is split over the threads torch may use, one torch thread per matrix (no per-product "
                       "barriers: 2 threads on a loaded AVX2 machine made the step 1.6x torch's with them)")  # fmt: skip
    return Plan(work, use_gram, strips, False, tuple(reasons), split=split)


def _working_dtype(device: str, input_dtype: torch.dtype, dtype: torch.dtype | None, hw: Hardware) -> tuple:
    if dtype is not None:
        return dtype, "dtype given"
    if input_dtype == torch.float64:
        return torch.float64, "float64 input stays float64"
    if device != "cpu":
        return torch.bfloat16, f"bf16 on {device}"
    if hw.fast_bf16:
        return torch.bfloat16, f"bf16: native on {hw.kind}"
    return torch.float32, f"fp32: {_EMULATED_BF16}"


def choose_plan(
    shape: tuple[int, ...] | torch.Size,
    device: str = "cpu",
    input_dtype: torch.dtype = torch.float32,
    dtype: torch.dtype | None = None,
    gram: bool | None = None,
    hardware: Hardware | None = None,
) -> Plan:
    """The plan for a matrix (or a batch, leading dims) of ``shape`` on ``device``.

    Deterministic for a given ``hardware`` (default: this machine): a rule backed by the measurements above.
    With the environment variable ``DESCENTLAB_KERNELS=measure`` (and no ``hardware`` given) the strip/plain and
    Gram/direct choices are instead timed once per (device, dtype, shape) in this process and cached.
    """
    hw = current() if hardware is None else hardware
    *lead, r, c = (int(d) for d in shape)
    rows, cols = min(r, c), max(r, c)
    batch = 1
    for d in lead:
        batch *= d
    work, why = _working_dtype(str(device), input_dtype, dtype, hw)
    measure = hardware is None and os.environ.get("DESCENTLAB_KERNELS", "rule") == "measure"
    if measure and str(device) == "cpu":
        return _measured(rows, cols, batch, work, why, gram)
    return _ruled(rows, cols, batch, str(device), work, why, gram, hw)


@functools.lru_cache(maxsize=256)
def _ruled(
    rows: int,
    cols: int,
    batch: int,
    device: str,
    work: torch.dtype,
    why: str,
    gram: bool | None,
    hw: Hardware,
) -> Plan:
    plan = _rule(rows, cols, batch, device, work, gram, hw)
    plan = Plan(plan.dtype, plan.gram, plan.strips, plan.batched, (why, *plan.reasons), split=plan.split)
    log.debug(
        "orthogonalize %dx%d (batch %d) on %s, %s: %s", rows, cols, batch, device, hw.kind, plan.describe()
    )
    return plan


@functools.lru_cache(maxsize=256)
def _measured(rows: int, cols: int, batch: int, work: torch.dtype, why: str, gram: bool | None) -> Plan:
    """Time each candidate once (after a warm-up) on a random rows x cols matrix; keep the fastest."""
    X = torch.randn(rows, cols, generator=torch.Generator().manual_seed(0)).to(work)
    X = X / torch.linalg.vector_norm(X)
    coefficients = [NEWTON_SCHULZ_COEFFICIENTS] * 5
    restart = 3 if torch.finfo(work).bits <= 16 else 0
    grams = [bool(gram)] if gram is not None else sorted({False, cols >= _GRAM_MIN_ASPECT * rows})
    timings = {}
    for g in grams:
        for strips in (False, True) if rows >= _SYM_MIN_ROWS else (False,):

            def run(g: bool = g, strips: bool = strips) -> Tensor:
                if g:
                    return _iterate_gram(X, coefficients, restart, strips)
                return _iterate_direct(X, coefficients, strips)

            run()
            t0 = time.perf_counter()
            run()
            timings[(g, strips)] = time.perf_counter() - t0
    (g, strips), best = min(timings.items(), key=lambda kv: kv[1])
    table = ", ".join(f"{'Gram' if k[0] else 'direct'}/{'strips' if k[1] else 'plain'} {v * 1e3:.1f} ms"
                      for k, v in sorted(timings.items()))  # fmt: skip
    split = batch > 1 and rows * rows * cols >= _SPLIT_MIN_WORK
    plan = Plan(work, g, strips, False, (why, f"timed once: {table}"), source="measured", split=split)
    log.debug("orthogonalize %dx%d (batch %d) on cpu: %s", rows, cols, batch, plan.describe())
    return plan


def explain_plans(
    shapes: list[tuple[int, ...]] | None = None, device: str = "cpu", hardware: Hardware | None = None
) -> list[str]:
    """Lines: the machine, then the plan for each shape (default: Muon's benchmark shapes and a small one)."""
    hw = current() if hardware is None else hardware
    shapes = shapes or [(128, 128), (512, 512), (512, 2048), (2048, 512), (1024, 1024)]
    lines = [f"hardware: {hw.describe()}"]
    for shape in shapes:
        plan = choose_plan(shape, device, hardware=hardware)
        lines.append(f"{'x'.join(map(str, shape))}: {plan.describe()}")
    return lines


def orthogonalize(
    G: Tensor,
    method: str = "newton_schulz",
    steps: int = 5,
    eps: float = 1e-7,
    dtype: torch.dtype | None = None,
    gram: bool | None = None,
    hardware: Hardware | None = None,
) -> Tensor:
    """Approximate msign(G) = U V^T of a matrix or a batch of matrices (leading dims are batch dims).

    ``method``: "newton_schulz" (Jordan's quintic (3.4445, -4.7750, 2.0315), its singular values land in a band
    around 1, not at 1), "polar_express" (Amsel et al. 2025, per-step optimal quintics with the 1.01 safety factor)
    or "svd" (exact, float64). Tall matrices are transposed so the iteration runs on the small side; the input is
    normalized by its Frobenius norm (+ ``eps``). ``dtype`` is the working precision (default: bf16 on CUDA and on
    CPUs with native bf16 matmuls, else fp32; float64 input stays float64). ``gram`` iterates on the small side's
    Gram matrix (fewer flops for matrices wider than 2:1; default: on for those). The kernels are picked by
    :func:`choose_plan` for the device, dtype and shape (strip-wise symmetric products on CPU vector units >= 384
    rows, plain products on AMX bf16 and GPUs); every plan computes the same polynomial, so plans agree to the
    working precision's rounding (fp32: ~1e-5 of the entries, bf16: ~2e-2). ``hardware`` plans for another
    machine kind (a :class:`~descentlab.hardware.Hardware`; default this one). Returns G's dtype and shape.
    """
    if not isinstance(G, Tensor):
        raise TypeError(f"G must be a torch.Tensor, got {type(G).__name__}")
    if G.ndim < 2:
        raise ValueError(
            f"G must have at least 2 dimensions (a matrix or a batch of them), got shape {tuple(G.shape)}"
        )
    if method not in METHODS:
        raise ValueError(f"unknown orthogonalization method {method!r} (allowed: {', '.join(METHODS)})")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}")
    if method == "svd":
        return _msign_svd(G)
    if dtype is not None and not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating dtype, got {dtype}")
    plan = choose_plan(G.shape, G.device.type, G.dtype, dtype, gram, hardware)
    work = plan.dtype

    shape = G.shape
    X = G.reshape(-1, shape[-2], shape[-1]).to(work)
    tall = shape[-2] > shape[-1]
    if tall:
        X = X.mT
    safety = POLAR_EXPRESS_SAFETY if method == "polar_express" else 1.0
    norm = torch.linalg.vector_norm(X, dim=(-2, -1), keepdim=True)
    X = X / (norm * safety + eps)
    coefficients = _coefficients(method, steps)
    restart_every = 3 if torch.finfo(work).bits <= 16 else 0

    def run(Y: Tensor) -> Tensor:
        if plan.gram:
            return _iterate_gram(Y, coefficients, restart_every, plan.strips)
        return _iterate_direct(Y, coefficients, plan.strips)

    workers = min(torch.get_num_threads(), X.shape[0]) if plan.split else 1
    if plan.batched or X.shape[0] == 1:
        X = run(X if plan.batched else X[0]).reshape(X.shape)
    elif workers > 1:  # matrices in parallel, one torch thread each; the caller's setting comes back after
        with torch_threads(1), ThreadPoolExecutor(workers) as pool:
            X = torch.stack(list(pool.map(run, X.unbind(0))))
    else:
        X = torch.stack([run(x) for x in X.unbind(0)])
    if tall:
        X = X.mT
    return X.to(G.dtype).reshape(shape)


def singular_value_band(X: Tensor) -> tuple[float, float]:
    """(min, max) singular value over a matrix or a batch of matrices (float64 SVD) — how close X is to U V^T."""
    s = torch.linalg.svdvals(X.to(torch.float64))
    return float(s.min()), float(s.max())
