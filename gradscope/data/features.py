"""Batched image feature extraction with a resumable HDF5 cache keyed by content.

Cache layout (one HDF5 file, attribute format = "gradscope-features-v2"): one group per
extractor, named by a hash of the extractor's identity (attribute `extractor`: the feature
function's fingerprint, the image preparation and the storage dtype), holding dataset
`keys` (N,) (the sha256 of each image file's bytes) and dataset `features` (N, D) in the
storage dtype (float32, or float16 to halve the size of large maps). A row is used only
for the same bytes through the same extractor: a renamed, replaced or corrupted file, a
second folder with the same file names, or another CNN never gets another image's features.

feature_fn identity: its `cache_key()` or `fingerprint()` when it has one (a string naming
its weights and preprocessing), else its qualified name and code.

While extracting, finished batches are appended to this run's `<cache>.part-<pid>` (plain
records: header length, JSON header with the keys, the rows' bytes; a record cut short by a
kill or a full disk is skipped); a killed run's part file is picked up by the next run. At the end the part files
are merged into the cache under the lock file `<cache>.lock` (a second run waits for it,
up to LOCK_TIMEOUT seconds) and the cache, built in memory, is replaced atomically, so two concurrent runs on
one cache never see a half-written file. The cache is optional: when its folder is
read-only, the disk is full or the lock is not released, the features are computed and
returned all the same, and a CacheWarning names the file.
"""
from __future__ import annotations

import functools
import glob
import hashlib
import io
import os
import warnings

import h5py
import numpy as np

from gradscope.data.tinyimagenet import load_rgb
from gradscope.errors import DataError, GradscopeError
from gradscope.fileio import _process_alive, atomic_path, file_lock

__all__ = ["extract_features", "read_feature_cache", "pixel_features", "extractor_id", "CacheWarning"]

FORMAT = "gradscope-features-v2"
LOCK_TIMEOUT = 120.0  # seconds a run waits for another run's merge into the same cache
STORAGE_DTYPES = (np.float32, np.float16)


class CacheWarning(UserWarning):
    """A feature cache that could not be used or updated (the features are computed anyway)."""


def extract_features(image_paths, feature_fn, batch_size: int = 64, cache_path=None,
                     image_size: int | None = None, progress=None, dtype=np.float32) -> np.ndarray:
    """Features of image files, computed in batches.

    Args:
        image_paths: N image files (grayscale/palette images are converted to RGB).
        feature_fn: callable (B, H, W, 3) uint8 -> (B, D) array (see the module docstring for
            how it is identified in the cache).
        batch_size: images per feature_fn call.
        cache_path: optional HDF5 cache (see module docstring); images whose bytes were
            cached by the same extractor are not recomputed.
        image_size: an int resizes every image to image_size x image_size; a callable
            (H, W, 3) uint8 -> (S, S, 3) uint8 prepares each image (e.g. resize and centre-crop);
            one of them is needed when sizes differ.
        progress: optional callable(done, total) over the images still to compute.
        dtype: float32 (default) or float16: how the features are stored and returned.
    Returns:
        (N, D) features of `dtype` in the order of image_paths.
    """
    paths = [os.fspath(p) for p in image_paths]
    if batch_size < 1:
        raise GradscopeError(f"batch_size must be >= 1, got {batch_size}")
    dtype = np.dtype(dtype)
    if dtype not in [np.dtype(d) for d in STORAGE_DTYPES]:
        raise GradscopeError(f"feature dtype must be float32 or float16, got {dtype}")
    if not paths:
        return np.zeros((0, 0), dtype=dtype)
    cache = None if cache_path is None else _Cache(os.fspath(cache_path), extractor_id(feature_fn, image_size, dtype))
    keys = [_content_key(p) for p in paths] if cache is not None else list(range(len(paths)))
    found = cache.lookup(set(keys)) if cache is not None else {}
    todo = sorted({k: i for i, k in reversed(list(enumerate(keys))) if k not in found}.values())
    rows = _compute(paths, [keys[i] for i in todo], todo, feature_fn, batch_size, image_size, progress, cache, dtype)
    dims = {v.shape[0] for v in list(found.values())[:1] + list(rows.values())[:1]}
    if len(dims) > 1:  # the cached rows came from an older feature_fn of the same name: recompute them too
        stale = sorted({k: i for i, k in enumerate(keys) if k not in rows}.values())
        rows.update(_compute(paths, [keys[i] for i in stale], stale, feature_fn, batch_size, image_size, None, cache,
                             dtype))
    found.update(rows)
    if cache is not None:
        cache.merge()
    return np.stack([found[k] for k in keys]).astype(dtype, copy=False)  # (N, D)


def extractor_id(feature_fn, image_size=None, dtype=np.float32) -> str:
    """The identity of an extractor in the cache: feature function, image preparation, storage dtype."""
    return f"fn={_callable_id(feature_fn)}|prepare={_callable_id(image_size)}|dtype={np.dtype(dtype).name}"


def _callable_id(obj) -> str:
    if obj is None or isinstance(obj, (int, np.integer)):
        return repr(None if obj is None else int(obj))
    for attr in ("cache_key", "fingerprint"):
        method = getattr(obj, attr, None)
        if callable(method):
            return f"{type(obj).__qualname__}:{method()}"
    if isinstance(obj, functools.partial):
        return f"partial({_callable_id(obj.func)}, {obj.args!r}, {sorted(obj.keywords.items())!r})"
    code = getattr(obj, "__code__", None) or getattr(getattr(type(obj), "__call__", None), "__code__", None)
    name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    module = getattr(obj, "__module__", None) or type(obj).__module__
    digest = "" if code is None else hashlib.sha1(code.co_code + repr(code.co_consts).encode()).hexdigest()[:12]
    return f"{module}.{name}:{digest}"


def _content_key(path) -> str:
    """sha256 of a file's bytes (DataError naming a missing or unreadable file)."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except FileNotFoundError:
        raise DataError(f"image file not found: {path!r}") from None
    except IsADirectoryError:
        raise DataError(f"expected an image file, got a directory: {path!r}") from None
    except OSError as e:
        raise DataError(f"cannot read image {path!r}: {e.strerror or e}") from None
    return h.hexdigest()[:32]


def _compute(paths, keys, todo, feature_fn, batch_size, image_size, progress, cache, dtype):
    """Run feature_fn over paths[todo]; returns {key: (D,) features}, appending to the cache's part file."""
    out, dim = {}, None
    try:
        for start in range(0, len(todo), batch_size):
            chunk = [paths[i] for i in todo[start:start + batch_size]]
            feats = _run_batch(feature_fn, _load_batch(chunk, image_size), len(chunk)).astype(dtype)
            if dim is not None and feats.shape[1] != dim:
                raise DataError(f"feature_fn returned {dim} features for one batch and {feats.shape[1]} for another")
            dim = feats.shape[1]
            chunk_keys = keys[start:start + batch_size]
            if cache is not None:
                cache.append(chunk_keys, feats)
            out.update(zip(chunk_keys, feats))
            if progress is not None:
                progress(min(start + batch_size, len(todo)), len(todo))
    finally:
        if cache is not None:
            cache.close_part()
    return out


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
    if not np.isfinite(feats).all():
        raise DataError(f"feature_fn returned NaN or infinite features for one of {n} images "
                        f"(first file of the batch: its weights or the images are broken)")
    return feats


def read_feature_cache(cache_path, extractor: str | None = None) -> dict:
    """{content key: (D,) features} from a cache or part file (empty dict if it does not exist),
    of one extractor (an extractor_id) or, by default, of all. Raises DataError for an unreadable file."""
    groups = _read_groups(os.fspath(cache_path))
    out = {}
    for ext, (keys, feats) in groups.items():
        if extractor is None or ext == extractor:
            out.update(zip(keys, feats))
    return out


def _open_read(path):
    return h5py.File(path, "r", locking=False)  # the file is only ever replaced whole, never written in place


def _read_groups(path, wanted=None) -> dict:
    """{extractor: (keys list, features)} of a cache or part file; features read for `wanted`
    extractors only when given (others: None)."""
    if not os.path.exists(path):
        return {}
    if _is_part(path):
        return _read_part(path)
    try:
        with _open_read(path) as f:
            if f.attrs.get("format") != FORMAT:
                return {}  # an older cache keyed by file name: not trusted, replaced at the next merge
            out = {}
            for g in f.values():
                ext = str(g.attrs["extractor"])
                keys = list(g["keys"].asstr()[()])
                if len(g["features"]) < len(keys):
                    raise KeyError(f"{len(keys)} keys for {len(g['features'])} rows")
                keep = [i for i, k in enumerate(keys) if k]  # a run killed between resizing and writing keys
                feats = g["features"][:len(keys)][keep] if wanted is None or ext in wanted else None
                out[ext] = ([keys[i] for i in keep], feats)
            return out
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise DataError(f"corrupt feature cache {path!r} ({e})") from None


def _group_name(extractor: str) -> str:
    return hashlib.sha1(extractor.encode()).hexdigest()[:16]


class _Cache:
    """One run's view of a feature cache: lookups, its part file, the final merge."""

    def __init__(self, path, extractor):
        self.path, self.extractor = path, extractor
        self.part_path = f"{path}.part-{os.getpid()}"
        self.part = None
        self.writable = True

    def _warn(self, what):
        warnings.warn(f"feature cache {self.path!r}: {what}; the features are computed without it", CacheWarning,
                      stacklevel=4)

    def _sources(self):
        """The cache, then part files left by runs that no longer run (and this run's)."""
        parts = [p for p in glob.glob(glob.escape(self.path) + ".part-*") if p.rpartition("-")[2].isdigit()
                 and (p == self.part_path or not _process_alive(int(p.rpartition("-")[2])))]
        return [self.path] + sorted(parts)

    def lookup(self, wanted: set) -> dict:
        found = {}
        for src in self._sources():
            try:
                group = _read_groups(src, wanted={self.extractor}).get(self.extractor)
            except DataError as e:
                if src == self.path:
                    self._warn(f"unreadable ({e}); it will be replaced")
                continue
            if group is None:
                continue
            keys, feats = group
            if found and feats.shape[1] != next(iter(found.values())).shape[0]:
                continue  # a killed run of an older feature_fn with the same name: ignore its rows
            found.update((k, feats[i]) for i, k in enumerate(keys) if k in wanted)
        return found

    def append(self, keys, feats):
        """Append rows to this run's part file (one record; a run killed mid-record leaves a
        truncated record that readers skip). A failed write turns the cache off for this run."""
        if not self.writable:
            return
        try:
            if self.part is None:
                os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
                self.part = open(self.part_path, "ab")
                if self.part.tell() == 0:
                    self.part.write(PART_MAGIC)
            self.part.write(_part_record(self.extractor, keys, feats))
            self.part.flush()
        except OSError as e:
            self.writable = False
            self.close_part()
            _remove(self.part_path)
            self._warn(f"cannot write beside it ({e.strerror or e})")

    def close_part(self):
        if self.part is not None:
            try:
                self.part.close()
            except OSError:
                pass
            self.part = None

    def merge(self):
        """Merge this run's and dead runs' part files into the cache, under its lock."""
        if not self.writable:
            return
        if not self._sources()[1:]:
            return
        with file_lock(self.path + ".lock", LOCK_TIMEOUT) as held:
            if not held:
                self._warn(f"gave up waiting for {self.path + '.lock'!r} after {LOCK_TIMEOUT:.0f} s (or it cannot be "
                           "created); this run's features stay in its part file")
                return
            parts = [p for p in self._sources()[1:] if os.path.exists(p)]
            if not parts:
                return
            try:
                _merge_files(self.path, parts)
            except DataError as e:
                self._warn(str(e))
                return
            except OSError as e:
                self._warn(f"cannot be written ({e.strerror or e})")
                return
            for p in parts:
                _remove(p)


PART_MAGIC = b"gradscope-feature-part-v1\n"


def _is_part(path) -> bool:
    with open(path, "rb") as f:
        return f.read(len(PART_MAGIC)) == PART_MAGIC


def _part_record(extractor, keys, feats) -> bytes:
    """One record of a part file: 8-byte header length, JSON header, the rows' bytes."""
    import json

    feats = np.ascontiguousarray(feats)
    header = json.dumps({"extractor": extractor, "dtype": feats.dtype.str, "shape": list(feats.shape),
                         "keys": list(keys)}).encode()
    return len(header).to_bytes(8, "little") + header + feats.tobytes()


def _read_part(path) -> dict:
    """{extractor: (keys, features)} of a part file; a truncated last record is skipped."""
    import json

    with open(path, "rb") as f:
        data = f.read()
    pos, out = len(PART_MAGIC), {}
    while pos + 8 <= len(data):
        n = int.from_bytes(data[pos:pos + 8], "little")
        try:
            head = json.loads(data[pos + 8:pos + 8 + n])
            rows = np.frombuffer(data, np.dtype(head["dtype"]), int(np.prod(head["shape"])), pos + 8 + n)
        except (ValueError, KeyError, TypeError):
            break  # a record cut short by a kill or a full disk
        pos += 8 + n + rows.nbytes
        keys, feats = out.get(head["extractor"], ([], None))
        rows = rows.reshape(head["shape"])
        if feats is not None and (feats.shape[1] != rows.shape[1] or feats.dtype != rows.dtype):
            keys, feats = [], None  # rows of an older feature_fn of the same name
        out[head["extractor"]] = (keys + list(head["keys"]), rows if feats is None else np.concatenate([feats, rows]))
    return out


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _merge_files(path, parts):
    """Write cache + parts' rows (deduplicated by key, latest dimension wins) to `path` atomically."""
    merged = {}
    try:
        merged = _read_groups(path)
    except DataError:
        merged = {}
    for part in parts:
        try:
            groups = _read_groups(part)
        except DataError:
            continue  # a run killed mid-write: its rows are lost, the others are fine
        for ext, (keys, feats) in groups.items():
            old_keys, old_feats = merged.get(ext, ([], None))
            if old_feats is None or old_feats.shape[1] != feats.shape[1] or old_feats.dtype != feats.dtype:
                old_keys, old_feats = [], np.zeros((0, feats.shape[1]), feats.dtype)
            have = set(old_keys)
            new = [i for i, k in enumerate(keys) if k not in have and not have.add(k)]
            merged[ext] = (old_keys + [keys[i] for i in new], np.concatenate([old_feats, feats[new]]))
    image = io.BytesIO()  # HDF5 writes into memory; Python writes the file (a full disk is then an OSError,
    with h5py.File(image, "w") as f:  # never a library left holding a half-written file)
        f.attrs["format"] = FORMAT
        for ext, (keys, feats) in merged.items():
            g = f.create_group(_group_name(ext))
            g.attrs["extractor"] = ext
            g.create_dataset("keys", data=keys, dtype=h5py.string_dtype())
            g.create_dataset("features", data=feats)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as out:
            out.write(image.getbuffer())


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
