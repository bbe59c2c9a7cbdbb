"""What the image-optimisation methods climb. An objective is a function

    objective(model, x) -> Evaluation(value (N,), grad (N, 3, H, W), info, scores)

giving each image's value, its gradient w.r.t. x (the direction that *increases* the
value), `info`: the per-image numbers worth recording ((N,) arrays, named), and the
class scores (N, C) when the objective computed them (else None).

    class_score(targets)         raw score of each image's class (Simonyan et al.; the course recipe)
    class_log_prob(targets)      log-softmax of the class: also pushes rival classes down
    feature_match(layer, target) -(||phi(x) - phi_0||^2 / ||phi_0||^2) at a layer (inversion)
    activation_energy(layer)     0.5 ||phi(x)||^2 at a layer (DeepDream)
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from gradscope.errors import GradscopeError
from gradscope.interface import check_classes, score_gradient
from gradscope.layers.core import log_softmax, softmax

__all__ = ["Evaluation", "class_score", "class_log_prob", "feature_match", "activation_energy",
           "CLASS_OBJECTIVES", "class_objective"]


class Evaluation(NamedTuple):
    value: np.ndarray          # (N,) objective per image
    grad: np.ndarray           # (N, 3, H, W) d value / d x
    info: dict                 # name -> (N,) numbers to record
    scores: np.ndarray | None  # (N, C) class scores, when computed


def _class_info(scores, targets):
    idx = np.arange(len(scores))
    s = scores.astype(np.float64)
    return {"target_score": s[idx, targets], "target_prob": softmax(s)[idx, targets]}


def class_score(targets):
    """Objective: the raw score of class targets[i] for image i."""
    def objective(model, x):
        scores, g = score_gradient(model, x, targets)
        info = _class_info(scores, targets)
        return Evaluation(info["target_score"], g, info, scores)

    return objective


def class_log_prob(targets):
    """Objective: log softmax(scores)[i, targets[i]]; its score gradient is onehot - softmax."""
    def dscores(scores):
        picked = check_classes(targets, scores.shape[0], scores.shape[1])
        d = -softmax(scores.astype(np.float64))
        d[np.arange(len(d)), picked] += 1.0
        return d.astype(scores.dtype)

    def objective(model, x):
        scores, g = model.scores_backward(x, dscores)
        info = _class_info(scores, targets)
        value = log_softmax(scores.astype(np.float64))[np.arange(len(x)), targets]
        return Evaluation(value, g, info, scores)

    return objective


CLASS_OBJECTIVES = {"score": class_score, "log_prob": class_log_prob}


def class_objective(name: str, targets):
    """The class objective called `name` ('score' or 'log_prob') for these targets."""
    if name not in CLASS_OBJECTIVES:
        raise GradscopeError(f"unknown objective {name!r}: expected one of {', '.join(CLASS_OBJECTIVES)}")
    return CLASS_OBJECTIVES[name](targets)


def _per_image_sq(a):
    return np.sum(a.reshape(len(a), -1).astype(np.float64) ** 2, axis=1)


def feature_match(layer, target: np.ndarray):
    """Objective: minus the squared relative distance of the activations at `layer` to
    `target` (the activations of the image to reconstruct); info 'distance' (N,) is the
    relative distance ||phi(x) - phi_0|| / ||phi_0||."""
    target_sq = np.maximum(_per_image_sq(target), 1e-12)  # (N,)

    def objective(model, x):
        act, cache = model.forward_to(x, layer)
        diff = act - target
        dist_sq = _per_image_sq(diff) / target_sq
        scale = (-2.0 / target_sq).reshape((-1,) + (1,) * (act.ndim - 1))
        g = model.backward_from((scale * diff).astype(act.dtype), cache)
        return Evaluation(-dist_sq, g, {"distance": np.sqrt(dist_sq)}, None)

    return objective


def activation_energy(layer):
    """Objective: 0.5 ||phi(x)||^2 at `layer`, whose upstream gradient is the activations
    themselves; info 'activation_norm' (N,) is their RMS (comparable across image sizes)."""
    def objective(model, x):
        act, cache = model.forward_to(x, layer)
        sq = _per_image_sq(act)
        rms = np.sqrt(sq / (act.size / len(act)))
        return Evaluation(0.5 * sq, model.backward_from(act, cache), {"activation_norm": rms}, None)

    return objective
