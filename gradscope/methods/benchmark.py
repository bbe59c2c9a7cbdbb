"""Benchmarks of the methods on a TinyImageNet-layout dataset's val split (the numbers
README reports): val images the model knows, batches of model inputs, the fooling
benchmark (correctly classified images, uniformly random other classes as targets)."""
from __future__ import annotations

import numpy as np

from gradscope.errors import DataError, GradscopeError
from gradscope.methods.fooling import fool

__all__ = ["val_items", "load_batch", "correct_images", "random_other_classes", "fool_summary", "fool_benchmark"]


def val_items(model, data, seed: int, need_box: bool = False):
    """(items, order): val items (path, model class index, box) of a TinyImageNet directory
    whose class the model knows, and a seeded random order over them."""
    from gradscope.data.tinyimagenet import TinyImageNet

    if not data:
        raise GradscopeError("this benchmark needs a data directory (TinyImageNet layout)")
    ds = TinyImageNet(data)
    known = {w: i for i, w in enumerate(model.wnids)}
    items = [(p, known[ds.wnids[y]], b) for p, y, b in ds.items("val")
             if ds.wnids[y] in known and (b is not None or not need_box)]
    if not items:
        raise DataError(f"no val images in {data!r} belong to classes the model knows")
    return items, np.random.default_rng(seed).permutation(len(items))


def load_batch(model, items, idx):
    """(model inputs (n, 3, S, S), class indices (n,), boxes (n, 4) scaled to the input grid,
    -1 where an image has none) of items[idx]."""
    from gradscope.imageio import load_image

    images = [load_image(items[i][0]) for i in idx]
    x = np.concatenate([model.preprocess(im[None]) for im in images])
    scale = [model.input_size / im.shape[1] for im in images]
    boxes = np.array([np.round(np.asarray(items[i][2]) * s).astype(int) if items[i][2] is not None
                      else (-1, -1, -1, -1) for i, s in zip(idx, scale)])
    return x, np.array([items[i][1] for i in idx]), boxes


def correct_images(model, items, order, n: int, batch: int = 50):
    """Model inputs and labels of the first n images in `order` the model classifies correctly."""
    xs, ys, seen = [], [], 0
    while sum(len(v) for v in ys) < n and seen < len(order):
        x, y, _ = load_batch(model, items, order[seen:seen + batch])
        seen += batch
        ok = np.argmax(model.scores(x), axis=1) == y
        xs.append(x[ok])
        ys.append(y[ok])
    x, y = np.concatenate(xs)[:n], np.concatenate(ys)[:n]
    if len(y) < n:
        raise DataError(f"only {len(y)} correctly classified val images found, {n} requested")
    return x, y


def random_other_classes(y, n_classes: int, seed: int) -> np.ndarray:
    """For each label, a class drawn uniformly among the other n_classes - 1."""
    return (y + np.random.default_rng(seed).integers(1, n_classes, size=len(y))) % n_classes


def fool_summary(r) -> dict:
    """Success rate and the medians of steps and changes of the fooled images of a FoolingResult."""
    ok = r.success
    it = r.iterations[ok]
    med = (lambda a: float(np.median(a)) if len(a) else float("nan"))
    return {"n": int(len(ok)), "success_rate": float(ok.mean()), "median_iterations": med(it),
            "max_iterations": int(it.max()) if len(it) else None, "median_l2": med(r.l2[ok]),
            "median_linf": med(r.linf[ok]), "mean_l2": float(r.l2[ok].mean()) if ok.any() else float("nan")}


def fool_benchmark(model, data, n: int = 100, seed: int = 0, callback=None, **fool_settings):
    """(summary dict, FoolingResult): fool n correctly classified val images (seeded order)
    towards random other classes; fool_settings go to `fool` (its DEFAULTS otherwise)."""
    items, order = val_items(model, data, seed)
    x, y = correct_images(model, items, order, n)
    r = fool(model, x, random_other_classes(y, len(model.class_names), seed), callback=callback, **fool_settings)
    return fool_summary(r), r
