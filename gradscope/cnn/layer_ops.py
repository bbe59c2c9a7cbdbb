"""What each layer type of a CNN config means: its parameter and buffer shapes, its
output shape, and how to run it forward and backward with the pure layer functions.

A layer op's forward is `forward(layer, p, x, mode, rng) -> (out, cache, new_buffers)`,
where p maps the layer's short parameter/buffer names ("W", "running_mean") to arrays
and new_buffers holds updated buffers (empty unless batch norm runs in train mode).
Its backward is `backward(layer, dout, cache, param_grads) -> (dx, grads)`, grads keyed
by short parameter names (empty when param_grads is False).
"""
from __future__ import annotations

import numpy as np

from gradscope.errors import GradscopeError, ShapeError
from gradscope.layers import (affine_backward, affine_forward, batchnorm_backward, batchnorm_backward_input,
                              batchnorm_forward, conv_backward, conv_backward_input, conv_forward,
                              conv_output_size, dropout_backward, dropout_forward, global_avg_pool_backward,
                              global_avg_pool_forward, max_pool_backward, max_pool_forward, relu_backward,
                              relu_forward, spatial_batchnorm_backward, spatial_batchnorm_forward)

LAYER_TYPES = ("conv", "spatial_batchnorm", "batchnorm", "relu", "maxpool", "global_avgpool",
               "flatten", "dropout", "affine")


def _key(layer, key):
    try:
        return layer[key]
    except KeyError:
        raise GradscopeError(f"layer {layer.get('name')!r} ({layer.get('type')}) needs key {key!r}") from None


def param_shapes(layer) -> dict:
    """Short parameter name -> shape for one layer."""
    t = layer["type"]
    if t == "conv":
        k = _key(layer, "kernel")
        return {"W": (_key(layer, "out_channels"), _key(layer, "in_channels"), k, k),
                "b": (layer["out_channels"],)}
    if t == "affine":
        return {"W": (_key(layer, "in_features"), _key(layer, "out_features")), "b": (layer["out_features"],)}
    if t in ("spatial_batchnorm", "batchnorm"):
        d = _key(layer, "channels" if t == "spatial_batchnorm" else "features")
        return {"gamma": (d,), "beta": (d,)}
    return {}


def buffer_shapes(layer) -> dict:
    """Short buffer name -> shape (batch-norm running statistics)."""
    if layer["type"] in ("spatial_batchnorm", "batchnorm"):
        d = param_shapes(layer)["gamma"]
        return {"running_mean": d, "running_var": d}
    return {}


def init_param(layer, short, shape, rng, dtype):
    """Initial value: He-normal weights, zero biases and betas, unit gammas."""
    if short == "W":
        fan_in = int(np.prod(shape[1:])) if layer["type"] == "conv" else shape[0]
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)
    return (np.ones if short == "gamma" else np.zeros)(shape, dtype=dtype)


def init_buffer(short, shape, dtype):
    return (np.ones if short == "running_var" else np.zeros)(shape, dtype=dtype)


def output_shape(layer, shape: tuple) -> tuple:
    """Per-example output shape for a per-example input shape ((C, H, W) or (D,))."""
    t, name = layer["type"], layer["name"]

    def need(ndim, what):
        if len(shape) != ndim:
            raise ShapeError(f"layer {name!r} ({t}) needs {what} input, got per-example shape {shape}")

    if t == "conv":
        need(3, "(C, H, W)")
        if shape[0] != layer["in_channels"]:
            raise ShapeError(f"layer {name!r} expects {layer['in_channels']} input channels, gets {shape[0]}")
        k, s, p = layer["kernel"], layer.get("stride", 1), layer.get("pad", 0)
        try:
            return (layer["out_channels"], conv_output_size(shape[1], k, s, p), conv_output_size(shape[2], k, s, p))
        except ShapeError as e:
            raise ShapeError(f"layer {name!r}: {e}") from None
    if t == "spatial_batchnorm":
        need(3, "(C, H, W)")
        if shape[0] != layer["channels"]:
            raise ShapeError(f"layer {name!r} expects {layer['channels']} channels, gets {shape[0]}")
        return shape
    if t == "batchnorm":
        if int(np.prod(shape)) != layer["features"] or len(shape) != 1:
            raise ShapeError(f"layer {name!r} expects {layer['features']} features, gets shape {shape}")
        return shape
    if t == "maxpool":
        need(3, "(C, H, W)")
        size, stride = _key(layer, "size"), layer.get("stride", layer["size"])
        if shape[1] < size or shape[2] < size:
            raise ShapeError(f"layer {name!r}: pool window {size} does not fit {shape[1]}x{shape[2]}")
        return (shape[0], (shape[1] - size) // stride + 1, (shape[2] - size) // stride + 1)
    if t == "global_avgpool":
        need(3, "(C, H, W)")
        return (shape[0],)
    if t == "flatten":
        return (int(np.prod(shape)),)
    if t == "affine":
        if int(np.prod(shape)) != layer["in_features"]:
            raise ShapeError(f"layer {name!r} expects {layer['in_features']} input features, "
                             f"gets per-example shape {shape}")
        return (layer["out_features"],)
    if t in ("relu", "dropout"):
        return shape
    raise GradscopeError(f"layer {name!r}: unknown type {t!r}; known: {', '.join(LAYER_TYPES)}")


def _bn_param(layer, p, mode):
    return {"mode": mode, "eps": layer.get("eps", 1e-5), "momentum": layer.get("momentum", 0.9),
            "running_mean": p["running_mean"], "running_var": p["running_var"]}


def forward(layer, p, x, mode, rng):
    """Run one layer: (out, cache, new_buffers)."""
    t = layer["type"]
    if t == "conv":
        out, cache = conv_forward(x, p["W"], p["b"], layer.get("stride", 1), layer.get("pad", 0))
    elif t in ("spatial_batchnorm", "batchnorm"):
        fn = spatial_batchnorm_forward if t == "spatial_batchnorm" else batchnorm_forward
        out, cache = fn(x, p["gamma"], p["beta"], _bn_param(layer, p, mode))
        if mode == "train":
            return out, cache, {"running_mean": cache.running_mean, "running_var": cache.running_var}
    elif t == "relu":
        out, cache = relu_forward(x)
    elif t == "maxpool":
        out, cache = max_pool_forward(x, layer["size"], layer.get("stride", layer["size"]))
    elif t == "global_avgpool":
        out, cache = global_avg_pool_forward(x)
    elif t == "flatten":
        out, cache = x.reshape(x.shape[0], -1), x.shape
    elif t == "dropout":
        out, cache = dropout_forward(x, layer.get("p", 0.5), mode, rng=rng)
    elif t == "affine":
        out, cache = affine_forward(x, p["W"], p["b"])
    else:
        raise GradscopeError(f"layer {layer['name']!r}: unknown type {t!r}")
    return out, cache, {}


def backward(layer, dout, cache, param_grads):
    """Backpropagate through one layer: (dx, grads keyed by short parameter name)."""
    t = layer["type"]
    if t == "conv":
        if not param_grads:
            return conv_backward_input(dout, cache), {}
        dx, dW, db = conv_backward(dout, cache)
        return dx, {"W": dW, "b": db}
    if t in ("spatial_batchnorm", "batchnorm"):
        if not param_grads:
            return batchnorm_backward_input(dout, cache), {}
        fn = spatial_batchnorm_backward if t == "spatial_batchnorm" else batchnorm_backward
        dx, dgamma, dbeta = fn(dout, cache)
        return dx, {"gamma": dgamma, "beta": dbeta}
    if t == "affine":
        dx, dW, db = affine_backward(dout, cache)
        return dx, ({"W": dW, "b": db} if param_grads else {})
    if t == "relu":
        return relu_backward(dout, cache), {}
    if t == "maxpool":
        return max_pool_backward(dout, cache), {}
    if t == "global_avgpool":
        return global_avg_pool_backward(dout, cache), {}
    if t == "flatten":
        return dout.reshape(cache), {}
    if t == "dropout":
        return dropout_backward(dout, cache), {}
    raise GradscopeError(f"layer {layer['name']!r}: unknown type {t!r}")
