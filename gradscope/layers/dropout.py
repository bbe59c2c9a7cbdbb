"""Inverted dropout: a pure forward/backward pair.

`p` is the probability of DROPPING a unit (as in PyTorch's nn.Dropout). Kept units
are scaled by 1 / (1 - p) at training time, so test mode is the identity.
"""
from __future__ import annotations

import numpy as np

from gradscope.errors import GradscopeError
from gradscope.layers._validate import check_upstream

__all__ = ["dropout_forward", "dropout_backward"]


def dropout_forward(x, p: float = 0.5, mode: str = "train", rng=None, seed=None):
    """Inputs: x (any shape), p in [0, 1), mode 'train' or 'test', and the randomness as
    rng (a np.random.Generator) or seed (an int; used when rng is None).
    Returns: out (shaped like x), cache (the scaled keep mask; None in test mode).
    """
    if not 0 <= p < 1:
        raise GradscopeError(f"dropout probability p must lie in [0, 1), got {p}")
    if mode == "test":
        return x, None
    if mode != "train":
        raise GradscopeError(f"dropout mode must be 'train' or 'test', got {mode!r}")
    rng = rng if rng is not None else np.random.default_rng(seed)
    dtype = np.result_type(x.dtype, np.float32)
    mask = (rng.random(x.shape, dtype=np.float32) >= p).astype(dtype) / dtype.type(1 - p)
    return x * mask, mask


def dropout_backward(dout, cache):
    """dout (shaped like x) -> dx."""
    if cache is None:  # test mode
        return dout
    check_upstream("dout", dout, cache.shape)
    return dout * cache
