"""Commands for the CNN: `classify` images, and the `cnn` group: train, evaluate, layers."""
from __future__ import annotations

import json
import sys

import numpy as np

from gradscope.errors import DataError, GradscopeError

MODEL_HELP = ("model: 'gradscope' (the shipped CNN, default), 'efficientnet_lite0', 'path/model.json', "
              "'torchvision:NAME' or 'file.py:factory'")


def register(subparsers) -> None:
    p = subparsers.add_parser("classify", help="top classes of images under a model")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (any size; centre-cropped)")
    p.add_argument("--top", type=int, default=5, help="how many classes to show (default 5)")
    p.add_argument("--model", metavar="SPEC", default=None, help=MODEL_HELP)
    p.add_argument("--weights", metavar="PATH", default=None, help="weights file for torch model specs")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_classify)

    cnn = subparsers.add_parser("cnn", help="train, evaluate or inspect the NumPy CNN")
    sub = cnn.add_subparsers(dest="cnn_command", metavar="SUBCOMMAND")
    cnn.set_defaults(func=lambda args: (cnn.print_help(), 0)[1])
    _add_train(sub)
    _add_evaluate(sub)
    _add_layers(sub)


# ---------------------------------------------------------------- classify

def run_classify(args) -> int:
    from gradscope.imageio import load_image
    from gradscope.modelspec import load_image_model

    if args.top < 1:
        raise GradscopeError(f"--top must be at least 1, got {args.top}")
    model = load_image_model(args.model, args.weights)
    images = [load_image(path) for path in args.images]
    results = []
    for path, image in zip(args.images, images):
        scores = np.asarray(model.scores(model.preprocess([image])), dtype=np.float64)[0]
        probs = np.exp(scores - scores.max())
        probs /= probs.sum()
        top = np.argsort(-scores)[:args.top]
        results.append({"image": path, "top": [
            {"class": int(c), "wnid": str(model.wnids[c]), "name": str(model.class_names[c]),
             "probability": float(probs[c]), "score": float(scores[c])} for c in top]})
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    for r in results:
        print(r["image"])
        for rank, t in enumerate(r["top"], start=1):
            print(f"  {rank}. {t['probability']:6.1%}  {t['wnid']}  {t['name']}")
    return 0


# ---------------------------------------------------------------- cnn train

def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a tiny VGG on a TinyImageNet directory")
    p.add_argument("--data", required=True, metavar="DIR", help="TinyImageNet directory (wnids.txt, train/, val/)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder: checkpoints, history, model.json/.npz")
    p.add_argument("--engine", choices=("torch", "numpy"), default="torch",
                   help="torch (fast; exports NumPy weights) or numpy (slow; hand-written backward)")
    p.add_argument("--epochs-schedule", metavar="RES:EPOCHS,...", default=None,
                   help="torch: progressive resizing phases, e.g. '32:16,48:3,64:2' (the default)")
    p.add_argument("--epochs", type=int, default=10, help="numpy: number of epochs (default 10)")
    p.add_argument("--widths", default=None, metavar="W,W,...",
                   help="stage widths (default torch 32,64,128,256,256; numpy 16,32,64)")
    p.add_argument("--batch-size", type=int, default=None, help="default torch 128, numpy 64")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default torch 0.2, numpy adam 1e-3)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    p.add_argument("--threads", type=int, default=None, help="torch: CPU threads")
    p.add_argument("--init-from", metavar="CHECKPOINT.pt", default=None,
                   help="torch: warm start from an earlier run's checkpoint.pt (weights only)")
    p.add_argument("--stop-after", type=int, default=None, metavar="EPOCHS",
                   help="torch: stop after this many epochs of the schedule")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.set_defaults(func=run_train)


def _parse_ints(text, what):
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise GradscopeError(f"{what} must be comma-separated integers, got {text!r}") from None


def _parse_schedule(text):
    phases = []
    for part in text.split(","):
        res, sep, epochs = part.partition(":")
        try:
            phases.append((int(res), int(epochs)))
        except ValueError:
            raise GradscopeError(f"--epochs-schedule must look like '32:16,48:3,64:2', got {text!r}") from None
    return tuple(phases)


def run_train(args) -> int:
    from tqdm import tqdm

    widths = _parse_ints(args.widths, "--widths") if args.widths else None
    if args.engine == "torch":
        from gradscope.cnn.train_torch import DEFAULT_SCHEDULE, train_tinyimagenet_torch

        schedule = _parse_schedule(args.epochs_schedule) if args.epochs_schedule else DEFAULT_SCHEDULE
        bar = tqdm(desc="train (torch)", unit="step", file=sys.stderr, leave=False, disable=None)

        def progress(info):
            if "step" in info:
                bar.total = info["steps"]
                bar.n = info["step"]
                bar.set_postfix(epoch=info["epoch"], loss=f"{info['loss']:.3f}")
            else:
                bar.write(json.dumps(info))

        kwargs = {"widths": widths} if widths else {}
        kwargs.update({k: v for k, v in (("batch_size", args.batch_size), ("lr", args.lr),
                                         ("init_from", args.init_from), ("stop_after", args.stop_after))
                       if v is not None})
        result = train_tinyimagenet_torch(args.data, args.out, schedule=schedule, seed=args.seed,
                                          threads=args.threads, limit=args.limit, resume=args.resume,
                                          progress=progress, **kwargs)
        bar.close()
    else:
        from gradscope.cnn.train_numpy import train_tinyimagenet_numpy

        torch_only = [flag for flag, v in (("--epochs-schedule", args.epochs_schedule), ("--threads", args.threads),
                                           ("--init-from", args.init_from), ("--stop-after", args.stop_after)) if v]
        if torch_only:
            raise GradscopeError(f"{', '.join(torch_only)}: only for --engine torch (numpy takes --epochs)")
        result = train_tinyimagenet_numpy(
            args.data, args.out, widths=widths or (16, 32, 64), num_epochs=args.epochs,
            batch_size=args.batch_size or 64, learning_rate=args.lr or 1e-3, limit=args.limit,
            seed=args.seed, resume=args.resume,
            callback=lambda r: tqdm.write(f"epoch {r.epoch}: train loss {r.train_loss:.4f} "
                                          + " ".join(f"{k} {v:.4f}" for k, v in r.val.items())))
    print(f"val top-1 {result.val_top1:.4f}  top-5 {result.val_top5:.4f}")
    print(f"wrote {result.weights_path}.json and .npz")
    return 0


# ---------------------------------------------------------------- cnn evaluate

def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="top-1, top-5 and per-class accuracy on a TinyImageNet split")
    p.add_argument("--data", required=True, metavar="DIR", help="TinyImageNet directory")
    p.add_argument("--split", choices=("val", "train"), default="val")
    p.add_argument("--model", metavar="SPEC", default=None, help=MODEL_HELP)
    p.add_argument("--weights", metavar="PATH", default=None, help="weights file for torch model specs")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N images")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--json", action="store_true", help="print JSON (includes every class)")
    p.set_defaults(func=run_evaluate)


def _dataset_for_model(data_dir, model):
    """The dataset restricted to (and indexed like) the model's classes, matched by wnid."""
    from gradscope.data.tinyimagenet import TinyImageNet

    full = TinyImageNet(data_dir)
    known = [w for w in model.wnids if w in full.index]
    if not known:
        raise DataError(f"none of the model's {len(model.wnids)} classes (by wnid) are in {data_dir!r}")
    if len(known) < len(model.wnids):
        raise DataError(f"{len(model.wnids) - len(known)} of the model's classes are missing from "
                        f"{data_dir!r} (e.g. {next(w for w in model.wnids if w not in full.index)!r})")
    return TinyImageNet(data_dir, classes=list(model.wnids))


def run_evaluate(args) -> int:
    from tqdm import tqdm

    from gradscope.cnn.evaluate import evaluate_accuracy
    from gradscope.modelspec import load_image_model

    model = load_image_model(args.model, args.weights)
    ds = _dataset_for_model(args.data, model)
    with tqdm(desc=f"load {args.split}", unit="img", file=sys.stderr, leave=False, disable=None) as bar:
        split = ds.load(args.split, limit=args.limit, progress=lambda d, t: (setattr(bar, "total", t), bar.update(1)))
    with tqdm(desc="evaluate", unit="img", file=sys.stderr, leave=False, disable=None) as bar:
        acc = evaluate_accuracy(model, split.X, split.y, batch_size=args.batch_size,
                                progress=lambda d, t: (setattr(bar, "total", t), bar.update(d - bar.n)))
    per_class = {w: (None if np.isnan(a) else float(a)) for w, a in zip(model.wnids, acc.per_class)}
    if args.json:
        print(json.dumps({"split": args.split, "images": acc.n, "top1": acc.top1, "top5": acc.top5,
                          "per_class": per_class}, indent=1))
        return 0
    print(f"{args.split}: {acc.n} images  top-1 {acc.top1:.4f}  top-5 {acc.top5:.4f}")
    scored = sorted(((a, w, n) for (w, a), n in zip(per_class.items(), model.class_names) if a is not None))
    if scored:
        print("hardest classes: " + "; ".join(f"{n.split(',')[0]} {a:.2f}" for a, w, n in scored[:5]))
        print("easiest classes: " + "; ".join(f"{n.split(',')[0]} {a:.2f}" for a, w, n in scored[::-1][:5]))
    return 0


# ---------------------------------------------------------------- cnn layers

def _add_layers(sub) -> None:
    p = sub.add_parser("layers", help="list a CNN's layers with their output shapes")
    p.add_argument("--model", metavar="PATH.json", default=None,
                   help="a saved NumPy CNN or efficientnet_lite0 (default: the shipped one)")
    p.add_argument("--input-size", type=int, default=None, help="input side to compute shapes for")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_layers)


def run_layers(args) -> int:
    from gradscope.cnn import CNN
    from gradscope.modelspec import load_image_model

    model = load_image_model(args.model)
    if not isinstance(model, CNN):
        raise GradscopeError(f"`cnn layers` lists NumPy CNN layers; {args.model!r} is not one "
                             f"(its addressable layers: {', '.join(model.layer_names)})")
    rows = model.describe(args.input_size)
    if args.json:
        print(json.dumps([dict(r, output_shape=list(r["output_shape"])) for r in rows], indent=1))
        return 0
    size = args.input_size or model.input_size
    print(f"{'#':>3}  {'layer':<12} {'type':<18} {'output (input ' + str(size) + 'x' + str(size) + ')':<22} params")
    for i, r in enumerate(rows):
        shape = "x".join(str(v) for v in r["output_shape"])
        print(f"{i:>3}  {r['name']:<12} {r['type']:<18} {shape:<22} {r['params']:,}")
    print(f"total params: {sum(r['params'] for r in rows):,}")
    return 0
