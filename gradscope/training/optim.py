"""First-order update rules, course style: `next_w, config = rule(w, dw, config)`.

`config` is a dict holding the hyperparameters (always `learning_rate`) and the rule's
state (`velocity`, `cache`, `m`, `v`, `t`); a rule fills in missing entries with
defaults and returns the updated dict. Arrays keep the dtype of `w`.
"""
from __future__ import annotations

import numpy as np

from gradscope.errors import GradscopeError

__all__ = ["sgd", "sgd_momentum", "rmsprop", "adam", "UPDATE_RULES", "get_update_rule"]


def sgd(w, dw, config=None):
    """Vanilla gradient descent: w - learning_rate * dw."""
    config = {} if config is None else config
    config.setdefault("learning_rate", 1e-2)
    return w - config["learning_rate"] * dw, config


def sgd_momentum(w, dw, config=None):
    """Gradient descent with momentum: v = mu * v - lr * dw; w + v."""
    config = {} if config is None else config
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("momentum", 0.9)
    v = config.get("velocity")
    v = np.zeros_like(w) if v is None else v
    v = config["momentum"] * v - config["learning_rate"] * dw
    config["velocity"] = v
    return w + v, config


def rmsprop(w, dw, config=None):
    """RMSProp: a running mean of squared gradients scales each step."""
    config = {} if config is None else config
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("decay_rate", 0.99)
    config.setdefault("epsilon", 1e-8)
    cache = config.get("cache")
    cache = np.zeros_like(w) if cache is None else cache
    cache = config["decay_rate"] * cache + (1 - config["decay_rate"]) * dw * dw
    config["cache"] = cache
    return w - config["learning_rate"] * dw / (np.sqrt(cache) + config["epsilon"]), config


def adam(w, dw, config=None):
    """Adam with bias-corrected first (m) and second (v) moment estimates; t counts steps.

    next_w = w - lr * m_hat / (sqrt(v_hat) + eps) with m_hat = m / (1 - beta1**t) and
    v_hat = v / (1 - beta2**t), evaluated as lr * sqrt(c2) / c1 * m / (sqrt(v) + eps * sqrt(c2))
    (c1, c2 the corrections; the same number) with the moments updated in place.
    """
    config = {} if config is None else config
    config.setdefault("learning_rate", 1e-3)
    config.setdefault("beta1", 0.9)
    config.setdefault("beta2", 0.999)
    config.setdefault("epsilon", 1e-8)
    config.setdefault("t", 0)
    b1, b2 = config["beta1"], config["beta2"]
    m = config.get("m")
    v = config.get("v")
    m = np.zeros_like(w) if m is None else m
    v = np.zeros_like(w) if v is None else v
    t = config["t"] + 1
    tmp = np.multiply(dw, 1 - b1, dtype=m.dtype)  # one scratch array, reused below
    m *= b1
    m += tmp
    np.multiply(dw, dw, out=tmp)
    tmp *= 1 - b2
    v *= b2
    v += tmp
    c1, root_c2 = 1 - b1 ** t, np.sqrt(1 - b2 ** t)
    np.sqrt(v, out=tmp)
    tmp += config["epsilon"] * root_c2
    np.divide(m, tmp, out=tmp)
    tmp *= config["learning_rate"] * root_c2 / c1
    config.update(m=m, v=v, t=t)
    return np.subtract(w, tmp, out=tmp), config  # a new array: w itself is left unchanged


UPDATE_RULES = {"sgd": sgd, "sgd_momentum": sgd_momentum, "rmsprop": rmsprop, "adam": adam}


def get_update_rule(rule):
    """The update function for a name in UPDATE_RULES (or a callable, returned as is)."""
    if callable(rule):
        return rule
    if rule not in UPDATE_RULES:
        raise GradscopeError(f"unknown update rule {rule!r}; choose one of {', '.join(UPDATE_RULES)}")
    return UPDATE_RULES[rule]
