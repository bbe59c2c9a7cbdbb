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

from gradscope.methods._inputs import check_positive, class_indices, quantize, report, softmax
from gradscope.methods.objectives import check_objective, class_gradient
from gradscope.methods.regularizers import (clip_to_bounds, gaussian_blur, l2_penalty, random_jitter, resize,
                                            roll, total_variation)
from gradscope.methods.steps import unit_rms

__all__ = ["ClassVisResult", "visualize_class", "octave_sizes", "DEFAULTS"]

# easy to change in one place; chosen on the shipped TinyImageNet model
# (the raw score stalls below 0.99 for classes with close rivals, e.g. Egyptian cat vs tabby:
# log_prob pushes the rivals down as well)
DEFAULTS = {"iterations": 100, "lr": 0.1, "l2_reg": 1e-2, "jitter": 4, "blur_every": 10, "blur_sigma": 0.5,
            "objective": "log_prob"}


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


def octave_sizes(size: int, octaves, scale: float, min_size: int = 8) -> list:
    """Image sides from coarse to fine, ending at size (octaves None or 1: [size])."""
    n = 1 if octaves is None else int(octaves)
    sizes = [max(min_size, int(round(size / scale ** k))) for k in range(n - 1, -1, -1)]
    return sorted(set(sizes))


def split_iterations(iterations: int, n: int) -> list:
    """iterations spread over n stages, the remainder going to the last (finest) ones."""
    base, rest = divmod(iterations, n)
    return [base + (1 if k >= n - rest else 0) for k in range(n)]


def _check_settings(**settings):
    """Counts must be integers >= 0, rates > 0, weights >= 0 (GradscopeError naming the setting)."""
    for name, v in settings.items():
        if name in ("iterations", "jitter", "blur_every"):
            check_positive(name, v, integer=True, allow_zero=True)
        else:
            check_positive(name, v, allow_zero=name not in ("lr", "octave_scale"))


def _regularizer_grad(x, center, l2_reg, tv_weight):
    g = l2_penalty(x - center, l2_reg)[1]
    if tv_weight:
        g = g + total_variation(x, tv_weight)[1]
    return g


def _ascent_step(model, x, targets, rng, center, cfg):
    """One regularised ascent step on the jittered image: (new x, scores (N, C))."""
    xj, (dy, dx) = random_jitter(x, cfg["jitter"], rng)
    scores, g = class_gradient(model, xj, targets, cfg["objective"])
    g = roll(unit_rms(g), -dy, -dx)
    x = x + cfg["lr"] * (g - _regularizer_grad(x, center, cfg["l2_reg"], cfg["tv_weight"])).astype(x.dtype)
    return x, scores


def visualize_class(model, target, iterations: int = DEFAULTS["iterations"], lr: float = DEFAULTS["lr"],
                    l2_reg: float = DEFAULTS["l2_reg"], jitter: int = DEFAULTS["jitter"],
                    blur_every: int = DEFAULTS["blur_every"], blur_sigma: float = DEFAULTS["blur_sigma"],
                    tv_weight: float = 0.0, octaves=None, octave_scale: float = 1.4, size=None,
                    init_std: float = 0.05, objective: str = DEFAULTS["objective"], seed: int = 0, callback=None,
                    dtype=np.float32) -> ClassVisResult:
    """Synthesise an image that maximises the raw score of each target class.

    Args:
        model: an ImageModel.
        target: a class or a list of classes (index, wnid or name); one image each.
        iterations: total ascent steps (spread over the octaves).
        lr: step size in model-input units per value (the score gradient has unit RMS).
        l2_reg, tv_weight: weights of the L2 (towards mid-gray) and squared-TV penalties.
        jitter: largest random shift in pixels before each step (undone after).
        blur_every, blur_sigma: Gaussian blur every this many steps (0 = never).
        octaves, octave_scale: number of coarse-to-fine scales (None = one) and their ratio.
        size: side of the image (default model.input_size).
        init_std: std of the initial noise as a fraction of the pixel range.
        objective: 'log_prob' (log-softmax of the class) or 'score' (the raw class score,
            the course recipe).
        seed: seeds the noise and the jitter.
        callback: callback(iteration, info) with 'target_score', 'target_prob' (N,), 'images'.
    """
    _check_settings(iterations=iterations, jitter=jitter, blur_every=blur_every, lr=lr, octave_scale=octave_scale,
                    l2_reg=l2_reg, tv_weight=tv_weight, blur_sigma=blur_sigma, init_std=init_std)
    single = isinstance(target, (str, int, np.integer))
    targets = class_indices(model, [target] if single else target, 1 if single else len(target))
    size = model.input_size if size is None else check_positive("size", size, integer=True)
    cfg = {"lr": lr, "l2_reg": l2_reg, "jitter": jitter, "tv_weight": tv_weight,
           "objective": check_objective(objective)}
    rng = np.random.default_rng(seed)
    lo, hi = (b.astype(dtype) for b in model.pixel_bounds())
    center = (lo + hi) / 2
    sizes = octave_sizes(size, octaves, octave_scale)
    x = center + init_std * (hi - lo) * rng.standard_normal((len(targets), 3, sizes[0], sizes[0])).astype(dtype)
    scores_hist, probs_hist = [], []
    it = 0
    for side, n_it in zip(sizes, split_iterations(iterations, len(sizes))):
        x = resize(x, side)
        for _ in range(n_it):
            x, scores = _ascent_step(model, x, targets, rng, center, cfg)
            it += 1
            if blur_every and blur_sigma > 0 and it % blur_every == 0:
                x = gaussian_blur(x, blur_sigma)
            x = clip_to_bounds(x, (lo, hi))
            scores_hist.append(scores[np.arange(len(targets)), targets])
            probs_hist.append(softmax(scores.astype(np.float64))[np.arange(len(targets)), targets])
            report(callback, it, target_score=scores_hist[-1], target_prob=probs_hist[-1],
                   images=model.deprocess(x))
    params = dict(cfg, iterations=iterations, blur_every=blur_every, blur_sigma=blur_sigma,
                  octaves=octaves, octave_scale=octave_scale, size=size, init_std=init_std, seed=seed)
    return _result(model, x, targets, scores_hist, probs_hist, params)


def _result(model, x, targets, scores_hist, probs_hist, params) -> ClassVisResult:
    """Package the run, scoring the final image as saved (uint8 round trip)."""
    xq = quantize(model, x)
    final = model.scores(xq).astype(np.float64)
    idx = np.arange(len(targets))
    empty = np.zeros((0, len(targets)))
    return ClassVisResult(model.deprocess(xq), targets,
                          np.asarray(scores_hist, dtype=np.float64) if scores_hist else empty,
                          np.asarray(probs_hist) if probs_hist else empty,
                          final[idx, targets], softmax(final)[idx, targets],
                          [str(model.class_names[t]) for t in targets], params)
