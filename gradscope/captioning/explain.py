"""Why did it say "dog"? Word-level caption saliency, and where each word looked.

For each word w_t of a generated caption, the gradient of log p(w_t | image, w_<t) with
respect to the CNN's input, through the captioner's and the CNN's hand-written backward
passes (CaptioningRNN.forward/backward, then the CNN's backward_from). The T words are one
batch: row t carries the image's features, the caption's prefix and a one-hot upstream
gradient at step t, so one captioner pass and one CNN forward/backward (batch T) give every
word's gradient. The per-word maps are records of WORD_MAPS: the contribution map (the default)
sum_c gradient_c * (x_c - mean_c), the first-order estimate of the word's log-prob fall when
the pixel takes the image's mean pixel (gradient x input against that baseline, Shrikumar et al.
2016); the gradient map, max over colour channels of |gradient|; integrated gradients from the
mean image (a few batched CNN passes); occlusion by mean-pixel patches (a CNN forward per
patch, shared by all words); and for an attention captioner the attention map, its alpha over
the image regions at step t upsampled (bilinear) to the model input.

Faithfulness check (deletion), for every map: the fall in the word's log-prob (same prefix)
when the top `fraction` of the pixels of the CNN's input by its map, or a random `fraction`
(seeded), take the image's mean pixel. A map that finds the pixels the word depends on
drops it more than random.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from gradscope.errors import GradscopeError
from gradscope.layers.core import log_softmax

__all__ = ["CaptionExplanation", "explain_caption", "word_log_probs", "word_feature_gradients",
           "word_image_gradients", "word_attention", "attention_maps", "deletion_drops", "DEFAULT_MAP",
           "MAPS", "WORD_MAPS", "WordMap", "MapInputs", "available_maps", "contribution", "deletion_baseline",
           "is_content_word", "FUNCTION_WORDS"]

# the map `caption explain` shows first and scores as deletion_drop_top/random: of the maps free
# beyond the gradient, the one whose deletion check came out best on Flickr8k dev
# (scripts/caption_faithfulness.py, the seed-0 run's epoch-8 file, first 50 dev photos; content words
# whose log-prob fell more under top-10% than under random-10% deletion: contribution 89.2% of 240,
# gradient 52.5%, attention 37.1%; 88.0% of 192 on the next 40). Integrated gradients did a little
# better on the first 30 dev photos (91.3% of 150 against 88.0%) at 8 CNN passes more; the shipped
# ensemble: contribution 88.3% of 427 on the first 90 (gradient 52.9%, attention 39.3%); see README.
DEFAULT_MAP = "contribution"


# words the faithfulness numbers leave out when counting content words: articles, prepositions,
# pronouns, auxiliaries and conjunctions (of the Flickr8k vocabulary), and <UNK>
FUNCTION_WORDS = frozenset("""
a an the
about above across after against along among around at behind below beneath beside besides between beyond
by down during for from in inside into near of off on onto out outside over past through throughout to
toward towards under underneath up upon with within without
i me my mine myself you your yours he him his himself she her hers herself it its itself we us our ours
they them their theirs themselves this that these those who whom whose which what someone something
is are was were be been being am do does did doing has have had having will would can could shall should
may might must
and or but nor so yet as while if than because although though whether
<unk>
""".split())


def is_content_word(word: str) -> bool:
    """False for an article, preposition, pronoun, auxiliary or conjunction (FUNCTION_WORDS)."""
    return str(word).lower() not in FUNCTION_WORDS


# --- the captioner: teacher-forced log-probs and their gradient w.r.t. the features -----------

def _inputs(captioner, words):
    """(input words (T, T): every row <START> w_1..w_{T-1}; targets (T,))."""
    words = np.asarray(words, dtype=np.int64)
    if words.ndim != 1 or len(words) == 0:
        raise GradscopeError(f"words must be a non-empty 1-D array of word ids, got shape {words.shape}")
    prefix = np.concatenate([[captioner.start_idx], words[:-1]])
    return np.tile(prefix, (len(words), 1)), words


def _rows(captioner, features, T):
    """features of one image (D,) / (L, D), or one row per word (T, D) / (T, L, D) -> T rows."""
    features = np.asarray(features, dtype=captioner.dtype)
    one = 2 if captioner.cell.spatial else 1
    return np.broadcast_to(features, (T,) + features.shape[-one:]) if features.ndim == one else features


def word_log_probs(captioner, features, words) -> np.ndarray:
    """log p(w_t | image, w_<t) for t = 0..T-1.

    features: one image's features ((D,), or (L, D) for an attention captioner), or one row
    per word ((T, D) / (T, L, D): row t scores word t). words: (T,) word ids (no <START>).
    Returns (T,) float64.
    """
    inputs, targets = _inputs(captioner, words)
    scores, _ = captioner.forward(_rows(captioner, features, len(targets)), inputs)
    steps = np.arange(len(targets))
    return log_softmax(scores[steps, steps].astype(np.float64))[steps, targets]


def word_attention(captioner, features, words) -> np.ndarray:
    """alpha (T, L): the attention over the L regions when word t was predicted (teacher-forced).
    features: one image's (L, D); words: (T,) word ids (no <START>)."""
    if "alpha" not in _extras(captioner):
        raise GradscopeError(f"a {captioner.cell_type} captioner has no attention")
    inputs, targets = _inputs(captioner, words)
    _, cache = captioner.forward(_rows(captioner, features, len(targets))[:1], inputs[-1:])
    return cache.extras["alpha"][0]  # row T-1 holds the whole caption's prefixes


def _extras(captioner):
    return ("alpha",) if captioner.cell.spatial else ()


def word_feature_gradients(captioner, features, words):
    """(log-probs (T,), d log p(w_t | image, w_<t) / d features (T, D) or (T, L, D)): row t is
    word t's gradient. features: one image's; words: (T,) caption word ids (no <START>)."""
    inputs, targets = _inputs(captioner, words)
    T = len(targets)
    scores, cache = captioner.forward(np.ascontiguousarray(_rows(captioner, features, T)), inputs)
    steps = np.arange(T)
    logp = log_softmax(scores[steps, steps].astype(np.float64))  # (T, V)
    dscores = np.zeros_like(scores)  # (T, T, V): only step t of row t has an objective
    dscores[steps, steps] = -np.exp(logp)
    dscores[steps, steps, targets] += 1.0  # d log softmax_w / d scores = onehot(w) - softmax
    _, dfeats = captioner.backward(dscores, cache)
    return logp[steps, targets], dfeats


# --- through the CNN ------------------------------------------------------------------------

def _features(extractor, x):
    act, cache = extractor.model.forward_to(x, extractor.layer)
    return _arrange(extractor, act), cache, act.shape


def _features_only(extractor, x, chunk: int = 16):
    """(N, ...) the features of the images x (N, 3, H, W), `chunk` images per CNN forward (the
    forward caches are dropped between chunks, so memory stays that of `chunk` images)."""
    return np.concatenate([_features(extractor, x[i:i + chunk])[0] for i in range(0, len(x), chunk)])


def _arrange(extractor, act):
    arrange = getattr(extractor, "arrange", None)
    return act.reshape(len(act), -1) if arrange is None else arrange(act)


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
    back = getattr(extractor, "arrange_backward", None)
    dact = dfeats.reshape(act_shape) if back is None else back(dfeats, act_shape)
    dx = extractor.model.backward_from(np.asarray(dact).astype(xs.dtype), cache)
    return logp, dx


def attention_maps(alpha, size) -> np.ndarray:
    """alpha (T, L) over a square grid of L = g*g regions (row-major) -> (T, H, W) maps, each
    bilinearly upsampled (Pillow) to size = (H, W), the region centres at the cell centres."""
    from PIL import Image

    T, L = alpha.shape
    g = int(round(np.sqrt(L)))
    if g * g != L:
        raise GradscopeError(f"attention over {L} regions is not a square grid")
    H, W = size
    return np.stack([np.asarray(Image.fromarray(a.reshape(g, g).astype(np.float32), mode="F")
                                .resize((W, H), Image.BILINEAR)) for a in alpha])


def deletion_baseline(x) -> np.ndarray:
    """(1, 3, 1, 1): the image's mean pixel (per channel, in model-input space), the value the
    deletion check gives the deleted pixels and the baseline of the contribution maps."""
    return np.asarray(x).mean(axis=(2, 3), keepdims=True)


def contribution(gradients, x, baseline) -> np.ndarray:
    """(T, H, W) sum over channels of gradients * (x - baseline), signed: per pixel, the
    first-order estimate of the fall of each word's log-prob when the pixel takes the baseline.
    gradients (T, 3, H, W); x (1, 3, H, W); baseline broadcastable to x."""
    return (np.asarray(gradients) * (np.asarray(x) - baseline)).sum(axis=1)


# --- the per-word maps: one record each ------------------------------------------------------

@dataclass(frozen=True)
class MapInputs:
    """What a per-word map is made from: captioner, extractor, x (1, 3, H, W) the model input,
    words (T,) ids, gradients (T, 3, H, W) d log p(w_t | image, w_<t) / d x, baseline (1, 3, 1, 1)
    the deletion baseline, alpha (T, L) the attention (None without attention), features the
    image's features (what _features gives for x, row 0; None: computed when needed)."""
    captioner: object
    extractor: object
    x: np.ndarray
    words: np.ndarray
    gradients: np.ndarray
    baseline: np.ndarray
    alpha: np.ndarray | None = None
    features: np.ndarray | None = None

    def image_features(self) -> np.ndarray:
        """The features of x (one CNN forward unless they were given)."""
        return _features(self.extractor, self.x)[0][0] if self.features is None else self.features


def gradient_map(inputs: MapInputs) -> np.ndarray:
    """(T, H, W) max over colour channels of |gradient|."""
    return np.abs(inputs.gradients).max(axis=1)


def contribution_map(inputs: MapInputs) -> np.ndarray:
    """(T, H, W) gradient x (input - mean pixel), summed over channels, signed (contribution)."""
    return contribution(inputs.gradients, inputs.x, inputs.baseline)


def attention_map(inputs: MapInputs) -> np.ndarray:
    """(T, H, W) alpha upsampled over the model input."""
    return attention_maps(inputs.alpha, inputs.x.shape[2:])


# integrated gradients: midpoint steps on the straight path from the mean pixel to the image
IG_STEPS = 8
# occlusion: square patches of the mean pixel, side and step in model-input pixels (at 224 px: 7 x 7
# patches, 49 CNN forwards)
OCCLUSION_PATCH, OCCLUSION_STRIDE = 32, 32


def integrated_gradients_map(inputs: MapInputs, steps: int = IG_STEPS) -> np.ndarray:
    """(T, H, W) integrated gradients from the mean pixel to the image (midpoint rule, `steps`
    points, each one batched CNN pass for all T words), times (pixel - mean pixel), summed
    over colour channels, signed."""
    x, base = inputs.x, inputs.baseline
    total = np.zeros(inputs.gradients.shape)  # (T, 3, H, W)
    for k in range(steps):
        xk = (base + (k + 0.5) / steps * (x - base)).astype(x.dtype)
        total += word_image_gradients(inputs.captioner, inputs.extractor, xk, inputs.words)[1]
    return contribution(total / steps, x, base)


def _starts(size, window, stride):
    """Patch offsets along one axis: 0, stride, ... and the last one flush with the edge."""
    return np.unique(np.r_[np.arange(0, size - window + 1, stride), size - window])


def occlusion_map(inputs: MapInputs, patch: int = OCCLUSION_PATCH, stride: int = OCCLUSION_STRIDE,
                  chunk: int = 16) -> np.ndarray:
    """(T, H, W) per pixel, the mean fall of each word's log-prob (same prefix) over the patches
    of the mean pixel covering it. The occluded photos' features are shared by all T words: one
    CNN forward per patch (in batches of `chunk`), then one captioner pass per patch."""
    cap, ext, x, words = inputs.captioner, inputs.extractor, inputs.x, inputs.words
    H, W = x.shape[2:]
    p = min(patch, H, W)
    boxes = [(i, j) for i in _starts(H, p, stride) for j in _starts(W, p, stride)]
    base = word_log_probs(cap, inputs.image_features(), words)
    total, cover = np.zeros((len(words), H, W)), np.zeros((H, W))
    for c in range(0, len(boxes), chunk):
        batch = np.repeat(x, len(boxes[c:c + chunk]), axis=0)  # (n, 3, H, W)
        for n, (i, j) in enumerate(boxes[c:c + chunk]):
            batch[n, :, i:i + p, j:j + p] = inputs.baseline[0]
        feats = _features_only(ext, batch, chunk)
        for n, (i, j) in enumerate(boxes[c:c + chunk]):
            total[:, i:i + p, j:j + p] += (base - word_log_probs(cap, feats[n], words))[:, None, None]
            cover[i:i + p, j:j + p] += 1
    return total / cover


@dataclass(frozen=True)
class WordMap:
    """One kind of per-word map. name: its name (CLI --map, JSON <name>_deletion_drop_top);
    compute: MapInputs -> (T, H, W), larger = the pixel matters more to the word; attention: needs
    an attention captioner; signed: may be negative (shown clipped at 0); help: one line;
    passes: CNN passes it adds to the gradient's (0: free; -1: a forward per occluded patch)."""
    name: str
    compute: Callable
    help: str
    attention: bool = False
    signed: bool = False
    passes: int = 0


WORD_MAPS = (
    WordMap("contribution", contribution_map, "gradient x (pixel - mean pixel) summed over colour channels, signed: "
            "the first-order estimate of the log-prob's fall when the pixel takes the mean", signed=True),
    WordMap("gradient", gradient_map, "max over colour channels of |d log p(word) / d pixel|"),
    WordMap("integrated", integrated_gradients_map, f"integrated gradients from the mean pixel ({IG_STEPS} steps) x "
            "(pixel - mean pixel) summed over colour channels, signed", signed=True, passes=IG_STEPS),
    WordMap("occlusion", occlusion_map, f"mean fall of the log-prob over the {OCCLUSION_PATCH}-px mean-pixel patches "
            "covering the pixel", signed=True, passes=-1),
    WordMap("attention", attention_map, "the word's attention over the regions, upsampled", attention=True),
)
MAPS = {m.name: m for m in WORD_MAPS}


def available_maps(captioner, costly: bool = True) -> list:
    """Names of the maps this captioner has (attention maps only for an attention captioner),
    in WORD_MAPS order; costly=False leaves out the maps that need CNN passes of their own."""
    return [m.name for m in WORD_MAPS if (captioner.cell.spatial or not m.attention) and (costly or not m.passes)]


def deletion_drops(captioner, extractor, x, words, maps, fraction: float = 0.1, seed: int = 0):
    """(drop_top (T,), drop_random (T,)): the fall of log p(w_t | image, w_<t) when the top
    `fraction` of pixels by maps[t] (T, H, W), or a random `fraction` (seeded), are set to the
    image's mean pixel (per channel, in model-input space: the image the CNN sees)."""
    tops, rand = _deletion(captioner, extractor, x, words, [maps], fraction, seed)
    return tops[0], rand


def _deletion(captioner, extractor, x, words, map_list, fraction, seed, features=None):
    """([drop_top (T,) per map of map_list], drop_random (T,)): one random baseline for all maps.
    features: x's features when the caller has them (else one more CNN forward)."""
    if not 0 < fraction < 1:
        raise GradscopeError(f"fraction must be in (0, 1), got {fraction}")
    x = np.asarray(x)
    M, T, (H, W) = len(map_list), len(words), x.shape[2:]
    k = max(1, int(round(fraction * H * W)))
    rng = np.random.default_rng(seed)
    masks = np.zeros((M + 1, T, H * W), dtype=bool)  # one block of T rows per map, then the random rows
    for t in range(T):
        for m, maps in enumerate(map_list):
            masks[m, t, np.argpartition(-maps[t].ravel(), k - 1)[:k]] = True
        masks[M, t, rng.choice(H * W, k, replace=False)] = True
    mean = deletion_baseline(x)  # (1, 3, 1, 1)
    deleted = np.where(masks.reshape((M + 1) * T, 1, H, W), mean, x).astype(x.dtype)  # ((M+1)T, 3, H, W)
    feats = _features_only(extractor, deleted)
    base = word_log_probs(captioner, _features(extractor, x)[0][0] if features is None else features, words)
    drops = [base - word_log_probs(captioner, feats[m * T:(m + 1) * T], words) for m in range(M + 1)]
    return drops[:M], drops[M]


# --- the method -----------------------------------------------------------------------------

@dataclass
class CaptionExplanation:
    """One image's explained caption.

    image: (H, W, 3) uint8 the CNN's view of the photo (its crop); name: the image's name;
    words: the caption's words; word_ids (T,); logprobs (T,) log p(w_t | image, w_<t);
    gradients (T, 3, H, W) d logprob_t / d model input;
    map_name: the default map's name (a key of MAPS); maps (T, H, W) that map;
    drop_top, drop_random (T,) its deletion drops (NaN when not measured);
    other_maps: {name: (T, H, W)} the other maps made (WORD_MAPS order);
    other_drops: {name: (drop_top (T,), drop_random (T,))};
    attention: (T, L) alpha of an attention captioner (None otherwise); params: settings.
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
    map_name: str = DEFAULT_MAP
    other_maps: dict = field(default_factory=dict)
    other_drops: dict = field(default_factory=dict)
    attention: np.ndarray | None = None

    @property
    def caption(self) -> str:
        return " ".join(self.words)

    @property
    def faithful_fraction(self) -> float:
        """Fraction of words whose top-pixel deletion (default map) lowers the log-prob more than
        random deletion."""
        return float(np.mean(self.drop_top > self.drop_random)) if len(self.words) else float("nan")

    def all_maps(self) -> dict:
        """{name: (T, H, W)}: the default map first."""
        return {self.map_name: self.maps, **self.other_maps}

    def to_dict(self, map_pngs=None) -> dict:
        """{"image", "caption", "map" (the default map's name), "words": [{"word", "logprob", "map_png",
        "deletion_drop_top", "deletion_drop_random", and per other map <name>_deletion_drop_top / _random}]};
        map_pngs: optional per-word PNG paths (from save)."""
        pngs = map_pngs or [None] * len(self.words)
        words = []
        for t, (w, lp, png) in enumerate(zip(self.words, self.logprobs, pngs)):
            row = {"word": w, "logprob": float(lp), "map_png": png, "deletion_drop_top": _num(self.drop_top[t]),
                   "deletion_drop_random": _num(self.drop_random[t])}
            for name, (top, rand) in self.other_drops.items():
                row[f"{name}_deletion_drop_top"] = _num(top[t])
                row[f"{name}_deletion_drop_random"] = _num(rand[t])
            words.append(row)
        return {"image": self.name, "caption": self.caption, "map": self.map_name, "words": words}

    def save(self, out_dir, stem: str | None = None) -> dict:
        """Write <stem>_<t>_<word>.png per word (its maps over the photo, the word under them) and
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
                    callback=None, default_map: str | None = None, maps=None) -> CaptionExplanation:
    """Caption one image as `gradscope caption IMAGE` does, and explain every word.

    Args:
        captioner: a CaptioningRNN trained on `cnn`'s features.
        cnn: the feature extractor (a CNNFeatures, e.g. feature_fn_for(captioner)).
        image: (H, W, 3) uint8 photo of any size (the CNN's preprocessing crops and scales it).
        beam, max_length, length_norm: decoding, as the CLI's (beam 1 = greedy).
        fraction, deletion, seed: the deletion check (top / seeded random fraction of pixels).
        callback: optional callable(stage, done, total) with stage 'gradients' or 'deletion'.
        default_map: the map shown first and scored as drop_top/drop_random, a name of MAPS
            (default DEFAULT_MAP); every other map named in `maps` is made and scored beside it.
        maps: the other maps' names, or None for every map available_maps(captioner, costly=False)
            gives (those free beyond the gradient), or 'all' for every map the captioner has.
    Returns:
        CaptionExplanation.
    """
    names = _map_names(captioner, default_map or DEFAULT_MAP, maps)
    default_map = names[0]
    x = cnn.model.preprocess([image])  # (1, 3, H, W)
    feats = _features(cnn, x)[0]
    words = decode_caption(captioner, feats, beam, max_length, length_norm)
    if callback is not None:
        callback("gradients", 0, 1)
    H, W = x.shape[2:]
    params = {"beam": beam, "max_length": max_length, "length_norm": length_norm, "fraction": fraction,
              "seed": seed, "layer": str(cnn.layer)}
    if len(words) == 0:  # an immediate <END>: nothing to explain
        empty = np.zeros(0)
        return CaptionExplanation(name, cnn.model.deprocess(x)[0], [], words, empty, np.zeros((0, 3, H, W)),
                                  np.zeros((0, H, W)), empty, empty, params, default_map)
    logp, grads = word_image_gradients(captioner, cnn, x, words)
    alpha = word_attention(captioner, feats[0], words) if captioner.cell.spatial else None  # (T, L)
    inputs = MapInputs(captioner, cnn, x, words, grads, deletion_baseline(x), alpha, feats[0])
    maps = {k: MAPS[k].compute(inputs) for k in names}  # each (T, H, W)
    if callback is not None:
        callback("gradients", 1, 1)
    nan = np.full(len(words), np.nan)
    tops, rand = (_deletion(captioner, cnn, x, words, [maps[k] for k in names], fraction, seed, feats[0])
                  if deletion else ([nan] * len(names), nan))
    if callback is not None and deletion:
        callback("deletion", 1, 1)
    return CaptionExplanation(name, cnn.model.deprocess(x)[0], [captioner.idx_to_word[w] for w in words], words,
                              logp, grads, maps[default_map], tops[0], rand, params, default_map,
                              {k: maps[k] for k in names[1:]}, {k: (top, rand) for k, top in zip(names[1:], tops[1:])},
                              alpha)


def _map_names(captioner, default_map, maps):
    """[default map, other maps...] checked against the maps the captioner has."""
    have = available_maps(captioner)
    others = (available_maps(captioner, costly=False) if maps is None else have if maps == "all" else list(maps))
    for k in [default_map] + others:
        if k not in have:
            raise GradscopeError(f"no {k!r} map for a {captioner.cell_type} captioner: choose one of {', '.join(have)}")
    return [default_map] + [k for k in have if k in others and k != default_map]


def decode_caption(captioner, features, beam: int = 3, max_length: int = 30, length_norm: float = 0.5):
    """The word ids (T,) the CLI's decoding gives for features (1, D) (or (1, L, D)), without
    <END> and padding."""
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
