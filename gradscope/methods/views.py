"""Views and after-steps: the two kinds of transform the ascent loop applies.

A View is a random, differentiable transform of the image the model sees at one step,
with its adjoint:

    view(x, rng) -> (xv, back)       back(g at xv) -> g at x  (the transpose of the
                                     linear part, for the draw just made)

Views compose as a list, applied in order; the loop maps the gradient back through them
in reverse (Lucid's transformation robustness: `lucid_views()`: pad 12 px, crop-jitter
8 px, random scale 0.9-1.1, random rotation +-10 degrees, crop-jitter 4 px). Each is a
plain function of (x, rng) wrapped in a named View.

An AfterStep changes the optimised parameters after a step (blur every k steps, clip to
valid pixels): after(p, iteration, model) -> p. `at_start` ones (constraints such as
clipping) also run when an octave starts, before its first step.

All take (N, C, H, W) arrays; sizes may change along a list of views (pad, crop, scale).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["View", "AfterStep", "pad", "crop_jitter", "random_scale", "random_rotate", "resize_to", "affine_sample",
           "sample_bilinear", "sample_bilinear_transpose", "lucid_views", "apply_views"]


class View:
    """A named random differentiable transform: view(x, rng) -> (xv, back)."""

    def __init__(self, name: str, fn):
        self.name, self.view = name, fn

    def __call__(self, x, rng):
        return self.view(x, rng)

    def __repr__(self):
        return f"View({self.name})"


class AfterStep:
    """A named change of the parameters after each step: fn(p, iteration, model) -> p;
    at_start: also applied (with iteration 0) when an octave starts."""

    def __init__(self, name: str, fn, at_start: bool = False):
        self.name, self.fn, self.at_start = name, fn, at_start

    def __call__(self, p, iteration, model):
        return self.fn(p, iteration, model)

    def __repr__(self):
        return f"AfterStep({self.name})"


def apply_views(x, views, rng):
    """(what the model sees, [back, ...] in application order)."""
    backs = []
    for v in views:
        x, back = v(x, rng)
        backs.append(back)
    return x, backs


# ---- pad and crop -------------------------------------------------------------------------------------
def pad(width: int, value=0.0) -> View:
    """Pad each side by `width` pixels with a constant (a number or a (1, C, 1, 1) array,
    e.g. mid-grey in model units); the adjoint crops the gradient."""
    w = int(width)

    def fn(x, rng):
        if w <= 0:
            return x, (lambda g: g)
        out = np.empty(x.shape[:2] + (x.shape[2] + 2 * w, x.shape[3] + 2 * w), x.dtype)  # (N, C, H+2w, W+2w)
        out[...] = np.asarray(value, dtype=x.dtype)
        out[:, :, w:-w, w:-w] = x
        return out, (lambda g: g[:, :, w:-w, w:-w])

    return View(f"pad({w})", fn)


def crop_jitter(d: int) -> View:
    """Crop d pixels off in total per axis at a random offset in [0, d] (a random shift that
    shrinks the image by d); the adjoint puts the gradient back in place, zero elsewhere."""
    d = int(d)

    def fn(x, rng):
        if d <= 0:
            return x, (lambda g: g)
        oy, ox = (int(v) for v in rng.integers(0, d + 1, size=2))
        H, W = x.shape[2:]
        view = x[:, :, oy:oy + H - d, ox:ox + W - d]

        def back(g):
            out = np.zeros(g.shape[:2] + (H, W), g.dtype)
            out[:, :, oy:oy + H - d, ox:ox + W - d] = g
            return out

        return view, back

    return View(f"crop_jitter({d})", fn)


# ---- resampling -----------------------------------------------------------------------------------------
def _interp_matrix(n_in: int, n_out: int, dtype) -> np.ndarray:
    """(n_out, n_in) half-pixel-centred bilinear interpolation matrix along one axis."""
    pos = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    m = np.zeros((n_out, n_in), dtype=dtype)
    np.add.at(m, (np.arange(n_out), lo), 1 - (pos - lo))
    np.add.at(m, (np.arange(n_out), hi), pos - lo)
    return m


def _resize_view(x, h, w):
    ry = _interp_matrix(x.shape[2], h, x.dtype)  # (h, H)
    rx = _interp_matrix(x.shape[3], w, x.dtype)  # (w, W)
    return ry @ x @ rx.T, (lambda g: ry.T @ g @ rx)


def resize_to(size) -> View:
    """Bilinear resize to size (an int side or (h, w)); the adjoint is its transpose."""
    h, w = (size, size) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))

    def fn(x, rng):
        if x.shape[2:] == (h, w):
            return x, (lambda g: g)
        return _resize_view(x, h, w)

    return View(f"resize_to({h}x{w})", fn)


def random_scale(low: float = 0.9, high: float = 1.1, min_size: int = 8) -> View:
    """Resize by a random factor in [low, high] (bilinear; the adjoint is its transpose)."""
    def fn(x, rng):
        s = rng.uniform(low, high)
        H, W = x.shape[2:]
        return _resize_view(x, max(min_size, round(H * s)), max(min_size, round(W * s)))

    return View(f"random_scale({low:g}, {high:g})", fn)


def sample_bilinear(x, sy, sx):
    """x (N, C, H, W) sampled at source coordinates sy, sx (h, w) (pixel centres at integers,
    clamped to the border): (out (N, C, h, w), (idx (4, h*w), weights (4, h*w)))."""
    H, W = x.shape[2:]
    h, w = np.shape(sy)
    sy = np.clip(sy, 0, H - 1).ravel()
    sx = np.clip(sx, 0, W - 1).ravel()
    y0, x0 = np.floor(sy).astype(np.int64), np.floor(sx).astype(np.int64)
    y1, x1 = np.minimum(y0 + 1, H - 1), np.minimum(x0 + 1, W - 1)
    fy, fx = sy - y0, sx - x0
    idx = np.stack([y0 * W + x0, y0 * W + x1, y1 * W + x0, y1 * W + x1])  # (4, h*w)
    wts = np.stack([(1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx]).astype(x.dtype)
    flat = x.reshape(x.shape[0], x.shape[1], H * W)
    out = sum(flat[:, :, idx[k]] * wts[k] for k in range(4))  # (N, C, h*w)
    return out.reshape(x.shape[:2] + (h, w)), (idx, wts)


def sample_bilinear_transpose(g, shape, idx, wts):
    """The adjoint of sample_bilinear: g (N, C, h, w) scattered back onto (N, C, H, W)."""
    N, C, H, W = shape
    rows = g.reshape(N * C, -1)  # (N*C, h*w)
    out = np.empty((N * C, H * W), g.dtype)
    flat_idx = idx.ravel()
    for r in range(N * C):
        out[r] = np.bincount(flat_idx, weights=(wts * rows[r]).ravel(), minlength=H * W)
    return out.reshape(N, C, H, W)


def affine_sample(x, matrix, out_shape=None):
    """Bilinear sampling of x at out = matrix @ (source - centre) + centre: each output pixel
    (i, j) reads the source at matrix^-1 ((i, j) - centre) + centre (border-clamped).
    Returns (out (N, C, h, w), back)."""
    H, W = x.shape[2:]
    h, w = (H, W) if out_shape is None else out_shape
    inv = np.linalg.inv(np.asarray(matrix, dtype=np.float64))
    ii, jj = np.meshgrid(np.arange(h) - (h - 1) / 2, np.arange(w) - (w - 1) / 2, indexing="ij")
    sy = inv[0, 0] * ii + inv[0, 1] * jj + (H - 1) / 2
    sx = inv[1, 0] * ii + inv[1, 1] * jj + (W - 1) / 2
    out, (idx, wts) = sample_bilinear(x, sy, sx)
    return out, (lambda g: sample_bilinear_transpose(g, x.shape, idx, wts))


def random_rotate(max_degrees: float = 10.0) -> View:
    """Rotate about the centre by a random angle in [-max_degrees, max_degrees] (bilinear
    sampling, border-clamped; the adjoint scatters the gradient back with the same weights)."""
    def fn(x, rng):
        a = math.radians(rng.uniform(-max_degrees, max_degrees))
        rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        return affine_sample(x, rot)

    return View(f"random_rotate({max_degrees:g})", fn)


def lucid_views(pad_width: int = 12, jitter1: int = 8, scale=(0.9, 1.1), degrees: float = 10.0, jitter2: int = 4,
                pad_value=0.0) -> list:
    """Lucid's standard transformation robustness as a list of views: pad, crop-jitter,
    random scale, random rotation, crop-jitter."""
    return [pad(pad_width, pad_value), crop_jitter(jitter1), random_scale(*scale), random_rotate(degrees),
            crop_jitter(jitter2)]
