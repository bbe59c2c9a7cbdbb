"""What the image-optimisation methods climb, as an algebra of objectives (after Lucid's).

An objective is called as

    objective(model, x) -> Evaluation(value (N,), grad (N, 3, H, W), info, scores)

giving each image's value, the gradient of sum(value) w.r.t. x (the direction that
*increases* it; for the terms that treat images separately, each image's own gradient),
`info`: the per-image numbers worth recording ((N,) arrays, named), and the class scores
(N, C) when the objective computed them (else None).

Objectives are sums of weighted terms, each a function of one layer's activations (or of
the class scores); they add, subtract and scale:

    channel("block10", 7) - 0.5 * channel("block10", 3) + 0.1 * diversity("block6")

Terms at the same layer share one forward and one backward pass; each other layer costs one.

    class_score(targets)         raw score of each image's class (Simonyan et al.; the course recipe)
    class_log_prob(targets)      log-softmax of the class: also pushes rival classes down
    channel(layer, c)            mean activation of channel c (spatial mean)
    neuron(layer, c, y, x)       one unit: channel c at (y, x) (default the centre)
    activation_energy(layer)     0.5 ||phi(x)||^2 at a layer (DeepDream)
    feature_match(layer, target) -(||phi(x) - phi_0||^2 / ||phi_0||^2) at a layer (inversion)
    diversity(layer)             minus the mean cosine similarity of each image's Gram matrix
                                 to the others' (a batch of different images)
"""
from __future__ import annotations

from numbers import Number
from typing import Callable, NamedTuple

import numpy as np

from gradscope.errors import GradscopeError
from gradscope.interface import check_classes
from gradscope.layers.core import log_softmax, softmax

__all__ = ["Evaluation", "Term", "Objective", "class_score", "class_log_prob", "channel", "neuron",
           "feature_match", "activation_energy", "diversity", "CLASS_OBJECTIVES", "class_objective"]


class Evaluation(NamedTuple):
    value: np.ndarray          # (N,) objective per image
    grad: np.ndarray           # (N, 3, H, W) d sum(value) / d x
    info: dict                 # name -> (N,) numbers to record
    scores: np.ndarray | None  # (N, C) class scores, when computed


class Term(NamedTuple):
    layer: object              # layer name or index; None: the class scores
    fn: Callable               # fn(act) -> (value (N,), d sum(value) / d act, info)
    name: str


class Objective:
    """A weighted sum of Terms, callable as objective(model, x) -> Evaluation."""

    def __init__(self, terms, name: str = ""):
        self.terms = list(terms)  # [(weight, Term)]
        self.name = name or " + ".join(f"{w:g} * {t.name}" if w != 1 else t.name for w, t in self.terms)

    def __call__(self, model, x) -> Evaluation:
        value, grad, info, scores = np.zeros(len(x)), None, {}, None
        for layer in dict.fromkeys(t.layer for _, t in self.terms):
            group = [(w, t) for w, t in self.terms if t.layer == layer]
            v, g, inf, sc = _evaluate_layer(model, x, layer, group)
            value, grad = value + v, g if grad is None else grad + g
            scores = sc if sc is not None else scores
            info.update({k if k not in info else f"{k}_{len(info)}": a for k, a in inf.items()})
        return Evaluation(value, grad, info, scores)

    def __add__(self, other):
        if isinstance(other, Number) and other == 0:
            return self
        if not isinstance(other, Objective):
            return NotImplemented
        return Objective(self.terms + other.terms)

    __radd__ = __add__

    def __mul__(self, k):
        if not isinstance(k, Number):
            return NotImplemented
        return Objective([(float(k) * w, t) for w, t in self.terms])

    __rmul__ = __mul__

    def __neg__(self):
        return -1.0 * self

    def __sub__(self, other):
        return self + (-other)

    def __repr__(self):
        return f"Objective({self.name})"


def _term(layer, fn, name) -> Objective:
    return Objective([(1.0, Term(layer, fn, name))])


def _weighted(group, act):
    """(value (N,), d/d act, info) of weighted terms on one activation array."""
    value, dact, info = np.zeros(len(act)), np.zeros(act.shape, np.float64), {}
    for w, t in group:
        v, d, inf = t.fn(act)
        value, dact = value + w * np.asarray(v, np.float64), dact + w * d
        info.update(inf)
    return value, dact.astype(act.dtype), info


def _evaluate_layer(model, x, layer, group):
    """One forward and backward pass for the terms of one layer (None: the class scores)."""
    if layer is None:
        kept = {}

        def dscores(scores):
            kept["value"], d, kept["info"] = _weighted(group, scores)
            return d

        scores, g = model.scores_backward(x, dscores)
        return kept["value"], g, kept["info"], scores
    act, cache = model.forward_to(x, layer)
    value, dact, info = _weighted(group, act)
    return value, model.backward_from(dact, cache), info, None


def _class_info(scores, targets):
    idx = np.arange(len(scores))
    s = scores.astype(np.float64)
    return {"target_score": s[idx, targets], "target_prob": softmax(s)[idx, targets]}


def class_score(targets) -> Objective:
    """Objective: the raw score of class targets[i] for image i."""
    def fn(scores):
        picked = check_classes(targets, scores.shape[0], scores.shape[1])
        info = _class_info(scores, picked)
        d = np.zeros(scores.shape)
        d[np.arange(len(d)), picked] = 1.0
        return info["target_score"], d, info

    return _term(None, fn, "class_score")


def class_log_prob(targets) -> Objective:
    """Objective: log softmax(scores)[i, targets[i]]; its score gradient is onehot - softmax."""
    def fn(scores):
        picked = check_classes(targets, scores.shape[0], scores.shape[1])
        s = scores.astype(np.float64)
        d = -softmax(s)
        d[np.arange(len(d)), picked] += 1.0
        return log_softmax(s)[np.arange(len(s)), picked], d, _class_info(scores, picked)

    return _term(None, fn, "class_log_prob")


CLASS_OBJECTIVES = {"score": class_score, "log_prob": class_log_prob}


def class_objective(name: str, targets) -> Objective:
    """The class objective called `name` ('score' or 'log_prob') for these targets."""
    if name not in CLASS_OBJECTIVES:
        raise GradscopeError(f"unknown objective {name!r}: expected one of {', '.join(CLASS_OBJECTIVES)}")
    return CLASS_OBJECTIVES[name](targets)


def _per_image_sq(a):
    return np.sum(a.reshape(len(a), -1).astype(np.float64) ** 2, axis=1)


def _channels(act, c, layer) -> np.ndarray:
    """(N,) channel per image from one channel or one per image; GradscopeError if out of range."""
    picked = np.broadcast_to(np.asarray(c, dtype=np.int64), (len(act),))
    bad = picked[(picked < 0) | (picked >= act.shape[1])]
    if bad.size:
        raise GradscopeError(f"channel {int(bad[0])} out of range: layer {layer} has {act.shape[1]} channels "
                             f"(0..{act.shape[1] - 1})")
    return picked


def channel(layer, c) -> Objective:
    """Objective: the mean activation of channel c at `layer` (over positions; a dense
    layer's unit c); c one channel or one per image; info 'channel_mean' (N,)."""
    def fn(act):
        idx = np.arange(len(act))
        k = _channels(act, c, layer)
        plane = act[idx, k].reshape(len(act), -1).astype(np.float64)  # (N, positions)
        d = np.zeros(act.shape)
        d[idx, k] = 1.0 / plane.shape[1]
        value = plane.mean(axis=1)
        return value, d, {"channel_mean": value}

    return _term(layer, fn, f"channel({layer}:{c})")


def neuron(layer, c, y: int | None = None, x: int | None = None) -> Objective:
    """Objective: the activation of channel c at position (y, x) of `layer` (default the
    centre; a dense layer's unit c); c one channel or one per image; info 'neuron' (N,)."""
    def fn(act):
        idx = np.arange(len(act))
        k = _channels(act, c, layer)
        at = (idx, k) if act.ndim == 2 else \
            (idx, k, act.shape[2] // 2 if y is None else y, act.shape[3] // 2 if x is None else x)
        d = np.zeros(act.shape)
        d[at] = 1.0
        value = act[at].astype(np.float64)
        return value, d, {"neuron": value}

    return _term(layer, fn, f"neuron({layer}:{c})")


def feature_match(layer, target: np.ndarray) -> Objective:
    """Objective: minus the squared relative distance of the activations at `layer` to
    `target` (the activations of the image to reconstruct); info 'distance' (N,) is the
    relative distance ||phi(x) - phi_0|| / ||phi_0||."""
    target_sq = np.maximum(_per_image_sq(target), 1e-12)  # (N,)

    def fn(act):
        diff = act.astype(np.float64) - target
        dist_sq = _per_image_sq(diff) / target_sq
        scale = (-2.0 / target_sq).reshape((-1,) + (1,) * (act.ndim - 1))
        return -dist_sq, scale * diff, {"distance": np.sqrt(dist_sq)}

    return _term(layer, fn, f"feature_match({layer})")


def activation_energy(layer) -> Objective:
    """Objective: 0.5 ||phi(x)||^2 at `layer`, whose upstream gradient is the activations
    themselves; info 'activation_norm' (N,) is their RMS (comparable across image sizes)."""
    def fn(act):
        sq = _per_image_sq(act)
        return 0.5 * sq, act.astype(np.float64), {"activation_norm": np.sqrt(sq / (act.size / len(act)))}

    return _term(layer, fn, f"activation_energy({layer})")


def diversity(layer) -> Objective:
    """Objective (a batch): for image i, minus the mean over the other images j of the cosine
    similarity of their Gram matrices G = F F^T at `layer` (F: channels x positions), so
    the images of a batch differ in style; 0 for a single image. info 'gram_similarity' (N,)."""
    def fn(act):
        n = len(act)
        f = act.reshape(n, act.shape[1], -1).astype(np.float64)  # (N, C, P)
        gram = f @ f.transpose(0, 2, 1)  # (N, C, C)
        norm = np.maximum(np.sqrt(np.sum(gram ** 2, axis=(1, 2))), 1e-12)[:, None, None]
        unit = gram / norm
        others = unit.sum(axis=0, keepdims=True) - unit  # sum over j != i
        value = -np.sum(unit * others, axis=(1, 2)) / max(n, 1)
        q = -2.0 / max(n, 1) * others  # d sum(value) / d unit
        dgram = (q - np.sum(q * unit, axis=(1, 2), keepdims=True) * unit) / norm
        df = (dgram + dgram.transpose(0, 2, 1)) @ f
        return value, df.reshape(act.shape), {"gram_similarity": -value * max(n, 1) / max(n - 1, 1)}

    return _term(layer, fn, f"diversity({layer})")
