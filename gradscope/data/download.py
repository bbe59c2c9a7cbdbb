"""Resumable downloads with checksum checks, and the course's COCO captioning archive.

A download goes to `<dest>.part`; when that file exists, the next attempt asks the
server for the rest with an HTTP Range request (a server that ignores Range makes
it start over). When complete, the sha256 is checked against the known value and
the file is renamed to `<dest>`.

Checksums: a digest given by the caller, or pinned in KNOWN_SHA256 by file name, is
verified. Where none is known (the course archive's publisher gives none, and none
could be measured for KNOWN_SHA256 yet), the first download computes it, returns it
(the CLI prints it) and stores it in `<dest>.sha256`; later runs check the file against
that stored value (trust on first use). A digest is recorded only for a file that passed
the caller's `verify` check (download_coco: the zip archive opens and every member's CRC
matches), so a web page a server sends instead of the archive is deleted, never trusted.

URLs: https, or plain http only to this machine (a local mirror) or with a digest to
verify; anything else is refused before connecting.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import socket
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass

from gradscope.errors import DataError

__all__ = ["COCO_URL", "KNOWN_SHA256", "DownloadResult", "default_data_dir", "download_file", "check_url",
           "sha256_of", "check_zip", "extract_zip", "download_coco"]

COCO_URL = "https://cs231n.stanford.edu/coco_captioning.zip"
KNOWN_SHA256: dict = {}  # file name -> sha256 hex digest, pinned where measured
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
_CHUNK = 1 << 20


@dataclass
class DownloadResult:
    """path: the finished file; sha256: its digest; resumed: a partial file was continued;
    downloaded: False when the file was already there; checksum: 'verified' (matched a
    known or stored digest) or 'recorded' (first download, digest stored in <path>.sha256)."""
    path: str
    sha256: str
    resumed: bool
    downloaded: bool
    checksum: str


def default_data_dir() -> str:
    """$GRADSCOPE_DATA, else ~/.cache/gradscope/data."""
    return os.environ.get("GRADSCOPE_DATA") or os.path.join(os.path.expanduser("~"), ".cache", "gradscope", "data")


def sha256_of(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def download_file(url: str, dest, sha256: str | None = None, progress=None, timeout: float = 30.0,
                  verify=None) -> DownloadResult:
    """Download url to dest, resuming dest.part; check or record the sha256.

    Args:
        sha256: expected digest (default: KNOWN_SHA256 by file name, else a stored <dest>.sha256).
        progress: optional callable(done_bytes, total_bytes or None).
        verify: optional callable(path) raising DataError when the finished file is not what
            was asked for (not an archive); the file is then deleted and no digest recorded.
    Raises DataError when offline, on an HTTP error, an interrupted transfer (the
    partial file is kept for resuming) or a checksum mismatch (the file is deleted).
    """
    dest = os.fspath(dest)
    if sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise DataError(f"not a sha256 digest (64 hex digits): {sha256!r}")
    pinned = sha256 or KNOWN_SHA256.get(os.path.basename(dest))
    check_url(url, verified=pinned is not None)
    expected = pinned or _stored_sha256(dest)
    if os.path.isfile(dest):
        return _finish(dest, dest, expected, resumed=False, downloaded=False, verify=verify)
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    part = dest + ".part"
    resumed = _fetch(url, part, progress, timeout)
    return _finish(part, dest, expected, resumed=resumed, downloaded=True, verify=verify)


def check_url(url: str, verified: bool = False) -> None:
    """DataError for a malformed URL, or a plain-http one that is neither local nor
    `verified` (by a known digest)."""
    parts = urllib.parse.urlsplit(str(url))
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise DataError(f"malformed download URL {url!r}: expected https://HOST/PATH")
    if parts.scheme == "http" and not verified and parts.hostname not in _LOCAL_HOSTS:
        raise DataError(f"refusing a plain-http download from {parts.hostname} without a checksum to verify it: "
                        f"use an https:// URL, or give the file's sha256")


def _fetch(url, part, progress, timeout):
    """Write url into part (continuing it if present); returns whether it resumed."""
    offset = os.path.getsize(part) if os.path.isfile(part) else 0
    try:
        response, offset = _open(url, offset, timeout)
        total = _total_size(response, offset)
        with response, open(part, "ab" if offset else "wb") as f:
            done = offset
            if progress is not None:
                progress(done, total)
            for block in iter(lambda: response.read(_CHUNK), b""):
                f.write(block)
                done += len(block)
                if progress is not None:
                    progress(done, total)
    except urllib.error.HTTPError as e:
        raise DataError(f"download of {url} failed: HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise DataError(f"cannot reach {url} ({e.reason}): check the network connection, or download "
                        f"the file by hand and put it at {part[:-5]!r}") from None
    except (socket.timeout, TimeoutError, ConnectionError, http.client.HTTPException, ValueError) as e:
        raise DataError(f"download of {url} was interrupted ({type(e).__name__}: {e}); "
                        f"run the command again to resume") from None
    if total is not None and done < total:
        raise DataError(f"download of {url} stopped at {done} of {total} bytes; run the command again to resume")
    return offset > 0


def _open(url, offset, timeout):
    """(response, offset it continues from): asks for bytes offset.. and falls back to the
    whole file when the server does not honour the range."""
    headers = {"User-Agent": "gradscope"}
    if offset:
        try:
            response = urllib.request.urlopen(
                urllib.request.Request(url, headers={**headers, "Range": f"bytes={offset}-"}), timeout=timeout)
        except urllib.error.HTTPError as e:
            if e.code != 416:  # 416: range past the end, the partial file is unusable
                raise
        else:
            if response.status == 206 and _range_start(response) == offset:
                return response, offset
            if response.status == 200:
                return response, 0
            response.close()
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout), 0


def _range_start(response):
    """First byte of a 206 response's Content-Range ('bytes 100-199/200'), or None."""
    value = response.headers.get("Content-Range", "")
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _total_size(response, offset):
    length = response.headers.get("Content-Length")
    return None if length is None else int(length) + offset


def _stored_sha256(dest):
    path = dest + ".sha256"
    if not os.path.isfile(path):
        return None
    with open(path, encoding="ascii") as f:
        return (f.read().split() or [None])[0]


def _finish(path, dest, expected, resumed, downloaded, verify=None):
    digest = sha256_of(path)
    if expected is not None and digest != expected.lower():
        os.remove(path)
        raise DataError(f"checksum mismatch for {dest!r}: expected sha256 {expected}, got {digest}; "
                        f"the file was deleted, run the command again to download it afresh")
    if verify is not None:
        try:
            verify(path)
        except DataError as e:
            os.remove(path)
            raise DataError(f"the download for {dest!r} is not a valid archive ({e}); it was deleted and no "
                            "checksum was recorded (a server may have sent a web page instead): run the command "
                            "again, or pass --url of a mirror") from None
    if path != dest:
        os.replace(path, dest)
    if expected is None:
        with open(dest + ".sha256", "w", encoding="ascii") as f:
            f.write(f"{digest}  {os.path.basename(dest)}\n")
    return DownloadResult(dest, digest, resumed, downloaded, "verified" if expected else "recorded")


def check_zip(path) -> None:
    """DataError unless path is a zip archive whose every member reads back with its CRC."""
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise DataError(f"not a zip archive: {e}") from None
    if bad is not None:
        raise DataError(f"member {bad!r} is corrupt")


def extract_zip(zip_path, dest_dir) -> list:
    """Extract a zip archive into dest_dir (refusing members that would land outside it);
    returns the extracted top-level names."""
    dest_dir = os.path.abspath(os.fspath(dest_dir))
    try:
        with zipfile.ZipFile(zip_path) as z:
            for member in z.infolist():
                target = os.path.abspath(os.path.join(dest_dir, member.filename))
                if os.path.commonpath([dest_dir, target]) != dest_dir:
                    raise DataError(f"refusing to extract {member.filename!r} outside {dest_dir!r}")
            z.extractall(dest_dir)
            return sorted({m.split("/", 1)[0] for m in z.namelist()})
    except zipfile.BadZipFile as e:
        raise DataError(f"corrupt zip archive {os.fspath(zip_path)!r}: {e}; delete it and download again") from None


def download_coco(data_dir=None, url: str = COCO_URL, progress=None, keep_archive: bool = True,
                  sha256: str | None = None):
    """Fetch and unpack the course's COCO captioning archive into data_dir (sha256: the
    archive's expected digest, default KNOWN_SHA256's).

    Returns (DownloadResult, path of the coco_captioning directory).
    """
    data_dir = os.fspath(data_dir or default_data_dir())
    archive = os.path.join(data_dir, os.path.basename(url) or "coco_captioning.zip")
    result = download_file(url, archive, sha256=sha256, progress=progress, verify=check_zip)
    target = os.path.join(data_dir, "coco_captioning")
    if not os.path.isfile(os.path.join(target, "coco2014_captions.h5")):
        tmp = os.path.join(data_dir, ".extract-coco")
        shutil.rmtree(tmp, ignore_errors=True)
        top = extract_zip(archive, tmp)
        inner = os.path.join(tmp, top[0]) if len(top) == 1 and os.path.isdir(os.path.join(tmp, top[0])) else tmp
        shutil.rmtree(target, ignore_errors=True)
        os.replace(inner, target)
        shutil.rmtree(tmp, ignore_errors=True)
    if not keep_archive and os.path.isfile(archive):
        os.remove(archive)
    return result, target
