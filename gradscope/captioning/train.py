"""Train a CaptioningRNN on a caption source into a folder: checkpoints every epoch (exact
resume after a kill), the best epoch by greedy val BLEU-4 kept, then model.npz,
train_result.json and loss.png."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass

from gradscope.errors import DataError

__all__ = ["train_captioner", "CaptionerTrainResult", "bleu_val_fn"]


@dataclass
class CaptionerTrainResult:
    """model: the trained CaptioningRNN; train: the Trainer's TrainResult; model_path: the
    written model.npz."""
    model: object
    train: object
    model_path: str


def train_captioner(source: str, out_dir, *, cell_type: str = "lstm", hidden_dim: int = 512,
                    wordvec_dim: int = 256, attention_dim: int = 256, dropout: float = 0.0,
                    attention_reg: float = 0.0, update_rule: str = "adam", learning_rate: float = 1e-3,
                    lr_decay: float = 0.95, batch_size: int = 100, num_epochs: int = 10, clip_norm=None,
                    seed: int = 0, max_train: int | None = None, val_images: int = 500,
                    one_caption_per_image: bool = False, resume: bool = False, init_from=None,
                    callback=None, progress=None, feature_progress=None) -> CaptionerTrainResult:
    """Train a captioner on `source` (synthetic[:N], coco:DIR, flickr8k:DIR) into out_dir.

    cell_type: a key of gradscope.captioning.cells.CELL_TYPES; a spatial cell ('attention')
    trains on the photos' region features (flickr8k:DIR). attention_dim: A of an attention cell.
    dropout: on h before the vocabulary layer; attention_reg: weight of the doubly stochastic
    attention penalty (attention cells).
    max_train: use only the first N training captions. val_images: images of the val split
    scored (greedy BLEU-4) after every epoch; 0 scores none and needs no val split.
    one_caption_per_image: an epoch visits every training image once with one of its captions
    drawn at random (seeded; on Flickr8k 5x shorter epochs), instead of every caption once.
    resume: continue from out_dir's checkpoint; DataError when there is none.
    init_from: a captioner file (or a shipped name, 'attention' / 'global') whose parameters
    start the run instead of random ones (fine-tuning); its cell, sizes and vocabulary must be
    the ones asked for.
    callback(EpochRecord) after every epoch; progress(step, total_steps) after every step;
    feature_progress(split, done, total) while image features are computed.
    """
    from gradscope.captioning import CaptioningRNN, save_captioner
    from gradscope.captioning.cells import CELL_TYPES
    from gradscope.captioning.sources import load_caption_source
    from gradscope.fileio import save_json
    from gradscope.training import Trainer
    from gradscope.training.plots import plot_loss_curve
    from gradscope.training.trainer import CHECKPOINT_NAME

    out_dir = os.fspath(out_dir)
    if resume and not os.path.isfile(os.path.join(out_dir, CHECKPOINT_NAME)):
        raise DataError(f"nothing to resume: {out_dir!r} has no {CHECKPOINT_NAME} (a run writes it after its "
                        "first epoch); start the run without resume")
    splits = ["train", "val"] if val_images > 0 else ["train"]
    spatial = cell_type in CELL_TYPES and CELL_TYPES[cell_type].spatial
    data = load_caption_source(source, splits=splits, progress=feature_progress, spatial=spatial)
    train, val = data.split("train"), data.splits.get("val")
    if max_train:
        train = _first_captions(train, max_train)
    model = CaptioningRNN(train.word_to_idx, input_dim=train.feature_dim, wordvec_dim=wordvec_dim,
                          hidden_dim=hidden_dim, cell_type=cell_type, seed=seed, attention_dim=attention_dim,
                          dropout=dropout, attention_reg=attention_reg)
    if init_from is not None:
        _start_from(model, init_from)
    val_fn = bleu_val_fn(val, val_images) if val is not None and val_images > 0 else None
    settings = {"optimizer": update_rule, "lr": learning_rate, "lr_decay": lr_decay, "batch_size": batch_size,
                "epochs": num_epochs, "clip": clip_norm, "seed": seed}
    if spatial or dropout or attention_reg or one_caption_per_image:  # the older captioners' records as they were
        settings.update(attention_dim=attention_dim, dropout=dropout, attention_reg=attention_reg,
                        one_caption_per_image=one_caption_per_image)
    if init_from is not None:
        settings["init_from"] = os.path.basename(os.fspath(init_from))
    epochs = _OneCaptionPerImage(train) if one_caption_per_image else train
    trainer = Trainer(model, _Stepping(epochs, progress, num_epochs, batch_size, dropout > 0), update_rule=update_rule,
                      optim_config={"learning_rate": learning_rate}, lr_decay=lr_decay, batch_size=batch_size,
                      num_epochs=num_epochs, clip_norm=clip_norm, seed=seed, checkpoint_dir=out_dir, val_fn=val_fn,
                      progress=False, callback=callback, monitor="Bleu_4", monitor_mode="max", keep_best=True)
    result = trainer.train(resume=resume)
    info = {"data": source, "features": data.features, "features_fingerprint": data.fingerprint,
            "train_captions": len(train), "training": settings,
            "final_loss": result.loss_history[-1] if result.loss_history else None, "best_val": result.best_val,
            "history": [{"epoch": r.epoch, "train_loss": r.train_loss, **r.val} for r in result.epochs]}
    model_path = os.path.join(out_dir, "model.npz")
    save_captioner(model_path, model, extra_meta=info)
    save_json(os.path.join(out_dir, "train_result.json"), asdict(result))
    if result.loss_history:
        plot_loss_curve(result, os.path.join(out_dir, "loss.png"), title=f"{CELL_TYPES[cell_type].label} on {source}")
    return CaptionerTrainResult(model, result, model_path)


def _start_from(model, init_from) -> None:
    """Copy the parameters of the captioner `init_from` (a file or a shipped name) into model."""
    from gradscope.captioning import CaptioningRNN, load_named

    name = os.fspath(init_from)
    source = load_named(name)
    if not isinstance(source, CaptioningRNN):
        raise DataError(f"init_from {name!r} is an ensemble of {len(source.members)} captioners: "
                        "start from one of its files")
    shape = lambda m: (m.cell_type, m.input_dim, m.wordvec_dim, m.hidden_dim, m.attention_dim,  # noqa: E731
                       list(m.idx_to_word))
    if shape(source) != shape(model):
        raise DataError(f"init_from {name!r}: its cell, sizes or vocabulary ({source!r}) differ from the run's "
                        f"({model!r})")
    for k in model.params:
        model.params[k] = source.params[k].astype(model.dtype)


class _Stepping:
    """The training set as the Trainer sees it, reporting each batch drawn (one per step)
    to progress(step, total); with dropout, each batch carries a dropout seed drawn from the
    trainer's generator (so that a resumed run draws the same masks)."""

    def __init__(self, data, progress, num_epochs, batch_size, dropout_seed=False):
        self.data, self.progress, self.step = data, progress, 0
        self.total = num_epochs * -(-len(data) // batch_size)
        self.dropout_seed = dropout_seed

    def __len__(self):
        return len(self.data)

    def batch(self, indices, rng=None):
        self.step += 1
        if self.progress is not None:
            self.progress(self.step, self.total)
        batch = self.data.batch(indices, rng=rng)
        if self.dropout_seed:
            batch = (*batch, None if rng is None else int(rng.integers(2**31)))
        return batch


class _OneCaptionPerImage:
    """A caption split seen one image at a time: item i is training image i with one of its
    captions drawn by the batch's rng (the first without one)."""

    def __init__(self, data):
        import numpy as np

        self.data = data
        self.order = np.argsort(data.image_idxs, kind="stable")  # caption rows grouped by image
        images, self.starts, self.counts = np.unique(data.image_idxs[self.order], return_index=True,
                                                     return_counts=True)

    def __len__(self):
        return len(self.starts)

    def batch(self, indices, rng=None):
        import numpy as np

        indices = np.asarray(indices)
        pick = np.zeros(len(indices), dtype=np.int64) if rng is None else \
            (rng.random(len(indices)) * self.counts[indices]).astype(np.int64)
        return self.data.batch(self.order[self.starts[indices] + pick])


def _first_captions(split, n):
    from gradscope.data.captions import CaptionDataset

    raw = None if split.raw_tokens is None else split.raw_tokens[:n]
    return CaptionDataset(split.features, split.captions[:n], split.image_idxs[:n], split.word_to_idx,
                          split.idx_to_word, split.image_names, split.urls, raw, split.images, split.name)


def bleu_val_fn(val, n_images: int):
    """val_fn(model) -> {'Bleu_4': greedy BLEU-4 on the first n_images of val}."""
    from gradscope.data.vocab import decode_tokens
    from gradscope.metrics import bleu

    ids = val.image_indices()[:n_images]
    features, refs = val.image_features(ids), val.references(ids)

    def val_fn(model):
        return {"Bleu_4": bleu(refs, decode_tokens(model.sample(features), model.idx_to_word))[3]}

    return val_fn
