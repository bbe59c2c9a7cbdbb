"""COCO captions in the course's preprocessed layout, and raw COCO annotation files.

The course directory (`gradscope data download coco` fetches it) holds

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
from gradscope.data.vocab import tokenize
from gradscope.errors import DataError

__all__ = ["load_coco", "load_coco_annotations", "CocoAnnotations", "COCO_FILES"]

COCO_FILES = {"captions": "coco2014_captions.h5", "vocab": "coco2014_vocab.json"}
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
        with open(path, encoding="utf-8") as f:
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
    with open(path, encoding="utf-8") as f:
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
        with open(json_path, encoding="utf-8") as f:
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
