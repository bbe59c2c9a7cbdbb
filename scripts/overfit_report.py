"""Reproduce the captioning issue's overfitting numbers: an LSTM and a vanilla RNN
captioner (hidden 512, word vectors 256) trained with Adam (lr 5e-3) on 50 captions,
batch 25, 50 epochs (100 iterations); report the final training loss of each.
The LSTM must end below 0.5.

    python scripts/overfit_report.py [--data synthetic | --data coco:DIR] [--json PATH]

synthetic: 50 images of the built-in set with one caption each; coco:DIR: 50 random
training captions of the course's COCO data (as in the course notebook).
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from gradscope.captioning import CaptioningRNN
from gradscope.captioning.sources import load_caption_source, parse_source
from gradscope.training import ArrayDataset, Trainer

N_EXAMPLES, TEMPLATES = 50, 5


def small_data(spec: str, seed: int) -> tuple[ArrayDataset, dict]:
    """50 (features, caption) examples and the vocabulary."""
    kind, _ = parse_source(spec)
    train = load_caption_source(spec, splits=["train"], seed=seed).split("train")
    if kind == "synthetic":  # one caption per image, the template cycling: no ambiguous targets
        rows = np.arange(N_EXAMPLES) * TEMPLATES + np.arange(N_EXAMPLES) % TEMPLATES
    else:
        rows = np.sort(np.random.default_rng(seed).choice(len(train), N_EXAMPLES, replace=False))
    return ArrayDataset(*train.batch(rows)), train.word_to_idx


def overfit(data, word_to_idx, cell: str, seed: int):
    model = CaptioningRNN(word_to_idx, input_dim=data.arrays[0].shape[1], wordvec_dim=256, hidden_dim=512,
                          cell_type=cell, seed=seed)
    return Trainer(model, data, update_rule="adam", optim_config={"learning_rate": 5e-3}, lr_decay=1.0,
                   batch_size=25, num_epochs=50, seed=seed, progress=False).train()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="synthetic:100", help="synthetic[:N] or coco:DIR")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, metavar="PATH")
    args = parser.parse_args()
    data, word_to_idx = small_data(args.data, args.seed)
    report = {"data": args.data, "examples": len(data), "hidden": 512, "wordvec": 256, "lr": 5e-3,
              "batch_size": 25, "epochs": 50}
    for cell in ("lstm", "rnn"):
        result = overfit(data, word_to_idx, cell, args.seed)
        report[cell] = {"first_loss": result.loss_history[0], "final_loss": result.loss_history[-1],
                        "iterations": result.iterations, "seconds": round(result.seconds, 1)}
        print(f"{cell:4s}: loss {result.loss_history[0]:.3f} -> {result.loss_history[-1]:.4f} "
              f"after {result.iterations} iterations ({result.seconds:.1f}s)", flush=True)
    ok = report["lstm"]["final_loss"] < 0.5
    print(f"LSTM final training loss < 0.5: {'yes' if ok else 'NO'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
