"""Sanity metrics for saliency maps, each reported next to the same figure for random
maps (seeded) as the baseline a method must beat.

- pointing_game (Zhang et al. 2016): is the map's maximum inside the object's box?
- deletion_insertion_auc (Petsiuk et al. 2018, RISE): remove (deletion) or reveal
  (insertion) pixels from most to least salient and track the class probability;
  the area under that curve is low for a good map under deletion, high under insertion.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gradscope.errors import ShapeError
from gradscope.layers.core import softmax
from gradscope.methods._inputs import check_images, check_positive, class_indices, report
from gradscope.methods.regularizers import gaussian_blur
from gradscope.methods.settings import MethodSettings, Setting

__all__ = ["PointingGameResult", "pointing_game", "DeletionInsertionResult", "deletion_insertion_auc", "DEFAULTS",
           "SETTINGS"]

SETTINGS = MethodSettings(
    "deletion_insertion",
    Setting("stages", 32, "positive_int", "deletion/insertion: steps from the full image to none of it"))
DEFAULTS = SETTINGS.defaults


def _check_maps(maps, n=None, hw=None) -> np.ndarray:
    maps = np.asarray(maps)
    if maps.ndim == 2:
        maps = maps[None]
    if maps.ndim != 3:
        raise ShapeError(f"saliency maps must have shape (N, H, W), got {maps.shape}")
    if n is not None and len(maps) != n:
        raise ShapeError(f"got {len(maps)} saliency maps for {n} images")
    if hw is not None and maps.shape[1:] != tuple(hw):
        raise ShapeError(f"saliency maps are {maps.shape[1:]} but the images are {tuple(hw)}")
    if not np.all(np.isfinite(maps)):
        raise ShapeError("saliency maps contain NaN or infinite values")
    return maps


@dataclass
class PointingGameResult:
    """hits (N,) bool for the given maps and random_hits for random maps; the hit rates
    are over the images with a box."""
    hits: np.ndarray
    random_hits: np.ndarray
    valid: np.ndarray

    @property
    def hit_rate(self) -> float:
        return float(self.hits[self.valid].mean()) if self.valid.any() else float("nan")

    @property
    def random_hit_rate(self) -> float:
        return float(self.random_hits[self.valid].mean()) if self.valid.any() else float("nan")

    def to_dict(self) -> dict:
        return {"hit_rate": self.hit_rate, "random_hit_rate": self.random_hit_rate,
                "n": int(self.valid.sum()), "hits": [bool(h) for h in self.hits]}


def _hits(maps, boxes, tolerance):
    n, h, w = maps.shape
    flat = np.argmax(maps.reshape(n, -1), axis=1)
    ys, xs = flat // w, flat % w
    x0, y0, x1, y1 = (boxes[:, k] for k in range(4))
    return (xs >= x0 - tolerance) & (xs <= x1 + tolerance) & (ys >= y0 - tolerance) & (ys <= y1 + tolerance)


def pointing_game(maps, boxes, tolerance: int = 0, seed: int = 0) -> PointingGameResult:
    """Pointing game.

    Args:
        maps: (N, H, W) saliency maps.
        boxes: (N, 4) int boxes x0, y0, x1, y1 (inclusive pixel coordinates of the map
            grid); rows with a negative coordinate have no box and are skipped.
        tolerance: pixels of slack around the box.
        seed: seeds the random maps of the baseline.
    """
    maps = _check_maps(maps)
    boxes = np.asarray(boxes)
    if boxes.shape != (len(maps), 4):
        raise ShapeError(f"boxes must have shape ({len(maps)}, 4) as x0, y0, x1, y1, got {boxes.shape}")
    check_positive("tolerance", tolerance, integer=True, allow_zero=True)
    valid = np.all(boxes >= 0, axis=1)
    rand = np.random.default_rng(seed).random(maps.shape)
    return PointingGameResult(hits=_hits(maps, boxes, tolerance) & valid,
                              random_hits=_hits(rand, boxes, tolerance) & valid, valid=valid)


@dataclass
class DeletionInsertionResult:
    """Per image (N,): deletion and insertion AUC of the maps and of random maps;
    curves (N, stages + 1) of the class probability; fractions (stages + 1,) of pixels changed."""
    fractions: np.ndarray
    deletion_auc: np.ndarray
    insertion_auc: np.ndarray
    random_deletion_auc: np.ndarray
    random_insertion_auc: np.ndarray
    deletion_curves: np.ndarray
    insertion_curves: np.ndarray
    random_deletion_curves: np.ndarray
    random_insertion_curves: np.ndarray

    def to_dict(self) -> dict:
        return {"n": int(len(self.deletion_auc)),
                "deletion_auc": float(self.deletion_auc.mean()),
                "random_deletion_auc": float(self.random_deletion_auc.mean()),
                "insertion_auc": float(self.insertion_auc.mean()),
                "random_insertion_auc": float(self.random_insertion_auc.mean()),
                "per_image": {k: [float(v) for v in getattr(self, k)] for k in
                              ("deletion_auc", "insertion_auc", "random_deletion_auc", "random_insertion_auc")}}


def _order(maps):
    """Pixel indices from most to least salient (ties in raster order): (N, H*W)."""
    flat = maps.reshape(len(maps), -1)
    return np.argsort(-flat, axis=1, kind="stable")


def _curves(model, start, finish, order, classes, stages, chunk, tick):
    """Probability of classes[i] as pixels order[i][:k] switch from start to finish,
    k = round(j / stages * H * W), j = 0..stages: (N, stages + 1)."""
    n, _, h, w = start.shape
    counts = np.round(np.linspace(0, h * w, stages + 1)).astype(np.int64)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(h * w)[None].repeat(n, 0), axis=1)  # rank of each pixel
    rows = [(i, j) for i in range(n) for j in range(stages + 1)]
    probs = np.empty((n, stages + 1))
    for s in range(0, len(rows), chunk):
        part = rows[s:s + chunk]
        ii = np.array([r[0] for r in part])
        jj = np.array([r[1] for r in part])
        mask = (rank[ii] < counts[jj][:, None]).reshape(len(part), 1, h, w)  # (B, 1, H, W)
        batch = np.where(mask, finish[ii], start[ii])
        probs[ii, jj] = softmax(model.scores(batch).astype(np.float64))[np.arange(len(part)), classes[ii]]
        tick(len(part))
    return probs


def _auc(curves, fractions):
    return np.sum((curves[:, 1:] + curves[:, :-1]) / 2 * np.diff(fractions), axis=1)


def deletion_insertion_auc(model, x, classes, maps, stages: int = DEFAULTS["stages"], blur_sigma=None,
                           chunk: int = 64,
                           seed: int = 0, callback=None) -> DeletionInsertionResult:
    """Deletion and insertion AUC (RISE) of saliency maps, with a random-map baseline.

    Deletion turns pixels, most salient first, to mid-gray; insertion starts from a
    blurred copy and puts back the original pixels, most salient first.

    Args:
        model: an ImageModel.
        x: (N, 3, H, W) model input.
        classes: one or N classes whose probability is tracked.
        maps: (N, H, W) saliency maps on the same grid as x.
        stages: number of deletion/insertion stages (curves have stages + 1 points).
        blur_sigma: blur of the insertion start (default H / 8 pixels).
        chunk: images per model call.
        seed: seeds the random maps.
        callback: callback(images_scored, info) with 'total' (4 N (stages + 1) model inputs in all).
    """
    x = check_images("x", x)
    maps = _check_maps(maps, len(x), x.shape[2:])
    check_positive("stages", stages, integer=True)
    check_positive("chunk", chunk, integer=True)
    classes = class_indices(model, classes, len(x))
    lo, hi = model.pixel_bounds()
    gray = np.broadcast_to(((lo + hi) / 2).astype(x.dtype), x.shape)
    blurred = gaussian_blur(x, x.shape[2] / 8 if blur_sigma is None else blur_sigma)
    fractions = np.linspace(0.0, 1.0, stages + 1)
    rand = np.random.default_rng(seed).random(maps.shape)
    curves, done, total = {}, [0], 4 * len(x) * (stages + 1)

    def tick(n):
        done[0] += n
        report(callback, done[0], total=total)

    for key, m in (("", maps), ("random_", rand)):
        order = _order(m)
        curves[key + "deletion"] = _curves(model, x, gray, order, classes, stages, chunk, tick)
        curves[key + "insertion"] = _curves(model, blurred, x, order, classes, stages, chunk, tick)
    kinds = ("deletion", "insertion", "random_deletion", "random_insertion")
    return DeletionInsertionResult(fractions=fractions, **{f"{k}_auc": _auc(curves[k], fractions) for k in kinds},
                                   **{f"{k}_curves": curves[k] for k in kinds})
