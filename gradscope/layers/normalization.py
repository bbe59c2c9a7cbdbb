"""Batch normalization on (N, D) features and spatial batch normalization on
(N, C, H, W) maps: pure forward/backward pairs.

Running statistics are never modified in place. `bn_param` is read only:

    bn_param = {"mode": "train" | "test", "eps": 1e-5, "momentum": 0.9,
                "running_mean": (D,) array, "running_var": (D,) array}

and the forward returns the updated statistics in its cache, as
`cache.running_mean` / `cache.running_var` (in test mode: the ones given). Missing
running statistics start at mean 0, variance 1. Course conventions:
running = momentum * running + (1 - momentum) * batch, with the biased batch variance.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gradscope.errors import GradscopeError
from gradscope.layers._validate import check_dim, check_ndim, check_upstream

__all__ = ["BatchNormCache", "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_input",
           "spatial_batchnorm_forward", "spatial_batchnorm_backward"]


@dataclass
class BatchNormCache:
    """What the backward pass needs, plus the updated running statistics."""
    mode: str
    x: np.ndarray | None      # the input (test mode)
    xhat: np.ndarray | None   # the normalized input (train mode)
    mean: np.ndarray          # statistics used, broadcastable against x
    inv_std: np.ndarray       # 1 / sqrt(var + eps), broadcastable against x
    gamma: np.ndarray         # broadcastable against x
    axes: tuple               # the axes statistics are taken over
    running_mean: np.ndarray  # (D,) updated running mean
    running_var: np.ndarray   # (D,) updated running variance


def _bn_forward(x, gamma, beta, bn_param, axes, bshape):
    """Shared core: normalize x over `axes`; per-feature arrays broadcast as `bshape`."""
    D = bshape[1]
    check_dim("x", D, "gamma", gamma.shape[0], "batch norm feature count")
    check_dim("x", D, "beta", beta.shape[0], "batch norm feature count")
    mode = bn_param.get("mode", "train")
    eps = bn_param.get("eps", 1e-5)
    momentum = bn_param.get("momentum", 0.9)
    dtype = np.result_type(x.dtype, gamma.dtype, np.float32)
    running_mean = np.asarray(bn_param.get("running_mean", np.zeros(D, dtype)), dtype=dtype)
    running_var = np.asarray(bn_param.get("running_var", np.ones(D, dtype)), dtype=dtype)
    check_dim("x", D, "running_mean", running_mean.shape[0], "batch norm feature count")
    check_dim("x", D, "running_var", running_var.shape[0], "batch norm feature count")
    g = gamma.astype(dtype, copy=False).reshape(bshape)
    b = beta.astype(dtype, copy=False).reshape(bshape)
    if mode == "train":
        mean = x.mean(axis=axes, dtype=dtype, keepdims=True)
        xhat = x - mean
        var = np.mean(np.square(xhat), axis=axes, keepdims=True)  # biased, as in the course
        inv_std = 1.0 / np.sqrt(var + dtype.type(eps))
        xhat *= inv_std
        out = xhat * g
        out += b
        running_mean = momentum * running_mean + (1 - momentum) * mean.reshape(D)
        running_var = momentum * running_var + (1 - momentum) * var.reshape(D)
        return out, BatchNormCache(mode, None, xhat, mean, inv_std, g, axes, running_mean, running_var)
    if mode != "test":
        raise GradscopeError(f"batch norm mode must be 'train' or 'test', got {mode!r}")
    mean = running_mean.reshape(bshape)
    inv_std = (1.0 / np.sqrt(running_var + dtype.type(eps))).reshape(bshape)
    scale = g * inv_std
    out = x * scale  # one affine map per feature
    out += b - mean * scale
    return out, BatchNormCache(mode, x, None, mean, inv_std, g, axes, running_mean, running_var)


def _out_shape(cache):
    return (cache.x if cache.xhat is None else cache.xhat).shape


def _bn_backward(dout, cache):
    """Shared core: (dx, dgamma, dbeta) for either layout (dout checked by the caller)."""
    axes, shape = cache.axes, cache.gamma.shape
    dbeta = dout.sum(axis=axes)
    if cache.mode == "test":  # statistics are constants
        # sum(dout * xhat) without forming xhat
        dgamma = (np.sum(dout * cache.x, axis=axes) - cache.mean.reshape(-1) * dbeta) * cache.inv_std.reshape(-1)
        return dout * (cache.gamma * cache.inv_std), dgamma, dbeta
    dgamma = (dout * cache.xhat).sum(axis=axes)
    m = dout.size // dbeta.size  # values per feature
    # dx = gamma/std * (dout - mean(dout) - xhat * mean(dout * xhat))
    dx = cache.xhat * (dgamma / m).reshape(shape)
    np.subtract(dout, dx, out=dx)
    dx -= (dbeta / m).reshape(shape)
    dx *= cache.gamma * cache.inv_std
    return dx, dgamma, dbeta


def batchnorm_backward_input(dout, cache):
    """Gradient w.r.t. x only, for either layout (skips dgamma, dbeta in test mode)."""
    check_upstream("dout", dout, _out_shape(cache))
    if cache.mode == "test":
        return dout * (cache.gamma * cache.inv_std)
    return _bn_backward(dout, cache)[0]


def batchnorm_forward(x, gamma, beta, bn_param):
    """Batch norm over the batch axis.

    Inputs: x (N, D), gamma (D,), beta (D,), bn_param (see the module docstring).
    Returns: out (N, D), cache (a BatchNormCache carrying the updated running statistics).
    """
    check_ndim("x", x, 2, "(N, D)")
    return _bn_forward(x, gamma, beta, bn_param, (0,), (1, x.shape[1]))


def batchnorm_backward(dout, cache):
    """dout (N, D) -> (dx (N, D), dgamma (D,), dbeta (D,))."""
    check_upstream("dout", dout, _out_shape(cache))
    return _bn_backward(dout, cache)


def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    """Batch norm per channel, statistics over batch and space.

    Inputs: x (N, C, H, W), gamma (C,), beta (C,), bn_param (see the module docstring).
    Returns: out (N, C, H, W), cache (a BatchNormCache carrying the updated running statistics).
    """
    check_ndim("x", x, 4, "(N, C, H, W)")
    return _bn_forward(x, gamma, beta, bn_param, (0, 2, 3), (1, x.shape[1], 1, 1))


def spatial_batchnorm_backward(dout, cache):
    """dout (N, C, H, W) -> (dx (N, C, H, W), dgamma (C,), dbeta (C,))."""
    check_upstream("dout", dout, _out_shape(cache))
    return _bn_backward(dout, cache)
