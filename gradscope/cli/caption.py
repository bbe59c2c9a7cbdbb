"""`gradscope caption ...`: train, evaluate and run image captioning models.

    gradscope caption train --data SOURCE --out DIR [--cell lstm|rnn] [--resume] ...
    gradscope caption evaluate --data SOURCE --split val|dev|test [--beam K] [--model PATH] [--json]
    gradscope caption sample (--data SOURCE [--n 5] | IMAGE...) [--model PATH] [--beam K]
    gradscope caption [image] IMAGE... [--beam K] [--model PATH]

SOURCE is synthetic[:N], coco:DIR or flickr8k:DIR. Without --model, the shipped
Flickr8k captioner is used.
"""
from __future__ import annotations

import os

import numpy as np

from gradscope.captioning.beam_search import beam_search, sequence_log_prob
from gradscope.captioning.cells import CELL_TYPES
from gradscope.captioning.model import CaptioningRNN
from gradscope.captioning.train import train_captioner
from gradscope.cli.args import (beam_size, caption_length, default_of, exponent, nonneg_float, nonneg_int, positive_float,
                                positive_int, seed_int)
from gradscope.cli.common import captioner_help, captioner_info
from gradscope.cli.output import emit, envelope, output_folder
from gradscope.cli.progress import Progress
from gradscope.fileio import clean_stale_temp_files
from gradscope.cli.explain import register_explain
from gradscope.errors import GradscopeError

from gradscope.captioning.evaluate import BEAM_SIZE as BEAM, LENGTH_NORM

SPLITS = ("train", "val", "dev", "test")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "caption", help="image captioning: train, evaluate, sample, or caption image files",
        description="Caption images with an RNN/LSTM captioner, or train and evaluate one. "
                    "`gradscope caption IMAGE...` is short for `gradscope caption image IMAGE...` "
                    "(captions image files with the shipped model).",
        epilog="data SOURCE: synthetic[:N] (built-in coloured shapes), coco:DIR (official COCO 2014 files and "
               "photos, or the course's h5 features), flickr8k:DIR (Flickr8k images through the shipped "
               "captioner's CNN, EfficientNet-Lite0).")
    sub = parser.add_subparsers(dest="caption_command", metavar="{train,evaluate,sample,explain,image} | IMAGE")
    _register_train(sub)
    _register_evaluate(sub)
    _register_sample(sub)
    register_explain(sub)
    image = sub.add_parser("image", help="caption image files (the default: `gradscope caption IMAGE...`)")
    image.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    _add_decoding_args(image, BEAM)
    image.set_defaults(func=run_image)
    parser.set_defaults(func=lambda args: parser.print_help() or 0)


def _add_decoding_args(p, beam_default) -> None:
    p.add_argument("--model", default=None, metavar="PATH", help=captioner_help())
    p.add_argument("--beam", type=beam_size, default=beam_default, metavar="K",
                   help=f"beam size, 1 = greedy (default {beam_default})")
    p.add_argument("--length-norm", type=exponent, default=LENGTH_NORM, metavar="ALPHA",
                   help="beam score = log-prob / length**ALPHA (default %(default)s, chosen on Flickr8k dev; "
                        "0 = raw log-prob)")
    p.add_argument("--max-length", type=caption_length, default=default_of(CaptioningRNN.sample, "max_length"),
                   metavar="T", help="longest caption in words (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print JSON")


def _register_train(sub) -> None:
    d = lambda name: default_of(train_captioner, name)  # noqa: E731
    p = sub.add_parser("train", help="train a captioner (checkpoints every epoch; --resume continues)",
                       description="Train a captioner. --resume continues an interrupted run from DIR's "
                                   "checkpoint exactly; it is an error when DIR has no checkpoint.")
    p.add_argument("--data", default="synthetic", metavar="SOURCE", help="synthetic[:N], coco:DIR or flickr8k:DIR (default %(default)s)")
    p.add_argument("--cell", choices=tuple(CELL_TYPES), default=d("cell_type"),
                   help="recurrent cell: " + "; ".join(f"{k}: {c.description}" for k, c in CELL_TYPES.items())
                        + " (default %(default)s; attention trains on flickr8k:DIR region features)")
    p.add_argument("--hidden", type=positive_int, default=d("hidden_dim"), help="hidden size H (default %(default)s)")
    p.add_argument("--wordvec", type=positive_int, default=d("wordvec_dim"),
                   help="word vector size (default %(default)s)")
    p.add_argument("--attention-dim", type=positive_int, default=d("attention_dim"), metavar="A",
                   help="attention size A of --cell attention (default %(default)s)")
    p.add_argument("--dropout", type=_probability, default=d("dropout"), metavar="P",
                   help="dropout probability on h before the vocabulary layer (default %(default)s)")
    p.add_argument("--attention-reg", type=nonneg_float, default=d("attention_reg"), metavar="LAMBDA",
                   help="weight of the doubly stochastic attention penalty LAMBDA * sum_l (1 - sum_t alpha_tl)^2 "
                        "(--cell attention; default %(default)s)")
    p.add_argument("--one-caption-per-image", action="store_true",
                   help="an epoch visits each training image once with one of its captions drawn at random")
    p.add_argument("--optimizer", choices=("sgd", "sgd_momentum", "rmsprop", "adam"), default=d("update_rule"),
                   help="update rule (default %(default)s)")
    p.add_argument("--lr", type=positive_float, default=d("learning_rate"), help="learning rate (default %(default)s)")
    p.add_argument("--lr-decay", type=positive_float, default=d("lr_decay"),
                   help="learning-rate factor per epoch (default %(default)s)")
    p.add_argument("--batch-size", type=positive_int, default=d("batch_size"), help="captions per step (default %(default)s)")
    p.add_argument("--epochs", type=positive_int, default=d("num_epochs"), help="passes over the data (default %(default)s)")
    p.add_argument("--clip", type=positive_float, default=d("clip_norm"), metavar="NORM",
                   help="clip gradients to this global norm (default %(default)s)")
    p.add_argument("--seed", type=seed_int, default=d("seed"), help="random seed (default %(default)s)")
    p.add_argument("--max-train", type=positive_int, default=d("max_train"), metavar="N",
                   help="use only N training captions (default %(default)s)")
    p.add_argument("--val-images", type=nonneg_int, default=d("val_images"), metavar="N",
                   help="images of the val split scored (greedy BLEU-4) after each epoch (0: none, no val split "
                        "needed; default %(default)s)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder: model.npz, checkpoint, loss.png")
    p.add_argument("--resume", action="store_true", help="continue from DIR's checkpoint (error if it has none)")
    p.add_argument("--init-from", default=None, metavar="MODEL",
                   help="start from this captioner's parameters (a .npz, or attention / global for a shipped one) "
                        "instead of random ones: fine-tuning; cell, sizes and vocabulary must match (default none: random "
                        "parameters)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar or progress lines")
    p.set_defaults(func=run_train)


def _register_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="BLEU-1..4, CIDEr-D and ROUGE-L on a split")
    p.add_argument("--data", required=True, metavar="SOURCE", help="synthetic[:N], coco:DIR or flickr8k:DIR")
    p.add_argument("--split", default="val", choices=SPLITS, help="which split (default %(default)s)")
    p.add_argument("--max-images", type=positive_int, default=None, metavar="N", help="score only the first N images (default all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar or progress lines")
    _add_decoding_args(p, BEAM)  # as `caption IMAGE`
    p.set_defaults(func=run_evaluate)


def _register_sample(sub) -> None:
    p = sub.add_parser("sample", help="print captions of random images of a split, or of image files")
    p.add_argument("images", nargs="*", metavar="IMAGE", help="image files (instead of --data)")
    p.add_argument("--data", default=None, metavar="SOURCE",
                   help="synthetic[:N], coco:DIR or flickr8k:DIR (default none: give image files)")
    p.add_argument("--split", default="val", choices=SPLITS, help="which split (default %(default)s)")
    p.add_argument("--n", type=positive_int, default=5, help="how many images (default %(default)s)")
    p.add_argument("--seed", type=seed_int, default=0, help="seeds which images are drawn (default %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar or progress lines")
    _add_decoding_args(p, BEAM)
    p.set_defaults(func=run_sample)


def _probability(text) -> float:
    """A dropout probability in [0, 1)."""
    import argparse

    value = nonneg_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be below 1, got {text}")
    return value


# --- handlers -------------------------------------------------------------------------

def run_train(args) -> int:
    from gradscope.training.trainer import CHECKPOINT_NAME

    steps = Progress("caption train", unit="steps", enabled=not args.no_progress)
    keep = lambda folder: os.path.isfile(os.path.join(folder, CHECKPOINT_NAME))  # noqa: E731 - for --resume
    if args.resume:
        clean_stale_temp_files(args.out)  # what a killed run was writing
    with output_folder(args.out, "--out", keep=keep), steps:
        run = train_captioner(
            args.data, args.out, cell_type=args.cell, hidden_dim=args.hidden, wordvec_dim=args.wordvec,
            attention_dim=args.attention_dim, dropout=args.dropout, attention_reg=args.attention_reg,
            one_caption_per_image=args.one_caption_per_image,
            update_rule=args.optimizer, learning_rate=args.lr, lr_decay=args.lr_decay, batch_size=args.batch_size,
            num_epochs=args.epochs, clip_norm=args.clip, seed=args.seed, max_train=args.max_train,
            val_images=args.val_images, resume=args.resume, init_from=args.init_from, callback=lambda r: _print_epoch(r, steps),
            progress=steps.update, feature_progress=_feature_progress(args))
    result = run.train
    print(f"trained {run.model!r} in {result.seconds:.1f}s; saved {run.model_path}")
    if result.best_val:
        print(f"best {result.best_val['metric']} {result.best_val['value']:.4f} at epoch {result.best_val['epoch']}")
    return 0


def run_evaluate(args) -> int:
    from gradscope.captioning.evaluate import check_feature_dim, evaluate_split

    model = _load_model(args.model)
    source, split = _load_split(args, model)
    check_feature_dim(model, split.feature_dim, args.data)
    with Progress("caption evaluate", unit="images", enabled=not args.no_progress) as bar:
        report = evaluate_split(model, split, args.max_images, args.beam, args.max_length, args.length_norm,
                                progress=bar.update)
    report = {"data": args.data, "split": args.split, **report}
    if split.name in source.skipped:  # listed in the annotations but not on disk
        report["images_missing"] = int(source.skipped[split.name])
    if split.no_references:  # every caption of these images is empty: not scored
        report["images_without_references"] = int(split.no_references)
    missing = f" ({report['images_missing']} listed images not on disk)" if "images_missing" in report else ""
    if split.no_references:
        missing += f" ({split.no_references} images skipped: all their captions are empty)"
    lines = [f"{args.data} {args.split}: {report['images']} images{missing}, {report['decoding']} decoding"]
    lines += [f"  {name:8s} {value:.4f}" for name, value in report["scores"].items()]
    emit(args, envelope("caption evaluate", captioner_info(model, args.model), [report]), lines)
    return 0


def run_sample(args) -> int:
    if args.images:
        if args.data is not None:
            raise GradscopeError("caption sample takes image files or --data SOURCE, not both")
        return run_image(args)
    if args.data is None:
        raise GradscopeError("caption sample needs --data SOURCE or image files")
    from gradscope.captioning.evaluate import check_feature_dim, decode
    from gradscope.data.vocab import decode_captions

    model = _load_model(args.model)
    _, split = _load_split(args, model)
    check_feature_dim(model, split.feature_dim, args.data)
    all_ids = split.image_indices()
    ids = np.random.default_rng(args.seed).choice(all_ids, min(args.n, len(all_ids)), replace=False)
    features = split.image_features(ids)
    words = decode(model, features, args.beam, args.max_length, args.length_norm)
    generated = decode_captions(words, model.idx_to_word)
    logp = sequence_log_prob(model, features, words)
    names = split.image_names or [f"image {i}" for i in range(split.n_images)]
    rows = [{"image": names[i], "caption": g, "log_prob": float(lp), "reference": " ".join(r[0]) if r else ""}
            for i, g, lp, r in zip(ids, generated, logp, split.references(ids))]
    _print_captions(rows, args, model, "caption sample")
    return 0


def run_image(args) -> int:
    from gradscope.captioning.evaluate import decode
    from gradscope.captioning.features import feature_fn_for
    from gradscope.data.vocab import decode_captions
    from gradscope.imageio import load_image

    model = _load_model(args.model)
    images = [load_image(p) for p in args.images]
    extract, batch = feature_fn_for(model), 8
    with Progress("caption: image features", total=len(images), unit="images") as bar:
        parts = []
        for i in range(0, len(images), batch):
            parts.append(extract(images[i:i + batch]))
            bar.update(min(i + batch, len(images)))
    features = np.concatenate(parts)
    words = decode(model, features, args.beam, args.max_length, args.length_norm)
    generated = decode_captions(words, model.idx_to_word)
    logp = sequence_log_prob(model, features, words)
    rows = [{"image": p, "caption": g, "log_prob": float(lp)} for p, g, lp in zip(args.images, generated, logp)]
    _print_captions(rows, args, model, "caption")
    return 0


# --- helpers --------------------------------------------------------------------------

def _load_model(path):
    from gradscope.captioning import load_named, load_pretrained

    return load_pretrained() if path is None else load_named(path)


def _load_split(args, model):
    """The split of --data, its captions encoded with the captioner's vocabulary where the
    source allows (so a Flickr8k folder needs only that split's files)."""
    from gradscope.captioning.sources import load_caption_source, parse_source

    vocab = (model.word_to_idx, model.idx_to_word) if parse_source(args.data)[0] == "flickr8k" else None
    source = load_caption_source(args.data, splits=[args.split], progress=_feature_progress(args), vocab=vocab,
                                 spatial=model.cell.spatial)
    return source, source.split(args.split)


def _print_epoch(record, steps) -> None:
    val = "".join(f"  {k} {v:.4f}" for k, v in record.val.items())
    line = f"epoch {record.epoch}: loss {record.train_loss:.4f}  lr {record.learning_rate:.2e}{val}  " \
           f"({record.seconds:.1f}s)"
    if steps.bar is not None:
        steps.write(line)  # above the bar
    else:
        print(line, flush=True)


def _feature_progress(args):
    """progress(split, done, total) for image-feature extraction: one Progress per split."""
    if getattr(args, "no_progress", False):
        return None
    state = {}

    def progress(split, done, total):
        if split not in state:
            state[split] = Progress(f"features {split}", total=total, unit="images")
        state[split].update(done, total)
        if done >= total:
            state.pop(split).close()

    return progress


def _print_captions(rows, args, model, command: str) -> None:
    lines = []
    for row in rows:
        lines.append(f"{row['image']}: {row['caption']}  (log p {row['log_prob']:.2f})")
        if row.get("reference"):
            lines.append(f"    reference: {row['reference']}")
    emit(args, envelope(command, captioner_info(model, args.model), rows), lines)
