"""Figures of an explained caption: per word, its maps over the photo side by side (the
default map first), the word under them, and the strip of the whole caption (one row per map).
Maps are shown scaled by their 99th percentile and clipped above it; a signed map (contribution:
negative where the pixel props the word up) is clipped at 0 first. Written atomically; never shown."""
from __future__ import annotations

import os
import re

import numpy as np

from gradscope.captioning.explain import MAPS
from gradscope.figures import _figure, save_figure
from gradscope.imageio import overlay

PERCENTILE = 99.0

__all__ = ["word_figure", "caption_strip", "save_explanation"]


def _shown(m, signed: bool = False):
    """The map clipped at its 99th percentile (so that the percentile is the top colour), and at
    0 below when it is signed."""
    m = np.asarray(m, dtype=np.float64)
    if signed:
        m = np.maximum(m, 0.0)
    top = float(np.percentile(m, PERCENTILE))
    return np.minimum(m, top) if top > 0 else m


def _panel(ax, result, t, name, label):
    ax.imshow(overlay(result.image, _shown(result.all_maps()[name][t], MAPS[name].signed)), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(label, fontsize=11)


def _word_label(result, t):
    return f"{result.words[t]}\nlog p {result.logprobs[t]:.2f}"


def word_figure(result, t):
    """One word's maps over the photo, side by side, with the word (and its log-prob) under them."""
    names = list(result.all_maps())
    fig = _figure(2.6 * len(names), 3.1)
    for i, name in enumerate(names):
        label = _word_label(result, t) if len(names) == 1 else f"{result.words[t]}: {name}\nlog p " \
                                                                f"{result.logprobs[t]:.2f}"
        _panel(fig.add_subplot(1, len(names), i + 1), result, t, name, label)
    fig.subplots_adjust(left=0.03, right=0.97, bottom=0.18, top=0.98, wspace=0.06)
    return fig


def caption_strip(result, max_words: int = 16):
    """The photo followed by every word's map, in caption order: one row per map (default first)."""
    n = min(len(result.words), max_words)
    names = list(result.all_maps())
    rows = len(names)
    fig = _figure(2.0 * (n + 1), 0.4 + 2.6 * rows)
    ax = fig.add_subplot(rows, n + 1, 1)
    ax.imshow(result.image, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("photo", fontsize=11)
    for r, name in enumerate(names):
        for t in range(n):
            label = _word_label(result, t) if r == rows - 1 else result.words[t]
            _panel(fig.add_subplot(rows, n + 1, r * (n + 1) + t + 2), result, t, name, label)
        if rows > 1:
            fig.axes[-n].set_ylabel(name, fontsize=11)
    fig.suptitle(f'"{result.caption}"', fontsize=12)
    fig.subplots_adjust(left=0.02, right=0.99, bottom=0.2 / rows, top=1 - 0.45 / (0.4 + 2.6 * rows),
                        wspace=0.06, hspace=0.3)
    return fig


def _safe(word):
    return re.sub(r"[^A-Za-z0-9']+", "_", word).strip("_") or "word"


def save_explanation(result, out_dir, stem):
    """([per-word PNG paths], strip PNG path) written into out_dir as <stem>_<t>_<word>.png
    and <stem>_caption.png."""
    os.makedirs(out_dir, exist_ok=True)
    pngs = [save_figure(word_figure(result, t), os.path.join(out_dir, f"{stem}_{t:02d}_{_safe(w)}.png"))
            for t, w in enumerate(result.words)]
    return pngs, save_figure(caption_strip(result), os.path.join(out_dir, f"{stem}_caption.png"))
