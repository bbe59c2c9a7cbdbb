"""Image captioning: a CaptioningRNN (vanilla RNN, LSTM, or attention-LSTM over image
regions: the cells of gradscope.captioning.cells), greedy and beam-search decoding,
single-file save/load, and the shipped Flickr8k captioners."""
from __future__ import annotations

import os

import numpy as np

from gradscope.captioning.beam_search import beam_search, sequence_log_prob
from gradscope.captioning.ensemble import CaptionerEnsemble
from gradscope.captioning.io import load_captioner, load_captioners, save_captioner
from gradscope.captioning.model import CaptioningRNN
from gradscope.errors import DataError

__all__ = ["CaptioningRNN", "CaptionerEnsemble", "beam_search", "sequence_log_prob", "save_captioner",
           "load_captioner", "load_captioners",
           "load_pretrained", "load_named", "PRETRAINED", "PRETRAINED_FILES", "DEFAULT_CAPTIONER"]

_FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained")
# the shipped captioners by name, each a list of files (several: an ensemble, CaptionerEnsemble):
# two attention captioners over EfficientNet-Lite0's 7x7 regions decoding together (seeds 1 and 2
# of one recipe: the best pair of seeds 0-2 on Flickr8k dev), the seed-0 attention captioner alone,
# and the global-feature LSTM over the pooled features
PRETRAINED = {"ensemble": [os.path.join(_FOLDER, "flickr8k_attention_seed1.npz"),
                           os.path.join(_FOLDER, "flickr8k_attention_seed2.npz")],
              "attention": [os.path.join(_FOLDER, "flickr8k_attention.npz")],
              "global": [os.path.join(_FOLDER, "flickr8k_lstm.npz")]}
# the default: the first whose files are all present (the one with the best dev scores first)
DEFAULT_CAPTIONER = next((k for k, files in PRETRAINED.items() if all(map(os.path.exists, files))), "global")
PRETRAINED_FILES = PRETRAINED[DEFAULT_CAPTIONER]  # the default captioner's files


def _is_float_dtype(dtype) -> bool:
    try:
        return np.issubdtype(np.dtype(dtype), np.floating)
    except TypeError:
        return False


def load_pretrained(dtype=None, name: str | None = None):
    """A shipped captioner trained on Flickr8k: `name` a key of PRETRAINED (default
    DEFAULT_CAPTIONER): a CaptioningRNN, or a CaptionerEnsemble for 'ensemble'."""
    if dtype is not None and not _is_float_dtype(dtype):  # e.g. load_pretrained("attention"): a name by position
        raise DataError(f"dtype must be a NumPy float type such as np.float32, got {dtype!r}"
                        + (f"; a shipped captioner by name: load_pretrained(name={dtype!r})" if isinstance(dtype, str)
                           else ""))
    name = name or DEFAULT_CAPTIONER
    if name not in PRETRAINED:
        raise DataError(f"no shipped captioner named {name!r}: choose one of {', '.join(PRETRAINED)}")
    missing = [p for p in PRETRAINED[name] if not os.path.exists(p)]
    if missing:
        raise DataError(f"the shipped captioner is missing ({', '.join(missing)}); train one with "
                        "`gradscope caption train --data flickr8k:DIR --out DIR` and pass --model DIR/model.npz")
    return load_captioners(PRETRAINED[name], dtype=dtype)


def load_named(spec, dtype=None):
    """A shipped captioner's name (a key of PRETRAINED), or captioner files (one path, or several
    separated by commas: an ensemble)."""
    spec = os.fspath(spec)
    return load_pretrained(dtype, spec) if spec in PRETRAINED and not os.path.exists(spec) else load_captioners(spec, dtype)
