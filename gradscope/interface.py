"""The model interface every image-gradient method depends on, and nothing more.

The NumPy CNN (`gradscope.cnn.CNN`) implements it; the PyTorch adapter
(`gradscope.torch.TorchModel`) implements it for any `torch.nn.Module` classifier.
Arrays are NumPy float32 in the model's input space, layout (N, 3, H, W).

This module sits at the bottom of the package (it imports only numpy and
gradscope.errors), so models can use `resolve_layer` without loading the methods;
`gradscope.methods.interface` re-exports it. The one gradient primitive a model
provides is `scores_backward`; `score_gradient` (the gradient of one class score per
image) is derived from it here, once, for every model.
"""
from __future__ import annotations

import difflib
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

from gradscope.errors import GradscopeError, ShapeError, UnknownClassError, UnknownLayerError


@runtime_checkable
class ImageModel(Protocol):
    input_size: int                 # side of the square input the model expects by default
    class_names: list               # human-readable name of each class
    wnids: list                     # class ids (WordNet ids for TinyImageNet; may equal names)
    layer_names: list               # addressable layers in the order they run, input to output

    def preprocess(self, images) -> np.ndarray:
        """uint8 (N, H, W, 3) array or list of (H, W, 3) arrays -> (N, 3, S, S) model input
        (resized/cropped to input_size)."""

    def deprocess(self, x: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) model input -> uint8 (N, H, W, 3) images (clipped to 0..255)."""

    def pixel_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi), each (1, 3, 1, 1): the model-input values of pixel 0 and 255."""

    def scores(self, x: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) -> raw class scores (N, C), test mode."""

    def scores_backward(self, x: np.ndarray, dscores_fn: Callable) -> tuple[np.ndarray, np.ndarray]:
        """(scores (N, C), dx (N, 3, H, W)): the gradient of sum(dscores * scores) w.r.t. x,
        where dscores = dscores_fn(scores) (N, C); one forward and one backward pass, test mode."""

    def forward_to(self, x: np.ndarray, layer) -> tuple[np.ndarray, Any]:
        """Run from the input up to and including `layer` (name or index): (activations, cache)."""

    def backward_from(self, dact: np.ndarray, cache: Any) -> np.ndarray:
        """Gradient w.r.t. the input x given the upstream gradient of forward_to's output."""

    def layer_gradient(self, x: np.ndarray, layer, dscores_fn: Callable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(scores (N, C), act, dact): forward_to's output at `layer` and the gradient of
        sum(dscores * scores) w.r.t. it, dscores = dscores_fn(scores); test mode. Only the
        methods that look inside the network (Grad-CAM) need it."""


def check_input(x, name: str = "model input") -> np.ndarray:
    """x unchanged if it is a float (N, 3, H, W) array, non-empty and finite; otherwise a
    ShapeError or GradscopeError naming the problem (the one model-input check)."""
    if not isinstance(x, np.ndarray):
        raise ShapeError(f"{name} must be a NumPy array (N, 3, H, W), got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 3:
        uint8_like = x.ndim in (3, 4) and x.shape[-1] == 3
        hint = "; uint8 (H, W, 3) images go through model.preprocess first" if uint8_like else ""
        raise ShapeError(f"{name} must have shape (N, 3, H, W) in model-input space, got {x.shape}{hint}")
    if x.size == 0:
        raise ShapeError(f"{name} is empty: shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise GradscopeError(f"{name} must be a float array, got dtype {x.dtype}; use model.preprocess on uint8 images")
    if not np.all(np.isfinite(x)):
        raise GradscopeError(f"{name} contains NaN or infinite values")
    return x


def pixels_to_input(model, pixels, dtype=np.float32) -> np.ndarray:
    """(N, 3, H, W) model input of uint8 images (N, H, W, 3) at their own size (no resize):
    each pixel mapped linearly through model.pixel_bounds() (0 -> lo, 255 -> hi)."""
    lo, hi = model.pixel_bounds()
    return (lo + (hi - lo) * (np.asarray(pixels).transpose(0, 3, 1, 2) / 255.0)).astype(dtype)


def upstream_gradient(scores: np.ndarray, dscores_fn, model: str, dtype=None) -> np.ndarray:
    """dscores_fn(scores) (N, C) as an array (of dtype when given), for a model's backward pass:
    DataError naming `model` when the scores hold NaN or infinite values (a broken model or input,
    whose maps would be NaN), ShapeError when dscores_fn does not return the scores' shape."""
    from gradscope.validate import check_finite_output

    check_finite_output(scores, model, "scores")
    dscores = np.asarray(dscores_fn(scores), dtype=dtype)
    if dscores.shape != scores.shape:
        raise ShapeError(f"dscores_fn must return the scores' shape {scores.shape}, got {dscores.shape}")
    return dscores


def check_classes(classes, n: int, num_classes: int) -> np.ndarray:
    """(n,) int64 class indices from one index or n indices; GradscopeError otherwise."""
    c = np.asarray(classes)
    c = np.broadcast_to(c, (n,)) if c.ndim == 0 else c
    if c.shape != (n,):
        raise ShapeError(f"classes must hold one class per image ({n}), got shape {c.shape}")
    if n and (not np.issubdtype(c.dtype, np.integer) or c.min() < 0 or c.max() >= num_classes):
        raise GradscopeError(f"classes must be integer indices in [0, {num_classes}), got {c.tolist()}")
    return c.astype(np.int64)


def _onehot(classes):
    """dscores_fn picking scores[i, classes[i]] (the classes checked against the scores)."""
    def onehot(scores):
        picked = check_classes(classes, scores.shape[0], scores.shape[1])
        d = np.zeros_like(scores)
        d[np.arange(len(d)), picked] = 1
        return d

    return onehot


def score_gradient(model, x: np.ndarray, classes) -> tuple[np.ndarray, np.ndarray]:
    """(scores (N, C), dx (N, 3, H, W)) with dx[i] = d scores[i, classes[i]] / d x[i],
    through model.scores_backward (one forward and one backward pass)."""
    return model.scores_backward(x, _onehot(classes))


def _log_softmax_grad(classes):
    """dscores_fn of log softmax(scores)[i, classes[i]]: onehot - softmax(scores)."""
    from gradscope.layers.core import softmax

    onehot = _onehot(classes)
    return lambda scores: (onehot(scores) - softmax(scores.astype(np.float64))).astype(scores.dtype)


# what a class's gradient differentiates: name -> (classes -> dscores_fn)
SCORE_TARGETS = {"score": _onehot, "log_prob": _log_softmax_grad}


def score_layer_gradient(model, x: np.ndarray, layer, classes, target: str = "score"
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scores (N, C), act, dact) with dact[i] = d f(scores)[i, classes[i]] / d act[i], act the
    output of `layer`, through model.layer_gradient; f by target (SCORE_TARGETS): 'score' the raw
    class score, 'log_prob' its log-softmax."""
    if target not in SCORE_TARGETS:
        raise GradscopeError(f"target must be one of {', '.join(SCORE_TARGETS)}, got {target!r}")
    if not callable(getattr(model, "layer_gradient", None)):
        raise GradscopeError(f"{type(model).__name__} has no layer_gradient(x, layer, dscores_fn): the gradient "
                             "with respect to a layer's output is needed here")
    return model.layer_gradient(x, layer, SCORE_TARGETS[target](classes))


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
    if not key:
        raise UnknownClassError(f"empty class name {cls!r}: give an index (0..{n - 1}), a wnid or a name")
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
    raise UnknownClassError(f"unknown class {cls!r}{class_hint(model.class_names, model.wnids, key)}")


def find_classes(class_names, wnids, query: str) -> list:
    """Indices of the classes whose name, a synonym or wnid contains `query` (case-insensitive):
    those with a synonym equal to it first, then those with it as a whole word, then the rest."""
    import re

    key = str(query).strip().lower()
    word = re.compile(r"\b" + re.escape(key) + r"\b")
    ranked = ([], [], [])
    for i, (name, wnid) in enumerate(zip(class_names, wnids)):
        text = str(name).lower()
        if key in [s.strip() for s in text.split(",")] or key == str(wnid).lower():
            ranked[0].append(i)
        elif word.search(text):
            ranked[1].append(i)
        elif key in text or key in str(wnid).lower():
            ranked[2].append(i)
    return ranked[0] + ranked[1] + ranked[2]


def close_class_names(class_names, query: str, n: int = 5) -> list:
    """Synonyms spelled like `query` (difflib), best first."""
    synonyms = list(dict.fromkeys(s.strip().lower() for name in class_names for s in str(name).split(",")))
    return difflib.get_close_matches(str(query).strip().lower(), synonyms, n=n, cutoff=0.6)


def class_hint(class_names, wnids, query: str, n: int = 6) -> str:
    """'; classes containing 'cat': 'tabby, tabby cat', ...' then '; close spellings: ...' (or '')."""
    found = find_classes(class_names, wnids, query)
    hint = ""
    if found:
        shown = ", ".join(repr(str(class_names[i])) for i in found[:n])
        more = f" and {len(found) - n} more" if len(found) > n else ""
        hint += f"; classes containing {str(query).strip()!r}: {shown}{more}"
    close = [c for c in close_class_names(class_names, query) if not any(
        c in str(class_names[i]).lower() for i in found[:n])]
    if close:
        hint += f"; close matches: {', '.join(repr(c) for c in close)}"
    return hint


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
    if close:
        hint = f"; close matches: {', '.join(close)}"
    elif len(names) <= 40:
        hint = f"; layers: {', '.join(names)}"
    else:  # a long network: its blocks, not the 200 sublayers
        hint = f"; blocks: {', '.join(_outermost(names))} ({len(names)} layers in all: `gradscope cnn layers --model ...` lists them)"
    raise UnknownLayerError(f"unknown layer {layer!r}{hint}")


def _outermost(names) -> list:
    """The dotted layer names that lie inside no other listed name ('block1', not 'block1.bn')."""
    listed = set(names)
    parents = lambda n: (n.rsplit(".", k)[0] for k in range(1, n.count(".") + 1))  # noqa: E731
    return [n for n in names if not any(p in listed for p in parents(n))]
