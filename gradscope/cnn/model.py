"""A convolutional network in NumPy that runs forward to any layer and backward from
any layer to the image.

The network is described by a config (see gradscope/cnn/config.py): a sequence of
layers, each of a type in gradscope/cnn/layer_types.py, or a residual block (a
sub-sequence plus a skip, see gradscope/cnn/graph.py). Parameters live in `params`, a
dict named '<qualified layer>.<param>' ('conv1.W', 'block3.expand.W'); batch-norm
running statistics live in `buffers` ('bn1.running_mean'). Layers are pure functions;
the one stateful thing is that a forward pass in mode='train' stores the updated
running statistics into `self.buffers`.

`layer_names` lists every addressable point in the order the network runs: the
top-level layers, the layers inside each block by qualified name ("block3.expand"),
and the block itself ("block3", its output with the skip added) right after its last
inner layer. `forward(start=..., end=...)`, `forward_to` and resolve_layer take any of
them; starting at a block name starts at its first inner layer, and a range may not
start inside a block (the skip needs the block's input). The walk through the steps,
blocks included, is gradscope/cnn/graph.py's walk; forward(fold=True) folds test-mode
batch norms into the layers before them (gradscope/cnn/fold.py).

The model owns its preprocessing (config["preprocess"]: per-channel mean and std of
pixels scaled to [0, 1]) and implements gradscope.interface.ImageModel.
"""
from __future__ import annotations

import copy
from typing import NamedTuple

import numpy as np

from gradscope.cnn.config import FORMAT
from gradscope.cnn.fold import BatchNormFold
from gradscope.cnn.graph import JOIN, flatten, walk, walk_back
from gradscope.cnn.preprocessing import center_crop_resize, images_to_list
from gradscope.errors import GradscopeError, ShapeError, UnknownLayerError
from gradscope.interface import check_input, resolve_layer, upstream_gradient
from gradscope.layers import softmax_loss
from gradscope.layers._validate import check_upstream


class ForwardCache(NamedTuple):
    """What CNN.backward needs: (step, its cache) of every step run, in running order."""
    steps: list
    in_shape: tuple   # shape of the range's input
    out_shape: tuple  # shape of the range's output


class CNN:
    """CNN from a config dict.

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
        cfg = self.config
        if not isinstance(cfg, dict) or not isinstance(cfg.get("layers"), list) or not cfg["layers"]:
            raise GradscopeError("a CNN config must be a dict with a non-empty 'layers' list")
        if cfg.get("format", FORMAT) != FORMAT:
            raise GradscopeError(f"unsupported CNN config format {cfg.get('format')!r}; expected {FORMAT!r}")
        self.layers = cfg["layers"]                # the config's top-level layers
        self.steps = flatten(self.layers)           # every addressable step, in running order
        self.layer_names = [step.name for step in self.steps]
        self._blocks = {b: (i, self.layer_names.index(b)) for i, step in enumerate(self.steps)
                        for b in step.opens}        # block name -> (first inner step, join step)
        self._fold = BatchNormFold(self.steps)
        self.input_size = int(cfg.get("input_size", 64))
        self._shapes = [s for s, _ in self._walk_shapes((3, self.input_size, self.input_size))]
        self._set_classes(cfg.get("classes") or {})
        pre = cfg.get("preprocess") or {}
        self._mean = np.asarray(pre.get("mean", [0.0, 0.0, 0.0]), dtype=np.float64).reshape(1, 3, 1, 1)
        self._std = np.asarray(pre.get("std", [1.0, 1.0, 1.0]), dtype=np.float64).reshape(1, 3, 1, 1)
        self.loaded_from = None  # the file CNN.load read (named in errors)
        self.rng = np.random.default_rng(seed)  # dropout masks in train mode
        self.params = self._init_arrays(params, "param", np.random.default_rng(seed))
        self.buffers = self._init_arrays(buffers, "buffer", None)

    # ---- construction -------------------------------------------------------------
    def _set_classes(self, classes):
        n_out = self._shapes[-1][0]
        self.wnids = list(classes.get("wnids") or [str(i) for i in range(n_out)])
        self.class_names = list(classes.get("names") or self.wnids)
        if len(self.wnids) != n_out or len(self.class_names) != n_out:
            raise GradscopeError(f"config lists {len(self.wnids)} class ids and {len(self.class_names)} "
                                 f"names but the network outputs {n_out} scores")

    def _walk_shapes(self, shape):
        """(per-example output shape, for a join whether its skip applies else None) of
        every step for a per-example input shape (checks that a required skip fits)."""
        def layer(step, _, s):
            s = step.kind.output_shape(step.layer, s)
            return s, (s, None)

        return walk([(step, None) for step in self.steps], tuple(shape), layer,
                    lambda step, s, s_in: (s, JOIN.output_shape(step, s, s_in)))[1]

    def _expected(self, kind):
        """'<step>.<short>' -> (step, short, shape) of every param (or buffer)."""
        out = {}
        for step in self.steps:
            shapes = (step.kind.params if kind == "param" else step.kind.buffers)(step.layer)
            out.update({f"{step.name}.{s}": (step, s, shape) for s, shape in shapes.items()})
        return out

    def _init_arrays(self, given, kind, rng):
        """Validate given arrays against the config, or initialise them."""
        expected = self._expected(kind)
        if given is None:
            return {k: step.kind.init(step.layer, s, shape, rng, self.dtype)
                    for k, (step, s, shape) in expected.items()}
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
        """One dict per step (see layer_names): name, type, output_shape (per example) and
        params (count) for a square input of side input_size (default the model's);
        a block's row (type 'residual') counts its inner layers' params and says
        whether its skip applies."""
        s = input_size or self.input_size
        rows = []
        for step, (shape, skip) in zip(self.steps, self._walk_shapes((3, s, s))):
            n = sum(v.size for k, v in self.params.items() if k.startswith(step.name + "."))
            row = {"name": step.name, "type": step.layer["type"], "output_shape": shape, "params": int(n)}
            rows.append(row if skip is None else dict(row, skip=skip))
        return rows

    def _step_arrays(self, step):
        """The step's params and buffers by short name."""
        p = {s: self.params[f"{step.name}.{s}"] for s in step.kind.params(step.layer)}
        p.update({s: self.buffers[f"{step.name}.{s}"] for s in step.kind.buffers(step.layer)})
        return p

    def _range(self, start, end):
        s = 0 if start is None else resolve_layer(self, start)
        s = self._blocks.get(self.layer_names[s], (s,))[0]  # a block starts at its first inner layer
        e = len(self.steps) - 1 if end is None else resolve_layer(self, end)
        if s > e:
            raise UnknownLayerError(f"start layer {self.layer_names[s]!r} comes after end layer "
                                    f"{self.layer_names[e]!r}")
        for name, (first, join) in self._blocks.items():
            if first < s <= join:
                raise UnknownLayerError(f"cannot start at {self.layer_names[s]!r}, inside residual block "
                                        f"{name!r}: its skip needs the block's input; start at {name!r}")
        return s, e

    def _check_input(self, X, s):
        """Images for the first layer (gradscope.interface.check_input), else the shape
        the previous step outputs."""
        if s == 0:
            check_input(X, "input")
            return
        want = self._shapes[s - 1]
        if not isinstance(X, np.ndarray) or X.ndim != len(want) + 1 or X.shape[1] != want[0]:
            layout = f"(N, {want[0]}, H, W)" if len(want) == 3 else f"(N, {want[0]})"
            raise ShapeError(f"input to layer {self.layer_names[s]!r} must be an array of shape {layout}, "
                             f"got {getattr(X, 'shape', type(X).__name__)}")
        if X.shape[0] == 0:
            raise ShapeError("input batch is empty")
        if not np.all(np.isfinite(X)):
            raise GradscopeError("input contains NaN or infinite values")

    # ---- forward and backward -----------------------------------------------------------
    def forward(self, X, start=None, end=None, mode: str = "test", rng=None, fold: bool = False):
        """Run steps start..end (names or indices into layer_names, end inclusive;
        None = first / last).

        X is the input of `start`: (N, 3, H, W) images for the first layer.
        mode 'train' uses batch statistics (and stores the updated running statistics in
        self.buffers) and dropout (masks from rng, default self.rng); 'test' is deterministic.
        fold=True (test mode only) runs each batch norm inside the range together with the
        linear layer before it (FAST PATH, gradscope/cnn/fold.py); its cache then serves
        input gradients only (backward with param_grads=False).
        Returns (out, cache) for backward.
        """
        if mode not in ("train", "test"):
            raise GradscopeError(f"mode must be 'train' or 'test', got {mode!r}")
        if fold and mode != "test":
            raise GradscopeError("fold=True needs mode='test': training uses the batch statistics")
        s, e = self._range(start, end)
        self._check_input(X, s)
        rng = self.rng if rng is None else rng
        items = (self._fold.items(self._step_arrays, self.dtype, s, e) if fold
                 else [(step, self._step_arrays(step)) for step in self.steps[s:e + 1]])
        x, caches = walk(items, X.astype(self.dtype, copy=False),
                         lambda step, arrays, x: self._run_layer(step, arrays, x, mode, rng), JOIN.forward)
        return x, ForwardCache([(step, c) for (step, _), c in zip(items, caches)], X.shape, x.shape)

    def _run_layer(self, step, arrays, x, mode, rng):
        """One layer's forward with the given params and buffers; stores updated buffers."""
        try:
            x, cache, new_buffers = step.kind.forward(step.layer, arrays, x, mode, rng)
        except ShapeError as err:
            raise ShapeError(f"layer {step.name!r} ({step.layer['type']}): {err}") from None
        for short, value in new_buffers.items():
            self.buffers[f"{step.name}.{short}"] = value.astype(self.dtype, copy=False)
        return x, cache

    def backward(self, dout, cache: ForwardCache, param_grads: bool = True):
        """Backpropagate dout (shaped like forward's out) through the same steps.

        Returns (dX shaped like forward's X, grads keyed like params for the range's
        layers; empty when param_grads is False, which skips the weight gradients).
        """
        check_upstream("dout", dout, cache.out_shape)
        grads = {}

        def layer(step, c, d):
            d, g = step.kind.backward(step.layer, d, c, param_grads)
            grads.update({f"{step.name}.{k}": v for k, v in g.items()})
            return d

        d = walk_back(cache.steps, dout.astype(self.dtype, copy=False), layer)
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
    @property
    def _label(self) -> str:
        """The model as error messages name it."""
        return f"model {(self.loaded_from or self.config.get('name') or 'CNN')!r}"

    def scores(self, x):
        """(N, 3, H, W) -> raw class scores (N, C), test mode (DataError naming the model if not finite)."""
        from gradscope.validate import check_finite_output

        return check_finite_output(self.forward(x, mode="test", fold=True)[0], self._label, "scores")

    def scores_backward(self, x, dscores_fn):
        """(scores (N, C), dx (N, 3, H, W)): the gradient of sum(dscores * scores) w.r.t. x,
        where dscores = dscores_fn(scores); one forward and one backward pass."""
        scores, cache = self.forward(x, mode="test", fold=True)
        dscores = upstream_gradient(scores, dscores_fn, self._label, dtype=scores.dtype)
        return scores, self.backward(dscores, cache, param_grads=False)[0]

    def forward_to(self, x, layer):
        """Run from the input up to and including `layer` (name or index), test mode."""
        return self.forward(x, end=layer, mode="test", fold=True)

    def backward_from(self, dact, cache):
        """Gradient w.r.t. the input of forward_to given the gradient of its output."""
        return self.backward(dact, cache, param_grads=False)[0]

    def layer_gradient(self, x, layer, dscores_fn):
        """(scores, act, dact): the output of `layer` (a top-level layer or a whole block) and
        the gradient of sum(dscores_fn(scores) * scores) w.r.t. it; test mode."""
        i = resolve_layer(self, layer)
        act, _ = self.forward_to(x, i)
        if i == len(self.steps) - 1:
            return act, act, upstream_gradient(act, dscores_fn, self._label, dtype=act.dtype)
        try:
            scores, cache = self.forward(act, start=i + 1, mode="test", fold=True)
        except UnknownLayerError:
            raise UnknownLayerError(f"layer {self.layer_names[i]!r} is inside a residual block: take the "
                                    "gradient at the whole block or a top-level layer") from None
        dscores = upstream_gradient(scores, dscores_fn, self._label, dtype=scores.dtype)
        return scores, act, self.backward(dscores, cache, param_grads=False)[0]

    # ---- preprocessing ------------------------------------------------------------------
    def preprocess(self, images):
        """uint8 images of any size ((N, H, W, 3) array or a list of (H, W, 3) arrays) ->
        (N, 3, S, S) model input: shorter side resized to config["preprocess"]["resize"]
        (default S = input_size), centre S crop (an S x S image as is), then
        (pixel / 255 - mean) / std."""
        S = self.input_size
        imgs = images_to_list(images)
        resize = (self.config.get("preprocess") or {}).get("resize")
        batch = np.stack([center_crop_resize(im, S, resize) for im in imgs])  # (N, S, S, 3) uint8
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
        model = cls(config, params, buffers, dtype=dtype)
        model.loaded_from = str(path)
        return model

    def __repr__(self):
        n = sum(v.size for v in self.params.values())
        return f"CNN({len(self.layers)} layers, {n:,} params, {self.num_classes} classes, input {self.input_size})"

