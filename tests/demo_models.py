"""Tiny random stand-ins for the shipped CNN and captioner and for EfficientNet-Lite0, so
the demo tests run in seconds: `use_tiny_models(monkeypatch)` makes
gradscope.cnn.load_pretrained, gradscope.captioning.load_pretrained and
gradscope.cnn.efficientnet.load_efficientnet_lite0 return them."""
from __future__ import annotations

import os

import numpy as np

import gradscope.captioning
import gradscope.cnn
import gradscope.cnn.efficientnet
from gradscope.captioning import CaptioningRNN
from gradscope.cnn import CNN, tiny_vgg

# some TinyImageNet names (so the demo's preferred classes resolve) and a name that needs escaping
# (five, so that every one is in the top-5 table)
CLASS_NAMES = ["tabby, tabby cat", "espresso", "goldfish, Carassius auratus", "school bus",
               "a <b>bold</b> & odd class"]
CNN_HISTORY = [{"epoch": e, "train_loss": 4.0 - 0.5 * e, "train_acc": 0.1 * e, "val_top1": 0.08 * e,
                "val_top5": 0.2 * e, "lr": 0.01, "epoch_seconds": 3.0} for e in (1, 2, 3)]
CAPTIONER_HISTORY = [{"epoch": e, "train_loss": 3.0 - 0.4 * e, "val_loss": 3.2 - 0.3 * e, "CIDEr": 0.1 * e}
                     for e in (1, 2)]
WORDS = ["<NULL>", "<START>", "<END>", "<UNK>", "a", "cat", "cup", "on", "the", "table"]


def tiny_cnn(history=True) -> CNN:
    config = tiny_vgg(num_classes=len(CLASS_NAMES), widths=(4, 8), input_size=32)
    config["classes"] = {"wnids": [f"n{i:08d}" for i in range(len(CLASS_NAMES))], "names": CLASS_NAMES}
    if history:
        config["training"] = {"recipe": "test", "history": CNN_HISTORY}
    return CNN(config, seed=0)


def tiny_lite() -> CNN:
    """EfficientNet-Lite0's shape (stem, MBConv blocks, head, pool, fc over the 1,000
    ImageNet classes) at test size: 3 blocks of width 8, 32x32 input."""
    blocks = ((8, 8, 3, 1, 1), (8, 8, 5, 2, 2), (8, 8, 3, 1, 2))
    config = gradscope.cnn.efficientnet.lite0_config(input_size=32, blocks=blocks, stem_width=8, head_width=16)
    return CNN(config, seed=0)


def tiny_captioner(input_dim: int = 8, history=True) -> CaptioningRNN:
    model = CaptioningRNN({w: i for i, w in enumerate(WORDS)}, input_dim=input_dim, wordvec_dim=6,
                          hidden_dim=8, cell_type="lstm", seed=0)
    model.params["b_vocab"][WORDS.index("<END>")] = -3.0  # so captions have a few words
    model.info = {"features": "gradscope-cnn:gap"}  # what the tiny CNN's features are called
    if history:
        model.info["training"] = {"history": CAPTIONER_HISTORY}
    return model


def use_tiny_models(monkeypatch, cnn=True, captioner=True):
    """Swap the shipped-model loaders for tiny random models (or for a DataError when
    cnn / captioner is False, as if the shipped file were missing)."""
    from gradscope.errors import DataError

    def missing(what):
        def load(dtype=None):
            raise DataError(f"the shipped {what} is missing (test)")
        return load

    monkeypatch.setattr(gradscope.cnn, "load_pretrained", (lambda dtype=None: tiny_cnn()) if cnn else missing("CNN"))
    monkeypatch.setattr(gradscope.cnn.efficientnet, "load_efficientnet_lite0",
                        (lambda dtype=None: tiny_lite()) if cnn else missing("EfficientNet-Lite0"))
    monkeypatch.setattr(gradscope.captioning, "load_pretrained",
                        (lambda dtype=None: tiny_captioner()) if captioner else missing("captioner"))


def shipped_models_present() -> bool:
    stem = gradscope.cnn.pretrained_path()
    return all(os.path.isfile(p) for p in (stem + ".json", stem + ".npz", *gradscope.captioning.PRETRAINED_FILES))


def photo(seed: int, shape=(60, 80)) -> np.ndarray:
    """A smooth random uint8 'photo' (H, W, 3)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]] / max(shape)
    base = np.stack([np.sin(6 * xx + c + rng.uniform(0, 3)) * np.cos(4 * yy + c) for c in range(3)], axis=-1)
    return np.clip(127.5 + 110 * base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
