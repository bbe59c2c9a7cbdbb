"""Image parameterisations: what the ascent loop optimises (Lucid's `param_f -> (params, image_f)`).

A Parameterization holds the starting parameters and a chain of Stages from parameters to
the model input (N, 3, H, W). Each Stage is a forward/backward pair in the layers' style:

    forward(p) -> (y, cache)        backward(dy, cache) -> dp   (hand-written adjoint)

    pixel(x0)                      the image itself (today's recipes; after-steps clip/blur it)
    fourier(n, h, w, rng)          Fourier coefficients scaled by 1/frequency (Lucid: sd 0.01,
                                   decay power 1, orthonormal inverse real FFT, divided by 4)
    decorrelated_colour()          a fixed 3x3 colour-correlation matrix (Lucid's, normalised)
    sigmoid_stage()                squash to [0, 1]
    to_model_range(model)          [0, 1] pixels -> model input (lo + (hi - lo) * y)
    upsample(size)                 bilinear resize (e.g. 128 px parameters -> 224 px input)
    blend(x, x_alt)                m (N, 1, H, W) -> x * m + x_alt * (1 - m) (perturbation masks)
    lucid_image(model, n, size)    fourier -> colour -> sigmoid -> model range -> upsample

`chain(init, stages)` builds any other: a mask is chain(m0, [upsample(224), blend(x, blurred)]).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from gradscope.methods.views import _interp_matrix

__all__ = ["Stage", "Parameterization", "chain", "pixel", "fourier", "fourier_stage", "decorrelated_colour",
           "sigmoid_stage", "to_model_range", "upsample", "blend", "lucid_image", "rfft2d_freqs",
           "COLOUR_CORRELATION"]


class Stage(NamedTuple):
    name: str
    forward: Callable    # p -> (y, cache)
    backward: Callable   # (dy, cache) -> dp


class Parameterization(NamedTuple):
    """init: the starting parameters, (N, ...) with one row per image; stages: parameters ->
    model input, in order."""
    init: np.ndarray
    stages: tuple
    name: str = "custom"

    def image(self, p):
        """(x (N, 3, H, W), caches) from parameters p."""
        caches = []
        for s in self.stages:
            p, c = s.forward(p)
            caches.append(c)
        return p, caches

    def backward(self, dx, caches):
        """The gradient w.r.t. the parameters of a gradient dx w.r.t. the image."""
        for s, c in zip(reversed(self.stages), reversed(caches)):
            dx = s.backward(dx, c)
        return dx

    def __call__(self, p):
        return self.image(p)[0]


def chain(init, stages, name: str = "custom") -> Parameterization:
    """A Parameterization from starting parameters and a sequence of Stages."""
    return Parameterization(np.asarray(init), tuple(stages), name)


def pixel(x0) -> Parameterization:
    """The image is the parameters (model input (N, 3, H, W))."""
    return Parameterization(np.asarray(x0), (), "pixel")


# ---- Fourier basis -----------------------------------------------------------------------------------
def rfft2d_freqs(h: int, w: int) -> np.ndarray:
    """(h, w // 2 + 1) spatial frequency magnitude (cycles per pixel) of each rfft2 coefficient."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.abs(np.fft.fftfreq(w)[: w // 2 + 1])[None, :]  # the Nyquist column of an even w reads -0.5
    return np.sqrt(fy * fy + fx * fx)


def _column_weights(w: int) -> np.ndarray:
    """How often each rfft column appears in the full Hermitian spectrum: 1 for the zero
    column (and the Nyquist one when w is even), 2 for the others."""
    k = np.full(w // 2 + 1, 2.0)
    k[0] = 1.0
    if w % 2 == 0:
        k[-1] = 1.0
    return k


FOURIER_DIVISOR = 4.0  # Lucid divides the inverse FFT by 4 (less saturated starts)


def fourier_stage(h: int, w: int, decay_power: float = 1.0) -> Stage:
    """(N, C, h, w // 2 + 1, 2) real and imaginary parts -> (N, C, h, w): the coefficients are
    scaled by 1 / max(frequency, 1 / max(h, w)) ** decay_power, then inverse real FFT with
    orthonormal norm, divided by FOURIER_DIVISOR."""
    scale = 1.0 / np.maximum(rfft2d_freqs(h, w), 1.0 / max(h, w)) ** decay_power  # (h, w//2+1)
    weights = _column_weights(w)

    def forward(p):
        spectrum = scale * (p[..., 0] + 1j * p[..., 1])
        x = np.fft.irfft2(spectrum, s=(h, w), norm="ortho") / FOURIER_DIVISOR
        return x.astype(p.dtype), None

    def backward(dx, cache):
        # irfft2 is real-linear in (Re, Im); its transpose is rfft2 with each column counted
        # as often as it appears in the Hermitian spectrum
        g = np.fft.rfft2(dx.astype(np.float64), norm="ortho") * (weights * scale / FOURIER_DIVISOR)
        return np.stack([g.real, g.imag], axis=-1).astype(dx.dtype)

    return Stage(f"fourier({h}x{w}, decay {decay_power:g})", forward, backward)


def fourier(n: int, h: int, w: int, rng, sd: float = 0.01, decay_power: float = 1.0, channels: int = 3,
            dtype=np.float32):
    """(init (N, C, h, w//2+1, 2) ~ N(0, sd^2), the Fourier Stage)."""
    init = (sd * rng.standard_normal((n, channels, h, w // 2 + 1, 2))).astype(dtype)
    return init, fourier_stage(h, w, decay_power)


# ---- colour, squashing, range ------------------------------------------------------------------------
# Lucid's square root of the ImageNet colour correlation (rows: r, g, b), normalised so that
# its largest column has unit norm
_SVD_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
COLOUR_CORRELATION = _SVD_SQRT / np.max(np.linalg.norm(_SVD_SQRT, axis=0))


def decorrelated_colour(matrix=COLOUR_CORRELATION) -> Stage:
    """(N, 3, H, W) decorrelated channels -> (N, 3, H, W) colour: y[:, i] = sum_j M[i, j] x[:, j]."""
    m = np.asarray(matrix, dtype=np.float64)

    def forward(p):
        return np.einsum("ij,njhw->nihw", m.astype(p.dtype), p), None

    def backward(dy, cache):
        return np.einsum("ij,nihw->njhw", m.astype(dy.dtype), dy)

    return Stage("decorrelated_colour", forward, backward)


def sigmoid_stage() -> Stage:
    """y = 1 / (1 + exp(-p)), elementwise."""
    def forward(p):
        y = 0.5 * (1.0 + np.tanh(0.5 * p))  # the stable form
        return y, y

    def backward(dy, y):
        return dy * y * (1 - y)

    return Stage("sigmoid", forward, backward)


def to_model_range(model) -> Stage:
    """[0, 1] pixels -> model input: lo + (hi - lo) * y, with (lo, hi) = model.pixel_bounds()."""
    lo, hi = (np.asarray(b, dtype=np.float64) for b in model.pixel_bounds())

    def forward(p):
        return (lo + (hi - lo) * p).astype(p.dtype), None

    def backward(dy, cache):
        return (dy * (hi - lo)).astype(dy.dtype)

    return Stage("to_model_range", forward, backward)


def upsample(size) -> Stage:
    """Bilinear resize to size (an int side or (h, w)); the backward is its transpose."""
    h, w = (size, size) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))

    def forward(p):
        if p.shape[2:] == (h, w):
            return p, None
        ry, rx = _interp_matrix(p.shape[2], h, p.dtype), _interp_matrix(p.shape[3], w, p.dtype)
        return ry @ p @ rx.T, (ry, rx)

    def backward(dy, cache):
        if cache is None:
            return dy
        ry, rx = cache
        return ry.T @ dy @ rx

    return Stage(f"upsample({h}x{w})", forward, backward)


def blend(x, x_alt) -> Stage:
    """m (N, 1, H, W) -> x * m + x_alt * (1 - m): where the mask is 1 the image is x, where 0
    x_alt (blurred, grey, ...); x and x_alt (N or 1, 3, H, W) are fixed."""
    diff = x - x_alt

    def forward(m):
        return (x_alt + diff * m).astype(m.dtype), None

    def backward(dy, cache):
        return np.sum(dy * diff, axis=1, keepdims=True).astype(dy.dtype)

    return Stage("blend", forward, backward)


def lucid_image(model, n: int, size: int, rng, out_size=None, sd: float = 0.01, decay_power: float = 1.0,
                decorrelate: bool = True, dtype=np.float32) -> Parameterization:
    """Lucid's image: Fourier coefficients (size x size) -> decorrelated colour -> sigmoid ->
    model range -> bilinear upsample to out_size (default model.input_size)."""
    init, spectrum = fourier(n, size, size, rng, sd=sd, decay_power=decay_power, dtype=dtype)
    stages = [spectrum] + ([decorrelated_colour()] if decorrelate else []) \
        + [sigmoid_stage(), to_model_range(model), upsample(model.input_size if out_size is None else out_size)]
    return Parameterization(init, tuple(stages), "fourier+colour" if decorrelate else "fourier")
