"""Depthwise convolution (groups = channels: each channel has its own k x k filter)
and 1x1 ("pointwise") convolution: pure forward/backward pairs.

The depthwise layer never builds an im2col matrix: it adds up k*k shifted, strided
views of the input, each scaled by one filter tap per channel (k*k passes over the
output instead of a (C*k*k, N*Ho*Wo) copy). No padding here: pad first (gradscope/
layers/padding.py), as TF "SAME" needs an asymmetric pad the layer should not hide.
"""
from __future__ import annotations

import numpy as np

from gradscope.layers._validate import check_dim, check_ndim
from gradscope.layers.conv import conv_output_size

__all__ = ["depthwise_conv_forward", "depthwise_conv_backward",
           "pointwise_conv_forward", "pointwise_conv_backward",
           "pointwise_conv_forward_plain", "pointwise_conv_backward_plain"]


def _tap(x, a, b, stride, Ho, Wo):
    """The strided view of x (N, C, H, W) that filter tap (a, b) multiplies: (N, C, Ho, Wo)."""
    return x[:, :, a:a + stride * (Ho - 1) + 1:stride, b:b + stride * (Wo - 1) + 1:stride]


def depthwise_conv_forward(x, w, stride: int = 1):
    """Each channel correlated with its own filter (no padding, no bias).

    Inputs: x (N, C, H, W), w (C, 1, k, k) (torch's grouped layout), stride >= 1.
    Returns: out (N, C, Ho, Wo) with Ho = (H - k) // stride + 1, cache.
    """
    check_ndim("x", x, 4, "(N, C, H, W)")
    check_ndim("w", w, 4, "(C, 1, k, k)")
    check_dim("x", x.shape[1], "w", w.shape[0], "depthwise channels C")
    check_dim("w", w.shape[1], "1 (one filter per channel)", 1, "depthwise filter depth")
    N, C, H, W = x.shape
    k, kw = w.shape[2:]
    Ho, Wo = conv_output_size(H, k, stride, 0), conv_output_size(W, kw, stride, 0)
    dtype = np.result_type(x.dtype, w.dtype, np.float32)
    taps = w.astype(dtype, copy=False).reshape(C, k, kw)
    out = np.zeros((N, C, Ho, Wo), dtype=dtype)
    tmp = np.empty_like(out)
    for a in range(k):
        for b in range(kw):
            np.multiply(_tap(x, a, b, stride, Ho, Wo), taps[:, a, b, None, None], out=tmp)
            out += tmp
    return out, (x, taps, stride, w.shape)


def depthwise_conv_backward(dout, cache):
    """dout (N, C, Ho, Wo) -> (dx (N, C, H, W), dw (C, 1, k, k))."""
    x, taps, stride, w_shape = cache
    N, C, Ho, Wo = dout.shape
    dx = np.zeros(x.shape, dtype=np.result_type(dout.dtype, taps.dtype))
    dw = np.empty(taps.shape, dtype=dx.dtype)  # (C, k, k)
    d = dout.transpose(1, 0, 2, 3).reshape(C, 1, -1)  # (C, 1, N*Ho*Wo) for the tap reductions
    for a in range(taps.shape[1]):
        for b in range(taps.shape[2]):
            _tap(dx, a, b, stride, Ho, Wo)[...] += dout * taps[:, a, b, None, None]
            xs = _tap(x, a, b, stride, Ho, Wo).transpose(1, 0, 2, 3).reshape(C, -1, 1)
            dw[:, a, b] = np.matmul(d, xs)[:, 0, 0]  # per-channel dot products
    return dx, dw.reshape(w_shape)


def pointwise_conv_forward_plain(x, w):
    """1x1 convolution written as its definition: out[n, f] = sum_c w[f, c] x[n, c].

    Inputs: x (N, C, H, W), w (F, C, 1, 1). Returns: out (N, F, H, W), cache.
    """
    check_ndim("x", x, 4, "(N, C, H, W)")
    check_ndim("w", w, 4, "(F, C, 1, 1)")
    check_dim("x", x.shape[1], "w", w.shape[1], "pointwise input channels C")
    out = np.einsum("fc,nchw->nfhw", w[:, :, 0, 0], x)
    return out, (x, w)


def pointwise_conv_backward_plain(dout, cache):
    """dout (N, F, H, W) -> (dx (N, C, H, W), dw (F, C, 1, 1))."""
    x, w = cache
    dx = np.einsum("fc,nfhw->nchw", w[:, :, 0, 0], dout)
    dw = np.einsum("nfhw,nchw->fc", dout, x)[:, :, None, None]
    return dx, dw


def pointwise_conv_forward(x, w):
    """Fast path of pointwise_conv_forward_plain (same inputs, outputs and cache):
    one BLAS product (F, C) @ (C, H*W) per image (a loop: np.matmul broadcasting the
    filters over the batch measured 5x slower)."""
    check_ndim("x", x, 4, "(N, C, H, W)")
    check_ndim("w", w, 4, "(F, C, 1, 1)")
    check_dim("x", x.shape[1], "w", w.shape[1], "pointwise input channels C")
    N, C, H, W = x.shape
    dtype = np.result_type(x.dtype, w.dtype, np.float32)
    w2 = w.reshape(w.shape[0], C).astype(dtype, copy=False)  # (F, C)
    x3 = x.reshape(N, C, H * W)
    out = np.empty((N, w2.shape[0], H * W), dtype=dtype)  # (N, F, H*W)
    for n in range(N):
        np.matmul(w2, x3[n], out=out[n])
    return out.reshape(N, -1, H, W), (x, w)


def pointwise_conv_backward(dout, cache):
    """Fast path of pointwise_conv_backward_plain: dout (N, F, H, W) -> (dx, dw)."""
    x, w = cache
    N, C, H, W = x.shape
    F = w.shape[0]
    d = dout.reshape(N, F, H * W)
    w2 = w.reshape(F, C).astype(d.dtype, copy=False)
    x3 = x.reshape(N, C, H * W)
    dx = np.empty(x3.shape, dtype=np.result_type(d.dtype, w2.dtype))
    dw = np.zeros((F, C), dtype=dx.dtype)
    for n in range(N):
        np.matmul(w2.T, d[n], out=dx[n])
        dw += d[n] @ x3[n].T
    return dx.reshape(x.shape), dw.reshape(w.shape)
