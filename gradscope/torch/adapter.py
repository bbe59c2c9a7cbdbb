"""`TorchModel`: any PyTorch image classifier behind the ImageModel interface
(gradscope/interface.py), so every image-gradient method runs on it.

Input contract, stated once and used by every method: a uint8 pixel value p (0..255)
of channel c maps to the model input

    x = (lo + (hi - lo) * p / 255 - mean[c]) / std[c],     (lo, hi) = pixel_range,

so `pixel_range=(0, 1)` goes with torchvision-style mean/std (0.485, ...) and
`pixel_range=(0, 255)` with Caffe-style mean/std (123.7, ...). `pixel_bounds()` are the
values of x at p = 0 and p = 255; `deprocess` inverts the map and clips to 0..255.
The ImageModel input is always RGB, (N, 3, H, W). The module's own channel count is
len(mean) (`in_channels`): a 1-channel (grayscale) module is fed the luma
0.299 R + 0.587 G + 0.114 B of that input, computed inside the graph, so every method
works unchanged and gradients reach all three channels. With one mean/std value the
RGB input is normalized by it on each channel; the weights sum to 1, so the luma of
the normalized input is exactly the normalized luma of the pixels.

How the gradients are taken:
- The module is moved to `device` and put in eval mode once, at construction, and left
  so (test-mode scores, like the NumPy CNN's mode='test').
- Gradients are taken with torch.autograd.grad w.r.t. the input only; parameters are
  never touched, so frozen (requires_grad=False) parameters are fine.
- `forward_to(x, layer)` registers a forward hook on the named submodule that captures
  its output and raises a private stop exception, so nothing after the layer runs. That
  is also why in-place operations (ResNets' ReLU(inplace=True)) cannot overwrite a
  captured activation: the operation that would modify it never executes. The module
  receives a copy of the input leaf, so an in-place first operation is fine too.
  A submodule that runs more than once in one forward pass is captured at its first call.
- Arrays in and out are NumPy; computation is in the module's dtype (normally float32)
  on `device`, and results are returned in the input's dtype (float32 or float64).
  On CUDA, torch lets cuDNN use TF32 convolutions by default (about 1e-3 relative
  error); set torch.backends.cudnn.allow_tf32 = False for full float32 precision.
"""
from __future__ import annotations

import difflib
from typing import Any

import numpy as np
import torch

from gradscope.errors import GradscopeError, ShapeError, UnknownLayerError
from gradscope.interface import check_input, resolve_layer, upstream_gradient
from gradscope.torch.pixels import from_pixels, resize_images, to_pixels


_OOM = getattr(torch, "OutOfMemoryError", getattr(torch.cuda, "OutOfMemoryError", ()))
_LUMA = torch.tensor([0.299, 0.587, 0.114])  # ITU-R BT.601, sums to 1


class _Stop(Exception):
    """Raised by the capture hook to end a forward pass right after the chosen layer."""

    def __init__(self, output):
        super().__init__("forward stopped after the captured layer")
        self.output = output


class TorchModel:
    """A torch.nn.Module classifier as an ImageModel.

    Args:
        module: the classifier; maps (N, C, H, W) float32 to logits (or to a tuple/dict
            holding them, see `output`).
        mean, std: per-channel normalization (length C) applied to pixels in pixel_range.
        input_size: side of the square input the model expects.
        class_names, wnids: one per class (defaults: "0", "1", ...; wnids default to names).
        output: how to get the logits (N, num_classes) from the module's output when it
            is not a tensor: a dict key, a tuple index, or a callable output -> tensor.
            By default a tensor is used as is, and a mapping with a "logits" key gives it.
        device: "cpu", "cuda", a torch.device, or None for CUDA when available. The
            module is moved there.
        pixel_range: (lo, hi) pixel scale that mean/std refer to (see the module docstring).
        layers: names of the submodules to expose as layer_names, input to output; by
            default every submodule (leaves and containers) that runs in a forward pass,
            in the order its output is completed.
    """

    def __init__(self, module, *, mean, std, input_size: int, class_names=None, wnids=None,
                 output=None, device=None, pixel_range=(0, 255), layers=None):
        if not isinstance(module, torch.nn.Module):
            raise GradscopeError(f"TorchModel needs a torch.nn.Module, got {type(module).__name__}")
        mean, std, self.pixel_range = _check_normalization(mean, std, pixel_range)
        self.in_channels = int(mean.size)  # channels the module itself takes (1 or 3)
        self.mean, self.std = np.broadcast_to(mean, (3,)).copy(), np.broadcast_to(std, (3,)).copy()
        self.input_size = int(input_size)
        if self.input_size < 1:
            raise GradscopeError(f"input_size must be a positive integer, got {input_size!r}")
        self.output = output
        self.device = torch.device(device if device is not None else
                                   ("cuda" if torch.cuda.is_available() else "cpu"))
        self.module = module.to(self.device).eval()
        self._dtype = _module_dtype(module)
        self._submodules = dict(module.named_modules())
        order, num_classes = self._trace()
        self.layer_names = self._pick_layers(layers, order)
        self.num_classes = num_classes
        self.class_names = _class_list(class_names, num_classes, "class_names")
        self.wnids = _class_list(wnids, num_classes, "wnids") if wnids is not None else list(self.class_names)

    def __repr__(self):
        return (f"TorchModel({type(self.module).__name__}, classes={self.num_classes}, "
                f"input={self.in_channels}x{self.input_size}x{self.input_size}, device={self.device})")

    # ---- pixels <-> model input -------------------------------------------------

    def preprocess(self, images) -> np.ndarray:
        """uint8 (N, H, W, 3) array or list of (H, W, 3) arrays -> float32
        (N, 3, S, S), resized to S = input_size."""
        pixels = resize_images(images, self.input_size)  # (N, S, S, 3) float32 in 0..255
        return from_pixels(pixels, self.mean, self.std, self.pixel_range)

    def deprocess(self, x: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) model input -> uint8 (N, H, W, 3), clipped to 0..255."""
        self._check_input(x)
        return to_pixels(x, self.mean, self.std, self.pixel_range)

    def pixel_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi), each (1, 3, 1, 1): the model-input values of pixels 0 and 255."""
        lo, hi = self.pixel_range
        shape = (1, 3, 1, 1)
        dtype = np.float64 if self._dtype == torch.float64 else np.float32  # a float64 twin: float64 bounds
        return (((lo - self.mean) / self.std).reshape(shape).astype(dtype),
                ((hi - self.mean) / self.std).reshape(shape).astype(dtype))

    # ---- the ImageModel computations ----------------------------------------------

    def scores(self, x: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) -> raw class scores (N, num_classes), eval mode."""
        self._check_input(x)
        with torch.no_grad():
            s = self._logits(self._run(self._tensor(x)))
        from gradscope.validate import check_finite_output

        return check_finite_output(self._numpy(s, x.dtype), self._label, "scores")

    @property
    def _label(self) -> str:
        """The model as error messages name it."""
        return f"model {type(self.module).__name__}"

    def scores_backward(self, x: np.ndarray, dscores_fn) -> tuple[np.ndarray, np.ndarray]:
        """(scores (N, C), dx (N, 3, H, W)): the gradient of sum(dscores * scores) w.r.t. x,
        where dscores = dscores_fn(scores as NumPy); one forward and one backward pass."""
        self._check_input(x)
        leaf = self._tensor(x).requires_grad_(True)
        with torch.enable_grad():
            s = self._logits(self._run(leaf))
            scores = self._numpy(s.detach(), x.dtype)
            dscores = upstream_gradient(scores, dscores_fn, self._label)
            (dx,) = torch.autograd.grad(s, leaf, grad_outputs=torch.as_tensor(dscores, dtype=s.dtype, device=s.device))
        return scores, self._numpy(dx, x.dtype)

    def forward_to(self, x: np.ndarray, layer) -> tuple[np.ndarray, Any]:
        """Run from the input up to and including `layer` (name or index into
        layer_names) and stop: (activations as NumPy, cache for backward_from)."""
        self._check_input(x)
        name = self.layer_names[resolve_layer(self, layer)]
        leaf = self._tensor(x).requires_grad_(True)
        with torch.enable_grad():
            act = self._run_to(leaf, name)
        return self._numpy(act.detach(), x.dtype), (leaf, act, x.dtype)

    def backward_from(self, dact: np.ndarray, cache: Any) -> np.ndarray:
        """Gradient w.r.t. forward_to's input, given the upstream gradient of its output.
        The cache can be used more than once."""
        leaf, act, dtype = cache
        if tuple(np.shape(dact)) != tuple(act.shape):
            raise ShapeError(f"upstream gradient has shape {tuple(np.shape(dact))}, "
                             f"but the layer output has shape {tuple(act.shape)}")
        if not act.requires_grad:  # the layer does not depend on the input
            return np.zeros(tuple(leaf.shape), dtype=dtype)
        g = torch.as_tensor(np.asarray(dact, dtype=np.float32), device=self.device).to(act.dtype)
        (dx,) = torch.autograd.grad(act, leaf, grad_outputs=g, retain_graph=True, allow_unused=True)
        return np.zeros(tuple(leaf.shape), dtype=dtype) if dx is None else self._numpy(dx, dtype)

    def layer_gradient(self, x: np.ndarray, layer, dscores_fn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(scores (N, C), act, dact): the output of `layer` (captured at its first call) and
        the gradient of sum(dscores * scores) w.r.t. it, dscores = dscores_fn(scores)."""
        self._check_input(x)
        name = self.layer_names[resolve_layer(self, layer)]
        seen = []

        def keep(_module, _inputs, out):
            if not seen:
                seen.append(out)

        handle = self._submodules[name].register_forward_hook(keep)
        try:
            with torch.enable_grad():
                s = self._logits(self._run(self._tensor(x).requires_grad_(True)))
        finally:
            handle.remove()
        if not seen or not isinstance(seen[0], torch.Tensor):
            raise GradscopeError(f"layer {name!r} did not output a tensor in the forward pass")
        act = seen[0]
        scores = self._numpy(s.detach(), x.dtype)
        dscores = upstream_gradient(scores, dscores_fn, self._label)
        g = torch.as_tensor(dscores, dtype=s.dtype, device=s.device)
        (dact,) = torch.autograd.grad(s, act, grad_outputs=g, allow_unused=True)
        dact = torch.zeros_like(act) if dact is None else dact
        return scores, self._numpy(act.detach(), x.dtype), self._numpy(dact, x.dtype)

    # ---- helpers ----------------------------------------------------------------

    def _check_input(self, x) -> None:
        check_input(x)

    def _tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x)).to(self.device, self._dtype)

    @staticmethod
    def _numpy(t: torch.Tensor, dtype) -> np.ndarray:
        return t.detach().cpu().numpy().astype(dtype, copy=False)

    def _run(self, x: torch.Tensor):
        """The module's raw output on RGB input x (N, 3, H, W). It gets a copy of x (so an
        in-place first operation is safe), or the luma of x for a 1-channel module."""
        if self.in_channels == 1:
            fed = torch.einsum("nchw,c->nhw", x, _LUMA.to(x.device, x.dtype))[:, None]  # (N, 1, H, W)
        else:
            fed = x.clone()
        try:
            return self.module(fed)
        except _Stop:
            raise
        except _OOM:
            raise
        except (RuntimeError, ValueError, IndexError) as e:
            raise ShapeError(f"the torch model failed on input of shape {tuple(x.shape)}: {e}") from e

    def _logits(self, out) -> torch.Tensor:
        """The (N, num_classes) logits picked from the module's output."""
        s = _pick_output(out, self.output)
        if s.ndim != 2:
            raise ShapeError(f"the model's logits must have shape (N, num_classes), got {tuple(s.shape)}"
                             " (pass output=... to pick them, or end the model with a flatten)")
        return s

    def _run_to(self, x: torch.Tensor, name: str) -> torch.Tensor:
        """Output of submodule `name` on input x, without running anything after it."""
        def capture(_module, _inputs, out):
            raise _Stop(out)

        handle = self._submodules[name].register_forward_hook(capture)
        try:
            self._run(x)
        except _Stop as stop:
            out = stop.output
        else:
            raise UnknownLayerError(f"layer {name!r} did not run in the forward pass")
        finally:
            handle.remove()
        if not isinstance(out, torch.Tensor):
            raise GradscopeError(f"layer {name!r} outputs a {type(out).__name__}, not a tensor; "
                                 "pick a submodule that outputs a tensor")
        return out

    def _trace(self) -> tuple[list, int]:
        """Run once on zeros: (submodule names in order of first completed output, num_classes)."""
        order, handles = [], []

        def record(name):
            def hook(_module, _inputs, _out):
                if name not in seen:
                    seen.add(name)
                    order.append(name)
            return hook

        seen = set()
        for name, m in self._submodules.items():
            if name:
                handles.append(m.register_forward_hook(record(name)))
        x = torch.zeros((1, 3, self.input_size, self.input_size), device=self.device, dtype=self._dtype)
        try:
            with torch.no_grad():
                s = self._logits(self._run(x))
        finally:
            for h in handles:
                h.remove()
        return order, int(s.shape[1])

    def _pick_layers(self, layers, order) -> list:
        if layers is None:
            return order
        names = [str(n) for n in layers]
        for n in names:
            if n not in self._submodules or not n:
                close = difflib.get_close_matches(n, [m for m in self._submodules if m], n=5, cutoff=0.5)
                hint = f"; close matches: {', '.join(close)}" if close else ""
                raise UnknownLayerError(f"the torch module has no submodule {n!r}{hint}")
            if n not in order:
                raise UnknownLayerError(f"submodule {n!r} does not run in the model's forward pass")
        return names


def _module_dtype(module) -> torch.dtype:
    """The floating dtype of the module's parameters (float32 when it has none)."""
    for t in list(module.parameters()) + list(module.buffers()):
        if t.is_floating_point():
            return t.dtype
    return torch.float32


def _check_normalization(mean, std, pixel_range):
    mean = np.asarray(mean, dtype=np.float64).reshape(-1)
    std = np.asarray(std, dtype=np.float64).reshape(-1)
    if mean.size == 0 or mean.shape != std.shape:
        raise GradscopeError(f"mean and std need one value per input channel, got {mean.size} and {std.size}")
    if mean.size not in (1, 3):
        raise GradscopeError(f"only 1-channel (gray) and 3-channel (RGB) models are supported, got {mean.size}")
    if not np.all(std > 0):
        raise GradscopeError(f"std must be positive, got {std.tolist()}")
    lo, hi = (float(v) for v in pixel_range)
    if not hi > lo:
        raise GradscopeError(f"pixel_range must be (lo, hi) with hi > lo, got {pixel_range!r}")
    if hi > 2 and np.all((mean > 0) & (mean < 1)) and np.all(std < 1):
        raise GradscopeError(
            f"mean {mean.tolist()} and std {std.tolist()} look like they refer to pixels in 0..1, "
            f"but pixel_range is {pixel_range!r}; pass pixel_range=(0, 1)")
    return mean, std, (lo, hi)


def _class_list(values, n: int, what: str) -> list:
    if values is None:
        return [str(i) for i in range(n)]
    values = [str(v) for v in values]
    if len(values) != n:
        raise GradscopeError(f"{what} has {len(values)} entries but the model outputs {n} class scores")
    return values


def _pick_output(out, how) -> torch.Tensor:
    """The logits tensor from a module output: as is, out[how], or how(out)."""
    if how is None:
        if isinstance(out, torch.Tensor):
            return out
        if hasattr(out, "keys") and "logits" in out.keys():
            return out["logits"]
        kind = (f"a mapping with keys {list(out.keys())}" if hasattr(out, "keys")
                else f"a {type(out).__name__} of length {len(out)}" if isinstance(out, (tuple, list))
                else f"a {type(out).__name__}")
        raise GradscopeError(f"the model returns {kind}; pass output=KEY, INDEX or a callable to pick the logits")
    if callable(how):
        picked = how(out)
    else:
        try:
            picked = out[how]
        except (KeyError, IndexError, TypeError):
            raise GradscopeError(f"output={how!r} does not select anything from the model's "
                                 f"{type(out).__name__} output") from None
    if not isinstance(picked, torch.Tensor):
        raise GradscopeError(f"output={how!r} picked a {type(picked).__name__}, not a tensor of logits")
    return picked
