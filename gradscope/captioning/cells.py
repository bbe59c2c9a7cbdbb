"""Every recurrent cell a captioner can use in one record: its parameters, initial state,
sequence forward/backward, decoding step and torch twin, side by side.

`CELL_TYPES` maps a captioner's `cell_type` to a `CellType`. The captioner
(gradscope/captioning/model.py), beam search, the explainer and the torch twin only
ever look a cell up here, so a cell exists in exactly one place.

A record's functions, `p` being the captioner's params dict and `sizes` a `Sizes`:

    state_params(rng, sizes) -> {name: array}  the initial-state map's arrays;
    cell_params(rng, sizes) -> {name: array}   the recurrence's arrays. The captioner draws
        state_params, then W_embed, then cell_params, then W_vocab/b_vocab, so that the
        plain RNN/LSTM's draws are exactly the course's.
    init_state(p, features) -> (state, cache): the state the sequence starts from.
    init_state_backward(p, dstate, cache) -> (grads, dfeatures).
    forward(p, x, state) -> (h (N, T, H), extras, cache): x (N, T, W) word vectors;
        extras: {name: array} the cell also exposes per step (attention: alpha (N, T, L)).
    backward(p, dh, dextras, cache) -> (dx, dstate, grads); dextras may lack any name.
    decoding_state(p, features) -> state: a tuple of arrays with batch as first axis
        (beam search selects rows of every one of them).
    step(p, x, state) -> (h (N, H), state): one decoding step, x (N, W).
    torch_twin(model) -> nn.Module: the same captioner in torch (gradscope/captioning/torch_twin.py).

How to add a cell: write its pure forward/backward layers in gradscope/layers/, write
the record's functions below, add one entry to CELL_TYPES, and add it to the tables of
tests/test_captioning_cells.py. Nothing else in the captioner changes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

from gradscope.layers import (affine_backward, affine_forward, att_lstm_backward, att_lstm_forward,
                              att_lstm_step_forward, lstm_backward, lstm_forward, lstm_step_forward,
                              rnn_backward, rnn_forward, rnn_step_forward)

__all__ = ["CellType", "CELL_TYPES", "Sizes"]


class Sizes(NamedTuple):
    """D feature size (per region for spatial cells), W word vector, H hidden, A attention."""
    D: int
    W: int
    H: int
    A: int


@dataclass(frozen=True)
class CellType:
    name: str
    gates: int                 # pre-activation blocks of H per step (1 RNN, 4 LSTM)
    spatial: bool              # features (N, L, D) regions, else (N, D) one vector
    state_params: Callable
    cell_params: Callable
    init_state: Callable
    init_state_backward: Callable
    forward: Callable
    backward: Callable
    decoding_state: Callable
    step: Callable
    torch_twin: Callable
    description: str = ""
    label: str = ""            # the name people use: 'RNN', 'LSTM', 'attention-LSTM'


# ---- the plain cells: h0 = features @ W_proj + b_proj (c0 = 0 for the LSTM) ---------------------

def _proj_params(rng, s):
    return {"W_proj": rng.standard_normal((s.D, s.H)) / np.sqrt(s.D), "b_proj": np.zeros(s.H)}


def _recurrence_params(gates):
    def init(rng, s):
        return {"Wx": rng.standard_normal((s.W, gates * s.H)) / np.sqrt(s.W),
                "Wh": rng.standard_normal((s.H, gates * s.H)) / np.sqrt(s.H), "b": np.zeros(gates * s.H)}
    return init


def _proj_state(zero_c):
    def init_state(p, features):
        h0, cache = affine_forward(features, p["W_proj"], p["b_proj"])  # (N, H)
        return ((h0, np.zeros_like(h0)) if zero_c else (h0,)), cache
    return init_state


def _proj_state_backward(p, dstate, cache):
    dfeatures, dW, db = affine_backward(dstate[0], cache)
    return {"W_proj": dW, "b_proj": db}, dfeatures


def _proj_decoding(zero_c):
    def decoding_state(p, features):
        h0 = features @ p["W_proj"] + p["b_proj"]  # (N, H)
        return (h0, np.zeros_like(h0)) if zero_c else (h0,)
    return decoding_state


def _plain_forward(seq_forward):
    def forward(p, x, state):
        h, cache = seq_forward(x, state[0], p["Wx"], p["Wh"], p["b"])  # (N, T, H)
        return h, {}, cache
    return forward


def _plain_backward(seq_backward, zero_c):
    def backward(p, dh, dextras, cache, need_dfeatures=True):  # the features reach only the initial state
        dx, dh0, dWx, dWh, db = seq_backward(dh, cache)
        dstate = (dh0, None) if zero_c else (dh0,)
        return dx, dstate, {"Wx": dWx, "Wh": dWh, "b": db}
    return backward


def _rnn_step(p, x, state):
    h, _ = rnn_step_forward(x, state[0], p["Wx"], p["Wh"], p["b"])
    return h, (h,)


def _lstm_step(p, x, state):
    h, c, _ = lstm_step_forward(x, state[0], state[1], p["Wx"], p["Wh"], p["b"])
    return h, (h, c)


# ---- soft attention (Show, Attend and Tell): h0, c0 = tanh(mean feature @ W + b) -------------------

def _attention_params(rng, s):
    D, W, H, A = s
    return {"W_h0": rng.standard_normal((D, H)) / np.sqrt(D), "b_h0": np.zeros(H),
            "W_c0": rng.standard_normal((D, H)) / np.sqrt(D), "b_c0": np.zeros(H)}


def _attention_recurrence(rng, s):
    D, W, H, A = s
    b = np.zeros(4 * H)
    b[H:2 * H] = 1.0  # forget gate open at the start
    return {"Wx": rng.standard_normal((W, 4 * H)) / np.sqrt(W),
            "Wz": rng.standard_normal((D, 4 * H)) / np.sqrt(D),
            "Wh": rng.standard_normal((H, 4 * H)) / np.sqrt(H), "b": b,
            "W_proj_att": rng.standard_normal((D, A)) / np.sqrt(D), "b_proj_att": np.zeros(A),
            "W_att": rng.standard_normal((H, A)) / np.sqrt(H), "w_att": rng.standard_normal(A) / np.sqrt(A),
            "w_beta": np.zeros(H), "b_beta": np.zeros(())}


class _AttentionInitCache(NamedTuple):
    L: int
    h_cache: tuple
    c_cache: tuple
    h0: np.ndarray  # (N, H)
    c0: np.ndarray  # (N, H)


def _attention_init_state(p, features):
    mean = features.mean(axis=1)  # (N, D)
    ah, h_cache = affine_forward(mean, p["W_h0"], p["b_h0"])
    ac, c_cache = affine_forward(mean, p["W_c0"], p["b_c0"])
    h0, c0 = np.tanh(ah), np.tanh(ac)  # (N, H)
    return (h0, c0, features), _AttentionInitCache(features.shape[1], h_cache, c_cache, h0, c0)


def _attention_init_state_backward(p, dstate, cache):
    dh0, dc0, dfeats = dstate
    dmean_h, dWh0, dbh0 = affine_backward(dh0 * (1 - cache.h0 ** 2), cache.h_cache)
    dmean_c, dWc0, dbc0 = affine_backward(dc0 * (1 - cache.c0 ** 2), cache.c_cache)
    dfeatures = (dmean_h + dmean_c)[:, None, :] / cache.L + (0 if dfeats is None else dfeats)  # (N, L, D)
    return {"W_h0": dWh0, "b_h0": dbh0, "W_c0": dWc0, "b_c0": dbc0}, dfeatures


_ATT_NAMES = ("Wx", "Wz", "Wh", "b", "W_att", "w_att", "w_beta", "b_beta")


def _attention_forward(p, x, state):
    h0, c0, feats = state
    (h, z, alpha), cache = att_lstm_forward(x, h0, c0, feats, p["W_proj_att"], p["b_proj_att"],
                                            *(p[k] for k in _ATT_NAMES))
    return h, {"z": z, "alpha": alpha}, cache  # h (N, T, H), z (N, T, D), alpha (N, T, L)


def _attention_backward(p, dh, dextras, cache, need_dfeatures=True):
    (dx, dh0, dc0, dfeats, dWp, dbp, *rest) = att_lstm_backward(dh, dextras.get("z"), dextras.get("alpha"), cache,
                                                                need_dfeats=need_dfeatures)
    grads = {"W_proj_att": dWp, "b_proj_att": dbp, **dict(zip(_ATT_NAMES, rest))}
    return dx, (dh0, dc0, dfeats), grads


def _attention_decoding_state(p, features):
    (h0, c0, feats), _ = _attention_init_state(p, features)
    proj = feats @ p["W_proj_att"] + p["b_proj_att"]  # (N, L, A), once per caption
    return h0, c0, proj, feats


def _attention_step(p, x, state):
    h, c, proj, feats = state
    (h, c, _, _), _ = att_lstm_step_forward(x, h, c, proj, feats, *(p[k] for k in _ATT_NAMES))
    return h, (h, c, proj, feats)


def _twin(builder):
    def build(model):
        from gradscope.captioning import torch_twin  # torch is optional

        return getattr(torch_twin, builder)(model)
    return build


CELL_TYPES = {
    "rnn": CellType("rnn", 1, False, _proj_params, _recurrence_params(1), _proj_state(False),
                    _proj_state_backward, _plain_forward(rnn_forward), _plain_backward(rnn_backward, False),
                    _proj_decoding(False), _rnn_step, _twin("plain_twin"),
                    "vanilla RNN, h0 from the image feature", "RNN"),
    "lstm": CellType("lstm", 4, False, _proj_params, _recurrence_params(4), _proj_state(True),
                     _proj_state_backward, _plain_forward(lstm_forward), _plain_backward(lstm_backward, True),
                     _proj_decoding(True), _lstm_step, _twin("plain_twin"),
                     "LSTM, h0 from the image feature, c0 = 0", "LSTM"),
    "attention": CellType("attention", 4, True, _attention_params, _attention_recurrence,
                          _attention_init_state, _attention_init_state_backward, _attention_forward,
                          _attention_backward, _attention_decoding_state, _attention_step, _twin("attention_twin"),
                          "LSTM with soft attention over image regions (Show, Attend and Tell)",
                          "attention-LSTM"),
}
