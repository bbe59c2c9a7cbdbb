"""Soft attention over image regions and the attention-LSTM (Show, Attend and Tell,
Xu et al. 2015, soft attention with the gating scalar beta).

Shapes: N minibatch, T time steps, L image regions (49 = 7x7), D region feature size,
A attention size, W word-vector size, H hidden size. LSTM gates are stacked side by
side in the order i, f, o, g, exactly as in gradscope.layers.recurrent.

The module reads in three parts, like recurrent.py:

1. The step functions are the textbook equations, line for line:
       attention:  e = tanh(proj + h W_att) w_att        proj = feats W_proj_att + b_proj_att
                   alpha = softmax(e over the L regions),  z = sum_l alpha_l feats_l
       LSTM step:  beta = sigmoid(h w_beta + b_beta),  zg = beta z  (the gated context)
                   [a_i, a_f, a_o, a_g] = x Wx + zg Wz + h Wh + b, then the LSTM cell of
                   lstm_step_forward (it is called with the input [x, zg] and weights [Wx; Wz])
2. The reference sequences (`att_lstm_forward_reference` and its backward) loop over
   the step functions; proj is computed once per sequence.
3. FAST PATH: `att_lstm_forward` / `att_lstm_backward` compute the same numbers as the
   reference sequences (the tests compare values and all gradients), tuned for speed.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from gradscope.errors import ShapeError
from gradscope.layers._validate import check_dim, check_ndim
from gradscope.layers.core import softmax
from gradscope.layers.recurrent import (_batch_major, _halve_sigmoid_gates, _input_gate_planes, _lstm_cell,
                                        _lstm_cell_backward, _planes, _time_major, _transposed,
                                        lstm_step_backward, lstm_step_forward, sigmoid)

__all__ = [
    "attention_forward", "attention_backward",
    "att_lstm_step_forward", "att_lstm_step_backward",
    "att_lstm_forward_reference", "att_lstm_backward_reference", "att_lstm_forward", "att_lstm_backward",
    "AttentionCache", "AttLSTMStepCache", "AttLSTMReferenceCache", "AttLSTMCache",
]


# ---------------------------------------------------------------- input checks

def _common_dtype(*arrays):
    """The floating dtype all arrays are brought to (float64 for integer input)."""
    dtype = np.result_type(*arrays)
    return dtype if np.issubdtype(dtype, np.floating) else np.dtype(np.float64)


def _check_attention(h_prev, proj, feats, W_att, w_att):
    """Shapes of attention_forward's inputs: h_prev (N, H), proj (N, L, A), feats (N, L, D),
    W_att (H, A), w_att (A,)."""
    check_ndim("h_prev", h_prev, 2, "(N, H)")
    check_ndim("proj", proj, 3, "(N, L, A)")
    check_ndim("feats", feats, 3, "(N, L, D)")
    check_ndim("W_att", W_att, 2, "(H, A)")
    check_ndim("w_att", w_att, 1, "(A,)")
    check_dim("h_prev", h_prev.shape[0], "proj", proj.shape[0], "batch size N")
    check_dim("feats", feats.shape[0], "proj", proj.shape[0], "batch size N")
    check_dim("feats", feats.shape[1], "proj", proj.shape[1], "region count L")
    _check_attention_weights(W_att, w_att, "h_prev", h_prev.shape[1], "proj", proj.shape[2])


def _check_attention_weights(W_att, w_att, h_name, H, a_name, A):
    """W_att (H, A) and w_att (A,) against the hidden size H of array h_name and the
    attention size A of array a_name."""
    check_ndim("W_att", W_att, 2, "(H, A)")
    check_ndim("w_att", w_att, 1, "(A,)")
    check_dim("W_att", W_att.shape[0], h_name, H, "hidden size H")
    check_dim("W_att", W_att.shape[1], a_name, A, "attention size A")
    check_dim("w_att", w_att.shape[0], a_name, A, "attention size A")


def _check_lstm_weights(x, prev_h, D, Wx, Wz, Wh, b, w_beta, b_beta):
    """Shapes of the attention-LSTM's own weights for x (..., W), prev_h (N, H), features of size D."""
    H = prev_h.shape[1]
    check_ndim("Wx", Wx, 2, "(W, 4H)")
    check_ndim("Wz", Wz, 2, "(D, 4H)")
    check_ndim("Wh", Wh, 2, "(H, 4H)")
    check_ndim("b", b, 1, "(4H,)")
    check_ndim("w_beta", w_beta, 1, "(H,)")
    check_ndim("b_beta", b_beta, 0, "()")
    check_dim("Wx", Wx.shape[0], "x", x.shape[-1], "word-vector size W")
    check_dim("Wz", Wz.shape[0], "feats", D, "feature size D")
    check_dim("Wh", Wh.shape[0], "prev_h", H, "hidden size H")
    for name, n in (("Wx", Wx.shape[1]), ("Wz", Wz.shape[1]), ("Wh", Wh.shape[1]), ("b", b.shape[0])):
        check_dim(name, n, "4 * hidden size", 4 * H, "gate width 4H")
    check_dim("w_beta", w_beta.shape[0], "prev_h", H, "hidden size H")
    check_dim("x", x.shape[0], "prev_h", prev_h.shape[0], "batch size N")


def _check_upstream(name, d, shape):
    """The upstream gradient must have the shape of the output it belongs to."""
    if not isinstance(d, np.ndarray) or d.shape != shape:
        raise ShapeError(f"{name} must have the shape of the layer output {shape}, "
                         f"got shape {np.shape(d)}")


def _upstream_or_zeros(name, d, shape, dtype):
    """An optional upstream gradient (None means zeros), checked and in the layer's dtype."""
    if d is None:
        return np.zeros(shape, dtype=dtype)
    _check_upstream(name, d, shape)
    return d.astype(dtype, copy=False)


# ------------------------------------------------------ 1. the textbook step equations

class AttentionCache(NamedTuple):
    h_prev: np.ndarray  # (N, H)
    feats: np.ndarray   # (N, L, D)
    W_att: np.ndarray   # (H, A)
    w_att: np.ndarray   # (A,)
    tanh: np.ndarray    # (N, L, A) tanh(proj + h_prev W_att)
    alpha: np.ndarray   # (N, L)


def attention_forward(h_prev, proj, feats, W_att, w_att):
    """Soft attention of one step.

    Inputs: h_prev (N, H) the hidden state that asks; proj (N, L, A) the regions'
    projected features (feats @ W_proj_att + b_proj_att, computed once per sequence);
    feats (N, L, D) the regions' features; W_att (H, A); w_att (A,).
    Returns: ((z (N, D) the context, alpha (N, L) the attention weights), cache).
    """
    _check_attention(h_prev, proj, feats, W_att, w_att)
    dtype = _common_dtype(h_prev, proj, feats, W_att, w_att)
    h_prev, proj, feats, W_att, w_att = (a.astype(dtype, copy=False) for a in (h_prev, proj, feats, W_att, w_att))
    tanh = np.tanh(proj + (h_prev @ W_att)[:, None, :])  # (N, L, A)
    e = tanh @ w_att  # (N, L) scores
    alpha = softmax(e, axis=1)  # (N, L)
    z = np.einsum("nl,nld->nd", alpha, feats)  # (N, D)
    return (z, alpha), AttentionCache(h_prev, feats, W_att, w_att, tanh, alpha)


def attention_backward(dz, dalpha, cache):
    """dz (N, D), dalpha (N, L) or None -> (dh_prev (N, H), dproj (N, L, A),
    dfeats (N, L, D), dW_att (H, A), dw_att (A,))."""
    h_prev, feats, W_att, w_att, tanh, alpha = cache
    _check_upstream("dz", dz, (feats.shape[0], feats.shape[2]))
    dz = dz.astype(alpha.dtype, copy=False)
    dalpha = _upstream_or_zeros("dalpha", dalpha, alpha.shape, alpha.dtype)
    dalpha = dalpha + np.einsum("nd,nld->nl", dz, feats)  # both paths into alpha
    dfeats = alpha[:, :, None] * dz[:, None, :]
    de = alpha * (dalpha - np.sum(alpha * dalpha, axis=1, keepdims=True))  # through softmax
    dw_att = np.einsum("nla,nl->a", tanh, de)
    dproj = de[:, :, None] * w_att * (1 - tanh ** 2)  # (N, L, A) through tanh
    dhW = dproj.sum(axis=1)  # (N, A): gradient of h_prev @ W_att
    return dhW @ W_att.T, dproj, dfeats, h_prev.T @ dhW, dw_att


class AttLSTMStepCache(NamedTuple):
    attention: AttentionCache
    lstm: object          # the LSTMStepCache of the cell, input [x, zg]
    prev_h: np.ndarray    # (N, H)
    w_beta: np.ndarray    # (H,)
    beta: np.ndarray      # (N, 1)
    z: np.ndarray         # (N, D) ungated context
    W: int                # word-vector size: where [x, zg] splits


def att_lstm_step_forward(x, prev_h, prev_c, proj, feats, Wx, Wz, Wh, b, W_att, w_att, w_beta, b_beta):
    """One step of the attention-LSTM.

    Inputs: x (N, W) word vectors; prev_h, prev_c (N, H); proj (N, L, A) and feats (N, L, D)
    as for attention_forward; Wx (W, 4H), Wz (D, 4H), Wh (H, 4H), b (4H,); W_att (H, A),
    w_att (A,); w_beta (H,), b_beta () the gate on the context.
    Returns: ((next_h (N, H), next_c (N, H), zg (N, D) the gated context beta * z,
    alpha (N, L)), cache).
    """
    check_ndim("x", x, 2, "(N, W)")
    b_beta = np.asarray(b_beta)
    (z, alpha), att_cache = attention_forward(prev_h, proj, feats, W_att, w_att)
    _check_lstm_weights(x, prev_h, feats.shape[2], Wx, Wz, Wh, b, w_beta, b_beta)
    dtype = _common_dtype(z, x, prev_c, Wx, Wz, Wh, b, w_beta, b_beta)
    beta = sigmoid(prev_h @ w_beta + b_beta).astype(dtype, copy=False)[:, None]  # (N, 1)
    zg = beta * z  # (N, D)
    next_h, next_c, lstm_cache = lstm_step_forward(np.concatenate([x, zg], axis=1), prev_h, prev_c,
                                                   np.concatenate([Wx, Wz]), Wh, b)
    cache = AttLSTMStepCache(att_cache, lstm_cache, att_cache.h_prev, w_beta.astype(dtype, copy=False),
                             beta, z, x.shape[1])
    return (next_h, next_c, zg, alpha), cache


def att_lstm_step_backward(dnext_h, dnext_c, dz, dalpha, cache):
    """dnext_h, dnext_c (N, H), dz (N, D) or None (gradient of the gated context zg),
    dalpha (N, L) or None ->
    (dx (N, W), dprev_h (N, H), dprev_c (N, H), dproj (N, L, A), dfeats (N, L, D),
    dWx (W, 4H), dWz (D, 4H), dWh (H, 4H), db (4H,), dW_att (H, A), dw_att (A,),
    dw_beta (H,), db_beta ())."""
    att_cache, lstm_cache, prev_h, w_beta, beta, z, W = cache
    dxz, dprev_h, dprev_c, dWxz, dWh, db = lstm_step_backward(dnext_h, dnext_c, lstm_cache)
    dx, dzg = dxz[:, :W], dxz[:, W:] + _upstream_or_zeros("dz", dz, z.shape, z.dtype)
    dbeta = np.sum(dzg * z, axis=1)  # (N,)
    ds = dbeta * beta[:, 0] * (1 - beta[:, 0])  # (N,) through the sigmoid
    dh_att, dproj, dfeats, dW_att, dw_att = attention_backward(dzg * beta, dalpha, att_cache)
    dprev_h = dprev_h + dh_att + ds[:, None] * w_beta
    return (dx, dprev_h, dprev_c, dproj, dfeats, dWxz[:W], dWxz[W:], dWh, db, dW_att, dw_att,
            prev_h.T @ ds, np.asarray(ds.sum(), dtype=z.dtype))


# ------------------------------------------ 2. reference sequences: loops of the steps

class AttLSTMReferenceCache(NamedTuple):
    steps: list                # the AttLSTMStepCache of each step
    feats: np.ndarray          # (N, L, D)
    W_proj_att: np.ndarray     # (D, A)


def _check_sequence(x, h0, c0, feats):
    """Shapes of the sequence inputs: x (N, T, W), h0 and c0 (N, H), feats (N, L, D)."""
    check_ndim("x", x, 3, "(N, T, W)")
    check_ndim("h0", h0, 2, "(N, H)")
    check_ndim("c0", c0, 2, "(N, H)")
    check_ndim("feats", feats, 3, "(N, L, D)")
    for name, a in (("h0", h0), ("c0", c0), ("feats", feats)):
        check_dim(name, a.shape[0], "x", x.shape[0], "batch size N")
    check_dim("c0", c0.shape[1], "h0", h0.shape[1], "hidden size H")


def _check_projection(feats, W_proj_att, b_proj_att):
    """W_proj_att (D, A) and b_proj_att (A,) for feats (N, L, D)."""
    check_ndim("W_proj_att", W_proj_att, 2, "(D, A)")
    check_ndim("b_proj_att", b_proj_att, 1, "(A,)")
    check_dim("W_proj_att", W_proj_att.shape[0], "feats", feats.shape[2], "feature size D")
    check_dim("b_proj_att", b_proj_att.shape[0], "W_proj_att", W_proj_att.shape[1], "attention size A")


def _project(feats, W_proj_att, b_proj_att):
    """proj = feats @ W_proj_att + b_proj_att: (N, L, D) -> (N, L, A)."""
    _check_projection(feats, W_proj_att, b_proj_att)
    return feats @ W_proj_att + b_proj_att


def _project_backward(dproj, dfeats, feats, W_proj_att):
    """Adds the gradient through proj to dfeats (in place); returns (dW_proj_att, db_proj_att)."""
    dfeats += dproj @ W_proj_att.T
    A = dproj.shape[-1]
    return feats.reshape(-1, feats.shape[-1]).T @ dproj.reshape(-1, A), dproj.sum(axis=(0, 1))


def att_lstm_forward_reference(x, h0, c0, feats, W_proj_att, b_proj_att, Wx, Wz, Wh, b,
                               W_att, w_att, w_beta, b_beta):
    """att_lstm_forward as a plain loop of att_lstm_step_forward:
    x (N, T, W), h0, c0 (N, H), feats (N, L, D), W_proj_att (D, A), b_proj_att (A,), the
    step's weights -> ((h (N, T, H), zg (N, T, D), alpha (N, T, L)), cache)."""
    _check_sequence(x, h0, c0, feats)
    proj = _project(feats, W_proj_att, b_proj_att)  # (N, L, A)
    h, c, outs, steps = h0, c0, [], []
    for t in range(x.shape[1]):
        (h, c, zg, alpha), step = att_lstm_step_forward(x[:, t], h, c, proj, feats, Wx, Wz, Wh, b,
                                                        W_att, w_att, w_beta, b_beta)
        outs.append((h, zg, alpha))
        steps.append(step)
    hs, zs, alphas = (np.stack(o, axis=1) for o in zip(*outs))
    return (hs, zs, alphas), AttLSTMReferenceCache(steps, steps[0].attention.feats,
                                                   W_proj_att.astype(hs.dtype, copy=False))


def att_lstm_backward_reference(dh, dz, dalpha, cache):
    """att_lstm_backward as a plain loop of att_lstm_step_backward: dh (N, T, H),
    dz (N, T, D) or None, dalpha (N, T, L) or None ->
    (dx, dh0, dc0, dfeats, dW_proj_att, db_proj_att, dWx, dWz, dWh, db, dW_att, dw_att,
    dw_beta, db_beta)."""
    steps, feats, W_proj_att = cache
    T = len(steps)
    prev_h = steps[0].prev_h
    N, dtype = prev_h.shape[0], prev_h.dtype
    _check_upstream("dh", dh, (N, T, prev_h.shape[1]))
    dz = _upstream_or_zeros("dz", dz, (N, T, feats.shape[2]), dtype)
    dalpha = _upstream_or_zeros("dalpha", dalpha, (N, T, feats.shape[1]), dtype)
    dprev_h, dprev_c = np.zeros_like(prev_h), np.zeros_like(prev_h)
    dxs, total = [], None  # total: sums of dproj, dfeats and the weight gradients over the steps
    for t in reversed(range(T)):
        dx, dprev_h, dprev_c, *rest = att_lstm_step_backward(dh[:, t] + dprev_h, dprev_c, dz[:, t],
                                                             dalpha[:, t], steps[t])
        dxs.append(dx)
        total = rest if total is None else [a + r for a, r in zip(total, rest)]
    dproj, dfeats, dWx, dWz, dWh, db, dW_att, dw_att, dw_beta, db_beta = total
    dW_proj_att, db_proj_att = _project_backward(dproj, dfeats, feats, W_proj_att)
    return (np.stack(dxs[::-1], axis=1), dprev_h, dprev_c, dfeats, dW_proj_att, db_proj_att,
            dWx, dWz, dWh, db, dW_att, dw_att, dw_beta, db_beta)


# ---------------------------------------------------- 3. FAST PATH: the tuned sequence
# Same numbers as the reference sequence above, with the tricks of lstm_forward
# (recurrent.py: time-major buffers filled in place, gate planes, sigmoid through one
# tanh with the i, f, o columns of the weights halved, weight gradients formed after the
# loop with one product over all T*N rows) and these of its own:
#   - proj = feats @ W_proj_att + b_proj_att and x @ Wx + b are taken once, before the loop;
#   - each step has two products: prev_h @ [Wh | W_att | w_beta] (the three read prev_h)
#     and zg @ Wz; z = alpha @ feats is one batched (1, L) @ (L, D) product per row;
#   - the backward has two per step as well, da @ [Wh; Wz].T and [dhW, dbeta] @ [W_att | w_beta].T;
#   - through the tanh of the attention, (N, L, A) per step, the backward makes one
#     elementwise pass, tanh**2: sum_l de (1 - tanh**2) w_att is w_att (sum_l de - de @ tanh**2),
#     one batched product; dproj (the sum of that over the steps, before the sum over l)
#     and dw_att are formed after the loop by products over all steps;
#   - dfeats through the contexts is alpha.T @ (beta dzg), one batched product after the loop.

class AttLSTMCache(NamedTuple):
    x_tm: np.ndarray        # (T*N, W) time-major input
    feats: np.ndarray       # (N, L, D)
    tanhs: np.ndarray       # (T, N, L, A) tanh(proj + h W_att) of each step
    alphas: np.ndarray      # (T, N, L)
    zs: np.ndarray          # (T, N, D) contexts before the gate
    zgs: np.ndarray         # (T, N, D) gated contexts beta * z
    betas: np.ndarray       # (T, N)
    hs: np.ndarray          # (T+1, N, H): h0, then the hidden state of each step
    cs: np.ndarray          # (T+1, N, H): c0, then the cell state of each step
    tanh_cs: np.ndarray     # (T, N, H)
    gates: np.ndarray       # (4, T, N, H) planes i, f, o, g
    Wx: np.ndarray
    Wz: np.ndarray
    Wh: np.ndarray
    W_att: np.ndarray
    w_att: np.ndarray
    w_beta: np.ndarray
    W_proj_att: np.ndarray


def _prepare_sequence(x, h0, c0, feats, W_proj_att, b_proj_att, Wx, Wz, Wh, b, W_att, w_att, w_beta, b_beta):
    """Check every shape and bring all inputs to one floating dtype; returns them in order."""
    b_beta = np.asarray(b_beta)
    _check_sequence(x, h0, c0, feats)
    _check_projection(feats, W_proj_att, b_proj_att)
    _check_attention_weights(W_att, w_att, "h0", h0.shape[1], "W_proj_att", W_proj_att.shape[1])
    _check_lstm_weights(x[:, 0], h0, feats.shape[2], Wx, Wz, Wh, b, w_beta, b_beta)
    arrays = (x, h0, c0, feats, W_proj_att, b_proj_att, Wx, Wz, Wh, b, W_att, w_att, w_beta, b_beta)
    dtype = _common_dtype(*arrays)
    return [a.astype(dtype, copy=False) for a in arrays]


def att_lstm_forward(x, h0, c0, feats, W_proj_att, b_proj_att, Wx, Wz, Wh, b, W_att, w_att, w_beta, b_beta):
    """Run the attention-LSTM over a whole sequence.

    Inputs: x (N, T, W) word vectors; h0, c0 (N, H); feats (N, L, D); W_proj_att (D, A),
    b_proj_att (A,); Wx (W, 4H), Wz (D, 4H), Wh (H, 4H), b (4H,); W_att (H, A), w_att (A,);
    w_beta (H,), b_beta ().
    Returns: ((h (N, T, H), zg (N, T, D) gated contexts, alpha (N, T, L)), cache).
    """
    (x, h0, c0, feats, W_proj_att, b_proj_att, Wx, Wz, Wh, b, W_att, w_att, w_beta,
     b_beta) = _prepare_sequence(x, h0, c0, feats, W_proj_att, b_proj_att, Wx, Wz, Wh, b, W_att, w_att, w_beta, b_beta)
    N, T, _ = x.shape
    _, L, D = feats.shape
    H, A, dt = Wh.shape[0], W_att.shape[1], x.dtype
    proj = feats @ W_proj_att  # (N, L, A)
    proj += b_proj_att
    x_tm = _time_major(x)  # (T*N, W)
    gates = _input_gate_planes(x_tm, Wx, b).reshape(4, T, N, H)
    W_hidden = np.concatenate([_halve_sigmoid_gates(Wh), W_att, w_beta[:, None]], axis=1)  # (H, 4H + A + 1)
    Wz_half = _halve_sigmoid_gates(Wz)
    tanhs = np.empty((T, N, L, A), dtype=dt)
    alphas, betas = np.empty((T, N, L), dtype=dt), np.empty((T, N), dtype=dt)
    zs, zgs = np.empty((T, N, D), dtype=dt), np.empty((T, N, D), dtype=dt)
    hs, cs = np.empty((T + 1, N, H), dtype=dt), np.empty((T + 1, N, H), dtype=dt)
    tanh_cs = np.empty((T, N, H), dtype=dt)
    hs[0], cs[0] = h0, c0
    hw = np.empty((N, 4 * H + A + 1), dtype=dt)  # prev_h @ W_hidden
    zw = np.empty((N, 4 * H), dtype=dt)
    e = np.empty((N, L), dtype=dt)
    for t in range(T):
        np.matmul(hs[t], W_hidden, out=hw)
        np.add(proj, hw[:, None, 4 * H:4 * H + A], out=tanhs[t])
        np.tanh(tanhs[t], out=tanhs[t])
        np.matmul(tanhs[t].reshape(N * L, A), w_att, out=e.reshape(N * L))
        alphas[t] = softmax(e, axis=1)
        np.matmul(alphas[t][:, None, :], feats, out=zs[t][:, None, :])
        betas[t] = sigmoid(hw[:, -1] + b_beta)
        np.multiply(zs[t], betas[t][:, None], out=zgs[t])
        np.matmul(zgs[t], Wz_half, out=zw)
        a = gates[:, t]
        a += _planes(hw[:, :4 * H])
        a += _planes(zw)
        _lstm_cell(a, cs[t], cs[t + 1], tanh_cs[t], hs[t + 1])
    cache = AttLSTMCache(x_tm, feats, tanhs, alphas, zs, zgs, betas, hs, cs, tanh_cs, gates,
                         Wx, Wz, Wh, W_att, w_att, w_beta, W_proj_att)
    return (_batch_major(hs[1:]), _batch_major(zgs), _batch_major(alphas)), cache


def att_lstm_backward(dh, dz, dalpha, cache, *, need_dfeats: bool = True):
    """dh (N, T, H), dz (N, T, D) or None, dalpha (N, T, L) or None ->
    (dx (N, T, W), dh0 (N, H), dc0 (N, H), dfeats (N, L, D), dW_proj_att (D, A),
    db_proj_att (A,), dWx, dWz, dWh, db, dW_att, dw_att, dw_beta, db_beta).
    need_dfeats=False (training, where the features are data) returns dfeats None and skips
    its two products."""
    (x_tm, feats, tanhs, alphas, zs, zgs, betas, hs, cs, tanh_cs, gates,
     Wx, Wz, Wh, W_att, w_att, w_beta, W_proj_att) = cache
    T, N, L, A = tanhs.shape
    H, D, dt = Wh.shape[0], feats.shape[2], tanhs.dtype
    _check_upstream("dh", dh, (N, T, H))
    dh_tm = dh.swapaxes(0, 1)  # (T, N, H) views
    dz_tm = None if dz is None else _upstream_or_zeros("dz", dz, (N, T, D), dt).swapaxes(0, 1)
    dalpha_tm = _upstream_or_zeros("dalpha", dalpha, (N, T, L), dt).swapaxes(0, 1)
    W_hz_T = _transposed(np.concatenate([Wh, Wz]))  # (4H, H + D)
    W_back = np.concatenate([W_att, w_beta[:, None]], axis=1).T.copy()  # (A + 1, H)
    da = np.empty((T, N, 4 * H), dtype=dt)  # gradients of the gate pre-activations
    dhs = np.empty((T, N, A + 1), dtype=dt)  # gradients of prev_h @ [W_att | w_beta]
    dzatt = np.empty((T, N, D), dtype=dt)  # gradients of the contexts z before the gate
    des = np.empty((T, N, L), dtype=dt)  # gradients of the attention scores e
    sqs = np.empty((T, N, L, A), dtype=dt)  # tanh**2
    dprev_h, dc = np.zeros((N, H), dtype=dt), np.zeros((N, H), dtype=dt)
    dh_t, p, q = np.empty((N, H), dt), np.empty((N, H), dt), np.empty((N, H), dt)
    work = np.empty((4, N, H), dtype=dt)
    hz = np.empty((N, H + D), dtype=dt)
    de_sq = np.empty((N, 1, A), dtype=dt)
    dal = np.empty((N, L, 1), dtype=dt)
    for t in range(T - 1, -1, -1):
        np.add(dh_tm[t], dprev_h, out=dh_t)
        _lstm_cell_backward(dh_t, dc, gates[:, t], cs[t], tanh_cs[t], da[t], work, p, q)
        np.matmul(da[t], W_hz_T, out=hz)
        dzg = hz[:, H:]  # (N, D) gradient of the gated context
        if dz_tm is not None:
            dzg += dz_tm[t]
        beta = betas[t]
        dhs[t, :, A] = np.einsum("nd,nd->n", dzg, zs[t]) * beta * (1 - beta)  # through the gate's sigmoid
        np.multiply(dzg, beta[:, None], out=dzatt[t])
        np.matmul(feats, dzatt[t][:, :, None], out=dal)
        dal_t = dal[:, :, 0]
        dal_t += dalpha_tm[t]
        alpha = alphas[t]
        np.multiply(alpha, dal_t - np.sum(alpha * dal_t, axis=1, keepdims=True), out=des[t])  # through softmax
        np.multiply(tanhs[t], tanhs[t], out=sqs[t])
        np.matmul(des[t][:, None, :], sqs[t], out=de_sq)
        np.subtract(des[t].sum(axis=1)[:, None], de_sq[:, 0], out=dhs[t, :, :A])
        dhs[t, :, :A] *= w_att  # sum over l of d(proj + h W_att)
        np.matmul(dhs[t], W_back, out=dprev_h)
        dprev_h += hz[:, :H]
    return _att_lstm_weight_grads(cache, da, dhs, dzatt, des, sqs, dprev_h, dc, need_dfeats)


def _att_lstm_weight_grads(cache, da, dhs, dzatt, des, sqs, dh0, dc0, need_dfeats=True):
    """After the loop: every gradient as att_lstm_backward returns it, from the per-step
    gradients da (T, N, 4H), dhs (T, N, A + 1), dzatt (T, N, D), des (T, N, L) and sqs = tanh**2."""
    x_tm, feats, tanhs, alphas, zgs, hs, Wx, W_att, w_att, W_proj_att = (
        cache.x_tm, cache.feats, cache.tanhs, cache.alphas, cache.zgs, cache.hs, cache.Wx, cache.W_att,
        cache.w_att, cache.W_proj_att)
    T, N, L, A = tanhs.shape
    H, D = hs.shape[2], feats.shape[2]
    da2, dhs2 = da.reshape(T * N, -1), dhs.reshape(T * N, A + 1)
    h_prev = hs[:-1].reshape(T * N, H)
    # dproj = w_att * sum_t de (1 - tanh**2): one (1, T) @ (T, A) product per region
    de_sq = np.matmul(des.reshape(T, N * L).T[:, None, :], sqs.reshape(T, N * L, A).transpose(1, 0, 2))
    dproj = des.sum(axis=0).reshape(N * L, 1) - de_sq[:, 0]  # (N*L, A)
    dproj *= w_att
    dw_att = des.reshape(T * N * L) @ tanhs.reshape(T * N * L, A)
    dfeats = None
    if need_dfeats:
        dfeats = np.matmul(alphas.transpose(1, 2, 0), dzatt.transpose(1, 0, 2))  # (N, L, D) through z
        dfeats += (dproj @ W_proj_att.T).reshape(N, L, D)
    dW_proj_att = feats.reshape(N * L, D).T @ dproj
    dx = _batch_major((da2 @ Wx.T).reshape(T, N, -1))
    dW_hidden = h_prev.T @ dhs2  # (H, A + 1): [dW_att | dw_beta]
    return (dx, dh0, dc0, dfeats, dW_proj_att, dproj.sum(axis=0), x_tm.T @ da2, zgs.reshape(T * N, D).T @ da2,
            h_prev.T @ da2, da2.sum(axis=0), dW_hidden[:, :A], dw_att, dW_hidden[:, A],
            np.asarray(dhs2[:, A].sum(), dtype=dhs2.dtype))
