"""TinyImageNet in its standard directory layout.

    root/wnids.txt                          one WordNet id per line; line number = class index
    root/words.txt                          <wnid>\\t<comma-separated names>
    root/train/<wnid>/images/*.JPEG         training images
    root/train/<wnid>/<wnid>_boxes.txt      <file>\\tx0\\ty0\\tx1\\ty1
    root/val/images/*.JPEG                  validation images
    root/val/val_annotations.txt            <file>\\t<wnid>\\tx0\\ty0\\tx1\\ty1

Images are decoded straight into one preallocated uint8 array (never held twice);
grayscale and palette images are converted to RGB.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from gradscope.errors import DataError
from gradscope.fileio import TEXT_ENCODING
from gradscope.imageio import load_image


@dataclass
class TinyImageNetSplit:
    """Images of one split: X (N, H, W, 3) uint8, y (N,) int64 class indices,
    boxes (N, 4) int32 as x0, y0, x1, y1 (-1 where unknown), files (N,) paths."""
    X: np.ndarray
    y: np.ndarray
    boxes: np.ndarray
    files: list = field(default_factory=list)


class TinyImageNet:
    """Index of a TinyImageNet directory. Reads the metadata on construction and
    decodes images only when a split is loaded.

    Args:
        root: the dataset directory.
        classes: optional subset, as wnids or class indices; class indices of the
            loaded splits are then 0..len(classes)-1 in the given order.
    """

    def __init__(self, root: str, classes=None):
        self.root = os.fspath(root)
        wnids_path = os.path.join(self.root, "wnids.txt")
        if not os.path.isfile(wnids_path):
            raise DataError(f"not a TinyImageNet directory: {self.root!r} has no wnids.txt")
        all_wnids = [line.strip() for line in _read_lines(wnids_path) if line.strip()]
        if not all_wnids:
            raise DataError(f"{wnids_path!r} lists no classes (expected one WordNet id per line)")
        if classes is not None:
            wanted = []
            for c in classes:
                if isinstance(c, (int, np.integer)):
                    if not 0 <= c < len(all_wnids):
                        raise DataError(f"class index {c} out of range 0..{len(all_wnids) - 1}")
                    wanted.append(all_wnids[c])
                elif c in all_wnids:
                    wanted.append(c)
                else:
                    raise DataError(f"unknown class {c!r}: not in {wnids_path}")
            all_wnids = wanted
        self.wnids = all_wnids
        self.index = {w: i for i, w in enumerate(self.wnids)}
        self.names = self._read_names()

    def _read_names(self):
        names = {w: w for w in self.wnids}
        path = os.path.join(self.root, "words.txt")
        if os.path.isfile(path):
            for line in _read_lines(path):
                parts = line.rstrip("\n").split("\t")
                if len(parts) == 2 and parts[0] in names:
                    names[parts[0]] = parts[1]
        return [names[w] for w in self.wnids]

    @property
    def num_classes(self) -> int:
        return len(self.wnids)

    def items(self, split: str):
        """List of (path, class index, box) for 'train' or 'val'; box is a 4-tuple or None."""
        if split == "train":
            return self._train_items()
        if split == "val":
            return self._val_items()
        raise DataError(f"unknown split {split!r}: expected 'train' or 'val'")

    def _train_items(self):
        out = []
        for wnid in self.wnids:
            folder = os.path.join(self.root, "train", wnid)
            img_dir = os.path.join(folder, "images")
            if not os.path.isdir(img_dir):
                raise DataError(f"missing training folder {img_dir!r}")
            boxes = _read_boxes(os.path.join(folder, f"{wnid}_boxes.txt"), has_wnid=False)
            for name in sorted(os.listdir(img_dir)):
                if name.lower().endswith((".jpeg", ".jpg", ".png")):
                    out.append((os.path.join(img_dir, name), self.index[wnid], boxes.get(name)))
        return out

    def _val_items(self):
        ann = os.path.join(self.root, "val", "val_annotations.txt")
        if not os.path.isfile(ann):
            raise DataError(f"missing validation annotations {ann!r}")
        out = []
        for lineno, line in enumerate(_read_lines(ann), 1):
            parts = line.split()
            if len(parts) < 2 or parts[1] not in self.index:
                continue
            box = _box(parts[2:6], ann, lineno) if len(parts) >= 6 else None
            out.append((os.path.join(self.root, "val", "images", parts[0]), self.index[parts[1]], box))
        return out

    def load(self, split: str, limit: int | None = None, per_class: int | None = None,
             size: int | None = None, progress=None) -> TinyImageNetSplit:
        """Decode a split into memory.

        Args:
            split: 'train' or 'val'.
            limit: keep at most this many images (first ones, in file order).
            per_class: keep at most this many images per class.
            size: resize every image to size x size (default: keep the first image's size).
            progress: optional callable(done, total).
        """
        items = self.items(split)
        if per_class is not None:
            counts: dict = {}
            kept = []
            for it in items:
                if counts.get(it[1], 0) < per_class:
                    counts[it[1]] = counts.get(it[1], 0) + 1
                    kept.append(it)
            items = kept
        if limit is not None:
            items = items[:limit]
        if not items:
            raise DataError(f"no images found for split {split!r} in {self.root!r}")
        first = load_rgb(items[0][0], size)
        X = np.empty((len(items),) + first.shape, dtype=np.uint8)  # (N, H, W, 3)
        y = np.empty(len(items), dtype=np.int64)
        boxes = np.full((len(items), 4), -1, dtype=np.int32)
        for i, (path, label, box) in enumerate(items):
            img = first if i == 0 else load_rgb(path, size)
            if img.shape != first.shape:  # without size, every image takes the first one's
                img = np.asarray(Image.fromarray(img).resize(first.shape[1::-1], Image.BILINEAR))
            X[i] = img
            y[i] = label
            if box is not None:
                boxes[i] = box
            if progress is not None:
                progress(i + 1, len(items))
        return TinyImageNetSplit(X, y, boxes, [p for p, _, _ in items])


def _read_boxes(path, has_wnid):
    boxes = {}
    if not os.path.isfile(path):
        return boxes
    off = 2 if has_wnid else 1
    for lineno, line in enumerate(_read_lines(path), 1):
        parts = line.split()
        if len(parts) >= off + 4:
            boxes[parts[0]] = _box(parts[off:off + 4], path, lineno)
    return boxes


def _box(values, path, lineno):
    try:
        return tuple(int(v) for v in values)
    except ValueError:
        raise DataError(f"{path}:{lineno}: expected four whole-number box coordinates, got {' '.join(values)!r}") from None


def _read_lines(path) -> list:
    """The lines of a UTF-8 text file of the dataset (DataError naming it if unreadable)."""
    try:
        with open(path, encoding=TEXT_ENCODING) as f:
            return f.readlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {path!r} as text: {e}") from None


def load_rgb(path: str, size: int | None = None) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB (gradscope.imageio.load_image),
    optionally resized to size x size."""
    img = load_image(path)
    if size is not None and img.shape[:2] != (size, size):
        img = np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR))
    return img
