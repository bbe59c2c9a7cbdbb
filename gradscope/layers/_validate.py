"""Input checks shared by the layers: clear errors naming arrays and shapes, raised
before NumPy would fail deep inside a product."""
from __future__ import annotations

import numpy as np

from gradscope.errors import GradscopeError, ShapeError


def check_ndim(name: str, a, ndim: int, layout: str) -> None:
    """Raise ShapeError unless array `a` has `ndim` dimensions (layout like '(N, T, D)')."""
    if not isinstance(a, np.ndarray):
        raise ShapeError(f"{name} must be a NumPy array, got {type(a).__name__}")
    if a.ndim != ndim:
        raise ShapeError(f"{name} must have shape {layout}, got shape {a.shape}")


def check_dim(name_a: str, a_dim: int, name_b: str, b_dim: int, what: str) -> None:
    """Raise ShapeError when two sizes that must agree do not."""
    if a_dim != b_dim:
        raise ShapeError(f"{what} mismatch: {name_a} has {a_dim} but {name_b} has {b_dim}")


def check_finite(name: str, a) -> None:
    """Raise a GradscopeError naming the array when it holds NaN or infinity."""
    if not np.all(np.isfinite(a)):
        raise GradscopeError(f"{name} contains NaN or infinite values")


def check_upstream(name: str, dout, shape) -> None:
    """Raise ShapeError unless the upstream gradient `dout` is an array shaped like the
    output it belongs to (`shape`). Each layer's public backward calls it once, first."""
    if not isinstance(dout, np.ndarray) or dout.shape != tuple(shape):
        got = f"shape {dout.shape}" if isinstance(dout, np.ndarray) else type(dout).__name__
        raise ShapeError(f"{name} (upstream gradient) must have the layer output's shape {tuple(shape)}, got {got}")
