"""Convolution (cross-correlation, as in every deep-learning library): a pure
forward/backward pair, in two forms.

- `conv_forward_reference` / `conv_backward_reference`: the definition, a loop over the
  HH*WW kernel offsets, each a product over channels (einsum). Easy to check; slow.
- FAST PATH `conv_forward` / `conv_backward` / `conv_backward_input` (the tests compare
  them with the reference): im2col feeding one large matrix product per chunk of images,
  and for 3x3 filters at stride 1 Winograd's F(2x2, 3x3), 2.25 times fewer multiplies.

The fast path works channels last. The padded input is stored (N, Hp, Wp, C), so the
column matrix (rows = output pixels, columns ordered (i, j, c)) is built from HH
slab copies of contiguous runs of WW*C values, and cols (n*Ho*Wo, HH*WW*C) @ W2 (HH*WW*C, F)
writes the output as (N, Ho, Wo, F) with no transposing copy. The forward returns that
buffer as a transposed (N, F, Ho, Wo) view; elementwise layers keep that layout, so the
next convolution (and the backward, for the upstream gradient) reads it for free.
The batch is processed in chunks of images whose columns take about COLS_BYTES, one
im2col into a reused buffer and one product per chunk. For stride 1 the input gradient
is itself a correlation (of the padded upstream gradient with the flipped,
channel-swapped filters), computed the same way (unless there are many more filters
than input channels, as in a first layer); otherwise one product per chunk makes
gradient columns and a col2im adds them up, one strided add per kernel offset, in a
channels-first buffer (every add runs along image rows).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from gradscope.errors import ShapeError
from gradscope.layers._validate import check_dim, check_ndim, check_upstream

__all__ = ["conv_forward", "conv_backward", "conv_backward_input", "conv_output_size",
           "conv_forward_reference", "conv_backward_reference", "ConvCache"]

COLS_BYTES = 2 ** 22  # target size of one chunk's column matrix (measured: 4 MB best)
# Opt-in fast path: Winograd F(2x2,3x3) does 2.25x fewer multiplies but adds ~1e-6 relative
# float32 error per layer, which compounds through a deep net and flips max-pool ties
# (gradients then differ from torch's by up to ~0.4%); set True for speed, not for parity.
USE_WINOGRAD = False
WINOGRAD_BYTES = 2 ** 22  # target size of one chunk's transformed tiles (measured: 1-4 MB best)
WINOGRAD_MIN_CHANNELS = 16  # below this (a first layer's 3 colours) the tile copies cost more than they save
WINOGRAD_MIN_PIXELS = 64  # smaller maps (4x4) make too few tiles per product


def conv_output_size(size: int, kernel: int, stride: int, pad: int) -> int:
    """Output side for an input side `size`; ShapeError when the kernel does not fit."""
    if stride < 1 or pad < 0:
        raise ShapeError(f"conv needs stride >= 1 and pad >= 0, got stride={stride}, pad={pad}")
    if size + 2 * pad < kernel:
        raise ShapeError(f"conv kernel {kernel} does not fit an input of side {size} with pad {pad}")
    return (size + 2 * pad - kernel) // stride + 1


def _check_inputs(x, w, b, stride, pad):
    """Shape checks shared by both forms; returns (Ho, Wo)."""
    check_ndim("x", x, 4, "(N, C, H, W)")
    check_ndim("w", w, 4, "(F, C, HH, WW)")
    check_ndim("b", b, 1, "(F,)")
    check_dim("x", x.shape[1], "w", w.shape[1], "conv input channels C")
    check_dim("w", w.shape[0], "b", b.shape[0], "conv filter count F")
    H, W, HH, WW = x.shape[2], x.shape[3], w.shape[2], w.shape[3]
    return conv_output_size(H, HH, stride, pad), conv_output_size(W, WW, stride, pad)


def _window(a, i, j, stride, Ho, Wo, axes=(2, 3)):
    """The view of `a` read by kernel offset (i, j): Ho x Wo positions `stride` apart."""
    index = [slice(None)] * a.ndim
    index[axes[0]] = slice(i, i + stride * (Ho - 1) + 1, stride)
    index[axes[1]] = slice(j, j + stride * (Wo - 1) + 1, stride)
    return a[tuple(index)]


# ------------------------------------------------------------- the plain reference form

def conv_forward_reference(x, w, b, stride: int = 1, pad: int = 0):
    """out[n, f, y, x] = b[f] + sum over c, i, j of w[f, c, i, j] * xp[n, c, stride*y + i, stride*x + j]
    with xp the zero-padded input. Shapes as conv_forward; returns (out, cache)."""
    Ho, Wo = _check_inputs(x, w, b, stride, pad)
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((x.shape[0], w.shape[0], Ho, Wo), dtype=np.result_type(x, w))
    for i in range(w.shape[2]):
        for j in range(w.shape[3]):
            out += np.einsum("nchw,fc->nfhw", _window(xp, i, j, stride, Ho, Wo), w[:, :, i, j])
    return out + b[:, None, None], (xp, w, stride, pad)


def conv_backward_reference(dout, cache):
    """dout (N, F, Ho, Wo) -> (dx, dw, db) of conv_forward_reference, offset by offset."""
    xp, w, stride, pad = cache
    Ho, Wo = ((n - k) // stride + 1 for n, k in zip(xp.shape[2:], w.shape[2:]))
    check_upstream("dout", dout, (xp.shape[0], w.shape[0], Ho, Wo))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for i in range(w.shape[2]):
        for j in range(w.shape[3]):
            dw[:, :, i, j] = np.einsum("nfhw,nchw->fc", dout, _window(xp, i, j, stride, Ho, Wo))
            _window(dxp, i, j, stride, Ho, Wo)[...] += np.einsum("nfhw,fc->nchw", dout, w[:, :, i, j])
    H, W = xp.shape[2] - 2 * pad, xp.shape[3] - 2 * pad
    return dxp[:, :, pad:pad + H, pad:pad + W], dw, dout.sum(axis=(0, 2, 3))


# ------------------------------------------------------------ FAST PATH: channels last

class ConvCache(NamedTuple):
    xp: np.ndarray  # (N, Hp, Wp, C) padded input, channels last
    w2: np.ndarray  # (HH*WW*C, F) the filters as one matrix, rows ordered (i, j, c)
    wshape: tuple   # (F, C, HH, WW)
    xshape: tuple   # (N, C, H, W)
    stride: int
    pad: int
    Ho: int
    Wo: int


def _pad_channels_last(x_nhwc, pad, dtype):
    """(N, H, W, C) -> zero-padded contiguous copy (N, H + 2 pad, W + 2 pad, C)."""
    N, H, W, C = x_nhwc.shape
    xp = np.empty((N, H + 2 * pad, W + 2 * pad, C), dtype=dtype)
    if pad:  # zero only the border
        xp[:, :pad], xp[:, pad + H:], xp[:, :, :pad], xp[:, :, pad + W:] = 0, 0, 0, 0
    xp[:, pad:pad + H, pad:pad + W] = x_nhwc
    return xp


def _chunks(N, per_image_bytes):
    """Image ranges [a, b) whose column block is about COLS_BYTES."""
    n = max(1, min(N, COLS_BYTES // max(1, per_image_bytes)))
    return [(a, min(a + n, N)) for a in range(0, N, n)]


def _im2col(xp, HH, WW, stride, Ho, Wo, buf):
    """Padded input (n, Hp, Wp, C), rows contiguous (as _pad_channels_last makes them) ->
    columns (n*Ho*Wo, HH*WW*C), written into buf (at least n*Ho*Wo*HH*WW*C elements).
    The WW*C values a window reads from one input row are one contiguous run, so each
    kernel row is one slab copy of such runs, read through a strided view."""
    n, C = xp.shape[0], xp.shape[3]
    runs = buf[:n * Ho * Wo * HH * WW * C].reshape(n, Ho, Wo, HH, WW * C)
    for i in range(HH):
        rows = xp[:, i:i + stride * (Ho - 1) + 1:stride]  # (n, Ho, Wp, C)
        runs[:, :, :, i] = as_strided(rows, (n, Ho, Wo, WW * C),
                                      rows.strides[:2] + (stride * xp.strides[2], xp.itemsize), writeable=False)
    return runs.reshape(n * Ho * Wo, HH * WW * C)


def _correlate(xp, w2, HH, WW, stride, Ho, Wo, bias=None):
    """Padded input (N, Hp, Wp, C) and filters as a matrix (HH*WW*C, F) -> (N, Ho, Wo, F)
    (plus bias (F,)): Winograd for 3x3 stride 1, else one im2col and one matrix
    product per chunk of images."""
    if USE_WINOGRAD and (HH, WW, stride) == (3, 3, 1) and min(xp.shape[3], w2.shape[1]) >= WINOGRAD_MIN_CHANNELS \
            and Ho * Wo >= WINOGRAD_MIN_PIXELS:
        return _winograd_3x3(xp, w2, Ho, Wo, bias)
    N, (K, F) = xp.shape[0], w2.shape
    out = np.empty((N, Ho, Wo, F), dtype=w2.dtype)
    chunks = _chunks(N, Ho * Wo * K * w2.itemsize)
    buf = np.empty((chunks[0][1] - chunks[0][0]) * Ho * Wo * K, dtype=w2.dtype)  # reused by every chunk
    for a, z in chunks:
        o = out[a:z].reshape(-1, F)
        np.matmul(_im2col(xp[a:z], HH, WW, stride, Ho, Wo, buf), w2, out=o)
        if bias is not None:
            o += bias  # while the chunk is in cache
    return out


# Winograd's minimal filtering F(2x2, 3x3) (Lavin and Gray 2016): each 2x2 block of
# outputs is A^T [(G w G^T) * (B^T d B)] A for the 4x4 input tile d under it, so a 3x3
# correlation takes 16 products of 4x4 transformed tiles with 4x4 transformed filters
# instead of 36 multiplies, 2.25 times fewer; the transforms are small sums.
_BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
_AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)


def _winograd_3x3(xp, w2, Ho, Wo, bias=None):
    """FAST PATH of _correlate for 3x3 filters, stride 1: xp (N, Ho+2, Wo+2, C), w2 (9C, F)
    -> (N, Ho, Wo, F). Per chunk of images: gather the 16 taps of every 4x4 tile (stride
    2), transform them with one product by B^T (x) B^T (16 x 16), take the 16 products
    with the transformed filters as one batched matmul, and transform back with one
    product by A^T (x) A^T (4 x 16) into the four output phases."""
    N, C, F, dt = xp.shape[0], xp.shape[3], w2.shape[1], w2.dtype
    th, tw = (Ho + 1) // 2, (Wo + 1) // 2  # tiles down and across
    if (Ho % 2) or (Wo % 2):  # odd sides: one more zero row/column completes the last tile
        xp = np.pad(xp, ((0, 0), (0, Ho % 2), (0, Wo % 2), (0, 0)))
    u = np.einsum("ai,bj,ijcf->abcf", _G, _G, w2.reshape(3, 3, C, F).astype(np.float64))
    u = u.reshape(16, C, F).astype(dt)
    btb, ata = np.kron(_BT, _BT).astype(dt), np.kron(_AT, _AT).astype(dt)
    out = np.empty((N, 2 * th, 2 * tw, F), dtype=dt)
    n = max(1, min(N, WINOGRAD_BYTES // (16 * th * tw * max(C, F) * w2.itemsize)))  # images per chunk
    taps, v = np.empty((16, n * th * tw * C), dt), np.empty((16, n * th * tw * C), dt)
    m, y = np.empty((16, n * th * tw, F), dt), np.empty((4, n * th * tw * F), dt)
    for a in range(0, N, n):
        k, rows = min(n, N - a), min(n, N - a) * th * tw
        d = taps[:, :rows * C].reshape(16, k, th, tw, C)
        for i in range(4):
            for j in range(4):
                d[4 * i + j] = xp[a:a + k, i:i + 2 * th - 1:2, j:j + 2 * tw - 1:2]
        np.matmul(btb, taps[:, :rows * C], out=v[:, :rows * C])
        np.matmul(v[:, :rows * C].reshape(16, rows, C), u, out=m[:, :rows])
        np.matmul(ata, m[:, :rows].reshape(16, -1), out=y[:, :rows * F])
        for i in range(2):
            for j in range(2):
                phase = y[2 * i + j, :rows * F].reshape(k, th, tw, F)
                if bias is None:
                    out[a:a + k, i::2, j::2] = phase
                else:
                    np.add(phase, bias, out=out[a:a + k, i::2, j::2])
    return out[:, :Ho, :Wo]


def conv_forward(x, w, b, stride: int = 1, pad: int = 0):
    """Convolution of x with filters w.

    Inputs: x (N, C, H, W), w (F, C, HH, WW), b (F,), stride >= 1, zero padding pad >= 0.
    Returns: out (N, F, Ho, Wo) with Ho = (H + 2 pad - HH) // stride + 1 (likewise Wo), cache.
    Computes in the common dtype of x and w (float32 stays float32).
    """
    Ho, Wo = _check_inputs(x, w, b, stride, pad)
    F, C, HH, WW = w.shape
    dtype = np.result_type(x.dtype, w.dtype, np.float32)
    xp = _pad_channels_last(x.transpose(0, 2, 3, 1), pad, dtype)  # (N, Hp, Wp, C)
    w2 = np.ascontiguousarray(w.transpose(2, 3, 1, 0).reshape(HH * WW * C, F), dtype=dtype)
    out = _correlate(xp, w2, HH, WW, stride, Ho, Wo, b.astype(dtype, copy=False))
    # keep the padded input, not the columns: they are rebuilt only when dw is needed
    return out.transpose(0, 3, 1, 2), ConvCache(xp, w2, w.shape, x.shape, stride, pad, Ho, Wo)


def _out_shape(cache):
    return cache.xshape[0], cache.wshape[0], cache.Ho, cache.Wo


def _dout_channels_last(dout, cache):
    """Upstream gradient (N, F, Ho, Wo) as a contiguous (N, Ho, Wo, F) array (free for
    the layout conv_forward produces)."""
    return np.ascontiguousarray(dout.transpose(0, 2, 3, 1), dtype=cache.w2.dtype)


def _dx_transposed(d, cache):
    """Stride 1: dx is the correlation of the upstream gradient, padded by k - 1 - pad,
    with the flipped filters with in/out channels swapped (an im2col copy, cheaper
    than col2im's adds). Returns (N, C, H, W), laid out channels last."""
    F, C, HH, WW = cache.wshape
    H, W = cache.xshape[2:]
    w = cache.w2.reshape(HH, WW, C, F)[::-1, ::-1]  # flipped
    wt = np.ascontiguousarray(w.transpose(0, 1, 3, 2)).reshape(HH * WW * F, C)  # rows (i, j, f)
    dp = _pad_channels_last(d, HH - 1 - cache.pad, d.dtype)  # (N, Ho + 2(k-1-pad), ..., F)
    return _correlate(dp, wt, HH, WW, 1, H, W).transpose(0, 3, 1, 2)


def _dx_col2im(d, cache):
    """Any stride: columns of the gradient (one product per chunk), added back by col2im,
    one strided add per kernel offset (overlapping windows accumulate). Works channels
    first, (HH, WW, C, n, Ho, Wo) columns into (C, N, Hp, Wp), so that every add runs
    along image rows even when C is small (a first layer's 3 colours). Returns
    (N, C, H, W), laid out channels first."""
    F, C, HH, WW = cache.wshape
    N, _, H, W = cache.xshape
    s, p, Ho, Wo = cache.stride, cache.pad, cache.Ho, cache.Wo
    dxp = np.zeros((C, N, H + 2 * p, W + 2 * p), dtype=d.dtype)
    for a, z in _chunks(N, Ho * Wo * HH * WW * C * d.itemsize):
        dcols = (cache.w2 @ d[a:z].reshape(-1, F).T).reshape(HH, WW, C, z - a, Ho, Wo)
        for i in range(HH):
            for j in range(WW):
                _window(dxp[:, a:z], i, j, s, Ho, Wo)[...] += dcols[i, j]
    return dxp[:, :, p:p + H, p:p + W].transpose(1, 0, 2, 3)


def _dx(d, cache):
    """dx (N, C, H, W) from the upstream gradient d (N, Ho, Wo, F)."""
    F, C, HH, WW = cache.wshape
    # the transposed form copies F*k*k gradient values per pixel, col2im makes C*k*k: pick the cheaper
    if cache.stride == 1 and HH == WW and cache.pad <= HH - 1 and F <= 2 * C:
        return _dx_transposed(d, cache)
    return _dx_col2im(d, cache)


def conv_backward_input(dout, cache):
    """Gradient w.r.t. x only (what backpropagation to the image needs): dout (N, F, Ho, Wo)
    -> dx (N, C, H, W)."""
    check_upstream("dout", dout, _out_shape(cache))
    return _dx(_dout_channels_last(dout, cache), cache)


def conv_backward(dout, cache):
    """dout (N, F, Ho, Wo) -> (dx (N, C, H, W), dw (F, C, HH, WW), db (F,))."""
    check_upstream("dout", dout, _out_shape(cache))
    F, C, HH, WW = cache.wshape
    d = _dout_channels_last(dout, cache)  # (N, Ho, Wo, F)
    dw2 = np.zeros_like(cache.w2)  # (HH*WW*C, F)
    chunks = _chunks(d.shape[0], cache.Ho * cache.Wo * dw2.shape[0] * dw2.itemsize)
    buf = np.empty((chunks[0][1] - chunks[0][0]) * cache.Ho * cache.Wo * dw2.shape[0], dtype=dw2.dtype)
    for a, z in chunks:
        cols = _im2col(cache.xp[a:z], HH, WW, cache.stride, cache.Ho, cache.Wo, buf)
        dw2 += cols.T @ d[a:z].reshape(-1, F)
    dw = dw2.reshape(HH, WW, C, F).transpose(3, 2, 0, 1)
    return _dx(d, cache), np.ascontiguousarray(dw), d.sum(axis=(0, 1, 2))
