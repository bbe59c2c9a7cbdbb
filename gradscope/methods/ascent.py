"""The one image-ascent loop of class visualisation, feature inversion and DeepDream.

    ascend(model, x0, objective, iterations=, step=, priors=, transforms=, octaves=, rng=, callback=)

Each step: the view transforms (jitter) make the image the model sees; the objective
gives its gradient there, mapped back through the views; the step rule moves x along
it, against the priors' gradient; the after transforms (blur every k steps, clip to
valid pixels) run. `iterations` is the total number of steps, spread over the octaves
(the remainder going to the finest). The pieces are small functions:
objectives in objectives.py, priors and transforms in regularizers.py, step rules in
steps.py; a method is a recipe choosing them.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from gradscope.methods._inputs import report
from gradscope.methods.regularizers import resize, sum_priors

__all__ = ["AscentResult", "ascend", "octave_sizes", "octave_shapes", "split_iterations"]


class AscentResult(NamedTuple):
    x: np.ndarray        # (N, 3, H, W) the final image (model input, float)
    history: dict        # info name -> (iterations, N), recorded at each step (on the viewed image)
    shapes: list         # (h, w) of each octave, coarse to fine


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


def _after(x, transforms, iteration, model):
    for t in transforms:
        if t.after is not None:
            x = t.after(x, iteration, model)
    return x


def _step(model, x, objective, step, prior, transforms, rng, state):
    """One step: (new x, state, the objective's info)."""
    xv, undo = x, []
    for t in transforms:
        if t.view is not None:
            xv, back = t.view(xv, rng)
            undo.append(back)
    ev = objective(model, xv)
    g = ev.grad
    for back in reversed(undo):
        g = back(g)
    g_prior = prior(x)[1] if prior is not None else np.zeros((), x.dtype)
    x, state = step(x, g, g_prior, state)
    return x, state, ev.info


def ascend(model, x0, objective, *, iterations: int, step, priors=None, transforms=(), octaves=None,
           octave_base=None, rng=None, callback=None) -> AscentResult:
    """Gradient ascent on objective(model, x) - priors(x) from x0.

    Args:
        model: an ImageModel.
        x0: (N, 3, h, w) starting image (model input) at the first octave's shape.
        objective: objective(model, x) -> Evaluation (gradscope/methods/objectives.py).
        iterations: total steps (over all octaves).
        step: rule(x, g, g_prior, state) -> (x, state) (gradscope/methods/steps.py).
        priors: None, a Prior or a sequence of Priors (summed).
        transforms: Transforms applied around (view) and after (after) each step, in order.
        octaves: (h, w) per octave, coarse to fine (None: x0's shape only).
        octave_base: an image whose resized copy each octave starts from, plus the detail
            added so far (DeepDream); None: each octave starts from the previous one resized.
        rng: a np.random.Generator (jitter), or a seed.
        callback: callback(iteration, info) after each step; info holds the objective's
            numbers (N,), 'total' (= iterations), 'octave' and 'images' (uint8 (N, H, W, 3)).
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    shapes = [tuple(x0.shape[2:])] if octaves is None else [tuple(s) for s in octaves]
    prior, transforms = sum_priors(priors), list(transforms)
    x, it, history = x0, 0, []
    for k, (shape, n) in enumerate(zip(shapes, split_iterations(iterations, len(shapes)))):
        x = _after(_enter_octave(x, shape, octave_base), transforms, None, model)
        state = None  # a step rule's state (Adam moments) is per octave: the shape changes
        for _ in range(n):
            x, state, info = _step(model, x, objective, step, prior, transforms, rng, state)
            it += 1
            x = _after(x, transforms, it, model)
            history.append(info)
            report(callback, it, **info, total=iterations, octave=k, images=model.deprocess(x))
    return AscentResult(x=x, history=_stack(history, len(x0)), shapes=shapes)


def _stack(history, n):
    """[{name: (N,)}] per step -> {name: (steps, N)}."""
    if not history:
        return {}
    return {name: np.asarray([h[name] for h in history], dtype=np.float64) for name in history[0]}
