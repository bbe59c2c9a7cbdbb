"""Vanilla (tanh) RNN and LSTM layers: one time step and a full sequence.

Shapes: N minibatch, T time steps, D input size, H hidden size. LSTM weights
stack four gates side by side in the order input i, forget f, output o, block g:
Wx (D, 4H), Wh (H, 4H), b (4H,). The step functions and the sequence functions
compute the same numbers (up to rounding); the sequence versions are the fast path:

- the input projection of all time steps is taken before the loop, over all N*T
  rows at once;
- sequences are stored time-major, (T, N, ...), so each step reads and writes
  contiguous blocks, and the loop works in place in preallocated arrays with one
  matrix product per step;
- the backward pass keeps the pre-activation gradients of all steps, (T*N, H) or
  (T*N, 4H), and forms dx, dWx and dWh after the loop with one product each;
- the LSTM keeps its gate values in planes, (4, T, N, H), because NumPy's elementwise
  operations run several times slower on the strided column blocks of an (N, 4H)
  array (so its input projection is one product per gate, into the planes);
- the LSTM uses sigmoid(z) = (1 + tanh(z / 2)) / 2, so one tanh call covers all four
  gates; halving the i, f, o columns of the weights for it is exact in floating point.

The caches hold O(T) arrays. The backward passes do not modify their caches.
"""
from __future__ import annotations

import numpy as np

from gradscope.errors import ShapeError

__all__ = [
    "rnn_step_forward", "rnn_step_backward", "rnn_forward", "rnn_backward",
    "lstm_step_forward", "lstm_step_backward", "lstm_forward", "lstm_backward",
]


# ---------------------------------------------------------------- input checks

def _shape_error(name, a, layout):
    return ShapeError(f"{name} must have shape {layout}, got shape {np.shape(a)}")


def _check_array(name, a, ndim, layout):
    if not isinstance(a, np.ndarray):
        raise ShapeError(f"{name} must be a NumPy array, got {type(a).__name__}")
    if a.ndim != ndim:
        raise _shape_error(name, a, layout)


def _prepare(x, x_layout, states, Wx, Wh, b, gates):
    """Check shapes and bring every array to one floating dtype.

    x has layout (N, D) or (N, T, D); `states` maps names (prev_h, h0, prev_c) to
    (N, H) arrays; `gates` is 1 for the RNN and 4 for the LSTM.
    Returns (x, [states...], Wx, Wh, b) as arrays of the common dtype.
    """
    g = "" if gates == 1 else str(gates)
    _check_array("x", x, len(x_layout.split(",")), x_layout)
    _check_array("Wh", Wh, 2, f"(H, {g}H)")
    H = Wh.shape[0]
    if Wh.shape[1] != gates * H:
        raise _shape_error("Wh", Wh, f"(H, {g}H)")
    _check_array("Wx", Wx, 2, f"(D, {g}H)")
    if Wx.shape != (x.shape[-1], gates * H):
        raise ShapeError(f"Wx must have shape (D, {g}H) = {(x.shape[-1], gates * H)} for x of "
                         f"shape {x.shape} and Wh of shape {Wh.shape}, got shape {Wx.shape}")
    _check_array("b", b, 1, f"({g}H,)")
    if b.shape[0] != gates * H:
        raise ShapeError(f"b must have shape ({g}H,) = ({gates * H},) for Wh of shape {Wh.shape}, "
                         f"got shape {b.shape}")
    for name, s in states.items():
        _check_array(name, s, 2, "(N, H)")
        if s.shape != (x.shape[0], H):
            raise ShapeError(f"{name} must have shape (N, H) = {(x.shape[0], H)} for x of shape "
                             f"{x.shape} and Wh of shape {Wh.shape}, got shape {s.shape}")
    arrays = [x, *states.values(), Wx, Wh, b]
    dtype = np.result_type(*arrays)
    if not np.issubdtype(dtype, np.floating):
        dtype = np.dtype(np.float64)
    x, *rest = [np.asarray(a, dtype=dtype) for a in arrays]
    return x, rest[:-3], rest[-3], rest[-2], rest[-1]


def _check_upstream(name, d, shape):
    """The upstream gradient must have the shape of the output it belongs to."""
    if not isinstance(d, np.ndarray) or d.shape != shape:
        raise ShapeError(f"{name} must have the shape of the layer output {shape}, "
                         f"got shape {np.shape(d)}")


def _time_major(x):
    """(N, T, D) -> contiguous (T*N, D): the rows of step t are rows t*N ... t*N+N-1."""
    N, T, D = x.shape
    return np.ascontiguousarray(x.transpose(1, 0, 2)).reshape(T * N, D)


def _batch_major(a):
    """Contiguous (N, T, ...) copy of a time-major (T, N, ...) array."""
    return np.ascontiguousarray(a.swapaxes(0, 1))


def _transposed(W, rows=64):
    """Contiguous copy of W.T, made `rows` rows of W at a time: the blocks stay in
    cache, about twice as fast as one strided copy. The per-step products of the
    backward passes run faster against a contiguous W.T than against the view."""
    out = np.empty(W.shape[::-1], dtype=W.dtype)
    for r in range(0, W.shape[0], rows):
        out[:, r:r + rows] = W[r:r + rows].T
    return out


# ------------------------------------------------------------------- vanilla RNN

def _tanh_backward(d, y, scratch):
    """In place: d *= 1 - y**2, the derivative of y = tanh(a)."""
    np.multiply(y, y, out=scratch)
    np.subtract(1, scratch, out=scratch)
    d *= scratch


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    """One step: next_h = tanh(x @ Wx + prev_h @ Wh + b).

    Inputs: x (N, D), prev_h (N, H), Wx (D, H), Wh (H, H), b (H,).
    Returns: next_h (N, H), cache.
    """
    x, (prev_h,), Wx, Wh, b = _prepare(x, "(N, D)", {"prev_h": prev_h}, Wx, Wh, b, 1)
    a = x @ Wx  # (N, H); same order of sums as rnn_forward
    a += b
    a += prev_h @ Wh
    np.tanh(a, out=a)
    return a, (x, prev_h, Wx, Wh, a)


def rnn_step_backward(dnext_h, cache):
    """dnext_h (N, H) -> (dx (N, D), dprev_h (N, H), dWx (D, H), dWh (H, H), db (H,))."""
    x, prev_h, Wx, Wh, next_h = cache
    _check_upstream("dnext_h", dnext_h, next_h.shape)
    da = dnext_h.astype(next_h.dtype, copy=True)  # (N, H)
    _tanh_backward(da, next_h, np.empty_like(da))
    return da @ Wx.T, da @ Wh.T, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def rnn_forward(x, h0, Wx, Wh, b):
    """Run a tanh RNN over a whole sequence.

    Inputs: x (N, T, D), h0 (N, H), Wx (D, H), Wh (H, H), b (H,).
    Returns: h (N, T, H) hidden states of all steps, cache.
    """
    x, (h0,), Wx, Wh, b = _prepare(x, "(N, T, D)", {"h0": h0}, Wx, Wh, b, 1)
    N, T, _ = x.shape
    H = Wh.shape[0]
    x_tm = _time_major(x)  # (T*N, D)
    hs = np.empty((T + 1, N, H), dtype=x.dtype)  # hs[0] = h0, hs[t+1] = h at step t
    hs[0] = h0
    np.matmul(x_tm, Wx, out=hs[1:].reshape(T * N, H))  # all input projections at once
    hs[1:] += b
    hh = np.empty((N, H), dtype=x.dtype)
    for t in range(T):
        np.matmul(hs[t], Wh, out=hh)
        a = hs[t + 1]
        a += hh
        np.tanh(a, out=a)
    return _batch_major(hs[1:]), (x_tm, hs, Wx, Wh)


def rnn_backward(dh, cache):
    """dh (N, T, H), upstream gradient of all hidden states.

    Returns: dx (N, T, D), dh0 (N, H), dWx (D, H), dWh (H, H), db (H,).
    """
    x_tm, hs, Wx, Wh = cache
    T, N, H = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
    _check_upstream("dh", dh, (N, T, H))
    da = np.array(dh.swapaxes(0, 1), dtype=hs.dtype, order="C")  # (T, N, H), then d(pre-activation)
    dprev_h = np.zeros((N, H), dtype=hs.dtype)
    scratch = np.empty((N, H), dtype=hs.dtype)
    WhT = _transposed(Wh)
    for t in range(T - 1, -1, -1):
        d = da[t]
        d += dprev_h
        _tanh_backward(d, hs[t + 1], scratch)
        np.matmul(d, WhT, out=dprev_h)
    da2 = da.reshape(T * N, H)
    dx = _batch_major((da2 @ Wx.T).reshape(T, N, -1))
    dWx = x_tm.T @ da2
    dWh = hs[:-1].reshape(T * N, H).T @ da2
    return dx, dprev_h, dWx, dWh, da2.sum(axis=0)


# -------------------------------------------------------------------------- LSTM

def _planes(a):
    """View an (..., 4H) array as (4, ..., H): plane k is gate k (strided, no copy)."""
    H = a.shape[-1] // 4
    return np.moveaxis(a.reshape(a.shape[:-1] + (4, H)), -2, 0)


def _halve_sigmoid_gates(W):
    """Copy of W (..., 4H) with the i, f, o columns halved (exact in floating point)."""
    H = W.shape[-1] // 4
    scale = np.ones(4 * H, dtype=W.dtype)
    scale[:3 * H] = 0.5
    return W * scale


def _lstm_cell(a, prev_c, next_c, tanh_c, next_h):
    """In place: pre-activations a (4, N, H), with the i, f, o planes halved, become
    the gates [i, f, o, g]; writes next_c, tanh(next_c) and next_h, all (N, H)."""
    np.tanh(a, out=a)
    s = a[:3]
    s *= 0.5
    s += 0.5  # sigmoid(z) = (1 + tanh(z / 2)) / 2
    i, f, o, g = a
    np.multiply(f, prev_c, out=next_c)
    np.multiply(i, g, out=tanh_c)  # tanh_c as scratch
    next_c += tanh_c
    np.tanh(next_c, out=tanh_c)
    np.multiply(o, tanh_c, out=next_h)


def _lstm_cell_backward(dh, dc, gates, prev_c, tanh_c, da, work, p, q):
    """Gradients through one cell.

    dh, dc (N, H): gradients of next_h and next_c; dc is overwritten with the
    gradient of prev_c. gates (4, N, H) = [i, f, o, g], prev_c and tanh_c (N, H).
    Writes da (N, 4H), the gradient of the pre-activations. work (4, N, H), p and
    q (N, H) are work space. Ordered to touch each plane as few times as possible.
    """
    i, f, o, g = gates
    di, df, do, dg = _planes(da)
    wi, wf, wo, wg = work
    np.multiply(dh, o, out=p)
    np.multiply(tanh_c, tanh_c, out=q)  # dc += dh * o * (1 - tanh_c**2)
    np.subtract(1, q, out=q)
    q *= p
    dc += q
    np.subtract(1, o, out=wo)  # do = dh * tanh_c * o * (1 - o)
    wo *= tanh_c
    np.multiply(wo, p, out=do)
    np.multiply(dc, i, out=q)
    np.subtract(1, i, out=wi)  # di = dc * g * i * (1 - i)
    wi *= g
    np.multiply(wi, q, out=di)
    np.multiply(g, g, out=wg)  # dg = dc * i * (1 - g**2)
    np.subtract(1, wg, out=wg)
    np.multiply(wg, q, out=dg)
    np.subtract(1, f, out=wf)  # df = dc * prev_c * f * (1 - f)
    wf *= f
    wf *= prev_c
    np.multiply(wf, dc, out=df)
    dc *= f


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """One LSTM step.

    Inputs: x (N, D), prev_h (N, H), prev_c (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,);
    gates in the order i, f, o, g.
    Returns: next_h (N, H), next_c (N, H), cache.
    """
    x, (prev_h, prev_c), Wx, Wh, b = _prepare(
        x, "(N, D)", {"prev_h": prev_h, "prev_c": prev_c}, Wx, Wh, b, 4)
    xw = x @ Wx  # (N, 4H)
    xw += b
    a = np.empty((4,) + prev_h.shape, dtype=xw.dtype)  # (4, N, H) contiguous planes
    np.add(_planes(xw), _planes(prev_h @ Wh), out=a)  # the sums of lstm_forward
    a[:3] *= 0.5
    next_c, tanh_c, next_h = (np.empty_like(prev_c) for _ in range(3))
    _lstm_cell(a, prev_c, next_c, tanh_c, next_h)
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, a, tanh_c)


def lstm_step_backward(dnext_h, dnext_c, cache):
    """dnext_h, dnext_c (N, H) -> (dx (N, D), dprev_h (N, H), dprev_c (N, H),
    dWx (D, 4H), dWh (H, 4H), db (4H,))."""
    x, prev_h, prev_c, Wx, Wh, gates, tanh_c = cache
    _check_upstream("dnext_h", dnext_h, prev_h.shape)
    _check_upstream("dnext_c", dnext_c, prev_c.shape)
    dt = gates.dtype
    dh = np.asarray(dnext_h, dtype=dt)
    dc = dnext_c.astype(dt, copy=True)  # becomes dprev_c
    N, H = dc.shape
    da = np.empty((N, 4 * H), dtype=dt)
    _lstm_cell_backward(dh, dc, gates, prev_c, tanh_c, da, np.empty_like(gates),
                        np.empty_like(dc), np.empty_like(dc))
    return da @ Wx.T, da @ Wh.T, dc, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def lstm_forward(x, h0, Wx, Wh, b):
    """Run an LSTM over a whole sequence; the initial cell state is zero.

    Inputs: x (N, T, D), h0 (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,).
    Returns: h (N, T, H) hidden states of all steps, cache.
    """
    x, (h0,), Wx, Wh, b = _prepare(x, "(N, T, D)", {"h0": h0}, Wx, Wh, b, 4)
    N, T, _ = x.shape
    H = Wh.shape[0]
    dt = x.dtype
    x_tm = _time_major(x)  # (T*N, D)
    gates = np.empty((4, T * N, H), dtype=dt)  # contiguous planes: plane k = gate k
    Wx_half = _halve_sigmoid_gates(Wx)
    for k in range(4):  # input projection of all steps, one product per gate
        np.matmul(x_tm, Wx_half[:, k * H:(k + 1) * H], out=gates[k])
    gates += _halve_sigmoid_gates(b).reshape(4, 1, H)
    gates = gates.reshape(4, T, N, H)
    Wh_half = _halve_sigmoid_gates(Wh)
    hs = np.empty((T + 1, N, H), dtype=dt)  # hs[0] = h0, hs[t+1] = h at step t
    cs = np.empty((T + 1, N, H), dtype=dt)  # cs[0] = 0, cs[t+1] = c at step t
    tanh_cs = np.empty((T, N, H), dtype=dt)
    hs[0] = h0
    cs[0] = 0
    hw = np.empty((N, 4 * H), dtype=dt)
    for t in range(T):
        np.matmul(hs[t], Wh_half, out=hw)
        a = gates[:, t]
        a += _planes(hw)
        _lstm_cell(a, cs[t], cs[t + 1], tanh_cs[t], hs[t + 1])
    return _batch_major(hs[1:]), (x_tm, hs, cs, tanh_cs, gates, Wx, Wh)


def lstm_backward(dh, cache):
    """dh (N, T, H), upstream gradient of all hidden states.

    Returns: dx (N, T, D), dh0 (N, H), dWx (D, 4H), dWh (H, 4H), db (4H,).
    """
    x_tm, hs, cs, tanh_cs, gates, Wx, Wh = cache
    T, N, H = tanh_cs.shape
    dt = gates.dtype
    _check_upstream("dh", dh, (N, T, H))
    dh_tm = dh.swapaxes(0, 1)  # (T, N, H) view
    da = np.empty((T, N, 4 * H), dtype=dt)  # gradients of the pre-activations
    dprev_h = np.zeros((N, H), dtype=dt)
    dc = np.zeros((N, H), dtype=dt)
    dh_t, p, q = np.empty((N, H), dt), np.empty((N, H), dt), np.empty((N, H), dt)
    work = np.empty((4, N, H), dtype=dt)
    WhT = _transposed(Wh)  # (4H, H)
    for t in range(T - 1, -1, -1):
        np.add(dh_tm[t], dprev_h, out=dh_t)
        _lstm_cell_backward(dh_t, dc, gates[:, t], cs[t], tanh_cs[t], da[t], work, p, q)
        np.matmul(da[t], WhT, out=dprev_h)
    da = da.reshape(T * N, 4 * H)
    dx = _batch_major((da @ Wx.T).reshape(T, N, -1))
    dWx = x_tm.T @ da
    dWh = hs[:-1].reshape(T * N, H).T @ da
    return dx, dprev_h, dWx, dWh, da.sum(axis=0)
