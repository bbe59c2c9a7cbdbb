"""Fill gradscope's feature cache for flickr8k:DIR and coco:DIR with EfficientNet-Lite0's pooled
features computed by its torch twin (gradscope.torch.efficientnet_ref), about 30x faster on a
CPU than the NumPy engine that `gradscope caption train` would otherwise run.

    python scripts/torch_features.py flickr8k:../shared/data/flickr8k [coco:../shared/data/coco]
    python scripts/torch_features.py --head flickr8k:../shared/data/flickr8k

--head fills the attention captioner's cache instead: the 7x7x1280 head map as 49 regions
(float16, as `caption train --cell attention` keeps them).

The cache file is the one the NumPy extractor uses (keyed by its fingerprint), so training then
reads these rows as its own. Before writing anything the script checks, on the first 32 images,
that the twin's features equal the NumPy engine's to 1e-4 (absolute) and stops otherwise; the
NumPy engine alone (no cache) gives the same features to that tolerance, only slower.
"""
from __future__ import annotations

import os
import sys

import numpy as np
import torch

from gradscope.captioning.features import default_feature_fn
from gradscope.captioning.sources import feature_cache_dir, parse_source
from gradscope.cnn.efficientnet import _resize_crop
from gradscope.data.features import extract_features
from gradscope.errors import DataError
from gradscope.imageio import load_image
from gradscope.torch.efficientnet_ref import load_reference

TOLERANCE = 1e-4
torch.set_num_threads(1)  # the same sums in the same order on every machine: a reproducible cache


def torch_features(model, head=False):
    def fn(images):  # (B, 224, 224, 3) uint8 -> (B, 1280), or (B, 49 * 1280) regions for head
        x = torch.from_numpy((images.astype(np.float32) - 127.0) / 128.0).permute(0, 3, 1, 2).contiguous()
        with torch.no_grad():
            if not head:
                return model.features(x).numpy()
            h = model.head_map(x)  # (B, 1280, 7, 7)
            return h.permute(0, 2, 3, 1).reshape(len(x), -1).numpy()  # region l = row-major grid cell
    return fn


def image_paths(spec):
    kind, root = parse_source(spec)
    if kind == "flickr8k":
        from gradscope.data.flickr8k import SPLIT_FILES, _image_dir, _text_path, read_split_names

        folder = _image_dir(root)
        names = [n for s, f in SPLIT_FILES.items() if _text_path(root, f) for n in read_split_names(root, s)]
        return "flickr8k", [os.path.join(folder, n) for n in dict.fromkeys(names)]
    from gradscope.data.coco import KARPATHY_FILE, coco_image_lists

    splits = ("train", "val", "test") if os.path.isfile(os.path.join(root, KARPATHY_FILE)) else ("train", "val")
    lists = {}
    for split in splits:
        try:
            lists.update(coco_image_lists(root, [split]))
        except DataError:  # a split without annotations
            continue
    return "coco", [p for images in lists.values() for p in images.paths]


def main(specs, head=False):
    numpy_fn = default_feature_fn(spatial=head)
    twin = torch_features(load_reference(), head)
    for spec in specs:
        prefix, paths = image_paths(spec)
        sample = np.stack([_resize_crop(load_image(p)) for p in paths[:8 if head else 32]])
        diff = float(np.abs(twin(sample) - numpy_fn.flat(sample)).max())  # (on 8 photos for the head map)
        print(f"{spec}: torch twin vs NumPy features on {len(sample)} images: max abs difference {diff:.2e}")
        if diff > TOLERANCE:
            raise SystemExit(f"the torch twin differs from the NumPy engine by {diff:.2e} > {TOLERANCE}")
        cache = os.path.join(feature_cache_dir(), f"{prefix}-{numpy_fn.layer}-{numpy_fn.fingerprint()}.h5")
        twin.cache_key = (numpy_fn.flat if head else numpy_fn).cache_key  # rows the NumPy extractor then reads
        extract_features(paths, twin, batch_size=32, cache_path=cache, image_size=_resize_crop,
                         dtype=np.float16 if head else np.float32)
        print(f"{spec}: {len(paths)} images in {cache}")


if __name__ == "__main__":
    head = "--head" in sys.argv[1:]
    main([a for a in sys.argv[1:] if a != "--head"] or ["flickr8k:../shared/data/flickr8k"], head)
