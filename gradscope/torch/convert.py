"""The same model on both engines: a NumPy `gradscope.cnn.CNN` <-> an equivalent
torch module with the same weights (built by gradscope/cnn/torch_module.py)."""
from __future__ import annotations

import numpy as np

from gradscope.cnn.torch_module import build_torch_module, params_to_torch, torch_to_params
from gradscope.errors import GradscopeError, ShapeError
from gradscope.torch.adapter import TorchModel


def cnn_to_module(cnn):
    """torch.nn.Sequential twin of a NumPy CNN (children named like its layers), eval mode."""
    return params_to_torch(cnn.config, cnn.params, cnn.buffers).eval()


def cnn_to_torch(cnn, device=None) -> TorchModel:
    """A TorchModel computing the same function as the NumPy CNN: same weights, same
    preprocessing (config mean/std on pixels in 0..1), same class names, and the same
    layer_names (every engine step, so layer indices agree between the engines)."""
    config = cnn.config
    prep = config.get("preprocess") or {}
    return TorchModel(cnn_to_module(cnn), mean=prep.get("mean", [0.0] * 3), std=prep.get("std", [1.0] * 3),
                      input_size=cnn.input_size, class_names=list(cnn.class_names), wnids=list(cnn.wnids),
                      device=device, pixel_range=(0, 1),
                      layers=list(cnn.layer_names))


def torch_to_cnn(module, config: dict):
    """A NumPy CNN for `config` with the weights of a torch module built like
    build_torch_module(config) (or a TorchModel wrapping one)."""
    from gradscope.cnn import CNN

    if isinstance(module, TorchModel):
        module = module.module
    _check_layout(module, config)
    params, buffers = torch_to_params(config, module)
    return CNN(config, params=params, buffers=buffers)


def _check_layout(module, config: dict) -> None:
    """Raise a clear error unless the module has the config's layers with the same shapes."""
    reference = build_torch_module(config)
    have = dict(module.state_dict())
    for name, tensor in reference.state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue
        if name not in have:
            raise GradscopeError(f"the torch module does not match the config: it has no {name!r} "
                                 "(build it with gradscope.cnn.torch_module.build_torch_module)")
        if tuple(have[name].shape) != tuple(tensor.shape):
            raise ShapeError(f"the torch module does not match the config: {name!r} has shape "
                             f"{tuple(have[name].shape)}, the config needs {tuple(tensor.shape)}")
        if not np.all(np.isfinite(have[name].detach().cpu().float().numpy())):
            raise GradscopeError(f"the torch module's {name!r} holds NaN or infinite values")
