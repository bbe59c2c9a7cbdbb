"""Extremal perturbations (Fong, Patrick & Vedaldi 2019; TorchRay's recipe): for each area
fraction a, a smooth mask m in [0, 1] covering about a of the image that keeps the class
score as high as possible (preservation game) or removes it (deletion game), optimised by
the parameterised ascent loop (gradscope.methods.ascent.optimize) through the model's
hand-written backward.

    mask   = bilinear upsampling of a (g, g) grid of parameters in [0, 1] (clamped after each step)
    keep   : x_m = x * mask + blur(x) * (1 - mask)          maximise score_c(x_m)
    delete : x_m = x * (1 - mask) + blur(x) * mask          minimise score_c(x_m)
    area   : weight_t * mean((sort(grid) - r_a)^2), r_a = (1 - a) n zeros then a n ones,
             weight_t ramped geometrically from area_weight[0] to area_weight[1] over the steps

The perturbation is Fong & Vedaldi's blur (one Gaussian of sigma blur_sigma, 10 pixels at
224 by default) blended by the mask, a one-level form of TorchRay's blur pyramid; the
smoothness comes from the coarse grid (side H // 7, TorchRay's step of 7 pixels) and the
bilinear upsampling. The final map is the SUM of the masks over the areas (and games),
TorchRay's choice for its attribution benchmarks: a pixel kept even in the smallest mask
ranks highest.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from gradscope.errors import GradscopeError
from gradscope.methods import params as pm
from gradscope.methods._inputs import check_images, check_not_constant, check_positive, class_indices
from gradscope.methods.ascent import optimize
from gradscope.methods.objectives import Evaluation, class_score
from gradscope.methods.regularizers import Prior, gaussian_blur
from gradscope.methods.saliency import SaliencyResult
from gradscope.methods.settings import MethodSettings, Setting
from gradscope.methods.steps import adam_step
from gradscope.methods.views import AfterStep

__all__ = ["SETTINGS", "DEFAULTS", "extremal_perturbation", "area_penalty"]

GAMES = {"preserve": (1.0,), "delete": (-1.0,), "both": (1.0, -1.0)}  # sign of the class score per game

SETTINGS = MethodSettings(
    "extremal_perturbation",
    Setting("areas", (0.05, 0.1, 0.2), "fractions", "perturbation: area fractions of the masks"),
    Setting("game", "preserve", "choice", "perturbation: preserve (keep the class), delete (remove it) or both",
            choices=tuple(GAMES)),
    Setting("iterations", 200, "positive_int", "perturbation: optimisation steps"),
    Setting("lr", 0.05, "positive_float", "perturbation: Adam step size on the mask grid"),
    Setting("grid", None, "optional_int", "perturbation: mask grid side (none: a seventh of the image side)"),
    Setting("blur_sigma", None, "blur", "perturbation: blur of the perturbation in pixels (none: H / 22)"),
    Setting("area_weight", (300.0, 4900.0), "positive_list", "perturbation: area penalty weight, first and last step"))
DEFAULTS = SETTINGS.defaults


def _check(s: SimpleNamespace, h: int) -> SimpleNamespace:
    """The settings checked, with grid and blur_sigma resolved."""
    if s.game not in GAMES:
        raise GradscopeError(f"game must be one of {', '.join(GAMES)}, got {s.game!r}")
    areas = tuple(float(a) for a in np.atleast_1d(s.areas))
    if not areas or not all(0 < a < 1 for a in areas):
        raise GradscopeError(f"areas must be fractions in (0, 1), got {s.areas!r}")
    check_positive("iterations", s.iterations, integer=True)
    check_positive("lr", s.lr)
    weights = tuple(float(w) for w in s.area_weight)
    if len(weights) != 2 or min(weights) <= 0:
        raise GradscopeError(f"area_weight must be two positive numbers (first, last), got {s.area_weight!r}")
    grid = max(2, h // 7) if s.grid is None else check_positive("grid", s.grid, integer=True)
    if not 2 <= grid <= h:
        raise GradscopeError(f"grid must be between 2 and the image side ({h}), got {grid}")
    sigma = h / 22 if s.blur_sigma is None else check_positive("blur_sigma", s.blur_sigma)
    return SimpleNamespace(areas=areas, game=s.game, iterations=s.iterations, lr=s.lr, grid=grid,
                           blur_sigma=sigma, area_weight=weights)


def area_penalty(areas, weights, iterations: int, seed: int = 0) -> Prior:
    """The ranking area constraint on mask grids p (R, 1, g, g), row r aiming at area
    areas[r]: weight_t * mean((sort(p_r) - ref_r)^2), the weight ramped geometrically from
    weights[0] at the first call to weights[1] at call `iterations` (one call per step).
    Tied values (the uniform start, cells clamped at 0 or 1) are ranked in a fresh seeded
    random order at each call: ranking them by position would push the same corner of the
    grid towards the area's ones at every step."""
    areas = np.asarray(areas, dtype=np.float64)
    ratio = (weights[1] / weights[0]) ** (1.0 / max(iterations - 1, 1))
    calls, rng = [0], np.random.default_rng(seed)

    def fn(p):
        n = p[0].size
        flat = p.reshape(len(p), -1).astype(np.float64)
        order = np.lexsort((rng.random(flat.shape), flat), axis=-1)  # ascending, ties at random
        ref = (np.arange(n)[None] >= np.round((1 - areas) * n)[:, None]).astype(np.float64)  # (R, n)
        diff = np.take_along_axis(flat, order, axis=1) - ref
        w = weights[0] * ratio ** min(calls[0], iterations - 1)
        calls[0] += 1
        grad = np.empty_like(flat)
        np.put_along_axis(grad, order, 2 * w * diff / n, axis=1)
        return w * np.mean(diff ** 2, axis=1), grad.reshape(p.shape).astype(p.dtype)

    return Prior(fn, "area")


def _signed(objective, signs):
    """objective with each row's value and gradient times signs[row] (mixed games climb together)."""
    def signed(model, x):
        ev = objective(model, x)
        s = signs.reshape((-1,) + (1,) * (ev.grad.ndim - 1)).astype(ev.grad.dtype)
        return Evaluation(ev.value * signs, ev.grad * s, ev.info, ev.scores)

    return signed


@SETTINGS.document
def extremal_perturbation(model, x, classes=None, *, areas=DEFAULTS["areas"],
                          game: str = DEFAULTS["game"], iterations: int = DEFAULTS["iterations"],
                          lr: float = DEFAULTS["lr"], grid=None, blur_sigma=None,
                          area_weight=DEFAULTS["area_weight"], seed: int = 0,
                          callback=None) -> SaliencyResult:
    """Extremal perturbation masks and their sum as the map.

    Args:
        model: an ImageModel.
        x: (N, 3, H, W) model input (or one (3, H, W) image).
        classes: one class or N classes (index, wnid or name); None = predicted class.
        areas, game, iterations, lr, grid, blur_sigma, area_weight: see SETTINGS (defaults: areas {areas},
            game {game}, iterations {iterations}, lr {lr}, area_weight {area_weight}).
        seed: seeds the order in which the area penalty ranks tied mask values.
        callback: callback(step, info) with 'total', 'objective', 'penalty' (per mask row).
    Returns:
        SaliencyResult with maps (N, H, W) = sum of the masks over areas and games, and
        attributions the masks (N, games, areas, H, W) (a deletion mask marks what is removed).
    """
    x = check_not_constant(check_images("x", x))
    n, _, h, w = x.shape
    s = _check(SimpleNamespace(areas=areas, game=game, iterations=iterations, lr=lr, grid=grid,
                               blur_sigma=blur_sigma, area_weight=area_weight), h)
    classes = class_indices(model, classes, n, x)
    signs = np.asarray(GAMES[s.game])
    na, ng = len(s.areas), len(signs)
    rows_img = np.repeat(np.arange(n), ng * na)                      # row r: image, game, area
    rows_sign = np.tile(np.repeat(signs, na), n)
    blurred = gaussian_blur(x, s.blur_sigma)
    keep, gone = x[rows_img], blurred[rows_img]
    # preserve rows show x where the mask is 1; delete rows show the blur there
    top = np.where(rows_sign[:, None, None, None] > 0, keep, gone)
    bottom = np.where(rows_sign[:, None, None, None] > 0, gone, keep)
    param = pm.chain(np.full((len(rows_img), 1, s.grid, s.grid), 0.5, dtype=x.dtype),
                     [pm.upsample((h, w)), pm.blend(top, bottom)], name="extremal mask")
    clamp = AfterStep("clamp to [0, 1]", lambda p, it, model: np.clip(p, 0, 1))
    run = optimize(model, param, _signed(class_score(classes[rows_img]), rows_sign), iterations=s.iterations,
                   step=adam_step(s.lr), after=[clamp],
                   penalty=area_penalty(np.tile(s.areas, n * ng), s.area_weight, s.iterations, seed),
                   maximize=True, rng=seed, callback=callback)
    masks = pm.upsample((h, w)).forward(run.params)[0].reshape(n, ng, na, h, w)
    scores = model.scores(x)[np.arange(n), classes]
    return SaliencyResult(method="perturbation", maps=masks.sum(axis=(1, 2)).astype(x.dtype), attributions=masks,
                          classes=classes, scores=scores, images=model.deprocess(x),
                          class_names=[str(model.class_names[c]) for c in classes],
                          params=dict(vars(s), seed=seed))
