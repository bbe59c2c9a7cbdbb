"""Commands for the CNN: `classify` images, and the `cnn` group: train, soup, evaluate, layers."""
from __future__ import annotations

import json
import os
import sys

import numpy as np

from gradscope.cli.args import default_of, int_list, positive_float, positive_int, positive_list, schedule, seed_int
from gradscope.cli.common import (COURSE_MODEL, DEFAULT_MODEL, add_json_arg, add_model_args, load_images, load_model,
                                  model_help)
from gradscope.cli.output import class_fields, emit, envelope, output_folder
from gradscope.cli.progress import Progress
from gradscope.fileio import clean_stale_temp_files
from gradscope.errors import DataError, GradscopeError

MODEL_HELP = model_help()  # kept for modules that import it
CHECKPOINTS = {"torch": "checkpoint.pt", "numpy": "checkpoint.npz"}


def register(subparsers) -> None:
    p = subparsers.add_parser("classify", help="top classes of images (EfficientNet-Lite0 unless --model)")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (any size; centre-cropped)")
    p.add_argument("--top", type=positive_int, default=5, help="how many classes to show (default 5)")
    add_model_args(p)
    add_json_arg(p)
    p.set_defaults(func=run_classify)

    cnn = subparsers.add_parser("cnn", help="train, evaluate or inspect the NumPy CNN")
    sub = cnn.add_subparsers(dest="cnn_command", metavar="SUBCOMMAND")
    cnn.set_defaults(func=lambda args: (cnn.print_help(), 0)[1])
    _add_train(sub)
    _add_soup(sub)
    _add_evaluate(sub)
    _add_layers(sub)


# ---------------------------------------------------------------- classify

def run_classify(args) -> int:
    model, info = load_model(args)
    images = load_images(args.images)
    results = []
    with Progress("classify", total=len(images), unit="images") as bar:
        all_scores = []
        for k, image in enumerate(images):
            all_scores.append(np.asarray(model.scores(model.preprocess([image])), dtype=np.float64)[0])
            bar.update(k + 1)
    for path, scores in zip(args.images, all_scores):
        probs = np.exp(scores - scores.max())
        probs /= probs.sum()
        top = np.argsort(-scores)[:args.top]
        results.append({"image": path, **class_fields(model, top[0]), "probability": float(probs[top[0]]),
                        "top": [{**class_fields(model, c), "wnid": str(model.wnids[c]),
                                 "probability": float(probs[c]), "score": float(scores[c])} for c in top]})
    lines = []
    for r in results:
        lines.append(r["image"])
        lines += [f"  {rank}. {t['probability']:6.1%}  {t['wnid']}  {t['class_name']}"
                  for rank, t in enumerate(r["top"], 1)]
    emit(args, envelope("classify", info, results), lines)
    return 0


# ---------------------------------------------------------------- cnn train

def _engine_defaults(name: str, numpy_name: str | None = None) -> str:
    """'default torch X, numpy Y': the training functions' own defaults, for --help."""
    from gradscope.cnn.train_numpy import train_tinyimagenet_numpy
    from gradscope.cnn.train_torch import train_tinyimagenet_torch

    shown = lambda v: ",".join(map(str, v)) if isinstance(v, tuple) else v  # noqa: E731
    numpy = default_of(train_tinyimagenet_numpy, numpy_name or name)
    return f"default torch {shown(default_of(train_tinyimagenet_torch, name))}, numpy {shown(numpy)}"


def _add_train(sub) -> None:
    from gradscope.cnn.train_numpy import train_tinyimagenet_numpy
    from gradscope.cnn.train_torch import DEFAULT_SCHEDULE

    p = sub.add_parser("train", help="train a tiny VGG on a TinyImageNet directory",
                       description="Train a tiny VGG. --resume continues an interrupted run from the checkpoint "
                                   "in --out exactly; it is an error when there is none. Defaults not shown "
                                   "come from the training functions (gradscope.cnn.train_torch / train_numpy).")
    p.add_argument("--data", required=True, metavar="DIR", help="TinyImageNet directory (wnids.txt, train/, val/)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder: checkpoints, history, model.json/.npz")
    p.add_argument("--engine", choices=("torch", "numpy"), default="torch",
                   help="torch (fast; exports NumPy weights) or numpy (slow; hand-written backward) (default %(default)s)")
    p.add_argument("--epochs-schedule", metavar="RES:EPOCHS[:CROP],...", type=schedule, default=None,
                   help="torch: phases of epochs on images resized to RES, on random CROP-pixel windows if given "
                        "(default " + ",".join(":".join(map(str, ph)) for ph in DEFAULT_SCHEDULE) + ")")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help=f"numpy: number of epochs (default {default_of(train_tinyimagenet_numpy, 'num_epochs')})")
    p.add_argument("--widths", type=int_list, default=None, metavar="W,W,...",
                   help=f"stage widths ({_engine_defaults('widths')})")
    p.add_argument("--batch-size", type=positive_int, default=None, help=_engine_defaults("batch_size"))
    p.add_argument("--lr", type=positive_float, default=None,
                   help=f"(peak) learning rate ({_engine_defaults('lr', 'learning_rate')})")
    p.add_argument("--limit", type=positive_int, default=None, help="use only the first N training images (default all)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch: CPU threads (default: torch's own choice)")
    p.add_argument("--init-from", metavar="CHECKPOINT.pt|MODEL.json", default=None,
                   help="torch: warm start from an earlier run's checkpoint.pt or exported model.json (weights only) "
                        "(default none)")
    p.add_argument("--stop-after", type=positive_int, default=None, metavar="EPOCHS",
                   help="torch: stop after this many epochs of the schedule (default: run it all)")
    from gradscope.cnn.distill import DistillSettings

    p.add_argument("--teacher", metavar="LOGITS.npz", default=None,
                   help="torch: distil a teacher's cached logits (written by scripts/teacher_logits.py) (default none)")
    p.add_argument("--distill-weight", type=positive_float, default=None,
                   help=f"torch: weight of the distillation loss (default {DistillSettings.weight}; the label loss "
                        "takes the rest)")
    p.add_argument("--temperature", type=positive_float, default=None,
                   help=f"torch: distillation temperature (default {DistillSettings.temperature})")
    p.add_argument("--teacher-images-only", action="store_true",
                   help="torch: train only on the images the --teacher file covers (a subset of train)")
    p.add_argument("--seed", type=seed_int, default=0, help="random seed (default %(default)s)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out (error if none)")
    p.set_defaults(func=run_train)


def _given(args, **names) -> dict:
    """{library parameter: value} of the options the user gave (the rest keep the library's defaults)."""
    return {param: getattr(args, flag) for param, flag in names.items() if getattr(args, flag) is not None}


def run_train(args) -> int:
    checkpoint = CHECKPOINTS[args.engine]
    if args.resume and not os.path.isfile(os.path.join(args.out, checkpoint)):
        raise DataError(f"--resume: {args.out!r} has no {checkpoint} to continue from (a run writes it after its "
                        "first epoch); run without --resume to start")
    if args.engine == "numpy":
        torch_only = [flag for flag, v in (("--epochs-schedule", args.epochs_schedule), ("--threads", args.threads),
                                           ("--init-from", args.init_from), ("--stop-after", args.stop_after),
                                           ("--teacher", args.teacher)) if v]
        if torch_only:
            raise GradscopeError(f"{', '.join(torch_only)}: only for --engine torch (numpy takes --epochs)")
    elif args.epochs is not None:
        raise GradscopeError("--epochs is for --engine numpy; the torch engine takes --epochs-schedule")
    keep = lambda folder: os.path.isfile(os.path.join(folder, checkpoint))  # noqa: E731 - for --resume
    if args.resume:
        clean_stale_temp_files(args.out)  # what a killed run was writing
    with output_folder(args.out, "--out", keep=keep), Progress("cnn train", unit="steps") as bar:
        result = (_train_torch if args.engine == "torch" else _train_numpy)(args, bar)
    print(f"val top-1 {result.val_top1:.4f}  top-5 {result.val_top5:.4f}")
    print(f"wrote {result.weights_path}.json and .npz")
    return 0


def _train_torch(args, bar):
    from gradscope.cnn.distill import DistillSettings
    from gradscope.cnn.train_torch import train_tinyimagenet_torch

    def progress(info):
        if "step" in info:
            bar.update(info["step"], info["steps"], epoch=info["epoch"], loss=info["loss"])
        else:
            bar.write(json.dumps(info))

    kwargs = _given(args, schedule="epochs_schedule", widths="widths", batch_size="batch_size", lr="lr",
                    init_from="init_from", stop_after="stop_after", threads="threads", limit="limit")
    if args.teacher_images_only and not args.teacher:
        raise GradscopeError("--teacher-images-only needs --teacher")
    distill = DistillSettings(args.teacher, teacher_images_only=args.teacher_images_only,
                              **_given(args, weight="distill_weight", temperature="temperature"))
    return train_tinyimagenet_torch(args.data, args.out, seed=args.seed, resume=args.resume, progress=progress,
                                    distill=distill, **kwargs)


def _train_numpy(args, bar):
    from gradscope.cnn.train_numpy import train_tinyimagenet_numpy

    def epoch_line(r):
        bar.write(f"epoch {r.epoch}: train loss {r.train_loss:.4f} " + " ".join(f"{k} {v:.4f}" for k, v in r.val.items()))

    kwargs = _given(args, widths="widths", num_epochs="epochs", batch_size="batch_size", learning_rate="lr",
                    limit="limit")
    return train_tinyimagenet_numpy(args.data, args.out, seed=args.seed, resume=args.resume,
                                    progress=sys.stderr.isatty(), callback=epoch_line, **kwargs)


# ---------------------------------------------------------------- cnn evaluate

def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="top-1, top-5 and per-class accuracy on a TinyImageNet split")
    p.add_argument("--data", required=True, metavar="DIR", help="TinyImageNet directory")
    p.add_argument("--split", choices=("val", "val-select", "val-report", "train"), default="val",
                   help="which split; val-select / val-report: the fixed halves of val (alternate images of "
                        "each class) (default %(default)s)")
    add_model_args(p, default=COURSE_MODEL)
    p.add_argument("--limit", type=positive_int, default=None, help="evaluate only the first N images (default all)")
    from gradscope.cnn.evaluate import evaluate_accuracy

    p.add_argument("--batch-size", type=positive_int, default=default_of(evaluate_accuracy, "batch_size"),
                   help="images per forward pass (default %(default)s)")
    add_json_arg(p)
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
    from gradscope.cnn.evaluate import evaluate_accuracy

    model, info = load_model(args, COURSE_MODEL)
    ds = _dataset_for_model(args.data, model)
    with Progress(f"load {args.split}", unit="images") as bar:
        split = ds.load(args.split, limit=args.limit, progress=bar.update)
    with Progress("evaluate", unit="images") as bar:
        acc = evaluate_accuracy(model, split.X, split.y, batch_size=args.batch_size, progress=bar.update)
    per_class = {w: (None if np.isnan(a) else float(a)) for w, a in zip(model.wnids, acc.per_class)}
    lines = [f"{args.split}: {acc.n} images  top-1 {acc.top1:.4f}  top-5 {acc.top5:.4f}"]
    scored = sorted(((a, w, n) for (w, a), n in zip(per_class.items(), model.class_names) if a is not None))
    if scored:
        lines.append("hardest classes: " + "; ".join(f"{n.split(',')[0]} {a:.2f}" for a, w, n in scored[:5]))
        lines.append("easiest classes: " + "; ".join(f"{n.split(',')[0]} {a:.2f}" for a, w, n in scored[::-1][:5]))
    emit(args, envelope("cnn evaluate", info, [{"data": args.data, "split": args.split, "images": acc.n,
                                                "top1": acc.top1, "top5": acc.top5, "per_class": per_class}]),
         lines)
    return 0


# ---------------------------------------------------------------- cnn soup

def _add_soup(sub) -> None:
    from gradscope.cnn.soup import recompute_batchnorm

    p = sub.add_parser("soup", help="average the weights of CNNs fine-tuned from one start (a model soup) and "
                                    "measure its batch-norm statistics again on training images",
                       description="Write the network whose weights are the (weighted) mean of the given ones' "
                                   "(networks of one architecture, fine-tuned from the same weights), with its "
                                   "batch-norm statistics measured again on --bn-per-class training images of "
                                   "each class of --data (gradscope.cnn.soup).")
    p.add_argument("models", nargs="+", metavar="MODEL.json", help="saved NumPy CNNs of one architecture")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder: model.json and model.npz")
    p.add_argument("--data", metavar="DIR", default=None,
                   help="TinyImageNet directory whose training images measure the batch-norm statistics "
                        "(default none: the members' statistics are averaged like the weights)")
    p.add_argument("--bn-per-class", type=positive_int, default=30,
                   help="training images per class for the statistics (default %(default)s)")
    p.add_argument("--mix", type=positive_list, default=None,
                   help="comma-separated weight of each model, normalised to sum 1 (default equal)")
    p.add_argument("--batch-size", type=positive_int, default=default_of(recompute_batchnorm, "batch_size"),
                   help="images per batch for the statistics (default %(default)s)")
    p.add_argument("--seed", type=seed_int, default=default_of(recompute_batchnorm, "seed"),
                   help="seed of the order of the training images (default %(default)s)")
    p.set_defaults(func=run_soup)


def run_soup(args) -> int:
    from gradscope.cnn import load_cnn
    from gradscope.cnn.soup import average_weights, recompute_batchnorm

    if args.mix is not None and len(args.mix) != len(args.models):
        raise GradscopeError(f"--mix gives {len(args.mix)} weights for {len(args.models)} models")
    models = [load_cnn(path) for path in args.models]
    soup = average_weights(models, args.mix)
    if args.data is not None:
        ds = _dataset_for_model(args.data, soup)
        with Progress("load train", unit="images") as bar:
            train = ds.load("train", per_class=args.bn_per_class, size=soup.input_size, progress=bar.update)
        with Progress("batch-norm statistics", unit="batches") as bar:
            recompute_batchnorm(soup, train.X, batch_size=args.batch_size, seed=args.seed, progress=bar.update)
    with output_folder(args.out, "--out"):
        stem = os.path.join(args.out, "model")
        soup.save(stem)
    how = (f"batch-norm statistics from {len(train.y)} training images" if args.data is not None
           else "batch-norm statistics averaged")
    print(f"averaged {len(models)} networks ({how})")
    print(f"wrote {stem}.json and .npz")
    return 0


# ---------------------------------------------------------------- cnn layers

def _add_layers(sub) -> None:
    p = sub.add_parser("layers", help="list a CNN's layers with their output shapes")
    p.add_argument("--model", metavar="SPEC", default=DEFAULT_MODEL,
                   help="'efficientnet_lite0', 'tinyimagenet' or a saved NumPy CNN's model.json "
                        "(default %(default)s, the image commands' model)")
    p.add_argument("--input-size", type=positive_int, default=None,
                   help="input side to compute shapes for (default the model's input size)")
    add_json_arg(p)
    p.set_defaults(func=run_layers)


def run_layers(args) -> int:
    from gradscope.cnn import CNN

    model, info = load_model(args)
    if not isinstance(model, CNN):
        raise GradscopeError(f"`cnn layers` lists NumPy CNN layers; {args.model!r} is not one "
                             f"(its addressable layers: {', '.join(model.layer_names)})")
    rows = model.describe(args.input_size)
    size = args.input_size or model.input_size
    lines = [f"{'#':>3}  {'layer':<12} {'type':<18} {'output (input ' + str(size) + 'x' + str(size) + ')':<22} params"]
    lines += [f"{i:>3}  {r['name']:<12} {r['type']:<18} {'x'.join(str(v) for v in r['output_shape']):<22} "
              f"{r['params']:,}" for i, r in enumerate(rows)]
    lines.append(f"total params: {sum(r['params'] for r in rows):,}")
    records = [{"layer": r["name"], **{k: v for k, v in r.items() if k != "name"},
                "output_shape": list(r["output_shape"])} for r in rows]
    emit(args, envelope("cnn layers", info, records, input_size=size), lines)
    return 0
