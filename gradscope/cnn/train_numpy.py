"""Train the NumPy CNN with the generic Trainer (gradscope/training/trainer.py).

Pure NumPy, so slow on big data (the shipped model was trained with the torch twin,
gradscope/cnn/train_torch.py, whose forward pass the tests show to be the same
function); this path trains small models and shows the hand-written backward works.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from gradscope.cnn.config import tiny_vgg
from gradscope.cnn.evaluate import evaluate_accuracy
from gradscope.cnn.model import CNN
from gradscope.cnn.preprocessing import center_crop_resize
from gradscope.errors import ShapeError
from gradscope.training.trainer import Trainer


class ImageArrayDataset:
    """Labelled uint8 images for the Trainer.

    X: (N, H, W, 3) uint8 (other sizes are centre-cropped to the model's input size once,
    here); y: (N,) class indices. batch(indices, rng) -> (x (B, 3, S, S) model input, y (B,)),
    with random crops (of a reflect-padded image, shifting by up to `shift` pixels) and
    horizontal flips when augment is True and an rng is given.
    """

    def __init__(self, X, y, model, augment: bool = True, shift: int = 4):
        X, y = np.asarray(X), np.asarray(y)
        if X.ndim != 4 or X.shape[3] != 3 or X.dtype != np.uint8:
            raise ShapeError(f"X must be uint8 (N, H, W, 3), got {X.dtype} {X.shape}")
        if y.shape != (X.shape[0],):
            raise ShapeError(f"y must have shape ({X.shape[0]},), got {y.shape}")
        S = model.input_size
        if X.shape[1:3] != (S, S):
            X = np.stack([center_crop_resize(im, S) for im in X])
        self.X, self.y, self.model = X, y.astype(np.int64), model
        self.augment, self.shift = augment, int(shift)

    def __len__(self):
        return len(self.y)

    def batch(self, indices, rng=None):
        images = self.X[indices]  # (B, S, S, 3)
        if self.augment and rng is not None:
            images = self._augment(images, rng)
        return self.model.preprocess(images), self.y[indices]

    def _augment(self, images, rng):
        B, S = images.shape[:2]
        p = self.shift
        padded = np.pad(images, ((0, 0), (p, p), (p, p), (0, 0)), mode="reflect") if p else images
        out = np.empty_like(images)
        offsets = rng.integers(0, 2 * p + 1, size=(B, 2))
        flips = rng.random(B) < 0.5
        for i, ((oy, ox), flip) in enumerate(zip(offsets, flips)):
            crop = padded[i, oy:oy + S, ox:ox + S]
            out[i] = crop[:, ::-1] if flip else crop
        return out


class _Regularized:
    """The model as the Trainer sees it: same params and buffers, loss with L2 reg."""

    def __init__(self, model, reg):
        self.model, self.reg = model, reg
        self.params, self.buffers = model.params, model.buffers

    def loss(self, X, y):
        return self.model.loss(X, y, reg=self.reg)


@dataclass
class NumpyTrainResult:
    model: CNN
    train: object           # the Trainer's TrainResult
    val_top1: float = float("nan")
    val_top5: float = float("nan")
    weights_path: str = ""


def train_cnn_numpy(model, X_train, y_train, X_val=None, y_val=None, *, num_epochs=10, batch_size=64,
                    update_rule="adam", optim_config=None, lr_decay=0.95, reg=1e-4, augment=True, seed=0,
                    checkpoint_dir=None, resume=False, progress=None, callback=None):
    """Train `model` (a CNN) in place on uint8 images; returns the Trainer's TrainResult.
    With validation images, every epoch records val_top1 / val_top5 (test mode)."""
    train = ImageArrayDataset(X_train, y_train, model, augment=augment)
    val = ImageArrayDataset(X_val, y_val, model, augment=False) if X_val is not None else None

    def val_fn(_):
        acc = evaluate_accuracy(model, val.X, val.y, batch_size=max(batch_size, 100))
        return {"val_top1": acc.top1, "val_top5": acc.top5}

    wrapped = _Regularized(model, reg)
    trainer = Trainer(wrapped, train, update_rule=update_rule,
                      optim_config=optim_config or {"learning_rate": 1e-3}, lr_decay=lr_decay,
                      batch_size=batch_size, num_epochs=num_epochs, seed=seed, checkpoint_dir=checkpoint_dir,
                      val_fn=val_fn if val is not None else None, progress=progress, callback=callback,
                      monitor="val_top1", monitor_mode="max")
    return trainer.train(resume=resume)


def train_tinyimagenet_numpy(data_root, out_dir, widths=(16, 32, 64), num_epochs=10, batch_size=64,
                             learning_rate=1e-3, reg=1e-4, limit=None, per_class=None, seed=0,
                             resume=False, progress=None, callback=None) -> NumpyTrainResult:
    """Train a tiny_vgg on a TinyImageNet directory with NumPy. Writes the Trainer's
    checkpoint to out_dir after every epoch and the model to `<out_dir>/model.json` + `.npz`."""
    from gradscope.data.tinyimagenet import TinyImageNet

    ds = TinyImageNet(data_root)
    train = ds.load("train", limit=limit, per_class=per_class)
    val = ds.load("val", limit=limit)
    config = tiny_vgg(num_classes=ds.num_classes, widths=tuple(widths), input_size=train.X.shape[1])
    config["classes"] = {"wnids": ds.wnids, "names": ds.names}
    pixels = train.X.reshape(-1, 3)
    config["preprocess"] = {"mean": [round(float(v), 5) for v in pixels.mean(0) / 255],
                            "std": [round(float(v), 5) for v in pixels.std(0) / 255]}
    model = CNN(config, seed=seed)
    result = train_cnn_numpy(model, train.X, train.y, val.X, val.y, num_epochs=num_epochs,
                             batch_size=batch_size, optim_config={"learning_rate": learning_rate}, reg=reg,
                             seed=seed, checkpoint_dir=out_dir, resume=resume, progress=progress,
                             callback=callback)
    model.config["training"] = {"recipe": "numpy adam", "epochs": num_epochs,
                                "history": [{"epoch": r.epoch, "train_loss": r.train_loss, **r.val}
                                            for r in result.epochs]}
    weights = os.path.join(out_dir, "model")
    model.save(weights)
    last = result.epochs[-1].val if result.epochs else {}
    return NumpyTrainResult(model, result, last.get("val_top1", float("nan")),
                            last.get("val_top5", float("nan")), weights)
