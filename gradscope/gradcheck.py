"""Numerical gradient checks: compare a hand-written backward pass with centered
differences of its forward pass.

Check a layer of your own in three lines (float64 inputs, small sizes)::

    from gradscope.gradcheck import check_layer_gradients
    errors = check_layer_gradients(my_forward, my_backward, {"x": x, "w": w, "b": b})
    assert max(errors.values()) < 1e-7, errors

`my_forward(x, w, b)` must return `(out, cache)` (or `(out1, out2, ..., cache)`) and
`my_backward(dout, cache)` the gradients `(dx, dw, db)` in the order of the inputs.
The check draws a random upstream gradient dout, forms the scalar
loss = sum(out * dout) and differentiates it numerically with respect to every input
(centered differences refined by Richardson extrapolation, accurate to about 1e-10).

Or do it by hand for one input::

    out, cache = my_forward(x, w, b)
    dout = np.random.default_rng(0).standard_normal(out.shape)
    dx, dw, db = my_backward(dout, cache)
    dx_num = eval_numerical_gradient_array(lambda x: my_forward(x, w, b)[0], x, dout)
    print(rel_error(dx, dx_num))   # ~1e-8 or less when the backward pass is right

Relative errors near 1e-7 or below mean agreement in float64; 1e-2 or more means a bug.
With plain centered differences (h=1e-5) an entry whose gradient is nearly zero can
show 1e-7 to 1e-6 from rounding alone; check_layer_gradients avoids that.
Kinks (ReLU at 0, max pooling ties) can spoil single entries: keep inputs away from them.
"""
from __future__ import annotations

import logging

import numpy as np

from gradscope.errors import GradscopeError, ShapeError

__all__ = ["eval_numerical_gradient", "eval_numerical_gradient_array", "rel_error",
           "check_layer_gradients"]

_log = logging.getLogger(__name__)


def _report(verbose, index, value):
    if callable(verbose):
        verbose(index, value)
    elif verbose:
        _log.info("numerical gradient at %s: %g", index, value)


def eval_numerical_gradient(f, x, verbose=False, h=1e-5):
    """Gradient of a scalar function f at x by centered differences.

    f: callable taking x and returning a scalar. x: float array, perturbed in place
    one entry at a time and restored afterwards. verbose: True logs every entry (logger
    'gradscope.gradcheck', level INFO); a callable is called as verbose(index, value).
    Returns: array shaped like x.
    """
    grad = np.zeros(x.shape, dtype=np.float64)
    for ix in np.ndindex(x.shape):
        old = x[ix]
        x[ix] = old + h
        fp = float(f(x))
        x[ix] = old - h
        fm = float(f(x))
        x[ix] = old
        grad[ix] = (fp - fm) / (2 * h)
        _report(verbose, ix, grad[ix])
    return grad


def eval_numerical_gradient_array(f, x, df, h=1e-5):
    """Gradient of sum(f(x) * df) at x by centered differences, for an array-valued f.

    f: callable taking x and returning an array shaped like df (the upstream gradient).
    x is perturbed in place and restored. Returns: array shaped like x.
    """
    grad = np.zeros(x.shape, dtype=np.float64)
    for ix in np.ndindex(x.shape):
        old = x[ix]
        x[ix] = old + h
        pos = np.array(f(x), dtype=np.float64)  # copy: f may return a buffer it reuses
        x[ix] = old - h
        neg = np.array(f(x), dtype=np.float64)
        x[ix] = old
        grad[ix] = np.sum((pos - neg) * df) / (2 * h)
    return grad


def rel_error(x, y):
    """Largest relative error max |x - y| / max(|x| + |y|, 1e-8) over all entries.

    The floor of 1e-8 keeps entries where both are (near) zero from dividing by zero.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ShapeError(f"rel_error needs equal shapes, got {x.shape} and {y.shape}")
    if x.size == 0:
        return 0.0
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))))


def check_layer_gradients(forward, backward, inputs, wrt=None, seed=0, h=1e-3):
    """Relative error of every gradient a backward pass returns against numerical ones.

    forward: called as forward(**inputs); returns (out, cache) or (out1, ..., cache).
    backward: called as backward(dout1, ..., cache); returns the gradients with respect
        to the inputs named in `wrt`, in that order (one array or a tuple).
    inputs: dict name -> array (use float64); arrays are perturbed and restored.
    wrt: names of the inputs the gradients belong to (default: all, in dict order).
    seed: for the random upstream gradients dout_k (standard normal).
    h: step. The numerical gradient of loss = sum_k sum(out_k * dout_k) combines
        centered differences at steps h and 2h by Richardson extrapolation,
        (4 D(h) - D(2h)) / 3, whose error is O(h**4): about 1e-10 at h = 1e-3, so that
        even entries close to zero compare well. Keep inputs 2h away from kinks.
    Returns: dict name -> rel_error(analytic, numerical).
    """
    wrt = list(inputs) if wrt is None else list(wrt)
    unknown = [name for name in wrt if name not in inputs]
    if unknown:
        raise GradscopeError(f"wrt names {unknown} are not among the inputs {list(inputs)}")
    result = forward(**inputs)
    outs, cache = result[:-1], result[-1]
    rng = np.random.default_rng(seed)
    douts = [rng.standard_normal(np.shape(o)) for o in outs]
    grads = backward(*douts, cache)
    grads = grads if isinstance(grads, tuple) else (grads,)
    if len(grads) != len(wrt):
        raise GradscopeError(
            f"backward returned {len(grads)} gradients for {len(wrt)} inputs {wrt}")

    dflat = np.concatenate([d.ravel() for d in douts])

    def outputs(_):
        return np.concatenate([np.ravel(o) for o in forward(**inputs)[:-1]])

    def numerical(name, step):
        return eval_numerical_gradient_array(outputs, inputs[name], dflat, h=step)

    return {name: rel_error(g, (4 * numerical(name, h) - numerical(name, 2 * h)) / 3)
            for name, g in zip(wrt, grads)}
