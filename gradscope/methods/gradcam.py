"""Grad-CAM (Selvaraju et al. 2017): a class-discriminative map from one layer's
activations A (N, K, h, w), weighted by the spatial mean of the class score's gradient.

    weights[n, k] = mean over (i, j) of d f_c / d A[n, k, i, j]
    cam[n] = ReLU(sum_k weights[n, k] * A[n, k])                       # (N, h, w)
    maps = cam bilinearly upsampled (half-pixel centres) to the input's (H, W)

f_c is the class's raw score (`target="score"`, the paper's and captum's LayerGradCam) or its
log-softmax probability (`target="log_prob"`: the evidence for c against the other classes).
The default layer is the last one with spatial extent (an (N, K, h, w) output with
h * w > 1), found by walking layer_names back from the output: the last convolutional
block, before global pooling. The gradient at the layer comes from model.layer_gradient.
"""
from __future__ import annotations

import numpy as np

from gradscope.errors import GradscopeError
from gradscope.interface import SCORE_TARGETS, resolve_layer, score_layer_gradient
from gradscope.methods._inputs import check_images, check_not_constant, check_positive, class_indices, report
from gradscope.methods.regularizers import resize
from gradscope.methods.saliency import SaliencyResult
from gradscope.methods.settings import MethodSettings, Setting

__all__ = ["SETTINGS", "DEFAULTS", "gradcam", "default_layer"]

SETTINGS = MethodSettings(
    "gradcam",
    Setting("layer", None, "text", "gradcam: layer name or index (none: the last layer with spatial extent)"),
    Setting("target", "score", "choice", "gradcam: differentiate the class's raw score (as the paper and captum) "
            "or its log-probability (log-softmax)", choices=tuple(SCORE_TARGETS), flag="--gradcam-target"),
    Setting("chunk", 16, "positive_int", "images per model call"))
DEFAULTS = SETTINGS.defaults


def _has_extent(act) -> bool:
    return act.ndim == 4 and act.shape[2] * act.shape[3] > 1


def default_layer(model, x) -> str:
    """The name of the last layer whose output on x[:1] has spatial extent (N, K, h, w), h * w > 1."""
    for name in reversed(model.layer_names):
        act, _ = model.forward_to(x[:1], name)
        if _has_extent(np.asarray(act)):
            return name
    raise GradscopeError("the model has no layer with spatial extent: Grad-CAM needs an (N, K, h, w) layer")


def _cam(act, dact):
    """ReLU(sum_k mean_ij(dact) * act): (N, h, w)."""
    weights = dact.mean(axis=(2, 3))  # (N, K)
    return np.maximum(np.einsum("nk,nkij->nij", weights, act), 0)


@SETTINGS.document
def gradcam(model, x, classes=None, *, layer=None, target: str = DEFAULTS["target"], chunk: int = DEFAULTS["chunk"],
            callback=None) -> SaliencyResult:
    """Grad-CAM maps of classes at a layer.

    Args:
        model: an ImageModel with layer_gradient.
        x: (N, 3, H, W) model input (or one (3, H, W) image).
        classes: one class or N classes (index, wnid or name); None = predicted class.
        layer: layer name or index; None = the last layer with spatial extent.
        target: 'score' (the raw class score) or 'log_prob' (its log-softmax) (default {target}).
        chunk: images per model call (default {chunk}).
        callback: callback(images_done, info) with 'total' after each chunk.
    Returns:
        SaliencyResult with maps (N, H, W) >= 0 and attributions the layer-resolution cams (N, h, w).
    Raises:
        GradscopeError for a layer without spatial extent, a constant image or a bad class.
    """
    check_positive("chunk", chunk, integer=True)
    x = check_not_constant(check_images("x", x))
    classes = class_indices(model, classes, len(x), x)
    name = default_layer(model, x) if layer is None else model.layer_names[resolve_layer(model, layer)]
    cams, scores = [], []
    for start in range(0, len(x), chunk):
        part = slice(start, start + chunk)
        out, act, dact = score_layer_gradient(model, x[part], name, classes[part], target)
        if not _has_extent(act):
            raise GradscopeError(f"layer {name!r} has no spatial extent (output shape {act.shape[1:]}); Grad-CAM "
                                 "needs an (N, K, h, w) layer with h * w > 1, e.g. the last convolutional block")
        cams.append(_cam(act.astype(np.float64), dact.astype(np.float64)))
        scores.append(out[np.arange(len(act)), classes[part]])
        report(callback, min(start + chunk, len(x)), total=len(x))
    cam = np.concatenate(cams)
    maps = resize(cam[:, None], x.shape[2:])[:, 0].astype(x.dtype)
    return SaliencyResult(method="gradcam", maps=maps, attributions=cam.astype(x.dtype), classes=classes,
                          scores=np.concatenate(scores), images=model.deprocess(x),
                          class_names=[str(model.class_names[c]) for c in classes],
                          params=SETTINGS.params(layer=name, target=target, chunk=chunk))
