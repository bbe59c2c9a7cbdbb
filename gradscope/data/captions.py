"""A captioning split: image features plus integer-encoded reference captions.

Works as a dataset for gradscope.training.Trainer: `len(ds)` is the number of
captions and `ds.batch(indices)` returns `(features, captions)` for model.loss.
Features may live on disk (an open h5py dataset or an np.memmap): only the rows a
batch needs are read.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gradscope.data.vocab import check_vocab, decode_tokens, encode
from gradscope.errors import DataError, GradscopeError

__all__ = ["CaptionDataset", "read_rows"]


@dataclass(eq=False)
class CaptionDataset:
    """One split of a captioning data set.

    Fields:
        features: (n_images, D) array-like: ndarray, np.memmap or h5py dataset; or
            (n_images, L, D) regions of a spatial map.
        captions: (M, T) int32 ids, each row <START> words <END> <NULL>...
        image_idxs: (M,) int, the feature row of each caption.
        word_to_idx: dict word -> id; idx_to_word: list id -> word (None at an unused id); the
            vocabulary rule of gradscope.data.vocab.check_vocab, the same as CaptioningRNN's.
        image_names: optional list of n_images names (file names).
        urls: optional list of n_images image URLs.
        raw_tokens: optional list of M untruncated token lists (the original captions,
            before <UNK> mapping); references() prefers these over decoding ids.
        images: optional (n_images, H, W, 3) uint8 pixels (synthetic data).
        name: split name, for messages.
        no_references: how many images had only empty captions (from_references drops empty
            captions, so such images are neither trained on nor scored; they are counted here).
    """
    features: object
    captions: np.ndarray
    image_idxs: np.ndarray
    word_to_idx: dict
    idx_to_word: list
    image_names: list | None = None
    urls: list | None = None
    raw_tokens: list | None = None
    images: np.ndarray | None = None
    name: str = ""
    no_references: int = 0
    _image_ids: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        where = f"caption split {self.name!r}" if self.name else "caption data"
        shape = getattr(self.features, "shape", None)
        if shape is None or len(shape) not in (2, 3):
            raise DataError(f"{where}: features must be a 2-D (n_images, D) or 3-D (n_images, L, D) array, "
                            f"got shape {shape}")
        self.captions = np.asarray(self.captions)
        if self.captions.ndim != 2 or not np.issubdtype(self.captions.dtype, np.integer):
            raise DataError(f"{where}: captions must be a 2-D integer array, got "
                            f"{self.captions.dtype} with shape {self.captions.shape}")
        self.captions = self.captions.astype(np.int32, copy=False)
        self.image_idxs = np.asarray(self.image_idxs)
        if self.image_idxs.shape != (len(self.captions),) or not np.issubdtype(self.image_idxs.dtype, np.integer):
            raise DataError(f"{where}: image_idxs must be ({len(self.captions)},) integers, got "
                            f"{self.image_idxs.dtype} with shape {self.image_idxs.shape}")
        self.image_idxs = self.image_idxs.astype(np.int64, copy=False)
        self._validate_contents(where, shape[0])

    def _validate_contents(self, where, n_images):
        check_vocab(self.word_to_idx, self.idx_to_word)
        if len(self.image_idxs) and (self.image_idxs.min() < 0 or self.image_idxs.max() >= n_images):
            raise DataError(f"{where}: image_idxs range {self.image_idxs.min()}..{self.image_idxs.max()} "
                            f"outside the {n_images} feature rows")
        if self.captions.size and (self.captions.min() < 0 or self.captions.max() >= len(self.idx_to_word)):
            raise DataError(f"{where}: caption ids range {self.captions.min()}..{self.captions.max()} "
                            f"outside the vocabulary of {len(self.idx_to_word)} words")
        for label, seq in (("image_names", self.image_names), ("urls", self.urls)):
            if seq is not None and len(seq) != n_images:
                raise DataError(f"{where}: {len(seq)} {label} for {n_images} images")
        if self.raw_tokens is not None and len(self.raw_tokens) != len(self.captions):
            raise DataError(f"{where}: {len(self.raw_tokens)} raw captions for {len(self.captions)} encoded ones")
        if self.images is not None and (self.images.ndim != 4 or len(self.images) != n_images):
            raise DataError(f"{where}: images must be (n_images={n_images}, H, W, C), got {self.images.shape}")

    @classmethod
    def from_references(cls, features, references, word_to_idx, idx_to_word, max_length: int,
                        **fields) -> "CaptionDataset":
        """Build a split from per-image reference token lists: references[i] are the
        captions of feature row i (an image may have none). An empty caption is no reference:
        it is dropped, and images left without any are counted in no_references. Extra fields
        (image_names, urls, images, name) pass through; raw_tokens are kept for references()."""
        kept = [[list(t) for t in refs if len(t)] for refs in references]
        empty = sum(1 for refs, k in zip(references, kept) if len(refs) and not k)
        tokens = [t for refs in kept for t in refs]
        image_idxs = np.repeat(np.arange(len(kept)), [len(r) for r in kept])
        return cls(features, encode(tokens, word_to_idx, max_length), image_idxs, word_to_idx,
                   idx_to_word, raw_tokens=tokens, no_references=empty, **fields)

    def __len__(self) -> int:
        return len(self.captions)

    @property
    def n_images(self) -> int:
        """Number of feature rows."""
        return int(self.features.shape[0])

    @property
    def feature_dim(self) -> int:
        """D: the size of an image's feature vector (of each region's, for a spatial map)."""
        return int(self.features.shape[-1])

    @property
    def vocab_size(self) -> int:
        return len(self.idx_to_word)

    @property
    def max_length(self) -> int:
        """Most words a caption row holds (T - 2 for <START> and <END>)."""
        return self.captions.shape[1] - 2

    def batch(self, indices, rng=None):
        """(features (B, D) or (B, L, D) float, captions (B, T) int32) for caption rows `indices`;
        rng is unused."""
        indices = self._check_indices(indices, len(self), "caption")
        return self.image_features(self.image_idxs[indices]), self.captions[indices]

    def image_features(self, image_ids) -> np.ndarray:
        """(B, D) (or (B, L, D)) float features of feature rows `image_ids` (read lazily from
        disk-backed features; float16 ones cast to float32)."""
        image_ids = self._check_indices(image_ids, self.n_images, "image")
        feats = read_rows(self.features, image_ids)
        if not np.issubdtype(feats.dtype, np.floating) or feats.dtype == np.float16:
            feats = feats.astype(np.float32)
        return feats

    def image_indices(self) -> np.ndarray:
        """Sorted unique feature rows that have captions in this split."""
        if self._image_ids is None:
            self._image_ids = np.unique(self.image_idxs)
        return self._image_ids

    def references(self, image_ids=None) -> list:
        """Reference token lists per image, in the order of `image_ids` (default image_indices()).

        Uses the raw captions when stored, else decodes the ids (dropping special
        tokens except <UNK>).
        """
        image_ids = self.image_indices() if image_ids is None else np.asarray(image_ids)
        order = np.argsort(self.image_idxs, kind="stable")
        sorted_idxs = self.image_idxs[order]
        lo = np.searchsorted(sorted_idxs, image_ids, side="left")
        hi = np.searchsorted(sorted_idxs, image_ids, side="right")
        refs = []
        for a, b in zip(lo, hi):
            rows = order[a:b]
            if self.raw_tokens is not None:
                refs.append([list(self.raw_tokens[r]) for r in rows])
            else:
                refs.append(decode_tokens(self.captions[rows], self.idx_to_word))
        return refs

    def subset(self, n_images: int, seed=None) -> "CaptionDataset":
        """The captions of the first `n_images` images (or a random `n_images` when seed is given).

        Features are shared, not copied: image_idxs still index the full feature array.
        """
        ids = self.image_indices()
        if n_images >= len(ids):
            return self
        if n_images < 1:
            raise GradscopeError(f"subset needs n_images >= 1, got {n_images}")
        keep = ids[:n_images] if seed is None else np.sort(
            np.random.default_rng(seed).choice(ids, n_images, replace=False))
        rows = np.flatnonzero(np.isin(self.image_idxs, keep))
        raw = None if self.raw_tokens is None else [self.raw_tokens[r] for r in rows]
        return CaptionDataset(self.features, self.captions[rows], self.image_idxs[rows], self.word_to_idx,
                              self.idx_to_word, self.image_names, self.urls, raw, self.images, self.name)

    @staticmethod
    def _check_indices(indices, n, what):
        indices = np.asarray(indices)
        if indices.ndim == 0:
            indices = indices[None]
        if indices.ndim != 1 or (indices.size and not np.issubdtype(indices.dtype, np.integer)):
            raise GradscopeError(f"{what} indices must be a 1-D integer array, got {indices.dtype} {indices.shape}")
        if indices.size and (indices.min() < -n or indices.max() >= n):
            raise GradscopeError(f"{what} index out of range for {n} {what}s")
        return indices.astype(np.int64) % max(n, 1)


def read_rows(array, rows) -> np.ndarray:
    """array[rows] for an ndarray, memmap or h5py dataset (h5py needs sorted unique
    indices: read those, then restore the requested order and repeats)."""
    rows = np.asarray(rows, dtype=np.int64)
    if isinstance(array, np.ndarray):
        return np.asarray(array[rows])
    uniq, inverse = np.unique(rows, return_inverse=True)
    try:
        block = np.asarray(array[uniq.tolist()] if len(uniq) else array[0:0])
    except OSError as e:
        raise DataError(f"cannot read feature rows: {e}") from None
    return block[inverse.reshape(-1)]
