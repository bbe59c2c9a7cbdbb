"""Image captioning with a recurrent cell conditioned on image features: a vanilla RNN or
an LSTM over one feature vector, or an LSTM with soft attention over image regions (Show,
Attend and Tell). The cells are the records of gradscope/captioning/cells.py.

The image features give the initial state; the caption's words are embedded and fed
through the cell; every hidden state is mapped to vocabulary scores (through dropout while
training, when set). Training uses teacher forcing (input captions[:, :-1], targets
captions[:, 1:], `<NULL>` targets masked out) and, for attention, the doubly stochastic
penalty attention_reg * sum_l (1 - sum_t alpha_tl)^2 over the non-<NULL> steps;
generation decodes one word at a time from `<START>`.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from gradscope.captioning.cells import CELL_TYPES, Sizes
from gradscope.data.vocab import check_vocab, require_tokens
from gradscope.errors import GradscopeError, ShapeError
from gradscope.layers import (dropout_backward, dropout_forward, temporal_affine_backward, temporal_affine_forward,
                              temporal_softmax_loss, word_embedding_backward, word_embedding_forward)

__all__ = ["CaptioningRNN", "CaptionerCache", "attention_penalty", "take_rows", "greedy_decode", "NULL", "START", "END"]

NULL, START, END = "<NULL>", "<START>", "<END>"


class CaptionerCache(NamedTuple):
    """What backward needs from forward; extras: the cell's per-step outputs (attention:
    alpha (N, T, L) and z (N, T, D))."""
    state: object
    embed: object
    seq: object
    dropout: object
    vocab: object
    extras: dict


class CaptioningRNN:
    """Captioning model with a dict `params` of named arrays:

        W_proj (D, H), b_proj (H,)          image feature -> h0 (rnn, lstm)
        W_embed (V, W)                      word embeddings
        Wx (W, G*H), Wh (H, G*H), b (G*H,)  recurrent cell, G = 1 (rnn) or 4 (lstm: i, f, o, g)
        W_vocab (H, V), b_vocab (V,)        hidden state -> vocabulary scores
    and for cell_type 'attention' (features (N, L, D), L regions), instead of W_proj/b_proj:
        W_h0, W_c0 (D, H), b_h0, b_c0 (H,)  h0, c0 = tanh(mean over regions @ W + b)
        Wz (D, 4H)                          the gated context's input to the gates
        W_proj_att (D, A), b_proj_att (A,), W_att (H, A), w_att (A,)  attention scores
        w_beta (H,), b_beta ()              the gate on the context

    Args:
        word_to_idx: vocabulary, word -> id, V = len(word_to_idx) (gradscope.data.vocab's rule:
            <NULL> required; <START>/<END> only for decoding, checked when decoding).
        input_dim (D), wordvec_dim (W), hidden_dim (H), attention_dim (A, default H): sizes.
        cell_type: a key of gradscope.captioning.cells.CELL_TYPES ('rnn', 'lstm', 'attention').
        dtype: np.float32 or np.float64. seed: initialization.
        dropout: probability of dropping a unit of h before the vocabulary layer in loss().
        attention_reg: weight of the doubly stochastic attention penalty in loss().
    """

    softmax_loss = staticmethod(temporal_softmax_loss)  # (scores, targets, mask) -> (loss, dscores)

    def __init__(self, word_to_idx, input_dim=512, wordvec_dim=128, hidden_dim=128, cell_type="rnn",
                 dtype=np.float32, seed=0, attention_dim=None, dropout=0.0, attention_reg=0.0):
        if cell_type not in CELL_TYPES:
            raise GradscopeError(f"cell_type must be one of {tuple(CELL_TYPES)}, got {cell_type!r}")
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise GradscopeError(f"dtype must be float32 or float64, got {self.dtype}")
        self.input_dim, self.wordvec_dim, self.hidden_dim = (
            _positive_int(n, v) for n, v in (("input_dim", input_dim), ("wordvec_dim", wordvec_dim),
                                             ("hidden_dim", hidden_dim)))
        self.attention_dim = self.hidden_dim if attention_dim is None else _positive_int("attention_dim",
                                                                                           attention_dim)
        if not 0 <= float(dropout) < 1:
            raise GradscopeError(f"dropout must lie in [0, 1), got {dropout}")
        if not float(attention_reg) >= 0:
            raise GradscopeError(f"attention_reg must be >= 0, got {attention_reg}")
        self.dropout, self.attention_reg = float(dropout), float(attention_reg)
        self.cell_type = cell_type
        self.cell = CELL_TYPES[cell_type]
        self.idx_to_word = check_vocab(word_to_idx)  # V entries, None at ids no word has
        self.word_to_idx = {w: int(i) for w, i in word_to_idx.items()}
        self.null_idx = self.word_to_idx[NULL]
        self.start_idx, self.end_idx = (self.word_to_idx.get(w) for w in (START, END))  # None if absent
        self.info = {}  # free-form metadata (training data, feature extractor) kept by save_captioner
        self.params = self._init_params(np.random.default_rng(seed))

    @property
    def vocab_size(self) -> int:
        return len(self.idx_to_word)

    @property
    def sizes(self) -> Sizes:
        return Sizes(self.input_dim, self.wordvec_dim, self.hidden_dim, self.attention_dim)

    def _init_params(self, rng) -> dict:
        s, V = self.sizes, self.vocab_size
        params = dict(self.cell.state_params(rng, s))
        params["W_embed"] = rng.standard_normal((V, s.W)) / 100
        params.update(self.cell.cell_params(rng, s))
        params["W_vocab"] = rng.standard_normal((s.H, V)) / np.sqrt(s.H)
        params["b_vocab"] = np.zeros(V)
        return {k: np.asarray(v).astype(self.dtype) for k, v in params.items()}

    # --- training ----------------------------------------------------------------------

    def loss(self, features, captions, seed=None):
        """Masked cross-entropy of teacher-forced next-word prediction (plus the attention
        penalty when attention_reg > 0).

        Inputs: features (N, D), or (N, L, D) for a spatial cell; captions (N, T) word ids,
        T >= 2, each starting with <START> and padded with <NULL>; seed: the dropout mask's
        (when dropout > 0; None draws a fresh one).
        Returns: (loss, grads) with grads keyed like params.
        """
        features = self._check_features(features)
        captions = self._check_captions(captions, len(features))
        targets = captions[:, 1:]  # (N, T-1)
        mask = targets != self.null_idx
        scores, cache = self._forward(features, captions[:, :-1], "train", seed)
        loss, dscores = self.softmax_loss(scores, targets, mask)
        dextras = {}
        if self.attention_reg > 0 and "alpha" in cache.extras:
            penalty, dextras["alpha"] = attention_penalty(cache.extras["alpha"], mask, self.attention_reg)
            loss = loss + penalty
        return float(loss), self.backward(dscores, cache, dextras, need_dfeatures=False)[0]

    def forward(self, features, words, mode: str = "test", seed=None):
        """Teacher-forced scores.

        Inputs: features (N, D) or (N, L, D); words (N, T) input word ids (<START> first);
        mode 'test' (no dropout) or 'train'; seed: dropout's.
        Returns: (scores (N, T, V), cache); cache.extras holds the cell's per-step outputs
        (attention: alpha (N, T, L), the attention over regions of every step).
        """
        features = self._check_features(features)
        return self._forward(features, np.asarray(words), mode, seed)

    def _forward(self, features, words, mode, seed):
        p = self.params
        state, state_cache = self.cell.init_state(p, features)
        x, embed_cache = word_embedding_forward(words, p["W_embed"])  # (N, T, W)
        h, extras, seq_cache = self.cell.forward(p, x, state)  # (N, T, H)
        drop_cache = None
        if self.dropout > 0 and mode == "train":
            h, drop_cache = dropout_forward(h, self.dropout, "train", seed=seed)
        scores, vocab_cache = temporal_affine_forward(h, p["W_vocab"], p["b_vocab"])  # (N, T, V)
        return scores, CaptionerCache(state_cache, embed_cache, seq_cache, drop_cache, vocab_cache, extras)

    def backward(self, dscores, cache: CaptionerCache, dextras=None, need_dfeatures: bool = True):
        """dscores (N, T, V) (and optionally dextras: {name: gradient} of cache.extras, e.g.
        'alpha') -> (grads keyed like params, dfeatures shaped like the features, or None when
        need_dfeatures is False: training skips the attention's gradient w.r.t. the regions)."""
        p, grads = self.params, {}
        dh, grads["W_vocab"], grads["b_vocab"] = temporal_affine_backward(dscores, cache.vocab)
        dh = dropout_backward(dh, cache.dropout)
        dx, dstate, cell_grads = self.cell.backward(p, dh, dict(dextras or {}), cache.seq, need_dfeatures)
        grads["W_embed"] = word_embedding_backward(dx, cache.embed)
        state_grads, dfeatures = self.cell.init_state_backward(p, dstate, cache.state)
        grads.update(cell_grads)
        grads.update(state_grads)
        return grads, (dfeatures if need_dfeatures else None)

    # --- generation --------------------------------------------------------------------

    def initial_state(self, features) -> tuple:
        """features (N, D) or (N, L, D) -> the decoding state: a tuple of arrays whose first
        axis is N (h (N, H) first; the LSTM adds c; attention adds the regions' projections
        and features, so that every beam carries its image)."""
        return self.cell.decoding_state(self.params, self._check_features(features))

    def step(self, words, state):
        """One decoding step for a batch of states.

        Inputs: words (N,) previous word ids, state (from initial_state or step).
        Returns: (scores (N, V) over the next word, the next state).
        """
        p = self.params
        h, state = self.cell.step(p, p["W_embed"][words], state)  # (N, H)
        return h @ p["W_vocab"] + p["b_vocab"], state

    @property
    def never_generated(self) -> list:
        """Word ids a decoder never emits: <NULL> is padding and <START> is input-only."""
        return [i for i in (self.null_idx, self.start_idx) if i is not None and i < self.vocab_size]

    def decoding_start(self) -> int:
        """The <START> id decoding begins with; a clear error when the vocabulary lacks it
        (<END> is optional: without it a caption runs to max_length)."""
        start, = require_tokens(self.word_to_idx, (START,), "decoding")
        if start >= self.vocab_size:
            raise GradscopeError(f"decoding needs {START} to have an id below the vocabulary size "
                                 f"{self.vocab_size}, got {start}")
        return start

    def sample(self, features, max_length=30):
        """Greedy decoding: features (N, D) -> captions (N, max_length) int32 word ids,
        the most likely next word at every step (ending with <END> when generated),
        <NULL> after <END>."""
        return greedy_decode(self, features, max_length)

    # --- input checks ------------------------------------------------------------------

    def _check_features(self, features):
        features = np.asarray(features)
        ndim, layout = (3, f"(N, L, {self.input_dim})") if self.cell.spatial else (2, f"(N, {self.input_dim})")
        if features.ndim != ndim or features.shape[-1] != self.input_dim or features.shape[1:2] == (0,):
            raise ShapeError(f"features must have shape {layout} for this {self.cell_type} model "
                             f"(input_dim={self.input_dim}), got shape {features.shape}")
        if not np.issubdtype(features.dtype, np.number):
            raise GradscopeError(f"features must be numbers, got dtype {features.dtype}")
        features = features.astype(self.dtype, copy=False)
        if not np.isfinite(features).all():
            raise GradscopeError("features contain NaN or infinite values")
        return features

    def _check_captions(self, captions, n):
        captions = np.asarray(captions)
        if captions.ndim != 2 or captions.shape[1] < 2:
            raise ShapeError(f"captions must have shape (N, T) with T >= 2, got shape {captions.shape}")
        if captions.shape[0] != n:
            raise ShapeError(f"features hold {n} images but captions hold {captions.shape[0]} captions")
        if not np.issubdtype(captions.dtype, np.integer):
            raise GradscopeError(f"captions must be integer word ids, got dtype {captions.dtype}")
        if captions.size and (captions.min() < 0 or captions.max() >= self.vocab_size):
            bad = captions[(captions < 0) | (captions >= self.vocab_size)][0]
            raise GradscopeError(f"captions contain word id {bad}, outside the vocabulary "
                                 f"(ids 0..{self.vocab_size - 1})")
        return captions

    def __repr__(self):
        att = f", attention_dim={self.attention_dim}" if self.cell.spatial else ""
        return (f"CaptioningRNN(cell_type={self.cell_type!r}, vocab={self.vocab_size}, input_dim={self.input_dim}, "
                f"wordvec_dim={self.wordvec_dim}, hidden_dim={self.hidden_dim}{att}, dtype={self.dtype.name})")


def greedy_decode(model, features, max_length=30) -> np.ndarray:
    """The most likely next word at every step, for any model with initial_state/step and the
    vocabulary fields (a CaptioningRNN or an ensemble): captions (N, max_length) int32."""
    max_length = _positive_int("max_length", max_length)
    state = model.initial_state(features)
    n = len(state[0])
    captions = np.full((n, max_length), model.null_idx, dtype=np.int32)
    words = np.full(n, model.decoding_start())
    done = np.zeros(n, dtype=bool)
    for t in range(max_length):
        if done.all():
            break
        scores, state = model.step(words, state)
        scores[:, model.never_generated] = -np.inf
        words = scores.argmax(axis=1)
        captions[~done, t] = words[~done]
        done |= words == model.end_idx
    return captions


def _positive_int(name, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise GradscopeError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def take_rows(state, rows) -> tuple:
    """The decoding state of rows `rows` (e.g. the parents of the surviving beams)."""
    return tuple(a[rows] for a in state)


def attention_penalty(alpha, mask, weight: float):
    """The doubly stochastic attention penalty of Show, Attend and Tell, averaged over the batch:
    weight * sum_l (1 - sum_t alpha_tl)^2 / N, the sums over the steps where mask (N, T) is true.
    Inputs: alpha (N, T, L). Returns: (penalty, dalpha (N, T, L))."""
    m = np.asarray(mask, dtype=alpha.dtype)[:, :, None]  # (N, T, 1)
    gap = 1 - (alpha * m).sum(axis=1)  # (N, L)
    n = len(alpha)
    return weight * float((gap ** 2).sum()) / n, (-2 * weight / n) * gap[:, None, :] * m
