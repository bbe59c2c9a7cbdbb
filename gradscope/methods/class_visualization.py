"""Class visualisation (Simonyan et al. 2014; Yosinski et al. 2015 regularisation):
starting from noise, gradient ascent on a class's raw score (or log-probability) with an L2 penalty,
random jitter, periodic Gaussian blur and clipping to valid pixels; total variation
and coarse-to-fine octaves are options.

The score gradient is normalised per image (unit RMS), so `lr` is roughly the change
of each model-input value per step whatever the model's score scale; the penalties
enter unnormalised (L2 acts as a decay of 2 * lr * l2_reg per step towards mid-gray).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gradscope.layers.core import softmax
from gradscope.methods import regularizers as rg
from gradscope.methods._inputs import check_positive, class_indices, model_recipe, quantize
from gradscope.methods.ascent import ascend, octave_shapes
from gradscope.methods.objectives import class_objective
from gradscope.methods.settings import MethodSettings, Setting
from gradscope.methods.steps import normalized_step

__all__ = ["ClassVisResult", "visualize_class", "DEFAULTS", "SETTINGS"]

# easy to change in one place; chosen on the shipped TinyImageNet model
# (the raw score stalls below 0.99 for classes with close rivals, e.g. Egyptian cat vs tabby:
# log_prob pushes the rivals down as well)
# (a model may bring its own: model.method_defaults["visualize_class"], see _inputs.model_recipe)
SETTINGS = MethodSettings(
    "visualize_class",
    Setting("iterations", 100, "positive_int", "total steps"),
    Setting("lr", 0.1, "positive_float", "step size (the gradient has unit RMS)"),
    Setting("l2_reg", 1e-2, "nonneg_float", "L2 prior weight"),
    Setting("tv_weight", 0.0, "nonneg_float", "total-variation prior weight"),
    Setting("jitter", 4, "nonneg_int", "largest random shift in pixels per step"),
    Setting("scale_jitter", 0.0, "share", "largest random rescaling per step (fraction)"),
    Setting("smooth_gradient", 0.0, "blur", "blur width in pixels applied to the gradient"),
    Setting("blur_every", 10, "nonneg_int", "blur the image every N steps (0: never)"),
    Setting("blur_sigma", 0.5, "blur", "blur width in pixels"),
    Setting("octaves", None, "optional_int", "number of scales, coarse to fine (none: one)"),
    Setting("octave_scale", 1.4, "factor", "size ratio between octaves (> 1)"),
    Setting("init_std", 0.05, "nonneg_float", "std of the initial noise (fraction of the pixel range)"),
    Setting("objective", "log_prob", "choice", "climb the class log-probability or its raw score "
            "(score: the course recipe)", choices=("log_prob", "score")))
DEFAULTS = SETTINGS.defaults


@dataclass
class ClassVisResult:
    """images uint8 (N, H, W, 3), one per target; score_history / prob_history
    (iterations, N) of the target's raw score and probability during the ascent (on the
    jittered image); final_score / final_prob (N,) of the saved uint8 image."""
    images: np.ndarray
    targets: np.ndarray
    score_history: np.ndarray
    prob_history: np.ndarray
    final_score: np.ndarray
    final_prob: np.ndarray
    class_names: list = field(default_factory=list)
    params: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"params": dict(self.params), "classes": [
            {"target": int(t), "target_name": self.class_names[i] if self.class_names else "",
             "final_score": float(self.final_score[i]), "final_prob": float(self.final_prob[i]),
             "score_history": [float(v) for v in self.score_history[:, i]],
             "prob_history": [float(v) for v in self.prob_history[:, i]]} for i, t in enumerate(self.targets)]}

    def save(self, dest) -> list:
        """Write '<i>_class<target>.png' per image (dest: folder, or '.png' path for one)."""
        from gradscope.imageio import save_images

        return save_images(dest, {f"{i}_class{int(t)}": self.images[i] for i, t in enumerate(self.targets)})


def _check_settings(**settings):
    """Counts must be integers >= 0, rates > 0, weights >= 0 (GradscopeError naming the setting)."""
    for name, v in settings.items():
        if name in ("iterations", "jitter", "blur_every"):
            check_positive(name, v, integer=True, allow_zero=True)
        else:
            check_positive(name, v, allow_zero=name not in ("lr", "octave_scale"))


def visualize_class(model, target, *, iterations: int | None = None, lr: float | None = None,
                    l2_reg: float | None = None, jitter: int | None = None, scale_jitter: float | None = None,
                    smooth_gradient: float | None = None, blur_every: int | None = None,
                    blur_sigma: float | None = None, tv_weight: float | None = None, octaves=None,
                    octave_scale: float | None = None, size=None, init_std: float | None = None,
                    objective: str | None = None, priors=(), transforms=(),
                    seed: int = 0, callback=None, dtype=np.float32) -> ClassVisResult:
    """Synthesise an image that maximises each target class's objective.

    Args:
        model: an ImageModel.
        target: a class or a list of classes (index, wnid or name); one image each.
        iterations: total ascent steps (spread over the octaves).
        lr: step size in model-input units per value (the objective's gradient has unit RMS).
        l2_reg, tv_weight: weights of the L2 (towards mid-gray) and squared-TV priors.
        jitter: largest random shift in pixels before each step (undone after).
        scale_jitter: largest relative random resize before each step (0 = none).
        smooth_gradient: sigma in pixels of a blur of the gradient (0 = none).
        blur_every, blur_sigma: Gaussian blur every this many steps (0 = never).
        octaves, octave_scale: number of coarse-to-fine scales (None = one) and their ratio.
        size: side of the image (default model.input_size).
        init_std: std of the initial noise as a fraction of the pixel range.
        objective: 'log_prob' (log-softmax of the class) or 'score' (the raw class score,
            the course recipe).
        priors, transforms: more Priors / Transforms (gradscope.methods.regularizers), added
            to the ones above.
        seed: seeds the noise and the jitter.
        callback: callback(iteration, info) with 'target_score', 'target_prob' (N,), 'octave', 'images'.
    Settings left None come from model.method_defaults["visualize_class"], else DEFAULTS.
    """
    cfg = model_recipe(model, "visualize_class", DEFAULTS, dict(
        iterations=iterations, lr=lr, l2_reg=l2_reg, jitter=jitter, scale_jitter=scale_jitter,
        smooth_gradient=smooth_gradient, blur_every=blur_every, blur_sigma=blur_sigma, tv_weight=tv_weight,
        octaves=octaves, octave_scale=octave_scale, init_std=init_std, objective=objective))
    _check_settings(**{k: v for k, v in cfg.items() if k not in ("octaves", "objective")})
    return _visualize(model, target, cfg, size, priors, transforms, seed, callback, dtype)


def _visualize(model, target, cfg, size, priors, transforms, seed, callback, dtype) -> ClassVisResult:
    """visualize_class with its settings resolved (cfg: DEFAULTS' keys)."""
    single = isinstance(target, (str, int, np.integer))
    targets = class_indices(model, [target] if single else target, 1 if single else len(target))
    size = model.input_size if size is None else check_positive("size", size, integer=True)
    goal = class_objective(cfg["objective"], targets)
    rng = np.random.default_rng(seed)
    lo, hi = (b.astype(dtype) for b in model.pixel_bounds())
    shapes = octave_shapes(size, size, cfg["octaves"], cfg["octave_scale"])
    x0 = (lo + hi) / 2 + cfg["init_std"] * (hi - lo) * rng.standard_normal((len(targets), 3) + shapes[0]).astype(dtype)
    own = [rg.l2_prior(cfg["l2_reg"], (lo + hi) / 2)] + ([rg.tv_prior(cfg["tv_weight"])] if cfg["tv_weight"] else [])
    views = [rg.jitter(cfg["jitter"])] + ([rg.scale_jitter(cfg["scale_jitter"])] if cfg["scale_jitter"] else []) \
        + ([rg.smooth_gradient(cfg["smooth_gradient"])] if cfg["smooth_gradient"] else [])
    run = ascend(model, x0, goal, iterations=cfg["iterations"], step=normalized_step(cfg["lr"]),
                 priors=own + list(priors),
                 transforms=[*views, *transforms, rg.blur_every(cfg["blur_every"], cfg["blur_sigma"]), rg.clip_pixels()],
                 octaves=shapes, rng=rng, callback=callback)
    return _result(model, run, targets, dict(cfg, size=size, seed=seed))


def _result(model, run, targets, params) -> ClassVisResult:
    """Package the run, scoring the final image as saved (uint8 round trip)."""
    xq = quantize(model, run.x)
    final = model.scores(xq).astype(np.float64)
    idx = np.arange(len(targets))
    empty = np.zeros((0, len(targets)))
    return ClassVisResult(images=model.deprocess(xq), targets=targets,
                          score_history=run.history.get("target_score", empty),
                          prob_history=run.history.get("target_prob", empty),
                          final_score=final[idx, targets], final_prob=softmax(final)[idx, targets],
                          class_names=[str(model.class_names[t]) for t in targets], params=params)
