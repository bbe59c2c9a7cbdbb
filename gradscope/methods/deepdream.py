"""DeepDream (Mordvintsev et al. 2015): amplify whatever a layer sees by gradient ascent
on 0.5 * ||a||^2 of its activations (so the upstream gradient is the activations
themselves), with random jitter and coarse-to-fine octaves. Octave detail is carried
up as in the original: each octave starts from the image at that size plus the
upsampled change made so far. Works at any image size the model's conv part accepts.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gradscope.methods._inputs import check_images, check_positive, layer_name, report
from gradscope.methods.class_visualization import octave_sizes
from gradscope.methods.regularizers import clip_to_bounds, random_jitter, resize, roll
from gradscope.methods.steps import unit_mean_abs

__all__ = ["DreamResult", "deepdream", "DEFAULTS"]

DEFAULTS = {"iterations": 30, "lr": 0.02, "jitter": 4, "octaves": 3, "octave_scale": 1.4}


@dataclass
class DreamResult:
    """images uint8 (N, H, W, 3) dreamt; original_images uint8; activation_norm
    (iterations, N): RMS of the layer's activations (||a|| / sqrt(size), comparable
    across octave sizes) before each step; sizes: the octave sides used."""
    images: np.ndarray
    original_images: np.ndarray
    layer: str
    activation_norm: np.ndarray
    sizes: list
    params: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"layer": self.layer, "params": dict(self.params), "sizes": [list(s) for s in self.sizes],
                "activation_norm": [[float(v) for v in row] for row in self.activation_norm.T]}

    def save(self, dest) -> list:
        """Write '<i>_dream.png' per image (dest: folder, or '.png' path for one)."""
        from gradscope.imageio import save_images

        return save_images(dest, {f"{i}_dream": img for i, img in enumerate(self.images)})


def _dream_step(model, x, layer, lr, jitter, rng):
    """One ascent step on 0.5 ||a||^2 of the jittered image: (new x, activation RMS (N,))."""
    xj, (dy, dx) = random_jitter(x, jitter, rng)
    act, cache = model.forward_to(xj, layer)
    g = roll(unit_mean_abs(model.backward_from(act, cache)), -dy, -dx)
    rms = np.sqrt(np.mean(act.reshape(len(act), -1).astype(np.float64) ** 2, axis=1))
    return x + lr * g, rms


def _octave_shapes(h, w, octaves, scale):
    """(h, w) per octave from coarse to fine, the finest being the input's."""
    sides = octave_sizes(max(h, w), octaves, scale)
    return [(max(1, round(h * s / max(h, w))), max(1, round(w * s / max(h, w)))) for s in sides]


def deepdream(model, x, layer, iterations: int = DEFAULTS["iterations"], lr: float = DEFAULTS["lr"],
              jitter: int = DEFAULTS["jitter"], octaves=DEFAULTS["octaves"],
              octave_scale: float = DEFAULTS["octave_scale"], seed: int = 0, callback=None) -> DreamResult:
    """Dream on images x at a layer.

    Args:
        model: an ImageModel whose conv part accepts the image size(s).
        x: (N, 3, H, W) model input (any H, W the model accepts).
        layer: layer name or index.
        iterations: steps per octave.
        lr: step size; the gradient is divided by its mean |value| per image (model-input units).
        jitter: largest random shift in pixels before each step (undone after).
        octaves, octave_scale: number of scales (None = one) and their ratio.
        seed: seeds the jitter.
        callback: callback(iteration, info) with 'activation_norm' (N,), 'octave', 'images'.
    """
    x = check_images("x", x)
    name = layer_name(model, layer)
    check_positive("iterations", iterations, integer=True, allow_zero=True)
    check_positive("jitter", jitter, integer=True, allow_zero=True)
    check_positive("lr", lr)
    check_positive("octave_scale", octave_scale)
    rng = np.random.default_rng(seed)
    bounds = model.pixel_bounds()
    shapes = _octave_shapes(x.shape[2], x.shape[3], octaves, octave_scale)
    detail = np.zeros((len(x), 3) + shapes[0], dtype=x.dtype)
    history, it = [], 0
    for k, shape in enumerate(shapes):
        base = resize(x, shape)
        img = clip_to_bounds(base + resize(detail, shape), bounds)
        for _ in range(iterations):
            img, rms = _dream_step(model, img, name, lr, jitter, rng)
            img = clip_to_bounds(img, bounds)
            history.append(rms)
            it += 1
            report(callback, it, activation_norm=rms, octave=k, images=model.deprocess(img))
        detail = img - base
    params = {"iterations": iterations, "lr": lr, "jitter": jitter, "octaves": octaves,
              "octave_scale": octave_scale, "seed": seed}
    hist = np.asarray(history) if history else np.zeros((0, len(x)))
    return DreamResult(model.deprocess(img), model.deprocess(x), name, hist, shapes, params)
