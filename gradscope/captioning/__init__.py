"""Image captioning: a CaptioningRNN (vanilla RNN, LSTM, or attention-LSTM over image
regions: the cells of gradscope.captioning.cells), greedy and beam-search decoding,
single-file save/load, and the shipped Flickr8k captioners."""
from __future__ import annotations

import os

from gradscope.captioning.beam_search import beam_search, sequence_log_prob
from gradscope.captioning.io import load_captioner, save_captioner
from gradscope.captioning.model import CaptioningRNN
from gradscope.errors import DataError

__all__ = ["CaptioningRNN", "beam_search", "sequence_log_prob", "save_captioner", "load_captioner",
           "load_pretrained", "PRETRAINED", "PRETRAINED_PATH", "DEFAULT_CAPTIONER"]

_FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained")
# the shipped captioners by name: attention over EfficientNet-Lite0's 7x7 regions, and the
# global-feature LSTM over its pooled features
PRETRAINED = {"attention": os.path.join(_FOLDER, "flickr8k_attention.npz"),
              "global": os.path.join(_FOLDER, "flickr8k_lstm.npz")}
DEFAULT_CAPTIONER = "attention" if os.path.exists(PRETRAINED["attention"]) else "global"
PRETRAINED_PATH = PRETRAINED[DEFAULT_CAPTIONER]  # the default captioner's file


def load_pretrained(dtype=None, name: str | None = None) -> CaptioningRNN:
    """A shipped captioner trained on Flickr8k: `name` 'attention' or 'global' (default
    DEFAULT_CAPTIONER, the one with the better dev scores)."""
    name = name or DEFAULT_CAPTIONER
    if name not in PRETRAINED:
        raise DataError(f"no shipped captioner named {name!r}: choose one of {', '.join(PRETRAINED)}")
    path = PRETRAINED[name]
    if not os.path.exists(path):
        raise DataError(f"the shipped captioner is missing ({path}); train one with "
                        "`gradscope caption train --data flickr8k:DIR --out DIR` and pass --model DIR/model.npz")
    return load_captioner(path, dtype=dtype)
