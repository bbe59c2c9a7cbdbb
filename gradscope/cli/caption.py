"""`gradscope caption ...`: train, evaluate and run image captioning models.

    gradscope caption train --data SOURCE --out DIR [--cell lstm|rnn] [--resume] ...
    gradscope caption evaluate --data SOURCE --split val|dev|test [--beam K] [--model PATH] [--json]
    gradscope caption sample (--data SOURCE [--n 5] | IMAGE...) [--model PATH] [--beam K]
    gradscope caption [image] IMAGE... [--beam K] [--model PATH]
    gradscope caption explain IMAGE... -o OUT [--json]   (gradscope/cli/explain.py)

SOURCE is synthetic[:N], coco:DIR or flickr8k:DIR. Without --model, the shipped
Flickr8k captioner is used.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict

import numpy as np

from gradscope.errors import GradscopeError

SUBCOMMANDS = ("train", "evaluate", "sample", "explain", "image")


class _ImageOrSubcommand(argparse._SubParsersAction):
    """Subcommands where a first word that names none of them means `image WORD ...`."""

    class _AnyChoice(dict):
        def __contains__(self, key):
            return True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.choices = self._AnyChoice(self._name_parser_map)

    def __call__(self, parser, namespace, values, option_string=None):
        if values and values[0] not in self._name_parser_map:
            values = ["image", *values]
        super().__call__(parser, namespace, values, option_string)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "caption", help="image captioning: train, evaluate, sample, or caption image files",
        description="Caption images with an RNN/LSTM captioner, or train and evaluate one. "
                    "`gradscope caption IMAGE...` captions image files with the shipped model.",
        epilog="data SOURCE: synthetic[:N] (built-in coloured shapes), coco:DIR (official COCO 2014 "
               "files and photos, or the course's h5 features), flickr8k:DIR (Flickr8k images through the shipped "
               "captioner's CNN, EfficientNet-Lite0).")
    _add_decoding_args(parser, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="caption_command", metavar="{train,evaluate,sample,explain,image} | IMAGE",
                                action=_ImageOrSubcommand)
    _register_train(sub)
    _register_evaluate(sub)
    _register_sample(sub)
    from gradscope.cli.explain import register_explain

    register_explain(sub)
    image = sub.add_parser("image", help="caption image files (the default: `gradscope caption IMAGE...`)")
    image.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    _add_decoding_args(image, argparse.SUPPRESS)
    image.set_defaults(func=run_image)
    parser.set_defaults(func=lambda args: parser.print_help() or 0, beam=3, model=None, max_length=30,
                        json=False, length_norm=0.5)


def _add_decoding_args(p, default) -> None:
    """--model/--beam/--max-length/--json; parent-level defaults live in set_defaults so
    options given before IMAGE survive the subparser (whose defaults are suppressed)."""
    p.add_argument("--model", default=default, metavar="PATH",
                   help="captioner .npz (default: the shipped Flickr8k LSTM)")
    p.add_argument("--beam", type=int, default=default, metavar="K", help="beam size (1 = greedy; default 3)")
    p.add_argument("--length-norm", type=float, default=default, metavar="ALPHA",
                   help="beam score = log-prob / length**ALPHA (default 0.5, chosen on Flickr8k dev; 0 = raw log-prob)")
    p.add_argument("--max-length", type=int, default=default, metavar="T", help="longest caption (default 30)")
    p.add_argument("--json", action="store_true", default=default, help="print JSON")


def _register_train(sub) -> None:
    p = sub.add_parser("train", help="train a captioner (checkpoints every epoch; --resume continues)")
    p.add_argument("--data", default="synthetic", metavar="SOURCE", help="synthetic[:N], coco:DIR or flickr8k:DIR")
    p.add_argument("--cell", choices=("lstm", "rnn"), default="lstm")
    p.add_argument("--hidden", type=int, default=512, help="hidden size H (default 512)")
    p.add_argument("--wordvec", type=int, default=256, help="word vector size (default 256)")
    p.add_argument("--optimizer", choices=("sgd", "sgd_momentum", "rmsprop", "adam"), default="adam")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate (default 1e-3)")
    p.add_argument("--lr-decay", type=float, default=0.95, help="learning-rate factor per epoch (default 0.95)")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--clip", type=float, default=None, metavar="NORM", help="clip gradients to this global norm")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-train", type=int, default=None, metavar="N", help="use only N training captions")
    p.add_argument("--val-images", type=int, default=500, metavar="N",
                   help="images of the val split scored (greedy BLEU-4) after each epoch (0: none)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder: model.npz, checkpoint, loss.png")
    p.add_argument("--resume", action="store_true", help="continue from DIR's checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_train)


def _register_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="BLEU-1..4, CIDEr-D and ROUGE-L on a split")
    p.add_argument("--data", required=True, metavar="SOURCE", help="synthetic[:N], coco:DIR or flickr8k:DIR")
    p.add_argument("--split", default="val", choices=("train", "val", "dev", "test"))
    p.add_argument("--max-images", type=int, default=None, metavar="N", help="score only the first N images")
    _add_decoding_args(p, None)
    p.set_defaults(func=run_evaluate, beam=3, max_length=30, json=False, length_norm=0.5)  # as `caption IMAGE`


def _register_sample(sub) -> None:
    p = sub.add_parser("sample", help="print captions of random images of a split, or of image files")
    p.add_argument("images", nargs="*", metavar="IMAGE", help="image files (instead of --data)")
    p.add_argument("--data", default=None, metavar="SOURCE")
    p.add_argument("--split", default="val", choices=("train", "val", "dev", "test"))
    p.add_argument("--n", type=int, default=5, help="how many images (default 5)")
    p.add_argument("--seed", type=int, default=0, help="which images")
    _add_decoding_args(p, None)
    p.set_defaults(func=run_sample, beam=3, max_length=30, json=False, length_norm=0.5)


# --- handlers -------------------------------------------------------------------------

def run_train(args) -> int:
    from gradscope.captioning import CaptioningRNN, save_captioner
    from gradscope.captioning.sources import load_caption_source
    from gradscope.fileio import save_json
    from gradscope.training import Trainer
    from gradscope.training.plots import plot_loss_curve

    source = load_caption_source(args.data, splits=["train", "val"], progress=_feature_progress(args))
    train, val = source.split("train"), source.splits.get("val")
    if args.max_train:
        train = _first_captions(train, args.max_train)
    model = CaptioningRNN(train.word_to_idx, input_dim=train.feature_dim, wordvec_dim=args.wordvec,
                          hidden_dim=args.hidden, cell_type=args.cell, seed=args.seed)
    val_fn = _bleu_val_fn(val, args.val_images) if val is not None and args.val_images > 0 else None
    trainer = Trainer(model, train, update_rule=args.optimizer, optim_config={"learning_rate": args.lr},
                      lr_decay=args.lr_decay, batch_size=args.batch_size, num_epochs=args.epochs,
                      clip_norm=args.clip, seed=args.seed, checkpoint_dir=args.out, val_fn=val_fn,
                      progress=not args.no_progress, callback=_print_epoch, monitor="Bleu_4", monitor_mode="max",
                      keep_best=True)
    result = trainer.train(resume=args.resume)
    info = {"data": args.data, "features": source.features, "features_fingerprint": source.fingerprint,
            "train_captions": len(train),
            "training": {k: getattr(args, k) for k in ("optimizer", "lr", "lr_decay", "batch_size", "epochs",
                                                       "clip", "seed")},
            "final_loss": result.loss_history[-1] if result.loss_history else None, "best_val": result.best_val,
            "history": [{"epoch": r.epoch, "train_loss": r.train_loss, **r.val} for r in result.epochs]}
    model_path = os.path.join(args.out, "model.npz")
    save_captioner(model_path, model, extra_meta=info)
    save_json(os.path.join(args.out, "train_result.json"), asdict(result))
    if result.loss_history:
        plot_loss_curve(result, os.path.join(args.out, "loss.png"), title=f"{args.cell.upper()} on {args.data}")
    print(f"trained {model!r} in {result.seconds:.1f}s; saved {model_path}")
    if result.best_val:
        print(f"best {result.best_val['metric']} {result.best_val['value']:.4f} at epoch {result.best_val['epoch']}")
    return 0


def run_evaluate(args) -> int:
    from gradscope.captioning.sources import load_caption_source
    from gradscope.data.vocab import decode_tokens
    from gradscope.metrics import score_all

    model = _load_model(args.model)
    source = load_caption_source(args.data, splits=[args.split], progress=_feature_progress(args))
    split = source.split(args.split)
    _check_feature_dim(model, split.feature_dim, args.data)
    ids = split.image_indices()[:args.max_images]
    captions = _decode(model, split.image_features(ids), args)
    scores = score_all(split.references(ids), decode_tokens(captions, model.idx_to_word))
    report = {"data": args.data, "split": args.split, "images": int(len(ids)), "decoding": _decoding_name(args),
              "model": args.model or "shipped", "scores": scores}
    if split.name in source.skipped:  # listed in the annotations but not on disk
        report["images_missing"] = int(source.skipped[split.name])
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    missing = f" ({report['images_missing']} listed images not on disk)" if "images_missing" in report else ""
    print(f"{args.data} {args.split}: {len(ids)} images{missing}, {_decoding_name(args)} decoding")
    for name, value in scores.items():
        print(f"  {name:8s} {value:.4f}")
    return 0


def run_sample(args) -> int:
    if args.images:
        return run_image(args)
    if args.data is None:
        raise GradscopeError("caption sample needs --data SOURCE or image files")
    from gradscope.captioning.sources import load_caption_source
    from gradscope.data.vocab import decode_captions

    model = _load_model(args.model)
    split = load_caption_source(args.data, splits=[args.split], progress=_feature_progress(args)).split(args.split)
    _check_feature_dim(model, split.feature_dim, args.data)
    all_ids = split.image_indices()
    ids = np.random.default_rng(args.seed).choice(all_ids, min(args.n, len(all_ids)), replace=False)
    generated = decode_captions(_decode(model, split.image_features(ids), args), model.idx_to_word)
    refs = split.references(ids)
    names = split.image_names or [f"image {i}" for i in range(split.n_images)]
    rows = [{"image": names[i], "caption": g, "reference": " ".join(r[0]) if r else ""}
            for i, g, r in zip(ids, generated, refs)]
    _print_captions(rows, args)
    return 0


def run_image(args) -> int:
    from gradscope.captioning.features import feature_fn_for
    from gradscope.data.vocab import decode_captions
    from gradscope.imageio import load_image

    model = _load_model(args.model)
    images = [load_image(p) for p in args.images]
    features = feature_fn_for(model)(images)
    generated = decode_captions(_decode(model, features, args), model.idx_to_word)
    _print_captions([{"image": p, "caption": g} for p, g in zip(args.images, generated)], args)
    return 0


# --- helpers --------------------------------------------------------------------------

def _load_model(path):
    from gradscope.captioning import load_captioner, load_pretrained

    return load_pretrained() if path is None else load_captioner(path)


def _decode(model, features, args, chunk=500):
    """Captions (N, max_length) by greedy or beam decoding, `chunk` images at a time (bounded memory)."""
    from gradscope.captioning import beam_search

    if args.beam is not None and args.beam < 1:
        raise GradscopeError(f"--beam must be at least 1, got {args.beam}")
    out = []
    for i in range(0, max(len(features), 1), chunk):
        part = features[i:i + chunk]
        if args.beam is None or args.beam == 1:
            out.append(model.sample(part, max_length=args.max_length))
        else:
            out.append(beam_search(model, part, beam_size=args.beam, max_length=args.max_length,
                                   length_normalization=args.length_norm)[0])
    return np.concatenate(out)


def _decoding_name(args) -> str:
    return "greedy" if args.beam is None or args.beam == 1 else f"beam {args.beam} (length norm {args.length_norm:g})"


def _check_feature_dim(model, dim, data):
    if model.input_dim != dim:
        raise GradscopeError(f"the captioner takes {model.input_dim}-dimensional image features but {data!r} "
                             f"has {dim}: it was trained on other data (features: "
                             f"{model.info.get('features', 'unknown')})")


def _first_captions(split, n):
    from gradscope.data.captions import CaptionDataset

    raw = None if split.raw_tokens is None else split.raw_tokens[:n]
    return CaptionDataset(split.features, split.captions[:n], split.image_idxs[:n], split.word_to_idx,
                          split.idx_to_word, split.image_names, split.urls, raw, split.images, split.name)


def _bleu_val_fn(val, n_images):
    """val_fn(model) -> {'Bleu_4': greedy BLEU-4 on the first n_images of val}."""
    from gradscope.data.vocab import decode_tokens
    from gradscope.metrics import bleu

    ids = val.image_indices()[:n_images]
    features, refs = val.image_features(ids), val.references(ids)

    def val_fn(model):
        return {"Bleu_4": bleu(refs, decode_tokens(model.sample(features), model.idx_to_word))[3]}

    return val_fn


def _print_epoch(record) -> None:
    val = "".join(f"  {k} {v:.4f}" for k, v in record.val.items())
    print(f"epoch {record.epoch}: loss {record.train_loss:.4f}  lr {record.learning_rate:.2e}{val}"
          f"  ({record.seconds:.1f}s)", flush=True)


def _feature_progress(args):
    if getattr(args, "no_progress", False):
        return None
    state = {}

    def progress(split, done, total):
        if split not in state:
            from tqdm import tqdm
            state[split] = tqdm(total=total, desc=f"features {split}", unit="img", file=sys.stderr, leave=False)
        state[split].update(done - state[split].n)
        if done >= total:
            state.pop(split).close()

    return progress


def _print_captions(rows, args) -> None:
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    for row in rows:
        print(f"{row['image']}: {row['caption']}")
        if row.get("reference"):
            print(f"    reference: {row['reference']}")
