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
# how data text files (caption lists, split files, class lists, annotation JSON) are read:
# UTF-8, with the byte-order mark some editors write at the start removed
TEXT_ENCODING = "utf-8-sig"
_MAX_TEMP_NAME, _MAX_TEMP_EXT = 80, 16  # bytes of the target's name and extension kept in a temporary name
_LEGACY_AGE = 3600.0  # seconds: a temporary file without a writer's pid older than this is stale


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path in the target's directory; rename it to `path` on success.

    The temporary file is `.tmp-<pid>-<name>-<random><ext>` (name and ext shortened so that
    a target name of up to 255 bytes still gives a legal temporary name); temporary files for the same
    target left by a killed writer (whose process is gone) are deleted first."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    name = os.path.basename(path)
    clean_stale_temp_files(folder, name)
    fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-{temp_stem(name)}-",
                               suffix=os.path.splitext(path)[1][:_MAX_TEMP_EXT], dir=folder)
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file normal permissions
        _fsync(tmp)
        os.replace(tmp, path)
    except OSError as e:  # full disk, file-size limit, ...: name the file the user asked for
        from gradscope.errors import DataError

        if e.errno is None or isinstance(e, FileNotFoundError):
            raise
        raise DataError(f"cannot write {path!r}: {e.strerror or e} (check free disk space, quotas and "
                        "`ulimit -f`)") from e
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def temp_stem(name: str) -> str:
    """The part of a target's file name that its temporary files carry: the name itself when
    short, else its first bytes and a hash of the whole (so that the pid, random part and
    extension still fit in the file system's 255-byte limit)."""
    if len(name.encode("utf-8")) <= _MAX_TEMP_NAME:
        return name
    import hashlib

    head = name.encode("utf-8")[:_MAX_TEMP_NAME - 13].decode("utf-8", "ignore")
    return f"{head}~{hashlib.sha1(name.encode('utf-8')).hexdigest()[:12]}"


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
    if name is not None and not rest.startswith(temp_stem(name) + "-"):
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
        with open(os.fspath(path), "rb") as f:
            head = f.read(4)
        if head and not head.startswith(b"PK"):  # an .npz is a zip archive; anything else is not one
            raise DataError(f"not an .npz file (an .npz is a zip archive of arrays): {os.fspath(path)!r}")
        with np.load(os.fspath(path), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except DataError:
        raise
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


@contextlib.contextmanager
def file_lock(path, timeout: float = 60.0):
    """Hold an exclusive lock on the file `path` (created if need be) while the block runs,
    waiting up to `timeout` seconds for another process to release it. Yields True when
    held, False when it gave up waiting or the lock file cannot be created (a read-only
    folder); the caller then leaves the locked resource alone."""
    import fcntl

    try:
        fd = os.open(os.fspath(path), os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:
        yield False
        return
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.05)
        yield True
    finally:
        os.close(fd)  # closing releases the lock
