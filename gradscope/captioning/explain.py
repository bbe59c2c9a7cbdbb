"""Why did it say "dog"? Word-level caption saliency.

For each word w_t of a generated caption, the gradient of log p(w_t | image, w_<t) with
respect to the CNN's input, through the captioner and the CNN by their hand-written
backward passes; the word's map is the max over colour channels of its absolute value.
The T words are one batch: row t carries the image's features, the caption's prefix and
a one-hot upstream gradient at step t, so one captioner pass and one CNN
forward/backward (batch T) give every word's gradient.

Faithfulness check (deletion): the fall in the word's log-prob (same prefix) when the top
`fraction` of pixels by its map, or a random `fraction` (seeded), take the image's mean
pixel. A map that finds the pixels the word depends on drops it more than random.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from gradscope.errors import GradscopeError
from gradscope.layers import (affine_backward, affine_forward, lstm_backward, lstm_forward, rnn_backward,
                              rnn_forward, temporal_affine_backward, temporal_affine_forward,
                              word_embedding_forward)

__all__ = ["CaptionExplanation", "explain_caption", "word_log_probs", "word_feature_gradients",
           "word_image_gradients", "deletion_drops"]


# --- the captioner: teacher-forced log-probs and their gradient w.r.t. the features -----------

def _forward(captioner, features, words):
    """Teacher-forced scores (N, T, V) of input words (N, T) (<START> first), and the caches."""
    p = captioner.params
    seq_forward = lstm_forward if captioner.cell_type == "lstm" else rnn_forward
    h0, proj_cache = affine_forward(features, p["W_proj"], p["b_proj"])  # (N, H)
    x, _ = word_embedding_forward(words, p["W_embed"])  # (N, T, W)
    h, seq_cache = seq_forward(x, h0, p["Wx"], p["Wh"], p["b"])  # (N, T, H)
    scores, vocab_cache = temporal_affine_forward(h, p["W_vocab"], p["b_vocab"])  # (N, T, V)
    return scores, (proj_cache, seq_cache, vocab_cache)


def _log_softmax(scores):
    shifted = scores - scores.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _inputs(captioner, words):
    """(input words (T, T): every row <START> w_1..w_{T-1}; targets (T,))."""
    words = np.asarray(words, dtype=np.int64)
    if words.ndim != 1 or len(words) == 0:
        raise GradscopeError(f"words must be a non-empty 1-D array of word ids, got shape {words.shape}")
    prefix = np.concatenate([[captioner.start_idx], words[:-1]])
    return np.tile(prefix, (len(words), 1)), words


def word_log_probs(captioner, features, words) -> np.ndarray:
    """log p(w_t | image, w_<t) for t = 0..T-1.

    features: (D,) one image's features, or (T, D) one row per word (row t scores word t).
    words: (T,) word ids of the caption (no <START>). Returns (T,) float64.
    """
    inputs, targets = _inputs(captioner, words)
    features = np.broadcast_to(np.asarray(features, dtype=captioner.dtype), (len(targets), captioner.input_dim))
    scores, _ = _forward(captioner, features, inputs)
    steps = np.arange(len(targets))
    return _log_softmax(scores[steps, steps].astype(np.float64))[steps, targets]


def word_feature_gradients(captioner, features, words):
    """(log-probs (T,), d log p(w_t | image, w_<t) / d features (T, D)): row t is word t's gradient.

    features: (D,) one image's features; words: (T,) caption word ids (no <START>).
    """
    inputs, targets = _inputs(captioner, words)
    T = len(targets)
    feats = np.repeat(np.asarray(features, dtype=captioner.dtype).reshape(1, -1), T, axis=0)  # (T, D)
    scores, (proj_cache, seq_cache, vocab_cache) = _forward(captioner, feats, inputs)
    steps = np.arange(T)
    logp = _log_softmax(scores[steps, steps].astype(np.float64))  # (T, V)
    dscores = np.zeros_like(scores)  # (T, T, V): only step t of row t has an objective
    dscores[steps, steps] = -np.exp(logp)
    dscores[steps, steps, targets] += 1.0  # d log softmax_w / d scores = onehot(w) - softmax
    dh, _, _ = temporal_affine_backward(dscores, vocab_cache)
    seq_backward = lstm_backward if captioner.cell_type == "lstm" else rnn_backward
    dh0 = seq_backward(dh, seq_cache)[1]
    dfeats = affine_backward(dh0, proj_cache)[0]
    return logp[steps, targets], dfeats


# --- through the CNN ------------------------------------------------------------------------

def _features(extractor, x):
    act, cache = extractor.model.forward_to(x, extractor.layer)
    return act.reshape(len(x), -1), cache, act.shape


def word_image_gradients(captioner, extractor, x, words):
    """(log-probs (T,), d log p(w_t | image, w_<t) / d x (T, 3, H, W)) for one model input x (1, 3, H, W).

    extractor: a CNNFeatures (its model and feature layer); one CNN pass on the image
    replicated T times carries all T words' gradients.
    """
    x = np.asarray(x)
    if x.ndim != 4 or len(x) != 1:
        raise GradscopeError(f"x must be one model input of shape (1, 3, H, W), got {x.shape}")
    feats, _, _ = _features(extractor, x)
    logp, dfeats = word_feature_gradients(captioner, feats[0], words)
    xs = np.repeat(x, len(logp), axis=0)  # (T, 3, H, W)
    _, cache, act_shape = _features(extractor, xs)
    dx = extractor.model.backward_from(dfeats.reshape((len(logp),) + tuple(act_shape[1:])).astype(xs.dtype), cache)
    return logp, dx


def deletion_drops(captioner, extractor, x, words, maps, fraction: float = 0.1, seed: int = 0):
    """(drop_top (T,), drop_random (T,)): the fall of log p(w_t | image, w_<t) when the top
    `fraction` of pixels by maps[t] (T, H, W), or a random `fraction` (seeded), are set to the
    image's mean pixel (per channel, in model-input space)."""
    if not 0 < fraction < 1:
        raise GradscopeError(f"fraction must be in (0, 1), got {fraction}")
    x = np.asarray(x)
    T, (H, W) = len(maps), x.shape[2:]
    k = max(1, int(round(fraction * H * W)))
    rng = np.random.default_rng(seed)
    masks = np.zeros((2 * T, H * W), dtype=bool)  # rows 0..T-1 top pixels, T..2T-1 random ones
    for t in range(T):
        masks[t, np.argpartition(-maps[t].ravel(), k - 1)[:k]] = True
        masks[T + t, rng.choice(H * W, k, replace=False)] = True
    mean = x.mean(axis=(2, 3), keepdims=True)  # (1, 3, 1, 1)
    deleted = np.where(masks.reshape(2 * T, 1, H, W), mean, x).astype(x.dtype)  # (2T, 3, H, W)
    feats, _, _ = _features(extractor, deleted)
    base = word_log_probs(captioner, _features(extractor, x)[0][0], words)
    top = word_log_probs(captioner, feats[:T], words)
    rand = word_log_probs(captioner, feats[T:], words)
    return base - top, base - rand


# --- the method -----------------------------------------------------------------------------

@dataclass
class CaptionExplanation:
    """One image's explained caption.

    image: (H, W, 3) uint8 the CNN's view of the photo (its crop); name: the image's name;
    words: the caption's words; word_ids (T,); logprobs (T,) log p(w_t | image, w_<t);
    gradients (T, 3, H, W) d logprob_t / d model input; maps (T, H, W) max over channels of |gradient|;
    drop_top, drop_random (T,) deletion drops (NaN when not measured); params: settings.
    """
    name: str
    image: np.ndarray
    words: list
    word_ids: np.ndarray
    logprobs: np.ndarray
    gradients: np.ndarray
    maps: np.ndarray
    drop_top: np.ndarray
    drop_random: np.ndarray
    params: dict = field(default_factory=dict)

    @property
    def caption(self) -> str:
        return " ".join(self.words)

    @property
    def faithful_fraction(self) -> float:
        """Fraction of words whose top-pixel deletion lowers the log-prob more than random deletion."""
        return float(np.mean(self.drop_top > self.drop_random)) if len(self.words) else float("nan")

    def to_dict(self, map_pngs=None) -> dict:
        """{"image", "caption", "words": [{"word", "logprob", "map_png", "deletion_drop_top",
        "deletion_drop_random"}]}; map_pngs: optional per-word PNG paths (from save)."""
        pngs = map_pngs or [None] * len(self.words)
        words = [{"word": w, "logprob": float(lp), "map_png": png, "deletion_drop_top": _num(top),
                  "deletion_drop_random": _num(rand)}
                 for w, lp, png, top, rand in zip(self.words, self.logprobs, pngs, self.drop_top, self.drop_random)]
        return {"image": self.name, "caption": self.caption, "words": words}

    def save(self, out_dir, stem: str | None = None) -> dict:
        """Write <stem>_<t>_<word>.png per word (the map over the photo, the word under it) and
        <stem>_caption.png (the strip of the whole caption) into out_dir. Returns to_dict()
        with map_png filled in and "figure": the strip's path."""
        from gradscope.captioning.explain_figures import save_explanation

        stem = stem or os.path.splitext(os.path.basename(self.name))[0] or "image"
        pngs, strip = save_explanation(self, out_dir, stem)
        return {**self.to_dict(pngs), "figure": strip}


def _num(v):
    return None if not np.isfinite(v) else float(v)


def explain_caption(captioner, cnn, image, *, name: str = "image", beam: int = 3, max_length: int = 30,
                    length_norm: float = 0.5, fraction: float = 0.1, deletion: bool = True, seed: int = 0,
                    callback=None) -> CaptionExplanation:
    """Caption one image as `gradscope caption IMAGE` does, and explain every word.

    Args:
        captioner: a CaptioningRNN trained on `cnn`'s features.
        cnn: the feature extractor (a CNNFeatures, e.g. feature_fn_for(captioner)).
        image: (H, W, 3) uint8 photo of any size (the CNN's preprocessing crops and scales it).
        beam, max_length, length_norm: decoding, as the CLI's (beam 1 = greedy).
        fraction, deletion, seed: the deletion check (top / seeded random fraction of pixels).
        callback: optional callable(stage, done, total) with stage 'gradients' or 'deletion'.
    Returns:
        CaptionExplanation.
    """
    x = cnn.model.preprocess([image])  # (1, 3, H, W)
    words = decode_caption(captioner, _features(cnn, x)[0], beam, max_length, length_norm)
    if callback is not None:
        callback("gradients", 0, 1)
    H, W = x.shape[2:]
    if len(words) == 0:  # an immediate <END>: nothing to explain
        empty = np.zeros(0)
        return CaptionExplanation(name, cnn.model.deprocess(x)[0], [], words, empty, np.zeros((0, 3, H, W)),
                                  np.zeros((0, H, W)), empty, empty, {})
    logp, grads = word_image_gradients(captioner, cnn, x, words)
    maps = np.abs(grads).max(axis=1)  # (T, H, W)
    if callback is not None:
        callback("gradients", 1, 1)
    nan = np.full(len(words), np.nan)
    drops = deletion_drops(captioner, cnn, x, words, maps, fraction, seed) if deletion else (nan, nan)
    if callback is not None and deletion:
        callback("deletion", 1, 1)
    params = {"beam": beam, "max_length": max_length, "length_norm": length_norm, "fraction": fraction,
              "seed": seed, "layer": str(cnn.layer)}
    return CaptionExplanation(name, cnn.model.deprocess(x)[0], [captioner.idx_to_word[w] for w in words], words,
                              logp, grads, maps, drops[0], drops[1], params)


def decode_caption(captioner, features, beam: int = 3, max_length: int = 30, length_norm: float = 0.5):
    """The word ids (T,) the CLI's decoding gives for features (1, D), without <END> and padding."""
    from gradscope.captioning.beam_search import beam_search

    if beam < 1:
        raise GradscopeError(f"beam must be at least 1, got {beam}")
    if beam == 1:
        ids = captioner.sample(features, max_length=max_length)[0]
    else:
        ids = beam_search(captioner, features, beam_size=beam, max_length=max_length,
                          length_normalization=length_norm)[0][0]
    keep = []
    for w in ids:
        if w in (captioner.end_idx, captioner.null_idx):
            break
        keep.append(int(w))
    return np.asarray(keep, dtype=np.int64)
