"""Matplotlib figures that draw results; they return a Figure and never optimise,
show or save. `save_figure` writes one atomically. Uses the Agg canvas (no display)."""
from __future__ import annotations

import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gradscope.fileio import atomic_path
from gradscope.imageio import difference_image, heatmap, overlay

__all__ = ["image_grid", "saliency_figure", "fooling_figure", "curves_figure", "save_figure"]


def _figure(width, height) -> Figure:
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def image_grid(images, titles=None, ncols: int = 4, size: float = 2.0) -> Figure:
    """Images (uint8 (H, W, 3) each, or an (N, H, W, 3) array) in a grid, with optional titles."""
    images = list(images)
    n = max(1, len(images))
    ncols = max(1, min(ncols, n))
    nrows = (n + ncols - 1) // ncols
    fig = _figure(size * ncols, size * nrows + (0.3 * nrows if titles else 0))
    for i, img in enumerate(images):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        ax.imshow(img, interpolation="nearest")
        ax.set_axis_off()
        if titles:
            ax.set_title(str(titles[i]), fontsize=8)
    fig.tight_layout()
    return fig


TITLE_WIDTH = 24  # characters per title line of a 2-inch panel at font size 8
SCALE_NOTE = "maps: colour scale from 0 to each map's 99th percentile; higher values clipped"


def panel_title(text, width: int = TITLE_WIDTH, lines: int = 2) -> str:
    """A title that fits its panel: wrapped to `width` characters, at most `lines` lines
    (the last one shortened with '...')."""
    import textwrap

    return "\n".join(textwrap.wrap(str(text), width, max_lines=lines, placeholder="...")) or " "


def _short(name) -> str:
    return str(name).split(",")[0].strip()


def saliency_figure(result, max_images: int = 8, labels=None) -> Figure:
    """Rows of image, heatmap and overlay for a SaliencyResult; labels: one per row (the
    photos' names) written before the class."""
    n = min(len(result.maps), max_images)
    fig = _figure(6.0, 2.2 * n + 0.5)
    for i in range(n):
        name = _short(result.class_names[i]) if result.class_names else str(result.classes[i])
        label = f"{labels[i]}: " if labels else ""
        panels = [(result.images[i], f"{label}{name} (score {result.scores[i]:.2f})"),
                  (heatmap(result.maps[i]), result.method), (overlay(result.images[i], result.maps[i]), "overlay")]
        for j, (img, title) in enumerate(panels):
            ax = fig.add_subplot(n, 3, 3 * i + j + 1)
            ax.imshow(img, interpolation="nearest")
            ax.set_title(panel_title(title), fontsize=8)
            ax.set_axis_off()
    fig.suptitle(SCALE_NOTE, fontsize=7)
    fig.tight_layout()
    return fig


def fooling_figure(result, max_images: int = 8, labels=None) -> Figure:
    """Rows of original, changed image and magnified difference for a FoolingResult;
    labels: one per row (the photos' names)."""
    names = result.class_names or [str(i) for i in range(int(max(result.final_class.max(),
                                                                     result.original_class.max())) + 1)]
    images, titles = [], []
    for i in range(min(len(result.images), max_images)):
        label = f"{labels[i]}: " if labels else ""
        verdict = "fooled" if result.success[i] else "NOT fooled"
        images += [result.original_images[i], result.images[i],
                   difference_image(result.images[i], result.original_images[i])]
        titles += [f"{label}{_short(names[result.original_class[i]])} {result.original_prob[i]:.2f}",
                   f"{verdict}: {_short(names[result.final_class[i]])} {result.final_prob[i]:.2f}",
                   f"difference x{127.5 / max(float(result.linf[i]), 1.0):.0f} (Linf {result.linf[i]:.0f}/255)"]
    return image_grid(images, [panel_title(t) for t in titles], ncols=3)


def curves_figure(curves: dict, xlabel: str = "iteration", ylabel: str = "", title: str = "",
                  x=None) -> Figure:
    """Line plot of named curves: {label: (T,) or (T, N) array (one line per column)}."""
    fig = _figure(5.0, 3.5)
    ax = fig.add_subplot(1, 1, 1)
    for label, ys in curves.items():
        ys = np.asarray(ys)
        xs = np.arange(1, len(ys) + 1) if x is None else np.asarray(x)
        lines = ax.plot(xs, ys)
        if lines:
            lines[0].set_label(label)  # one legend entry per curve set
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if curves:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def save_figure(fig: Figure, path, dpi: int = 120) -> str:
    """Write a figure (format from the extension, default PNG), atomically; returns the path."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lstrip(".").lower() or "png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=ext, dpi=dpi)
    return path
