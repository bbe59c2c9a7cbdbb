"""Vanilla (tanh) RNN and LSTM layers: one time step and a full sequence.

Shapes: N minibatch, T time steps, D input size, H hidden size. LSTM weights
stack four gates side by side in the order input i, forget f, output o, block g:
Wx (D, 4H), Wh (H, 4H), b (4H,).

The module reads in three parts:

1. The step functions are the textbook equations, line for line:
       RNN:   h' = tanh(x Wx + h Wh + b)
       LSTM:  i, f, o, g = sigmoid(a_i), sigmoid(a_f), sigmoid(a_o), tanh(a_g)
              with [a_i, a_f, a_o, a_g] = x Wx + h Wh + b
              c' = f * c + i * g,   h' = o * tanh(c')
2. The reference sequences (`rnn_forward_reference`, `lstm_forward_reference` and
   their backwards) are plain loops of the step functions over time.
3. FAST PATH: `rnn_forward`, `lstm_forward` and their backwards compute the same
   numbers as the reference sequences (the tests compare values and all gradients),
   tuned for speed:
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

from typing import NamedTuple

import numpy as np

from gradscope.errors import ShapeError
from gradscope.layers._validate import check_ndim, check_upstream

__all__ = [
    "sigmoid",
    "rnn_step_forward", "rnn_step_backward", "lstm_step_forward", "lstm_step_backward",
    "rnn_forward_reference", "rnn_backward_reference", "lstm_forward_reference", "lstm_backward_reference",
    "rnn_forward", "rnn_backward", "lstm_forward", "lstm_backward",
    "RNNStepCache", "LSTMStepCache", "RNNCache", "LSTMCache",
]


# ---------------------------------------------------------------- input checks

def _shape_error(name, a, layout):
    return ShapeError(f"{name} must have shape {layout}, got shape {np.shape(a)}")


def _prepare(x, x_layout, states, Wx, Wh, b, gates):
    """Check shapes and bring every array to one floating dtype.

    x has layout (N, D) or (N, T, D); `states` maps names (prev_h, h0, prev_c) to
    (N, H) arrays; `gates` is 1 for the RNN and 4 for the LSTM.
    Returns (x, [states...], Wx, Wh, b) as arrays of the common dtype.
    """
    g = "" if gates == 1 else str(gates)
    check_ndim("x", x, len(x_layout.split(",")), x_layout)
    check_ndim("Wh", Wh, 2, f"(H, {g}H)")
    H = Wh.shape[0]
    if Wh.shape[1] != gates * H:
        raise _shape_error("Wh", Wh, f"(H, {g}H)")
    check_ndim("Wx", Wx, 2, f"(D, {g}H)")
    if Wx.shape != (x.shape[-1], gates * H):
        raise ShapeError(f"Wx must have shape (D, {g}H) = {(x.shape[-1], gates * H)} for x of "
                         f"shape {x.shape} and Wh of shape {Wh.shape}, got shape {Wx.shape}")
    check_ndim("b", b, 1, f"({g}H,)")
    if b.shape[0] != gates * H:
        raise ShapeError(f"b must have shape ({g}H,) = ({gates * H},) for Wh of shape {Wh.shape}, "
                         f"got shape {b.shape}")
    for name, s in states.items():
        check_ndim(name, s, 2, "(N, H)")
        if s.shape != (x.shape[0], H):
            raise ShapeError(f"{name} must have shape (N, H) = {(x.shape[0], H)} for x of shape "
                             f"{x.shape} and Wh of shape {Wh.shape}, got shape {s.shape}")
    arrays = [x, *states.values(), Wx, Wh, b]
    dtype = np.result_type(*arrays)
    if not np.issubdtype(dtype, np.floating):
        dtype = np.dtype(np.float64)
    x, *rest = [np.asarray(a, dtype=dtype) for a in arrays]
    return x, rest[:-3], rest[-3], rest[-2], rest[-1]


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


# ------------------------------------------------------ 1. the textbook step equations

def sigmoid(z):
    """1 / (1 + exp(-z)), elementwise, without overflow for large |z|."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


class RNNStepCache(NamedTuple):
    x: np.ndarray       # (N, D)
    prev_h: np.ndarray  # (N, H)
    Wx: np.ndarray      # (D, H)
    Wh: np.ndarray      # (H, H)
    next_h: np.ndarray  # (N, H)


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    """One step: next_h = tanh(x @ Wx + prev_h @ Wh + b).

    Inputs: x (N, D), prev_h (N, H), Wx (D, H), Wh (H, H), b (H,).
    Returns: next_h (N, H), cache.
    """
    x, (prev_h,), Wx, Wh, b = _prepare(x, "(N, D)", {"prev_h": prev_h}, Wx, Wh, b, 1)
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    return next_h, RNNStepCache(x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache):
    """dnext_h (N, H) -> (dx (N, D), dprev_h (N, H), dWx (D, H), dWh (H, H), db (H,))."""
    x, prev_h, Wx, Wh, next_h = cache
    check_upstream("dnext_h", dnext_h, next_h.shape)
    da = dnext_h * (1 - next_h ** 2)  # through tanh: the pre-activation gradient
    da = da.astype(next_h.dtype, copy=False)
    return da @ Wx.T, da @ Wh.T, x.T @ da, prev_h.T @ da, da.sum(axis=0)


class LSTMStepCache(NamedTuple):
    x: np.ndarray       # (N, D)
    prev_h: np.ndarray  # (N, H)
    prev_c: np.ndarray  # (N, H)
    Wx: np.ndarray      # (D, 4H)
    Wh: np.ndarray      # (H, 4H)
    i: np.ndarray       # (N, H) input gate
    f: np.ndarray       # (N, H) forget gate
    o: np.ndarray       # (N, H) output gate
    g: np.ndarray       # (N, H) block input
    next_c: np.ndarray  # (N, H)


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """One LSTM step.

    Inputs: x (N, D), prev_h (N, H), prev_c (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,);
    gates in the order i, f, o, g.
    Returns: next_h (N, H), next_c (N, H), cache.
    """
    x, (prev_h, prev_c), Wx, Wh, b = _prepare(
        x, "(N, D)", {"prev_h": prev_h, "prev_c": prev_c}, Wx, Wh, b, 4)
    a = x @ Wx + prev_h @ Wh + b  # (N, 4H) pre-activations
    a_i, a_f, a_o, a_g = np.split(a, 4, axis=1)
    i, f, o, g = sigmoid(a_i), sigmoid(a_f), sigmoid(a_o), np.tanh(a_g)
    next_c = f * prev_c + i * g
    next_h = o * np.tanh(next_c)
    return next_h, next_c, LSTMStepCache(x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c)


def lstm_step_backward(dnext_h, dnext_c, cache):
    """dnext_h, dnext_c (N, H) -> (dx (N, D), dprev_h (N, H), dprev_c (N, H),
    dWx (D, 4H), dWh (H, 4H), db (4H,))."""
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c = cache
    check_upstream("dnext_h", dnext_h, prev_h.shape)
    check_upstream("dnext_c", dnext_c, prev_c.shape)
    tanh_c = np.tanh(next_c)
    dc = dnext_c + dnext_h * o * (1 - tanh_c ** 2)  # total gradient of next_c
    di, df, do, dg = dc * g, dc * prev_c, dnext_h * tanh_c, dc * i
    da = np.concatenate([di * i * (1 - i), df * f * (1 - f), do * o * (1 - o), dg * (1 - g ** 2)], axis=1)
    da = da.astype(x.dtype, copy=False)  # (N, 4H)
    dprev_c = (dc * f).astype(x.dtype, copy=False)
    return da @ Wx.T, da @ Wh.T, dprev_c, x.T @ da, prev_h.T @ da, da.sum(axis=0)


# ------------------------------------------ 2. reference sequences: loops of the steps

def rnn_forward_reference(x, h0, Wx, Wh, b):
    """rnn_forward as a plain loop of rnn_step_forward: x (N, T, D), h0 (N, H) ->
    h (N, T, H), the list of step caches."""
    check_ndim("x", x, 3, "(N, T, D)")
    h, hs, caches = h0, [], []
    for t in range(x.shape[1]):
        h, cache = rnn_step_forward(x[:, t], h, Wx, Wh, b)
        hs.append(h)
        caches.append(cache)
    return np.stack(hs, axis=1), caches


def rnn_backward_reference(dh, caches):
    """rnn_backward as a plain loop of rnn_step_backward: dh (N, T, H) ->
    (dx (N, T, D), dh0 (N, H), dWx, dWh, db)."""
    dprev_h, dxs, dW = np.zeros_like(caches[0].prev_h), [], [0, 0, 0]
    for t in reversed(range(len(caches))):
        dx, dprev_h, *step_dW = rnn_step_backward(dh[:, t] + dprev_h, caches[t])
        dxs.append(dx)
        dW = [total + d for total, d in zip(dW, step_dW)]
    return (np.stack(dxs[::-1], axis=1), dprev_h, *dW)


def lstm_forward_reference(x, h0, Wx, Wh, b):
    """lstm_forward as a plain loop of lstm_step_forward (initial cell state zero):
    x (N, T, D), h0 (N, H) -> h (N, T, H), the list of step caches."""
    check_ndim("x", x, 3, "(N, T, D)")
    h, c, hs, caches = h0, np.zeros_like(h0), [], []
    for t in range(x.shape[1]):
        h, c, cache = lstm_step_forward(x[:, t], h, c, Wx, Wh, b)
        hs.append(h)
        caches.append(cache)
    return np.stack(hs, axis=1), caches


def lstm_backward_reference(dh, caches):
    """lstm_backward as a plain loop of lstm_step_backward: dh (N, T, H) ->
    (dx (N, T, D), dh0 (N, H), dWx, dWh, db)."""
    dprev_h = np.zeros_like(caches[0].prev_h)
    dprev_c, dxs, dW = np.zeros_like(dprev_h), [], [0, 0, 0]
    for t in reversed(range(len(caches))):
        dx, dprev_h, dprev_c, *step_dW = lstm_step_backward(dh[:, t] + dprev_h, dprev_c, caches[t])
        dxs.append(dx)
        dW = [total + d for total, d in zip(dW, step_dW)]
    return (np.stack(dxs[::-1], axis=1), dprev_h, *dW)


# ---------------------------------------------------- 3. FAST PATH: the tuned sequences
# Same numbers as the reference sequences above; see the module docstring for the tricks.

class RNNCache(NamedTuple):
    x_tm: np.ndarray  # (T*N, D) time-major input
    hs: np.ndarray    # (T+1, N, H): h0, then the hidden state of each step
    Wx: np.ndarray
    Wh: np.ndarray


class LSTMCache(NamedTuple):
    x_tm: np.ndarray     # (T*N, D) time-major input
    hs: np.ndarray       # (T+1, N, H): h0, then the hidden state of each step
    cs: np.ndarray       # (T+1, N, H): zeros, then the cell state of each step
    tanh_cs: np.ndarray  # (T, N, H)
    gates: np.ndarray    # (4, T, N, H) planes i, f, o, g
    Wx: np.ndarray
    Wh: np.ndarray


def _tanh_backward(d, y, scratch):
    """In place: d *= 1 - y**2, the derivative of y = tanh(a)."""
    np.multiply(y, y, out=scratch)
    np.subtract(1, scratch, out=scratch)
    d *= scratch


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
    return _batch_major(hs[1:]), RNNCache(x_tm, hs, Wx, Wh)


def rnn_backward(dh, cache):
    """dh (N, T, H), upstream gradient of all hidden states.

    Returns: dx (N, T, D), dh0 (N, H), dWx (D, H), dWh (H, H), db (H,).
    """
    x_tm, hs, Wx, Wh = cache
    T, N, H = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
    check_upstream("dh", dh, (N, T, H))
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


def _input_gate_planes(x_tm, Wx, b):
    """x_tm @ Wx + b for all rows at once, (R, D) -> contiguous planes (4, R, H), with the
    i, f, o planes halved for _lstm_cell; one product per gate."""
    H = Wx.shape[1] // 4
    gates = np.empty((4, x_tm.shape[0], H), dtype=x_tm.dtype)  # plane k = gate k
    Wx_half = _halve_sigmoid_gates(Wx)
    for k in range(4):
        np.matmul(x_tm, Wx_half[:, k * H:(k + 1) * H], out=gates[k])
    gates += _halve_sigmoid_gates(b).reshape(4, 1, H)
    return gates


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
    gates = _input_gate_planes(x_tm, Wx, b).reshape(4, T, N, H)
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
    return _batch_major(hs[1:]), LSTMCache(x_tm, hs, cs, tanh_cs, gates, Wx, Wh)


def lstm_backward(dh, cache):
    """dh (N, T, H), upstream gradient of all hidden states.

    Returns: dx (N, T, D), dh0 (N, H), dWx (D, 4H), dWh (H, 4H), db (4H,).
    """
    x_tm, hs, cs, tanh_cs, gates, Wx, Wh = cache
    T, N, H = tanh_cs.shape
    dt = gates.dtype
    check_upstream("dh", dh, (N, T, H))
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
