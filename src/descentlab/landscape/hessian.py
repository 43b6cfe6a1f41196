"""The Hessian of the loss of any ``nn.Module``: products, extreme eigenvalues, trace, spectral density.

Everything is matrix-free: Hessian-vector products (HVPs) by double backward over a flat parameter vector fed
through ``torch.func.functional_call`` (the user's model is never modified; eval mode, BatchNorm uses running
statistics). With one batch the gradient graph is built once and reused by every HVP.

Sources: Pearlmutter 1994 (HVP); Lanczos 1950 with full reorthogonalization (Golub & Van Loan, Sec. 10.1);
Hutchinson 1989 and Hutch++ (Meyer et al. 2021) for the trace; stochastic Lanczos quadrature (Lin, Saad & Yang
2016; Ghorbani et al. 2019) for the density; PyHessian (Yao et al. 2020) as the reference tool; seed 003 tables of
lambda_max.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import scipy.linalg
import torch
from torch import Tensor, nn
from torch.func import functional_call

from descentlab.landscape.projections import (
    Criterion,
    Data,
    FlatParams,
    as_batches,
    buffers_of,
    check_model,
    training_mode,
)

WHICH = ("largest", "smallest", "magnitude")
EIGEN_METHODS = ("lanczos", "power")
TRACE_METHODS = ("hutchinson", "hutch++")


def _math_attention():  # noqa: ANN202
    """Context forcing the math scaled-dot-product-attention kernel (the fused ones lack double backward)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel(SDPBackend.MATH)


class HessianOperator:
    """The Hessian of the batch-size weighted mean loss over ``data`` at the model's parameters, as a matvec.

    ``matvec(v)`` takes and returns flat vectors (length = number of trainable parameters) and counts HVPs in
    ``hvps``. ``retain_graph`` (default: when ``data`` is one batch) keeps the gradient graph between products.
    """

    def __init__(self, model: nn.Module, criterion: Criterion, data: Data, retain_graph: bool | None = None):
        self.model = check_model(model)
        self.criterion = criterion
        self.batches = as_batches(data)
        self.flat = FlatParams(model)
        self.buffers = buffers_of(model)
        self.total = sum(int(y.shape[0]) for _, y in self.batches)
        self.retain = len(self.batches) == 1 if retain_graph is None else bool(retain_graph)
        self._grads: list[tuple[Tensor, Tensor, float]] | None = None
        self.hvps = 0
        self.dtype = self.flat.vector.dtype
        self.device = self.flat.vector.device

    @property
    def size(self) -> int:
        """Number of trainable parameters (the Hessian is size x size)."""
        return self.flat.numel

    def _gradient(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        w = self.flat.vector.clone().requires_grad_(True)
        with training_mode(self.model, False), _math_attention():
            out = functional_call(self.model, (self.flat.to_dict(w), self.buffers), (x,), tie_weights=True)
            loss = self.criterion(out, y)
        (g,) = torch.autograd.grad(loss, w, create_graph=True)
        return w, g

    def gradient(self) -> tuple[float, Tensor]:
        """Loss and gradient (flat) of the mean loss over all batches."""
        loss_sum, grad = 0.0, torch.zeros_like(self.flat.vector)
        for x, y in self.batches:
            w = self.flat.vector.clone().requires_grad_(True)
            with training_mode(self.model, False), _math_attention():
                out = functional_call(
                    self.model, (self.flat.to_dict(w), self.buffers), (x,), tie_weights=True
                )
                loss = self.criterion(out, y)
            (g,) = torch.autograd.grad(loss, w)
            n = int(y.shape[0]) / self.total
            loss_sum += float(loss.detach()) * n
            grad += g * n
        return loss_sum, grad

    def _build(self) -> None:
        if self._grads is None:
            self._grads = []
            for x, y in self.batches:
                w, g = self._gradient(x, y)
                self._grads.append((w, g, int(y.shape[0]) / self.total))

    def retained_gradient(self) -> Tensor | None:
        """Mean gradient (flat, detached) read off the retained graph -- no extra pass; None when not retained."""
        if not self.retain:
            return None
        self._build()
        return sum(g.detach() * n for _, g, n in self._grads)

    def matvec(self, v: Tensor) -> Tensor:
        """H v for a flat vector ``v`` (any float dtype; returned in v's dtype)."""
        v = torch.as_tensor(v)
        if v.shape != (self.size,):
            raise ValueError(f"vector must be flat with {self.size} elements, got shape {tuple(v.shape)}")
        out_dtype = v.dtype
        vv = v.to(dtype=self.dtype, device=self.device)
        hv = torch.zeros_like(self.flat.vector)
        if self.retain:
            self._build()
        if self._grads is not None:
            for w, g, n in self._grads:
                (h,) = torch.autograd.grad(g, w, grad_outputs=vv, retain_graph=True)
                hv += h * n
        else:
            for x, y in self.batches:
                w, g = self._gradient(x, y)
                (h,) = torch.autograd.grad(g, w, grad_outputs=vv)
                hv += h * (int(y.shape[0]) / self.total)
        self.hvps += 1
        return hv.detach().to(out_dtype)


def _as_flat(op: HessianOperator, vector: Any) -> Tensor:
    if isinstance(vector, dict):
        return op.flat.from_dict(vector, fill_missing=True)
    if isinstance(vector, Tensor):
        return vector.detach().reshape(-1)
    raise TypeError(f"vector must be a flat tensor or a name -> tensor dict, got {type(vector).__name__}")


def hessian_vector_product(
    model: nn.Module, criterion: Criterion, data: Data, vector: Tensor | dict[str, Tensor]
) -> Tensor | dict[str, Tensor]:
    """H v of the mean loss over ``data`` (double backward, Pearlmutter 1994), math attention kernel forced.

    ``vector`` is a flat tensor (returns flat) or a name -> tensor dict like the parameters (returns a dict).
    """
    op = HessianOperator(model, criterion, data, retain_graph=False)
    flat_v = _as_flat(op, vector)
    hv = op.matvec(flat_v)
    return op.flat.to_dict(hv) if isinstance(vector, dict) else hv


# ----------------------------------------------------------------------------------------------- eigenvalues
class Eigen(tuple):
    """``(values, vectors)``: eigenvalues (descending; ascending for "smallest") and unit eigenvectors (k x N).

    Unpacks as a pair; ``.values``, ``.vectors`` and ``.hvps`` (Hessian-vector products used) are attributes.
    """

    values: np.ndarray
    vectors: Tensor
    hvps: int

    def __new__(cls, values: np.ndarray, vectors: Tensor, hvps: int) -> Eigen:
        self = super().__new__(cls, (values, vectors))
        self.values, self.vectors, self.hvps = values, vectors, int(hvps)
        return self


def _select(theta: np.ndarray, k: int, which: str) -> np.ndarray:
    if which == "largest":
        return np.argsort(-theta)[:k]
    if which == "smallest":
        return np.argsort(theta)[:k]
    return np.argsort(-np.abs(theta))[:k]


def _lanczos_eigen(
    matvec, n: int, k: int, which: str, tol: float, max_iter: int, gen: torch.Generator, dtype, device,
    start: Tensor | None = None,
) -> tuple[np.ndarray, Tensor]:  # fmt: skip
    """Lanczos with full reorthogonalization; stops when the k wanted Ritz pairs have residual <= tol * |theta|.

    ``start`` (optional) is mixed into the random start vector with equal weight (both unit-normalized).
    """
    m_max = min(max_iter, n)
    q = torch.randn(n, generator=gen, dtype=torch.float64).to(device)
    q /= q.norm()
    if start is not None:
        s = start.detach().to(device=device, dtype=torch.float64)
        if torch.isfinite(s).all() and float(s.norm()) > 0:
            q = q + s / s.norm()
            q /= q.norm()
    Q = torch.empty(min(m_max, 32), n, dtype=torch.float64, device=device)  # grown on demand
    alpha, beta = [], []
    for j in range(m_max):
        if j == Q.shape[0]:
            Q = torch.cat([Q, torch.empty(min(m_max - j, Q.shape[0]), n, dtype=Q.dtype, device=device)])
        Q[j] = q
        w = matvec(q.to(dtype)).to(torch.float64)
        a = float(torch.dot(w, q))
        alpha.append(a)
        w = w - a * q - (beta[-1] * Q[j - 1] if j > 0 else 0.0)
        for _ in range(2):  # full reorthogonalization, twice is enough (Parlett)
            w = w - Q[: j + 1].T @ (Q[: j + 1] @ w)
        b = float(w.norm())
        theta, S = scipy.linalg.eigh_tridiagonal(np.array(alpha), np.array(beta)) if j > 0 else (
            np.array(alpha), np.ones((1, 1))
        )  # fmt: skip
        if j + 1 >= k:
            idx = _select(theta, k, which)
            scale = max(np.abs(theta).max(), 1e-30)
            residual = np.abs(b * S[-1, idx])
            if np.all(residual <= tol * scale) or j + 1 == m_max or b <= 1e-12 * scale:
                vecs = torch.as_tensor(S[:, idx].T, dtype=torch.float64, device=device) @ Q[: j + 1]
                return theta[idx], vecs
        beta.append(b)
        q = w / b
    raise RuntimeError("Lanczos ended without a result")  # pragma: no cover


def _power_eigen(
    matvec, n: int, k: int, which: str, tol: float, max_iter: int, gen: torch.Generator, dtype, device
) -> tuple[np.ndarray, Tensor]:
    """Power iteration with deflation (the PyHessian method); largest/smallest use a spectral shift."""

    def power(mv, found: list[Tensor]) -> tuple[float, Tensor]:
        v = torch.randn(n, generator=gen, dtype=torch.float64).to(device)
        lam = None
        for _ in range(max_iter):
            for u in found:
                v = v - torch.dot(u, v) * u
            v = v / v.norm()
            hv = mv(v)
            new = float(torch.dot(hv, v))
            done = lam is not None and abs(new - lam) <= tol * (abs(lam) + 1e-30)
            lam, v = new, hv
            if done:
                break
        for u in found:
            v = v - torch.dot(u, v) * u
        return lam, v / v.norm()

    def base(v: Tensor) -> Tensor:
        return matvec(v.to(dtype)).to(torch.float64)

    shift = 0.0
    if which != "magnitude":
        mu, _ = power(base, [])
        shift = abs(mu) if which == "largest" else -abs(mu)  # H + |mu| I >= 0 ; |mu| I - H >= 0

    def shifted(v: Tensor) -> Tensor:
        hv = base(v)
        return hv + shift * v if which == "largest" else (-hv - shift * v if which == "smallest" else hv)

    vals, vecs = [], []
    for _ in range(k):
        _, v = power(shifted, vecs)
        vals.append(float(torch.dot(base(v), v)))  # Rayleigh quotient of H itself
        vecs.append(v)
    return np.array(vals), torch.stack(vecs)


def hessian_eigenvalues(
    model: nn.Module,
    criterion: Criterion,
    data: Data,
    k: int = 1,
    which: str = "largest",
    method: str = "lanczos",
    tol: float = 1e-4,
    max_iter: int = 300,
    seed: int = 0,
    start_with_gradient: bool = True,
) -> Eigen:
    """k extreme Hessian eigenpairs: ``values, vectors = hessian_eigenvalues(...)``; ``.hvps`` counts HVPs.

    ``method="lanczos"`` (default; full reorthogonalization, stops when the Ritz residuals are below
    ``tol * |theta|_max``) or ``"power"`` (deflated power iteration as in PyHessian; ``tol`` is the relative
    change of the eigenvalue between iterations). Vectors are unit-norm rows, float64, flat.
    ``start_with_gradient`` (Lanczos, "largest"/"magnitude", one batch): the random start vector is mixed with
    the loss gradient (unit norms, equal weights), which lies mostly in the top eigenspace -- fewer HVPs.
    """
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if which not in WHICH:
        raise ValueError(f"which must be one of {WHICH}, got {which!r}")
    if method not in EIGEN_METHODS:
        raise ValueError(f"method must be one of {EIGEN_METHODS}, got {method!r}")
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol!r}")
    if not isinstance(start_with_gradient, bool):
        raise ValueError(f"start_with_gradient must be True or False, got {start_with_gradient!r}")
    op = HessianOperator(model, criterion, data)
    if k > op.size:
        raise ValueError(f"k={k} exceeds the number of parameters {op.size}")
    gen = torch.Generator().manual_seed(int(seed))
    if method == "lanczos":
        # the gradient lies mostly in the top Hessian subspace (Gur-Ari et al. 2018): mixed into the start vector
        # it saves Lanczos steps for the largest eigenvalues; free with a retained graph (one batch)
        start = op.retained_gradient() if which != "smallest" and start_with_gradient else None
        values, vectors = _lanczos_eigen(
            op.matvec, op.size, k, which, tol, max_iter, gen, op.dtype, op.device, start
        )
    else:
        values, vectors = _power_eigen(op.matvec, op.size, k, which, tol, max_iter, gen, op.dtype, op.device)
    order = np.argsort(values) if which == "smallest" else np.argsort(-values)
    return Eigen(np.asarray(values)[order], vectors[torch.as_tensor(order.copy())], op.hvps)


# ----------------------------------------------------------------------------------------------- trace
class Estimate(tuple):
    """A Monte Carlo estimate ``(mean, standard_error)``; ``.hvps`` says how many HVPs it used."""

    mean: float
    standard_error: float
    hvps: int

    def __new__(cls, mean: float, standard_error: float, hvps: int = 0) -> Estimate:
        self = super().__new__(cls, (float(mean), float(standard_error)))
        self.mean, self.standard_error, self.hvps = float(mean), float(standard_error), int(hvps)
        return self

    def __repr__(self) -> str:
        return f"Estimate(mean={self.mean!r}, standard_error={self.standard_error!r}, hvps={self.hvps})"


def _rademacher(n: int, gen: torch.Generator, count: int | None = None) -> Tensor:
    shape = (n,) if count is None else (count, n)
    return torch.randint(0, 2, shape, generator=gen, dtype=torch.int8).to(torch.float64) * 2 - 1


def hessian_trace(
    model: nn.Module,
    criterion: Criterion,
    data: Data,
    samples: int = 100,
    method: str = "hutchinson",
    seed: int = 0,
) -> Estimate:
    """tr(H) as ``(mean, standard_error)`` -- the mean of the samples, unlike PyHessian's ``trace()``.

    ``"hutchinson"``: mean of v^T H v over Rademacher v (Hutchinson 1989). ``"hutch++"``: Meyer et al. 2021 --
    ``samples`` HVPs split in thirds: exact trace on a sketched top subspace plus Hutchinson on its complement
    (the standard error is that of the complement part).
    """
    if method not in TRACE_METHODS:
        raise ValueError(f"method must be one of {TRACE_METHODS}, got {method!r}")
    if not isinstance(samples, int) or samples < (3 if method == "hutch++" else 2):
        raise ValueError(f"samples must be an integer >= 2 (>= 3 for hutch++), got {samples!r}")
    op = HessianOperator(model, criterion, data)
    gen = torch.Generator().manual_seed(int(seed))
    n = op.size

    def mv(v: Tensor) -> Tensor:
        return op.matvec(v.to(op.dtype)).to(torch.float64)

    if method == "hutchinson":
        vals = np.array([float(torch.dot(v, mv(v))) for v in _rademacher(n, gen, samples)])
        return Estimate(float(vals.mean()), float(vals.std(ddof=1) / np.sqrt(samples)), op.hvps)
    s = max(1, samples // 3)
    g_count = max(2, samples - 2 * s)
    S = _rademacher(n, gen, s)
    Q, _ = torch.linalg.qr(torch.stack([mv(v) for v in S]).T)  # n x s orthonormal basis of H S
    top = sum(float(torch.dot(q, mv(q))) for q in Q.T)
    G = _rademacher(n, gen, g_count)
    G = G - (G @ Q) @ Q.T
    vals = np.array([float(torch.dot(g, mv(g))) for g in G])
    se = float(vals.std(ddof=1) / np.sqrt(g_count))
    return Estimate(top + float(vals.mean()), se, op.hvps)


# ----------------------------------------------------------------------------------------------- density
class SpectralDensity(NamedTuple):
    """Smoothed eigenvalue density on ``grid`` (integrates to 1) and the SLQ quadrature (nodes, weights per run)."""

    grid: np.ndarray
    density: np.ndarray
    nodes: np.ndarray
    weights: np.ndarray
    hvps: int

    def cdf(self, x: np.ndarray | float) -> np.ndarray:
        """Quadrature estimate of the fraction of eigenvalues <= x (a step function, exact in the limit)."""
        x = np.atleast_1d(np.asarray(x, dtype=float))
        return (self.weights[None, :] * (self.nodes[None, :] <= x[:, None])).sum(1) / self.weights.sum()


def hessian_spectral_density(
    model: nn.Module,
    criterion: Criterion,
    data: Data,
    iterations: int = 80,
    runs: int = 1,
    grid: int | np.ndarray = 1000,
    sigma: float | None = None,
    seed: int = 0,
) -> SpectralDensity:
    """Eigenvalue density of H by stochastic Lanczos quadrature (Lin et al. 2016; Ghorbani et al. 2019).

    Per run: Lanczos with full reorthogonalization from a random unit v gives T = S diag(theta) S^T
    (``scipy.linalg.eigh_tridiagonal``); nodes theta_i with weights S[0, i]^2, averaged over runs and smoothed by a
    Gaussian of width ``sigma`` (default: 1 % of the spectral range) on ``grid`` (a point count or an array).
    """
    for name, val in (("iterations", iterations), ("runs", runs)):
        if not isinstance(val, int) or val < 1:
            raise ValueError(f"{name} must be a positive integer, got {val!r}")
    if sigma is not None and not (0 < sigma < math.inf):
        raise ValueError(f"sigma must be a finite number > 0 or None, got {sigma!r}")
    op = HessianOperator(model, criterion, data)
    gen = torch.Generator().manual_seed(int(seed))
    m = min(iterations, op.size)
    nodes, weights = [], []
    for _ in range(runs):
        q = torch.randn(op.size, generator=gen, dtype=torch.float64).to(op.device)
        q /= q.norm()
        Q = torch.zeros(m, op.size, dtype=torch.float64, device=op.device)
        alpha, beta = [], []
        for j in range(m):
            Q[j] = q
            w = op.matvec(q.to(op.dtype)).to(torch.float64)
            a = float(torch.dot(w, q))
            alpha.append(a)
            w = w - Q[: j + 1].T @ (Q[: j + 1] @ w)
            w = w - Q[: j + 1].T @ (Q[: j + 1] @ w)
            b = float(w.norm())
            if j == m - 1 or b <= 1e-12 * max(abs(a), 1e-30):
                break
            beta.append(b)
            q = w / b
        theta, S = scipy.linalg.eigh_tridiagonal(np.array(alpha), np.array(beta))
        nodes.append(theta)
        weights.append(S[0] ** 2 / runs)
    nodes_a, weights_a = np.concatenate(nodes), np.concatenate(weights)
    width = float(nodes_a.max() - nodes_a.min()) or max(abs(float(nodes_a.max())), 1.0)
    sigma = 0.01 * width if sigma is None else float(sigma)
    if isinstance(grid, int):
        if grid < 2:
            raise ValueError(f"grid must be >= 2 points or an array, got {grid!r}")
        pad = 5 * sigma
        grid_a = np.linspace(nodes_a.min() - pad, nodes_a.max() + pad, grid)
    else:
        grid_a = np.sort(np.asarray(grid, dtype=float))
    kernel = np.exp(-0.5 * ((grid_a[:, None] - nodes_a[None, :]) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
    density = kernel @ weights_a
    area = np.trapezoid(density, grid_a) if hasattr(np, "trapezoid") else np.trapz(density, grid_a)
    if area > 0:
        density = density / area
    return SpectralDensity(grid_a, density, nodes_a, weights_a, op.hvps)
