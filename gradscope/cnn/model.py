"""A sequential convolutional network in NumPy that runs forward to any layer and
backward from any layer to the image.

The network is described by a config (see gradscope/cnn/config.py). Parameters live
in `params`, a dict named '<layer>.<param>' ('conv1.W', 'bn1.gamma'); batch-norm
running statistics live in `buffers` ('bn1.running_mean', 'bn1.running_var').
Layers are pure functions; the one stateful thing is that a forward pass in
mode='train' stores the updated running statistics into `self.buffers`.
The model owns its preprocessing (config["preprocess"]: per-channel mean and std of
pixels scaled to [0, 1]) and implements gradscope.methods.interface.ImageModel.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from gradscope.cnn import layer_ops
from gradscope.cnn.config import FORMAT
from gradscope.cnn.preprocessing import center_crop_resize, images_to_list
from gradscope.errors import GradscopeError, ShapeError, UnknownLayerError
from gradscope.layers import softmax_loss
from gradscope.methods.interface import resolve_layer


@dataclass
class ForwardCache:
    """What CNN.backward needs: the layer range run and each layer's cache."""
    start: int
    end: int
    caches: list
    in_shape: tuple   # shape of the range's input
    out_shape: tuple  # shape of the range's output


class CNN:
    """Sequential CNN from a config dict.

    Args:
        config: network description (gradscope.cnn.config format).
        params, buffers: arrays named '<layer>.<param>'; None = random He init from `seed`
            (buffers default to running mean 0, variance 1).
        seed: seeds the initialisation and the dropout masks.
        dtype: np.float32 or np.float64; params, buffers and inputs are cast to it.
    """

    def __init__(self, config: dict, params=None, buffers=None, seed: int = 0, dtype=np.float32):
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise GradscopeError(f"dtype must be float32 or float64, got {self.dtype}")
        self.config = copy.deepcopy(config)
        self._check_config()
        self.layers = self.config["layers"]
        self.layer_names = [layer["name"] for layer in self.layers]
        self.input_size = int(self.config.get("input_size", 64))
        self._shapes = self._infer_shapes((3, self.input_size, self.input_size))
        classes = self.config.get("classes") or {}
        n_out = self._shapes[-1][0]
        self.wnids = list(classes.get("wnids") or [str(i) for i in range(n_out)])
        self.class_names = list(classes.get("names") or self.wnids)
        if len(self.wnids) != n_out or len(self.class_names) != n_out:
            raise GradscopeError(f"config lists {len(self.wnids)} class ids and {len(self.class_names)} "
                                 f"names but the network outputs {n_out} scores")
        pre = self.config.get("preprocess") or {}
        self._mean = np.asarray(pre.get("mean", [0.0, 0.0, 0.0]), dtype=np.float64).reshape(1, 3, 1, 1)
        self._std = np.asarray(pre.get("std", [1.0, 1.0, 1.0]), dtype=np.float64).reshape(1, 3, 1, 1)
        self.rng = np.random.default_rng(seed)  # dropout masks in train mode
        self.params = self._init_arrays(params, "param", np.random.default_rng(seed))
        self.buffers = self._init_arrays(buffers, "buffer", None)

    # ---- construction -------------------------------------------------------------
    def _check_config(self):
        cfg = self.config
        if not isinstance(cfg, dict) or not isinstance(cfg.get("layers"), list) or not cfg["layers"]:
            raise GradscopeError("a CNN config must be a dict with a non-empty 'layers' list")
        if cfg.get("format", FORMAT) != FORMAT:
            raise GradscopeError(f"unsupported CNN config format {cfg.get('format')!r}; expected {FORMAT!r}")
        seen = set()
        for i, layer in enumerate(cfg["layers"]):
            if not isinstance(layer, dict) or "name" not in layer or "type" not in layer:
                raise GradscopeError(f"config layer {i} must be a dict with 'name' and 'type'")
            if layer["type"] not in layer_ops.LAYER_TYPES:
                raise GradscopeError(f"layer {layer['name']!r}: unknown type {layer['type']!r}; "
                                     f"known: {', '.join(layer_ops.LAYER_TYPES)}")
            if layer["name"] in seen:
                raise GradscopeError(f"duplicate layer name {layer['name']!r} in config")
            seen.add(layer["name"])

    def _infer_shapes(self, shape):
        """Per-example output shape of every layer for a per-example input shape."""
        shapes = []
        for layer in self.layers:
            shape = layer_ops.output_shape(layer, tuple(shape))
            shapes.append(shape)
        return shapes

    def _expected(self, kind):
        shapes_of = layer_ops.param_shapes if kind == "param" else layer_ops.buffer_shapes
        return {f"{layer['name']}.{short}": (layer, short, shape)
                for layer in self.layers for short, shape in shapes_of(layer).items()}

    def _init_arrays(self, given, kind, rng):
        """Validate given arrays against the config, or initialise them."""
        expected = self._expected(kind)
        if given is None:
            if kind == "param":
                return {k: layer_ops.init_param(layer, s, shape, rng, self.dtype)
                        for k, (layer, s, shape) in expected.items()}
            return {k: layer_ops.init_buffer(s, shape, self.dtype) for k, (layer, s, shape) in expected.items()}
        missing = sorted(set(expected) - set(given))
        extra = sorted(set(given) - set(expected))
        if missing or extra:
            raise GradscopeError(f"{kind}s do not match the config: missing {missing or 'none'}, "
                                 f"unexpected {extra or 'none'}")
        out = {}
        for k, (_, _, shape) in expected.items():
            a = np.asarray(given[k])
            if a.shape != tuple(shape):
                raise ShapeError(f"{kind} {k!r} has shape {a.shape}, the config needs {tuple(shape)}")
            out[k] = a.astype(self.dtype)
        return out

    # ---- description ----------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return self._shapes[-1][0]

    def describe(self, input_size: int | None = None) -> list:
        """One dict per layer: name, type, output_shape (per example) and params (count)
        for a square input of side input_size (default the model's)."""
        s = input_size or self.input_size
        shapes = self._infer_shapes((3, s, s))
        rows = []
        for layer, shape in zip(self.layers, shapes):
            n = sum(self.params[f"{layer['name']}.{p}"].size for p in layer_ops.param_shapes(layer))
            rows.append({"name": layer["name"], "type": layer["type"], "output_shape": shape, "params": int(n)})
        return rows

    def _layer_params(self, layer):
        name = layer["name"]
        p = {s: self.params[f"{name}.{s}"] for s in layer_ops.param_shapes(layer)}
        p.update({s: self.buffers[f"{name}.{s}"] for s in layer_ops.buffer_shapes(layer)})
        return p

    def _range(self, start, end):
        s = 0 if start is None else resolve_layer(self, start)
        e = len(self.layers) - 1 if end is None else resolve_layer(self, end)
        if s > e:
            raise UnknownLayerError(f"start layer {self.layer_names[s]!r} comes after end layer "
                                    f"{self.layer_names[e]!r}")
        return s, e

    def _check_input(self, X, s):
        if not isinstance(X, np.ndarray):
            raise ShapeError(f"input must be a NumPy array, got {type(X).__name__}")
        if s == 0:
            if X.ndim != 4 or X.shape[1] != 3:
                raise ShapeError(f"input must have shape (N, 3, H, W), got {X.shape}")
        else:
            want = self._shapes[s - 1]
            if X.ndim != len(want) + 1 or X.shape[1] != want[0]:
                layout = f"(N, {want[0]}, H, W)" if len(want) == 3 else f"(N, {want[0]})"
                raise ShapeError(f"input to layer {self.layer_names[s]!r} must have shape {layout}, got {X.shape}")
        if X.shape[0] == 0:
            raise ShapeError("input batch is empty")
        if not np.all(np.isfinite(X)):
            raise GradscopeError("input contains NaN or infinite values")

    # ---- forward and backward -----------------------------------------------------------
    def forward(self, X, start=None, end=None, mode: str = "test", rng=None):
        """Run layers start..end (names or indices, end inclusive; None = first / last).

        X is the input of layer `start`: (N, 3, H, W) images for the first layer.
        mode 'train' uses batch statistics (and stores the updated running statistics in
        self.buffers) and dropout (masks from rng, default self.rng); 'test' is deterministic.
        Returns (out, cache) for backward.
        """
        if mode not in ("train", "test"):
            raise GradscopeError(f"mode must be 'train' or 'test', got {mode!r}")
        s, e = self._range(start, end)
        self._check_input(X, s)
        x = X.astype(self.dtype, copy=False)
        rng = self.rng if rng is None else rng
        caches = []
        for layer in self.layers[s:e + 1]:
            try:
                x, cache, new_buffers = layer_ops.forward(layer, self._layer_params(layer), x, mode, rng)
            except ShapeError as err:
                raise ShapeError(f"layer {layer['name']!r} ({layer['type']}): {err}") from None
            for short, value in new_buffers.items():
                self.buffers[f"{layer['name']}.{short}"] = value.astype(self.dtype, copy=False)
            caches.append(cache)
        return x, ForwardCache(s, e, caches, X.shape, x.shape)

    def backward(self, dout, cache: ForwardCache, param_grads: bool = True):
        """Backpropagate dout (shaped like forward's out) through the same layer range.

        Returns (dX shaped like forward's X, grads keyed like params for the range's
        layers; empty when param_grads is False, which skips the weight gradients).
        """
        if not isinstance(dout, np.ndarray) or dout.shape != cache.out_shape:
            raise ShapeError(f"upstream gradient must have shape {cache.out_shape}, "
                             f"got {getattr(dout, 'shape', type(dout).__name__)}")
        d = dout.astype(self.dtype, copy=False)
        grads = {}
        for i in range(cache.end, cache.start - 1, -1):
            layer = self.layers[i]
            d, g = layer_ops.backward(layer, d, cache.caches[i - cache.start], param_grads)
            grads.update({f"{layer['name']}.{k}": v for k, v in g.items()})
        return np.ascontiguousarray(d), grads

    def loss(self, X, y=None, reg: float = 0.0):
        """Scores (N, C) in test mode when y is None; otherwise (loss, grads) of the mean
        softmax cross-entropy plus 0.5 * reg * sum of squared weights (train mode)."""
        if y is None:
            return self.scores(X)
        scores, cache = self.forward(X, mode="train")
        loss, dscores = softmax_loss(scores, np.asarray(y))
        _, grads = self.backward(dscores, cache)
        if reg:
            for k, w in self.params.items():
                if k.endswith(".W"):
                    loss += 0.5 * reg * float(np.sum(w * w))
                    grads[k] = grads[k] + reg * w
        return float(loss), grads

    # ---- ImageModel interface ---------------------------------------------------------
    def scores(self, x):
        """(N, 3, H, W) -> raw class scores (N, C), test mode."""
        return self.forward(x, mode="test")[0]

    def score_gradient(self, x, classes):
        """(scores (N, C), dx (N, 3, H, W)) with dx[i] = d scores[i, classes[i]] / d x[i]."""
        scores, cache = self.forward(x, mode="test")
        n = scores.shape[0]
        classes = np.broadcast_to(np.asarray(classes), (n,)) if np.ndim(classes) == 0 else np.asarray(classes)
        if classes.shape != (n,):
            raise ShapeError(f"classes must hold one class per image ({n}), got shape {classes.shape}")
        if not np.issubdtype(classes.dtype, np.integer) or classes.min() < 0 or classes.max() >= scores.shape[1]:
            raise GradscopeError(f"classes must be integer indices in [0, {scores.shape[1]}), got {classes.tolist()}")
        dscores = np.zeros_like(scores)
        dscores[np.arange(n), classes] = 1
        dx, _ = self.backward(dscores, cache, param_grads=False)
        return scores, dx

    def scores_backward(self, x, dscores_fn):
        """(scores (N, C), dx (N, 3, H, W)): the gradient of sum(dscores * scores) w.r.t. x,
        where dscores = dscores_fn(scores); one forward and one backward pass."""
        scores, cache = self.forward(x, mode="test")
        dscores = np.asarray(dscores_fn(scores), dtype=scores.dtype)
        if dscores.shape != scores.shape:
            raise ShapeError(f"dscores_fn must return the scores' shape {scores.shape}, got {dscores.shape}")
        return scores, self.backward(dscores, cache, param_grads=False)[0]

    def forward_to(self, x, layer):
        """Run from the input up to and including `layer` (name or index), test mode."""
        return self.forward(x, end=layer, mode="test")

    def backward_from(self, dact, cache):
        """Gradient w.r.t. the input of forward_to given the gradient of its output."""
        return self.backward(dact, cache, param_grads=False)[0]

    # ---- preprocessing ------------------------------------------------------------------
    def preprocess(self, images):
        """uint8 images of any size ((N, H, W, 3) array or a list of (H, W, 3) arrays) ->
        (N, 3, S, S) model input: shorter side resized to S = input_size, centre crop,
        then (pixel / 255 - mean) / std."""
        S = self.input_size
        imgs = images_to_list(images)
        batch = np.stack([center_crop_resize(im, S) for im in imgs])  # (N, S, S, 3) uint8
        x = batch.transpose(0, 3, 1, 2).astype(np.float64) / 255.0
        return ((x - self._mean) / self._std).astype(self.dtype)

    def deprocess(self, x):
        """(N, 3, H, W) model input -> uint8 (N, H, W, 3) images (clipped to 0..255)."""
        x = np.asarray(x)
        if x.ndim != 4 or x.shape[1] != 3:
            raise ShapeError(f"model input must have shape (N, 3, H, W), got {x.shape}")
        pixels = (x * self._std + self._mean) * 255.0
        return np.clip(np.round(pixels), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)

    def pixel_bounds(self):
        """(lo, hi), each (1, 3, 1, 1): the model-input values of pixels 0 and 255."""
        lo = (0.0 - self._mean) / self._std
        hi = (1.0 - self._mean) / self._std
        return lo.astype(self.dtype), hi.astype(self.dtype)

    # ---- files ------------------------------------------------------------------------------
    def save(self, path, float16: bool = True) -> None:
        """Write `<stem>.json` (config) and `<stem>.npz` (weights; float16 halves the size)."""
        from gradscope.cnn.io import save_weights

        save_weights(path, self.config, self.params, self.buffers, float16=float16)

    @classmethod
    def load(cls, path, dtype=np.float32) -> "CNN":
        """A CNN from files written by save (never unpickles)."""
        from gradscope.cnn.io import load_weights

        config, params, buffers = load_weights(path, dtype=dtype)
        return cls(config, params, buffers, dtype=dtype)

    def __repr__(self):
        n = sum(v.size for v in self.params.values())
        return f"CNN({len(self.layers)} layers, {n:,} params, {self.num_classes} classes, input {self.input_size})"
