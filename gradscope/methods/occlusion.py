"""Occlusion (Zeiler & Fergus 2014): slide a grey patch over the image and record how
much the class's output drops; each pixel's map value is the mean drop over the patches
that cover it.

    drop[p] = f_c(x) - f_c(x with patch p set to the fill)
    map[i, j] = mean of drop[p] over the patches p covering pixel (i, j)

f_c is the class's softmax probability (`target="probability"`, what Zeiler & Fergus plot
as the grey square moves, and what RISE's deletion and insertion curves track) or its raw
score (`target="score"`, captum's Occlusion on a network's logits).

Patches start every `stride` pixels, the last flush with the far edge, so every pixel is
covered. The fill is mid-grey (pixel 127.5) or the image's per-channel mean. Maps are
signed: a negative value means covering the pixel raised the score.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from gradscope.errors import GradscopeError
from gradscope.layers.core import softmax
from gradscope.methods._inputs import check_images, check_not_constant, check_positive, class_indices, report
from gradscope.methods.saliency import SaliencyResult
from gradscope.methods.settings import MethodSettings, Setting

__all__ = ["SETTINGS", "DEFAULTS", "TARGETS", "occlusion", "patch_starts", "fill_values"]

# target -> f(scores (B, K), classes (B,)) -> (B,): the output whose drop a patch is scored by
TARGETS = {"probability": lambda s, c: softmax(s.astype(np.float64))[np.arange(len(c)), c],
           "score": lambda s, c: s.astype(np.float64)[np.arange(len(c)), c]}

SETTINGS = MethodSettings(
    "occlusion",
    Setting("window", None, "optional_int", "occlusion: patch side in pixels (none: a seventh of the image side)"),
    Setting("stride", None, "optional_int", "occlusion: patch step in pixels (none: half the window)"),
    Setting("fill", "gray", "choice", "occlusion: patch colour, gray (pixel 127.5) or mean (the image's channel "
            "means)", choices=("gray", "mean")),
    Setting("target", "probability", "choice", "occlusion: the drop of the class's probability (softmax, as Zeiler & "
            "Fergus) or of its raw score (as captum on logits)", choices=tuple(TARGETS), flag="--occlusion-target"),
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


def _settings(h, w, window, stride, fill, target, chunk) -> SimpleNamespace:
    """The resolved settings (window and stride filled in), checked."""
    window = max(1, min(h, w) // 7) if window is None else window
    s = SimpleNamespace(window=window, stride=max(1, window // 2) if stride is None else stride, fill=fill,
                        target=target, chunk=chunk)
    if target not in TARGETS:
        raise GradscopeError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    for name in ("window", "stride", "chunk"):
        check_positive(name, getattr(s, name), integer=True)
    if s.window > min(h, w):
        raise GradscopeError(f"window {s.window} is larger than the image ({h}x{w})")
    return s


@SETTINGS.document
def occlusion(model, x, classes=None, *, window=None, stride=None, fill: str = DEFAULTS["fill"],
              target: str = DEFAULTS["target"], chunk: int = DEFAULTS["chunk"], callback=None) -> SaliencyResult:
    """Occlusion maps.

    Args:
        model: an ImageModel.
        x: (N, 3, H, W) model input (or one (3, H, W) image).
        classes: one class or N classes (index, wnid or name); None = predicted class.
        window, stride, fill, target, chunk: see SETTINGS (defaults: fill {fill}, target {target}, chunk {chunk}).
        callback: callback(occluded_images_scored, info) with 'total' after each model call.
    Returns:
        SaliencyResult with maps (N, H, W) (mean drop of the target) and attributions the
        drops per patch (N, rows, cols); scores are the raw class scores of x.
    """
    x = check_not_constant(check_images("x", x))
    n, _, h, w = x.shape
    s = _settings(h, w, window, stride, fill, target, chunk)
    classes = class_indices(model, classes, n, x)
    f = TARGETS[s.target]
    raw = model.scores(x)
    base = f(raw, classes)
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
        drops[start:start + len(part)] = base[owners] - f(model.scores(batch), classes[owners])
        report(callback, start + len(part), total=len(patches))
    drops = drops.reshape(n, len(ys), len(xs))
    total, count = np.zeros((n, h, w)), np.zeros((h, w))
    for r, a in enumerate(ys):
        for c, b in enumerate(xs):
            total[:, a:a + s.window, b:b + s.window] += drops[:, r, c, None, None]
            count[a:a + s.window, b:b + s.window] += 1
    return SaliencyResult(method="occlusion", maps=(total / count).astype(x.dtype), attributions=drops.astype(x.dtype),
                          classes=classes, scores=raw[np.arange(n), classes], images=model.deprocess(x),
                          class_names=[str(model.class_names[c]) for c in classes], params=SETTINGS.params(vars(s)))
