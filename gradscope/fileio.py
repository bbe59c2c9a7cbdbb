"""Atomic file writing: write to a temporary file beside the target, then rename,
so that a killed run never leaves a half-written file."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile

import numpy as np


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path in the target's directory; rename it to `path` on success."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    suffix = os.path.splitext(path)[1]
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=folder)
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_json(path, obj) -> None:
    """Write obj as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=1)


def save_npz(path, arrays: dict, compressed: bool = True) -> None:
    """Write a dict of arrays to .npz, atomically (never pickles)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            (np.savez_compressed if compressed else np.savez)(f, **arrays)


def load_npz(path) -> dict:
    """Read a .npz written by save_npz into a dict (allow_pickle=False)."""
    from gradscope.errors import DataError

    try:
        with np.load(os.fspath(path), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise DataError(f"file not found: {os.fspath(path)!r}") from None
    except (OSError, ValueError) as e:
        raise DataError(f"corrupt or unreadable .npz file {os.fspath(path)!r}: {e}") from None


def json_array(obj) -> np.ndarray:
    """obj as UTF-8 JSON in a uint8 array, so that an .npz can carry metadata without pickle."""
    return np.frombuffer(json.dumps(obj).encode("utf-8"), dtype=np.uint8)


def read_json_array(arrays: dict, key: str, path, fmt: str, what: str) -> dict:
    """The JSON dict stored by json_array under `key`; its 'format' must be `fmt`.
    Raises DataError naming the file (`what` says what kind of file it should be)."""
    from gradscope.errors import DataError

    try:
        meta = json.loads(arrays[key].tobytes().decode("utf-8"))
    except (KeyError, ValueError):
        raise DataError(f"{path!r} is not a {what} (no readable metadata)") from None
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise DataError(f"{path!r} has format {found!r}, expected {fmt!r}")
    return meta


def cache_dir(*parts) -> str:
    """gradscope's user cache folder ($GRADSCOPE_CACHE, else ~/.cache/gradscope), joined with parts."""
    root = os.environ.get("GRADSCOPE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "gradscope")
    return os.path.join(root, *parts)
