"""Sanity metrics for saliency maps, each reported next to the same figure for random
maps (seeded) as the baseline a method must beat.

- pointing_game (Zhang et al. 2016): is the map's maximum inside the object's box?
- deletion_insertion_auc (Petsiuk et al. 2018, RISE): remove (deletion) or reveal
  (insertion) pixels from most to least salient and track the class probability;
  the area under that curve is low for a good map under deletion, high under insertion.
- rank_correlation: Spearman correlation of two maps; the model-randomisation sanity
  check (Adebayo et al. 2018) compares a method's maps before and after the top layers
  are re-initialised (a faithful method's maps change: low correlation).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gradscope.errors import ShapeError
from gradscope.layers.core import softmax
from gradscope.methods._inputs import check_images, check_not_constant, check_positive, class_indices, report
from gradscope.methods.regularizers import gaussian_blur
from gradscope.methods.settings import MethodSettings, Setting

__all__ = ["PointingGameResult", "pointing_game", "DeletionInsertionResult", "deletion_insertion_auc", "rise_auc",
           "salience_order", "step_counts", "rank_correlation", "DEFAULTS", "SETTINGS"]

SETTINGS = MethodSettings(
    "deletion_insertion",
    Setting("step", None, "optional_int", "deletion/insertion pixels per step (none: 8 x image height, "
            "28 steps at 224 px, as RISE)"))
# RISE's recipe: 8 image rows of pixels a step; the insertion start blurred with sigma 5, kernel 11
DEFAULTS = dict(SETTINGS.defaults, step_per_row=8, blur=(5.0, 11))


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
    """Per image (N,): deletion and insertion AUC of the maps and of random maps (NaN when
    the random baseline was skipped); curves (N, steps + 1) of the class probability;
    fractions (steps + 1,) of pixels changed at each point."""
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


def salience_order(maps, seed: int = 0) -> np.ndarray:
    """Pixel indices from most to least salient: (N, H*W). Ties are broken in a seeded
    random order (not raster order, which would delete the top rows of a flat region first)."""
    flat = maps.reshape(len(maps), -1)
    tie = np.random.default_rng(seed).random(flat.shape)
    return np.stack([np.lexsort((t, -f)) for f, t in zip(flat, tie)])


def step_counts(h: int, w: int, step=None) -> np.ndarray:
    """Pixels changed at each curve point: 0, step, 2 step, ..., H*W (the last step may be
    short); step defaults to 8 H (224 * 8 at 224 px, as RISE: 28 steps of a square image)."""
    step = DEFAULTS["step_per_row"] * h if step is None else int(step)
    n_steps = -(-h * w // step)
    return np.minimum(np.arange(n_steps + 1) * step, h * w)


def _curves(model, start, finish, order, classes, counts, chunk, tick):
    """Probability of classes[i] as pixels order[i][:k] switch from start to finish,
    k = counts[j]: (N, len(counts))."""
    n, _, h, w = start.shape
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(h * w)[None].repeat(n, 0), axis=1)  # rank of each pixel
    rows = [(i, j) for i in range(n) for j in range(len(counts))]
    probs = np.empty((n, len(counts)))
    for s in range(0, len(rows), chunk):
        part = rows[s:s + chunk]
        ii = np.array([r[0] for r in part])
        jj = np.array([r[1] for r in part])
        mask = (rank[ii] < counts[jj][:, None]).reshape(len(part), 1, h, w)  # (B, 1, H, W)
        batch = np.where(mask, finish[ii], start[ii])
        probs[ii, jj] = softmax(model.scores(batch).astype(np.float64))[np.arange(len(part)), classes[ii]]
        tick(len(part))
    return probs


def rise_auc(curves) -> np.ndarray:
    """RISE's area under curves (N, n) of evenly spaced points: (sum - (first + last) / 2) / (n - 1)."""
    return (curves.sum(axis=1) - (curves[:, 0] + curves[:, -1]) / 2) / (curves.shape[1] - 1)


def deletion_insertion_auc(model, x, classes, maps, step=None, blur=DEFAULTS["blur"], chunk: int = 64,
                           seed: int = 0, random_baseline: bool = True, callback=None) -> DeletionInsertionResult:
    """Deletion and insertion AUC (RISE, Petsiuk et al. 2018) of saliency maps, with a
    random-map baseline.

    Deletion sets pixels, most salient first, to mid-grey (pixel 127.5), `step` pixels at
    a time; insertion starts from a Gaussian blur of the image (kernel 11, sigma 5 by
    default) and puts the original pixels back in the same order. The curve is the
    softmax probability of the class; the AUC is rise_auc of it.

    Args:
        model: an ImageModel.
        x: (N, 3, H, W) model input.
        classes: one or N classes whose probability is tracked.
        maps: (N, H, W) saliency maps on the same grid as x.
        step: pixels per step (default 8 H: 1792 at 224 px, 28 steps).
        blur: (sigma, kernel size) of the insertion start.
        chunk: images per model call.
        seed: seeds the random maps and the order of tied pixels.
        random_baseline: also score seeded random maps (else their fields are NaN).
        callback: callback(images_scored, info) with 'total' (model inputs in all).
    """
    x = check_not_constant(check_images("x", x))
    maps = _check_maps(maps, len(x), x.shape[2:])
    check_positive("chunk", chunk, integer=True)
    if step is not None:
        check_positive("step", step, integer=True)
    classes = class_indices(model, classes, len(x))
    lo, hi = model.pixel_bounds()
    gray = np.broadcast_to(((lo + hi) / 2).astype(x.dtype), x.shape)
    sigma, size = blur
    blurred = gaussian_blur(x, sigma, radius=int(size) // 2)
    counts = step_counts(*x.shape[2:], step)
    fractions = counts / counts[-1]
    kinds = [("", maps)] + ([("random_", np.random.default_rng(seed).random(maps.shape))] if random_baseline else [])
    curves, done, total = {}, [0], 2 * len(kinds) * len(x) * len(counts)

    def tick(n):
        done[0] += n
        report(callback, done[0], total=total)

    for key, m in kinds:
        order = salience_order(m, seed)
        curves[key + "deletion"] = _curves(model, x, gray, order, classes, counts, chunk, tick)
        curves[key + "insertion"] = _curves(model, blurred, x, order, classes, counts, chunk, tick)
    nan = np.full((len(x), len(counts)), np.nan)
    curves = {k: curves.get(k, nan) for k in ("deletion", "insertion", "random_deletion", "random_insertion")}
    return DeletionInsertionResult(fractions=fractions, **{f"{k}_auc": rise_auc(c) for k, c in curves.items()},
                                   **{f"{k}_curves": c for k, c in curves.items()})


def rank_correlation(a, b) -> np.ndarray:
    """Spearman rank correlation of each pair of maps (N, H, W) over pixels (average ranks
    for ties): (N,); NaN where a map is constant."""
    a, b = _check_maps(a), _check_maps(b)
    if a.shape != b.shape:
        raise ShapeError(f"maps of shapes {a.shape} and {b.shape} cannot be compared")
    ra = np.stack([_ranks(m.ravel()) for m in a])
    rb = np.stack([_ranks(m.ravel()) for m in b])
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    den = np.sqrt((ra ** 2).sum(axis=1) * (rb ** 2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (ra * rb).sum(axis=1) / np.where(den > 0, den, 1), np.nan)


def _ranks(v) -> np.ndarray:
    """Ranks 0..n-1 of v, tied values sharing their mean rank."""
    order = np.argsort(v, kind="stable")
    sorted_v = v[order]
    first = np.r_[True, sorted_v[1:] != sorted_v[:-1]]
    group = np.cumsum(first) - 1  # group of each sorted position
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], len(v)]
    mean_rank = (starts + ends - 1) / 2.0
    ranks = np.empty(len(v))
    ranks[order] = mean_rank[group]
    return ranks
