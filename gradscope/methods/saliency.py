"""Gradient attributions of a class score with respect to the input image.

- saliency: Simonyan et al. 2014, |d score_c / d x| maximised over colour channels.
- smoothgrad: Smilkov et al. 2017, the gradient averaged over noisy copies of the image.
- integrated_gradients: Sundararajan et al. 2017, (x - x') times the gradient averaged
  along the straight path from a baseline x' to x.

All take model-input batches x (N, 3, H, W) and raw (pre-softmax) class scores, and
evaluate noisy/path samples `chunk` at a time so memory stays bounded.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gradscope.errors import ShapeError
from gradscope.interface import score_gradient
from gradscope.methods._inputs import check_images, check_not_constant, check_positive, class_indices, report
from gradscope.methods.settings import MethodSettings, Setting

__all__ = ["SaliencyResult", "saliency", "smoothgrad", "integrated_gradients", "DEFAULTS", "SETTINGS"]

SETTINGS = MethodSettings(
    "saliency",
    Setting("n_samples", 25, "positive_int", "SmoothGrad: noisy copies averaged", flag="--samples"),
    Setting("sigma", 0.15, "noise", "SmoothGrad: noise std as a fraction of the pixel range"),
    Setting("points", 32, "positive_int", "integrated gradients: path points from the baseline"))
DEFAULTS = SETTINGS.defaults


@dataclass
class SaliencyResult:
    """maps (N, H, W) >= 0; attributions (N, 3, H, W) (the gradient for vanilla and
    SmoothGrad, the attributions for IG); classes (N,); scores (N,) raw scores of those
    classes at x; images (N, H, W, 3) uint8 inputs; baseline_scores (N,) for IG."""
    method: str
    maps: np.ndarray
    attributions: np.ndarray
    classes: np.ndarray
    scores: np.ndarray
    images: np.ndarray
    class_names: list = field(default_factory=list)
    params: dict = field(default_factory=dict)
    baseline_scores: np.ndarray | None = None

    def to_dict(self) -> dict:
        out = {"method": self.method, "params": dict(self.params), "images": []}
        for i in range(len(self.classes)):
            item = {"class": int(self.classes[i]), "class_name": self.class_names[i] if self.class_names else "",
                    "score": float(self.scores[i]), "map_max": float(self.maps[i].max()),
                    "map_mean": float(self.maps[i].mean())}
            if self.baseline_scores is not None:
                item["baseline_score"] = float(self.baseline_scores[i])
                item["attribution_sum"] = float(self.attributions[i].sum())
            out["images"].append(item)
        return out

    def save(self, dest) -> list:
        """Write '<i>_map.png' and '<i>_overlay.png' per image (dest: folder or '.png' path)."""
        from gradscope.imageio import heatmap, overlay, save_images

        named = {}
        for i in range(len(self.maps)):
            named[f"{i}_map"] = heatmap(self.maps[i])
            named[f"{i}_overlay"] = overlay(self.images[i], self.maps[i])
        return save_images(dest, named)


def _check_chunk(chunk):
    return check_positive("chunk", chunk, integer=True)


def _names(model, classes):
    return [str(model.class_names[c]) for c in classes]


def saliency(model, x, classes=None) -> SaliencyResult:
    """Vanilla saliency maps (Simonyan 2014).

    Args:
        model: an ImageModel.
        x: (N, 3, H, W) model input (or one (3, H, W) image).
        classes: one class or N classes (index, wnid or name); None = predicted class.
    Returns:
        SaliencyResult with maps (N, H, W) = max over channels of |d score_c / d x|.
    """
    x = check_not_constant(check_images("x", x))
    classes = class_indices(model, classes, len(x), x)
    scores, dx = score_gradient(model, x, classes)
    return SaliencyResult(method="vanilla", maps=np.abs(dx).max(axis=1), attributions=dx, classes=classes,
                          scores=scores[np.arange(len(x)), classes], images=model.deprocess(x),
                          class_names=_names(model, classes))


def _sample_gradients(model, n_images, n_samples, chunk, make_inputs, classes, dtype, shape, callback=None):
    """Sum over samples of the class-score gradients, chunk inputs per model call.

    make_inputs(rows) -> inputs for flat sample indices rows (image = row // n_samples).
    callback(done, {'total': n_images * n_samples}) after each chunk (done: inputs so far).
    Returns (N, 3, H, W) sums."""
    total = n_images * n_samples
    sums = np.zeros(shape, dtype=dtype)
    for start in range(0, total, chunk):
        rows = np.arange(start, min(start + chunk, total))
        owners = rows // n_samples
        _, g = score_gradient(model, make_inputs(rows), classes[owners])
        np.add.at(sums, owners, g)
        report(callback, int(rows[-1]) + 1, total=total)
    return sums


@SETTINGS.document
def smoothgrad(model, x, classes=None, n_samples: int = DEFAULTS["n_samples"],
               sigma: float = DEFAULTS["sigma"],
               chunk: int = 64, seed: int = 0, callback=None) -> SaliencyResult:
    """SmoothGrad (Smilkov 2017): average the gradient over n_samples copies of x with
    Gaussian noise of std sigma * (input range), then |.| max over channels.

    Args:
        sigma: noise level as a fraction of the model-input range of a pixel (hi - lo).
        chunk: noisy images per model call (bounds memory).
        seed: seeds the noise; the result does not depend on chunk.
        callback: callback(done, {'total'}) after each chunk (done: noisy inputs so far).
    Defaults: n_samples {n_samples}, sigma {sigma}.
    """
    x = check_not_constant(check_images("x", x))
    check_positive("n_samples", n_samples, integer=True)
    check_positive("sigma", sigma, allow_zero=True)
    _check_chunk(chunk)
    classes = class_indices(model, classes, len(x), x)
    lo, hi = model.pixel_bounds()
    std = (sigma * (hi - lo)).astype(x.dtype)  # (1, 3, 1, 1)
    rng = np.random.default_rng(seed)

    def noisy(rows):
        noise = rng.standard_normal((len(rows),) + x.shape[1:])  # drawn in row order: chunk-independent
        return x[rows // n_samples] + std * noise.astype(x.dtype)

    grad = _sample_gradients(model, len(x), n_samples, chunk, noisy, classes, x.dtype, x.shape,
                             callback) / n_samples
    scores = model.scores(x)[np.arange(len(x)), classes]
    return SaliencyResult(method="smoothgrad", maps=np.abs(grad).max(axis=1), attributions=grad, classes=classes,
                          scores=scores, images=model.deprocess(x), class_names=_names(model, classes),
                          params={"n_samples": n_samples, "sigma": sigma, "seed": seed})


def _baseline_array(model, x, baseline):
    """Baseline as an array like x: None or 'gray' = mid-range (the grey that the deletion
    metric fills in), 'black' = pixel 0, or an array broadcastable to x."""
    lo, hi = model.pixel_bounds()
    if isinstance(baseline, str) and baseline == "black":
        return np.broadcast_to(lo.astype(x.dtype), x.shape).copy()
    if baseline is None or (isinstance(baseline, str) and baseline == "gray"):
        return np.broadcast_to(((lo + hi) / 2).astype(x.dtype), x.shape).copy()
    if isinstance(baseline, str):
        raise ShapeError(f"unknown baseline {baseline!r}: expected 'black', 'gray' or an array")
    b = np.asarray(baseline, dtype=x.dtype)
    try:
        return np.broadcast_to(b, x.shape).copy()
    except ValueError:
        raise ShapeError(f"baseline of shape {b.shape} does not broadcast to the input shape {x.shape}") from None


@SETTINGS.document
def integrated_gradients(model, x, classes=None, points: int = DEFAULTS["points"], baseline=None,
                         chunk: int = 64, callback=None) -> SaliencyResult:
    """Integrated gradients (Sundararajan 2017), midpoint rule with `points` path points.

    Args:
        baseline: None/'gray' (mid-range pixel, the deletion metric's fill: on the 25 shared
            ImageNet photos with EfficientNet-Lite0 its maps beat random ones on deletion, the
            black baseline's did not; README), 'black' (pixel value 0, the IG paper's), or an
            array broadcastable to x.
        chunk: path images per model call.
        callback: callback(done, {'total'}) after each chunk (done: path images so far).
    Default: points {points}.
    Returns:
        SaliencyResult with attributions (N, 3, H, W) summing approximately to
        score(x) - score(baseline) (completeness) and maps = sum over channels of |attribution|.
    """
    x = check_not_constant(check_images("x", x))
    check_positive("points", points, integer=True)
    _check_chunk(chunk)
    classes = class_indices(model, classes, len(x), x)
    base = _baseline_array(model, x, baseline)
    alphas = ((np.arange(points) + 0.5) / points).astype(x.dtype)  # (points,)
    delta = x - base

    def path(rows):
        a = alphas[rows % points][:, None, None, None]
        return base[rows // points] + a * delta[rows // points]

    grad = _sample_gradients(model, len(x), points, chunk, path, classes, x.dtype, x.shape, callback) / points
    attr = delta * grad
    idx = np.arange(len(x))
    return SaliencyResult(method="integrated_gradients", maps=np.abs(attr).sum(axis=1), attributions=attr,
                          classes=classes, scores=model.scores(x)[idx, classes], images=model.deprocess(x),
                          class_names=_names(model, classes), params={"points": points},
                          baseline_scores=model.scores(base)[idx, classes])
