"""A minimal ImageModel for the method tests, built only from gradscope.layers: the
methods must work with anything that follows the protocol, not one architecture.

conv1 (3->4, 3x3) relu1 pool1 conv2 (4->8, 3x3) relu2 gap fc (8->C); input 16x16.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from gradscope.layers import (affine_backward, affine_forward, conv_backward, conv_forward,
                              global_avg_pool_backward, global_avg_pool_forward, max_pool_backward,
                              max_pool_forward, relu_backward, relu_forward)
from gradscope.interface import resolve_layer

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(1, 3, 1, 1)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(1, 3, 1, 1)


class ToyImageModel:
    layer_names = ["conv1", "relu1", "pool1", "conv2", "relu2", "gap", "fc"]

    def __init__(self, num_classes: int = 5, input_size: int = 16, seed: int = 0, dtype=np.float32):
        rng = np.random.default_rng(seed)
        self.input_size = input_size
        self.class_names = [f"class {i}, synonym{i}" for i in range(num_classes)]
        self.wnids = [f"n{i:08d}" for i in range(num_classes)]
        self.params = {"conv1.W": rng.normal(0, 0.5, (4, 3, 3, 3)), "conv1.b": rng.normal(0, 0.1, 4),
                       "conv2.W": rng.normal(0, 0.4, (8, 4, 3, 3)), "conv2.b": rng.normal(0, 0.1, 8),
                       "fc.W": rng.normal(0, 1.0, (8, num_classes)), "fc.b": np.zeros(num_classes)}
        self.params = {k: v.astype(dtype) for k, v in self.params.items()}

    def preprocess(self, images):
        images = np.stack([np.asarray(Image.fromarray(im).resize((self.input_size, self.input_size)))
                           if im.shape[:2] != (self.input_size,) * 2 else im for im in images])
        return ((images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0 - MEAN) / STD).astype(np.float32)

    def deprocess(self, x):
        img = (x * STD + MEAN) * 255.0
        return np.clip(np.round(img), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)

    def pixel_bounds(self):
        return (0 - MEAN) / STD, (1 - MEAN) / STD

    def _layer(self, name, x):
        p = self.params
        if name.startswith("conv"):
            return conv_forward(x, p[name + ".W"], p[name + ".b"], 1, 1)
        if name.startswith("relu"):
            return relu_forward(x)
        if name.startswith("pool"):
            return max_pool_forward(x, 2, 2)
        if name == "gap":
            return global_avg_pool_forward(x)
        return affine_forward(x, p["fc.W"], p["fc.b"])

    @staticmethod
    def _layer_backward(name, dout, cache):
        if name.startswith("conv"):
            return conv_backward(dout, cache)[0]
        if name.startswith("relu"):
            return relu_backward(dout, cache)
        if name.startswith("pool"):
            return max_pool_backward(dout, cache)
        if name == "gap":
            return global_avg_pool_backward(dout, cache)
        return affine_backward(dout, cache)[0]

    def forward_to(self, x, layer):
        end = resolve_layer(self, layer)
        caches = []
        for name in self.layer_names[:end + 1]:
            x, cache = self._layer(name, x)
            caches.append((name, cache))
        return x, caches

    def backward_from(self, dact, cache):
        for name, c in reversed(cache):
            dact = self._layer_backward(name, dact, c)
        return dact

    def scores(self, x):
        return self.forward_to(x, "fc")[0]

    def layer_gradient(self, x, layer, dscores_fn):
        act, _ = self.forward_to(x, layer)
        scores, caches = act, []
        for name in self.layer_names[resolve_layer(self, layer) + 1:]:
            scores, cache = self._layer(name, scores)
            caches.append((name, cache))
        return scores, act, self.backward_from(np.asarray(dscores_fn(scores), dtype=scores.dtype), caches)

    def scores_backward(self, x, dscores_fn):
        scores, cache = self.forward_to(x, self.layer_names[-1])
        return scores, self.backward_from(np.asarray(dscores_fn(scores), dtype=scores.dtype), cache)


class LinearImageModel(ToyImageModel):
    """scores = flatten(x) @ W + b: attributions and deletion curves have exact answers.
    Its only layer is 'fc'; input 8x8."""
    layer_names = ["fc"]

    def __init__(self, W, b=None, input_size: int = 8):
        self.input_size = input_size
        C = W.shape[1]
        self.class_names = [f"class {i}" for i in range(C)]
        self.wnids = [f"n{i:08d}" for i in range(C)]
        self.params = {"fc.W": W, "fc.b": np.zeros(C, W.dtype) if b is None else b}

    def forward_to(self, x, layer):
        resolve_layer(self, layer)
        flat = x.reshape(len(x), -1)
        return flat @ self.params["fc.W"] + self.params["fc.b"], x.shape

    def backward_from(self, dact, cache):
        return (dact @ self.params["fc.W"].T).reshape(cache)
