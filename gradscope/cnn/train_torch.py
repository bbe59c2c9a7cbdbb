"""Train a gradscope CNN config with PyTorch (fast on a CPU), then export the weights
to the NumPy model's format. Requires the optional torch extra.

Recipe, chosen for accuracy per CPU-minute: schedule phases of (resolution, epochs) or
(resolution, epochs, crop): a phase trains on images resized to `resolution`, on random
`crop`-pixel windows of them when a crop is given (objects keep their test-time scale
at a fraction of the cost), else on shifted full images; the last phase at full size and
without a crop makes the batch-norm statistics match test time. Horizontal flips, SGD
with Nesterov momentum and a one-cycle learning rate, label smoothing, weight decay;
channels-last memory layout (several times faster convolutions on a CPU). Checkpoints
are written atomically after every epoch; `resume=True` continues from the last one.
"""
from __future__ import annotations

import io
import json
import math
import os
import time
from dataclasses import dataclass, field

import numpy as np

from gradscope.cnn.config import tiny_vgg
from gradscope.cnn.io import save_weights
from gradscope.data.tinyimagenet import TinyImageNet
from gradscope.errors import DataError
from gradscope.fileio import atomic_path, save_json

DEFAULT_SCHEDULE = ((64, 7, 48), (64, 1))  # (resolution, epochs[, crop]) phases


@dataclass
class TorchTrainResult:
    history: list = field(default_factory=list)   # one dict per epoch
    val_top1: float = float("nan")
    val_top5: float = float("nan")
    seconds: float = 0.0
    weights_path: str = ""


def _pixel_stats(X, chunk=4096):
    """Per-channel mean and std of uint8 images (N, H, W, 3) on the [0, 1] scale, in chunks
    (a float64 copy of all of X would take 8 bytes a pixel)."""
    total = np.zeros(3)
    total_sq = np.zeros(3)
    for i in range(0, X.shape[0], chunk):
        px = X[i:i + chunk].reshape(-1, 3).astype(np.float64) / 255.0
        total += px.sum(0)
        total_sq += (px * px).sum(0)
    n = X.shape[0] * X.shape[1] * X.shape[2]
    mean = total / n
    return mean, np.sqrt(np.maximum(total_sq / n - mean * mean, 0.0))


def _resize_all(X, size, batch=2048):
    """(N, H, W, 3) uint8 -> (N, 3, size, size) uint8, antialiased."""
    import torch
    import torch.nn.functional as F

    out = torch.empty((X.shape[0], 3, size, size), dtype=torch.uint8)
    for i in range(0, X.shape[0], batch):
        x = torch.from_numpy(X[i:i + batch]).permute(0, 3, 1, 2).float()
        if x.shape[-1] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[i:i + batch] = x.round().clamp(0, 255).to(torch.uint8)
    return out


def _augment(xb, res, gen, crop=None):
    """Random window and horizontal flip of a uint8 batch (N, 3, res, res) -> float.
    crop: side of a window taken inside the images; None: a res-pixel window of the
    reflect-padded batch (a shift of up to res // 8 pixels)."""
    import torch
    import torch.nn.functional as F

    n = xb.shape[0]
    if crop is None:
        pad = max(2, res // 8)
        x = F.pad(xb.float(), (pad, pad, pad, pad), mode="reflect")
        crop = res
    else:
        x = xb.float()
    oxy = torch.randint(0, x.shape[-1] - crop + 1, (n, 2), generator=gen).tolist()  # one window per image
    x = torch.stack([img[:, oy:oy + crop, ox:ox + crop] for img, (ox, oy) in zip(x, oxy)])
    flip = torch.rand(n, generator=gen) < 0.5
    x[flip] = x[flip].flip(-1)
    return x.contiguous(memory_format=torch.channels_last)


def _normalize(x, mean, std):
    return (x / 255.0 - mean) / std


def evaluate_torch(module, X, y, mean, std, batch=250):
    """Top-1 and top-5 accuracy of a torch module on uint8 (N, 3, H, W) images."""
    import torch

    module.eval()
    top1 = top5 = 0
    with torch.no_grad():
        for i in range(0, X.shape[0], batch):
            x = X[i:i + batch].float().contiguous(memory_format=torch.channels_last)
            s = module(_normalize(x, mean, std))
            t5 = s.topk(min(5, s.shape[1]), dim=1).indices
            yt = torch.from_numpy(y[i:i + batch])
            top1 += (t5[:, 0] == yt).sum().item()
            top5 += (t5 == yt[:, None]).any(1).sum().item()
    return top1 / X.shape[0], top5 / X.shape[0]


def _check_same_settings(path, saved: dict, now: dict) -> None:
    """GradscopeError naming the first recorded setting this run changes (a resumed run cannot
    honour it: the optimizer and schedule come from the checkpoint)."""
    from gradscope.errors import GradscopeError

    for key, value in now.items():
        if key in saved and saved[key] != value:
            raise GradscopeError(f"cannot resume from {os.fspath(path)!r}: it was written with {key}={saved[key]!r} "
                                 f"but this run has {key}={value!r}; resume with the checkpoint's settings or start "
                                 "a new run")


def _load_checkpoint(path) -> dict:
    """A checkpoint.pt written by this trainer (weights_only: never runs code); DataError
    naming the file when it is missing, truncated or of another kind."""
    import pickle
    import zipfile

    import torch

    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(f"checkpoint not found: {os.fspath(path)!r}") from None
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile) as e:
        raise DataError(f"cannot read checkpoint {os.fspath(path)!r} (truncated, corrupt or not a gradscope "
                        f"checkpoint.pt: {str(e).splitlines()[0] if str(e) else type(e).__name__}); delete it to "
                        "start over") from None
    if not isinstance(ck, dict) or not {"model", "history"} <= set(ck):
        raise DataError(f"{os.fspath(path)!r} is not a checkpoint.pt written by `gradscope cnn train`")
    return ck


def _load_state(module, state, path) -> None:
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        detail = next((ln.strip() for ln in str(e).splitlines()[1:] if ln.strip()), str(e))
        raise DataError(f"checkpoint {os.fspath(path)!r} does not fit this network (other --widths or data?): "
                        f"{detail}") from None


def _warm_start(module, config, path):
    """Load the weights of an earlier run into `module`: a checkpoint.pt, or an exported
    model .json (+ .npz) with the same layers. Returns that run's history, every record
    marked with its stage (records without one: the stage after the last marked one)."""
    if str(path).endswith(".json"):
        from gradscope.cnn.model import CNN
        from gradscope.cnn.torch_module import params_to_torch

        model = CNN.load(path)
        if model.layers != config["layers"]:
            raise DataError(f"{path}: its layers differ from the ones being trained (check --widths)")
        params_to_torch(config, model.params, model.buffers, module)
        history = model.config.get("training", {}).get("history", [])
    else:
        ck = _load_checkpoint(path)
        _load_state(module, ck["model"], path)
        history = json.loads(ck["history"])
    last = max((r["stage"] for r in history if "stage" in r), default=0)
    return [dict(r, stage=r.get("stage", last + 1)) for r in history]


def train_tinyimagenet_torch(data_root, out_dir, schedule=DEFAULT_SCHEDULE, widths=(32, 64, 128, 256, 256),
                             batch_size=128, lr=0.2, weight_decay=5e-4, label_smoothing=0.1,
                             seed=0, threads=None, limit=None, resume=True, init_from=None,
                             stop_after=None, progress=None):
    """Train tiny_vgg on a TinyImageNet directory; returns TorchTrainResult.

    Writes `<out_dir>/checkpoint.pt` (each epoch), `<out_dir>/history.json`, and the
    exported NumPy model `<out_dir>/model.json` + `model.npz`.
    init_from: a checkpoint.pt of an earlier run, or an exported model.json with the same
        layers, to start from (weights only: a warm start with a fresh optimizer and
        schedule); its history is kept, each record marked with its stage.
    stop_after: stop after this many epochs of the schedule (the checkpoint can be
        used with init_from by a shorter follow-up schedule).
    progress: optional callable(dict) called after every epoch and every 50 steps.
    """
    import torch
    import torch.nn.functional as F

    from gradscope.cnn.torch_module import build_torch_module, torch_to_params  # imports torch

    ckpt_path = os.path.join(out_dir, "checkpoint.pt")
    resume_from = _load_checkpoint(ckpt_path) if resume and os.path.exists(ckpt_path) else None  # fail before loading data
    settings = {"schedule": [list(p) for p in schedule], "widths": list(widths), "batch_size": batch_size, "lr": lr,
                "weight_decay": weight_decay, "label_smoothing": label_smoothing, "seed": seed, "limit": limit}
    if resume_from is not None:
        _check_same_settings(ckpt_path, json.loads(resume_from.get("settings", "{}")), settings)
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    t_start = time.time()
    ds = TinyImageNet(data_root)
    train = ds.load("train", limit=limit)
    val = ds.load("val")
    config = tiny_vgg(num_classes=ds.num_classes, widths=widths, input_size=train.X.shape[1])
    config["classes"] = {"wnids": ds.wnids, "names": ds.names}
    mean_px, std_px = _pixel_stats(train.X)
    config["preprocess"] = {"mean": [round(float(v), 5) for v in mean_px],
                            "std": [round(float(v), 5) for v in std_px]}
    mean = torch.tensor(config["preprocess"]["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(config["preprocess"]["std"]).view(1, 3, 1, 1)
    module = build_torch_module(config).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(module.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    n = train.X.shape[0]
    steps_per_epoch = math.ceil(n / batch_size)
    total_epochs = sum(phase[1] for phase in schedule)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total_epochs * steps_per_epoch,
                                                pct_start=0.25, div_factor=20, final_div_factor=200)
    os.makedirs(out_dir, exist_ok=True)
    history, epoch0, prior = [], 0, []
    if init_from:
        prior = _warm_start(module, config, init_from)
    if resume_from is not None:
        ck = resume_from
        _load_state(module, ck["model"], ckpt_path)
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        history = json.loads(ck["history"])
        epoch0 = len(history)
    val_full = _resize_all(val.X, config["input_size"])
    epoch = 0
    for res, n_epochs, *crop in schedule:
        crop = crop[0] if crop and crop[0] else None
        X = None
        for _ in range(n_epochs):
            epoch += 1
            if epoch <= epoch0:
                continue
            if stop_after is not None and epoch > stop_after:
                break
            if X is None:
                X = _resize_all(train.X, res)
            gen = torch.Generator().manual_seed(seed * 1000 + epoch)
            perm = torch.randperm(n, generator=gen)
            module.train()
            t0, loss_sum, correct = time.time(), 0.0, 0
            for step in range(steps_per_epoch):
                idx = perm[step * batch_size:(step + 1) * batch_size]
                xb = _normalize(_augment(X[idx], res, gen, crop), mean, std)
                yb = torch.from_numpy(train.y[idx.numpy()])
                scores = module(xb)
                loss = F.cross_entropy(scores, yb, label_smoothing=label_smoothing)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                loss_sum += loss.item() * len(idx)
                correct += (scores.argmax(1) == yb).sum().item()
                if progress is not None and step % 50 == 0:
                    progress({"epoch": epoch, "step": step, "steps": steps_per_epoch, "loss": loss.item()})
            v1, v5 = evaluate_torch(module, val_full, val.y, mean, std)
            rec = {"epoch": epoch, "resolution": res, "crop": crop, "train_loss": loss_sum / n, "train_acc": correct / n,
                   "val_top1": v1, "val_top5": v5, "lr": sched.get_last_lr()[0],
                   "epoch_seconds": time.time() - t0}
            history.append(rec)
            buffer = io.BytesIO()  # torch serializes into memory, Python writes: a full disk is one OSError
            torch.save({"model": module.state_dict(), "opt": opt.state_dict(),
                        "sched": sched.state_dict(), "history": json.dumps(history),
                        "settings": json.dumps(settings)}, buffer)
            with atomic_path(ckpt_path) as tmp, open(tmp, "wb") as f:
                f.write(buffer.getbuffer())
            save_json(os.path.join(out_dir, "history.json"), history)
            if progress is not None:
                progress(rec)
    params, buffers = torch_to_params(config, module)
    config["training"] = {"recipe": "torch one-cycle SGD, random crops, full-size last phase", "schedule": [list(s) for s in schedule],
                          "history": prior + history, "seconds": time.time() - t_start}
    weights = os.path.join(out_dir, "model")
    save_weights(weights, config, params, buffers)
    v1, v5 = (history[-1]["val_top1"], history[-1]["val_top5"]) if history else (float("nan"),) * 2
    return TorchTrainResult(history, v1, v5, time.time() - t_start, weights)
