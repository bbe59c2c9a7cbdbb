"""The one ascent loop of the image-optimisation methods, over a parameterisation.

    optimize(model, param, objective, iterations=, step=, views=, after=, penalty=, maximize=, rng=, callback=)

optimises the parameters of `param` (gradscope/methods/params.py: pixels, Fourier
coefficients, a mask, ...) rather than pixels. Each step: the parameterisation makes the
image x; the views (gradscope/methods/views.py: pad, jitter, scale, rotation) make what the
model sees; the objective (objectives.py) gives its gradient there, mapped back through
the views' adjoints and the parameterisation's backward to the parameters; the step rule
(steps.py) moves the parameters up it (down it when maximize=False), against the
penalty's gradient (a Prior on the parameters, e.g. a mask's area); the after-steps (blur
every k steps, clip to valid pixels) change the parameters.

    ascend(model, x0, objective, iterations=, step=, priors=, transforms=, octaves=, rng=, callback=)

is the pixel form of today's recipes (class visualisation, inversion, DeepDream): the
parameters are the image, over coarse-to-fine octaves (`iterations` spread over them, the
remainder going to the finest).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from gradscope.errors import GradscopeError
from gradscope.methods._inputs import report
from gradscope.methods.params import Parameterization, pixel
from gradscope.methods.regularizers import resize, sum_priors
from gradscope.methods.views import AfterStep, apply_views

__all__ = ["AscentResult", "OptimizeResult", "ascend", "optimize", "split_transforms", "accepts_shape",
           "octave_sizes", "octave_shapes", "split_iterations"]


class OptimizeResult(NamedTuple):
    params: np.ndarray   # (N, ...) the final parameters
    x: np.ndarray        # (N, 3, H, W) the final image (model input) they make
    history: dict        # name -> (iterations, N): the objective's info, 'objective' and 'penalty', per step


class AscentResult(NamedTuple):
    x: np.ndarray        # (N, 3, H, W) the final image (model input, float)
    history: dict        # info name -> (iterations, N), recorded at each step (on the viewed image)
    shapes: list         # (h, w) of each octave, coarse to fine


def split_transforms(transforms) -> tuple[list, list]:
    """(views, after-steps) of a mixed list: AfterSteps change the parameters after a step,
    anything else is a view (x, rng) -> (xv, back)."""
    transforms = list(transforms)
    return [t for t in transforms if not isinstance(t, AfterStep)], [t for t in transforms if isinstance(t, AfterStep)]


def _after(p, after, iteration, model, starting=False):
    for a in after:
        if a.at_start or not starting:
            p = a(p, iteration, model)
    return p


def _gradient(model, param, p, objective, views, rng, maximize):
    """(d objective / d p, signed to climb; the objective's Evaluation at this step's view)."""
    x, caches = param.image(p)
    xv, backs = apply_views(x, views, rng)
    ev = objective(model, xv)
    g = ev.grad
    for back in reversed(backs):
        g = back(g)
    gp = param.backward(g.astype(x.dtype, copy=False), caches)
    return (gp if maximize else -gp), ev


def optimize(model, param: Parameterization, objective, *, iterations: int, step, views=(), after=(),
             penalty=None, maximize: bool = True, rng=None, callback=None) -> OptimizeResult:
    """Optimise param's parameters so that objective(model, views(param(p))) rises (falls
    with maximize=False), minus (plus) the penalty on p.

    Args:
        model: an ImageModel.
        param: a Parameterization (init (N, ...) and the stages making (N, 3, H, W) model input).
        objective: objective(model, x) -> Evaluation (gradscope/methods/objectives.py); its
            grad is d sum(value) / dx.
        iterations: steps.
        step: rule(p, g, g_penalty, state) -> (p, state) (steps.py); g is the direction that
            improves the objective, g_penalty the penalty's gradient (descended).
        views: random differentiable views (views.py), applied in order at each step.
        after: AfterSteps applied to the parameters after each step.
        penalty: None, a Prior or Priors (regularizers.py) on the parameters: p -> (values (N,), grad).
        maximize: climb the objective (True) or descend it (False).
        rng: a np.random.Generator or a seed (the views' draws).
        callback: callback(iteration, info) after each step: the objective's info (N,) arrays,
            'objective' and 'penalty' (N,), 'total' (= iterations), 'images' (uint8 (N, H, W, 3)).
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    prior, views, after = sum_priors(penalty), list(views), list(after)
    p, state, history = np.array(param.init, copy=True), None, []
    for it in range(1, iterations + 1):
        g, ev = _gradient(model, param, p, objective, views, rng, maximize)
        pv, pg = prior(p) if prior is not None else (np.zeros(len(p)), np.zeros((), p.dtype))
        p, state = step(p, g, pg, state)
        p = _after(p, after, it, model)
        info = dict(ev.info, objective=np.asarray(ev.value, np.float64), penalty=np.asarray(pv, np.float64))
        history.append(info)
        if callback is not None:
            report(callback, it, **info, total=iterations, images=model.deprocess(param(p)))
    return OptimizeResult(params=p, x=param(p), history=_stack(history))


def octave_sizes(size: int, octaves, scale: float, min_size: int = 8) -> list:
    """Image sides from coarse to fine, ending at size (octaves None or 1: [size])."""
    n = 1 if octaves is None else int(octaves)
    sizes = [max(min_size, int(round(size / scale ** k))) for k in range(n - 1, -1, -1)]
    return sorted(set(sizes))


def octave_shapes(h: int, w: int, octaves, scale: float) -> list:
    """(h, w) per octave from coarse to fine, the finest being (h, w); aspect kept."""
    sides = octave_sizes(max(h, w), octaves, scale)
    return [(max(1, round(h * s / max(h, w))), max(1, round(w * s / max(h, w)))) for s in sides]


def split_iterations(iterations: int, n: int) -> list:
    """iterations spread over n stages, the remainder going to the last (finest) ones."""
    base, rest = divmod(iterations, n)
    return [base + (1 if k >= n - rest else 0) for k in range(n)]


def _enter_octave(x, shape, base):
    """x at the octave's shape: resized, or (with a base image) the base at that size plus
    the resized detail added so far (DeepDream's octave detail)."""
    if base is None:
        return resize(x, shape)
    return resize(base, shape) + resize(x - resize(base, x.shape[2:]), shape)


def ascend(model, x0, objective, *, iterations: int, step, priors=None, transforms=(), octaves=None,
           octave_base=None, rng=None, callback=None) -> AscentResult:
    """Gradient ascent on objective(model, x) - priors(x) from x0, over pixels (optimize with
    the pixel parameterisation, once per octave).

    Args:
        model: an ImageModel.
        x0: (N, 3, h, w) starting image (model input) at the first octave's shape.
        objective: objective(model, x) -> Evaluation (gradscope/methods/objectives.py).
        iterations: total steps (over all octaves).
        step: rule(x, g, g_prior, state) -> (x, state) (gradscope/methods/steps.py).
        priors: None, a Prior or a sequence of Priors (summed).
        transforms: views (around each step) and AfterSteps (after it), in order.
        octaves: (h, w) per octave, coarse to fine (None: x0's shape only).
        octave_base: an image whose resized copy each octave starts from, plus the detail
            added so far (DeepDream); None: each octave starts from the previous one resized.
        rng: a np.random.Generator (jitter), or a seed.
        callback: callback(iteration, info) after each step; info holds the objective's
            numbers (N,), 'total' (= iterations), 'octave' and 'images' (uint8 (N, H, W, 3)).
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    shapes = [tuple(x0.shape[2:])] if octaves is None else [tuple(s) for s in octaves]
    _check_shapes(model, shapes)
    views, after = split_transforms(transforms)
    x, done, history = x0, 0, []
    for k, (shape, n) in enumerate(zip(shapes, split_iterations(iterations, len(shapes)))):
        x = _after(_enter_octave(x, shape, octave_base), after, 0, model, starting=True)
        # the step rule's state (Adam moments) is per octave: the shape changes
        shifted = None if callback is None else \
            (lambda it, info, k=k, d=done: callback(d + it, dict(info, total=iterations, octave=k)))
        counted = [AfterStep(a.name, lambda p, it, m, a=a, d=done: a(p, d + it, m), a.at_start) for a in after]
        run = optimize(model, pixel(x), objective, iterations=n, step=step, views=views, after=counted,
                       penalty=priors, rng=rng, callback=shifted)
        x, done = run.x, done + n
        history.append(run.history)
    return AscentResult(x=x, history=_concat(history), shapes=shapes)


def _shape_error(model, shape):
    """None if the model takes (1, 3, h, w) inputs, else why not: its own input size always
    works; another size is tried with one forward pass (a ViT, say, asserts one size)."""
    h, w = (int(v) for v in shape)
    if (h, w) == (model.input_size, model.input_size):
        return None
    try:
        model.scores(np.zeros((1, 3, h, w), dtype=np.float32))
    except Exception as e:  # noqa: BLE001 - whatever the model's forward raises means: not this size
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".rstrip(": ")
    return None


def accepts_shape(model, shape) -> bool:
    """Whether the model takes model inputs of spatial shape (h, w)."""
    return _shape_error(model, shape) is None


def _check_shapes(model, shapes) -> None:
    """GradscopeError, before any step, when the model cannot take every octave's shape."""
    size = model.input_size
    for h, w in dict.fromkeys(shapes):
        why = _shape_error(model, (h, w))
        if why is None:
            continue
        if len(shapes) > 1 and accepts_shape(model, (2 * size, 2 * size)):  # sizes vary: this octave is too small
            raise GradscopeError(f"the model cannot take {h}x{w} inputs ({why}): the smallest octave is too small "
                                 "for it; use fewer octaves or a smaller octave scale (--octaves, --octave-scale)")
        fix = "use one octave (octaves=1, --octaves 1)" if len(shapes) > 1 else f"resize the image to {size}x{size}"
        raise GradscopeError(f"the model cannot take {h}x{w} inputs ({why}); it has a fixed input size of "
                             f"{size}x{size}: {fix}")


def _stack(history):
    """[{name: (N,)}] per step -> {name: (steps, N)}."""
    if not history:
        return {}
    return {name: np.asarray([h[name] for h in history], dtype=np.float64) for name in history[0]}


def _concat(histories):
    """Histories of consecutive runs -> one (runs without steps left out)."""
    histories = [h for h in histories if h]
    if not histories:
        return {}
    return {name: np.concatenate([h[name] for h in histories]) for name in histories[0]}
