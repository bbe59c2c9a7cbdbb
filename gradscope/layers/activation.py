"""ReLU6, min(max(x, 0), 6): the activation of MobileNet and EfficientNet-Lite."""
from __future__ import annotations

import numpy as np

from gradscope.layers._validate import check_upstream

__all__ = ["relu6_forward", "relu6_backward"]


def relu6_forward(x):
    """out = min(max(x, 0), 6), any shape. Returns (out, cache)."""
    return np.clip(x, 0, 6), x


def relu6_backward(dout, cache):
    """The gradient passes where 0 < x < 6 (zero at and beyond the kinks)."""
    x = cache
    check_upstream("dout", dout, x.shape)
    return dout * ((x > 0) & (x < 6))
