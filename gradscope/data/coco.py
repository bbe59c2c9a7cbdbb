"""COCO captions in two layouts, told apart by what the folder holds:

1. The official COCO 2014 files (`load_coco_images`; features computed from the photos):

    annotations/captions_train2014.json   {"images": [{id, file_name}], "annotations":
    annotations/captions_val2014.json      [{image_id, caption}]}  (or next to the folders)
    train2014/COCO_train2014_<id>.jpg     the photos; a partial download is normal:
    val2014/COCO_val2014_<id>.jpg         listed images missing on disk are skipped and counted
    dataset_coco.json                     optional Karpathy split file: when present, it
                                          selects the splits train (+restval), val and test

2. The course's preprocessed layout (`load_coco`). The course directory (`gradscope data download coco` fetches it) holds

    coco2014_captions.h5        train_captions (M, 17) int32, train_image_idxs (M,),
                                val_captions, val_image_idxs
    coco2014_vocab.json         {"idx_to_word": [...], "word_to_idx": {...}}
    train2014_vgg16_fc7.h5      features (82783, 4096) float32   (val2014_... likewise)
    train2014_vgg16_fc7_pca.h5  features (82783, 512) float32    (PCA-reduced)
    train2014_urls.txt          one image URL per feature row     (val2014_urls.txt likewise)

Features stay on disk: each split's `features` is an open h5py dataset and batches
read only their rows.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import h5py
import numpy as np

from gradscope.data.captions import CaptionDataset
from gradscope.data.features import extract_features
from gradscope.data.vocab import build_vocab, tokenize
from gradscope.errors import DataError
from gradscope.fileio import TEXT_ENCODING

__all__ = ["load_coco", "load_coco_annotations", "CocoAnnotations", "COCO_FILES", "coco_layout",
           "load_coco_images", "CocoImages", "coco_image_lists", "CocoImageList", "KARPATHY_FILE"]

COCO_FILES = {"captions": "coco2014_captions.h5", "vocab": "coco2014_vocab.json"}
KARPATHY_FILE = "dataset_coco.json"
KARPATHY_SPLITS = {"train": ("train", "restval"), "val": ("val",), "test": ("test",)}
_MISSING_HINT = "run `gradscope data download coco` or pass the coco_captioning directory"


def load_coco(base_dir, pca_features: bool = True, max_train: int | None = None, seed: int = 0,
              splits=("train", "val")) -> dict:
    """Load the course's COCO captioning data.

    Args:
        base_dir: the coco_captioning directory (or a folder that contains it).
        pca_features: use the 512-D PCA features instead of the 4096-D fc7 ones.
        max_train: keep a random max_train training captions (chosen with `seed`).
        splits: which of 'train', 'val' to load.
    Returns:
        dict split -> CaptionDataset with lazily read h5py features and urls when present.
    """
    base_dir = _find_base(os.fspath(base_dir))
    idx_to_word, word_to_idx = _read_vocab(os.path.join(base_dir, COCO_FILES["vocab"]))
    out = {}
    for split in splits:
        if split not in ("train", "val"):
            raise DataError(f"unknown COCO split {split!r}: expected 'train' or 'val'")
        captions, image_idxs = _read_captions(os.path.join(base_dir, COCO_FILES["captions"]), split)
        if split == "train" and max_train is not None and max_train < len(captions):
            keep = np.sort(np.random.default_rng(seed).choice(len(captions), max_train, replace=False))
            captions, image_idxs = captions[keep], image_idxs[keep]
        stem = f"{split}2014_vgg16_fc7{'_pca' if pca_features else ''}.h5"
        features = _open_features(os.path.join(base_dir, stem))
        urls = _read_urls(os.path.join(base_dir, f"{split}2014_urls.txt"), features.shape[0])
        names = None if urls is None else [u.rsplit("/", 1)[-1] for u in urls]
        out[split] = CaptionDataset(features, captions, image_idxs, word_to_idx, idx_to_word,
                                    image_names=names, urls=urls, name=split)
    return out


def _find_base(base_dir):
    for folder in (base_dir, os.path.join(base_dir, "coco_captioning")):
        if os.path.isfile(os.path.join(folder, COCO_FILES["captions"])):
            return folder
    if not os.path.isdir(base_dir):
        raise DataError(f"COCO directory not found: {base_dir!r} ({_MISSING_HINT})")
    raise DataError(f"not a COCO captioning directory: {base_dir!r} has no {COCO_FILES['captions']} "
                    f"({_MISSING_HINT})")


def _read_vocab(path):
    try:
        with open(path, encoding=TEXT_ENCODING) as f:
            vocab = json.load(f)
        return list(vocab["idx_to_word"]), {str(w): int(i) for w, i in vocab["word_to_idx"].items()}
    except FileNotFoundError:
        raise DataError(f"missing COCO vocabulary {path!r} ({_MISSING_HINT})") from None
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise DataError(f"corrupt COCO vocabulary {path!r}: expected JSON with idx_to_word and "
                        f"word_to_idx ({type(e).__name__}: {e})") from None


def _read_captions(path, split):
    try:
        with h5py.File(path, "r") as f:
            return np.asarray(f[f"{split}_captions"]), np.asarray(f[f"{split}_image_idxs"])
    except KeyError as e:
        raise DataError(f"corrupt COCO captions file {path!r}: no {split}_captions/{split}_image_idxs ({e})") from None
    except OSError as e:
        raise DataError(f"cannot read COCO captions file {path!r}: {e}") from None


def _open_features(path):
    if not os.path.isfile(path):
        raise DataError(f"missing COCO features {path!r} ({_MISSING_HINT})")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DataError(f"cannot read COCO features {path!r}: {e}") from None
    if "features" not in f:
        f.close()
        raise DataError(f"corrupt COCO features file {path!r}: no 'features' dataset")
    return f["features"]  # the dataset keeps the file open


def _read_urls(path, n_images):
    if not os.path.isfile(path):
        return None
    with open(path, encoding=TEXT_ENCODING) as f:
        urls = [line.strip() for line in f if line.strip()]
    if len(urls) != n_images:
        raise DataError(f"{path!r} lists {len(urls)} urls for {n_images} feature rows")
    return urls


@dataclass
class CocoAnnotations:
    """Raw COCO captions grouped by image, images sorted by id.

    image_ids: list of int; file_names: list of str; references: per image, list of token lists.
    """
    image_ids: list
    file_names: list
    references: list


def load_coco_annotations(json_path) -> CocoAnnotations:
    """Read a captions_<split>2014.json-style file ({"images": [...], "annotations": [...]})
    and tokenize every caption with gradscope.data.vocab.tokenize."""
    json_path = os.fspath(json_path)
    try:
        with open(json_path, encoding=TEXT_ENCODING) as f:
            data = json.load(f)
        images = {int(im["id"]): str(im.get("file_name", im["id"])) for im in data.get("images", [])}
        grouped: dict = {}
        for ann in data["annotations"]:
            grouped.setdefault(int(ann["image_id"]), []).append(tokenize(ann["caption"]))
    except FileNotFoundError:
        raise DataError(f"COCO annotation file not found: {json_path!r}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise DataError(f"malformed COCO annotation file {json_path!r}: expected 'annotations' entries "
                        f"with image_id and caption ({type(e).__name__}: {e})") from None
    ids = sorted(grouped)
    return CocoAnnotations(ids, [images.get(i, f"{i}") for i in ids], [grouped[i] for i in ids])


# --- the official COCO 2014 layout ---------------------------------------------------------

def coco_layout(base_dir) -> str:
    """'course' (the preprocessed h5 files) or 'images' (official json files and photos)
    for a COCO folder; DataError when it holds neither."""
    base_dir = os.fspath(base_dir)
    if not os.path.isdir(base_dir):
        raise DataError(f"COCO directory not found: {base_dir!r}")
    if any(os.path.isfile(os.path.join(d, COCO_FILES["captions"]))
           for d in (base_dir, os.path.join(base_dir, "coco_captioning"))):
        return "course"
    if os.path.isfile(os.path.join(base_dir, KARPATHY_FILE)) or any(
            _annotation_path(base_dir, s) for s in ("train", "val")):
        return "images"
    raise DataError(f"not a COCO directory: {base_dir!r} holds neither annotations/captions_<split>2014.json "
                    f"(official layout) nor {COCO_FILES['captions']} (course layout)")


@dataclass
class CocoImageList:
    """One split's photos on disk: paths (N,), references per photo (token lists), and how
    many images the annotations list that are not on disk."""
    paths: list
    references: list
    missing: int


def coco_image_lists(base_dir, splits=("train", "val")) -> dict:
    """split -> CocoImageList for an official-layout COCO folder (Karpathy splits when the
    folder holds dataset_coco.json). Images missing on disk are skipped and counted."""
    base_dir = os.fspath(base_dir)
    karpathy = os.path.join(base_dir, KARPATHY_FILE)
    entries = _karpathy_entries(karpathy) if os.path.isfile(karpathy) else None
    out = {}
    for split in splits:
        items = _karpathy_split(entries, split) if entries is not None else _official_split(base_dir, split)
        out[split] = _on_disk(base_dir, items)
    return out


def _annotation_path(base_dir, split):
    for folder in (os.path.join(base_dir, "annotations"), base_dir):
        path = os.path.join(folder, f"captions_{split}2014.json")
        if os.path.isfile(path):
            return path
    return None


def _official_split(base_dir, split):
    """[(relative image path, references)] of one split from its captions json."""
    if split not in ("train", "val"):
        raise DataError(f"COCO split {split!r} needs a Karpathy split file ({KARPATHY_FILE}); the official "
                        "layout has 'train' and 'val'")
    path = _annotation_path(base_dir, split)
    if path is None:
        raise DataError(f"missing COCO annotations annotations/captions_{split}2014.json in {base_dir!r}")
    ann = load_coco_annotations(path)
    return [(os.path.join(f"{split}2014", name), refs) for name, refs in zip(ann.file_names, ann.references)]


def _karpathy_entries(path):
    try:
        with open(path, encoding=TEXT_ENCODING) as f:
            images = json.load(f)["images"]
        return [(str(im["split"]), os.path.join(str(im["filepath"]), str(im["filename"])),
                 [tokenize(s["raw"]) if "raw" in s else [str(t) for t in s["tokens"]] for s in im["sentences"]])
                for im in images]
    except FileNotFoundError:
        raise DataError(f"Karpathy split file not found: {path!r}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise DataError(f"malformed Karpathy split file {path!r}: expected 'images' with split, filepath, "
                        f"filename and sentences ({type(e).__name__}: {e})") from None


def _karpathy_split(entries, split):
    if split not in KARPATHY_SPLITS:
        raise DataError(f"unknown COCO split {split!r}: expected one of {', '.join(KARPATHY_SPLITS)}")
    return [(rel, refs) for s, rel, refs in entries if s in KARPATHY_SPLITS[split]]


def _on_disk(base_dir, items):
    """CocoImageList of the items whose file exists (one directory listing per folder)."""
    listed: dict = {}
    paths, refs = [], []
    for rel, r in items:
        folder, name = os.path.split(rel)
        if folder not in listed:
            full = os.path.join(base_dir, folder)
            listed[folder] = set(os.listdir(full)) if os.path.isdir(full) else set()
        if name in listed[folder]:
            paths.append(os.path.join(base_dir, rel))
            refs.append(r)
    return CocoImageList(paths, refs, len(items) - len(paths))


@dataclass
class CocoImages:
    """Splits of an official-layout COCO folder: split -> CaptionDataset, and split ->
    number of listed images missing on disk (skipped)."""
    splits: dict
    missing: dict


def load_coco_images(base_dir, feature_fn, feature_cache=None, splits=("train", "val"), vocab=None,
                     min_count: int = 5, max_length: int = 16, image_size=None, batch_size: int = 64,
                     progress=None) -> CocoImages:
    """Official COCO 2014 files (or Karpathy splits) as CaptionDatasets with features of the photos.

    Args:
        base_dir: the COCO folder (see the module docstring).
        feature_fn: callable (B, H, W, 3) uint8 -> (B, D) features.
        feature_cache: optional HDF5 cache path (gradscope.data.features), keyed by file name.
        splits: split names ('train', 'val'; 'test' with a Karpathy file).
        vocab: (word_to_idx, idx_to_word); default: built from the train split's captions
            (min_count), or from the loaded splits' when train is not loaded.
        image_size: int or callable preparing each photo (see extract_features).
        progress: optional callable(split, done, total) during feature extraction.
    Returns:
        CocoImages; a split with no photo on disk is a DataError.
    """
    lists = coco_image_lists(base_dir, splits)
    if vocab is None:
        source = [lists["train"]] if "train" in lists else lists.values()
        vocab = build_vocab((r for images in source for refs in images.references for r in refs), min_count)
    word_to_idx, idx_to_word = vocab
    out = {}
    for split, images in lists.items():
        if not images.paths:
            raise DataError(f"none of the {images.missing} {split} images listed for {os.fspath(base_dir)!r} "
                            f"is on disk")
        cb = None if progress is None else (lambda done, total, s=split: progress(s, done, total))
        feats = extract_features(images.paths, feature_fn, batch_size, feature_cache, image_size, cb)
        out[split] = CaptionDataset.from_references(feats, images.references, word_to_idx, idx_to_word,
                                                    max_length, image_names=[os.path.basename(p) for p in
                                                                             images.paths], name=split)
    return CocoImages(out, {s: images.missing for s, images in lists.items()})

