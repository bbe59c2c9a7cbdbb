"""Feature visualisation (Olah et al., "Feature Visualization", Distill 2017): an image that
maximises a channel or a neuron of a layer, found Lucid's way, by changing what is optimised
rather than the objective:

- the image is parameterised by Fourier coefficients scaled by 1/frequency, in decorrelated
  colour, squashed by a sigmoid (params.lucid_image), at `param_size` px upsampled to the
  network's input size;
- every step sees a randomly padded, crop-jittered, rescaled and rotated copy (views.py),
  resized back to the input size (Lucid's values at 128 px, scaled to the input size);
- Adam (lr 0.05) for 512 steps.

`lucid_render` is that loop for any objective (class visualisation uses it too); LUCID is
its settings record, SETTINGS the help of each setting (the CLI's flags come from both).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gradscope.errors import GradscopeError
from gradscope.methods._inputs import check_positive, layer_name, quantize
from gradscope.methods.ascent import optimize
from gradscope.methods.objectives import channel as channel_objective
from gradscope.methods.objectives import diversity, neuron
from gradscope.methods.params import lucid_image
from gradscope.methods.steps import adam_step
from gradscope.methods.views import crop_jitter, pad, random_rotate, random_scale, resize_to

__all__ = ["FeatureVisResult", "visualize_feature", "lucid_render", "lucid_views_for", "LUCID", "SETTINGS",
           "check_settings", "parse_feature"]

# the settings of the Lucid recipe; transform sizes are pixels of a 128-px image, scaled to the
# model's input size (Lucid renders at 128 px)
LUCID = {"iterations": 512, "lr": 0.05, "param_size": 128, "fourier_sd": 0.01, "decay_power": 1.0,
         "decorrelate": True, "pad": 12, "jitter": 8, "jitter2": 4, "scale_jitter": 0.1, "rotate": 10.0}

# type and help of every setting of the image-synthesis recipes (Lucid's here, the pixel
# recipe's in class_visualization.py): the CLI builds its flags from these
SETTINGS = {
    "iterations": (int, "total steps"),
    "lr": (float, "step size (Adam's learning rate for the lucid recipe; per-value for pixel)"),
    "param_size": (int, "side of the Fourier parameterisation in px (upsampled to the model's input size; "
                          "at most that size)"),
    "fourier_sd": (float, "std of the initial Fourier coefficients"),
    "decay_power": (float, "coefficients scaled by 1 / frequency ** this"),
    "decorrelate": (bool, "optimise in decorrelated colour (Lucid's 3x3 matrix)"),
    "pad": (int, "pad width per side in px of a 128-px image (0: none)"),
    "jitter": (int, "random shift in px per step (lucid: of a 128-px image)"),
    "jitter2": (int, "second random shift after scale and rotation, px of a 128-px image"),
    "scale_jitter": (float, "random rescaling per step (fraction)"),
    "rotate": (float, "random rotation per step, degrees"),
}


def check_settings(cfg: dict) -> None:
    """GradscopeError naming a setting of the wrong type or range."""
    for name, v in cfg.items():
        kind = SETTINGS.get(name, (None,))[0]
        if kind is bool:
            if not isinstance(v, (bool, np.bool_)):
                raise GradscopeError(f"{name} must be true or false, got {v!r}")
        elif kind is int:
            check_positive(name, v, integer=True, allow_zero=name != "param_size")
        elif kind is float:
            check_positive(name, v, allow_zero=name not in ("lr",))


def lucid_views_for(model, cfg: dict) -> list:
    """The recipe's views at the model's input size: pad (mid-grey), crop-jitter, random scale,
    random rotation, crop-jitter, resize back to the input size."""
    size = model.input_size
    k = size / 128.0
    lo, hi = model.pixel_bounds()
    grey = ((np.asarray(lo) + np.asarray(hi)) / 2).reshape(1, -1, 1, 1)
    s = cfg["scale_jitter"]
    return [pad(round(cfg["pad"] * k), grey), crop_jitter(round(cfg["jitter"] * k)), random_scale(1 - s, 1 + s),
            random_rotate(cfg["rotate"]), crop_jitter(round(cfg["jitter2"] * k)), resize_to(size)]


def lucid_render(model, objective, n: int, cfg: dict, seed: int = 0, callback=None, dtype=np.float32):
    """Optimise n Lucid-parameterised images for objective(model, x) with the recipe's views
    and Adam: OptimizeResult (x: (n, 3, S, S) model input at the model's input size S)."""
    rng = np.random.default_rng(seed)
    side = min(cfg["param_size"], model.input_size)  # no finer than the network's input
    param = lucid_image(model, n, side, rng, sd=cfg["fourier_sd"], decay_power=cfg["decay_power"],
                        decorrelate=bool(cfg["decorrelate"]), dtype=dtype)
    return optimize(model, param, objective, iterations=cfg["iterations"], step=adam_step(cfg["lr"]),
                    views=lucid_views_for(model, cfg), rng=rng, callback=callback)


@dataclass
class FeatureVisResult:
    """images uint8 (N, H, W, 3), one per channel; value_history (iterations, N) of the
    objective during the ascent (on the transformed view); final_value (N,) on the saved
    uint8 image (no transform)."""
    images: np.ndarray
    layer: str
    channels: list
    kind: str
    value_history: np.ndarray
    final_value: np.ndarray
    params: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"layer": self.layer, "kind": self.kind, "params": dict(self.params), "results": [
            {"channel": int(c), "final_value": float(self.final_value[i]),
             "value_history": [float(v) for v in self.value_history[:, i]]} for i, c in enumerate(self.channels)]}

    def save(self, dest) -> list:
        """Write '<layer>_<kind><channel>.png' per image (dest: folder, or '.png' path for one)."""
        from gradscope.imageio import save_images

        stem = self.layer.replace(".", "-")
        return save_images(dest, {f"{stem}_{self.kind}{int(c)}": self.images[i] for i, c in enumerate(self.channels)})


def parse_feature(spec: str) -> tuple[str, int]:
    """'LAYER:CHANNEL' -> (layer, channel); GradscopeError otherwise."""
    layer, sep, c = str(spec).rpartition(":")
    if not sep or not layer or not c.strip().isdigit():
        raise GradscopeError(f"expected LAYER:CHANNEL (e.g. blocks.10:7), got {spec!r}")
    return layer, int(c)


def visualize_feature(model, layer, channels, *, kind: str = "channel", diversity_weight: float = 0.0,
                      seed: int = 0, callback=None, **settings) -> FeatureVisResult:
    """Synthesise one image per channel of `layer` that maximises its mean activation
    (kind 'channel') or its centre unit (kind 'neuron'), with the Lucid recipe.

    Args:
        model: an ImageModel.
        layer: layer name or index (model.layer_names).
        channels: a channel index or a list of them (one image each).
        kind: 'channel' or 'neuron'.
        diversity_weight: weight of a diversity term at the layer (a batch of different images).
        seed: seeds the initial coefficients and the views.
        callback: callback(iteration, info) with 'objective' (N,), 'images', 'total'.
        settings: LUCID's keys (iterations, lr, param_size, ...).
    """
    name = layer_name(model, layer)
    chans = [int(channels)] if isinstance(channels, (int, np.integer)) else [int(c) for c in channels]
    terms = {"channel": channel_objective, "neuron": neuron}
    if kind not in terms:
        raise GradscopeError(f"unknown kind {kind!r}: expected channel or neuron")
    unknown = sorted(set(settings) - set(LUCID))
    if unknown:
        raise GradscopeError(f"unknown setting(s) {', '.join(unknown)}: expected some of {', '.join(LUCID)}")
    cfg = dict(LUCID, **{k: v for k, v in settings.items() if v is not None})
    check_settings(cfg)
    check_positive("diversity_weight", diversity_weight, allow_zero=True)
    goal = terms[kind](name, np.asarray(chans))
    if diversity_weight:
        goal = goal + diversity_weight * diversity(name)
    run = lucid_render(model, goal, len(chans), cfg, seed, callback)
    final = terms[kind](name, np.asarray(chans))(model, quantize(model, run.x)).value
    return FeatureVisResult(images=model.deprocess(run.x), layer=name, channels=chans, kind=kind,
                            value_history=run.history.get("objective", np.zeros((0, len(chans)))),
                            final_value=final, params=dict(cfg, kind=kind, diversity_weight=diversity_weight,
                                                           seed=seed))
