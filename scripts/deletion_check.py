"""Word-level caption saliency on Flickr8k dev photos: for every map the captioner has (gradient;
attention for an attention captioner), the fraction of words whose top-10%-pixel deletion lowers
the word's log-prob more than a random 10% deletion (seeded), over all words and over content
words (not articles, prepositions, pronouns, auxiliaries or conjunctions).

    python scripts/deletion_check.py FLICKR8K_DIR [--images 100] [--model PATH] [--engine torch|numpy]
                                     [--out DIR]

The captioner is the shipped default one (or --model); its CNN is EfficientNet-Lite0. --engine
numpy runs the CNN's forward and backward in gradscope's NumPy engine; --engine torch runs the
same network's torch twin (gradscope.torch.efficientnet_ref, equal to the NumPy engine to ~1e-6
on pooled features, 3.4e-5 on the head map), ~30x faster on a CPU. The captioner's backward is
gradscope's in both.
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np

from gradscope.captioning import load_captioner, load_pretrained
from gradscope.captioning.explain import explain_caption, is_content_word
from gradscope.captioning.features import CNNFeatures, feature_fn_for
from gradscope.data.flickr8k import _image_dir, read_split_names
from gradscope.imageio import load_image


class TorchLite0:
    """EfficientNet-Lite0's torch twin behind the model interface explain_caption uses."""

    def __init__(self):
        import torch

        from gradscope.torch.efficientnet_ref import load_reference

        torch.set_num_threads(1)
        self.torch, self.net, self.params = torch, load_reference(), {}
        self._numpy = feature_fn_for(load_pretrained()).model  # preprocessing and deprocessing

    def preprocess(self, images):
        return self._numpy.preprocess(images)

    def deprocess(self, x):
        return self._numpy.deprocess(x)

    def forward_to(self, x, layer):
        xt = self.torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).requires_grad_(True)
        feats = self.net.head_map(xt) if layer == "head" else self.net.features(xt)
        return feats.detach().numpy(), (xt, feats)

    def backward_from(self, dact, cache):
        xt, feats = cache
        feats.backward(self.torch.from_numpy(np.ascontiguousarray(dact, dtype=np.float32)))
        return xt.grad.numpy()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("root")
    p.add_argument("--images", type=int, default=100)
    p.add_argument("--engine", choices=("torch", "numpy"), default="torch")
    p.add_argument("--out", default=None, help="save each image's figures and JSON here")
    p.add_argument("--model", default=None, help="captioner .npz (default: the shipped default captioner)")
    p.add_argument("--start", type=int, default=0, help="first dev image (to split the work)")
    args = p.parse_args()
    captioner = load_pretrained() if args.model is None else load_captioner(args.model)
    extractor = feature_fn_for(captioner)
    if args.engine == "torch":
        extractor = CNNFeatures(TorchLite0(), layer=extractor.layer, dim=extractor.dim, name=extractor.name,
                                regions=extractor.regions)
    names = read_split_names(args.root, "val")[args.start:args.start + args.images]
    counts = {}  # (map, 'all' | 'content') -> [beats, words]
    rows = []
    for i, name in enumerate(names):
        result = explain_caption(captioner, extractor, load_image(os.path.join(_image_dir(args.root), name)),
                                 name=name, seed=args.start + i)
        content = np.array([is_content_word(w) for w in result.words], dtype=bool)
        drops = {result.map_name: (result.drop_top, result.drop_random), **result.other_drops}
        for map_name, (top, rand) in drops.items():
            for kind, keep in (("all", np.ones_like(content)), ("content", content)):
                c = counts.setdefault(f"{map_name}/{kind}", [0, 0])
                c[0] += int((top > rand)[keep].sum())
                c[1] += int(keep.sum())
        rows.append(result.save(args.out, os.path.splitext(name)[0]) if args.out else result.to_dict())
        so_far = ", ".join(f"{k} {b}/{n}" for k, (b, n) in counts.items())
        print(f"{i + 1}/{len(names)} {name}: \"{result.caption}\" {so_far}", flush=True)
    print(json.dumps({"images": len(names), "start": args.start, "engine": args.engine, "model": args.model,
                      "default_map": result.map_name,
                      "counts": {k: {"top_beats_random": b, "words": n, "fraction": b / max(n, 1)}
                                 for k, (b, n) in counts.items()}}))
    if args.out:
        with open(os.path.join(args.out, "deletion_check.json"), "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
