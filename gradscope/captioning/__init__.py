"""Image captioning: a CaptioningRNN (vanilla RNN or LSTM over image features), greedy
and beam-search decoding, single-file save/load, and the shipped Flickr8k captioner."""
from __future__ import annotations

import os

from gradscope.captioning.beam_search import beam_search, sequence_log_prob
from gradscope.captioning.io import load_captioner, save_captioner
from gradscope.captioning.model import CaptioningRNN
from gradscope.errors import DataError

__all__ = ["CaptioningRNN", "beam_search", "sequence_log_prob", "save_captioner", "load_captioner",
           "load_pretrained", "PRETRAINED_PATH"]

PRETRAINED_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained", "flickr8k_lstm.npz")


def load_pretrained(dtype=None) -> CaptioningRNN:
    """The shipped LSTM captioner trained on Flickr8k (over the shipped CNN's features)."""
    if not os.path.exists(PRETRAINED_PATH):
        raise DataError(f"the shipped captioner is missing ({PRETRAINED_PATH}); train one with "
                        "`gradscope caption train --data flickr8k:DIR --out DIR` and pass --model DIR/model.npz")
    return load_captioner(PRETRAINED_PATH, dtype=dtype)
