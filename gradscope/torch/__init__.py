"""PyTorch models as gradscope image models (optional: needs the torch extra).

    from gradscope.torch import TorchModel, cnn_to_torch, torch_to_cnn

Nothing else in gradscope imports this package at import time, so torch stays optional.
"""
try:
    import torch as _torch  # noqa: F401  (fail here, with a clear message, if torch is missing)
except ModuleNotFoundError as e:  # pragma: no cover - exercised only without torch
    if e.name != "torch":
        raise
    raise ModuleNotFoundError(
        "gradscope.torch needs PyTorch: install it with  pip install 'gradscope[torch]'",
        name="torch") from None

from gradscope.torch.adapter import TorchModel

__all__ = ["TorchModel", "cnn_to_torch", "cnn_to_module", "torch_to_cnn"]


def __getattr__(name):  # the NumPy-CNN conversions load gradscope.cnn only when asked for
    if name in ("cnn_to_torch", "cnn_to_module", "torch_to_cnn"):
        from gradscope.torch import convert

        return getattr(convert, name)
    raise AttributeError(f"module 'gradscope.torch' has no attribute {name!r}")
