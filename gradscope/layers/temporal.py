"""Layers applied at every time step of a sequence: word embedding, affine, and the
masked softmax loss of a captioning model.

Shapes: N minibatch, T time steps, V vocabulary size, D and M feature sizes.
"""
from __future__ import annotations

import numpy as np

from gradscope.errors import GradscopeError, ShapeError
from gradscope.layers._validate import check_dim, check_ndim, check_upstream

__all__ = [
    "word_embedding_forward", "word_embedding_backward",
    "temporal_affine_forward", "temporal_affine_backward",
    "temporal_softmax_loss",
]


def _check_word_ids(name, ids, V):
    """ids must be an (N, T) integer array with values in [0, V)."""
    check_ndim(name, ids, 2, "(N, T)")
    if not np.issubdtype(ids.dtype, np.integer):
        raise ShapeError(f"{name} must hold integer word ids, got dtype {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= V):
        raise GradscopeError(f"{name} must lie in [0, {V}) (the vocabulary size), "
                         f"got range [{ids.min()}, {ids.max()}]")


def word_embedding_forward(x, W):
    """Look up the vectors of words.

    Inputs: x (N, T) integer word ids in [0, V), W (V, D) one vector per word.
    Returns: out (N, T, D) with out[n, t] = W[x[n, t]], cache.
    """
    check_ndim("W", W, 2, "(V, D)")
    _check_word_ids("x", x, W.shape[0])
    return W[x], (x, W.shape, W.dtype)


def word_embedding_backward(dout, cache):
    """dout (N, T, D) -> dW (V, D): each word's row collects the gradients of its uses."""
    x, (V, D), dtype = cache
    check_upstream("dout", dout, x.shape + (D,))
    dW = np.zeros((V, D), dtype=np.result_type(dtype, dout.dtype))
    np.add.at(dW, x.reshape(-1), dout.reshape(-1, D))  # repeated ids accumulate
    return dW


def temporal_affine_forward(x, w, b):
    """The same affine map at every step: out[n, t] = x[n, t] @ w + b.

    Inputs: x (N, T, D), w (D, M), b (M,).
    Returns: out (N, T, M), cache.
    """
    check_ndim("x", x, 3, "(N, T, D)")
    check_ndim("w", w, 2, "(D, M)")
    check_ndim("b", b, 1, "(M,)")
    check_dim("x", x.shape[2], "w", w.shape[0], "input dimension D")
    check_dim("w", w.shape[1], "b", b.shape[0], "output dimension M")
    N, T, D = x.shape
    out = x.reshape(N * T, D) @ w  # (N*T, M)
    out += b
    return out.reshape(N, T, -1), (x, w)


def temporal_affine_backward(dout, cache):
    """dout (N, T, M) -> (dx (N, T, D), dw (D, M), db (M,))."""
    x, w = cache
    N, T, D = x.shape
    check_upstream("dout", dout, (N, T, w.shape[1]))
    d2 = dout.reshape(N * T, -1)
    dx = (d2 @ w.T).reshape(N, T, D)
    return dx, x.reshape(N * T, D).T @ d2, d2.sum(axis=0)


def temporal_softmax_loss(x, y, mask):
    """Softmax cross-entropy at every step, summed over the steps where mask is true
    and averaged over the minibatch.

    Inputs: x (N, T, V) scores, y (N, T) integer targets in [0, V) (checked at every
    step, masked or not), mask (N, T) booleans (nonzero counts as true).
    Returns: (loss, dx (N, T, V)), both in the dtype of x.
    """
    check_ndim("x", x, 3, "(N, T, V)")
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    N, T, V = x.shape
    y = np.asarray(y)
    mask = np.asarray(mask)
    for name, a in (("y", y), ("mask", mask)):
        if a.shape != (N, T):
            raise ShapeError(f"{name} must have shape (N, T) = {(N, T)} for x of shape {x.shape}, "
                             f"got shape {a.shape}")
    _check_word_ids("y", y, V)
    x2 = x.reshape(N * T, V)
    y2, m2 = y.reshape(-1), mask.reshape(-1).astype(bool)
    rows = np.arange(N * T)
    shifted = x2 - x2.max(axis=1, keepdims=True)  # stable: the largest exponent is 0
    probs = np.exp(shifted)  # (N*T, V)
    sums = probs.sum(axis=1)
    log_p = shifted[rows, y2] - np.log(sums)  # log-probability of each target
    loss = -log_p[m2].sum() / N
    weight = m2 / N  # dx = (softmax - onehot(y)) * mask / N, in one pass over probs
    probs *= (weight / sums).astype(x.dtype)[:, None]
    probs[rows, y2] -= weight.astype(x.dtype)
    return x.dtype.type(loss), probs.reshape(N, T, V)
