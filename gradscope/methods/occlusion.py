"""Occlusion (Zeiler & Fergus 2014): slide a grey patch over the image and record how
much the class score drops; each pixel's map value is the mean drop over the patches
that cover it.

    drop[p] = score_c(x) - score_c(x with patch p set to the fill)
    map[i, j] = mean of drop[p] over the patches p covering pixel (i, j)

Patches start every `stride` pixels, the last flush with the far edge, so every pixel is
covered. The fill is mid-grey (pixel 127.5) or the image's per-channel mean. Maps are
signed: a negative value means covering the pixel raised the score.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from gradscope.errors import GradscopeError
from gradscope.methods._inputs import check_images, check_not_constant, check_positive, class_indices, report
from gradscope.methods.saliency import SaliencyResult
from gradscope.methods.settings import MethodSettings, Setting

__all__ = ["SETTINGS", "DEFAULTS", "occlusion", "patch_starts", "fill_values"]

SETTINGS = MethodSettings(
    "occlusion",
    Setting("window", None, "optional_int", "occlusion: patch side in pixels (none: a seventh of the image side)"),
    Setting("stride", None, "optional_int", "occlusion: patch step in pixels (none: half the window)"),
    Setting("fill", "gray", "choice", "occlusion: patch colour, gray (pixel 127.5) or mean (the image's channel "
            "means)", choices=("gray", "mean")),
    Setting("chunk", 32, "positive_int", "occluded images per model call"))
DEFAULTS = SETTINGS.defaults


def patch_starts(size: int, window: int, stride: int) -> np.ndarray:
    """Start offsets along one axis: 0, stride, ... and the last one flush with the edge."""
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] != size - window:
        starts.append(size - window)
    return np.asarray(starts)


def fill_values(model, x, fill: str) -> np.ndarray:
    """(N, 3, 1, 1) patch colour in model-input units: mid-grey or each image's channel means."""
    if fill == "gray":
        lo, hi = model.pixel_bounds()
        return np.broadcast_to(((lo + hi) / 2).astype(x.dtype), (len(x), 3, 1, 1))
    if fill == "mean":
        return x.mean(axis=(2, 3), keepdims=True)
    raise GradscopeError(f"fill must be 'gray' or 'mean', got {fill!r}")


def _settings(h, w, window, stride, fill, chunk) -> SimpleNamespace:
    """The resolved settings (window and stride filled in), checked."""
    window = max(1, min(h, w) // 7) if window is None else window
    s = SimpleNamespace(window=window, stride=max(1, window // 2) if stride is None else stride, fill=fill,
                        chunk=chunk)
    for name in ("window", "stride", "chunk"):
        check_positive(name, getattr(s, name), integer=True)
    if s.window > min(h, w):
        raise GradscopeError(f"window {s.window} is larger than the image ({h}x{w})")
    return s


@SETTINGS.document
def occlusion(model, x, classes=None, *, window=None, stride=None, fill: str = DEFAULTS["fill"],
              chunk: int = DEFAULTS["chunk"], callback=None) -> SaliencyResult:
    """Occlusion maps.

    Args:
        model: an ImageModel.
        x: (N, 3, H, W) model input (or one (3, H, W) image).
        classes: one class or N classes (index, wnid or name); None = predicted class.
        window, stride, fill, chunk: see SETTINGS (defaults: fill {fill}, chunk {chunk}).
        callback: callback(occluded_images_scored, info) with 'total' after each model call.
    Returns:
        SaliencyResult with maps (N, H, W) (mean raw-score drop) and attributions the drops
        per patch (N, rows, cols).
    """
    x = check_not_constant(check_images("x", x))
    n, _, h, w = x.shape
    s = _settings(h, w, window, stride, fill, chunk)
    classes = class_indices(model, classes, n, x)
    base = model.scores(x)[np.arange(n), classes]
    ys, xs = patch_starts(h, s.window, s.stride), patch_starts(w, s.window, s.stride)
    patches = [(i, a, b) for i in range(n) for a in ys for b in xs]
    colour = fill_values(model, x, s.fill)
    drops = np.empty(len(patches))
    for start in range(0, len(patches), s.chunk):
        part = patches[start:start + s.chunk]
        batch = x[[p[0] for p in part]].copy()  # (B, 3, H, W)
        for k, (i, a, b) in enumerate(part):
            batch[k, :, a:a + s.window, b:b + s.window] = colour[i]
        owners = np.array([p[0] for p in part])
        drops[start:start + len(part)] = base[owners] - model.scores(batch)[np.arange(len(part)), classes[owners]]
        report(callback, start + len(part), total=len(patches))
    drops = drops.reshape(n, len(ys), len(xs))
    total, count = np.zeros((n, h, w)), np.zeros((h, w))
    for r, a in enumerate(ys):
        for c, b in enumerate(xs):
            total[:, a:a + s.window, b:b + s.window] += drops[:, r, c, None, None]
            count[a:a + s.window, b:b + s.window] += 1
    return SaliencyResult(method="occlusion", maps=(total / count).astype(x.dtype), attributions=drops.astype(x.dtype),
                          classes=classes, scores=base, images=model.deprocess(x),
                          class_names=[str(model.class_names[c]) for c in classes], params=SETTINGS.params(vars(s)))
