"""Batched image feature extraction with a resumable HDF5 cache.

Cache layout (one HDF5 file): dataset `names` (N,) utf-8 file names and dataset
`features` (N, D) float32, row i belonging to names[i]. Entries are keyed by file
name (not full path), so one cache serves every split of a data set.

While extracting, finished batches are appended to `<cache>.part` (flushed after each
batch); a killed run resumes from it. At the end the old cache and the new rows are
written together to the cache path atomically and the .part file is removed.
"""
from __future__ import annotations

import os

import h5py
import numpy as np

from gradscope.data.tinyimagenet import load_rgb
from gradscope.errors import DataError, GradscopeError
from gradscope.fileio import atomic_path

__all__ = ["extract_features", "read_feature_cache", "pixel_features"]


def extract_features(image_paths, feature_fn, batch_size: int = 64, cache_path=None,
                     image_size: int | None = None, progress=None, dtype=np.float32) -> np.ndarray:
    """Features of image files, computed in batches.

    Args:
        image_paths: N image files (grayscale/palette images are converted to RGB).
        feature_fn: callable (B, H, W, 3) uint8 -> (B, D) array.
        batch_size: images per feature_fn call.
        cache_path: optional HDF5 cache (see module docstring); cached names are not recomputed.
        image_size: an int resizes every image to image_size x image_size; a callable
            (H, W, 3) uint8 -> (S, S, 3) uint8 prepares each image (e.g. resize and centre-crop);
            one of them is needed when sizes differ.
        progress: optional callable(done, total) over the images still to compute.
        dtype: of the features returned and of a new cache (float16 halves a spatial map's memory).
    Returns:
        (N, D) features in the order of image_paths.
    """
    paths = [os.fspath(p) for p in image_paths]
    if batch_size < 1:
        raise GradscopeError(f"batch_size must be >= 1, got {batch_size}")
    names = [os.path.basename(p) for p in paths]
    cached, resumed = ({}, False) if cache_path is None else _read_caches(cache_path)
    todo = [i for i, n in enumerate(names) if n not in cached]
    dim = next(iter(cached.values())).shape[0] if cached else None
    new = _compute(paths, todo, feature_fn, batch_size, image_size, progress, cache_path, dim, dtype)
    cached.update(new)
    if cache_path is not None and (new or resumed):
        _write_cache(cache_path, cached, dtype)
    if not paths:
        return np.zeros((0, 0), dtype=dtype)
    return np.stack([cached[n] for n in names]).astype(dtype, copy=False)  # (N, D)


def _compute(paths, todo, feature_fn, batch_size, image_size, progress, cache_path, dim, dtype=np.float32):
    """Run feature_fn over paths[todo]; returns {name: (D,) features}, appending to the .part file."""
    out = {}
    part = None
    try:
        for start in range(0, len(todo), batch_size):
            chunk = [paths[i] for i in todo[start:start + batch_size]]
            feats = _run_batch(feature_fn, _load_batch(chunk, image_size), len(chunk)).astype(dtype, copy=False)
            if dim is not None and feats.shape[1] != dim:
                raise DataError(_dim_message(feats.shape[1], dim, cache_path, cached=start == 0))
            dim = feats.shape[1]
            if cache_path is not None and part is None:
                part = _open_part(os.fspath(cache_path) + ".part", dim, dtype)
            if part is not None:
                _append(part, [os.path.basename(p) for p in chunk], feats)
            out.update(zip((os.path.basename(p) for p in chunk), feats))
            if progress is not None:
                progress(min(start + batch_size, len(todo)), len(todo))
    finally:
        if part is not None:
            part.close()
    return out


def _dim_message(got, dim, cache_path, cached):
    if cached:
        return (f"feature_fn returns {got} features but the cache {os.fspath(cache_path)!r} holds {dim}: "
                f"delete it or use another cache")
    return f"feature_fn returned {dim} features for one batch and {got} for another"


def _load_batch(paths, image_size):
    if callable(image_size):
        images = [image_size(load_rgb(p)) for p in paths]
    else:
        images = [load_rgb(p, image_size) for p in paths]
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise DataError(f"images of different sizes {sorted(shapes)} in one batch: pass image_size "
                        f"to resize them (first file {paths[0]!r})")
    return np.stack(images)  # (B, H, W, 3)


def _run_batch(feature_fn, images, n):
    feats = np.asarray(feature_fn(images))
    if feats.ndim != 2 or feats.shape[0] != n:
        raise GradscopeError(f"feature_fn must return a ({n}, D) array for {n} images, got shape {feats.shape}")
    return feats.astype(np.float32, copy=False)


def read_feature_cache(cache_path) -> dict:
    """{file name: (D,) float32 features} from a cache file (empty dict if it does not exist)."""
    cache_path = os.fspath(cache_path)
    if not os.path.exists(cache_path):
        return {}
    try:
        with h5py.File(cache_path, "r") as f:
            names = f["names"].asstr()[()]
            feats = f["features"][()]
    except (OSError, KeyError) as e:
        raise DataError(f"corrupt feature cache {cache_path!r} ({e}): delete it to recompute") from None
    if len(names) != len(feats):
        raise DataError(f"corrupt feature cache {cache_path!r}: {len(names)} names for {len(feats)} rows")
    return dict(zip(names, feats))


def _read_caches(cache_path):
    """(finished cache plus what a killed run left in the .part file, whether there was such a part)."""
    cached = read_feature_cache(cache_path)
    part = os.fspath(cache_path) + ".part"
    try:
        partial = read_feature_cache(part)
    except DataError:
        os.remove(part)  # a run killed mid-write can leave it unreadable: start that part over
        partial = {}
    dims = {v.shape for v in list(cached.values())[:1] + list(partial.values())[:1]}
    if len(dims) > 1:
        raise DataError(f"feature cache {os.fspath(cache_path)!r} and its .part file hold features of "
                        f"different sizes: delete them")
    cached.update(partial)
    return cached, bool(partial)


def _open_part(path, dim, dtype=np.float32):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    f = h5py.File(path, "a")
    if "features" not in f:
        f.create_dataset("names", shape=(0,), maxshape=(None,), dtype=h5py.string_dtype())
        f.create_dataset("features", shape=(0, dim), maxshape=(None, dim), dtype=dtype, chunks=True)
    elif f["features"].shape[1] != dim:
        held = f["features"].shape[1]
        f.close()
        raise DataError(f"feature_fn returns {dim} features but {path!r} holds {held}: delete it")
    return f


def _append(f, names, feats):
    n0 = len(f["names"])
    f["names"].resize((n0 + len(names),))
    f["features"].resize((n0 + len(names), feats.shape[1]))
    f["features"][n0:] = feats
    f["names"][n0:] = names  # names last: a row counts as done only once its name is there
    f.flush()


def _write_cache(cache_path, cached, dtype=np.float32):
    with atomic_path(cache_path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("names", data=list(cached), dtype=h5py.string_dtype())
            f.create_dataset("features", data=np.stack(list(cached.values())).astype(dtype))
    part = os.fspath(cache_path) + ".part"
    if os.path.exists(part):
        os.remove(part)


def pixel_features(images, size: int = 8) -> np.ndarray:
    """A baseline feature_fn: images (N, H, W, 3) uint8 box-downsampled to size x size,
    flattened and scaled to [0, 1] -> (N, size*size*3) float32."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise GradscopeError(f"images must be (N, H, W, 3), got shape {images.shape}")
    n, h, w, _ = images.shape
    if h < size or w < size:
        raise GradscopeError(f"images of {h}x{w} are smaller than the {size}x{size} feature grid")
    rows = np.array_split(np.arange(h), size)
    cols = np.array_split(np.arange(w), size)
    out = np.empty((n, size, size, 3), dtype=np.float32)  # (N, s, s, 3)
    for i, r in enumerate(rows):
        band = images[:, r].astype(np.float32)
        for j, c in enumerate(cols):
            out[:, i, j] = band[:, :, c].mean(axis=(1, 2)) / 255.0
    return out.reshape(n, -1)
