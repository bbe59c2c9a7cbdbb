"""Turning user images of any size into the square uint8 crops a CNN takes."""
from __future__ import annotations

import numpy as np
from PIL import Image

from gradscope.errors import ShapeError


def _as_rgb(i, a):
    """One image as (H, W, 3) uint8; grayscale is repeated, alpha dropped."""
    if isinstance(a, Image.Image):
        return np.asarray(a.convert("RGB"), dtype=np.uint8)
    a = np.asarray(a)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ShapeError(f"image {i} must have shape (H, W, 3), got {a.shape}")
    if a.dtype != np.uint8:
        if not np.issubdtype(a.dtype, np.integer) or a.size and (a.min() < 0 or a.max() > 255):
            raise ShapeError(f"image {i} must be uint8 pixels (0..255), got dtype {a.dtype}; "
                             "model-input arrays go to the model directly")
        a = a.astype(np.uint8)
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ShapeError(f"image {i} is empty: shape {a.shape}")
    return a[:, :, :3]


def images_to_list(images) -> list:
    """A (N, H, W, 3) array, one (H, W, 3) image, or a list of images (arrays or PIL
    images, any sizes) -> list of (H, W, 3) uint8 arrays."""
    if isinstance(images, np.ndarray):
        if images.ndim == 4:
            images = list(images)
        elif images.ndim == 3 and images.shape[2] in (3, 4):
            images = [images]
        else:
            raise ShapeError(f"images must be (N, H, W, 3) or a list of (H, W, 3) arrays, got shape {images.shape}")
    elif isinstance(images, Image.Image):
        images = [images]
    images = list(images)
    if not images:
        raise ShapeError("no images given")
    return [_as_rgb(i, a) for i, a in enumerate(images)]


def center_crop_resize(img, size: int, resize: int | None = None) -> np.ndarray:
    """Resize (antialiased) so the shorter side is `resize` (default `size`), then crop
    the centre square: (H, W, 3) uint8 -> (size, size, 3) uint8. An image already
    size x size is returned as is."""
    h, w = img.shape[:2]
    if (h, w) == (size, size):
        return img
    resize = size if resize is None else resize
    scale = resize / min(h, w)
    nh, nw = max(resize, round(h * scale)), max(resize, round(w * scale))
    im = Image.fromarray(img)
    if (nh, nw) != (h, w):
        im = im.resize((nw, nh), Image.Resampling.BICUBIC)
    top, left = (nh - size) // 2, (nw - size) // 2
    return np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.uint8)
