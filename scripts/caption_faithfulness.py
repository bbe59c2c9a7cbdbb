"""Faithfulness of the per-word caption maps on Flickr8k dev photos: for every map the captioner
has (gradscope.captioning.explain.MAPS), the fraction of words whose top-10%-pixel deletion lowers
the word's log-prob more than a random 10% deletion (seeded scattered pixels, the seed = the
photo's index in the dev list), over all words and over content words (not articles,
prepositions, pronouns, auxiliaries or conjunctions). Prints a summary table.

    python scripts/caption_faithfulness.py FLICKR8K_DIR [--images 50] [--start 0] [--model PATH]
        [--engine torch|numpy] [--log FILE.jsonl] [--all-maps | --maps A,B] [--out DIR]

The photos are the first --images of Flickr_8k.devImages.txt from --start, captioned as
`gradscope caption explain` does (beam 3). The captioner is the shipped default one (or --model);
its CNN is EfficientNet-Lite0. --engine numpy runs the CNN's forward and backward in gradscope's
NumPy engine; --engine torch (the default) runs the same network's torch twin
(gradscope.torch.efficientnet_ref, equal to the NumPy engine to ~1e-6 on pooled features,
3.4e-5 on the head map), ~30x faster on a CPU. The captioner's backward is gradscope's in both.
Resumable: each photo's result is one line of --log (default caption_faithfulness.jsonl in the
working directory); a rerun skips the photos already there and the table counts every logged
photo of the range. About 15 s a photo at 1 thread (torch engine) on a quiet machine; --all-maps
adds integrated gradients (8 CNN forward/backward passes) and occlusion (49 forwards), several
times that.
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np

from gradscope.captioning import load_named, load_pretrained
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


def photo_record(result) -> dict:
    """One photo's line of the log: its words and, per map, the top and random drops."""
    drops = {result.map_name: (result.drop_top, result.drop_random), **result.other_drops}
    return {"image": result.name, "words": result.words,
            "maps": {k: {"top": [float(v) for v in top], "random": [float(v) for v in rand]}
                     for k, (top, rand) in drops.items()}}


def read_log(path) -> dict:
    """{image name: record} of the complete lines of a log (a line cut by a kill is ignored)."""
    done = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                done[rec["image"]] = rec
    return done


def tally(records) -> dict:
    """{map: {'all' | 'content': [top beats random, words]}} over the records."""
    counts = {}
    for rec in records:
        content = np.array([is_content_word(w) for w in rec["words"]], dtype=bool)
        for name, d in rec["maps"].items():
            beats = np.asarray(d["top"]) > np.asarray(d["random"])
            c = counts.setdefault(name, {"all": [0, 0], "content": [0, 0]})
            for kind, keep in (("all", np.ones_like(content)), ("content", content)):
                c[kind][0] += int(beats[keep].sum())
                c[kind][1] += int(keep.sum())
    return counts


def table(counts, photos) -> str:
    lines = [f"{photos} photos; top-10% deletion lowered the word's log-prob more than random-10% deletion for:",
             f"{'map':14s} {'content words':>22s} {'all words':>22s}"]
    for name, c in sorted(counts.items(), key=lambda kv: -kv[1]["content"][0] / max(kv[1]["content"][1], 1)):
        cells = [f"{100 * b / max(n, 1):5.1f}% ({b:4d} of {n:4d})" for b, n in (c["content"], c["all"])]
        lines.append(f"{name:14s} {cells[0]:>22s} {cells[1]:>22s}")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("root")
    p.add_argument("--images", type=int, default=50)
    p.add_argument("--start", type=int, default=0, help="first dev image (to split the work)")
    p.add_argument("--engine", choices=("torch", "numpy"), default="torch")
    p.add_argument("--model", default=None, help="captioner .npz (default: the shipped default captioner)")
    p.add_argument("--log", default="caption_faithfulness.jsonl", help="per-photo results (resumable)")
    p.add_argument("--all-maps", action="store_true",
                   help="also the maps that need CNN passes of their own (integrated gradients, occlusion)")
    p.add_argument("--maps", default=None, help="comma-separated other maps to score beside the default "
                   "(instead of the free ones; --all-maps: every map)")
    p.add_argument("--out", default=None, help="also save each photo's figures and JSON here")
    args = p.parse_args()
    names = read_split_names(args.root, "val")[args.start:args.start + args.images]
    done = read_log(args.log)
    todo = [(args.start + i, n) for i, n in enumerate(names) if n not in done]
    if todo:
        captioner = load_pretrained() if args.model is None else load_named(args.model)
        extractor = feature_fn_for(captioner)
        if args.engine == "torch":
            extractor = CNNFeatures(TorchLite0(), layer=extractor.layer, dim=extractor.dim, name=extractor.name,
                                    regions=extractor.regions)
    for k, (index, name) in enumerate(todo):
        result = explain_caption(captioner, extractor, load_image(os.path.join(_image_dir(args.root), name)),
                                 name=name, seed=index, maps="all" if args.all_maps else
                                 args.maps.split(",") if args.maps else None)
        if args.out:
            result.save(args.out, os.path.splitext(name)[0])
        done[name] = photo_record(result)
        with open(args.log, "a") as f:
            f.write(json.dumps(done[name]) + "\n")
        counts = tally([done[n] for n in names if n in done])
        so_far = ", ".join(f"{m} {c['content'][0]}/{c['content'][1]}" for m, c in counts.items())
        print(f"{k + 1}/{len(todo)} #{index} {name}: \"{result.caption}\"; content words so far: {so_far}", flush=True)
    records = [done[n] for n in names if n in done]
    print(table(tally(records), len(records)))


if __name__ == "__main__":
    main()
