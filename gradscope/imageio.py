"""Reading and writing images as uint8 (H, W, 3) RGB arrays, and saliency heatmaps."""
from __future__ import annotations

import os
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from gradscope.errors import DataError, ShapeError
from gradscope.fileio import atomic_path

__all__ = ["load_image", "save_image", "save_images", "heatmap", "overlay", "difference_image"]


MAX_PIXELS = 100_000_000  # larger images are refused before decoding (decompression bombs)
MIN_SIDE = 2  # a 1-pixel-wide image has no spatial structure: every method gives a constant result


def load_image(path, max_pixels: int = MAX_PIXELS, min_side: int = MIN_SIDE) -> np.ndarray:
    """Read an image file as uint8 (H, W, 3) RGB, through one decode path: EXIF rotation
    applied; grayscale, palette, CMYK and 16-bit images converted with the right scale;
    transparency (LA, RGBA, palette) composited on white. Raises DataError naming the file
    for a missing, corrupt, too large (> max_pixels) or too small (< min_side) image."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"image file not found: {path!r}")
    if os.path.isdir(path):
        raise DataError(f"expected an image file, got a directory: {path!r}")
    try:
        with _open_checked(path, max_pixels) as im:
            rgb = _to_rgb(ImageOps.exif_transpose(im))
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as e:
        raise DataError(f"cannot read image {path!r} (corrupt or not an image): {e}") from None
    if min(rgb.shape[:2]) < min_side:
        h, w = rgb.shape[:2]
        raise DataError(f"image {path!r} is {w}x{h} pixels; gradscope needs at least {min_side}x{min_side} "
                        "(enlarged to the model's input it becomes a constant image)")
    return rgb


def _open_checked(path, max_pixels):
    """Image.open with gradscope's pixel limit, checked on the header before decoding."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except Image.DecompressionBombError:
        im = None  # PIL refused before telling the size; read the header alone to name it
    if im is None or im.width * im.height > max_pixels:
        w, h = _header_size(path) if im is None else im.size
        if im is not None:
            im.close()
        raise DataError(f"image {path!r} is {w}x{h} pixels ({w * h / 1e6:.0f} megapixels), above the limit of "
                        f"{max_pixels / 1e6:.0f} megapixels; resize it first (a file this large may be a "
                        "decompression bomb)")
    return im


def _header_size(path):
    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # only the header is read: no pixels are decoded
    try:
        with Image.open(path) as im:
            return im.size
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def _to_rgb(im) -> np.ndarray:
    """A decoded PIL image -> uint8 (H, W, 3)."""
    if im.mode in ("I", "F") or im.mode.startswith("I;16"):
        return np.repeat(_gray_to_uint8(np.asarray(im), im.mode)[:, :, None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba)
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def _gray_to_uint8(a: np.ndarray, mode: str) -> np.ndarray:
    """16-bit (and 32-bit integer, as 16-bit) grey -> 0..255; float grey in 0..1 (else 0..255)."""
    if mode == "F":
        a = a.astype(np.float64)
        top = 1.0 if np.nanmax(a, initial=0.0) <= 1.0 else 255.0
        return np.round(np.clip(np.nan_to_num(a) / top, 0, 1) * 255).astype(np.uint8)
    return np.round(np.clip(a.astype(np.float64), 0, 65535) / 257.0).astype(np.uint8)


def _as_uint8_image(name: str, image) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ShapeError(f"{name} must be an (H, W, 3) image, got shape {a.shape}")
    if a.dtype != np.uint8:
        raise ShapeError(f"{name} must be uint8 (0..255), got dtype {a.dtype}; "
                         "use model.deprocess for model-input arrays")
    return a


def save_image(path, image) -> str:
    """Write a uint8 (H, W, 3) (or (H, W)) array as a PNG, atomically; returns the path."""
    image = _as_uint8_image("image", image)
    path = os.fspath(path)
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
    return path


def save_images(dest, images: dict) -> list:
    """Write named uint8 images as PNGs. dest is a folder (files '<name>.png' inside)
    or, for a single image, a '.png' path; several images with a '.png' dest become
    '<stem>_<name>.png'. Returns the written paths."""
    dest = os.fspath(dest)
    if dest.lower().endswith(".png"):
        if len(images) == 1:
            return [save_image(dest, next(iter(images.values())))]
        stem = dest[:-4]
        return [save_image(f"{stem}_{name}.png", img) for name, img in images.items()]
    return [save_image(os.path.join(dest, f"{name}.png"), img) for name, img in images.items()]


def _resize_map(m: np.ndarray, shape) -> np.ndarray:
    if m.shape == tuple(shape):
        return m
    im = Image.fromarray(m.astype(np.float32))  # mode F
    return np.asarray(im.resize((shape[1], shape[0]), Image.Resampling.BILINEAR), dtype=np.float64)


# maps are shown scaled by this percentile of their values and clipped above it (a few
# extreme pixels would otherwise leave the rest near the bottom of the colour scale)
MAP_PERCENTILE = 99.0


def map_top(saliency_map, percentile: float = MAP_PERCENTILE) -> float:
    """The value shown at the top of a map's colour scale: its `percentile`-th percentile
    (its maximum where that is 0, e.g. a map that is 0 almost everywhere)."""
    m = np.asarray(saliency_map, dtype=np.float64)
    top = float(np.percentile(m, percentile))
    return top if top > min(float(np.min(m)), 0.0) else float(np.max(m))


def heatmap(saliency_map, cmap: str = "inferno", vmax=None) -> np.ndarray:
    """(H, W) non-negative map -> uint8 (H, W, 3) colour image, scaled so vmax (default
    map_top: the map's 99th percentile) is the top of the colormap; values above it are
    clipped to the top colour."""
    import matplotlib

    m = np.asarray(saliency_map, dtype=np.float64)
    if m.ndim != 2:
        raise ShapeError(f"saliency map must be (H, W), got shape {m.shape}")
    top = map_top(m) if vmax is None else float(vmax)
    lo = float(min(np.min(m), 0.0))
    scaled = (m - lo) / (top - lo) if top > lo else np.zeros_like(m)
    rgba = matplotlib.colormaps[cmap](np.clip(scaled, 0.0, 1.0))
    return np.round(rgba[..., :3] * 255).astype(np.uint8)


def overlay(image, saliency_map, alpha: float = 0.5, cmap: str = "inferno") -> np.ndarray:
    """Blend a heatmap of the map over a uint8 (H, W, 3) image (map resized to the image)."""
    image = _as_uint8_image("image", image)[:, :, :3]
    m = _resize_map(np.asarray(saliency_map, dtype=np.float64), image.shape[:2])
    heat = heatmap(m, cmap).astype(np.float64)
    out = (1 - alpha) * image.astype(np.float64) + alpha * heat
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def difference_image(a, b) -> np.ndarray:
    """a - b of two uint8 images magnified to the full range: mid-gray = unchanged."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    scale = max(float(np.abs(d).max()), 1.0)
    return np.round(127.5 + 127.5 * d / scale).clip(0, 255).astype(np.uint8)
