"""FAST PATH of the CNN engine in test mode: each batch norm folded into the linear
layer before it (conv, depthwise or 1x1 conv: records with `foldable`), so that it
costs no pass over the activations.

A test-mode batch norm is one affine map per channel, bn(y) = y * scale + shift with
scale[k] = gamma[k] / sqrt(running_var[k] + eps) and shift = beta - running_mean * scale;
after a linear layer lin(x) = W x + b it folds into that layer: the weights of output
channel k scaled by scale[k], and the bias b * scale + shift (a layer without a bias
adds the shift to its fresh output in place). The tests compare it with the two
layers run one by one.

`BatchNormFold` is a cached transform of the model's params and buffers: the folded
arrays of a pair are kept together with a copy of the arrays they came from, and are
made again when any of those differs (replaced, reassigned, the dict swapped, or
changed in place: the check compares contents). It hands the engine (step, arrays)
items for a range of steps; the folded batch norm's step has the record `FOLDED_BN`,
which passes the gradient through and refuses weight gradients. Nothing else in the
engine knows about folding.
"""
from __future__ import annotations

import numpy as np

from gradscope.cnn.layer_types import LayerType, bn_eps
from gradscope.errors import GradscopeError

__all__ = ["BatchNormFold", "FOLDED_BN"]


def _folded_bn_forward(layer, p, x, mode, rng):
    if p["shift"] is not None:
        x += p["shift"]  # in place: x is the fresh output of the folded linear layer just before
    return x, None, {}


def _folded_bn_backward(layer, dout, cache, param_grads):
    if param_grads:
        raise GradscopeError("this forward pass folded batch norms (fold=True): it gives input gradients only; "
                             "call backward with param_grads=False, or forward without fold")
    return dout, {}


FOLDED_BN = LayerType(lambda layer, shape: tuple(shape), _folded_bn_forward, _folded_bn_backward, torch=None)


class BatchNormFold:
    """The folded pairs of a CNN's steps (a foldable linear step right before a batch
    norm that opens no block), folded on demand and cached."""

    def __init__(self, steps):
        self.steps = steps
        self.pairs = {i for i, (lin, bn) in enumerate(zip(steps, steps[1:]))
                      if lin.kind.foldable and bn.kind.is_batchnorm and not bn.opens}
        self._cache = {}  # linear step index -> (source arrays' copies, its two items)

    def items(self, arrays, dtype, start, end):
        """(step, arrays) for steps start..end, each pair that lies inside the range
        folded. arrays(step) -> the step's current params and buffers by short name;
        dtype: the model's."""
        folded = {}
        for i in self.pairs:
            if start <= i < end:
                folded.update(zip((i, i + 1), self._pair(arrays, dtype, i)))
        return [folded.get(i) or (step, arrays(step)) for i, step in
                zip(range(start, end + 1), self.steps[start:end + 1])]

    def _pair(self, arrays, dtype, i):
        lin, bn = self.steps[i], self.steps[i + 1]
        p, q = arrays(lin), arrays(bn)
        sources = list(p.values()) + list(q.values())
        cached = self._cache.get(i)
        if cached is None or not all(a.dtype == c.dtype and np.array_equal(a, c) for a, c in zip(sources, cached[0])):
            cached = self._cache[i] = ([a.copy() for a in sources], self._fold(lin, bn, p, q, dtype))
        return cached[1]

    @staticmethod
    def _fold(lin, bn, p, q, dtype):
        """The items of the folded pair: the linear step with the scaled weights, and
        the batch norm's step as FOLDED_BN with the shift left to add (None when the
        linear layer's bias took it)."""
        scale = q["gamma"] / np.sqrt(q["running_var"] + dtype.type(bn_eps(bn.layer)))  # (C,)
        shift = q["beta"] - q["running_mean"] * scale
        folded = dict(p, W=p["W"] * scale.reshape((-1,) + (1,) * (p["W"].ndim - 1)))
        if "b" in p:
            folded["b"], shift = p["b"] * scale + shift, None
        else:
            shift = shift.reshape(-1, 1, 1)
        return (lin, folded), (bn._replace(kind=FOLDED_BN), {"shift": shift})
