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
its settings (SETTINGS: one record of defaults, CLI options and JSON params).
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
from gradscope.methods.settings import MethodSettings, Setting
from gradscope.methods.steps import adam_step
from gradscope.methods.views import colour_jitter, crop_jitter, pad, random_flip, random_rotate, random_scale, resize_to

__all__ = ["FeatureVisResult", "visualize_feature", "lucid_render", "lucid_views_for", "LUCID", "LUCID_SETTINGS",
           "SETTINGS",
           "check_settings", "parse_feature"]

# the settings of the Lucid recipe (one record: defaults, CLI options, JSON params); transform
# sizes are pixels of a 128-px image, scaled to the model's input size (Lucid renders at 128 px)
LUCID_SETTINGS = (
    Setting("iterations", 512, "positive_int", "total steps"),
    Setting("lr", 0.05, "positive_float", "Adam's learning rate (lucid); step size per value (pixel)"),
    Setting("param_size", 128, "positive_int", "side in px of the Fourier parameterisation (lucid), upsampled to "
            "the model's input size (at most that size)"),
    Setting("fourier_sd", 0.01, "nonneg_float", "std of the initial Fourier coefficients (lucid)"),
    Setting("decay_power", 1.0, "nonneg_float", "coefficients scaled by 1 / frequency ** this (lucid)"),
    Setting("colour", "decorrelated", "choice", "optimise decorrelated colour (Lucid's 3x3 matrix) or rgb (lucid)",
            choices=("decorrelated", "rgb")),
    Setting("pad", 12, "nonneg_int", "pad width per side, px of a 128-px image (lucid)"),
    Setting("jitter", 8, "nonneg_int", "largest random shift per step in px (lucid: of a 128-px image)"),
    Setting("jitter2", 4, "nonneg_int", "second random shift after scale and rotation, px of a 128-px image (lucid)"),
    Setting("scale_jitter", 0.1, "share", "largest random rescaling per step (fraction)"),
    Setting("rotate", 10.0, "nonneg_float", "largest random rotation per step in degrees (lucid)"),
    Setting("flip", 0.0, "share", "probability of a left-right mirror per step (lucid: 0)"),
    Setting("colour_jitter", 0.0, "share", "largest random per-channel gain change and offset per step, as a fraction "
            "(of 1 and of half the pixel range) (lucid: 0)"))
SETTINGS = MethodSettings("visualize_feature", *LUCID_SETTINGS)
LUCID = SETTINGS.defaults


def check_settings(cfg: dict) -> None:
    """GradscopeError naming a setting of the wrong type or range."""
    for name, v in cfg.items():
        if name not in SETTINGS:
            continue
        kind = SETTINGS[name].kind
        if kind == "choice":
            if v not in SETTINGS[name].choices:
                raise GradscopeError(f"{name} must be one of {', '.join(SETTINGS[name].choices)}, got {v!r}")
        elif kind.endswith("int"):
            check_positive(name, v, integer=True, allow_zero=kind == "nonneg_int")
        else:
            check_positive(name, v, allow_zero=kind != "positive_float")


def lucid_views_for(model, cfg: dict) -> list:
    """The recipe's views at the model's input size: pad (mid-grey), crop-jitter, random scale,
    random rotation, [random mirror], crop-jitter, [colour jitter], resize back to the input size
    (the bracketed ones only where cfg turns them on)."""
    size = model.input_size
    k = size / 128.0
    lo, hi = model.pixel_bounds()
    grey = ((np.asarray(lo) + np.asarray(hi)) / 2).reshape(1, -1, 1, 1)
    s = cfg["scale_jitter"]
    flip = [random_flip(cfg["flip"])] if cfg["flip"] else []
    colour = [colour_jitter(cfg["colour_jitter"], grey, (np.asarray(hi) - np.asarray(lo)).reshape(1, -1, 1, 1) / 2)] \
        if cfg["colour_jitter"] else []
    return [pad(round(cfg["pad"] * k), grey), crop_jitter(round(cfg["jitter"] * k)), random_scale(1 - s, 1 + s),
            random_rotate(cfg["rotate"]), *flip, crop_jitter(round(cfg["jitter2"] * k)), *colour, resize_to(size)]


def lucid_render(model, objective, n: int, cfg: dict, seed: int = 0, callback=None, dtype=np.float32):
    """Optimise n Lucid-parameterised images for objective(model, x) with the recipe's views
    and Adam: OptimizeResult (x: (n, 3, S, S) model input at the model's input size S)."""
    rng = np.random.default_rng(seed)
    side = min(cfg["param_size"], model.input_size)  # no finer than the network's input
    param = lucid_image(model, n, side, rng, sd=cfg["fourier_sd"], decay_power=cfg["decay_power"],
                        decorrelate=cfg["colour"] == "decorrelated", dtype=dtype)
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
    cfg = SETTINGS.params({k: v for k, v in settings.items() if v is not None})
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
