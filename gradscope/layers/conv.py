"""Convolution (cross-correlation, as in every deep-learning library): a pure
forward/backward pair built on im2col and BLAS matrix products.

Layout: the column matrix is ordered (C, HH, WW, N, Ho, Wo), so the product
W2 (F, C*HH*WW) @ cols gives the output as (F, N, Ho, Wo). The forward returns that
buffer as a transposed (N, F, Ho, Wo) view; the backward reads an upstream gradient in
the same physical layout without a copy, and returns dx laid out (C, N, H, W) likewise.

Speed: the batch is processed in chunks of images whose columns fit in the CPU's
cache (about COLS_BYTES), one im2col and one matrix product per chunk; for big maps a
chunk is one image. For stride 1 the input gradient is itself a correlation (of the
padded upstream gradient with the flipped, channel-swapped filters), computed the same
way (unless there are many more filters than input channels, as in a first layer);
otherwise one product per chunk makes gradient columns, and a col2im that loops over
the HH*WW kernel offsets only adds them up.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from gradscope.errors import ShapeError
from gradscope.layers._validate import check_dim, check_ndim

__all__ = ["conv_forward", "conv_backward", "conv_backward_input", "conv_output_size"]

COLS_BYTES = 2 ** 22  # target size of one chunk's column matrix (measured best of 1-16 MB)


def conv_output_size(size: int, kernel: int, stride: int, pad: int) -> int:
    """Output side for an input side `size`; ShapeError when the kernel does not fit."""
    if stride < 1 or pad < 0:
        raise ShapeError(f"conv needs stride >= 1 and pad >= 0, got stride={stride}, pad={pad}")
    if size + 2 * pad < kernel:
        raise ShapeError(f"conv kernel {kernel} does not fit an input of side {size} with pad {pad}")
    return (size + 2 * pad - kernel) // stride + 1


def _pad_channels_first(x, pad, dtype):
    """x (N, C, H, W) -> zero-padded copy stored physically as (C, N, Hp, Wp), returned
    as an (N, C, Hp, Wp) view (the layout the column matrix is read in)."""
    N, C, H, W = x.shape
    xp = np.zeros((C, N, H + 2 * pad, W + 2 * pad), dtype=dtype).transpose(1, 0, 2, 3)
    xp[:, :, pad:pad + H, pad:pad + W] = x
    return xp


def _chunks(N, rows, per_image, itemsize):
    """Image ranges [a, b) whose (rows, per_image) column block is about COLS_BYTES."""
    n = max(1, min(N, COLS_BYTES // max(1, rows * per_image * itemsize)))
    return [(a, min(a + n, N)) for a in range(0, N, n)]


def _im2col(xp, HH, WW, stride, Ho, Wo):
    """Padded input (N, C, Hp, Wp) -> contiguous columns (C*HH*WW, N*Ho*Wo)."""
    N, C = xp.shape[:2]
    win = sliding_window_view(xp, (HH, WW), axis=(2, 3))  # (N, C, Hp-HH+1, Wp-WW+1, HH, WW)
    win = win[:, :, :stride * (Ho - 1) + 1:stride, :stride * (Wo - 1) + 1:stride]
    cols = np.ascontiguousarray(win.transpose(1, 4, 5, 0, 2, 3))  # (C, HH, WW, N, Ho, Wo)
    return cols.reshape(C * HH * WW, N * Ho * Wo)


def _correlate(xp, w2, HH, WW, stride, Ho, Wo):
    """Padded input (N, C, Hp, Wp) and filters as a matrix (F, C*HH*WW) -> (F, N, Ho*Wo):
    one im2col and one matrix product per chunk of images."""
    N, F = xp.shape[0], w2.shape[0]
    out = np.empty((F, N, Ho * Wo), dtype=w2.dtype)
    for a, z in _chunks(N, w2.shape[1], Ho * Wo, out.itemsize):
        np.matmul(w2, _im2col(xp[a:z], HH, WW, stride, Ho, Wo), out=out[:, a:z].reshape(F, -1))
    return out


def conv_forward(x, w, b, stride: int = 1, pad: int = 0):
    """Convolution of x with filters w.

    Inputs: x (N, C, H, W), w (F, C, HH, WW), b (F,), stride >= 1, zero padding pad >= 0.
    Returns: out (N, F, Ho, Wo) with Ho = (H + 2 pad - HH) // stride + 1 (likewise Wo), cache.
    Computes in the common dtype of x and w (float32 stays float32).
    """
    check_ndim("x", x, 4, "(N, C, H, W)")
    check_ndim("w", w, 4, "(F, C, HH, WW)")
    check_ndim("b", b, 1, "(F,)")
    check_dim("x", x.shape[1], "w", w.shape[1], "conv input channels C")
    check_dim("w", w.shape[0], "b", b.shape[0], "conv filter count F")
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    Ho, Wo = conv_output_size(H, HH, stride, pad), conv_output_size(W, WW, stride, pad)
    dtype = np.result_type(x.dtype, w.dtype, np.float32)
    xp = _pad_channels_first(x, pad, dtype)
    w2 = w.reshape(F, -1).astype(dtype, copy=False)  # (F, C*HH*WW)
    out = _correlate(xp, w2, HH, WW, stride, Ho, Wo)  # (F, N, Ho*Wo)
    out += b.astype(dtype, copy=False)[:, None, None]
    out = out.reshape(F, N, Ho, Wo).transpose(1, 0, 2, 3)
    # keep the padded input, not the columns: they are rebuilt only when dw is needed
    return out, (xp, w2, w.shape, x.shape, stride, pad, Ho, Wo)


def _dout_matrix(dout, cache):
    """Upstream gradient (N, F, Ho, Wo) as an (F, N*Ho*Wo) matrix (free for the
    layout conv_forward produces)."""
    xp, w2, wshape, xshape, stride, pad, Ho, Wo = cache
    expected = (xshape[0], wshape[0], Ho, Wo)
    if not isinstance(dout, np.ndarray) or dout.shape != expected:
        got = dout.shape if isinstance(dout, np.ndarray) else type(dout).__name__
        raise ShapeError(f"conv upstream gradient must have shape {expected}, got {got}")
    return dout.astype(w2.dtype, copy=False).transpose(1, 0, 2, 3).reshape(wshape[0], -1)


def _col2im_add(dxp, dcols, stride, Ho, Wo):
    """Add columns (C, HH, WW, n, Ho, Wo) back into the padded gradient dxp (C, n, Hp, Wp):
    one strided add per kernel offset (overlapping windows accumulate)."""
    for i in range(dcols.shape[1]):
        for j in range(dcols.shape[2]):
            dxp[:, :, i:i + stride * Ho:stride, j:j + stride * Wo:stride] += dcols[:, i, j]


def _dx_transposed(d, cache):
    """Stride 1: dx is the correlation of the upstream gradient, padded by k - 1 - pad,
    with the flipped filters with in/out channels swapped (an im2col copy, cheaper
    than col2im's adds)."""
    xp, w2, wshape, xshape, stride, pad, Ho, Wo = cache
    N, C, H, W = xshape
    F, _, HH, WW = wshape
    wt = w2.reshape(wshape)[:, :, ::-1, ::-1].transpose(1, 0, 2, 3).reshape(C, -1)  # (C, F*HH*WW)
    dp = _pad_channels_first(d.reshape(F, N, Ho, Wo).transpose(1, 0, 2, 3), HH - 1 - pad, w2.dtype)
    return _correlate(dp, wt, HH, WW, 1, H, W).reshape(C, N, H, W).transpose(1, 0, 2, 3)


def _dx_col2im(d, cache):
    """Any stride: columns of the gradient (one product per chunk), added back by col2im."""
    xp, w2, wshape, xshape, stride, pad, Ho, Wo = cache
    N, C, H, W = xshape
    F, _, HH, WW = wshape
    w2t = np.ascontiguousarray(w2.T)  # (C*HH*WW, F)
    dxp = np.zeros((C, N) + xp.shape[2:], dtype=w2.dtype)  # (C, N, Hp, Wp)
    for a, z in _chunks(N, w2t.shape[0], Ho * Wo, w2.itemsize):
        dcols = (w2t @ d[:, a:z].reshape(F, -1)).reshape(C, HH, WW, z - a, Ho, Wo)
        _col2im_add(dxp[:, a:z], dcols, stride, Ho, Wo)
    return dxp[:, :, pad:pad + H, pad:pad + W].transpose(1, 0, 2, 3)


def _dx(d, cache):
    """dx (N, C, H, W) from the upstream gradient as (F, N, Ho*Wo)."""
    xp, w2, wshape, xshape, stride, pad, Ho, Wo = cache
    square, F, C = wshape[2] == wshape[3], wshape[0], xshape[1]
    # the transposed form copies F*k*k gradient rows, col2im makes C*k*k: pick the cheaper
    if stride == 1 and square and pad <= wshape[2] - 1 and F <= 2 * C:
        return _dx_transposed(d, cache)
    return _dx_col2im(d, cache)


def conv_backward_input(dout, cache):
    """Gradient w.r.t. x only (what backpropagation to the image needs): dout (N, F, Ho, Wo)
    -> dx (N, C, H, W)."""
    xp, w2, wshape, xshape, stride, pad, Ho, Wo = cache
    return _dx(_dout_matrix(dout, cache).reshape(wshape[0], xshape[0], Ho * Wo), cache)


def conv_backward(dout, cache):
    """dout (N, F, Ho, Wo) -> (dx (N, C, H, W), dw (F, C, HH, WW), db (F,))."""
    xp, w2, wshape, xshape, stride, pad, Ho, Wo = cache
    F, N = wshape[0], xshape[0]
    d = _dout_matrix(dout, cache).reshape(F, N, Ho * Wo)
    dw = np.zeros_like(w2)  # (F, C*HH*WW)
    for a, z in _chunks(N, w2.shape[1], Ho * Wo, w2.itemsize):
        dw += d[:, a:z].reshape(F, -1) @ _im2col(xp[a:z], wshape[2], wshape[3], stride, Ho, Wo).T
    return _dx(d, cache), dw.reshape(wshape), d.sum(axis=(1, 2))
