"""The demo's input photographs: scikit-image's bundled sample photos (no download), or
the user's own image files."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from gradscope.errors import DataError, GradscopeError

__all__ = ["DemoImage", "SAMPLE_IMAGES", "load_demo_images"]

# skimage.data name -> what the photo shows (TinyImageNet-100-A classes in parentheses)
SAMPLE_IMAGES = {
    "chelsea": "a cat (tabby, Egyptian cat)",
    "coffee": "a cup of coffee (espresso)",
    "astronaut": "astronaut Eileen Collins",
    "rocket": "a rocket launch (projectile, missile)",
}


@dataclass
class DemoImage:
    """One input photograph: name (file stem or sample name), pixels uint8 (H, W, 3),
    source (path or 'skimage.data.<name>') and a description ('' when unknown)."""
    name: str
    pixels: np.ndarray
    source: str
    description: str = ""


def load_demo_images(paths=None) -> list:
    """DemoImages from image files, or scikit-image's sample photos when paths is None."""
    if paths is None:
        return _sample_images()
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = list(paths)
    if not paths:
        raise GradscopeError("no images given: pass one or more image files")
    from gradscope.imageio import load_image

    out, seen = [], set()
    for p in paths:
        name = unique_name(os.path.splitext(os.path.basename(os.fspath(p)))[0] or "image", seen)
        pixels = load_image(p)  # (H, W, 3) uint8
        if np.all(pixels == pixels[:1, :1]):  # every method of the demo would explain nothing
            raise DataError(f"image {os.fspath(p)!r} is one colour everywhere: the demo needs photos with "
                            "something in them")
        out.append(DemoImage(name, pixels, os.fspath(p)))
    return out


def unique_name(name: str, seen: set) -> str:
    """name, or name_2, name_3 ... when already taken (two files with one stem)."""
    base, k = name, 1
    while name in seen:
        k += 1
        name = f"{base}_{k}"
    seen.add(name)
    return name


def _sample_images() -> list:
    try:
        import skimage.data
    except ImportError:
        raise DataError("the demo's sample photos come from scikit-image, which is not installed: "
                        "`pip install scikit-image` (or `pip install gradscope[demo]`), "
                        "or pass your own photos with --images FILE...") from None
    out = []
    for name, description in SAMPLE_IMAGES.items():
        pixels = np.asarray(getattr(skimage.data, name)())
        out.append(DemoImage(name, np.ascontiguousarray(pixels[:, :, :3]).astype(np.uint8),
                             f"skimage.data.{name}", description))
    return out
