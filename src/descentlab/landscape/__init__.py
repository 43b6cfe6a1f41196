"""Geometry of a trained model: loss projections, Hessian spectrum and trace, sharpness, mode connectivity.

Every function takes ``model`` (any ``nn.Module``), ``criterion`` (a loss taking ``(outputs, targets)``) and
``data`` (an ``(inputs, targets)`` tuple or an iterable of such batches), and never modifies the model.
Figures: :mod:`descentlab.landscape.plots`.
"""

from __future__ import annotations

from descentlab.landscape.connectivity import Curve, connect, linear_barrier
from descentlab.landscape.hessian import (
    Eigen,
    Estimate,
    HessianOperator,
    SpectralDensity,
    hessian_eigenvalues,
    hessian_spectral_density,
    hessian_trace,
    hessian_vector_product,
)
from descentlab.landscape.projections import (
    LineResult,
    PlaneResult,
    interpolate,
    line,
    plane,
    random_directions,
)
from descentlab.landscape.sharpness import Sharpness, average_flatness, sam_epsilon, sharpness

__all__ = [
    "Curve",
    "Eigen",
    "Estimate",
    "HessianOperator",
    "LineResult",
    "PlaneResult",
    "Sharpness",
    "SpectralDensity",
    "average_flatness",
    "connect",
    "hessian_eigenvalues",
    "hessian_spectral_density",
    "hessian_trace",
    "hessian_vector_product",
    "interpolate",
    "line",
    "linear_barrier",
    "plane",
    "random_directions",
    "sam_epsilon",
    "sharpness",
]
