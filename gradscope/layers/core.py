"""Affine, ReLU and softmax loss: pure forward/backward pairs; the one softmax and
log-softmax of the package."""
from __future__ import annotations

import numpy as np

from gradscope.errors import GradscopeError
from gradscope.layers._validate import check_dim, check_ndim, check_upstream

__all__ = ["affine_forward", "affine_backward", "relu_forward", "relu_backward", "softmax_loss", "softmax",
           "log_softmax"]


def affine_forward(x, w, b):
    """out = x.reshape(N, D) @ w + b.

    Inputs: x (N, d_1, ..., d_k) with D = d_1 * ... * d_k, w (D, M), b (M,).
    Returns: out (N, M), cache.
    """
    check_ndim("w", w, 2, "(D, M)")
    x2 = x.reshape(x.shape[0], -1)  # (N, D)
    check_dim("x (flattened)", x2.shape[1], "w", w.shape[0], "input dimension D")
    check_dim("w", w.shape[1], "b", b.shape[0], "output dimension M")
    out = x2 @ w + b
    return out, (x, w)


def affine_backward(dout, cache):
    """dout (N, M) -> (dx shaped like x, dw (D, M), db (M,))."""
    x, w = cache
    check_upstream("dout", dout, (x.shape[0], w.shape[1]))
    x2 = x.reshape(x.shape[0], -1)
    dx = (dout @ w.T).reshape(x.shape)
    return dx, x2.T @ dout, dout.sum(axis=0)


def relu_forward(x):
    """out = max(x, 0), any shape. Returns (out, cache)."""
    out = np.maximum(x, 0)
    return out, x


def relu_backward(dout, cache):
    """Gradient passes where the input was positive."""
    check_upstream("dout", dout, cache.shape)
    return dout * (cache > 0)


def log_softmax(scores, axis: int = -1):
    """log softmax along an axis, stable (the largest exponent is 0)."""
    shifted = scores - scores.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def softmax(scores, axis: int = -1):
    """softmax along an axis (rows of (N, C) scores by default), stable."""
    return np.exp(log_softmax(scores, axis))


def softmax_loss(x, y):
    """Mean cross-entropy of softmax(x) against integer labels.

    Inputs: x (N, C) scores, y (N,) labels in [0, C).
    Returns: (loss, dx (N, C)).
    """
    check_ndim("x", x, 2, "(N, C)")
    y = np.asarray(y)
    check_dim("x", x.shape[0], "y", y.shape[0], "batch size N")
    if y.size and (y.min() < 0 or y.max() >= x.shape[1]):
        raise GradscopeError(f"labels y must lie in [0, {x.shape[1]}), got range [{y.min()}, {y.max()}]")
    log_probs = log_softmax(x, axis=1)
    n = x.shape[0]
    loss = -log_probs[np.arange(n), y].mean()
    dx = np.exp(log_probs)
    dx[np.arange(n), y] -= 1
    return loss, dx / n
