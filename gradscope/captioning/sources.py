"""Caption data named by a source string, as the CLI and scripts take it:

    synthetic[:N]     the built-in coloured-shapes set (N training images, default 2000)
    coco:DIR          COCO: official 2014 json files and photos (featurized like flickr8k; splits
                      train, val, and test with a Karpathy dataset_coco.json), or the course's
                      preprocessed h5 features (splits train, val), told apart by the folder
    flickr8k:DIR      Flickr8k images, featurized by the shipped captioner's CNN (splits train, val, test)

Split 'dev' is an alias of 'val'.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from gradscope.errors import DataError, GradscopeError

__all__ = ["CaptionSource", "load_caption_source", "parse_source", "SPLIT_ALIASES"]

SPLIT_ALIASES = {"dev": "val"}
SYNTHETIC_TRAIN, SYNTHETIC_EVAL = 2000, 200


@dataclass
class CaptionSource:
    """Loaded splits (name -> CaptionDataset), the name of their image features and, for
    features computed by a CNN, a fingerprint of its weights; skipped: split -> images the
    annotations list that are not on disk (COCO photos)."""
    spec: str
    splits: dict
    features: str
    fingerprint: str | None = None
    skipped: dict = field(default_factory=dict)

    def split(self, name: str):
        name = SPLIT_ALIASES.get(name, name)
        if name not in self.splits:
            raise DataError(f"data {self.spec!r} has no split {name!r}; it has {', '.join(self.splits)}")
        return self.splits[name]


@dataclass(frozen=True)
class _SourceKind:
    """One kind of source string: its loader load(spec, arg, splits, options), whether it needs
    a directory argument, and whether it has region features."""
    load: object
    needs_dir: bool = True
    spatial: bool = False


def parse_source(spec: str) -> tuple[str, str | None]:
    """('synthetic' | 'coco' | 'flickr8k', argument or None) of a source string."""
    kind, _, arg = str(spec).partition(":")
    if kind not in _KINDS:
        raise GradscopeError(f"unknown data source {spec!r}: use synthetic[:N], coco:DIR or flickr8k:DIR")
    if _KINDS[kind].needs_dir and not arg:
        raise GradscopeError(f"data source {spec!r} needs a directory: {kind}:DIR")
    if not _KINDS[kind].needs_dir and arg and not re.fullmatch(r"[1-9]\d*", arg):
        raise GradscopeError(f"synthetic:N needs a positive number of training images, got {arg!r}")
    return kind, (arg or None)


def load_caption_source(spec: str, splits=None, seed: int = 0, progress=None, vocab=None,
                        spatial: bool = False) -> CaptionSource:
    """Load the splits (default: all) of a source string (see the module docstring).

    progress: optional callable(split, done, total) while Flickr8k features are computed.
    vocab: Flickr8k only: (word_to_idx, idx_to_word) to encode captions with (a trained
        captioner's), so that the train split is not needed to build one.
    spatial: Flickr8k only: the photos' region features (N, L, D), held as float16, for an
        attention captioner (default: one pooled feature vector per photo).
    """
    kind, arg = parse_source(spec)
    if spatial and not _KINDS[kind].spatial:
        raise GradscopeError(f"region features (an attention captioner) need flickr8k:DIR data, got {spec!r}")
    wanted = None if splits is None else [SPLIT_ALIASES.get(s, s) for s in splits]
    return _KINDS[kind].load(spec, arg, wanted, _LoadOptions(progress, vocab, spatial, seed))


@dataclass(frozen=True)
class _LoadOptions:
    progress: object = None
    vocab: object = None
    spatial: bool = False
    seed: int = 0


def _load_synthetic(spec, n_train, splits, options: _LoadOptions) -> CaptionSource:
    from gradscope.data.synthetic import synthetic_captions

    data = synthetic_captions(n_train=int(n_train or SYNTHETIC_TRAIN), n_val=SYNTHETIC_EVAL,
                              n_test=SYNTHETIC_EVAL, seed=options.seed)
    return CaptionSource(spec, {k: v for k, v in data.items() if splits is None or k in splits}, "synthetic")


def feature_cache_dir() -> str:
    """Where computed image features are cached: $GRADSCOPE_CACHE, else ~/.cache/gradscope/features
    (the data directory may be read-only)."""
    from gradscope.fileio import cache_dir

    return cache_dir("features")


def flickr8k_cache_path(feature_fn) -> str:
    """The feature cache of Flickr8k photos through feature_fn (keyed by its layer and weights)."""
    return os.path.join(feature_cache_dir(), f"flickr8k-{feature_fn.layer}-{feature_fn.fingerprint()}.h5")


def _load_flickr8k(spec, root, splits, options: _LoadOptions) -> CaptionSource:
    from gradscope.captioning.features import default_feature_fn
    from gradscope.data.flickr8k import load_flickr8k

    spatial = options.spatial
    feature_fn = default_feature_fn(spatial)
    data = load_flickr8k(root, feature_fn=feature_fn.flat if spatial else feature_fn,
                         feature_cache=flickr8k_cache_path(feature_fn),
                         splits=splits, progress=options.progress, vocab=options.vocab,
                         image_size=feature_fn.prepare or 224,
                         feature_dtype="float16" if spatial else "float32")
    for split in data.values():  # a flat (N, L*D) map back to its regions (a view)
        split.features = split.features.reshape((len(split.features),) + feature_fn.shape)
    return CaptionSource(spec, data, feature_fn.name, feature_fn.fingerprint())


def _load_coco(spec, root, splits, options: _LoadOptions) -> CaptionSource:
    from gradscope.captioning.features import default_feature_fn
    from gradscope.data.coco import coco_layout, load_coco, load_coco_images

    splits = splits or ["train", "val"]
    if coco_layout(root) == "course":
        return CaptionSource(spec, load_coco(root, splits=tuple(splits)), "coco-vgg16-fc7-pca")
    feature_fn = default_feature_fn()
    cache = os.path.join(feature_cache_dir(), f"coco-{feature_fn.layer}-{feature_fn.fingerprint()}.h5")
    data = load_coco_images(root, feature_fn, cache, splits=splits, image_size=feature_fn.prepare or 224,
                            progress=options.progress)
    return CaptionSource(spec, data.splits, feature_fn.name, feature_fn.fingerprint(), skipped=data.missing)


_KINDS = {"synthetic": _SourceKind(_load_synthetic, needs_dir=False), "coco": _SourceKind(_load_coco),
          "flickr8k": _SourceKind(_load_flickr8k, spatial=True)}
