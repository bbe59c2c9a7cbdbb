"""First-order update rules, course style: `next_w, config = rule(w, dw, config)`.

`config` is a dict holding the hyperparameters (always `learning_rate`) and the rule's
state (`velocity`, `cache`, `m`, `v`, `t`); a rule fills in missing entries with
defaults and returns the updated dict. Arrays keep the dtype of `w`.

Each rule is written as its textbook equations; Adam, which the trainers call on every
parameter at every step, also has a fast in-place form (`adam`) beside its textbook
form (`adam_reference`), and the tests check that the two agree.
"""
from __future__ import annotations

import numpy as np

from gradscope.errors import GradscopeError

__all__ = ["sgd", "sgd_momentum", "rmsprop", "adam", "adam_reference", "UPDATE_RULES", "get_update_rule"]


def _state(config, key, w):
    """The rule's state array config[key], zeros like w before the first step."""
    value = config.get(key)
    return np.zeros_like(w) if value is None else value


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
    v = config["momentum"] * _state(config, "velocity", w) - config["learning_rate"] * dw
    config["velocity"] = v
    return w + v, config


def rmsprop(w, dw, config=None):
    """RMSProp: a running mean of squared gradients scales each step."""
    config = {} if config is None else config
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("decay_rate", 0.99)
    config.setdefault("epsilon", 1e-8)
    cache = config["decay_rate"] * _state(config, "cache", w) + (1 - config["decay_rate"]) * dw * dw
    config["cache"] = cache
    return w - config["learning_rate"] * dw / (np.sqrt(cache) + config["epsilon"]), config


def _adam_defaults(config):
    config = {} if config is None else config
    for key, value in (("learning_rate", 1e-3), ("beta1", 0.9), ("beta2", 0.999), ("epsilon", 1e-8), ("t", 0)):
        config.setdefault(key, value)
    return config


def adam_reference(w, dw, config=None):
    """Adam (Kingma and Ba 2015), the textbook equations: bias-corrected first (m) and
    second (v) moment estimates of the gradient; t counts steps. `adam` computes the
    same numbers in place."""
    config = _adam_defaults(config)
    b1, b2, t = config["beta1"], config["beta2"], config["t"] + 1
    m, v = _state(config, "m", w), _state(config, "v", w)
    m = b1 * m + (1 - b1) * dw
    v = b2 * v + (1 - b2) * dw ** 2
    m_hat = m / (1 - b1 ** t)
    v_hat = v / (1 - b2 ** t)
    next_w = w - config["learning_rate"] * m_hat / (np.sqrt(v_hat) + config["epsilon"])
    config.update(m=m, v=v, t=t)
    return next_w.astype(w.dtype, copy=False), config


def adam(w, dw, config=None):
    """FAST PATH of adam_reference (same numbers up to rounding; the tests compare them):
    the moments are updated in place with one scratch array, and the step is evaluated
    as lr * sqrt(c2) / c1 * m / (sqrt(v) + eps * sqrt(c2)), c1 = 1 - beta1**t and
    c2 = 1 - beta2**t the bias corrections, which needs no m_hat or v_hat arrays.
    Returns a new array: w itself is left unchanged (the moments in config are not).
    """
    config = _adam_defaults(config)
    b1, b2, t = config["beta1"], config["beta2"], config["t"] + 1
    m, v = _state(config, "m", w), _state(config, "v", w)
    tmp = np.empty_like(m)  # one scratch array, reused below (an array also for a 0-d parameter)
    np.multiply(dw, 1 - b1, out=tmp)
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
    return np.subtract(w, tmp, out=tmp), config


UPDATE_RULES = {"sgd": sgd, "sgd_momentum": sgd_momentum, "rmsprop": rmsprop, "adam": adam}


def get_update_rule(rule):
    """The update function for a name in UPDATE_RULES (or a callable, returned as is)."""
    if callable(rule):
        return rule
    if rule not in UPDATE_RULES:
        raise GradscopeError(f"unknown update rule {rule!r}; choose one of {', '.join(UPDATE_RULES)}")
    return UPDATE_RULES[rule]
