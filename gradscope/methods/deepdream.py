"""DeepDream (Mordvintsev et al. 2015): amplify whatever a layer sees by gradient ascent
on 0.5 * ||a||^2 of its activations (so the upstream gradient is the activations
themselves), with random jitter and coarse-to-fine octaves. Octave detail is carried
up as in the original: each octave starts from the image at that size plus the
upsampled change made so far. Works at any image size the model's conv part accepts.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gradscope.methods import regularizers as rg
from gradscope.methods._inputs import check_images, check_positive, layer_name
from gradscope.methods.ascent import ascend, octave_shapes
from gradscope.methods.objectives import activation_energy
from gradscope.methods.steps import normalized_step, unit_mean_abs
from gradscope.methods.settings import MethodSettings, Setting

__all__ = ["DreamResult", "deepdream", "DEFAULTS", "SETTINGS"]

# iterations: total steps, split evenly over the octaves (30 per octave by default)
SETTINGS = MethodSettings(
    "deepdream",
    Setting("iterations", 90, "positive_int", "total steps, spread over the octaves"),
    Setting("lr", 0.02, "positive_float", "step size (gradient divided by its mean |value|)"),
    Setting("jitter", 4, "nonneg_int", "largest random shift in pixels per step"),
    Setting("octaves", 3, "positive_int", "number of scales, coarse to fine"),
    Setting("octave_scale", 1.4, "factor", "size ratio between octaves (> 1)"))
DEFAULTS = SETTINGS.defaults


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


@SETTINGS.document
def deepdream(model, x, layer, *, iterations: int = DEFAULTS["iterations"], lr: float = DEFAULTS["lr"],
              jitter: int = DEFAULTS["jitter"], octaves=DEFAULTS["octaves"],
              octave_scale: float = DEFAULTS["octave_scale"], priors=(), transforms=(), seed: int = 0,
              callback=None) -> DreamResult:
    """Dream on images x at a layer.

    Args:
        model: an ImageModel whose conv part accepts the image size(s).
        x: (N, 3, H, W) model input (any H, W the model accepts).
        layer: layer name or index.
        iterations: total steps, spread over the octaves (default {iterations}).
        lr: step size; the gradient is divided by its mean |value| per image (model-input units).
        jitter: largest random shift in pixels before each step, undone after (default {jitter}).
        octaves, octave_scale: number of scales (None = one) and their ratio (default {octaves} and
            {octave_scale}).
        priors, transforms: Priors / Transforms (gradscope.methods.regularizers) to add,
            e.g. priors=[tv_prior(1e-3)].
        seed: seeds the jitter.
        callback: callback(iteration, info) with 'activation_norm' (N,), 'octave', 'images'.
    """
    x = check_images("x", x)
    name = layer_name(model, layer)
    check_positive("iterations", iterations, integer=True, allow_zero=True)
    check_positive("jitter", jitter, integer=True, allow_zero=True)
    check_positive("lr", lr)
    check_positive("octave_scale", octave_scale)
    shapes = octave_shapes(x.shape[2], x.shape[3], octaves, octave_scale)
    run = ascend(model, x, activation_energy(name), iterations=iterations, step=normalized_step(lr, unit_mean_abs),
                 priors=priors, transforms=[rg.jitter(jitter), *transforms, rg.clip_pixels()], octaves=shapes,
                 octave_base=x, rng=np.random.default_rng(seed), callback=callback)
    params = {"iterations": iterations, "lr": lr, "jitter": jitter, "octaves": octaves,
              "octave_scale": octave_scale, "seed": seed}
    return DreamResult(images=model.deprocess(run.x), original_images=model.deprocess(x), layer=name,
                       activation_norm=run.history.get("activation_norm", np.zeros((0, len(x)))),
                       sizes=run.shapes, params=params)
