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
Optionally distils a teacher (gradscope.cnn.distill: cached teacher logits, KL at a
temperature plus the label loss). Each epoch is scored on the 'val-select' half of val.
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
from gradscope.cnn.distill import DistillSettings
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


def distill_loss(scores, labels, teacher, has_teacher, settings: DistillSettings, label_smoothing=0.0):
    """Mean over the batch of (1 - w) * cross-entropy(labels) + w * T^2 * KL(softmax(teacher / T)
    || softmax(scores / T)) for rows with a teacher, cross-entropy alone for the others.
    scores, teacher: (B, C); labels: (B,); has_teacher: (B,) bool."""
    import torch.nn.functional as F

    ce = F.cross_entropy(scores, labels, label_smoothing=label_smoothing, reduction="none")  # (B,)
    T, w = settings.temperature, settings.weight
    p_t = F.softmax(teacher / T, dim=1)
    kl = (p_t * (F.log_softmax(teacher / T, dim=1) - F.log_softmax(scores / T, dim=1))).sum(1) * T * T  # (B,)
    mask = has_teacher.to(scores.dtype)
    return (ce * (1 - w * mask) + w * mask * kl).mean()


def _teacher_batches(settings: DistillSettings, train, data_root, num_classes):
    """(logits, has) torch tensors for the training images, or None without a teacher."""
    if settings.teacher is None:
        return None
    import torch

    from gradscope.cnn.distill import load_teacher_logits, relative_files

    logits, has = load_teacher_logits(settings.teacher, relative_files(train.files, data_root), num_classes)
    return torch.from_numpy(logits), torch.from_numpy(has)


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


@dataclass
class _Data:
    """What one training run reads: the training images, val at the network's input size,
    the network's config (classes and pixel statistics filled in), and the teacher's logits."""
    train: object            # TinyImageNet split: .X (N, 64, 64, 3) uint8, .y (N,), .files
    val_full: object         # (M, 3, S, S) uint8 torch tensor
    val_y: np.ndarray        # (M,)
    config: dict
    mean: object             # (1, 3, 1, 1) torch tensors on the [0, 1] scale
    std: object
    teacher: object = None   # (logits (N, C), has (N,)) torch tensors, or None


def _settings_record(schedule, widths, batch_size, lr, weight_decay, label_smoothing, seed, limit,
                     distill: DistillSettings, val_split) -> dict:
    """The settings a checkpoint records; a resumed run must have the same ones."""
    return {"schedule": [list(p) for p in schedule], "widths": list(widths), "batch_size": batch_size, "lr": lr,
            "weight_decay": weight_decay, "label_smoothing": label_smoothing, "seed": seed, "limit": limit,
            "distill": [os.path.basename(distill.teacher or ""), distill.weight, distill.temperature,
                        distill.teacher_images_only], "val_split": val_split}


def _load_data(data_root, widths, limit, distill: DistillSettings, val_split) -> _Data:
    import torch

    ds = TinyImageNet(data_root)
    only = None
    if distill.teacher_images_only:
        from gradscope.cnn.distill import teacher_files

        only = set(teacher_files(distill.teacher))
    train = ds.load("train", limit=limit, only=only)
    val = ds.load(val_split)
    config = tiny_vgg(num_classes=ds.num_classes, widths=widths, input_size=train.X.shape[1])
    config["classes"] = {"wnids": ds.wnids, "names": ds.names}
    mean_px, std_px = _pixel_stats(train.X)
    config["preprocess"] = {"mean": [round(float(v), 5) for v in mean_px],
                            "std": [round(float(v), 5) for v in std_px]}
    mean = torch.tensor(config["preprocess"]["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(config["preprocess"]["std"]).view(1, 3, 1, 1)
    teacher = _teacher_batches(distill, train, ds.root, ds.num_classes)
    return _Data(train, _resize_all(val.X, config["input_size"]), val.y, config, mean, std, teacher)


def _train_epoch(module, opt, sched, X, data: _Data, res, crop, gen, batch_size, label_smoothing,
                 distill: DistillSettings, epoch, progress=None):
    """One pass over the training images X (N, 3, res, res) uint8 in a seeded order; returns
    (mean loss, accuracy) on the augmented batches. progress(dict) every 50 steps."""
    import torch
    import torch.nn.functional as F

    n = X.shape[0]
    steps = math.ceil(n / batch_size)
    perm = torch.randperm(n, generator=gen)
    module.train()
    loss_sum, correct = 0.0, 0
    for step in range(steps):
        idx = perm[step * batch_size:(step + 1) * batch_size]
        xb = _normalize(_augment(X[idx], res, gen, crop), data.mean, data.std)
        yb = torch.from_numpy(data.train.y[idx.numpy()])
        scores = module(xb)  # (B, C)
        if data.teacher is None:
            loss = F.cross_entropy(scores, yb, label_smoothing=label_smoothing)
        else:
            loss = distill_loss(scores, yb, data.teacher[0][idx], data.teacher[1][idx], distill, label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        loss_sum += loss.item() * len(idx)
        correct += (scores.argmax(1) == yb).sum().item()
        if progress is not None and step % 50 == 0:
            progress({"epoch": epoch, "step": step, "steps": steps, "loss": loss.item()})
    return loss_sum / n, correct / n


def _save_checkpoint(path, module, opt, sched, history, settings) -> None:
    """checkpoint.pt, atomically: everything a resumed run needs."""
    import torch

    buffer = io.BytesIO()  # torch serializes into memory, Python writes: a full disk is one OSError
    torch.save({"model": module.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                "history": json.dumps(history), "settings": json.dumps(settings)}, buffer)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(buffer.getbuffer())


def _export(out_dir, module, data: _Data, schedule, history, distill: DistillSettings, seconds) -> str:
    """The trained network as a NumPy model (out_dir/model.json + .npz), its training recorded
    in the config; returns the path without extension."""
    from gradscope.cnn.torch_module import torch_to_params

    config = data.config
    params, buffers = torch_to_params(config, module)
    config["training"] = {"recipe": "torch one-cycle SGD, random crops, full-size last phase",
                          "schedule": [list(s) for s in schedule], "history": history, "seconds": seconds}
    if distill.teacher is not None:
        config["training"]["distill"] = {"teacher": os.path.basename(distill.teacher), "weight": distill.weight,
                                         "temperature": distill.temperature,
                                         "teacher_images_only": distill.teacher_images_only,
                                         "images_with_teacher": int(data.teacher[1].sum())}
    weights = os.path.join(out_dir, "model")
    save_weights(weights, config, params, buffers)
    return weights


def train_tinyimagenet_torch(data_root, out_dir, schedule=DEFAULT_SCHEDULE, widths=(32, 64, 128, 256, 256),
                             batch_size=128, lr=0.2, weight_decay=5e-4, label_smoothing=0.1,
                             seed=0, threads=None, limit=None, resume=True, init_from=None,
                             stop_after=None, progress=None, distill: DistillSettings = DistillSettings(),
                             val_split="val-select"):
    """Train tiny_vgg on a TinyImageNet directory; returns TorchTrainResult.

    Writes `<out_dir>/checkpoint.pt` (each epoch), `<out_dir>/history.json`, and the
    exported NumPy model `<out_dir>/model.json` + `model.npz`.
    init_from: a checkpoint.pt of an earlier run, or an exported model.json with the same
        layers, to start from (weights only: a warm start with a fresh optimizer and
        schedule); its history is kept, each record marked with its stage.
    stop_after: stop after this many epochs of the schedule (the checkpoint can be
        used with init_from by a shorter follow-up schedule).
    progress: optional callable(dict) called after every epoch and every 50 steps.
    distill: teacher file, weight and temperature of the distillation loss (default: none).
    val_split: the split scored after every epoch (default the selection half of val).
    """
    import torch

    from gradscope.cnn.torch_module import build_torch_module  # imports torch

    ckpt_path = os.path.join(out_dir, "checkpoint.pt")
    resume_from = _load_checkpoint(ckpt_path) if resume and os.path.exists(ckpt_path) else None  # fail before loading data
    settings = _settings_record(schedule, widths, batch_size, lr, weight_decay, label_smoothing, seed, limit,
                                distill, val_split)
    if resume_from is not None:
        _check_same_settings(ckpt_path, json.loads(resume_from.get("settings", "{}")), settings)
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    t_start = time.time()
    data = _load_data(data_root, widths, limit, distill, val_split)
    module = build_torch_module(data.config).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(module.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(data.train.X.shape[0] / batch_size)
    total_epochs = sum(phase[1] for phase in schedule)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total_epochs * steps_per_epoch,
                                                pct_start=0.25, div_factor=20, final_div_factor=200)
    os.makedirs(out_dir, exist_ok=True)
    prior = _warm_start(module, data.config, init_from) if init_from else []
    history = []
    if resume_from is not None:
        _load_state(module, resume_from["model"], ckpt_path)
        opt.load_state_dict(resume_from["opt"])
        sched.load_state_dict(resume_from["sched"])
        history = json.loads(resume_from["history"])
    epoch = 0
    for res, n_epochs, *crop in schedule:
        crop = crop[0] if crop and crop[0] else None
        X = None  # (N, 3, res, res) uint8, made on the phase's first epoch that runs
        for _ in range(n_epochs):
            epoch += 1
            if epoch <= len(history) or (stop_after is not None and epoch > stop_after):
                continue
            if X is None:
                X = _resize_all(data.train.X, res)
            gen = torch.Generator().manual_seed(seed * 1000 + epoch)
            t0 = time.time()
            train_loss, train_acc = _train_epoch(module, opt, sched, X, data, res, crop, gen, batch_size,
                                                 label_smoothing, distill, epoch, progress)
            v1, v5 = evaluate_torch(module, data.val_full, data.val_y, data.mean, data.std)
            rec = {"epoch": epoch, "resolution": res, "crop": crop, "train_loss": train_loss, "train_acc": train_acc,
                   "val_split": val_split, "val_top1": v1, "val_top5": v5, "lr": sched.get_last_lr()[0],
                   "epoch_seconds": time.time() - t0}
            history.append(rec)
            _save_checkpoint(ckpt_path, module, opt, sched, history, settings)
            save_json(os.path.join(out_dir, "history.json"), history)
            if progress is not None:
                progress(rec)
    weights = _export(out_dir, module, data, schedule, prior + history, distill, time.time() - t_start)
    v1, v5 = (history[-1]["val_top1"], history[-1]["val_top5"]) if history else (float("nan"),) * 2
    return TorchTrainResult(history, v1, v5, time.time() - t_start, weights)
