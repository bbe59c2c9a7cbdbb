"""Teacher logits for distilling a TinyImageNet CNN: the file format the teacher script
(scripts/teacher_logits.py) writes and the torch trainer reads.

A teacher file is an .npz (written atomically, read without pickles) with
    logits  (N, C) float16  the teacher's logits restricted to the dataset's C classes
    files   (N,)   str      image paths relative to the dataset root, in split order
    __meta__                JSON: format, teacher, input size, wnids
Rows are matched to training images by file name; a file may cover a subset of them (the
others train on their labels alone), never images outside them.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np

from gradscope.errors import DataError

__all__ = ["TEACHER_FORMAT", "DistillSettings", "class_balanced_order", "relative_files", "teacher_key",
           "teacher_cache_path", "teacher_files", "load_teacher_logits"]

TEACHER_FORMAT = "gradscope-teacher-logits-v1"


@dataclass(frozen=True)
class DistillSettings:
    """Distillation loss of the torch trainer: (1 - weight) * label loss + weight * T^2 *
    KL(softmax(teacher / T) || softmax(student / T)) on images with teacher logits (the label
    loss alone on the others). teacher: path of a teacher file (None: no distillation);
    teacher_images_only: train only on the images the teacher file covers.
    Defaults: EfficientNet-Lite0's restricted logits on 7,000 training images are best
    calibrated near T = 1.5 (label log-likelihood -1.45; -1.63 at T = 2, -2.61 at T = 4); at
    T = 4 the target is nearly uniform (mean probability of the label 0.12, of the top class
    0.13), so the loss mostly pulls the student towards the teacher's wrong classes. T = 2
    (label 0.40) with half the weight on the labels."""
    teacher: str | None = None
    weight: float = 0.5
    temperature: float = 2.0
    teacher_images_only: bool = False

    def __post_init__(self):
        from gradscope.errors import GradscopeError

        if not 0 < self.weight <= 1:
            raise GradscopeError(f"distillation weight {self.weight} is not in (0, 1]")
        if not self.temperature > 0:
            raise GradscopeError(f"distillation temperature {self.temperature} is not positive")


def class_balanced_order(labels) -> np.ndarray:
    """Indices of images (labels: (N,) ints) in the order: the 1st image of every class (by
    class index), then the 2nd of every class, ..., so that the first k * classes indices
    are k images of each class (a teacher file for any prefix is class-balanced). (N,) int64."""
    labels = np.asarray(labels)
    rank = np.zeros(len(labels), np.int64)  # how many images of its class come before each image
    seen: dict = {}
    for i, c in enumerate(labels.tolist()):
        rank[i] = seen.get(c, 0)
        seen[c] = rank[i] + 1
    return np.lexsort((labels, rank))


def relative_files(files, root) -> list:
    """Paths relative to the dataset root, with '/' separators (the same on every machine)."""
    return [os.path.relpath(f, root).replace(os.sep, "/") for f in files]


def teacher_key(rel_files, teacher: str, size: int) -> str:
    """12 hex digits naming (image list, teacher, input size)."""
    h = hashlib.sha256(f"{teacher}\n{size}\n".encode())
    h.update("\n".join(rel_files).encode())
    return h.hexdigest()[:12]


def teacher_cache_path(rel_files, teacher: str, size: int, split: str) -> str:
    """$GRADSCOPE_CACHE (else ~/.cache/gradscope)/teacher/<teacher>-<split>-<size>px-<key>.npz."""
    from gradscope.fileio import cache_dir

    return os.path.join(cache_dir("teacher"), f"{teacher}-{split}-{size}px-{teacher_key(rel_files, teacher, size)}.npz")


def _read(path):
    from gradscope.fileio import load_npz, read_json_array

    arrays = load_npz(path)
    read_json_array(arrays, "__meta__", path, TEACHER_FORMAT, "teacher-logits file")
    if "logits" not in arrays or "files" not in arrays:
        raise DataError(f"{os.fspath(path)!r} lacks 'logits' or 'files'")
    return arrays


def teacher_files(path) -> list:
    """The images (paths relative to the dataset root) a teacher file has logits for."""
    return [str(f) for f in _read(path)["files"]]


def load_teacher_logits(path, rel_files, num_classes: int):
    """Teacher logits for training images (relative paths, in training order): (N, C) float32
    (zeros where the file has no row) and (N,) bool, True where it has one. DataError naming
    the file when it is of another kind or holds images that are not in the list."""
    arrays = _read(path)
    files = [str(f) for f in arrays["files"]]
    if arrays["logits"].shape != (len(files), num_classes):
        raise DataError(f"{os.fspath(path)!r}: logits of shape {arrays['logits'].shape}, expected "
                        f"({len(files)}, {num_classes})")
    row = {f: i for i, f in enumerate(rel_files)}
    unknown = [f for f in files if f not in row]
    if unknown:
        raise DataError(f"{os.fspath(path)!r} holds teacher logits for {len(unknown)} images that are not being "
                        f"trained on (e.g. {unknown[0]!r}); rebuild it with scripts/teacher_logits.py")
    logits = np.zeros((len(rel_files), num_classes), np.float32)
    has = np.zeros(len(rel_files), bool)
    idx = np.array([row[f] for f in files], dtype=np.int64)
    logits[idx] = arrays["logits"]
    has[idx] = True
    return logits, has
