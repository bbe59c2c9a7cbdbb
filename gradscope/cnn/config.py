"""Network configs: a CNN described by a small JSON-able dict.

A config is::

    {"format": "gradscope-cnn/1",
     "input_size": 64,                      # side of the square input the model was trained on
     "layers": [{"name": "conv1", "type": "conv", "in_channels": 3, "out_channels": 32,
                 "kernel": 3, "stride": 1, "pad": 1}, ...],
     "preprocess": {"mean": [r, g, b], "std": [r, g, b]},   # on pixels scaled to [0, 1]
     "classes": {"wnids": [...], "names": [...]}}

Layer types and their keys:
    conv               in_channels, out_channels, kernel, stride, pad   params W (F, C, k, k), b (F,)
    spatial_batchnorm  channels, eps, momentum                          params gamma, beta (C,);
                                                                        buffers running_mean, running_var
    batchnorm          features, eps, momentum                          as spatial_batchnorm, on (N, D)
    relu
    maxpool            size, stride
    global_avgpool                                                      (N, C, H, W) -> (N, C)
    flatten                                                             (N, C, H, W) -> (N, C*H*W)
    dropout            p
    affine             in_features, out_features                        params W (D, M), b (M,)
    same_pad           kernel, stride (default 1)                       TF "SAME" zero padding for that
                                                                        conv (extra row/column bottom/right)
    depthwise_conv     channels, kernel, stride (no padding, no bias)   params W (C, 1, k, k)
    pointwise_conv     in_channels, out_channels (1x1, no bias)         params W (F, C, 1, 1)
    relu6                                                               min(max(x, 0), 6)
    residual           layers (a list of layer dicts), skip             a sub-sequence plus a skip:
                       ("auto" | "identity" | "none")                   see gradscope/cnn/graph.py

Each type is one record in gradscope/cnn/layer_types.py (which says how to add one); the
keys above are checked by LAYER_FIELDS below when a config is read from a file
(validate_config: one DataError naming the file and the field).

Parameters are named "<layer name>.<param>" (for example "conv1.W"; inside a residual
block the layer name is qualified: "block3.expand.W"). `momentum`
follows the course convention: running = momentum * running + (1 - momentum) * batch.
"""
from __future__ import annotations

FORMAT = "gradscope-cnn/1"

from gradscope.validate import (check_fields, field_error, list_of, nonnegative_int, number_in,  # noqa: E402
                                numbers, of_type, one_of, positive_int)

_EPS, _MOMENTUM = number_in(0, lo_open=True), number_in(0, 1)
# each layer type's keys and their rules ("key?": optional, the engine's default applies)
LAYER_FIELDS = {
    "conv": {"in_channels": positive_int, "out_channels": positive_int, "kernel": positive_int,
             "stride?": positive_int, "pad?": nonnegative_int},
    "spatial_batchnorm": {"channels": positive_int, "eps?": _EPS, "momentum?": _MOMENTUM},
    "batchnorm": {"features": positive_int, "eps?": _EPS, "momentum?": _MOMENTUM},
    "relu": {}, "relu6": {}, "global_avgpool": {}, "flatten": {},
    "maxpool": {"size": positive_int, "stride?": positive_int},
    "dropout": {"p?": number_in(0, 1, hi_open=True)},
    "affine": {"in_features": positive_int, "out_features": positive_int},
    "same_pad": {"kernel": positive_int, "stride?": positive_int},
    "depthwise_conv": {"channels": positive_int, "kernel": positive_int, "stride?": positive_int},
    "pointwise_conv": {"in_channels": positive_int, "out_channels": positive_int},
    "residual": {"layers": of_type(list, "a list of layers"), "skip?": one_of("auto", "identity", "none")},
}
CONFIG_FIELDS = {"format?": one_of(FORMAT), "input_size?": positive_int, "layers": of_type(list, "a list of layers"),
                 "preprocess?": of_type(dict, "an object"), "classes?": of_type(dict, "an object"),
                 "name?": of_type(str, "a string")}
PREPROCESS_FIELDS = {"mean?": numbers(3), "std?": numbers(3, positive=True), "resize?": positive_int}
CLASSES_FIELDS = {"wnids?": list_of(str, "strings"), "names?": list_of(str, "strings")}


def validate_config(config, where: str) -> None:
    """Check a config read from a file: every field the engine reads, with its type and range.
    Raises DataError `<where>: field <path>: <problem>` (e.g. `layers[0] (conv1).kernel: missing`)."""
    check_fields(config, CONFIG_FIELDS, where)
    if not config["layers"]:
        raise field_error(where, "layers", "is empty")
    check_fields(config.get("preprocess") or {}, PREPROCESS_FIELDS, where, "preprocess.")
    check_fields(config.get("classes") or {}, CLASSES_FIELDS, where, "classes.")
    _validate_layers(config["layers"], where, "layers")


def _validate_layers(layers, where, path) -> None:
    for i, layer in enumerate(layers):
        at = f"{path}[{i}]"
        check_fields(layer, {"name": of_type(str, "a string"), "type": one_of(*LAYER_FIELDS)}, where, at + ".")
        at = f"{at} ({layer['name']})"
        check_fields(layer, LAYER_FIELDS[layer["type"]], where, at + ".")
        if layer["type"] == "residual":
            _validate_layers(layer["layers"], where, at + ".layers")


def tiny_vgg(num_classes: int = 100, widths=(32, 64, 128, 256), input_size: int = 64,
             hidden: int | None = None) -> dict:
    """A compact VGG-style net: a conv stem, then per stage conv-BN-ReLU x2 and a 2x2
    max pool; global average pooling (so any input size works) and an affine classifier.
    """
    layers = []
    c_in = 3
    n = 0

    def conv_bn_relu(c_out):
        nonlocal c_in, n
        n += 1
        layers.append({"name": f"conv{n}", "type": "conv", "in_channels": c_in, "out_channels": c_out,
                       "kernel": 3, "stride": 1, "pad": 1})
        layers.append({"name": f"bn{n}", "type": "spatial_batchnorm", "channels": c_out,
                       "eps": 1e-5, "momentum": 0.9})
        layers.append({"name": f"relu{n}", "type": "relu"})
        c_in = c_out

    conv_bn_relu(widths[0])
    for s, w in enumerate(widths[1:], start=1):
        layers.append({"name": f"pool{s}", "type": "maxpool", "size": 2, "stride": 2})
        conv_bn_relu(w)
        conv_bn_relu(w)
    layers.append({"name": "gap", "type": "global_avgpool"})
    if hidden:
        layers.append({"name": "fc1", "type": "affine", "in_features": c_in, "out_features": hidden})
        layers.append({"name": "relu_fc1", "type": "relu"})
        c_in = hidden
    layers.append({"name": "fc", "type": "affine", "in_features": c_in, "out_features": num_classes})
    return {
        "format": FORMAT,
        "input_size": input_size,
        "layers": layers,
        "preprocess": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
        "classes": {"wnids": [str(i) for i in range(num_classes)],
                    "names": [str(i) for i in range(num_classes)]},
    }
