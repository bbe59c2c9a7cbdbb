"""Figures of an explained caption: one panel per word (its map over the photo, the word
under it) and the strip of the whole caption. Written atomically; never shown."""
from __future__ import annotations

import os
import re

from gradscope.figures import _figure, save_figure
from gradscope.imageio import overlay

__all__ = ["word_figure", "caption_strip", "save_explanation"]


def _panel(ax, result, t):
    ax.imshow(overlay(result.image, result.maps[t]), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(f"{result.words[t]}\nlog p {result.logprobs[t]:.2f}", fontsize=11)


def word_figure(result, t):
    """One word's map over the photo with the word (and its log-prob) written under it."""
    fig = _figure(2.6, 3.1)
    _panel(fig.add_subplot(1, 1, 1), result, t)
    fig.subplots_adjust(left=0.03, right=0.97, bottom=0.18, top=0.98)
    return fig


def caption_strip(result, max_words: int = 16):
    """The photo followed by every word's map, in caption order, one row."""
    n = min(len(result.words), max_words)
    fig = _figure(2.0 * (n + 1), 3.0)
    ax = fig.add_subplot(1, n + 1, 1)
    ax.imshow(result.image, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("photo", fontsize=11)
    for t in range(n):
        _panel(fig.add_subplot(1, n + 1, t + 2), result, t)
    fig.suptitle(f'"{result.caption}"', fontsize=12)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.2, top=0.84, wspace=0.06)
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
