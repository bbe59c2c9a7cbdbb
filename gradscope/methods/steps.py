"""Per-image gradient normalisations used by the image-optimisation methods, so that a
step size means the same thing whatever the scale of a model's scores."""
from __future__ import annotations

import numpy as np

__all__ = ["unit_l2", "unit_rms", "unit_mean_abs"]

_EPS = 1e-12


def _per_image(g: np.ndarray, stat: np.ndarray) -> np.ndarray:
    return (g / np.maximum(stat, _EPS)[:, None, None, None]).astype(g.dtype)


def unit_l2(g: np.ndarray) -> np.ndarray:
    """g_i / ||g_i||_2 for each image of g (N, C, H, W)."""
    return _per_image(g, np.sqrt(np.sum(g.astype(np.float64) ** 2, axis=(1, 2, 3))))


def unit_rms(g: np.ndarray) -> np.ndarray:
    """g_i / rms(g_i): a step of size lr moves each value by about lr."""
    return _per_image(g, np.sqrt(np.mean(g.astype(np.float64) ** 2, axis=(1, 2, 3))))


def unit_mean_abs(g: np.ndarray) -> np.ndarray:
    """g_i / mean|g_i| (the DeepDream normalisation)."""
    return _per_image(g, np.mean(np.abs(g.astype(np.float64)), axis=(1, 2, 3)))
