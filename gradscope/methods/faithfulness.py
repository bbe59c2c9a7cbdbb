"""Faithfulness of every attribution method on a folder of labelled images, one JSONL
record per (image, method), so a validation set is an array job: run shard K of N on
each machine (`shard=(k, n)`), then `merge_records` the shard files into one table.

Per image and method: RISE deletion and insertion AUC (gradscope.methods.evaluation),
the pointing game where the image has a box, and the model-randomisation sanity check
(Spearman correlation of the map with the map on a copy of the model whose top layers
are re-initialised; lower means the method reads the model). Seeded random maps are
scored the same way as the method "random".

Data: a TinyImageNet directory (val split, with boxes) or an ImageNet-style folder
(`DIR/<wnid>/*.JPEG`, torchvision ImageFolder layout; classes by the model's wnids).
Each record is written with the whole shard file replaced atomically, so a killed run
resumes where it stopped (records already there are skipped).
"""
from __future__ import annotations

import copy
import json
import os
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from gradscope.errors import DataError, GradscopeError
from gradscope.fileio import atomic_path
from gradscope.methods._inputs import check_not_constant, report
from gradscope.methods.evaluation import deletion_insertion_auc, rank_correlation

__all__ = ["MapMethod", "map_methods", "random_maps", "folder_items", "shard_items", "randomized_copy",
           "evaluate_images", "read_records", "merge_records", "format_table"]

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")


@dataclass(frozen=True)
class MapMethod:
    """An attribution method as the benchmark calls it: maps(model, x, classes, seed) -> (N, H, W)."""
    name: str
    maps: Callable


def random_maps(model, x, classes, seed=0) -> np.ndarray:
    """Seeded uniform random maps (N, H, W): the baseline every method must beat."""
    return np.random.default_rng(seed).random((len(x),) + x.shape[2:])


def map_methods(names, settings=None) -> list:
    """MapMethods for names among vanilla, smoothgrad, ig, gradcam, occlusion, perturbation,
    random; settings: {name: keyword arguments of that method}."""
    from gradscope import methods as m

    table = {"vanilla": lambda model, x, c, seed, **kw: m.saliency(model, x, c, **kw).maps,
             "smoothgrad": lambda model, x, c, seed, **kw: m.smoothgrad(model, x, c, seed=seed, **kw).maps,
             "ig": lambda model, x, c, seed, **kw: m.integrated_gradients(model, x, c, **kw).maps,
             "gradcam": lambda model, x, c, seed, **kw: m.gradcam(model, x, c, **kw).maps,
             "occlusion": lambda model, x, c, seed, **kw: m.occlusion(model, x, c, **kw).maps,
             "perturbation": lambda model, x, c, seed, **kw: m.extremal_perturbation(model, x, c, seed=seed,
                                                                                     **kw).maps,
             "random": lambda model, x, c, seed, **kw: random_maps(model, x, c, seed)}
    out = []
    for name in names:
        if name not in table:
            raise GradscopeError(f"unknown method {name!r}: expected one of {', '.join(table)}")
        kw = dict((settings or {}).get(name, {}))
        out.append(MapMethod(name, lambda model, x, c, seed=0, _f=table[name], _kw=kw: _f(model, x, c, seed, **_kw)))
    return out


# ---- data ---------------------------------------------------------------------------------

def folder_items(model, data) -> list:
    """(path, class index, box or None) of the labelled images of `data` whose class the
    model knows: a TinyImageNet directory (val split) or an ImageFolder (DIR/<wnid>/*)."""
    data = os.fspath(data)
    if os.path.isfile(os.path.join(data, "wnids.txt")):
        from gradscope.data.tinyimagenet import TinyImageNet

        ds = TinyImageNet(data)
        raw = [(p, ds.wnids[y], b) for p, y, b in ds.items("val")]
    elif os.path.isdir(data):
        raw = [(os.path.join(data, w, f), w, None) for w in sorted(os.listdir(data))
               if os.path.isdir(os.path.join(data, w))
               for f in sorted(os.listdir(os.path.join(data, w))) if f.lower().endswith(IMAGE_EXTENSIONS)]
    else:
        raise DataError(f"no such data directory: {data!r}")
    known = {w: i for i, w in enumerate(model.wnids)}
    items = [(p, known[w], b) for p, w, b in raw if w in known]
    if not items:
        raise DataError(f"no images in {data!r} belong to classes the model knows (TinyImageNet layout or "
                        "DIR/<wnid>/*.JPEG)")
    return items


def shard_items(items, n: int | None, shard=(1, 1), seed: int = 0) -> list:
    """The first n items in a seeded random order (all when n is None), then every N-th of
    them starting at K - 1 for shard (K, N)."""
    k, count = shard
    if not 1 <= k <= count:
        raise GradscopeError(f"shard must be K/N with 1 <= K <= N, got {k}/{count}")
    order = np.random.default_rng(seed).permutation(len(items))[:n]
    return [items[i] for i in order[k - 1::count]]


def _load(model, item):
    """(model input (1, 3, S, S) from model.preprocess, box scaled to the input grid or None)."""
    from gradscope.imageio import load_image

    image = load_image(item[0])
    x = model.preprocess(image[None])
    if item[2] is None:
        return x, None
    scale = model.input_size / image.shape[1]
    return x, np.round(np.asarray(item[2]) * scale).astype(int)


# ---- the model-randomisation copy ------------------------------------------------------------

def randomized_copy(model, layers: int = 3, seed: int = 0):
    """A copy of the model whose top `layers` weight layers (counted from the output; those
    with a weight matrix or kernel) get new Gaussian weights of the same mean and std as the
    trained ones, and their biases likewise (Adebayo et al. 2018's cascading randomisation at
    depth `layers`). Works on gradscope CNNs (params dict) and torch adapters (module)."""
    rng = np.random.default_rng(seed)
    if hasattr(model, "params") and hasattr(model, "steps"):
        return _randomized_cnn(model, layers, rng)
    if hasattr(model, "module"):
        return _randomized_torch(model, layers, rng)
    raise GradscopeError(f"randomized_copy supports gradscope CNNs and TorchModels, not {type(model).__name__}")


def _redraw(a, rng):
    return (rng.standard_normal(a.shape) * a.std() + a.mean()).astype(a.dtype)


def _randomized_cnn(model, layers, rng):
    owners = [n for n in reversed(model.layer_names) if f"{n}.W" in model.params][:layers]
    out = copy.copy(model)
    out.params = dict(model.params)
    for name in owners:
        for key in (f"{name}.W", f"{name}.b"):
            if key in out.params:
                out.params[key] = _redraw(model.params[key], rng)
    return out


def _randomized_torch(model, layers, rng):
    import torch

    out = copy.copy(model)
    out.module = copy.deepcopy(model.module)
    out._submodules = dict(out.module.named_modules())
    owners = [m for n, m in reversed(list(out.module.named_modules()))
              if getattr(m, "weight", None) is not None and m.weight.ndim >= 2][:layers]
    with torch.no_grad():
        for m in owners:
            for p in (m.weight, getattr(m, "bias", None)):
                if p is not None:
                    p.copy_(torch.from_numpy(_redraw(p.detach().cpu().numpy(), rng)))
    return out


# ---- the per-image run ------------------------------------------------------------------------

def read_records(path, missing_ok: bool = True) -> list:
    """The records of a JSONL results file (none when it does not exist and missing_ok).
    A line that is not a JSON record with "image" and "method" is one DataError naming it."""
    if not os.path.exists(path):
        if missing_ok:
            return []
        raise DataError(f"results file not found: {str(path)!r}")
    records = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                r = None
            if not (isinstance(r, dict) and "image" in r and "method" in r):
                raise DataError(f"{str(path)!r} line {n} is not a result record (a JSON object with \"image\" and "
                                "\"method\", as `saliency evaluate --results` writes)")
            records.append(r)
    return records


def _write_records(path, records) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)


def _score(model, x, c, box, maps, sanity_maps, step, seed):
    """One record's numbers for maps (1, H, W) of class c (box None: no pointing game)."""
    di = deletion_insertion_auc(model, x, c, maps, step=step, seed=seed, random_baseline=False)
    rec = {"deletion_auc": float(di.deletion_auc[0]), "insertion_auc": float(di.insertion_auc[0])}
    if box is not None:
        h, w = maps.shape[1:]
        k = int(np.argmax(maps[0]))
        rec["pointing_hit"] = bool(box[0] <= k % w <= box[2] and box[1] <= k // w <= box[3])
    if sanity_maps is not None:
        rho = float(rank_correlation(maps, sanity_maps)[0])
        # a map that turned constant (Grad-CAM's ReLU can zero it) keeps no ranking: correlation 0
        rec["sanity_spearman"] = 0.0 if np.isnan(rho) and np.ptp(maps) > 0 else rho
    return rec


def evaluate_images(model, items, methods, path, sanity_model=None, step=None, seed: int = 0, callback=None) -> list:
    """Score every method on every item, one record per (image, method) appended to the
    JSONL file `path` (resumes: pairs already there are skipped). Each image's map explains
    the model's predicted class (as RISE does); the pointing game counts the images whose
    prediction is the label and that have a box. Returns all records of the file.

    Args:
        items: (path, class index, box or None) of each image (folder_items, shard_items).
        methods: MapMethods (map_methods); 'random' gives the baseline.
        sanity_model: the model with re-initialised top layers (randomized_copy), or None.
        step: deletion/insertion pixels per step (default 8 H).
        callback: callback(records_done, info) with 'total', 'image' and 'method'.
    """
    from gradscope.methods.saliency import _names  # one class-name lookup for every method

    records = read_records(path)
    done = {(r["image"], r["method"]) for r in records}
    total, count = len(items) * len(methods), 0
    for item in items:
        x, box = _load(model, item)
        check_not_constant(x, names=[item[0]])  # a blank image stops the run naming its file
        c = np.argmax(model.scores(x), axis=1)
        box = box if c[0] == item[1] else None
        for method in methods:
            count += 1
            if (item[0], method.name) in done:
                continue
            t0 = time.time()
            maps = np.asarray(method.maps(model, x, c, seed=seed), dtype=np.float64)
            sanity = None if sanity_model is None else np.asarray(method.maps(sanity_model, x, c, seed=seed + 1))
            rec = {"image": item[0], "class": int(c[0]), "class_name": _names(model, c)[0], "label": int(item[1]),
                   "method": method.name,
                   **_score(model, x, c, box, maps, sanity, step, seed), "seconds": round(time.time() - t0, 2)}
            records.append(rec)
            _write_records(path, records)
            report(callback, count, total=total, image=item[0], method=method.name)
    if not os.path.exists(path):  # a shard with nothing to do still leaves its (empty) file
        _write_records(path, records)
    return records


# ---- the table --------------------------------------------------------------------------------

COLUMNS = (("deletion_auc", "deletion (lower)"), ("insertion_auc", "insertion (higher)"),
           ("gap", "insertion - deletion"), ("pointing_hit", "pointing game"),
           ("sanity_spearman", "randomisation Spearman (lower)"))


def merge_records(paths, common: bool = True) -> dict:
    """{method: {n, deletion_auc, insertion_auc, gap, pointing_hit, sanity_spearman}} means over
    the records of the JSONL files (a duplicate (image, method) counts once); with common,
    only images that every method scored enter the means, so the rows compare the same
    images (else each method's own images)."""
    seen = {}
    for p in paths:
        for r in read_records(p, missing_ok=False):
            seen[(r["image"], r["method"])] = r
    methods = list(dict.fromkeys(m for _, m in seen))
    images = {i for i, _ in seen}
    shared = sorted(i for i in images if all((i, m) in seen for m in methods))
    table = {}
    for m in methods:
        rows = [seen[(i, m)] for i in shared] if common else [r for (i, mm), r in seen.items() if mm == m]
        entry = {"n": len(rows)}
        for key in ("deletion_auc", "insertion_auc", "pointing_hit", "sanity_spearman"):
            vals = [float(r[key]) for r in rows if r.get(key) is not None and np.isfinite(float(r[key]))]
            entry[key] = float(np.mean(vals)) if vals else None
            if key == "pointing_hit":
                entry["pointing_n"] = len(vals)
        entry["gap"] = (entry["insertion_auc"] - entry["deletion_auc"]) if rows else None
        table[m] = entry
    return table


def format_table(table) -> list:
    """The merged table as aligned text lines (a Markdown table)."""
    head = "| method | n | " + " | ".join(t for _, t in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 2)]
    for m, e in table.items():
        cells = ["-" if e.get(k) is None else f"{e[k]:.3f}" for k, _ in COLUMNS]
        lines.append(f"| {m} | {e['n']} | " + " | ".join(cells) + " |")
    return lines
