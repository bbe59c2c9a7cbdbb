"""Every CNN layer type in one record: its parameters and buffers, output shape,
forward, backward, initialisation and torch twin, side by side.

`LAYER_TYPES` maps a config's "type" string to a `LayerType`. The engine
(gradscope/cnn/model.py) and the torch twin (gradscope/cnn/torch_module.py) only
ever look a layer up here, so a type exists in exactly one place.

A record's functions, `layer` being the config dict of one layer:

    params(layer)        -> {short name: shape}   learned arrays ("W", "b", "gamma")
    buffers(layer)       -> {short name: shape}   running statistics (default none)
    output_shape(layer, shape) -> per-example output shape for a per-example input shape
    forward(layer, p, x, mode, rng) -> (out, cache, new_buffers)
        p maps the short names of params and buffers to arrays; new_buffers holds
        updated buffers (empty unless batch norm runs in mode 'train').
    backward(layer, dout, cache, param_grads) -> (dx, grads keyed by short name;
        empty when param_grads is False, which may skip the weight gradients)
    init(layer, short, shape, rng, dtype) -> initial array (default: He-normal "W",
        ones for "gamma" and "running_var", zeros otherwise)
    torch(layer)         -> an equivalent torch.nn.Module (torch imported inside)
    torch_keys           {short name: the torch module's state_dict key}
    torch_transposed     short names stored transposed in torch (affine "W")
    foldable             True for a linear map per output channel (W's first axis indexes
        output channels, "b" optional): a test-mode batch norm right after it folds into
        its weights (the engine's FAST PATH, gradscope/cnn/model.py)

How to add a layer type: write its pure forward/backward pair in gradscope/layers/,
write the record's functions below (the backward beside its forward), add one entry
to LAYER_TYPES, list its config keys in gradscope/cnn/config.py's docstring, and add it
to the gradient-check and torch-parity tables in tests/test_layer_types.py. Nothing
else in the engine or the torch twin changes.

The one structural type, `BLOCK` ("residual"), is not a record: it holds a list of
sub-layers and is handled by the engine itself (see gradscope/cnn/model.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from gradscope.errors import GradscopeError, ShapeError
from gradscope.layers import (affine_backward, affine_forward, batchnorm_backward, batchnorm_backward_input,
                              batchnorm_forward, conv_backward, conv_backward_input, conv_forward,
                              conv_output_size, dropout_backward, dropout_forward, global_avg_pool_backward,
                              global_avg_pool_forward, max_pool_backward, max_pool_forward, relu_backward,
                              relu_forward, spatial_batchnorm_backward, spatial_batchnorm_forward)
from gradscope.layers import (depthwise_conv_backward, depthwise_conv_backward_input, depthwise_conv_forward,
                              pad_backward, pad_forward, pointwise_conv_backward, pointwise_conv_backward_input,
                              pointwise_conv_forward, relu6_backward, relu6_forward, same_pads)

__all__ = ["LayerType", "LAYER_TYPES", "BLOCK", "key", "need_ndim", "he_init"]

BLOCK = "residual"


# ---- shared helpers ----------------------------------------------------------------------
def key(layer, name):
    """layer[name], or a GradscopeError naming the layer and the missing key."""
    try:
        return layer[name]
    except KeyError:
        raise GradscopeError(f"layer {layer.get('name')!r} ({layer.get('type')}) needs key {name!r}") from None


def need_ndim(layer, shape, ndim, layout):
    """ShapeError unless the per-example input shape has ndim dimensions."""
    if len(shape) != ndim:
        raise ShapeError(f"layer {layer['name']!r} ({layer['type']}) needs {layout} input, "
                         f"got per-example shape {tuple(shape)}")


def need_dim(layer, got, want, what):
    if got != want:
        raise ShapeError(f"layer {layer['name']!r} expects {want} {what}, gets {got}")


def he_init(layer, short, shape, rng, dtype):
    """He-normal "W" (fan-in: all but the first axis for conv, the first for affine),
    ones for "gamma" and "running_var", zeros for everything else."""
    if short == "W":
        fan_in = shape[0] if layer["type"] == "affine" else int(np.prod(shape[1:]))
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)
    return (np.ones if short in ("gamma", "running_var") else np.zeros)(shape, dtype=dtype)


def _none(layer):
    return {}


def _same_shape(layer, shape):
    return tuple(shape)


def _nn():
    import torch.nn as nn

    return nn


@dataclass(frozen=True)
class LayerType:
    """One layer type (see the module docstring for each function's signature)."""
    output_shape: Callable
    forward: Callable
    backward: Callable
    torch: Callable
    params: Callable = _none
    buffers: Callable = _none
    init: Callable = he_init
    torch_keys: dict = field(default_factory=dict)
    torch_transposed: tuple = ()
    foldable: bool = False


# ---- conv ----------------------------------------------------------------------------------
def _conv_params(layer):
    k = key(layer, "kernel")
    return {"W": (key(layer, "out_channels"), key(layer, "in_channels"), k, k), "b": (layer["out_channels"],)}


def _conv_shape(layer, shape):
    need_ndim(layer, shape, 3, "(C, H, W)")
    need_dim(layer, shape[0], layer["in_channels"], "input channels")
    k, s, p = layer["kernel"], layer.get("stride", 1), layer.get("pad", 0)
    try:
        return (layer["out_channels"], conv_output_size(shape[1], k, s, p), conv_output_size(shape[2], k, s, p))
    except ShapeError as e:
        raise ShapeError(f"layer {layer['name']!r}: {e}") from None


def _conv_forward(layer, p, x, mode, rng):
    out, cache = conv_forward(x, p["W"], p["b"], layer.get("stride", 1), layer.get("pad", 0))
    return out, cache, {}


def _conv_backward(layer, dout, cache, param_grads):
    if not param_grads:
        return conv_backward_input(dout, cache), {}
    dx, dW, db = conv_backward(dout, cache)
    return dx, {"W": dW, "b": db}


def _conv_torch(layer):
    return _nn().Conv2d(layer["in_channels"], layer["out_channels"], layer["kernel"],
                        stride=layer.get("stride", 1), padding=layer.get("pad", 0))


# ---- batch norm (spatial: (N, C, H, W); plain: (N, D)) ---------------------------------------
def _bn_width(layer):
    return key(layer, "channels" if layer["type"] == "spatial_batchnorm" else "features")


def _bn_params(layer):
    return {"gamma": (_bn_width(layer),), "beta": (_bn_width(layer),)}


def _bn_buffers(layer):
    return {"running_mean": (_bn_width(layer),), "running_var": (_bn_width(layer),)}


def _spatial_bn_shape(layer, shape):
    need_ndim(layer, shape, 3, "(C, H, W)")
    need_dim(layer, shape[0], layer["channels"], "channels")
    return tuple(shape)


def _bn_shape(layer, shape):
    need_ndim(layer, shape, 1, "(D,)")
    need_dim(layer, shape[0], layer["features"], "features")
    return tuple(shape)


def _bn_forward(layer, p, x, mode, rng):
    fn = spatial_batchnorm_forward if layer["type"] == "spatial_batchnorm" else batchnorm_forward
    bn_param = {"mode": mode, "eps": layer.get("eps", 1e-5), "momentum": layer.get("momentum", 0.9),
                "running_mean": p["running_mean"], "running_var": p["running_var"]}
    out, cache = fn(x, p["gamma"], p["beta"], bn_param)
    new = {"running_mean": cache.running_mean, "running_var": cache.running_var} if mode == "train" else {}
    return out, cache, new


def _bn_backward(layer, dout, cache, param_grads):
    if not param_grads:
        return batchnorm_backward_input(dout, cache), {}
    fn = spatial_batchnorm_backward if layer["type"] == "spatial_batchnorm" else batchnorm_backward
    dx, dgamma, dbeta = fn(dout, cache)
    return dx, {"gamma": dgamma, "beta": dbeta}


def _bn_torch(layer):
    cls = _nn().BatchNorm2d if layer["type"] == "spatial_batchnorm" else _nn().BatchNorm1d
    # torch's momentum weighs the batch; the course's weighs the running value
    return cls(_bn_width(layer), eps=layer.get("eps", 1e-5), momentum=1.0 - layer.get("momentum", 0.9))


_BN_KEYS = {"gamma": "weight", "beta": "bias", "running_mean": "running_mean", "running_var": "running_var"}


# ---- relu, dropout ---------------------------------------------------------------------------
def _relu_forward(layer, p, x, mode, rng):
    out, cache = relu_forward(x)
    return out, cache, {}


def _relu_backward(layer, dout, cache, param_grads):
    return relu_backward(dout, cache), {}


def _dropout_forward(layer, p, x, mode, rng):
    out, cache = dropout_forward(x, layer.get("p", 0.5), mode, rng=rng)
    return out, cache, {}


def _dropout_backward(layer, dout, cache, param_grads):
    return dropout_backward(dout, cache), {}


# ---- pooling, flatten -----------------------------------------------------------------------
def _maxpool_window(layer):
    size = key(layer, "size")
    return size, layer.get("stride", size)


def _maxpool_shape(layer, shape):
    need_ndim(layer, shape, 3, "(C, H, W)")
    size, stride = _maxpool_window(layer)
    if shape[1] < size or shape[2] < size:
        raise ShapeError(f"layer {layer['name']!r}: pool window {size} does not fit {shape[1]}x{shape[2]}")
    return (shape[0], (shape[1] - size) // stride + 1, (shape[2] - size) // stride + 1)


def _maxpool_forward(layer, p, x, mode, rng):
    out, cache = max_pool_forward(x, *_maxpool_window(layer))
    return out, cache, {}


def _maxpool_backward(layer, dout, cache, param_grads):
    return max_pool_backward(dout, cache), {}


def _gap_shape(layer, shape):
    need_ndim(layer, shape, 3, "(C, H, W)")
    return (shape[0],)


def _gap_forward(layer, p, x, mode, rng):
    out, cache = global_avg_pool_forward(x)
    return out, cache, {}


def _gap_backward(layer, dout, cache, param_grads):
    return global_avg_pool_backward(dout, cache), {}


def _gap_torch(layer):
    nn = _nn()
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())


def _flatten_forward(layer, p, x, mode, rng):
    return x.reshape(x.shape[0], -1), x.shape, {}


def _flatten_backward(layer, dout, cache, param_grads):
    return dout.reshape(cache), {}


# ---- affine ---------------------------------------------------------------------------------
def _affine_params(layer):
    return {"W": (key(layer, "in_features"), key(layer, "out_features")), "b": (layer["out_features"],)}


def _affine_shape(layer, shape):
    if int(np.prod(shape)) != layer["in_features"]:
        raise ShapeError(f"layer {layer['name']!r} expects {layer['in_features']} input features, "
                         f"gets per-example shape {tuple(shape)}")
    return (layer["out_features"],)


def _affine_forward(layer, p, x, mode, rng):
    out, cache = affine_forward(x, p["W"], p["b"])
    return out, cache, {}


def _affine_backward(layer, dout, cache, param_grads):
    dx, dW, db = affine_backward(dout, cache)
    return dx, ({"W": dW, "b": db} if param_grads else {})


# ---- MobileNet/EfficientNet-Lite parts: TF "SAME" pad, depthwise and 1x1 conv, ReLU6 ------------
def _same_pad_shape(layer, shape):
    need_ndim(layer, shape, 3, "(C, H, W)")
    t, b, l, r = same_pads(shape[1], shape[2], key(layer, "kernel"), layer.get("stride", 1))
    return (shape[0], shape[1] + t + b, shape[2] + l + r)


def _same_pad_forward(layer, p, x, mode, rng):
    out, cache = pad_forward(x, same_pads(x.shape[2], x.shape[3], layer["kernel"], layer.get("stride", 1)))
    return out, cache, {}


def _same_pad_backward(layer, dout, cache, param_grads):
    return pad_backward(dout, cache), {}


def _torch_layers():
    from gradscope.cnn import torch_layers

    return torch_layers


def _depthwise_params(layer):
    k = key(layer, "kernel")
    return {"W": (key(layer, "channels"), 1, k, k)}


def _depthwise_shape(layer, shape):
    need_ndim(layer, shape, 3, "(C, H, W)")
    need_dim(layer, shape[0], layer["channels"], "channels")
    k, s = layer["kernel"], layer.get("stride", 1)
    try:
        return (shape[0], conv_output_size(shape[1], k, s, 0), conv_output_size(shape[2], k, s, 0))
    except ShapeError as e:
        raise ShapeError(f"layer {layer['name']!r}: {e}") from None


def _depthwise_forward(layer, p, x, mode, rng):
    out, cache = depthwise_conv_forward(x, p["W"], layer.get("stride", 1))
    return out, cache, {}


def _depthwise_backward(layer, dout, cache, param_grads):
    if not param_grads:
        return depthwise_conv_backward_input(dout, cache), {}
    dx, dW = depthwise_conv_backward(dout, cache)
    return dx, {"W": dW}


def _depthwise_torch(layer):
    c = layer["channels"]
    return _nn().Conv2d(c, c, layer["kernel"], stride=layer.get("stride", 1), groups=c, bias=False)


def _pointwise_params(layer):
    return {"W": (key(layer, "out_channels"), key(layer, "in_channels"), 1, 1)}


def _pointwise_shape(layer, shape):
    need_ndim(layer, shape, 3, "(C, H, W)")
    need_dim(layer, shape[0], layer["in_channels"], "input channels")
    return (layer["out_channels"], shape[1], shape[2])


def _pointwise_forward(layer, p, x, mode, rng):
    out, cache = pointwise_conv_forward(x, p["W"])
    return out, cache, {}


def _pointwise_backward(layer, dout, cache, param_grads):
    if not param_grads:
        return pointwise_conv_backward_input(dout, cache), {}
    dx, dW = pointwise_conv_backward(dout, cache)
    return dx, {"W": dW}


def _relu6_forward(layer, p, x, mode, rng):
    out, cache = relu6_forward(x)
    return out, cache, {}


def _relu6_backward(layer, dout, cache, param_grads):
    return relu6_backward(dout, cache), {}


_WB_KEYS = {"W": "weight", "b": "bias"}

LAYER_TYPES: dict[str, LayerType] = {
    "conv": LayerType(_conv_shape, _conv_forward, _conv_backward, _conv_torch, params=_conv_params,
                      torch_keys=_WB_KEYS, foldable=True),
    "spatial_batchnorm": LayerType(_spatial_bn_shape, _bn_forward, _bn_backward, _bn_torch, params=_bn_params,
                                   buffers=_bn_buffers, torch_keys=_BN_KEYS),
    "batchnorm": LayerType(_bn_shape, _bn_forward, _bn_backward, _bn_torch, params=_bn_params,
                           buffers=_bn_buffers, torch_keys=_BN_KEYS),
    "relu": LayerType(_same_shape, _relu_forward, _relu_backward, lambda layer: _nn().ReLU()),
    "maxpool": LayerType(_maxpool_shape, _maxpool_forward, _maxpool_backward,
                         lambda layer: _nn().MaxPool2d(*_maxpool_window(layer))),
    "global_avgpool": LayerType(_gap_shape, _gap_forward, _gap_backward, _gap_torch),
    "flatten": LayerType(lambda layer, shape: (int(np.prod(shape)),), _flatten_forward, _flatten_backward,
                         lambda layer: _nn().Flatten()),
    "dropout": LayerType(_same_shape, _dropout_forward, _dropout_backward,
                         lambda layer: _nn().Dropout(layer.get("p", 0.5))),
    "affine": LayerType(_affine_shape, _affine_forward, _affine_backward,
                        lambda layer: _nn().Linear(layer["in_features"], layer["out_features"]),
                        params=_affine_params, torch_keys=_WB_KEYS, torch_transposed=("W",)),
    "same_pad": LayerType(_same_pad_shape, _same_pad_forward, _same_pad_backward,
                          lambda layer: _torch_layers().SamePad(layer["kernel"], layer.get("stride", 1))),
    "depthwise_conv": LayerType(_depthwise_shape, _depthwise_forward, _depthwise_backward, _depthwise_torch,
                                params=_depthwise_params, torch_keys={"W": "weight"}, foldable=True),
    "pointwise_conv": LayerType(_pointwise_shape, _pointwise_forward, _pointwise_backward,
                                lambda layer: _nn().Conv2d(layer["in_channels"], layer["out_channels"], 1, bias=False),
                                params=_pointwise_params, torch_keys={"W": "weight"}, foldable=True),
    "relu6": LayerType(_same_shape, _relu6_forward, _relu6_backward, lambda layer: _nn().ReLU6()),
}
