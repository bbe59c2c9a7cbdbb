"""Per-image gradient normalisations and the step rules of the image-optimisation methods, so that a
step size means the same thing whatever the scale of a model's scores."""
from __future__ import annotations

import numpy as np

__all__ = ["unit_l2", "unit_rms", "unit_mean_abs", "normalized_step", "adam_step"]

_EPS = 1e-12


def _axes(g):
    return tuple(range(1, g.ndim))  # all but the first (image) axis: images or any (N, ...) parameters


def _per_image(g: np.ndarray, stat: np.ndarray) -> np.ndarray:
    return (g / np.maximum(stat, _EPS).reshape((-1,) + (1,) * (g.ndim - 1))).astype(g.dtype)


def unit_l2(g: np.ndarray) -> np.ndarray:
    """g_i / ||g_i||_2 for each image of g (N, C, H, W) (or each row of any (N, ...) array)."""
    return _per_image(g, np.sqrt(np.sum(g.astype(np.float64) ** 2, axis=_axes(g))))


def unit_rms(g: np.ndarray) -> np.ndarray:
    """g_i / rms(g_i): a step of size lr moves each value by about lr."""
    return _per_image(g, np.sqrt(np.mean(g.astype(np.float64) ** 2, axis=_axes(g))))


def unit_mean_abs(g: np.ndarray) -> np.ndarray:
    """g_i / mean|g_i| (the DeepDream normalisation)."""
    return _per_image(g, np.mean(np.abs(g.astype(np.float64)), axis=_axes(g)))


# ---- step rules: rule(x, g, g_prior, state) -> (new x, state) --------------------------------
# g is the objective's gradient (ascent direction), g_prior the summed priors' gradient
# (penalties, to descend), state what the rule carries between steps (None at the start
# of each octave).

def normalized_step(lr: float, norm=unit_rms):
    """x + lr * (norm(g) - g_prior): the objective's gradient normalised per image, the
    priors' unnormalised (so L2 acts as a decay of 2 * lr * weight per step)."""
    def rule(x, g, g_prior, state):
        return x + (lr * (norm(g) - g_prior)).astype(x.dtype), state

    return rule


def adam_step(lr: float):
    """Adam on the loss -objective + priors (bias-corrected moments kept in state)."""
    from gradscope.training.optim import adam

    def rule(x, g, g_prior, state):
        x, state = adam(x, (g_prior - g).astype(x.dtype), state if state is not None else {"learning_rate": lr})
        return x, state

    return rule
