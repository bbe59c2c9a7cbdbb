"""What commands print (emit), and their output folders: checked before any work, and removed again when the
command that created them fails (so a failure leaves no partial output behind)."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile

from gradscope.errors import GradscopeError


def check_output(path, flag: str = "-o", file_ext: str | None = None) -> str:
    """Check that `path` can become an output folder (or, when it ends with file_ext such as
    '.png', an output file); returns the folder the command will write into.
    Raises GradscopeError naming the flag for an existing file where a folder is needed,
    a parent that is a file, or a folder that cannot be written."""
    path = os.fspath(path)
    if not path.strip():
        raise GradscopeError(f"{flag} needs a folder name, got an empty one")
    is_file = file_ext is not None and path.lower().endswith(file_ext)
    folder = (os.path.dirname(os.path.abspath(path)) if is_file else os.path.abspath(path))
    if is_file and os.path.isdir(path):
        raise GradscopeError(f"{flag} {path!r} is a folder; give a new {file_ext} file name or a folder without "
                             f"the {file_ext} ending")
    if not is_file and os.path.exists(path) and not os.path.isdir(path):
        raise GradscopeError(f"{flag} {path!r} is an existing file, not a folder; give a folder name "
                             f"(it is created if missing)")
    existing = _nearest_existing(folder)
    if not os.path.isdir(existing):
        raise GradscopeError(f"{flag} {path!r} cannot be created: {existing!r} is a file, not a folder")
    if not _writable(existing):
        raise GradscopeError(f"{flag} {path!r}: cannot write in {existing!r} (permission denied or read-only); "
                             "choose another folder")
    return folder


def _nearest_existing(folder: str) -> str:
    while not os.path.exists(folder):
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return folder


def _writable(folder: str) -> bool:
    """Whether a file can be created in folder (tried for real: permission bits do not tell
    root, or a read-only file system, apart)."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".gradscope-probe-", dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.remove(probe)
    return True


@contextlib.contextmanager
def output_folder(path, flag: str = "-o", file_ext: str | None = None, keep=None):
    """Check the output (check_output), then run the command's body; if the body fails
    (an error, Ctrl-C, SIGTERM), remove what it created: the output folder when the command
    made it, else the entries it added to the existing folder. keep(folder) -> True keeps
    them anyway (a training run's checkpoint, for --resume)."""
    folder = check_output(path, flag, file_ext)
    created = _first_missing(folder)
    names_a_file = file_ext is not None and os.fspath(path).lower().endswith(file_ext)  # written atomically
    before = set(os.listdir(folder)) if created is None and not names_a_file else None
    try:
        yield folder
    except BaseException:
        kept = keep is not None and os.path.isdir(folder) and keep(folder)
        if created is not None and os.path.isdir(created) and not kept:
            shutil.rmtree(created, ignore_errors=True)
        elif before is not None and not kept:
            _remove_new_entries(folder, before)
        raise


def _remove_new_entries(folder: str, before: set) -> None:
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    for name in set(entries) - before:
        path = os.path.join(folder, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.remove(path)
            except OSError:
                pass


def _first_missing(folder: str):
    """The top-most folder on the way to `folder` that does not exist yet (None if it exists)."""
    first = None
    while not os.path.exists(folder):
        first = folder
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return first


def emit(args, payload, lines) -> None:
    """The one way a command prints its result: JSON of payload with --json, else the lines."""
    if getattr(args, "json", False):
        import json

        print(json.dumps(payload, indent=1))
    else:
        for line in lines:
            print(line)
