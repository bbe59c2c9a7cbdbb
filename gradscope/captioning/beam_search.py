"""Beam search decoding for CaptioningRNN, batched over images: the k beams of all N
images advance together, N*k states per model step.

A beam's score is the sum of the log-probabilities of its words. A beam that has
emitted <END> is finished: it stays in the beam with its score unchanged (its only
continuation is <NULL> padding at cost 0) and competes with the live beams. The best of
the final k beams is chosen by score / length**alpha (alpha=0: raw log-probability).
"""
from __future__ import annotations

import math

import numpy as np

from gradscope.captioning.model import _positive_int, take_rows
from gradscope.errors import GradscopeError
from gradscope.layers.core import log_softmax
from gradscope.validate import check_finite_output

__all__ = ["beam_search", "sequence_log_prob"]


def beam_search(model, features, beam_size=3, max_length=30, length_normalization=True):
    """Decode captions with beam search.

    Inputs: model (CaptioningRNN), features (N, D); beam_size k >= 1; max_length >= 1;
    length_normalization: True (alpha=1), False (alpha=0) or alpha >= 0 as a float.
    Returns: (captions (N, max_length) int32 ids with <NULL> after <END>,
              scores (N,) float64 log-probability of each chosen caption).
    With beam_size=1 this is exactly greedy decoding (model.sample).
    """
    k = _positive_int("beam_size", beam_size)
    max_length = _positive_int("max_length", max_length)
    alpha = _alpha(length_normalization)
    state = model.initial_state(features)
    n = len(state[0])
    state = take_rows(state, np.repeat(np.arange(n), k))  # beam j of image i at row i*k + j
    beams = _Beams(n, k, max_length, model.null_idx)
    words = np.full(n * k, model.decoding_start())
    for t in range(max_length):
        if not beams.any_live():
            break
        scores, state = model.step(words, state)
        logp = _next_log_probs(model, scores, beams.done.ravel())  # (N*k, V)
        rows = beams.advance(logp.reshape(n, k, -1), t, model.end_idx)
        state = take_rows(state, rows)
        words = beams.seqs[:, :, t].ravel()
    return beams.best(alpha)


class _Beams:
    """The k hypotheses of each of n images: seqs (n, k, L), score (n, k) float64
    (-inf for an empty slot), done (n, k), length (n, k) words including <END>."""

    def __init__(self, n, k, max_length, null_idx):
        self.seqs = np.full((n, k, max_length), null_idx, dtype=np.int32)
        self.score = np.full((n, k), -np.inf)
        self.score[:, 0] = 0.0  # one live beam at the start; copies would duplicate it
        self.done = np.zeros((n, k), dtype=bool)
        self.length = np.zeros((n, k), dtype=np.int64)

    def any_live(self) -> bool:
        return bool((~self.done & np.isfinite(self.score)).any())

    def advance(self, logp, t, end_idx):
        """Keep the k best of the n*k*V extensions (logp (n, k, V)); return the flat
        rows (n*k,) of the parent states, in the new beam order."""
        n, k, V = logp.shape
        candidates = (self.score[:, :, None] + logp).reshape(n, k * V)
        top = np.argpartition(-candidates, k - 1, axis=1)[:, :k]  # (n, k), order irrelevant
        parent, word = np.divmod(top, V)
        image = np.arange(n)[:, None]
        parent_done = self.done[image, parent]
        self.score = candidates[image, top]
        self.seqs = self.seqs[image, parent]
        self.seqs[:, :, t] = word
        self.done = parent_done | (word == end_idx)
        self.length = self.length[image, parent] + ~parent_done
        return (image * k + parent).ravel()

    def best(self, alpha):
        norm = self.score / np.maximum(self.length, 1) ** alpha if alpha else self.score
        pick = np.argmax(norm, axis=1)  # (n,)
        image = np.arange(len(pick))
        return self.seqs[image, pick], self.score[image, pick]


def _next_log_probs(model, scores, done):
    """log softmax of scores (M, V) in float64, with never-generated words at -inf and
    the rows of finished beams allowing only <NULL> at cost 0 (DataError if scores are not finite)."""
    logp = log_softmax(check_finite_output(scores, "the captioner", "word scores").astype(np.float64))
    logp[:, model.never_generated] = -np.inf
    logp[done] = -np.inf
    logp[done, model.null_idx] = 0.0
    return logp


def sequence_log_prob(model, features, captions):
    """Log-probability under the model of generated captions (N, L) (no <START>; the
    words up to and including the first <END>, <NULL> padding after it). Returns (N,) float64."""
    captions = np.asarray(captions)
    state = model.initial_state(features)
    n = len(state[0])
    if captions.ndim != 2 or len(captions) != n:
        raise GradscopeError(f"captions must have shape ({n}, L), got {captions.shape}")
    total = np.zeros(n)
    alive = np.ones(n, dtype=bool)
    words = np.full(n, model.decoding_start())
    for t in range(captions.shape[1]):
        if not alive.any():
            break
        scores, state = model.step(words, state)
        logp = log_softmax(scores.astype(np.float64))
        words = captions[:, t]
        total += np.where(alive, logp[np.arange(n), words], 0.0)
        alive &= words != model.end_idx
    return total


def _alpha(length_normalization) -> float:
    if length_normalization is True:
        return 1.0
    if length_normalization is False or length_normalization is None:
        return 0.0
    alpha = float(length_normalization)
    if not (math.isfinite(alpha) and alpha >= 0):
        raise GradscopeError(f"length_normalization must be True, False or a float alpha >= 0, "
                             f"got {length_normalization!r}")
    return alpha

