"""A built-in captioning set that needs no download: coloured shapes on a dark background.

Each scene holds one or two objects. An object has a colour (red, green, blue, yellow,
purple, white), a shape (circle, square, triangle) and a slot (left, right, top,
bottom); two objects never share a slot. Every image gets one reference caption per
template in TEMPLATES, e.g.

    a red circle on the left and a blue square at the top
    there is a red circle on the left and a blue square at the top
    red circle on the left and blue square at the top
    the circle on the left is red and the square at the top is blue
    an image of a red circle on the left and a blue square at the top

Objects are mentioned in slot order (left, right, top, bottom), and each template
starts with its own word and is fixed after it, so a greedy decoder that picks any
first word can still reproduce one reference exactly.

Features (`synthetic_features`) are hand-made from the pixels: for each slot's region,
the foreground fraction, mean colour and a 4x4 occupancy grid of the object's
bounding box (shape), 20 numbers per slot, 80 in all.
"""
from __future__ import annotations

import numpy as np

from gradscope.data.captions import CaptionDataset
from gradscope.data.vocab import build_vocab
from gradscope.errors import GradscopeError

__all__ = ["COLORS", "SHAPES", "SLOTS", "TEMPLATES", "render_scene", "random_scenes",
           "scene_captions", "synthetic_features", "features_fn", "synthetic_captions", "FEATURE_DIM"]

COLORS = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (50, 80, 235),
          "yellow": (235, 220, 50), "purple": (165, 60, 205), "white": (235, 235, 235)}
SHAPES = ("circle", "square", "triangle")
# slot name -> (row, col) centre as a fraction of the image side, and its phrase
SLOTS = {"left": (0.5, 0.22), "right": (0.5, 0.78), "top": (0.22, 0.5), "bottom": (0.78, 0.5)}
SLOT_PHRASES = {"left": "on the left", "right": "on the right", "top": "at the top", "bottom": "at the bottom"}
TEMPLATES = (
    ("", "a {c} {s} {p}"),
    ("there is ", "a {c} {s} {p}"),
    ("", "{c} {s} {p}"),
    ("", "the {s} {p} is {c}"),
    ("an image of ", "a {c} {s} {p}"),
)
_GRID = 4
FEATURE_DIM = len(SLOTS) * (1 + 3 + _GRID * _GRID)
_FG_THRESHOLD = 110  # background pixels stay below this in every channel


def render_scene(objects, size: int = 32, rng=None) -> np.ndarray:
    """Draw objects [(colour, shape, slot, radius_frac, (dy, dx) jitter_frac), ...] as (size, size, 3) uint8."""
    rng = np.random.default_rng(0) if rng is None else rng
    img = rng.integers(0, 40, size=(size, size, 3)).astype(np.uint8)  # (H, W, 3) dark noisy background
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    for colour, shape, slot, radius, (jy, jx) in objects:
        cy, cx = (SLOTS[slot][0] + jy) * size, (SLOTS[slot][1] + jx) * size
        img[_shape_mask(shape, yy - cy, xx - cx, radius * size)] = COLORS[colour]
    return img


def _shape_mask(shape, dy, dx, r):
    if shape == "circle":
        return dy ** 2 + dx ** 2 <= r ** 2
    if shape == "square":
        return (np.abs(dy) <= 0.85 * r) & (np.abs(dx) <= 0.85 * r)
    if shape == "triangle":  # pointing up: apex at -r, base at +r
        return (dy <= r) & (np.abs(dx) <= (dy + r) / 2)
    raise GradscopeError(f"unknown shape {shape!r}: expected one of {SHAPES}")


def random_scenes(n: int, rng) -> list:
    """n random scene descriptions (lists of objects in slot order)."""
    colours, slots = list(COLORS), list(SLOTS)
    scenes = []
    for _ in range(n):
        k = int(rng.integers(1, 3))
        chosen = sorted(rng.choice(len(slots), size=k, replace=False))
        scenes.append([(colours[rng.integers(len(colours))], SHAPES[rng.integers(len(SHAPES))], slots[s],
                        float(rng.uniform(0.11, 0.15)), tuple(rng.uniform(-0.03, 0.03, size=2)))
                       for s in chosen])
    return scenes


def scene_captions(objects) -> list:
    """One reference caption string per template for a scene."""
    caps = []
    for prefix, part in TEMPLATES:
        phrases = [part.format(c=c, s=s, p=SLOT_PHRASES[slot]) for c, s, slot, *_ in objects]
        caps.append(prefix + " and ".join(phrases))
    return caps


def synthetic_features(images) -> np.ndarray:
    """(N, H, W, 3) uint8 images -> (N, FEATURE_DIM) float32 features (see module docstring)."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise GradscopeError(f"images must be (N, H, W, 3), got shape {images.shape}")
    n, h, w, _ = images.shape
    region = _slot_regions(h, w)  # (H, W) nearest slot of each pixel
    fg = images.max(axis=-1) >= _FG_THRESHOLD  # (N, H, W)
    out = np.zeros((n, len(SLOTS), 1 + 3 + _GRID * _GRID), dtype=np.float32)
    for i in range(n):
        for s in range(len(SLOTS)):
            out[i, s] = _region_features(images[i], fg[i] & (region == s), h * w / len(SLOTS))
    return out.reshape(n, -1)


features_fn = synthetic_features  # featurize raw images the way synthetic_captions does


def _slot_regions(h, w):
    centres = np.array([[r * h, c * w] for r, c in SLOTS.values()])  # (4, 2)
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    d = (yy[..., None] - centres[:, 0]) ** 2 + (xx[..., None] - centres[:, 1]) ** 2
    return d.argmin(axis=-1)


def _region_features(img, mask, region_area):
    feats = np.zeros(1 + 3 + _GRID * _GRID, dtype=np.float32)
    count = mask.sum()
    if count < 3:
        return feats
    feats[0] = 4.0 * count / region_area  # about 0.3 to 1 when an object is there
    feats[1:4] = img[mask].mean(axis=0) / 255.0
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    crop = mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].astype(np.float32)
    grid = [[cell.mean() if cell.size else 0.0 for cell in np.array_split(band, _GRID, axis=1)]
            for band in np.array_split(crop, _GRID, axis=0)]
    feats[4:] = np.asarray(grid, dtype=np.float32).ravel()
    return feats


def synthetic_captions(n_train: int = 2000, n_val: int = 200, n_test: int = 0, seed: int = 0,
                       size: int = 32, max_length: int | None = None) -> dict:
    """Generate the synthetic captioning set.

    Args:
        n_train, n_val, n_test: images per split (a split with 0 images is left out).
        seed: scenes and pixels are a function of the seed alone.
        size: image side in pixels (>= 24).
        max_length: longest caption in words (default: the longest generated caption).
    Returns:
        dict split name -> CaptionDataset with features = synthetic_features(images),
        images (n, size, size, 3) uint8, len(TEMPLATES) references per image, and a
        vocabulary built from the training captions.
    """
    if size < 24:
        raise GradscopeError(f"synthetic images need size >= 24, got {size}")
    if n_train < 1 or n_val < 0 or n_test < 0:
        raise GradscopeError(f"need n_train >= 1 and n_val, n_test >= 0; got {n_train}, {n_val}, {n_test}")
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)]
    raw = {}
    for name, n, rng in zip(("train", "val", "test"), (n_train, n_val, n_test), rngs):
        if n:
            scenes = random_scenes(n, rng)
            images = np.stack([render_scene(sc, size, rng) for sc in scenes])
            raw[name] = (images, [[c.split() for c in scene_captions(sc)] for sc in scenes])
    word_to_idx, idx_to_word = build_vocab(t for refs in raw["train"][1] for t in refs)
    if max_length is None:
        max_length = max(len(t) for _, refs in raw.values() for r in refs for t in r)
    out = {}
    for name, (images, refs) in raw.items():
        out[name] = CaptionDataset.from_references(
            synthetic_features(images), refs, word_to_idx, idx_to_word, max_length,
            image_names=[f"synthetic-{name}-{i:05d}" for i in range(len(images))], images=images, name=name)
    return out
