"""Zero padding with separate amounts per side, and TensorFlow's "SAME" amounts
(output side ceil(H / stride); an odd total puts the extra row/column bottom/right)."""
from __future__ import annotations

import math

import numpy as np

from gradscope.errors import ShapeError
from gradscope.layers._validate import check_ndim, check_upstream

__all__ = ["same_pads", "pad_forward", "pad_backward"]


def same_pads(H: int, W: int, kernel: int, stride: int) -> tuple:
    """(top, bottom, left, right) of TF "SAME": total = max((ceil(n/s) - 1) s + k - n, 0)."""
    pads = []
    for n in (H, W):
        total = max((math.ceil(n / stride) - 1) * stride + kernel - n, 0)
        pads += [total // 2, total - total // 2]
    return tuple(pads)


def pad_forward(x, pads):
    """Zero-pad the two spatial axes.

    Inputs: x (N, C, H, W), pads (top, bottom, left, right), each >= 0.
    Returns: out (N, C, H + top + bottom, W + left + right), cache.
    """
    check_ndim("x", x, 4, "(N, C, H, W)")
    top, bottom, left, right = (int(p) for p in pads)
    if min(top, bottom, left, right) < 0:
        raise ShapeError(f"pad amounts must be >= 0, got {tuple(pads)}")
    N, C, H, W = x.shape
    # channels-last in memory, like the depthwise layers that follow a pad (see depthwise.py)
    out = np.zeros((N, H + top + bottom, W + left + right, C), dtype=x.dtype).transpose(0, 3, 1, 2)
    out[:, :, top:top + H, left:left + W] = x
    return out, (top, left, H, W, out.shape)


def pad_backward(dout, cache):
    """dout (N, C, Hp, Wp) -> dx (N, C, H, W): the gradient of the unpadded window."""
    top, left, H, W, out_shape = cache
    check_upstream("dout", dout, out_shape)
    return dout[:, :, top:top + H, left:left + W]
