"""Checks of the arguments every image method takes: model inputs, class lists,
layer names, hyperparameters. Each raises a gradscope error naming the problem."""
from __future__ import annotations

import numpy as np

from gradscope.errors import GradscopeError, ShapeError, UnknownClassError
from gradscope.interface import check_input, pixels_to_input, resolve_class, resolve_layer


def check_images(name: str, x) -> np.ndarray:
    """Model input as a float array (N, 3, H, W); a single (3, H, W) image gets N = 1."""
    if isinstance(x, np.ndarray) and x.ndim == 3 and x.shape[0] == 3:
        x = x[None]
    return check_input(x, name)


def check_not_constant(x, names=None) -> np.ndarray:
    """x unchanged unless an image is constant (one colour everywhere), whose map would be
    meaningless (an attribution of nothing); GradscopeError naming the image then (by its
    index in the batch, or by names[i] when names are given, e.g. the image files)."""
    flat = x.reshape(len(x), x.shape[1], -1)  # (N, 3, H * W)
    flat_imgs = np.flatnonzero(np.all(flat.max(axis=2) == flat.min(axis=2), axis=1))
    if len(flat_imgs):
        i = int(flat_imgs[0])
        which = f"image {i} of the batch" if names is None else f"image {str(names[i])!r}"
        raise GradscopeError(f"{which} is constant (one colour everywhere): a saliency map of an image "
                             "without any structure is meaningless")
    return x


def class_indices(model, classes, n: int, x=None) -> np.ndarray:
    """(n,) int64 class indices from one class or a sequence of n (index, wnid or name each);
    None means the model's top class for each image of x."""
    if classes is None:
        if x is None:
            raise GradscopeError("a class is required")
        return np.argmax(model.scores(x), axis=1).astype(np.int64)
    if isinstance(classes, (str, int, np.integer, float, np.floating)):
        classes = [classes] * n
    classes = list(np.asarray(classes, dtype=object).ravel()) if isinstance(classes, np.ndarray) else list(classes)
    if len(classes) == 1 and n > 1:
        classes = classes * n
    if len(classes) != n:
        raise ShapeError(f"got {len(classes)} classes for {n} images")
    out = []
    for c in classes:
        if isinstance(c, (float, np.floating)) and float(c).is_integer():
            c = int(c)
        if isinstance(c, bool) or not isinstance(c, (str, int, np.integer)):
            raise UnknownClassError(f"class must be an index, wnid or name, got {c!r}")
        out.append(resolve_class(model, c))
    return np.asarray(out, dtype=np.int64)


def layer_name(model, layer) -> str:
    """The name of a layer given by name or index (UnknownLayerError otherwise)."""
    return model.layer_names[resolve_layer(model, layer)]


def check_positive(name: str, value, integer: bool = False, allow_zero: bool = False):
    """Raise GradscopeError unless value is a finite number > 0 (>= 0 with allow_zero)."""
    ok_type = isinstance(value, (int, np.integer)) if integer else isinstance(value, (int, float, np.number))
    if isinstance(value, bool) or not ok_type or not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        kind = "integer" if integer else "number"
        raise GradscopeError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} {kind}, got {value!r}")
    return value


def quantize(model, x) -> np.ndarray:
    """The model input of the uint8 image that x becomes when saved."""
    img = model.deprocess(x)
    if x.shape[2] == x.shape[3] == model.input_size:
        return model.preprocess(img).astype(x.dtype)
    return pixels_to_input(model, img, x.dtype)  # other sizes: preprocess would resize


def report(callback, iteration: int, **info) -> None:
    """Call a progress callback(iteration, info) when one was given."""
    if callback is not None:
        callback(iteration, info)


def model_recipe(model, method: str, defaults: dict, given: dict) -> dict:
    """The settings of one call of `method`: each given value (None = not given), else the
    model's own (model.method_defaults[method], for a model whose scale needs other
    settings, such as a 224-pixel ImageNet network), else `defaults`."""
    own = (getattr(model, "method_defaults", None) or {}).get(method, {})
    return {k: given[k] if given.get(k) is not None else own.get(k, v) for k, v in defaults.items()}
