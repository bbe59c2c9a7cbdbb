"""Feature inversion (Mahendran & Vedaldi 2015): from noise, find an image whose
activations at a layer match those of a target image, under image priors.

Loss per image: ||phi(x) - phi(x0)||^2 / ||phi(x0)||^2 (the squared relative distance)
+ (l2_reg * ||x - mid-gray||^2 + tv_weight * TV(x)) / (3 H W); minimised with Adam.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gradscope.methods._inputs import check_images, check_positive, layer_name, quantize, report
from gradscope.methods.regularizers import clip_to_bounds, gaussian_blur, l2_penalty, total_variation
from gradscope.training.optim import adam

__all__ = ["InversionResult", "invert", "DEFAULTS"]

DEFAULTS = {"iterations": 400, "lr": 0.05, "l2_reg": 1e-3, "tv_weight": 1e-2, "blur_every": 0, "blur_sigma": 0.5}


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


def _relative_distance(act, target, target_sq):
    diff = act - target
    sq = np.sum(diff.reshape(len(act), -1).astype(np.float64) ** 2, axis=1)
    return diff, np.sqrt(sq / target_sq)


def _loss_grad(model, x, layer, target, target_sq, center, cfg):
    """(relative distances (N,), gradient of the loss w.r.t. x)."""
    act, cache = model.forward_to(x, layer)
    diff, dist = _relative_distance(act, target, target_sq)
    shape = (-1,) + (1,) * (act.ndim - 1)
    g = model.backward_from((2.0 * diff / target_sq.reshape(shape)).astype(act.dtype), cache)
    per_value = 1.0 / float(np.prod(x.shape[1:]))
    g = g + l2_penalty(x - center, cfg["l2_reg"] * per_value)[1]
    if cfg["tv_weight"]:
        g = g + total_variation(x, cfg["tv_weight"] * per_value)[1]
    return dist, g


def invert(model, x_target, layer, iterations: int = DEFAULTS["iterations"], lr: float = DEFAULTS["lr"],
           l2_reg: float = DEFAULTS["l2_reg"], tv_weight: float = DEFAULTS["tv_weight"],
           blur_every: int = DEFAULTS["blur_every"], blur_sigma: float = DEFAULTS["blur_sigma"],
           init_std: float = 0.05, seed: int = 0, callback=None) -> InversionResult:
    """Reconstruct each image of x_target from its activations at `layer`.

    Args:
        model: an ImageModel.
        x_target: (N, 3, H, W) model input whose features are matched.
        layer: layer name or index (see model.layer_names).
        iterations, lr: Adam steps and learning rate (model-input units).
        l2_reg, tv_weight: prior weights (per value of the image).
        blur_every, blur_sigma: Gaussian blur every this many steps (0 = never).
        init_std: std of the initial noise as a fraction of the pixel range.
        callback: callback(iteration, info) with 'distance' (N,) and 'images'.
    """
    x_target = check_images("x_target", x_target)
    name = layer_name(model, layer)
    check_positive("iterations", iterations, integer=True, allow_zero=True)
    check_positive("lr", lr)
    for k, v in (("l2_reg", l2_reg), ("tv_weight", tv_weight), ("blur_sigma", blur_sigma), ("init_std", init_std)):
        check_positive(k, v, allow_zero=True)
    check_positive("blur_every", blur_every, integer=True, allow_zero=True)
    target = model.forward_to(x_target, name)[0]
    target_sq = np.maximum(np.sum(target.reshape(len(target), -1).astype(np.float64) ** 2, axis=1), 1e-12)
    lo, hi = (b.astype(x_target.dtype) for b in model.pixel_bounds())
    center = (lo + hi) / 2
    rng = np.random.default_rng(seed)
    x = center + (init_std * (hi - lo) * rng.standard_normal(x_target.shape)).astype(x_target.dtype)
    cfg, opt = {"l2_reg": l2_reg, "tv_weight": tv_weight}, {"learning_rate": lr}
    history = []
    for it in range(1, iterations + 1):
        dist, g = _loss_grad(model, x, name, target, target_sq, center, cfg)
        x, opt = adam(x, g.astype(x.dtype), opt)
        if blur_every and blur_sigma > 0 and it % blur_every == 0:
            x = gaussian_blur(x, blur_sigma)
        x = clip_to_bounds(x, (lo, hi))
        history.append(dist)
        report(callback, it, distance=dist, images=model.deprocess(x))
    xq = quantize(model, x)
    final = _relative_distance(model.forward_to(xq, name)[0], target, target_sq)[1]
    params = dict(cfg, iterations=iterations, lr=lr, blur_every=blur_every, blur_sigma=blur_sigma,
                  init_std=init_std, seed=seed)
    hist = np.asarray(history) if history else np.zeros((0, len(x)))
    return InversionResult(model.deprocess(xq), model.deprocess(x_target), name, hist, final, params)
