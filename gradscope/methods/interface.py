"""The model interface every image-gradient method depends on, and nothing more.

The NumPy CNN (`gradscope.cnn.CNN`) implements it; the PyTorch adapter
(`gradscope.torch.TorchModel`) implements it for any `torch.nn.Module` classifier.
Arrays are NumPy float32 in the model's input space, layout (N, 3, H, W).
"""
from __future__ import annotations

import difflib
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from gradscope.errors import UnknownClassError, UnknownLayerError


@runtime_checkable
class ImageModel(Protocol):
    input_size: int                 # side of the square input the model expects by default
    class_names: list               # human-readable name of each class
    wnids: list                     # class ids (WordNet ids for TinyImageNet; may equal names)
    layer_names: list               # addressable layers, input to output

    def preprocess(self, images) -> np.ndarray:
        """uint8 (N, H, W, 3) array or list of (H, W, 3) arrays -> (N, 3, S, S) model input
        (resized/cropped to input_size)."""

    def deprocess(self, x: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) model input -> uint8 (N, H, W, 3) images (clipped to 0..255)."""

    def pixel_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi), each (1, 3, 1, 1): the model-input values of pixel 0 and 255."""

    def scores(self, x: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) -> raw class scores (N, C), test mode."""

    def score_gradient(self, x: np.ndarray, classes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(scores (N, C), dx (N, 3, H, W)) where dx[i] = d scores[i, classes[i]] / d x[i]."""

    def forward_to(self, x: np.ndarray, layer) -> tuple[np.ndarray, Any]:
        """Run from the input up to and including `layer` (name or index): (activations, cache)."""

    def backward_from(self, dact: np.ndarray, cache: Any) -> np.ndarray:
        """Gradient w.r.t. the input x given the upstream gradient of forward_to's output."""


# Optional, used when present (the NumPy CNN and the torch adapter have it):
#   scores_backward(x, dscores_fn) -> (scores (N, C), dx): gradient of sum(dscores_fn(scores) * scores)
#   with respect to x, in one forward and one backward pass (for log-probability objectives).


def resolve_class(model, cls) -> int:
    """Class index from an index (int or digit string), a wnid, or a name
    ("tabby", "Egyptian cat"; case-insensitive, matching any comma-separated synonym).
    Raises UnknownClassError listing close matches."""
    n = len(model.class_names)
    if isinstance(cls, (int, np.integer)) or (isinstance(cls, str) and cls.strip().isdigit()):
        i = int(cls)
        if 0 <= i < n:
            return i
        raise UnknownClassError(f"class index {i} out of range: the model has {n} classes (0..{n - 1})")
    key = str(cls).strip().lower()
    for i, w in enumerate(model.wnids):
        if str(w).lower() == key:
            return i
    synonyms = {}
    for i, name in enumerate(model.class_names):
        for s in str(name).split(","):
            synonyms.setdefault(s.strip().lower(), i)
        synonyms.setdefault(str(name).strip().lower(), i)
    if key in synonyms:
        return synonyms[key]
    close = difflib.get_close_matches(key, list(synonyms), n=5, cutoff=0.6)
    hint = f"; close matches: {', '.join(repr(c) for c in close)}" if close else ""
    raise UnknownClassError(f"unknown class {cls!r}{hint}")


def resolve_layer(model, layer) -> int:
    """Layer index from an index or a name; raises UnknownLayerError listing the layers."""
    names = list(model.layer_names)
    if isinstance(layer, (int, np.integer)) or (isinstance(layer, str) and layer.strip().lstrip("-").isdigit()):
        i = int(layer)
        if -len(names) <= i < len(names):
            return i % len(names)
        raise UnknownLayerError(f"layer index {i} out of range: the model has {len(names)} layers")
    if layer in names:
        return names.index(layer)
    close = difflib.get_close_matches(str(layer), names, n=5, cutoff=0.5)
    hint = f"; close matches: {', '.join(close)}" if close else f"; layers: {', '.join(names)}"
    raise UnknownLayerError(f"unknown layer {layer!r}{hint}")
