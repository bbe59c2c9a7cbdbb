"""Small composable image priors and transforms for the image-optimisation methods.

The array functions take a model-input batch x (N, C, H, W) and return a new array
(penalties return (value, gradient)); the dtype follows x. On top of them, the pieces
`ascend` (gradscope/methods/ascent.py) composes: priors (`l2_prior`, `tv_prior`; add
them with +), views (`jitter`, `scale_jitter`, `smooth_gradient`) and after-steps
(`blur_every`, `clip_pixels`) (the two kinds of transform, gradscope/methods/views.py).
"""
from __future__ import annotations

import math

import numpy as np

from gradscope.methods.views import AfterStep, View, random_scale

__all__ = ["l2_penalty", "total_variation", "roll", "random_jitter", "gaussian_kernel",
           "gaussian_blur", "clip_to_bounds", "resize", "Prior", "l2_prior", "tv_prior", "sum_priors",
           "jitter", "scale_jitter", "smooth_gradient", "blur_every", "clip_pixels"]


def l2_penalty(x: np.ndarray, weight: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """weight * ||x_i||^2 per image: (values (N,), gradient like x)."""
    value = weight * np.sum(x * x, axis=(1, 2, 3))
    return value, (2.0 * weight) * x


def total_variation(x: np.ndarray, weight: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Squared total variation per image, weight * sum of squared differences between
    vertical and horizontal neighbours: (values (N,), gradient like x)."""
    dh = x[:, :, 1:, :] - x[:, :, :-1, :]  # (N, C, H-1, W)
    dw = x[:, :, :, 1:] - x[:, :, :, :-1]  # (N, C, H, W-1)
    value = weight * (np.sum(dh * dh, axis=(1, 2, 3)) + np.sum(dw * dw, axis=(1, 2, 3)))
    grad = np.zeros_like(x)
    grad[:, :, 1:, :] += 2 * dh
    grad[:, :, :-1, :] -= 2 * dh
    grad[:, :, :, 1:] += 2 * dw
    grad[:, :, :, :-1] -= 2 * dw
    return value, weight * grad


def roll(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Shift the images circularly by dy rows and dx columns (roll(x, -dy, -dx) undoes it)."""
    return np.roll(x, (int(dy), int(dx)), axis=(2, 3))


def random_jitter(x: np.ndarray, max_shift: int, rng: np.random.Generator) -> tuple[np.ndarray, tuple]:
    """Roll by a random shift in [-max_shift, max_shift] on each axis: (rolled x, (dy, dx))."""
    if max_shift <= 0:
        return x, (0, 0)
    dy, dx = (int(v) for v in rng.integers(-max_shift, max_shift + 1, size=2))
    return roll(x, dy, dx), (dy, dx)


def gaussian_kernel(sigma: float, radius: int | None = None) -> np.ndarray:
    """Normalised 1-D Gaussian of radius ceil(3 sigma) (or the given radius): (2r + 1,) float64."""
    radius = max(1, int(math.ceil(3.0 * sigma))) if radius is None else int(radius)
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def _blur_axis(x: np.ndarray, kernel: np.ndarray, axis: int) -> np.ndarray:
    """Convolve along one spatial axis with reflect padding (same size out)."""
    r = len(kernel) // 2
    n = x.shape[axis]
    pad = [(0, 0)] * x.ndim
    pad[axis] = (r, r)
    # reflect needs r < n; symmetric edge padding handles tiny images
    xp = np.pad(x, pad, mode="reflect" if r < n else "edge")
    out = np.zeros_like(x)
    for k, w in enumerate(kernel):
        out += w * np.take(xp, np.arange(k, k + n), axis=axis)
    return out


def gaussian_blur(x: np.ndarray, sigma: float, radius: int | None = None) -> np.ndarray:
    """Separable Gaussian blur of each channel (sigma in pixels; 0 returns a copy), the
    kernel truncated at radius (default ceil(3 sigma))."""
    if sigma <= 0:
        return x.copy()
    k = gaussian_kernel(sigma, radius).astype(x.dtype)
    return _blur_axis(_blur_axis(x, k, 2), k, 3)


def clip_to_bounds(x: np.ndarray, bounds) -> np.ndarray:
    """Clip to the model-input values of pixels 0 and 255: bounds = (lo, hi), each (1, C, 1, 1)."""
    lo, hi = bounds
    return np.clip(x, lo.astype(x.dtype), hi.astype(x.dtype))


def _bilinear_weights(n_in: int, n_out: int):
    """Source indices and weights of half-pixel-centred bilinear resampling along one axis."""
    pos = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    pos = np.clip(pos, 0, n_in - 1)
    i0 = np.floor(pos).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, pos - i0


def resize(x: np.ndarray, size) -> np.ndarray:
    """Bilinear resize of (N, C, H, W) to size = (h, w) or an int side (half-pixel centres,
    as OpenCV/PIL without antialiasing)."""
    h, w = (size, size) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))
    if (h, w) == x.shape[2:]:
        return x.copy()
    y0, y1, fy = _bilinear_weights(x.shape[2], h)
    x0, x1, fx = _bilinear_weights(x.shape[3], w)
    fy = fy.astype(x.dtype)[:, None]
    fx = fx.astype(x.dtype)
    rows = x[:, :, y0, :] * (1 - fy) + x[:, :, y1, :] * fy  # (N, C, h, W)
    return rows[:, :, :, x0] * (1 - fx) + rows[:, :, :, x1] * fx


# ---- priors: prior(x) -> (values (N,), gradient like x); summable with + -----------------------
class Prior:
    """A penalty on the image, (values (N,), gradient) = prior(x); priors add: l2 + tv."""

    def __init__(self, fn, name: str):
        self.fn, self.name = fn, name

    def __call__(self, x):
        return self.fn(x)

    def __add__(self, other: "Prior") -> "Prior":
        def both(x):
            (va, ga), (vb, gb) = self(x), other(x)
            return va + vb, ga + gb

        return Prior(both, f"{self.name} + {other.name}")

    def __repr__(self):
        return f"Prior({self.name})"


def l2_prior(weight: float, center=0.0) -> Prior:
    """weight * ||x - center||^2 per image (center: mid-gray, for instance)."""
    return Prior(lambda x: l2_penalty(x - center, weight), f"l2({weight:g})")


def tv_prior(weight: float) -> Prior:
    """weight * squared total variation per image."""
    return Prior(lambda x: total_variation(x, weight), f"tv({weight:g})")


def sum_priors(priors) -> Prior | None:
    """One Prior from None, a Prior or a sequence of them (None when there are none)."""
    if priors is None or isinstance(priors, Prior):
        return priors
    total = None
    for p in priors:
        total = p if total is None else total + p
    return total


# ---- transforms: views around each step, after-steps after it (gradscope/methods/views.py) -------
def jitter(max_shift: int) -> View:
    """Roll the image by a random shift in [-max_shift, max_shift] before the gradient
    (and roll the gradient back)."""
    def view(x, rng):
        xj, (dy, dx) = random_jitter(x, max_shift, rng)
        return xj, (lambda g: roll(g, -dy, -dx))

    return View(f"jitter({max_shift})", view)


def blur_every(every: int, sigma: float) -> AfterStep:
    """Gaussian blur of sigma pixels after every `every`-th step (0 or sigma 0 = never)."""
    def after(x, iteration, model):
        if iteration and every and sigma > 0 and iteration % every == 0:
            return gaussian_blur(x, sigma)
        return x

    return AfterStep(f"blur_every({every}, {sigma:g})", after)


def scale_jitter(max_scale: float) -> View:
    """Resize the image by a random factor in [1 - max_scale, 1 + max_scale] before the
    gradient (bilinear, as a matrix on each axis, so the gradient maps back exactly by its
    transpose): the ascent must work at several scales, which keeps it from pixel noise."""
    return View(f"scale_jitter({max_scale:g})", random_scale(1 - max_scale, 1 + max_scale).view)


def smooth_gradient(sigma: float) -> View:
    """Blur the gradient (not the image) by sigma pixels: steps favour smooth, large
    structures over pixel-level noise (a preconditioner)."""
    return View(f"smooth_gradient({sigma:g})", lambda x, rng: (x, lambda g: gaussian_blur(g, sigma)))


def clip_pixels() -> AfterStep:
    """Clip to the model-input values of pixels 0 and 255 (model.pixel_bounds()); also when
    an octave starts."""
    return AfterStep("clip_pixels", lambda x, iteration, model: clip_to_bounds(x, model.pixel_bounds()),
                     at_start=True)
