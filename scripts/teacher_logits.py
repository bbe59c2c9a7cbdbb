"""EfficientNet-Lite0's logits for the images of a TinyImageNet split, restricted to the
dataset's classes (its wnids are ImageNet-1k classes), for distilling the TinyImageNet CNN.

    python scripts/teacher_logits.py DATA [--split train] [--size 160] [--limit N] [--measure]

The 64-pixel images are upsampled (bicubic) to size x size, fed as (p - 127) / 128 to the torch
twin of the network (gradscope.torch.efficientnet_ref), which is about 30x faster on a CPU than
the NumPy engine. Before anything is written the script checks, on the first 2 images, that the
twin's logits equal the NumPy engine's to 1e-4 of the largest logit, and stops otherwise.

Images are taken in the order: 1st of every class, 2nd of every class, ... so that --count N
gives a class-balanced subset (the trainer uses the label loss alone on the rest). Writes
gradscope/cnn/distill.py's teacher file to the cache (the path, keyed by the image list and the
size, is the last line printed; a file already there is used as it is); a killed run resumes from its partial file (saved every
1,000 images), and a larger --count continues it. --measure prints top-1/top-5 instead.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from gradscope.cnn.distill import TEACHER_FORMAT, class_balanced_order, relative_files, teacher_cache_path
from gradscope.cnn.imagenet import imagenet_classes
from gradscope.data.tinyimagenet import TinyImageNet, load_rgb
from gradscope.fileio import json_array, load_npz, save_npz
from gradscope.torch.efficientnet_ref import load_reference

TEACHER, TOLERANCE, CHUNK = "efficientnet_lite0", 1e-4, 1000


def model_input(X, size):
    """(N, 64, 64, 3) uint8 -> (N, 3, size, size) float32 (p - 127) / 128, bicubic upsampling."""
    x = torch.from_numpy(X).permute(0, 3, 1, 2).float()
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 255)
    return (x - 127.0) / 128.0


def twin_logits(net, X, size, batch=50):
    out = []
    with torch.inference_mode():
        for i in range(0, len(X), batch):
            out.append(net(model_input(X[i:i + batch], size).contiguous(memory_format=torch.channels_last)))
    return torch.cat(out).numpy()


def check_twin(net, X, size, columns):
    from gradscope.cnn.efficientnet import load_efficientnet_lite0

    engine = load_efficientnet_lite0()
    ref = engine.scores(model_input(X[:2], size).numpy())[:, columns]
    twin = twin_logits(net, X[:2], size)[:, columns]
    diff = float(np.abs(ref - twin).max() / np.abs(ref).max())
    print(f"torch twin vs NumPy engine logits on 2 images at {size} px: largest difference / largest logit {diff:.1e}")
    if diff > TOLERANCE:
        raise SystemExit(f"the torch twin differs from the NumPy engine by {diff:.1e} > {TOLERANCE}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data")
    ap.add_argument("--split", default="train")
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--count", type=int, default=None,
                    help="stop after this many images (in the order: 1st of every class, 2nd of every class, ...) "
                         "and write the teacher file for them (default all)")
    ap.add_argument("--measure", action="store_true", help="print accuracy of the restricted logits, write nothing")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    ds = TinyImageNet(args.data)
    items = ds.items(args.split)[:args.limit]
    y = np.array([label for _, label, _ in items])
    decode = lambda idx: np.stack([load_rgb(items[i][0]) for i in idx])  # noqa: E731 - (n, 64, 64, 3) uint8
    wnids = imagenet_classes()[0]
    columns = [wnids.index(w) for w in ds.wnids]  # ImageNet output unit of each dataset class
    net = load_reference().to(memory_format=torch.channels_last)
    if args.measure:
        t0 = time.time()
        s = twin_logits(net, decode(range(len(items))), args.size)[:, columns]
        top5 = np.argsort(-s, 1)[:, :5]
        print(f"{args.split}: {len(s)} images at {args.size} px: top-1 {np.mean(top5[:, 0] == y):.4f} "
              f"top-5 {np.mean((top5 == y[:, None]).any(1)):.4f}  {len(s) / (time.time() - t0):.1f} images/s")
        return
    check_twin(net, decode([0, 1]), args.size, columns)
    order = class_balanced_order(y)
    rel = relative_files([path for path, _, _ in items], ds.root)
    rel_order = [rel[i] for i in order]
    count = len(rel) if args.count is None else min(args.count, len(rel))
    finished = teacher_cache_path(rel_order[:count], TEACHER, args.size, args.split)
    if os.path.isfile(finished):  # computed before: the cache key covers the image list and the size
        print(f"teacher logits for {count} {args.split} images already in the cache")
        print(finished)
        return
    partial = teacher_cache_path(rel_order, TEACHER, args.size, args.split)[:-4] + ".partial.npz"
    logits = np.zeros((len(rel), len(columns)), np.float32)  # in `order`
    done = 0
    if os.path.isfile(partial):
        saved = load_npz(partial)
        done = int(saved["done"])
        logits[:done] = saved["logits"][:done]
        print(f"resuming at image {done}")
    t0, start = time.time(), done
    for a in range(done, count, CHUNK):
        b = min(a + CHUNK, count)
        logits[a:b] = twin_logits(net, decode(order[a:b]), args.size)[:, columns]
        save_npz(partial, {"logits": logits[:b], "done": np.array(b)}, compressed=False)
        done = b
        rate = (b - start) / (time.time() - t0)
        print(f"{b}/{count} images, {rate:.1f} images/s, top-1 so far "
              f"{np.mean(logits[:b].argmax(1) == y[order[:b]]):.4f}", flush=True)
    count = min(count, done)
    path = teacher_cache_path(rel_order[:count], TEACHER, args.size, args.split)
    meta = {"format": TEACHER_FORMAT, "teacher": TEACHER, "size": args.size, "split": args.split,
            "resize": "bicubic upsampling of the whole image", "wnids": list(ds.wnids)}
    save_npz(path, {"logits": logits[:count].astype(np.float16), "files": np.array(rel_order[:count]),
                    "__meta__": json_array(meta)})
    if count == len(rel):
        os.remove(partial)
    top1 = np.mean(logits[:count].argmax(1) == y[order[:count]])
    print(f"top-1 of the teacher on {count} {args.split} images: {top1:.4f}")
    print(path)


if __name__ == "__main__":
    sys.exit(main())
