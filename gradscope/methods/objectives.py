"""What the class-driven methods climb: the raw class score (Simonyan et al.; the
course recipe) or the class's log-probability, which also pushes the other classes
down, so that the target becomes the top class even when rival classes share its
features."""
from __future__ import annotations

import numpy as np

from gradscope.errors import GradscopeError, ShapeError
from gradscope.interface import score_gradient
from gradscope.methods._inputs import softmax

__all__ = ["OBJECTIVES", "class_gradient"]

OBJECTIVES = ("score", "log_prob")


def check_objective(objective: str) -> str:
    if objective not in OBJECTIVES:
        raise GradscopeError(f"unknown objective {objective!r}: expected one of {', '.join(OBJECTIVES)}")
    return objective


def class_gradient(model, x: np.ndarray, classes: np.ndarray, objective: str = "score"):
    """(scores (N, C), dx (N, 3, H, W)): gradient of each image's objective for its class.

    'score' uses model.score_gradient; 'log_prob' backpropagates onehot - softmax through
    model.scores_backward when the model has it (the NumPy CNN and the torch adapter do),
    else from the model's last layer (its output must then be the (N, C) scores)."""
    if check_objective(objective) == "score":
        return score_gradient(model, x, classes)
    if hasattr(model, "scores_backward"):
        return model.scores_backward(x, lambda scores: _log_prob_dscores(scores, classes))
    scores, cache = model.forward_to(x, model.layer_names[-1])
    if scores.ndim != 2 or scores.shape[0] != len(x):
        raise ShapeError(f"the last layer must output class scores (N, C), got shape {scores.shape}")
    return scores, model.backward_from(_log_prob_dscores(scores, classes), cache)


def _log_prob_dscores(scores, classes):
    """d log softmax(scores)[i, classes[i]] / d scores = onehot - softmax, (N, C)."""
    dscores = -softmax(scores.astype(np.float64))
    dscores[np.arange(len(scores)), classes] += 1.0
    return dscores.astype(scores.dtype)
