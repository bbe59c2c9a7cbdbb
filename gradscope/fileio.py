"""Atomic file writing: write to a temporary file beside the target, then rename,
so that a killed run never leaves a half-written file."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
import zipfile
import zlib

import numpy as np


TEMP_PREFIX = ".tmp-"
_LEGACY_AGE = 3600.0  # seconds: a temporary file without a writer's pid older than this is stale


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path in the target's directory; rename it to `path` on success.

    The temporary file is `.tmp-<pid>-<name>-<random><ext>`; temporary files for the same
    target left by a killed writer (whose process is gone) are deleted first."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    name = os.path.basename(path)
    clean_stale_temp_files(folder, name)
    fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-{name}-", suffix=os.path.splitext(path)[1],
                               dir=folder)
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file normal permissions
        _fsync(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _fsync(path) -> None:
    """Flush a written file to disk, so the rename never publishes a file the OS has not stored."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def clean_stale_temp_files(folder, name: str | None = None) -> list:
    """Delete temporary files of atomic_path in `folder` (only those for target `name` when
    given) whose writing process no longer runs; returns the deleted paths."""
    removed = []
    try:
        entries = os.listdir(folder)
    except OSError:
        return removed
    for entry in entries:
        if entry.startswith(TEMP_PREFIX) and _is_stale(folder, entry, name):
            try:
                os.remove(os.path.join(folder, entry))
                removed.append(os.path.join(folder, entry))
            except OSError:
                pass  # another process cleaned it, or it is not ours to delete
    return removed


def _is_stale(folder, entry: str, name) -> bool:
    pid, _, rest = entry[len(TEMP_PREFIX):].partition("-")
    if not pid.isdigit():  # written before temporary names carried a pid
        age = _age(os.path.join(folder, entry))
        return name is None and age is not None and age > _LEGACY_AGE
    if name is not None and not rest.startswith(name + "-"):
        return False
    return not _process_alive(int(pid))


def _age(path):
    try:
        return time.time() - os.path.getmtime(path)
    except OSError:
        return None


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # a process of another user
    return True


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
    except IsADirectoryError:
        raise DataError(f"expected an .npz file, got a directory: {os.fspath(path)!r}") from None
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
        detail = "the file is empty" if isinstance(e, EOFError) else str(e) or type(e).__name__
        raise DataError(f"corrupt or truncated .npz file {os.fspath(path)!r} ({detail}); "
                        "replace it with a good copy") from None


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
