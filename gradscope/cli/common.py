"""Options and steps every image command shares: the model (--model, default EfficientNet-Lite0),
--json, --seed, reading the input photos, progress for the slow steps.

    p = sub.add_parser("saliency", ...)
    add_model_args(p); add_json_arg(p); add_output_args(p)       # add_output_args: cli.output
    ...
    model, info = load_model(args)                # info: the JSON envelope's "model"
    images = load_images(args.images)             # every file read before any work
"""
from __future__ import annotations

import os

from gradscope.cli.args import seed_int
from gradscope.modelspec import COURSE_MODEL, DEFAULT_MODEL, SHIPPED_MODELS


def model_help(default: str = DEFAULT_MODEL) -> str:
    shipped = "; ".join(f"'{m.spec}' ({m.name}, {m.dataset}, {m.input_size} px)" for m in SHIPPED_MODELS)
    return (f"model: {shipped}; or 'path/model.json', 'torchvision:NAME', 'file.py:factory' (this IMPORTS AND "
            f"RUNS file.py: use only files you trust) (default {default})")


def add_model_args(parser, default: str = DEFAULT_MODEL) -> None:
    """--model SPEC (default: EfficientNet-Lite0, or the course's model for TinyImageNet data) and
    --weights PATH."""
    parser.add_argument("--model", metavar="SPEC", default=default, help=model_help(default))
    parser.add_argument("--weights", metavar="PATH", default=None,
                        help="weights file for 'torchvision:NAME' and 'file.py:factory' models (default none)")


def add_json_arg(parser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print the results as JSON (the schema is in README, 'JSON output')")


def add_seed_arg(parser, default: int = 0) -> None:
    parser.add_argument("--seed", type=seed_int, default=default, help=f"random seed (default {default})")


def load_model(args, default: str = DEFAULT_MODEL):
    """(model, info): the model of --model/--weights and describe_model's dict of it."""
    from gradscope.modelspec import describe_model, load_image_model

    spec = getattr(args, "model", None) or default
    model = load_image_model(spec, getattr(args, "weights", None))
    return model, describe_model(model, spec)


def load_images(paths) -> list:
    """uint8 (H, W, 3) images of the paths, all read before any work (a bad file fails fast)."""
    from gradscope.imageio import load_image

    return [load_image(p) for p in paths]


def captioner_info(model, path=None) -> dict:
    """The JSON envelope's "model" of a captioner: name, data set it was trained on, the CNN
    whose features it reads, vocabulary size."""
    info = getattr(model, "info", None) or {}
    cnn = str(info.get("features", "")).split(":")[0]
    from gradscope.modelspec import shipped_model

    shipped = shipped_model(cnn) if cnn else None
    cnn_name = shipped.name if shipped is not None else (cnn or "unknown")
    data = str(info.get("data", "")).split(":")[0]
    data = {"flickr8k": "Flickr8k", "coco": "COCO", "synthetic": "synthetic shapes"}.get(data, data or None)
    cell = getattr(model, "cell", None)
    kind = getattr(cell, 'label', '') or str(getattr(model, 'cell_type', ''))
    members = len(getattr(model, "members", ()))
    kind = f"ensemble of {members} {kind} captioners" if members > 1 else f"{kind} captioner"
    name = f"{kind} on {cnn_name} features"
    return {"name": name, "spec": os.fspath(path) if path else "shipped", "dataset": data,
            "vocabulary": int(model.vocab_size)}


def captioner_help() -> str:
    from gradscope.captioning import DEFAULT_CAPTIONER

    return (f"captioner .npz (several separated by commas decode together as an ensemble), or a shipped one: "
            f"ensemble (two attention captioners decoding together), attention (one attention captioner, seed 0) or "
            f"global (an LSTM over pooled features); default {DEFAULT_CAPTIONER}")


__all__ = ["add_model_args", "add_json_arg", "add_seed_arg", "load_model", "load_images", "model_help",
           "captioner_info", "captioner_help", "DEFAULT_MODEL", "COURSE_MODEL"]
