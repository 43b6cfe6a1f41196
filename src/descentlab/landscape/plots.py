"""Figures for landscape results: 1-D lines, 2-D contours and surfaces, spectral densities, loss along curves.

Each helper takes a result returned by :mod:`descentlab.landscape` and a path, writes a PNG (matplotlib Agg)
and returns the path.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from descentlab.landscape.hessian import SpectralDensity  # noqa: E402
from descentlab.landscape.projections import LineResult, PlaneResult  # noqa: E402


def _save(fig: plt.Figure, path: str | Path) -> Path:
    from descentlab.safe_write import save_figure

    path = Path(path)
    fig.tight_layout()
    try:
        # atomic; a symbolic link at the path is refused, never written through
        save_figure(fig, path, dpi=120)
    finally:
        plt.close(fig)
    return path


def plot_line(result: LineResult, path: str | Path, title: str | None = None, log: bool = False) -> Path:
    """Loss (and accuracy on a twin axis, when present) against alpha for a line/interpolation result."""
    if not isinstance(result, LineResult):
        raise TypeError(f"result must be a LineResult, got {type(result).__name__}")
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(result.alphas, result.loss, color="C0", label="loss")
    ax.set_xlabel("t" if result.kind != "line" else "alpha")
    ax.set_ylabel("loss")
    if log:
        ax.set_yscale("log")
    if result.accuracy is not None:
        ax2 = ax.twinx()
        ax2.plot(result.alphas, result.accuracy, color="C1", ls="--", label="accuracy")
        ax2.set_ylabel("accuracy")
    ax.set_title(title or f"loss along {result.kind}")
    return _save(fig, path)


def plot_plane(
    result: PlaneResult, path: str | Path, kind: str = "contour", levels: int = 30, title: str | None = None
) -> Path:
    """Loss over a plane as filled contours (``kind="contour"``) or a 3-D surface (``kind="surface"``)."""
    if not isinstance(result, PlaneResult):
        raise TypeError(f"result must be a PlaneResult, got {type(result).__name__}")
    if kind not in ("contour", "surface"):
        raise ValueError(f"kind must be 'contour' or 'surface', got {kind!r}")
    A, B = np.meshgrid(result.alphas, result.betas, indexing="ij")
    if kind == "contour":
        fig, ax = plt.subplots(figsize=(5.5, 4.5))
        cs = ax.contourf(A, B, result.loss, levels=levels, cmap="viridis")
        ax.contour(A, B, result.loss, levels=levels, colors="k", linewidths=0.3)
        fig.colorbar(cs, ax=ax, label="loss")
        ax.plot([0], [0], "r*", ms=10)
        ax.set_xlabel("alpha (d1)")
        ax.set_ylabel("beta (d2)")
    else:
        fig = plt.figure(figsize=(6, 5))
        ax = fig.add_subplot(projection="3d")
        ax.plot_surface(A, B, result.loss, cmap="viridis", linewidth=0)
        ax.set_xlabel("alpha")
        ax.set_ylabel("beta")
        ax.set_zlabel("loss")
    ax.set_title(title or f"loss surface (cos(d1, d2) = {result.cosine:.3f})")
    return _save(fig, path)


def plot_spectral_density(
    density: SpectralDensity, path: str | Path, log: bool = True, title: str | None = None
) -> Path:
    """Hessian eigenvalue density (log scale by default, as in Ghorbani et al. 2019)."""
    if not isinstance(density, SpectralDensity):
        raise TypeError(f"density must be a SpectralDensity, got {type(density).__name__}")
    fig, ax = plt.subplots(figsize=(6, 4))
    values = np.maximum(density.density, 1e-12) if log else density.density
    ax.plot(density.grid, values)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density")
    ax.set_title(title or "Hessian spectral density (SLQ)")
    return _save(fig, path)


def plot_curves(
    results: Sequence[LineResult],
    path: str | Path,
    labels: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """Loss along several paths in t in [0, 1] (e.g. the straight line vs a trained Bezier curve)."""
    results = list(results)
    if not results or not all(isinstance(r, LineResult) for r in results):
        raise TypeError("results must be a non-empty sequence of LineResult")
    labels = list(labels) if labels is not None else [r.kind for r in results]
    if len(labels) != len(results):
        raise ValueError(f"got {len(labels)} labels for {len(results)} results")
    fig, ax = plt.subplots(figsize=(6, 4))
    for r, label in zip(results, labels):
        ax.plot(r.alphas, r.loss, label=label)
    ax.set_xlabel("t")
    ax.set_ylabel("loss")
    ax.legend()
    ax.set_title(title or "loss along paths between two models")
    return _save(fig, path)
