"""uint8 RGB pixels <-> normalized model input, with the mean/std contract of
gradscope.torch.adapter:  x = (lo + (hi - lo) * p / 255 - mean) / std,  (lo, hi) = pixel_range."""
from __future__ import annotations

import numpy as np

from gradscope.cnn.preprocessing import center_crop_resize, images_to_list


def resize_images(images, size: int) -> np.ndarray:
    """uint8 (N, H, W, 3) array, one (H, W, 3) image, or a list of images of any sizes
    -> float32 (N, size, size, 3) pixels in 0..255: shorter side resized to `size`, then
    the centre square, exactly as the NumPy CNN's preprocess does."""
    return np.stack([center_crop_resize(im, size) for im in images_to_list(images)]).astype(np.float32)


def from_pixels(pixels: np.ndarray, mean, std, pixel_range) -> np.ndarray:
    """(N, H, W, 3) pixels in 0..255 -> float32 (N, 3, H, W) model input."""
    lo, hi = pixel_range
    scaled = lo + (hi - lo) * (np.asarray(pixels, dtype=np.float64) / 255.0)
    x = (scaled - np.asarray(mean)) / np.asarray(std)  # (N, H, W, 3)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32)


def to_pixels(x: np.ndarray, mean, std, pixel_range) -> np.ndarray:
    """(N, 3, H, W) model input -> uint8 (N, H, W, 3), rounded and clipped to 0..255."""
    lo, hi = pixel_range
    scaled = np.asarray(x, dtype=np.float64).transpose(0, 2, 3, 1) * np.asarray(std) + np.asarray(mean)
    p = (scaled - lo) * (255.0 / (hi - lo))
    return np.clip(np.round(p), 0, 255).astype(np.uint8)
