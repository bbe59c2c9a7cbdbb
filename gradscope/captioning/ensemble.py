"""Several captioners decoding as one: at every step the next-word distribution is the mean of
the members' distributions, p(w) = (1/M) sum_m p_m(w) (the ensembles of Show, Attend and Tell and
of most captioning papers). The members share the vocabulary and the image features, and each
keeps its own state.

A CaptionerEnsemble has the face the decoders and `caption explain` use (initial_state/step,
forward/backward, sample, the vocabulary fields), so beam search, evaluation and word maps
work on it unchanged. Its "scores" are the mixture's log-probabilities, already normalised (a
log-softmax of them is the identity). Parameters and gradients are keyed '<member>/<name>'.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from gradscope.captioning.model import greedy_decode
from gradscope.errors import GradscopeError
from gradscope.layers.core import log_softmax

__all__ = ["CaptionerEnsemble", "EnsembleCache", "log_mixture", "log_mixture_backward"]


def log_mixture(scores_list):
    """log((1/M) sum_m softmax(scores_m)) over the last axis.

    Inputs: scores_list: M arrays of scores (..., V).
    Returns: (out (..., V) float64 log-probabilities, cache).
    """
    logp = np.stack([log_softmax(np.asarray(s, dtype=np.float64)) for s in scores_list])  # (M, ..., V)
    top = logp.max(axis=0)
    out = top + np.log(np.exp(logp - top).mean(axis=0))  # (..., V)
    return out, (logp, out)


def log_mixture_backward(dout, cache):
    """dout (..., V) -> [dscores_m (..., V) for each member]: with w_mv = p_mv / (M pbar_v), the
    member's share of the mixture's mass on word v, dscores_m = dout * w_m - p_m * sum_v dout_v w_mv."""
    logp, out = cache
    share = np.exp(logp - out) / len(logp)  # (M, ..., V)
    weighted = dout * share
    return list(weighted - np.exp(logp) * weighted.sum(axis=-1, keepdims=True))


class EnsembleCache(NamedTuple):
    """The members' caches, the mixture's cache, and extras (attention: alpha (N, T, L), the
    members' mean attention)."""
    members: list
    mixture: tuple
    extras: dict


class CaptionerEnsemble:
    """Captioners (CaptioningRNN) of one vocabulary and one kind of features, decoding together.

    Args: members: a list of at least one CaptioningRNN; they must have the same vocabulary,
    input size, kind of features (info['features']) and dtype, and all or none attend to regions.
    """

    def __init__(self, members):
        members = list(members)
        if not members:
            raise GradscopeError("an ensemble needs at least one captioner")
        first = members[0]
        for k, m in enumerate(members[1:], 1):
            for what, a, b in (("vocabulary", m.idx_to_word, first.idx_to_word),
                               ("input size", m.input_dim, first.input_dim),
                               ("image features", m.info.get("features"), first.info.get("features")),
                               ("region attention", m.cell.spatial, first.cell.spatial),
                               ("dtype", m.dtype, first.dtype)):
                if a != b:
                    raise GradscopeError(f"captioner {k + 1} of the ensemble differs from the first in its {what}")
        self.members = members
        self.cell, self.cell_type, self.dtype = first.cell, first.cell_type, first.dtype
        self.input_dim, self.idx_to_word, self.word_to_idx = first.input_dim, first.idx_to_word, first.word_to_idx
        self.null_idx, self.start_idx, self.end_idx = first.null_idx, first.start_idx, first.end_idx
        self.info = {**first.info, "members": len(members)}
        self.decoding_start = first.decoding_start
        probe = np.zeros((1, 1, self.input_dim) if self.cell.spatial else (1, self.input_dim), self.dtype)
        self._state_sizes = [len(m.initial_state(probe)) for m in members]  # arrays in each member's state

    @property
    def vocab_size(self) -> int:
        return len(self.idx_to_word)

    @property
    def never_generated(self) -> list:
        return self.members[0].never_generated

    @property
    def params(self) -> dict:
        """Every member's parameters, keyed '<member index>/<name>' (the arrays themselves)."""
        return {f"{k}/{name}": v for k, m in enumerate(self.members) for name, v in m.params.items()}

    # --- teacher-forced scores and their gradients -------------------------------------------

    def forward(self, features, words, mode: str = "test", seed=None):
        """features (N, D) or (N, L, D); words (N, T) -> (log-probabilities (N, T, V) of the mixture,
        EnsembleCache). mode and seed as CaptioningRNN.forward's (each member gets the same)."""
        runs = [m.forward(features, words, mode, seed) for m in self.members]
        out, mixture = log_mixture([s for s, _ in runs])
        caches = [c for _, c in runs]
        extras = {}
        if "alpha" in caches[0].extras:
            extras["alpha"] = np.mean([c.extras["alpha"] for c in caches], axis=0)  # (N, T, L)
        return out, EnsembleCache(caches, mixture, extras)

    def backward(self, dscores, cache: EnsembleCache, dextras=None, need_dfeatures: bool = True):
        """dscores (N, T, V) of the mixture's log-probabilities (and optionally dextras {'alpha':
        gradient of the mean attention}) -> (grads keyed like params, dfeatures or None)."""
        dmembers = log_mixture_backward(np.asarray(dscores, dtype=np.float64), cache.mixture)
        share = {k: v / len(self.members) for k, v in (dextras or {}).items()}
        grads, dfeatures = {}, None
        for k, (m, d, c) in enumerate(zip(self.members, dmembers, cache.members)):
            g, df = m.backward(d.astype(self.dtype), c, share, need_dfeatures)
            grads.update({f"{k}/{name}": v for name, v in g.items()})
            if need_dfeatures:
                dfeatures = df if dfeatures is None else dfeatures + df
        return grads, dfeatures

    # --- generation --------------------------------------------------------------------------

    def initial_state(self, features) -> tuple:
        """The members' decoding states, concatenated into one tuple of arrays whose first axis is N."""
        return tuple(a for m in self.members for a in m.initial_state(features))

    def step(self, words, state):
        """words (N,), state -> (log-probabilities (N, V) of the mixture, the next state)."""
        scores, new, start = [], [], 0
        for m, size in zip(self.members, self._state_sizes):
            s, part = m.step(words, state[start:start + size])
            start += size
            scores.append(s)
            new.extend(part)
        return log_mixture(scores)[0], tuple(new)

    def sample(self, features, max_length=30):
        """Greedy decoding (as CaptioningRNN.sample): captions (N, max_length) int32."""
        return greedy_decode(self, features, max_length)

    def __repr__(self):
        return f"CaptionerEnsemble({len(self.members)} x {self.members[0]!r})"
