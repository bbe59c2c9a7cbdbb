"""Image captioning with a vanilla RNN or an LSTM, conditioned on an image feature vector.

The image feature is projected to the initial hidden state h0; the caption's words are
embedded and fed through the recurrent cell; every hidden state is mapped to vocabulary
scores. Training uses teacher forcing (input captions[:, :-1], targets captions[:, 1:],
`<NULL>` targets masked out); generation decodes one word at a time from `<START>`.
"""
from __future__ import annotations

import numpy as np

from gradscope.data.vocab import check_vocab, require_tokens
from gradscope.errors import GradscopeError, ShapeError
from gradscope.layers import (affine_backward, affine_forward, lstm_backward, lstm_forward,
                              lstm_step_forward, rnn_backward, rnn_forward, rnn_step_forward,
                              temporal_affine_backward, temporal_affine_forward, temporal_softmax_loss,
                              word_embedding_backward, word_embedding_forward)

__all__ = ["CaptioningRNN", "NULL", "START", "END"]

NULL, START, END = "<NULL>", "<START>", "<END>"
CELL_TYPES = ("rnn", "lstm")


class CaptioningRNN:
    """Captioning model with a dict `params` of named arrays:

        W_proj (D, H), b_proj (H,)          image feature -> h0
        W_embed (V, W)                      word embeddings
        Wx (W, G*H), Wh (H, G*H), b (G*H,)  recurrent cell, G = 1 (rnn) or 4 (lstm: i, f, o, g)
        W_vocab (H, V), b_vocab (V,)        hidden state -> vocabulary scores

    Args:
        word_to_idx: vocabulary, word -> id, V = len(word_to_idx) (gradscope.data.vocab's rule:
            <NULL> required; <START>/<END> only for decoding, checked when decoding).
        input_dim (D), wordvec_dim (W), hidden_dim (H): sizes.
        cell_type: 'rnn' or 'lstm'. dtype: np.float32 or np.float64. seed: initialization.
    """

    softmax_loss = staticmethod(temporal_softmax_loss)  # (scores, targets, mask) -> (loss, dscores)

    def __init__(self, word_to_idx, input_dim=512, wordvec_dim=128, hidden_dim=128, cell_type="rnn",
                 dtype=np.float32, seed=0):
        if cell_type not in CELL_TYPES:
            raise GradscopeError(f"cell_type must be one of {CELL_TYPES}, got {cell_type!r}")
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise GradscopeError(f"dtype must be float32 or float64, got {self.dtype}")
        self.input_dim, self.wordvec_dim, self.hidden_dim = (
            _positive_int(n, v) for n, v in (("input_dim", input_dim), ("wordvec_dim", wordvec_dim),
                                             ("hidden_dim", hidden_dim)))
        self.cell_type = cell_type
        self.idx_to_word = check_vocab(word_to_idx)  # V entries, None at ids no word has
        self.word_to_idx = {w: int(i) for w, i in word_to_idx.items()}
        self.null_idx = self.word_to_idx[NULL]
        self.start_idx, self.end_idx = (self.word_to_idx.get(w) for w in (START, END))  # None if absent
        self.info = {}  # free-form metadata (training data, feature extractor) kept by save_captioner
        self.params = self._init_params(np.random.default_rng(seed))

    @property
    def vocab_size(self) -> int:
        return len(self.idx_to_word)

    def _init_params(self, rng) -> dict:
        D, W, H, V = self.input_dim, self.wordvec_dim, self.hidden_dim, self.vocab_size
        G = 4 if self.cell_type == "lstm" else 1
        params = {
            "W_proj": rng.standard_normal((D, H)) / np.sqrt(D), "b_proj": np.zeros(H),
            "W_embed": rng.standard_normal((V, W)) / 100,
            "Wx": rng.standard_normal((W, G * H)) / np.sqrt(W),
            "Wh": rng.standard_normal((H, G * H)) / np.sqrt(H), "b": np.zeros(G * H),
            "W_vocab": rng.standard_normal((H, V)) / np.sqrt(H), "b_vocab": np.zeros(V),
        }
        return {k: v.astype(self.dtype) for k, v in params.items()}

    # --- training ----------------------------------------------------------------------

    def loss(self, features, captions):
        """Masked cross-entropy of teacher-forced next-word prediction.

        Inputs: features (N, D) image features; captions (N, T) word ids, T >= 2,
        each starting with <START> and padded with <NULL>.
        Returns: (loss, grads) with grads keyed like params.
        """
        features = self._check_features(features)
        captions = self._check_captions(captions, len(features))
        targets = captions[:, 1:]  # (N, T-1)
        scores, caches = self._forward(features, captions[:, :-1])
        loss, dscores = self.softmax_loss(scores, targets, targets != self.null_idx)
        return float(loss), self._backward(dscores, caches)

    def _forward(self, features, words):
        """Teacher-forced scores (N, T, V) for input words (N, T), and the caches."""
        p = self.params
        h0, proj_cache = affine_forward(features, p["W_proj"], p["b_proj"])  # (N, H)
        x, embed_cache = word_embedding_forward(words, p["W_embed"])  # (N, T, W)
        seq_forward = lstm_forward if self.cell_type == "lstm" else rnn_forward
        h, seq_cache = seq_forward(x, h0, p["Wx"], p["Wh"], p["b"])  # (N, T, H)
        scores, vocab_cache = temporal_affine_forward(h, p["W_vocab"], p["b_vocab"])  # (N, T, V)
        return scores, (proj_cache, embed_cache, seq_cache, vocab_cache)

    def _backward(self, dscores, caches) -> dict:
        proj_cache, embed_cache, seq_cache, vocab_cache = caches
        grads = {}
        dh, grads["W_vocab"], grads["b_vocab"] = temporal_affine_backward(dscores, vocab_cache)
        seq_backward = lstm_backward if self.cell_type == "lstm" else rnn_backward
        dx, dh0, grads["Wx"], grads["Wh"], grads["b"] = seq_backward(dh, seq_cache)
        grads["W_embed"] = word_embedding_backward(dx, embed_cache)
        _, grads["W_proj"], grads["b_proj"] = affine_backward(dh0, proj_cache)
        return grads

    # --- generation --------------------------------------------------------------------

    def initial_state(self, features):
        """features (N, D) -> (h0 (N, H), c0 (N, H) for the LSTM, else None)."""
        features = self._check_features(features)
        h0 = features @ self.params["W_proj"] + self.params["b_proj"]  # (N, H)
        return h0, (np.zeros_like(h0) if self.cell_type == "lstm" else None)

    def step(self, words, h, c=None):
        """One decoding step for a batch of states.

        Inputs: words (N,) previous word ids, h (N, H) and c (N, H) (LSTM only) the state.
        Returns: (scores (N, V) over the next word, next_h, next_c (None for the RNN)).
        """
        p = self.params
        x = p["W_embed"][words]  # (N, W)
        if self.cell_type == "lstm":
            h, c, _ = lstm_step_forward(x, h, c, p["Wx"], p["Wh"], p["b"])
        else:
            h, _ = rnn_step_forward(x, h, p["Wx"], p["Wh"], p["b"])
        return h @ p["W_vocab"] + p["b_vocab"], h, c

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
        max_length = _positive_int("max_length", max_length)
        h, c = self.initial_state(features)
        n = len(h)
        captions = np.full((n, max_length), self.null_idx, dtype=np.int32)
        words = np.full(n, self.decoding_start())
        done = np.zeros(n, dtype=bool)
        for t in range(max_length):
            if done.all():
                break
            scores, h, c = self.step(words, h, c)
            scores[:, self.never_generated] = -np.inf
            words = scores.argmax(axis=1)
            captions[~done, t] = words[~done]
            done |= words == self.end_idx
        return captions

    # --- input checks ------------------------------------------------------------------

    def _check_features(self, features):
        features = np.asarray(features)
        if features.ndim != 2 or features.shape[1] != self.input_dim:
            raise ShapeError(f"features must have shape (N, {self.input_dim}) for this model "
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
        return (f"CaptioningRNN(cell_type={self.cell_type!r}, vocab={self.vocab_size}, input_dim={self.input_dim}, "
                f"wordvec_dim={self.wordvec_dim}, hidden_dim={self.hidden_dim}, dtype={self.dtype.name})")


def _positive_int(name, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise GradscopeError(f"{name} must be a positive integer, got {value!r}")
    return int(value)
