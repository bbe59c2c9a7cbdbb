"""Load the CS231n course's `pretrained_model.h5` (TinyImageNet-100-A) as a CNN.

The file holds arrays only: W1..W11, b1..b11 and, for the 10 batch-norm layers,
gamma<i>, beta<i>, running_mean<i>, running_var<i>. The architecture is
9 x (conv -> spatial batch norm -> ReLU), a hidden affine -> batch norm -> ReLU, and
the output affine, on 64x64 inputs. The file does not say the conv strides; they
are a parameter, `strides`, with the course's defaults (COURSE_STRIDES). Everything
else is read off the weight shapes: channel counts and kernel sizes from W1..W9,
padding k // 2, the hidden and class counts from W10, W11. The strides are checked
against the fan-in of W10 (channels x final side^2) and a mismatch is an error
naming the number of stride-2 layers the file implies.

Inputs: the course fed raw pixels (0..255) minus a per-pixel mean image. Our models
normalise per channel, so a mean image (from the file's `mean_image` attribute or
dataset, or the `mean_image` argument) is reduced to its per-channel mean; the
largest per-pixel difference this makes is recorded in config["source"].
"""
from __future__ import annotations

import os

import numpy as np

from gradscope.cnn.config import FORMAT
from gradscope.cnn.model import CNN
from gradscope.errors import DataError

COURSE_STRIDES = (2, 1, 2, 1, 2, 1, 2, 1, 2)
COURSE_INPUT_SIZE = 64
# without a mean image: the ImageNet channel means, in 0..255 pixel units
DEFAULT_MEAN_PIXEL = (123.675, 116.28, 103.53)


def _read_arrays(path):
    import h5py

    if not os.path.isfile(path):
        raise DataError(f"course model file not found: {path!r}")
    try:
        with h5py.File(path, "r") as f:
            arrays = {k: np.asarray(f[k]) for k in f.keys() if isinstance(f[k], h5py.Dataset)}
            if "mean_image" in f.attrs:
                arrays.setdefault("mean_image", np.asarray(f.attrs["mean_image"]))
    except OSError as e:
        raise DataError(f"cannot read {path!r} as HDF5: {e}") from None
    return arrays


def _mean_pixel(mean_image):
    """(3,) per-channel mean (0..255 units) and the largest per-pixel deviation from it."""
    if mean_image is None:
        return np.asarray(DEFAULT_MEAN_PIXEL), None
    m = np.asarray(mean_image, dtype=np.float64)
    if m.ndim == 3 and m.shape[0] != 3 and m.shape[-1] == 3:
        m = m.transpose(2, 0, 1)  # (H, W, 3) -> (3, H, W)
    if m.ndim != 3 or m.shape[0] != 3:
        raise DataError(f"mean image must have shape (3, H, W) or (H, W, 3), got {m.shape}")
    per_channel = m.mean(axis=(1, 2))
    return per_channel, float(np.abs(m - per_channel[:, None, None]).max())


def _need(arrays, key):
    if key not in arrays:
        raise DataError(f"course model file has no {key!r} (keys: {', '.join(sorted(arrays))})")
    return arrays[key]


def _affine_weight(W, fan_in, fan_out, key):
    """The course stored affine weights as (in, out); accept the transpose too."""
    if W.shape == (fan_in, fan_out):
        return W
    if W.shape == (fan_out, fan_in):
        return W.T
    raise DataError(f"{key} has shape {W.shape}; expected ({fan_in}, {fan_out})")


def course_config(conv_shapes, hidden, num_classes, strides=COURSE_STRIDES, input_size=COURSE_INPUT_SIZE):
    """The course architecture as a gradscope config. conv_shapes: the (F, C, k, k) of W1..W9."""
    layers, side = [], input_size
    for i, ((F, C, k, _), s) in enumerate(zip(conv_shapes, strides), start=1):
        layers += [{"name": f"conv{i}", "type": "conv", "in_channels": C, "out_channels": F,
                    "kernel": k, "stride": s, "pad": k // 2},
                   {"name": f"bn{i}", "type": "spatial_batchnorm", "channels": F, "eps": 1e-5, "momentum": 0.9},
                   {"name": f"relu{i}", "type": "relu"}]
        side = (side + 2 * (k // 2) - k) // s + 1
    n = len(conv_shapes)
    fan_in = conv_shapes[-1][0] * side * side
    layers += [{"name": "flatten", "type": "flatten"},
               {"name": f"fc{n + 1}", "type": "affine", "in_features": fan_in, "out_features": hidden},
               {"name": f"bn{n + 1}", "type": "batchnorm", "features": hidden, "eps": 1e-5, "momentum": 0.9},
               {"name": f"relu{n + 1}", "type": "relu"},
               {"name": f"fc{n + 2}", "type": "affine", "in_features": hidden, "out_features": num_classes}]
    return {"format": FORMAT, "input_size": input_size, "layers": layers}


def _check_strides(conv_shapes, strides, fan_in, input_size):
    if len(strides) != len(conv_shapes):
        raise DataError(f"the file has {len(conv_shapes)} conv layers but {len(strides)} strides were given")
    side = input_size
    for (_, _, k, _), s in zip(conv_shapes, strides):
        side = (side + 2 * (k // 2) - k) // s + 1
    channels = conv_shapes[-1][0]
    if channels * side * side != fan_in:
        implied = (fan_in / channels) ** 0.5
        hint = (f"; the file implies a final side of {implied:g}, i.e. about "
                f"{np.log2(input_size / implied):.0f} stride-2 layers") if implied > 0 else ""
        raise DataError(f"strides {tuple(strides)} shrink a {input_size}x{input_size} input to {side}x{side}, "
                        f"giving {channels * side * side} features, but the hidden layer's weights take "
                        f"{fan_in}{hint}; pass the right `strides`")


def load_course_h5(path, strides=COURSE_STRIDES, input_size: int = COURSE_INPUT_SIZE, mean_image=None,
                   class_names=None, wnids=None, dtype=np.float32) -> CNN:
    """A CNN holding the weights of a course `pretrained_model.h5` (see the module docstring).

    mean_image: (3, H, W) or (H, W, 3) mean in 0..255 pixel units (default: the file's
    `mean_image`, else DEFAULT_MEAN_PIXEL). class_names / wnids: optional class labels.
    """
    path = os.fspath(path)
    arrays = _read_arrays(path)
    n_w = sum(1 for k in arrays if k.startswith("W") and k[1:].isdigit())
    conv_shapes = [tuple(_need(arrays, f"W{i}").shape) for i in range(1, n_w - 1)]
    if n_w < 3 or any(len(s) != 4 for s in conv_shapes):
        raise DataError(f"{path!r} does not have the course layout: expected 4-D W1..W{n_w - 2} (convs) "
                        f"then two affine weights")
    n = len(conv_shapes)
    hidden = _need(arrays, f"gamma{n + 1}").shape[0]
    num_classes = _need(arrays, f"b{n + 2}").shape[0]
    W_hidden = _need(arrays, f"W{n + 1}")
    fan_in = W_hidden.shape[0] if W_hidden.shape[1] == hidden else W_hidden.shape[1]
    _check_strides(conv_shapes, strides, fan_in, input_size)
    config = course_config(conv_shapes, hidden, num_classes, strides, input_size)
    params, buffers = {}, {}
    for i in range(1, n + 3):
        name = f"conv{i}" if i <= n else f"fc{i}"
        W = _need(arrays, f"W{i}")
        if i == n + 1:
            W = _affine_weight(W, fan_in, hidden, f"W{i}")
        elif i == n + 2:
            W = _affine_weight(W, hidden, num_classes, f"W{i}")
        params[f"{name}.W"], params[f"{name}.b"] = W, _need(arrays, f"b{i}")
        if i <= n + 1:
            params[f"bn{i}.gamma"], params[f"bn{i}.beta"] = _need(arrays, f"gamma{i}"), _need(arrays, f"beta{i}")
            buffers[f"bn{i}.running_mean"] = _need(arrays, f"running_mean{i}")
            buffers[f"bn{i}.running_var"] = _need(arrays, f"running_var{i}")
    mean_pixel, deviation = _mean_pixel(mean_image if mean_image is not None else arrays.get("mean_image"))
    # course input = pixel (0..255) - mean: on [0, 1] pixels that is (p - mean / 255) / (1 / 255)
    config["preprocess"] = {"mean": [float(v) / 255 for v in mean_pixel], "std": [1 / 255] * 3}
    wnids = list(wnids) if wnids is not None else [str(i) for i in range(num_classes)]
    config["classes"] = {"wnids": wnids, "names": list(class_names) if class_names is not None else wnids}
    config["source"] = {"file": os.path.basename(path), "layout": "cs231n pretrained_model.h5",
                        "strides": list(strides),
                        "mean": "per-channel mean of the mean image" if deviation is not None
                        else "default ImageNet channel means (no mean image given)",
                        "mean_image_max_deviation": deviation}
    return CNN(config, params, buffers, dtype=dtype)
