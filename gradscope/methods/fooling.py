"""Fooling images: gradient ascent on a target class's log-probability (or, the course
recipe, its raw score) until the network's top class is the target (Szegedy et al. 2014;
dx = step_size * g / ||g||).

Success is judged on a real image: the float image is deprocessed to uint8 and
preprocessed back before each check, so the saved PNG is itself fooled. Each image of
a batch stops on its own.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gradscope.layers.core import softmax
from gradscope.methods._inputs import check_images, check_positive, class_indices, quantize, report
from gradscope.methods.objectives import class_objective
from gradscope.methods.regularizers import clip_to_bounds
from gradscope.methods.settings import MethodSettings, Setting
from gradscope.methods.steps import normalized_step, unit_l2

__all__ = ["FoolingResult", "fool", "DEFAULTS", "SETTINGS"]

# log_prob fools every image of the TinyImageNet benchmark; the raw score (the course recipe) ~97%
SETTINGS = MethodSettings(
    "fool",
    Setting("step_size", 1.0, "positive_float", "L2 length of each step (model-input units)"),
    Setting("max_iter", 100, "positive_int", "most steps per image"),
    Setting("objective", "log_prob", "choice", "climb the target's log-probability or its raw score "
            "(score: the course recipe)", choices=("log_prob", "score")))
DEFAULTS = SETTINGS.defaults


@dataclass
class FoolingResult:
    """Per image (N,): success, iterations (gradient steps taken), target, original and
    final top class with their probabilities, target probability before and after, and
    the L2 / L-infinity distance between original and fooled uint8 images (0-255 units).
    images / original_images: uint8 (N, H, W, 3)."""
    success: np.ndarray
    iterations: np.ndarray
    target: np.ndarray
    original_class: np.ndarray
    original_prob: np.ndarray
    final_class: np.ndarray
    final_prob: np.ndarray
    target_prob_before: np.ndarray
    target_prob: np.ndarray
    l2: np.ndarray
    linf: np.ndarray
    images: np.ndarray
    original_images: np.ndarray
    class_names: list = field(default_factory=list)

    def to_dict(self) -> dict:
        name = (lambda c: str(self.class_names[c])) if self.class_names else str
        items = [{"success": bool(self.success[i]), "iterations": int(self.iterations[i]),
                  "target": int(self.target[i]), "target_name": name(self.target[i]),
                  "original_class": int(self.original_class[i]), "original_name": name(self.original_class[i]),
                  "original_prob": float(self.original_prob[i]),
                  "final_class": int(self.final_class[i]), "final_name": name(self.final_class[i]),
                  "final_prob": float(self.final_prob[i]),
                  "target_prob_before": float(self.target_prob_before[i]),
                  "target_prob": float(self.target_prob[i]),
                  "l2": float(self.l2[i]), "linf": float(self.linf[i])} for i in range(len(self.success))]
        return {"success_rate": float(np.mean(self.success)), "images": items}

    def save(self, dest) -> list:
        """Write '<i>_fooled.png', '<i>_original.png' and '<i>_difference.png' (the change
        magnified to the full range, mid-gray = unchanged)."""
        from gradscope.imageio import difference_image, save_images

        named = {}
        for i in range(len(self.images)):
            named[f"{i}_fooled"] = self.images[i]
            named[f"{i}_original"] = self.original_images[i]
            named[f"{i}_difference"] = difference_image(self.images[i], self.original_images[i])
        return save_images(dest, named)


@SETTINGS.document
def fool(model, x, target, *, step_size: float = DEFAULTS["step_size"], max_iter: int = DEFAULTS["max_iter"],
         objective: str = DEFAULTS["objective"], callback=None) -> FoolingResult:
    """Make each image of x classified as `target` by normalised gradient steps on the
    target's log-probability (or raw score), stopping each image as soon as its saved
    uint8 version is classified as the target. Deterministic (no seed).

    Args:
        model: an ImageModel.
        x: (N, 3, H, W) model input (or one (3, H, W) image).
        target: one class or N classes (index, wnid or name).
        step_size: L2 length of each step in model-input units (default {step_size}).
        max_iter: most gradient steps per image (default {max_iter}).
        objective: 'log_prob' (the target's log-softmax) or 'score' (its raw score, the
            course recipe; default {objective}).
        callback: callback(iteration, info) after each check (iteration 0: before any step),
            info keys 'total' (= max_iter), 'active' (images still stepping), 'target_prob' (N,), 'fooled' (N,), 'images' (uint8 (N, H, W, 3)).
    """
    x = check_images("x", x).copy()
    check_positive("step_size", step_size)
    check_positive("max_iter", max_iter, integer=True, allow_zero=True)
    n = len(x)
    target = class_indices(model, target, n)
    class_objective(objective, target)  # checks the name
    step = normalized_step(step_size, unit_l2)
    bounds = model.pixel_bounds()
    original = model.deprocess(x)
    x = clip_to_bounds(x, bounds)
    done = np.zeros(n, dtype=bool)
    iters = np.full(n, max_iter, dtype=np.int64)
    final = np.empty_like(x)
    first_probs = None
    target_prob = np.zeros(n)
    for it in range(max_iter + 1):
        act = np.flatnonzero(~done)
        xq = quantize(model, x[act])
        ev = class_objective(objective, target[act])(model, xq)
        if first_probs is None:
            first_probs = softmax(ev.scores.astype(np.float64))
        fooled = np.argmax(ev.scores, axis=1) == target[act]
        target_prob[act] = ev.info["target_prob"]
        final[act] = xq
        iters[act[fooled]] = it
        done[act[fooled]] = True
        report(callback, it, total=max_iter, active=int((~done).sum()), fooled=done.copy(),
               target_prob=target_prob.copy(), images=model.deprocess(final))
        if it == max_iter or done.all():
            break
        moving = act[~fooled]
        x[moving] = clip_to_bounds(step(x[moving], ev.grad[~fooled], 0.0, None)[0], bounds)
    return _fooling_result(model, final, original, target, first_probs, done, iters)


def _fooling_result(model, final, original, target, first_probs, done, iters) -> FoolingResult:
    probs = softmax(model.scores(final).astype(np.float64))
    idx = np.arange(len(final))
    images = model.deprocess(final)
    diff = images.astype(np.float64) - original.astype(np.float64)
    orig_cls = np.argmax(first_probs, axis=1)
    fin_cls = np.argmax(probs, axis=1)
    return FoolingResult(
        success=done, iterations=iters, target=target,
        original_class=orig_cls, original_prob=first_probs[idx, orig_cls],
        final_class=fin_cls, final_prob=probs[idx, fin_cls],
        target_prob_before=first_probs[idx, target], target_prob=probs[idx, target],
        l2=np.sqrt(np.sum(diff ** 2, axis=(1, 2, 3))), linf=np.abs(diff).max(axis=(1, 2, 3)),
        images=images, original_images=original, class_names=list(model.class_names))
