"""Max pooling and global average pooling: pure forward/backward pairs on (N, C, H, W).

Max pooling routes each window's gradient to one input: the first maximum in scan
order (as PyTorch does), so tied inputs never receive the gradient twice.
`max_pool_forward_reference` / `max_pool_backward_reference` are the plain loop over
windows; FAST PATH `max_pool_forward` / `max_pool_backward` compute the same numbers
with a separable max (the tests compare them). Outputs keep the memory layout of the
input (the CNN passes channels-last views).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from gradscope.errors import ShapeError
from gradscope.layers._validate import check_ndim, check_upstream

__all__ = ["max_pool_forward", "max_pool_backward", "max_pool_forward_reference", "max_pool_backward_reference",
           "MaxPoolCache", "global_avg_pool_forward", "global_avg_pool_backward"]


def _pool_output_size(H, W, size, stride):
    if size < 1 or stride < 1:
        raise ShapeError(f"max pool needs size >= 1 and stride >= 1, got size={size}, stride={stride}")
    if H < size or W < size:
        raise ShapeError(f"max pool window {size} does not fit an input of size {H}x{W}")
    return (H - size) // stride + 1, (W - size) // stride + 1


def max_pool_forward_reference(x, size: int = 2, stride: int = 2):
    """out[n, c, i, j] = max of the window x[n, c, stride*i : stride*i + size, stride*j : stride*j + size].
    Shapes as max_pool_forward; returns (out, cache)."""
    check_ndim("x", x, 4, "(N, C, H, W)")
    Ho, Wo = _pool_output_size(x.shape[2], x.shape[3], size, stride)
    out = np.empty(x.shape[:2] + (Ho, Wo), dtype=x.dtype)
    for i in range(Ho):
        for j in range(Wo):
            out[:, :, i, j] = x[:, :, stride * i:stride * i + size, stride * j:stride * j + size].max(axis=(2, 3))
    return out, (x, size, stride)


def max_pool_backward_reference(dout, cache):
    """Each window's gradient goes to its first maximum in scan order (np.argmax)."""
    x, size, stride = cache
    check_upstream("dout", dout, x.shape[:2] + _pool_output_size(x.shape[2], x.shape[3], size, stride))
    dx = np.zeros_like(x, dtype=dout.dtype)
    rows, cols = np.indices(x.shape[:2])
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            window = x[:, :, stride * i:stride * i + size, stride * j:stride * j + size]
            first = window.reshape(x.shape[:2] + (-1,)).argmax(axis=2)  # (N, C)
            dx[rows, cols, stride * i + first // size, stride * j + first % size] += dout[:, :, i, j]
    return dx


# ------------------------------------------------------------ FAST PATH: separable max

class MaxPoolCache(NamedTuple):
    xshape: tuple
    arg_w: np.ndarray  # (N, C, H, Wo) uint8: offset of the first maximum along each row window
    arg_h: np.ndarray  # (N, C, Ho, Wo) uint8: offset of the first maximum down each column window
    size: int
    stride: int


def _taps(a, axis, size, stride, n):
    """The `size` strided views of `a` along `axis` (2 or 3), one per window offset,
    each holding n window positions."""
    def view(k):
        index = [slice(None)] * 4
        index[axis] = slice(k, k + stride * (n - 1) + 1, stride)
        return a[tuple(index)]
    return [view(k) for k in range(size)]


def _first_max(views):
    """Elementwise maximum of equal-shape views and the offset (uint8) of the first
    maximum: strict comparisons, so earlier offsets win ties."""
    best, arg = views[0], None
    for k, v in enumerate(views[1:], start=1):
        better = (v > best).view(np.uint8)
        best = np.maximum(best, v)  # keeps the memory layout of the input
        # offsets only grow, so "take k where better" is a maximum
        arg = better if arg is None else np.maximum(arg, better * np.uint8(k), out=arg)
    if arg is None:  # a window of one
        best, arg = best.copy(order="K"), np.zeros(best.shape, np.uint8)
    return best, arg


def _route(dout, arg, views_of_target, overlap):
    """Put each dout entry into the view (window offset) recorded in arg; with
    overlapping windows, views share entries and contributions add up."""
    for k, view in enumerate(views_of_target):
        if overlap:
            view += dout * (arg == k)
        else:
            np.multiply(dout, arg == k, out=view)


def max_pool_forward(x, size: int = 2, stride: int = 2):
    """Max over size x size windows taken every `stride` pixels (no padding; a remainder
    that does not fill a window is dropped).

    Inputs: x (N, C, H, W). Returns: out (N, C, Ho, Wo) with Ho = (H - size) // stride + 1, cache.
    The max is separable: first along each row (W), then down the columns (H), so a
    window costs 2 * size operations, not size^2; recording the first maximum of each
    step gives the first maximum of the window in scan order.
    """
    check_ndim("x", x, 4, "(N, C, H, W)")
    N, C, H, W = x.shape
    Ho, Wo = _pool_output_size(H, W, size, stride)
    rows, arg_w = _first_max(_taps(x, 3, size, stride, Wo))        # (N, C, H, Wo)
    out, arg_h = _first_max(_taps(rows, 2, size, stride, Ho))      # (N, C, Ho, Wo)
    return out, MaxPoolCache(x.shape, arg_w, arg_h, size, stride)


def max_pool_backward(dout, cache):
    """dout (N, C, Ho, Wo) -> dx (N, C, H, W): each window's gradient goes to its
    first maximal input."""
    xshape, arg_w, arg_h, size, stride = cache
    check_upstream("dout", dout, arg_h.shape)
    Ho, Wo = arg_h.shape[2:]
    overlap = stride < size
    # windows that tile the input exactly write every entry once: no need to zero first
    tiles = stride == size
    alloc_h = np.empty_like if tiles and xshape[2] == size * Ho else np.zeros_like
    alloc_w = np.empty_like if tiles and xshape[3] == size * Wo else np.zeros_like
    drows = alloc_h(arg_w, dtype=dout.dtype)  # (N, C, H, Wo), laid out like the input
    _route(dout, arg_h, _taps(drows, 2, size, stride, Ho), overlap)
    dx = alloc_w(drows, shape=xshape)
    _route(drows, arg_w, _taps(dx, 3, size, stride, Wo), overlap)
    return dx


def global_avg_pool_forward(x):
    """Mean over the spatial axes: x (N, C, H, W) -> out (N, C), cache."""
    check_ndim("x", x, 4, "(N, C, H, W)")
    return x.mean(axis=(2, 3)), x.shape


def global_avg_pool_backward(dout, cache):
    """dout (N, C) -> dx (N, C, H, W): each position gets 1 / (H W) of its channel's gradient."""
    N, C, H, W = cache
    check_upstream("dout", dout, (N, C))
    return np.broadcast_to((dout / (H * W))[:, :, None, None], cache).copy()
