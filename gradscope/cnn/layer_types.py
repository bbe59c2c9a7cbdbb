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
    init(layer, short, shape, rng, dtype) -> initial array (a method: He-normal "W"
        with fan_in(shape of W), ones for "gamma" and "running_var", zeros otherwise)
    torch(layer)         -> an equivalent torch.nn.Module (torch imported inside)
    torch_keys           {short name: the torch module's state_dict key}
    torch_transposed     short names stored transposed in torch (affine "W")
    foldable             True for a linear map per output channel (W's first axis indexes
        output channels, "b" optional): a test-mode batch norm right after it folds into
        its weights (the engine's FAST PATH, gradscope/cnn/fold.py)
    is_batchnorm         True for the batch norms (what a fold absorbs)
    fan_in(shape of W)   the fan-in of He init (default: all but the first axis)

Most records come from three helpers: `_stateless` (no params: relu, pooling, padding,
...), `_weighted` (W and optional b: conv, affine, ...) and `_batchnorm`.

How to add a layer type: write its pure forward/backward pair in gradscope/layers/,
write the record's functions below (the backward beside its forward), add one entry
to LAYER_TYPES, list its config keys in gradscope/cnn/config.py's docstring, and add it
to the gradient-check and torch-parity tables in tests/test_layer_types.py. Nothing
else in the engine or the torch twin changes.

The one structural type, `BLOCK` ("residual"), is not a record here: it holds a list
of sub-layers; its end, the join that adds the skip, has its own record (`JOIN` in
gradscope/cnn/graph.py).
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

__all__ = ["LayerType", "LAYER_TYPES", "BLOCK", "key", "need_ndim", "bn_eps"]

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


def _none(layer):
    return {}


def _same_shape(layer, shape):
    return tuple(shape)


def _fan_in_conv(shape):
    return int(np.prod(shape[1:]))


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
    torch_keys: dict = field(default_factory=dict)
    torch_transposed: tuple = ()
    foldable: bool = False
    is_batchnorm: bool = False
    fan_in: Callable = _fan_in_conv

    def init(self, layer, short, shape, rng, dtype):
        """He-normal "W", ones for "gamma" and "running_var", zeros for everything else."""
        if short == "W":
            return (rng.standard_normal(shape) * np.sqrt(2.0 / self.fan_in(shape))).astype(dtype)
        return (np.ones if short in ("gamma", "running_var") else np.zeros)(shape, dtype=dtype)


def _no_args(layer, x, mode, rng):
    return ()


def _stateless(output_shape, forward, backward, torch, args=_no_args):
    """The record of a layer without params: forward(x, *args(layer, x, mode, rng)) ->
    (out, cache), backward(dout, cache) -> dx."""
    return LayerType(output_shape, lambda layer, p, x, mode, rng: (*forward(x, *args(layer, x, mode, rng)), {}),
                     lambda layer, dout, cache, param_grads: (backward(dout, cache), {}), torch)


def _weighted(output_shape, params, forward, backward, backward_input, torch, args=lambda layer: (), **fields):
    """The record of a layer with params, in the order params(layer) lists them:
    forward(x, *params, *args(layer)) -> (out, cache); backward(dout, cache) -> (dx,
    *grads in that order); backward_input(dout, cache) -> dx (None: backward, grads
    dropped)."""
    def fwd(layer, p, x, mode, rng):
        return (*forward(x, *(p[k] for k in params(layer)), *args(layer)), {})

    def bwd(layer, dout, cache, param_grads):
        if not param_grads and backward_input is not None:
            return backward_input(dout, cache), {}
        dx, *grads = backward(dout, cache)
        return dx, (dict(zip(params(layer), grads)) if param_grads else {})

    return LayerType(output_shape, fwd, bwd, torch, params=params, **fields)


_WB_KEYS = {"W": "weight", "b": "bias"}


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


def _conv_torch(layer):
    return _nn().Conv2d(layer["in_channels"], layer["out_channels"], layer["kernel"],
                        stride=layer.get("stride", 1), padding=layer.get("pad", 0))


# ---- batch norm (spatial: (N, C, H, W) with "channels"; plain: (N, D) with "features") --------
_BN_KEYS = {"gamma": "weight", "beta": "bias", "running_mean": "running_mean", "running_var": "running_var"}


def bn_eps(layer):
    """A batch norm's eps (config key "eps", default 1e-5)."""
    return layer.get("eps", 1e-5)


def _batchnorm(width_key, ndim, layout, forward, backward, torch_class):
    """The record of a batch norm over inputs of per-example layout `layout` whose
    width (config key width_key) is their first axis."""
    def width(layer):
        return key(layer, width_key)

    def output_shape(layer, shape):
        need_ndim(layer, shape, ndim, layout)
        need_dim(layer, shape[0], layer[width_key], width_key)
        return tuple(shape)

    def fwd(layer, p, x, mode, rng):
        bn_param = {"mode": mode, "eps": bn_eps(layer), "momentum": layer.get("momentum", 0.9),
                    "running_mean": p["running_mean"], "running_var": p["running_var"]}
        out, cache = forward(x, p["gamma"], p["beta"], bn_param)
        new = {"running_mean": cache.running_mean, "running_var": cache.running_var} if mode == "train" else {}
        return out, cache, new

    def bwd(layer, dout, cache, param_grads):
        if not param_grads:
            return batchnorm_backward_input(dout, cache), {}
        dx, dgamma, dbeta = backward(dout, cache)
        return dx, {"gamma": dgamma, "beta": dbeta}

    def torch(layer):  # torch's momentum weighs the batch; the course's weighs the running value
        return getattr(_nn(), torch_class)(width(layer), eps=bn_eps(layer),
                                           momentum=1.0 - layer.get("momentum", 0.9))

    return LayerType(output_shape, fwd, bwd, torch, params=lambda layer: {"gamma": (width(layer),),
                                                                           "beta": (width(layer),)},
                     buffers=lambda layer: {"running_mean": (width(layer),), "running_var": (width(layer),)},
                     torch_keys=_BN_KEYS, is_batchnorm=True)


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


def _gap_shape(layer, shape):
    need_ndim(layer, shape, 3, "(C, H, W)")
    return (shape[0],)


def _gap_torch(layer):
    nn = _nn()
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())


def _flatten_forward(x):
    return x.reshape(x.shape[0], -1), x.shape


def _flatten_backward(dout, cache):
    return dout.reshape(cache)


# ---- affine ---------------------------------------------------------------------------------
def _affine_params(layer):
    return {"W": (key(layer, "in_features"), key(layer, "out_features")), "b": (layer["out_features"],)}


def _affine_shape(layer, shape):
    if int(np.prod(shape)) != layer["in_features"]:
        raise ShapeError(f"layer {layer['name']!r} expects {layer['in_features']} input features, "
                         f"gets per-example shape {tuple(shape)}")
    return (layer["out_features"],)


# ---- MobileNet/EfficientNet-Lite parts: TF "SAME" pad, depthwise and 1x1 conv, ReLU6 ------------
def _same_pad_shape(layer, shape):
    need_ndim(layer, shape, 3, "(C, H, W)")
    t, b, l, r = same_pads(shape[1], shape[2], key(layer, "kernel"), layer.get("stride", 1))
    return (shape[0], shape[1] + t + b, shape[2] + l + r)


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


def _depthwise_torch(layer):
    c = layer["channels"]
    return _nn().Conv2d(c, c, layer["kernel"], stride=layer.get("stride", 1), groups=c, bias=False)


def _pointwise_params(layer):
    return {"W": (key(layer, "out_channels"), key(layer, "in_channels"), 1, 1)}


def _pointwise_shape(layer, shape):
    need_ndim(layer, shape, 3, "(C, H, W)")
    need_dim(layer, shape[0], layer["in_channels"], "input channels")
    return (layer["out_channels"], shape[1], shape[2])


def _stride(layer):
    return (layer.get("stride", 1),)


LAYER_TYPES: dict[str, LayerType] = {
    "conv": _weighted(_conv_shape, _conv_params, conv_forward, conv_backward, conv_backward_input, _conv_torch,
                      args=lambda layer: (layer.get("stride", 1), layer.get("pad", 0)), torch_keys=_WB_KEYS,
                      foldable=True),
    "spatial_batchnorm": _batchnorm("channels", 3, "(C, H, W)", spatial_batchnorm_forward,
                                    spatial_batchnorm_backward, "BatchNorm2d"),
    "batchnorm": _batchnorm("features", 1, "(D,)", batchnorm_forward, batchnorm_backward, "BatchNorm1d"),
    "relu": _stateless(_same_shape, relu_forward, relu_backward, lambda layer: _nn().ReLU()),
    "maxpool": _stateless(_maxpool_shape, max_pool_forward, max_pool_backward,
                          lambda layer: _nn().MaxPool2d(*_maxpool_window(layer)),
                          args=lambda layer, x, mode, rng: _maxpool_window(layer)),
    "global_avgpool": _stateless(_gap_shape, global_avg_pool_forward, global_avg_pool_backward, _gap_torch),
    "flatten": _stateless(lambda layer, shape: (int(np.prod(shape)),), _flatten_forward, _flatten_backward,
                          lambda layer: _nn().Flatten()),
    "dropout": _stateless(_same_shape, dropout_forward, dropout_backward,
                          lambda layer: _nn().Dropout(layer.get("p", 0.5)),
                          args=lambda layer, x, mode, rng: (layer.get("p", 0.5), mode, rng)),
    "affine": _weighted(_affine_shape, _affine_params, affine_forward, affine_backward, None,
                        lambda layer: _nn().Linear(layer["in_features"], layer["out_features"]),
                        torch_keys=_WB_KEYS, torch_transposed=("W",), fan_in=lambda shape: shape[0]),
    "same_pad": _stateless(_same_pad_shape, pad_forward, pad_backward,
                           lambda layer: _torch_layers().SamePad(layer["kernel"], layer.get("stride", 1)),
                           args=lambda layer, x, mode, rng: (same_pads(x.shape[2], x.shape[3], layer["kernel"],
                                                                       layer.get("stride", 1)),)),
    "depthwise_conv": _weighted(_depthwise_shape, _depthwise_params, depthwise_conv_forward, depthwise_conv_backward,
                                depthwise_conv_backward_input, _depthwise_torch, args=_stride,
                                torch_keys={"W": "weight"}, foldable=True),
    "pointwise_conv": _weighted(_pointwise_shape, _pointwise_params, pointwise_conv_forward, pointwise_conv_backward,
                                pointwise_conv_backward_input,
                                lambda layer: _nn().Conv2d(layer["in_channels"], layer["out_channels"], 1, bias=False),
                                torch_keys={"W": "weight"}, foldable=True),
    "relu6": _stateless(_same_shape, relu6_forward, relu6_backward, lambda layer: _nn().ReLU6()),
}
