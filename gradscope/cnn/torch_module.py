"""The torch twin of a gradscope CNN config: build an equivalent torch module from the
same layer table (gradscope/cnn/layer_types.py) and move weights both ways.
Requires the optional torch extra (nothing imports this module at package import).

Top-level layers become children of a torch.nn.Sequential named like the config's
layers; a residual block becomes a `Residual` (a Sequential of its sub-layers plus the
same skip rule as the engine), so torch's qualified module names ("block3.expand")
equal the engine's layer names.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn

from gradscope.cnn.graph import flatten, skip_applies
from gradscope.cnn.layer_types import BLOCK, LAYER_TYPES

__all__ = ["Residual", "build_torch_module", "torch_to_params", "params_to_torch"]


class Residual(nn.Sequential):
    """Sub-layers in sequence plus the skip of the block's `step` (see gradscope/cnn/graph.py)."""

    def __init__(self, children: OrderedDict, step):
        super().__init__(children)
        self.step = step

    def forward(self, x):
        out = super().forward(x)
        return out + x if skip_applies(self.step, x.shape, out.shape) else out


def _build(layers, prefix=""):
    mods = OrderedDict()
    for layer in layers:
        name = prefix + layer["name"]
        if layer["type"] == BLOCK:
            join = next(s for s in flatten([layer], prefix) if s.name == name)
            mods[layer["name"]] = Residual(_build(layer["layers"], name + "."), join)
        else:
            mods[layer["name"]] = LAYER_TYPES[layer["type"]].torch(layer)
    return mods


def build_torch_module(config: dict):
    """torch.nn.Sequential whose (qualified) module names are the config's layer names."""
    flatten(config["layers"])  # checks the config
    return nn.Sequential(_build(config["layers"]))


def _weights(config):
    """(step, short, torch key, kind) for every param ('param') and buffer ('buffer')."""
    for step in flatten(config["layers"]):  # a join has no params or buffers
        for kind, shapes in (("param", step.kind.params(step.layer)), ("buffer", step.kind.buffers(step.layer))):
            for short in shapes:
                yield step, short, step.kind.torch_keys[short], kind


def torch_to_params(config: dict, module) -> tuple[dict, dict]:
    """(params, buffers) as float32 NumPy arrays named '<layer>.<param>'."""
    out = {"param": {}, "buffer": {}}
    for step, short, tkey, kind in _weights(config):
        a = getattr(module.get_submodule(step.name), tkey).detach().cpu().numpy()
        a = a.T if short in step.kind.torch_transposed else a
        out[kind][f"{step.name}.{short}"] = np.ascontiguousarray(a, dtype=np.float32)
    return out["param"], out["buffer"]


def params_to_torch(config: dict, params: dict, buffers: dict, module=None):
    """Copy NumPy params and buffers into a torch module (built from config if not given)."""
    module = module if module is not None else build_torch_module(config)
    with torch.no_grad():
        for step, short, tkey, kind in _weights(config):
            a = np.asarray((params if kind == "param" else buffers)[f"{step.name}.{short}"], dtype=np.float32)
            a = a.T if short in step.kind.torch_transposed else a
            getattr(module.get_submodule(step.name), tkey).copy_(torch.from_numpy(np.ascontiguousarray(a)))
    return module
