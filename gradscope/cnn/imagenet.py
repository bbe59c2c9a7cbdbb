"""The 1,000 ImageNet-1k classes shipped with gradscope (pretrained/imagenet_classes.tsv:
`<index>\t<wnid>\t<comma-separated names>`, index = the model's output unit)."""
from __future__ import annotations

import functools
import os

from gradscope.errors import DataError

__all__ = ["imagenet_classes", "CLASSES_PATH"]

CLASSES_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained", "imagenet_classes.tsv")


@functools.lru_cache(maxsize=1)
def imagenet_classes() -> tuple:
    """(wnids, names): two tuples of 1,000 strings in output-unit order
    (names like 'goldfish, Carassius auratus')."""
    wnids, names = [], []
    with open(CLASSES_PATH, encoding="utf-8") as f:
        for line_no, line in enumerate(f):
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3 or parts[0] != str(line_no):
                raise DataError(f"{CLASSES_PATH}: line {line_no + 1} is not '<index>\\t<wnid>\\t<names>'")
            wnids.append(parts[1])
            names.append(parts[2])
    if len(wnids) != 1000:
        raise DataError(f"{CLASSES_PATH} lists {len(wnids)} classes, expected 1000")
    return tuple(wnids), tuple(names)
