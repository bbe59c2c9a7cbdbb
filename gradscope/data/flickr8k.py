"""Flickr8k in its text-release layout.

    root/Flickr8k.token.txt          <name>.jpg#<0-4>\\t<caption>   (five captions per image)
    root/Flickr_8k.trainImages.txt   image names of a split, one per line
    root/Flickr_8k.devImages.txt     (split 'val')
    root/Flickr_8k.testImages.txt    (split 'test')
    root/images/<name>.jpg           or root/Flicker8k_Dataset/<name>.jpg

The text files may also sit in root/Flickr8k_text/. A directory may hold only some
split files: a missing one is an error only when its split is asked for.
"""
from __future__ import annotations

import os

from gradscope.data.captions import CaptionDataset
from gradscope.data.features import extract_features, pixel_features
from gradscope.data.vocab import build_vocab, check_vocab, tokenize
from gradscope.errors import DataError
from gradscope.fileio import TEXT_ENCODING

__all__ = ["load_flickr8k", "read_flickr8k_tokens", "read_split_names", "SPLIT_FILES"]

TOKEN_FILE = "Flickr8k.token.txt"
SPLIT_FILES = {"train": "Flickr_8k.trainImages.txt", "val": "Flickr_8k.devImages.txt",
               "test": "Flickr_8k.testImages.txt"}
IMAGE_DIRS = ("images", "Flicker8k_Dataset", "Flickr8k_Dataset")


def load_flickr8k(root, feature_fn=None, feature_cache=None, min_count: int = 5, max_length: int = 16,
                  vocab=None, splits=None, image_size: int | None = 224, batch_size: int = 64,
                  progress=None, feature_dtype="float32") -> dict:
    """Load Flickr8k splits as CaptionDatasets.

    Args:
        root: the Flickr8k directory.
        feature_fn: callable (B, H, W, 3) uint8 -> (B, D) features (default: pixel_features,
            an 8x8 colour thumbnail; a baseline only).
        feature_cache: optional HDF5 cache path shared by all splits (see data/features.py).
        min_count: training words rarer than this become <UNK>.
        max_length: longest caption kept, in words (longer ones are truncated).
        vocab: optional (word_to_idx, idx_to_word); default built from the train split only.
        splits: split names to load (default: every split whose file exists).
        image_size: resize images to this square size before feature_fn (None: keep).
        progress: optional callable(split, done, total) during feature extraction.
        feature_dtype: of the features held (and of a new cache), e.g. float16 for spatial maps.
    Returns:
        dict split -> CaptionDataset (features in memory, image_names = file names).
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise DataError(f"Flickr8k directory not found: {root!r}")
    captions = read_flickr8k_tokens(_text_path(root, TOKEN_FILE, required=True))
    if splits is None:
        splits = [s for s, f in SPLIT_FILES.items() if _text_path(root, f) is not None]
        if not splits:
            raise DataError(f"no split files ({', '.join(SPLIT_FILES.values())}) in {root!r}")
    names = {s: read_split_names(root, s) for s in splits}
    if vocab is None:
        train = names["train"] if "train" in names else read_split_names(root, "train")
        vocab = build_vocab((t for n in train for t in _refs(captions, n, root)), min_count)
    word_to_idx, idx_to_word = vocab
    check_vocab(word_to_idx, idx_to_word)
    image_dir = _image_dir(root)
    out = {}
    for split, split_names in names.items():
        refs = [_refs(captions, n, root) for n in split_names]
        cb = None if progress is None else (lambda done, total, s=split: progress(s, done, total))
        feats = extract_features([os.path.join(image_dir, n) for n in split_names],
                                 feature_fn or pixel_features, batch_size, feature_cache, image_size, cb,
                                 dtype=feature_dtype)
        out[split] = CaptionDataset.from_references(feats, refs, word_to_idx, idx_to_word, max_length,
                                                    image_names=list(split_names), name=split)
    return out


def read_flickr8k_tokens(path) -> dict:
    """{image name: [token list, ...]} from Flickr8k.token.txt, captions in #-number order."""
    numbered: dict = {}
    for lineno, line in enumerate(_read_lines(path), 1):
        if not line.strip():
            continue
        key, sep, caption = line.rstrip("\n").partition("\t")
        name, hash_, num = key.rpartition("#")  # the last '#': a file name may hold one
        if not sep or not hash_ or not num.strip().isdigit():
            raise DataError(f"{path}:{lineno}: expected '<name>.jpg#<n>\\t<caption>', got {line.strip()[:80]!r}")
        numbered.setdefault(name.strip(), []).append((int(num), tokenize(caption)))
    return {name: [t for _, t in sorted(caps, key=lambda c: c[0])] for name, caps in numbered.items()}


def read_split_names(root, split) -> list:
    """Image names listed in the split's file (DataError naming the file if it is missing)."""
    if split not in SPLIT_FILES:
        raise DataError(f"unknown Flickr8k split {split!r}: expected one of {list(SPLIT_FILES)}")
    path = _text_path(os.fspath(root), SPLIT_FILES[split], required=True)
    names = [line.strip() for line in _read_lines(path) if line.strip()]
    if not names:
        raise DataError(f"split file {path!r} lists no images")
    return names


def _read_lines(path) -> list:
    try:
        with open(path, encoding=TEXT_ENCODING) as f:
            return f.readlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read Flickr8k file {path!r} as UTF-8 text: {e}") from None


def _text_path(root, filename, required=False):
    for folder in (root, os.path.join(root, "Flickr8k_text")):
        path = os.path.join(folder, filename)
        if os.path.isfile(path):
            return path
    if required:
        raise DataError(f"missing Flickr8k file {filename!r} in {root!r} (or its Flickr8k_text/ folder)")
    return None


def _image_dir(root):
    for name in IMAGE_DIRS:
        if os.path.isdir(os.path.join(root, name)):
            return os.path.join(root, name)
    raise DataError(f"no Flickr8k image folder in {root!r}: expected one of {', '.join(IMAGE_DIRS)}")


def _refs(captions, name, root):
    if name not in captions:
        raise DataError(f"image {name!r} of a split file has no captions in {TOKEN_FILE} under {root!r}")
    return captions[name]
