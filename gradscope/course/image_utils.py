"""The course's image_utils: blur, preprocessing to the course's units, and back.

Course units: an image (1, 3, H, W) float of 0..255 pixels minus a mean, either the
(3, H, W) mean image (mean='image') or its per-channel mean (mean='pixel').
image_from_url reads local files only (gradscope works offline): a URL is a clear error.
"""
import os

import numpy as np

from gradscope.errors import DataError, GradscopeError
from gradscope.imageio import load_image
from gradscope.layers.conv import conv_forward

__all__ = ["blur_image", "preprocess_image", "deprocess_image", "image_from_url"]

# the course's gentle 3x3 blur: centre weight 188, edges 2, corners 1, over 200
_BLUR = np.array([[1, 2, 1], [2, 188, 2], [1, 2, 1]], dtype=np.float64) / 200.0


def blur_image(X):
    """X (N, 3, H, W) -> the same shape, each channel convolved with the course's blur
    kernel (zero padding, as the course's convolution)."""
    X = np.asarray(X)
    if X.ndim != 4 or X.shape[1] != 3:
        raise GradscopeError(f"blur_image expects images of shape (N, 3, H, W), got {X.shape}")
    w = np.zeros((3, 3, 3, 3))
    for c in range(3):
        w[c, c] = _BLUR  # each output channel reads only its own input channel
    return conv_forward(X, w, np.zeros(3), stride=1, pad=1)[0]


def _mean(mean_img, mean):
    if mean == "image":
        return np.asarray(mean_img)
    if mean == "pixel":
        return np.asarray(mean_img).mean(axis=(1, 2), keepdims=True)
    if mean == "none":
        return 0
    raise ValueError("mean must be image or pixel or none")


def preprocess_image(img, mean_img, mean="image"):
    """(H, W, 3) image -> (1, 3, H, W) float32 minus the mean ('image', 'pixel' or 'none')."""
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3:
        raise GradscopeError(f"preprocess_image expects an (H, W, 3) image, got shape {img.shape}")
    return img.astype(np.float32).transpose(2, 0, 1)[None] - _mean(mean_img, mean)


def deprocess_image(img, mean_img, mean="image", renorm=False):
    """(1, 3, H, W) or (3, H, W) course-unit image -> (H, W, 3) uint8: the mean added back;
    renorm=True stretches the values to 0..255 first. Values are clipped to 0..255
    (the course cast without clipping, so out-of-range values wrapped around)."""
    img = np.asarray(img, dtype=np.float64)
    if img.ndim == 3:
        img = img[None]
    img = (img + _mean(mean_img, mean))[0].transpose(1, 2, 0)
    if renorm:
        low, high = img.min(), img.max()
        img = 255.0 * (img - low) / max(high - low, 1e-12)
    return np.clip(img, 0, 255).astype(np.uint8)


def image_from_url(url):
    """An image as an (H, W, 3) uint8 array from a local path (or file:// URL). gradscope
    never reaches the network: an http(s) URL raises DataError saying so."""
    path = str(url.decode() if isinstance(url, bytes) else url)
    if path.startswith("file://"):
        path = path[len("file://"):]
    if "://" in path:
        raise DataError(f"image_from_url: gradscope works offline and does not download {path!r}; "
                        "pass a local image path instead")
    if not os.path.isfile(path):
        raise DataError(f"image_from_url: no such image file {path!r}")
    return load_image(path)
