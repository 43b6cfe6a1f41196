"""msign(G) = U V^T, the orthogonal polar factor, by Newton–Schulz, Polar Express or SVD.

Seed 003 ("Understanding the Matrix Sign Function"): msign(M) = U_{[:, :r]} V_{[:, :r]}^T for the reduced SVD
M = U S V^T of rank r; it is the spectral-norm LMO that Muon steps along. The iterations only use matrix products:
each step maps X -> a X + b (X X^T) X + c (X X^T)^2 X, i.e. applies the odd quintic p(s) = a s + b s^3 + c s^5 to every
singular value of X (after a Frobenius normalization puts them in [0, 1]).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "METHODS",
    "NEWTON_SCHULZ_COEFFICIENTS",
    "POLAR_EXPRESS_COEFFICIENTS",
    "POLAR_EXPRESS_SAFETY",
    "orthogonalize",
    "singular_value_band",
]

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


def _default_dtype(G: Tensor) -> torch.dtype:
    """bf16 where its matmuls are fast (CUDA; CPUs with AVX512-BF16/AMX), else fp32."""
    if G.dtype == torch.float64:
        return torch.float64
    if G.is_cuda:
        return torch.bfloat16
    if G.device.type == "cpu" and _cpu_has_fast_bf16():
        return torch.bfloat16
    return torch.float32


_FAST_BF16: bool | None = None


def _cpu_has_fast_bf16() -> bool:
    global _FAST_BF16
    if _FAST_BF16 is None:
        flags = ""
        try:
            with open("/proc/cpuinfo") as f:
                flags = f.read()
        except OSError:
            pass
        _FAST_BF16 = "avx512_bf16" in flags or "amx_bf16" in flags
    return _FAST_BF16


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


def _sym_mm(A: Tensor, B: Tensor, C: Tensor | None = None, beta: float = 0.0, alpha: float = 1.0) -> Tensor:
    """A B (or beta C + alpha A B with C symmetric) for a square product known to be symmetric.

    One matrix: only the strips on and above the diagonal are multiplied (addmm into views of the output), the
    blocks below are transposed copies. A batch, or a small matrix, takes the plain product.
    """
    n = A.shape[-2]
    k = _sym_strips(n)
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


def _iterate_direct(X: Tensor, coefficients: list[tuple[float, float, float]]) -> Tensor:
    """X <- a X + (b A + c A^2) X with A = X X^T (X wide; one matrix or a batch); A and A^2 by ``_sym_mm``."""
    for a, b, c in coefficients:
        A = _sym_mm(X, X.mT)
        B = _sym_mm(A, A, A, beta=b, alpha=c)
        X = _addmm(X, B, X, beta=a)
    return X


def _iterate_gram(X: Tensor, coefficients: list[tuple[float, float, float]], restart_every: int) -> Tensor:
    """Same polynomial as ``_iterate_direct`` carried on the small side: X_k = Q_k X_0, R_k = X_k X_k^T.

    With P_k = a I + b R_k + c R_k^2 (a polynomial in R_k, so they commute): Q_{k+1} = P_k Q_k and
    R_{k+1} = P_k R_k P_k. Only rows x rows products inside the loop, all of them symmetric (products of
    polynomials in R_0), so all go through ``_sym_mm``; X is touched at the start and the end.
    R squares the condition number, so in low precision the iteration restarts (X <- Q X, R <- X X^T) every
    ``restart_every`` steps; 0 never restarts.
    """
    R = _sym_mm(X, X.mT)
    eye = torch.eye(R.shape[-1], dtype=R.dtype, device=R.device)
    Q: Tensor | None = None
    last = len(coefficients) - 1
    for k, (a, b, c) in enumerate(coefficients):
        if restart_every and k and k % restart_every == 0 and Q is not None:
            X = _mm(Q, X)
            Q = None
            R = _sym_mm(X, X.mT)
        P = _sym_mm(R, R, R, beta=b, alpha=c).add_(eye, alpha=a)
        Q = P if Q is None else _sym_mm(P, Q)
        if k < last:
            R = _sym_mm(_sym_mm(P, R), P)
    assert Q is not None
    return _mm(Q, X)


def orthogonalize(
    G: Tensor,
    method: str = "newton_schulz",
    steps: int = 5,
    eps: float = 1e-7,
    dtype: torch.dtype | None = None,
    gram: bool | None = None,
) -> Tensor:
    """Approximate msign(G) = U V^T of a matrix or a batch of matrices (leading dims are batch dims).

    ``method``: "newton_schulz" (Jordan's quintic (3.4445, -4.7750, 2.0315), its singular values land in a band
    around 1, not at 1), "polar_express" (Amsel et al. 2025, per-step optimal quintics with the 1.01 safety factor)
    or "svd" (exact, float64). Tall matrices are transposed so the iteration runs on the small side; the input is
    normalized by its Frobenius norm (+ ``eps``). ``dtype`` is the working precision (default: bf16 on CUDA and on
    CPUs with native bf16 matmuls, else fp32; float64 input stays float64). ``gram`` iterates on the small side's
    Gram matrix (fewer flops for matrices wider than 2:1; default: on for those). On CPU, products known to be
    symmetric are computed strip-wise on and above the diagonal (>= 384 rows). Returns G's dtype and shape.
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
    work = _default_dtype(G) if dtype is None else dtype
    if not work.is_floating_point:
        raise ValueError(f"dtype must be a floating dtype, got {work}")

    shape = G.shape
    X = G.reshape(-1, shape[-2], shape[-1]).to(work)
    tall = shape[-2] > shape[-1]
    if tall:
        X = X.mT
    safety = POLAR_EXPRESS_SAFETY if method == "polar_express" else 1.0
    norm = torch.linalg.vector_norm(X, dim=(-2, -1), keepdim=True)
    X = X / (norm * safety + eps)
    coefficients = _coefficients(method, steps)
    rows, cols = X.shape[-2:]
    use_gram = (cols >= _GRAM_MIN_ASPECT * rows) if gram is None else bool(gram)
    restart_every = 3 if torch.finfo(work).bits <= 16 else 0

    def run(Y: Tensor) -> Tensor:
        return _iterate_gram(Y, coefficients, restart_every) if use_gram else _iterate_direct(Y, coefficients)

    if X.device.type == "cpu":
        # CPU bmm is slower than a loop of mm (measured: 12 x 512^2 bf16, 1.3x); CUDA takes the whole batch.
        X = run(X[0]).unsqueeze(0) if X.shape[0] == 1 else torch.stack([run(x) for x in X.unbind(0)])
    else:
        X = run(X)
    if tall:
        X = X.mT
    return X.to(G.dtype).reshape(shape)


def singular_value_band(X: Tensor) -> tuple[float, float]:
    """(min, max) singular value over a matrix or a batch of matrices (float64 SVD) — how close X is to U V^T."""
    s = torch.linalg.svdvals(X.to(torch.float64))
    return float(s.min()), float(s.max())
