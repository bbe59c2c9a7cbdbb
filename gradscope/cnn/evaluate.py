"""Classification accuracy of an image model on labelled uint8 images."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gradscope.errors import ShapeError


@dataclass
class Accuracy:
    """top1, top5: fractions correct; per_class: (C,) top-1 accuracy of each class (NaN
    for classes without images); counts: (C,) images per class; n: images scored."""
    top1: float
    top5: float
    per_class: np.ndarray
    counts: np.ndarray
    n: int


def evaluate_accuracy(model, X, y, batch_size: int = 100, progress=None) -> Accuracy:
    """Top-1/top-5 and per-class accuracy of model (test mode) on images X (N, H, W, 3)
    uint8 (preprocessed by the model) with labels y (N,). progress: callable(done, total)."""
    y = np.asarray(y)
    if len(X) != len(y) or len(y) == 0:
        raise ShapeError(f"need as many labels as images (and at least one): {len(X)} images, {len(y)} labels")
    C = len(model.class_names)
    k = min(5, C)
    top1 = top5 = 0
    correct = np.zeros(C, np.int64)
    for i in range(0, len(y), batch_size):
        scores = model.scores(model.preprocess(X[i:i + batch_size]))
        yb = y[i:i + batch_size]
        topk = np.argsort(-scores, axis=1)[:, :k]
        hit1 = topk[:, 0] == yb
        top1 += int(hit1.sum())
        top5 += int((topk == yb[:, None]).any(axis=1).sum())
        np.add.at(correct, yb[hit1], 1)
        if progress is not None:
            progress(min(i + batch_size, len(y)), len(y))
    counts = np.bincount(y, minlength=C)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(counts > 0, correct / np.maximum(counts, 1), np.nan)
    return Accuracy(top1 / len(y), top5 / len(y), per_class, counts, len(y))
