"""Feature inversion (Mahendran & Vedaldi 2015): from noise, find an image whose
activations at a layer match those of a target image, under image priors.

Loss per image: ||phi(x) - phi(x0)||^2 / ||phi(x0)||^2 (the squared relative distance)
+ (l2_reg * ||x - mid-gray||^2 + tv_weight * TV(x)) / (3 H W); minimised with Adam.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gradscope.methods import regularizers as rg
from gradscope.methods._inputs import check_images, check_positive, layer_name, quantize
from gradscope.methods.ascent import ascend
from gradscope.methods.objectives import feature_match
from gradscope.methods.steps import adam_step
from gradscope.methods.settings import MethodSettings, Setting

__all__ = ["InversionResult", "invert", "DEFAULTS", "SETTINGS"]

SETTINGS = MethodSettings(
    "invert",
    Setting("iterations", 400, "positive_int", "Adam steps"),
    Setting("lr", 0.05, "positive_float", "Adam learning rate (model-input units)"),
    Setting("l2_reg", 1e-3, "nonneg_float", "L2 prior weight"),
    Setting("tv_weight", 1e-2, "nonneg_float", "total-variation prior weight"),
    Setting("blur_every", 0, "nonneg_int", "blur every N steps (0: never)"),
    Setting("blur_sigma", 0.5, "blur", "blur width in pixels"))
DEFAULTS = SETTINGS.defaults


@dataclass
class InversionResult:
    """images uint8 (N, H, W, 3) reconstructions; target_images uint8 the originals;
    distance_history (iterations, N) relative feature distance ||phi(x)-phi(x0)||/||phi(x0)||;
    final_distance (N,) of the saved uint8 reconstruction."""
    images: np.ndarray
    target_images: np.ndarray
    layer: str
    distance_history: np.ndarray
    final_distance: np.ndarray
    params: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"layer": self.layer, "params": dict(self.params),
                "final_distance": [float(v) for v in self.final_distance],
                "distance_history": [[float(v) for v in row] for row in self.distance_history.T]}

    def save(self, dest) -> list:
        """Write '<i>_inverted.png' and '<i>_target.png' per image."""
        from gradscope.imageio import save_images

        named = {}
        for i in range(len(self.images)):
            named[f"{i}_inverted"] = self.images[i]
            named[f"{i}_target"] = self.target_images[i]
        return save_images(dest, named)


@SETTINGS.document
def invert(model, x_target, layer, *, iterations: int = DEFAULTS["iterations"], lr: float = DEFAULTS["lr"],
           l2_reg: float = DEFAULTS["l2_reg"], tv_weight: float = DEFAULTS["tv_weight"],
           blur_every: int = DEFAULTS["blur_every"], blur_sigma: float = DEFAULTS["blur_sigma"],
           init_std: float = 0.05, priors=(), transforms=(), seed: int = 0, callback=None) -> InversionResult:
    """Reconstruct each image of x_target from its activations at `layer`.

    Args:
        model: an ImageModel.
        x_target: (N, 3, H, W) model input whose features are matched.
        layer: layer name or index (see model.layer_names).
        iterations, lr: Adam steps and learning rate in model-input units (default {iterations}, {lr}).
        l2_reg, tv_weight: prior weights per value of the image (default {l2_reg}, {tv_weight}).
        blur_every, blur_sigma: Gaussian blur every this many steps (0 = never).
        init_std: std of the initial noise as a fraction of the pixel range.
        priors, transforms: more Priors / Transforms (gradscope.methods.regularizers) to add.
        seed: seeds the initial noise.
        callback: callback(iteration, info) with 'distance' (N,), 'octave' and 'images'.
    """
    x_target = check_images("x_target", x_target)
    name = layer_name(model, layer)
    check_positive("iterations", iterations, integer=True, allow_zero=True)
    check_positive("lr", lr)
    for k, v in (("l2_reg", l2_reg), ("tv_weight", tv_weight), ("blur_sigma", blur_sigma), ("init_std", init_std)):
        check_positive(k, v, allow_zero=True)
    check_positive("blur_every", blur_every, integer=True, allow_zero=True)
    goal = feature_match(name, model.forward_to(x_target, name)[0])
    lo, hi = (b.astype(x_target.dtype) for b in model.pixel_bounds())
    rng = np.random.default_rng(seed)
    x0 = (lo + hi) / 2 + (init_std * (hi - lo) * rng.standard_normal(x_target.shape)).astype(x_target.dtype)
    per_value = 1.0 / float(np.prod(x_target.shape[1:]))  # the priors are means over the image's values
    own = [rg.l2_prior(l2_reg * per_value, (lo + hi) / 2)] + ([rg.tv_prior(tv_weight * per_value)] if tv_weight else [])
    run = ascend(model, x0, goal, iterations=iterations, step=adam_step(lr), priors=own + list(priors),
                 transforms=[*transforms, rg.blur_every(blur_every, blur_sigma), rg.clip_pixels()], rng=rng,
                 callback=callback)
    xq = quantize(model, run.x)
    params = {"l2_reg": l2_reg, "tv_weight": tv_weight, "iterations": iterations, "lr": lr,
              "blur_every": blur_every, "blur_sigma": blur_sigma, "init_std": init_std, "seed": seed}
    return InversionResult(images=model.deprocess(xq), target_images=model.deprocess(x_target), layer=name,
                           distance_history=run.history.get("distance", np.zeros((0, len(x_target)))),
                           final_distance=goal(model, xq).info["distance"], params=params)
