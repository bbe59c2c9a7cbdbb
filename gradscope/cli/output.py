"""What commands print and write, one convention for all of them:

- JSON (`--json`): `envelope(command, model, results)` -> {"command", "model", "results": [...]},
  one record per input (`image` as given, `class`, `class_name`, units in field names);
  gradscope/cli/schema.json is its JSON schema (README "JSON output"). `emit` prints it, or the
  text lines, which start with the model line (`model: EfficientNet-Lite0, ImageNet-1k, 224 px`).
- Files: `-o DIR` (see `new_output`): a non-empty folder is refused unless --overwrite, which
  replaces it with this run's files only (written beside it, then swapped in). Files are named by
  `file_name(stem, class_name, method, ...)` after the photo (`image_stems` keeps stems unique):
  `chelsea_tabby_smoothgrad.png`.
- `output_folder`: the older guard the training commands use with --out (kept for --resume).
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile

from gradscope.errors import GradscopeError

# file names: at most this many characters, so that a temp name beside it
# (gradscope.fileio.atomic_path adds ~40) stays under the usual 255-byte limit
MAX_NAME = 150
MAX_PART = 60
MARKER = ".gradscope-output"  # in every folder new_output wrote: --overwrite replaces only such folders
IMAGE_ENDINGS = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp")


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
    """The one way a command prints its result: JSON of payload with --json, else the lines
    (after the model line when payload is an envelope with a model)."""
    if getattr(args, "json", False):
        import json

        print(json.dumps(payload, indent=1))
        return
    if isinstance(payload, dict) and isinstance(payload.get("model"), dict):
        from gradscope.modelspec import model_line

        print(model_line(payload["model"]))
    for line in lines:
        print(line)


# ---------------------------------------------------------------- JSON envelope

def envelope(command: str, model, results: list, **extra) -> dict:
    """{"command", "model", "results", **extra}: the top level of every command's JSON.
    model: describe_model's dict (gradscope.modelspec), or None for commands without one."""
    return {"command": command, "model": model, "results": list(results), **extra}


def class_fields(model, c) -> dict:
    """{'class': index, 'class_name': name} of class index c."""
    return {"class": int(c), "class_name": str(model.class_names[int(c)])}


# ---------------------------------------------------------------- file names

def slug(text, limit: int = MAX_PART) -> str:
    """Lower case; runs of characters other than a-z, 0-9 become one '-'; at most limit chars."""
    out = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")
    return out[:limit].rstrip("-") or "x"


def short_class(name) -> str:
    """A class name's first synonym ('tabby, tabby cat' -> 'tabby')."""
    return str(name).split(",")[0].strip()


def unique_slugs(texts) -> list:
    """slug of each text, unique: a repeated one gets '-2', '-3', ... (in order)."""
    out, seen = [], set()
    for text in texts:
        base = slug(text)
        name, k = base, 2
        while name in seen:
            name, k = f"{base[:MAX_PART - 4]}-{k}", k + 1
        seen.add(name)
        out.append(name)
    return out


def image_stems(paths) -> list:
    """One file-name stem per input path, after its photo ('a/Chelsea.JPG' -> 'chelsea'),
    unique: a repeated stem gets '-2', '-3', ..."""
    return unique_slugs(os.path.splitext(os.path.basename(os.fspath(p)))[0] for p in paths)


def file_name(*parts, ext: str = ".png") -> str:
    """'chelsea_tabby_smoothgrad.png' from ('chelsea', 'tabby, tabby cat', 'smoothgrad'): each
    part slugged (a class name to its first synonym), joined with '_', at most MAX_NAME
    characters in all. Parts that are None or '' are left out."""
    parts = [short_class(p) if "," in str(p) else p for p in parts if p is not None and str(p) != ""]
    each = max(4, (MAX_NAME - len(ext)) // max(1, len(parts)) - 1)  # every part keeps its share
    name = "_".join(slug(p, min(each, MAX_PART)) for p in parts) or "x"
    return name + ext


# ---------------------------------------------------------------- output folders

class NewOutput:
    """The folder a command writes into (`dir`, a staging folder beside `final`), and the
    final paths of what it wrote (`final_path`, under the folder as the user gave it)."""

    def __init__(self, staging: str, final: str, shown: str | None = None):
        self.dir, self.final, self.shown = staging, final, shown or final

    def path(self, name: str) -> str:
        """Where to write file `name` now."""
        return os.path.join(self.dir, name)

    def final_path(self, path) -> str:
        """Where a file written under `dir` will be once the command finishes."""
        return os.path.join(self.shown, os.path.relpath(os.fspath(path), self.dir))

    def final_paths(self, paths) -> list:
        return [self.final_path(p) for p in paths]


def add_output_args(parser, required: bool = True, default=None) -> None:
    """-o/--output DIR and --overwrite, the same for every command."""
    parser.add_argument("-o", "--output", metavar="DIR", required=required and default is None, default=default,
                        help="output folder (created; a non-empty one is refused unless --overwrite)"
                             + (f" (default {default})" if default else ""))
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the output folder's files with this run's (only a folder gradscope wrote)")


def check_new_output(path, overwrite: bool = False, flag: str = "-o") -> str:
    """Check that `path` can be this run's output folder (before any work); returns it
    absolute. GradscopeError (one line, exit 2) for a file, an image-like name, a non-empty
    folder without overwrite, or a non-empty folder gradscope did not write."""
    path = os.fspath(path)
    final = os.path.abspath(path)
    if path.lower().endswith(IMAGE_ENDINGS) and not os.path.isdir(path):
        raise GradscopeError(f"{flag} takes a folder, and {path!r} looks like a file name; give a folder "
                             "(files inside are named after each photo, class and method)")
    check_output(path, flag)
    if os.path.isdir(final) and os.listdir(final):
        if not overwrite:
            raise GradscopeError(f"{flag} {path!r} is not empty; pass --overwrite to replace its files with "
                                 "this run's, or choose a new folder")
        if not os.path.exists(os.path.join(final, MARKER)):
            raise GradscopeError(f"{flag} {path!r} holds files gradscope did not write; --overwrite replaces "
                                 "only an output folder of gradscope: choose a new or empty folder")
    return final


@contextlib.contextmanager
def new_output(path, overwrite: bool = False, flag: str = "-o", command: str = ""):
    """Yield a NewOutput: the command writes into out.dir, a hidden folder beside `path`; when
    the body succeeds that folder becomes `path` (the earlier run's folder, if any, is moved
    aside and deleted), so `path` holds only this run's files. When the body fails, nothing of
    it remains and an earlier output is untouched."""
    final = check_new_output(path, overwrite, flag)
    parent = os.path.dirname(final)
    created = _first_missing(parent)
    os.makedirs(parent, exist_ok=True)
    base = os.path.basename(final)[:40]
    staging = tempfile.mkdtemp(prefix=f".{base}.gradscope-new-", dir=parent)
    try:
        _normal_permissions(staging)
        with open(os.path.join(staging, MARKER), "w", encoding="utf-8") as f:
            f.write(f"written by gradscope {command}\n")
        yield NewOutput(staging, final, os.fspath(path))
        _swap_in(staging, final, base)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise


def _normal_permissions(folder: str) -> None:
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)  # mkdtemp makes 0700


def _swap_in(staging: str, final: str, base: str) -> None:
    """Rename staging to final; an existing final is renamed aside first and then deleted."""
    old = None
    if os.path.lexists(final):
        old = tempfile.mkdtemp(prefix=f".{base}.gradscope-old-", dir=os.path.dirname(final))
        os.rmdir(old)
        os.rename(final, old)
    try:
        os.rename(staging, final)
    except BaseException:
        if old is not None:
            os.rename(old, final)  # put the earlier run back
        raise
    if old is not None and os.path.islink(old):
        os.unlink(old)  # -o named a link: the link is replaced, what it pointed to is left alone
    elif old is not None:
        shutil.rmtree(old, ignore_errors=True)
