"""Weight averaging of CNNs fine-tuned from one start ("model soup", Wortsman et al. 2022)
and re-estimating batch-norm statistics for averaged weights (as SWA does, Izmailov et al. 2018).

Networks fine-tuned from the same weights stay in one basin of the loss, so the mean of
their weights is itself a good network, often better than each (it is one network: the
size and the cost of a forward pass do not grow, unlike an ensemble). The running
statistics of the batch norms are not weights: the mean of two networks' statistics is
not the statistics of the averaged network, so `recompute_batchnorm` measures them again
from training images.
"""
from __future__ import annotations

import numpy as np

from gradscope.cnn.model import CNN
from gradscope.errors import GradscopeError

__all__ = ["average_weights", "recompute_batchnorm", "model_soup"]


def _comparable(config: dict) -> dict:
    """A config without what may differ between soup members (the record of their training)."""
    return {k: v for k, v in config.items() if k != "training"}


def average_weights(models, weights=None) -> CNN:
    """The network whose params and buffers are the weighted mean of `models`'.

    Args:
        models: CNNs of one architecture (equal configs: layers, classes, preprocessing).
        weights: one non-negative number per model (normalised to sum 1); None = equal.
    Returns: a new CNN (float32 unless every member is float64) with the first model's config,
    whose "training" record lists the members' records and the weights.
    """
    models = list(models)
    if not models:
        raise GradscopeError("a soup needs at least one model")
    first = _comparable(models[0].config)
    for i, m in enumerate(models[1:], 2):
        if _comparable(m.config) != first:
            raise GradscopeError(f"model {i} has another architecture, classes or preprocessing than model 1: "
                                 "only networks of one config can be averaged")
    w = np.full(len(models), 1.0 / len(models)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(models),) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise GradscopeError(f"need one non-negative weight per model ({len(models)}), not all zero; got {weights!r}")
    w = w / w.sum()

    def mean(name, kind):
        return sum(wi * getattr(m, kind)[name].astype(np.float64) for wi, m in zip(w, models))

    dtype = np.float64 if all(m.dtype == np.float64 for m in models) else np.float32
    params = {k: mean(k, "params") for k in models[0].params}
    buffers = {k: mean(k, "buffers") for k in models[0].buffers}
    config = dict(models[0].config)
    config["training"] = {"recipe": "model soup: weighted mean of the members' weights",
                          "weights": [float(v) for v in w],
                          "members": [m.config.get("training") for m in models]}
    return CNN(config, params, buffers, dtype=dtype)


def recompute_batchnorm(model: CNN, images, batch_size: int = 100, seed: int = 0, progress=None) -> CNN:
    """Set every batch norm's running mean and variance to the mean, over batches of
    `images`, of the batch statistics the network computes in train mode (each layer sees
    the outputs of the layers before it with their new statistics, as in training).

    Args:
        model: a CNN; changed in place (its buffers) and returned.
        images: (N, H, W, 3) uint8 training images, preprocessed by the model; taken in a
            seeded random order in batches of `batch_size` (the last partial batch is dropped
            when there is a full one).
        progress: optional callable(done, total) over batches.
    """
    bns = [step.layer for step in model.steps if step.kind.is_batchnorm]
    if not bns:
        return model
    n = len(images)
    if n == 0:
        raise GradscopeError("need at least one image to measure batch-norm statistics")
    order = np.random.default_rng(seed).permutation(n)
    batches = [order[i:i + batch_size] for i in range(0, n, batch_size)]
    if len(batches) > 1 and len(batches[-1]) < batch_size:
        batches = batches[:-1]
    saved = [layer.get("momentum") for layer in bns]
    try:
        for i, idx in enumerate(batches):
            for layer in bns:  # running = i/(i+1) running + 1/(i+1) batch: the mean over batches so far
                layer["momentum"] = i / (i + 1)
            model.forward(model.preprocess(images[np.sort(idx)]), mode="train")
            if progress is not None:
                progress(i + 1, len(batches))
    finally:
        for layer, m in zip(bns, saved):
            if m is None:
                layer.pop("momentum", None)
            else:
                layer["momentum"] = m
    record = model.config.setdefault("training", {})
    if isinstance(record, dict):
        record["batchnorm_recomputed"] = {"images": int(sum(len(b) for b in batches)), "batch_size": batch_size,
                                          "seed": seed}
    return model


def model_soup(models, images=None, weights=None, batch_size: int = 100, seed: int = 0, progress=None) -> CNN:
    """average_weights(models, weights), then recompute_batchnorm on `images` (skipped when None:
    the members' running statistics are then averaged like the weights)."""
    soup = average_weights(models, weights)
    return soup if images is None else recompute_batchnorm(soup, images, batch_size, seed, progress)
