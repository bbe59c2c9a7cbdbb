"""The torch twin of a gradscope CNN config: build an equivalent `torch.nn.Sequential`
and move weights both ways. Requires the optional torch extra."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np


def build_torch_module(config: dict):
    """torch.nn.Sequential whose children are named like the config's layers."""
    import torch.nn as nn

    mods = {}
    for layer in config["layers"]:
        t = layer["type"]
        if t == "conv":
            m = nn.Conv2d(layer["in_channels"], layer["out_channels"], layer["kernel"],
                          stride=layer.get("stride", 1), padding=layer.get("pad", 0))
        elif t == "spatial_batchnorm":
            m = nn.BatchNorm2d(layer["channels"], eps=layer.get("eps", 1e-5),
                               momentum=1.0 - layer.get("momentum", 0.9))
        elif t == "batchnorm":
            m = nn.BatchNorm1d(layer["features"], eps=layer.get("eps", 1e-5),
                               momentum=1.0 - layer.get("momentum", 0.9))
        elif t == "relu":
            m = nn.ReLU()
        elif t == "maxpool":
            m = nn.MaxPool2d(layer["size"], stride=layer.get("stride", layer["size"]))
        elif t == "global_avgpool":
            m = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        elif t == "flatten":
            m = nn.Flatten()
        elif t == "dropout":
            m = nn.Dropout(layer.get("p", 0.5))
        elif t == "affine":
            m = nn.Linear(layer["in_features"], layer["out_features"])
        else:
            raise ValueError(f"layer {layer['name']!r}: unknown type {t!r}")
        mods[layer["name"]] = m
    return nn.Sequential(OrderedDict(mods))


def torch_to_params(config: dict, module) -> tuple[dict, dict]:
    """(params, buffers) as float32 NumPy arrays named '<layer>.<param>'."""
    params, buffers = {}, {}
    for layer in config["layers"]:
        m = getattr(module, layer["name"])
        name, t = layer["name"], layer["type"]
        if t in ("conv", "affine"):
            W = m.weight.detach().cpu().numpy()
            params[f"{name}.W"] = np.ascontiguousarray(W.T if t == "affine" else W, dtype=np.float32)
            params[f"{name}.b"] = m.bias.detach().cpu().numpy().astype(np.float32)
        elif t in ("spatial_batchnorm", "batchnorm"):
            params[f"{name}.gamma"] = m.weight.detach().cpu().numpy().astype(np.float32)
            params[f"{name}.beta"] = m.bias.detach().cpu().numpy().astype(np.float32)
            buffers[f"{name}.running_mean"] = m.running_mean.detach().cpu().numpy().astype(np.float32)
            buffers[f"{name}.running_var"] = m.running_var.detach().cpu().numpy().astype(np.float32)
    return params, buffers


def params_to_torch(config: dict, params: dict, buffers: dict, module=None):
    """Copy NumPy params and buffers into a torch module (built from config if not given)."""
    import torch

    module = module if module is not None else build_torch_module(config)
    with torch.no_grad():
        for layer in config["layers"]:
            m = getattr(module, layer["name"])
            name, t = layer["name"], layer["type"]
            if t in ("conv", "affine"):
                W = np.asarray(params[f"{name}.W"], dtype=np.float32)
                m.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T if t == "affine" else W)))
                m.bias.copy_(torch.from_numpy(np.asarray(params[f"{name}.b"], dtype=np.float32)))
            elif t in ("spatial_batchnorm", "batchnorm"):
                m.weight.copy_(torch.from_numpy(np.asarray(params[f"{name}.gamma"], dtype=np.float32)))
                m.bias.copy_(torch.from_numpy(np.asarray(params[f"{name}.beta"], dtype=np.float32)))
                m.running_mean.copy_(torch.from_numpy(np.asarray(buffers[f"{name}.running_mean"], dtype=np.float32)))
                m.running_var.copy_(torch.from_numpy(np.asarray(buffers[f"{name}.running_var"], dtype=np.float32)))
    return module
