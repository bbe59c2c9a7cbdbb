"""Class visualisation: an image, synthesised from scratch, that the model takes for a class.
Three recipes, each one settings record in RECIPES:

- 'robust' (the default): Lucid's recipe with more transformation robustness: each step's
  view is also mirrored left-right with probability 0.5, rescaled by 0.8-1.2 (Lucid:
  0.9-1.1) and its colours jittered per channel (gain 0.8-1.2, offset up to 10% of the pixel
  range), and the Fourier image is coarser (96 px where Lucid's is 128, upsampled to the
  network's input size);
- 'lucid': Lucid's recipe (Olah et al. 2017; feature_visualization.py): Fourier
  coefficients scaled by 1/frequency in decorrelated colour, random pad / jitter / scale /
  rotation at each step, Adam, on the raw class score (Lucid's class objective);
- 'pixel' (Simonyan et al. 2014; Yosinski et al. 2015; the 2016 course recipe): gradient
  ascent on the pixels from noise with an L2 penalty, random jitter, periodic Gaussian blur
  and clipping to valid pixels; total variation, scale jitter, a smoothed gradient and
  coarse-to-fine octaves are options. Its score gradient is normalised per image (unit RMS),
  so `lr` is roughly the change of each model-input value per step whatever the model's
  score scale; the penalties enter unnormalised (L2 acts as a decay of 2 * lr * l2_reg per
  step towards mid-gray).

A model may bring its own settings for a recipe: model.method_defaults["visualize_class.<recipe>"].
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from gradscope.errors import GradscopeError
from gradscope.layers.core import softmax
from gradscope.methods import regularizers as rg
from gradscope.methods._inputs import check_positive, class_indices, model_recipe, quantize
from gradscope.methods.ascent import ascend, octave_shapes
from gradscope.methods.feature_visualization import LUCID_SETTINGS, check_settings, lucid_render
from gradscope.methods.objectives import class_objective
from gradscope.methods.settings import MethodSettings, Setting
from gradscope.methods.steps import normalized_step

__all__ = ["ClassVisResult", "visualize_class", "RECIPES", "DEFAULT_RECIPE", "SETTINGS", "DEFAULTS"]

# pixel: chosen on the shipped TinyImageNet model (the raw score stalls below 0.99 for classes with
# close rivals, e.g. Egyptian cat vs tabby: log_prob pushes the rivals down as well)
PIXEL = MethodSettings(
    "visualize_class.pixel",
    Setting("iterations", 100, "positive_int", "total steps"),
    Setting("lr", 0.1, "positive_float", "step size (the gradient has unit RMS)"),
    Setting("l2_reg", 1e-2, "nonneg_float", "L2 prior weight (pixel)"),
    Setting("tv_weight", 0.0, "nonneg_float", "total-variation prior weight (pixel)"),
    Setting("jitter", 4, "nonneg_int", "largest random shift in pixels per step"),
    Setting("scale_jitter", 0.0, "share", "largest random rescaling per step (fraction)"),
    Setting("smooth_gradient", 0.0, "blur", "blur width in pixels applied to the gradient (pixel)"),
    Setting("blur_every", 10, "nonneg_int", "blur the image every N steps (0: never) (pixel)"),
    Setting("blur_sigma", 0.5, "blur", "blur width in pixels (pixel)"),
    Setting("octaves", None, "optional_int", "number of scales, coarse to fine (none: one) (pixel)"),
    Setting("octave_scale", 1.4, "factor", "size ratio between octaves (> 1) (pixel)"),
    Setting("init_std", 0.05, "nonneg_float", "std of the initial noise (fraction of the pixel range) (pixel)"),
    Setting("objective", "log_prob", "choice", "climb the class log-probability or its raw score "
            "(score: the course recipe)", choices=("log_prob", "score")))
# lucid climbs the raw class score (Lucid's class objective): on EfficientNet-Lite0 the log-probability
# stops shaping the image once p is near 1 (flat, grey images at p = 0.998; the score gave more
# contrast and structure at p = 1.000 over 128 steps on lemon)
LUCID_CLASS = MethodSettings("visualize_class.lucid", *LUCID_SETTINGS, Setting(
    "objective", "score", "choice", "climb the class log-probability or its raw score", choices=("log_prob", "score")))


def with_defaults(method: str, settings: MethodSettings, **defaults) -> MethodSettings:
    """A copy of `settings` named `method` whose given settings have new defaults."""
    unknown = sorted(set(defaults) - set(settings.names))
    if unknown:
        raise ValueError(f"{method}: no setting {', '.join(unknown)}")
    return MethodSettings(method, *(replace(s, default=defaults[s.name]) if s.name in defaults else s
                                    for s in settings))


# robust: Lucid's recipe with more transformation robustness (left-right mirrors, scale 0.8-1.2,
# per-channel colour jitter), chosen on scripts/featvis_eval.py's TUNING classes, and a coarser
# Fourier image (96 px instead of 128, upsampled to the network's size), chosen on its TUNING2 classes
ROBUST = with_defaults("visualize_class.robust", LUCID_CLASS, flip=0.5, scale_jitter=0.2, colour_jitter=0.2,
                       param_size=96)
RECIPES = {"robust": ROBUST, "lucid": LUCID_CLASS, "pixel": PIXEL}
DEFAULT_RECIPE = "robust"
DEFAULTS = RECIPES[DEFAULT_RECIPE].defaults
# every setting of any recipe, with the default recipe's defaults (the CLI's options; each
# recipe's own values come from RECIPES)
SETTINGS = MethodSettings("visualize_class", *ROBUST, *(s for s in PIXEL if s.name not in ROBUST))


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


def _check_pixel(cfg):
    """Counts must be integers >= 0, rates > 0, weights >= 0 (GradscopeError naming the setting)."""
    for name, v in cfg.items():
        if name in ("octaves", "objective"):
            continue
        if name in ("iterations", "jitter", "blur_every"):
            check_positive(name, v, integer=True, allow_zero=True)
        else:
            check_positive(name, v, allow_zero=name not in ("lr", "octave_scale"))


def recipe_settings(model, recipe, given: dict) -> dict:
    """The settings of one call: given values (None = not given), else the model's own for
    this recipe (model.method_defaults["visualize_class.<recipe>"]), else RECIPES[recipe]."""
    if recipe not in RECIPES:
        raise GradscopeError(f"unknown recipe {recipe!r}: expected one of {', '.join(RECIPES)}")
    alien = sorted(k for k, v in given.items() if v is not None and k not in RECIPES[recipe].names)
    if alien:
        owners = {k: [r for r in RECIPES if k in RECIPES[r].names] for k in alien}
        hint = "; ".join(f"{k} belongs to recipe {' / '.join(o)}" if o else f"{k} is not a setting" for k, o in owners.items())
        raise GradscopeError(f"recipe {recipe!r} has no setting {', '.join(alien)} ({hint})")
    return model_recipe(model, f"visualize_class.{recipe}", RECIPES[recipe].defaults, given)


def visualize_class(model, target, *, recipe: str | None = None, size=None, priors=(), transforms=(),
                    seed: int = 0, callback=None, dtype=np.float32, **settings) -> ClassVisResult:
    """Synthesise an image that maximises each target class's objective.

    Args:
        model: an ImageModel.
        target: a class or a list of classes (index, wnid or name); one image each.
        recipe: 'robust' (Lucid's with more transformation robustness), 'lucid' (Fourier +
            decorrelated colour + transforms + Adam) or 'pixel' (the 2016 recipe: pixels, L2,
            blur, jitter); None: the model's own
            (model.method_defaults["visualize_class"]["recipe"]), else DEFAULT_RECIPE.
        settings: the recipe's settings (RECIPES[recipe]'s keys; SETTINGS says what each
            means); left out or None: the model's own for the recipe, else RECIPES[recipe].
        size: (pixel recipe) side of the image (default model.input_size).
        priors, transforms: (pixel recipe) more Priors / views / AfterSteps to add.
        seed: seeds the initial image and the random transforms.
        callback: callback(iteration, info) with 'target_score', 'target_prob' (N,), 'images'.
    """
    if recipe is None:
        recipe = model_recipe(model, "visualize_class", {"recipe": DEFAULT_RECIPE}, {})["recipe"]
    cfg = recipe_settings(model, recipe, settings)
    single = isinstance(target, (str, int, np.integer))
    targets = class_indices(model, [target] if single else target, 1 if single else len(target))
    goal = class_objective(cfg["objective"], targets)
    run, extra = _RUNS[recipe](model, goal, len(targets), cfg, seed, callback, dtype, size, priors, transforms)
    return _result(model, run, targets, dict(cfg, recipe=recipe, **extra, seed=seed))


def _pixel_run(model, goal, n, cfg, seed, callback, dtype, size, priors, transforms):
    """The pixel recipe: (AscentResult, {"size": side}) after checking its settings."""
    _check_pixel(cfg)
    size = model.input_size if size is None else check_positive("size", size, integer=True)
    return _pixel_ascent(model, goal, n, cfg, size, priors, transforms, seed, callback, dtype), {"size": size}


def _lucid_run(model, goal, n, cfg, seed, callback, dtype, size, priors, transforms):
    """The lucid and robust recipes: (the render, {}); size, priors and transforms are the pixel recipe's."""
    if size is not None or priors or transforms:
        raise GradscopeError("size, priors and transforms belong to the pixel recipe (recipe='pixel')")
    check_settings({k: v for k, v in cfg.items() if k != "objective"})
    return lucid_render(model, goal, n, cfg, seed, callback, dtype), {}


def _pixel_ascent(model, goal, n, cfg, size, priors, transforms, seed, callback, dtype):
    """The pixel recipe's ascent (cfg: PIXEL's keys)."""
    rng = np.random.default_rng(seed)
    lo, hi = (b.astype(dtype) for b in model.pixel_bounds())
    shapes = octave_shapes(size, size, cfg["octaves"], cfg["octave_scale"])
    x0 = (lo + hi) / 2 + cfg["init_std"] * (hi - lo) * rng.standard_normal((n, 3) + shapes[0]).astype(dtype)
    own = [rg.l2_prior(cfg["l2_reg"], (lo + hi) / 2)] + ([rg.tv_prior(cfg["tv_weight"])] if cfg["tv_weight"] else [])
    views = [rg.jitter(cfg["jitter"])] + ([rg.scale_jitter(cfg["scale_jitter"])] if cfg["scale_jitter"] else []) \
        + ([rg.smooth_gradient(cfg["smooth_gradient"])] if cfg["smooth_gradient"] else [])
    return ascend(model, x0, goal, iterations=cfg["iterations"], step=normalized_step(cfg["lr"]),
                  priors=own + list(priors),
                  transforms=[*views, *transforms, rg.blur_every(cfg["blur_every"], cfg["blur_sigma"]), rg.clip_pixels()],
                  octaves=shapes, rng=rng, callback=callback)


_RUNS = {"pixel": _pixel_run, "lucid": _lucid_run, "robust": _lucid_run}  # recipe name -> its run (RECIPES' keys)


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
