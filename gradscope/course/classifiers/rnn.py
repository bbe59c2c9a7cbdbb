"""The course's CaptioningRNN is gradscope's (same constructor, params names and shapes,
loss(features, captions) -> (loss, grads), sample(features, max_length=30)).

Differences: parameters are initialised from `seed` (default 0), not NumPy's global state,
and `idx_to_word` is a list of V entries (None at an id no word has), not a dict.
"""
from gradscope.captioning.model import CaptioningRNN  # noqa: F401

__all__ = ["CaptioningRNN"]
