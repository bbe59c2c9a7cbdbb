"""A model-agnostic minibatch trainer with exact checkpoint/resume.

A model is any object with `params` (dict of arrays) and `loss(*batch) -> (loss, grads)`
where grads is keyed like params; an optional `buffers` dict (e.g. batch-norm running
statistics) is checkpointed too. A dataset is any object with `__len__()` and
`batch(indices, rng=None) -> tuple` of the arguments for `model.loss`.

Each epoch visits every example once, in the order of a permutation drawn from one
seeded `np.random.Generator`; the generator's state, the parameters and the optimizer
state are written atomically after every epoch, so `train(resume=True)` after a kill
continues exactly as an uninterrupted run would.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from gradscope.errors import DataError, GradscopeError
from gradscope.fileio import json_array, load_npz, read_json_array, save_npz
from gradscope.training.optim import get_update_rule

__all__ = ["Trainer", "TrainResult", "EpochRecord", "ArrayDataset", "clip_by_global_norm",
           "CHECKPOINT_NAME"]

CHECKPOINT_NAME = "checkpoint.npz"
BEST_NAME = "best.npz"
_FORMAT = "gradscope-trainer-checkpoint/1"


@dataclass
class EpochRecord:
    """Numbers of one finished epoch (1-based); `val` holds val_fn's numbers and/or val_loss."""
    epoch: int
    train_loss: float
    learning_rate: float
    seconds: float
    val: dict = field(default_factory=dict)


@dataclass
class TrainResult:
    """loss_history: the loss of every iteration (including resumed-from epochs);
    epochs: EpochRecords; best_val: {'epoch', 'metric', 'value'} of the best monitored
    validation number (None without one); seconds: wall time of this train() call."""
    loss_history: list
    epochs: list
    best_val: dict | None
    seconds: float
    iterations: int
    resumed_from: int = 0


class ArrayDataset:
    """In-memory arrays sharing their first axis; batch(indices) -> tuple of slices."""

    def __init__(self, *arrays):
        if not arrays:
            raise GradscopeError("ArrayDataset needs at least one array")
        n = len(arrays[0])
        if any(len(a) != n for a in arrays):
            raise GradscopeError(f"ArrayDataset arrays differ in length: {[len(a) for a in arrays]}")
        self.arrays = arrays

    def __len__(self):
        return len(self.arrays[0])

    def batch(self, indices, rng=None):
        return tuple(a[indices] for a in self.arrays)


def clip_by_global_norm(grads: dict, max_norm: float) -> float:
    """Scale all gradients in place so that their joint L2 norm is at most max_norm.
    Returns the norm before clipping."""
    norm = math.sqrt(sum(float(np.vdot(g, g).real) for g in grads.values()))
    if norm > max_norm:
        scale = max_norm / (norm + 1e-12)
        for g in grads.values():
            g *= scale
    return norm


@dataclass
class _State:
    """Everything that evolves during training (and is checkpointed)."""
    rng: np.random.Generator
    configs: dict
    loss_history: list = field(default_factory=list)
    records: list = field(default_factory=list)
    epoch: int = 0


class Trainer:
    """Minibatch training of `model` on `train_data`.

    Args:
        update_rule: 'sgd', 'sgd_momentum', 'rmsprop', 'adam' or a rule callable.
        optim_config: hyperparameters for the rule (copied per parameter), e.g. learning_rate.
        lr_decay: learning rates are multiplied by this after every epoch.
        clip_norm: if set, gradients are rescaled to this global L2 norm at most.
        checkpoint_dir: if set, `checkpoint.npz` there is rewritten after every epoch.
        val_fn: `val_fn(model) -> dict of numbers`, run after every epoch; with val_data,
            the mean loss over val_data is added as 'val_loss'.
        monitor, monitor_mode: the validation number that picks best_val, 'min' or 'max'.
        keep_best: after training, put back the parameters of the best_val epoch (kept in
            memory and, with checkpoint_dir, in `best.npz` there, so a resumed run has them too).
        callback: called with each EpochRecord after its checkpoint is written.
        progress: None (default) reports nothing; a callable is called as progress(done, total)
            after every iteration; True draws a tqdm bar on stderr (only when asked for).
        drop_last: an epoch is len // batch_size full batches (the permutation's remainder is
            left out, as the CS231n solver counts), or one batch when the data is smaller.
    """

    def __init__(self, model, train_data, val_data=None, *, update_rule="adam", optim_config=None,
                 lr_decay=1.0, batch_size=100, num_epochs=10, clip_norm=None, seed=0,
                 checkpoint_dir=None, val_fn=None, progress=None, callback=None,
                 monitor="val_loss", monitor_mode="min", keep_best=False, drop_last=False):
        _check_model_and_data(model, train_data, val_data)
        _check_settings(batch_size, num_epochs, lr_decay, clip_norm, monitor_mode)
        self.model, self.train_data, self.val_data = model, train_data, val_data
        self.rule_name = update_rule if isinstance(update_rule, str) else getattr(update_rule, "__name__", "custom")
        self.update_rule = get_update_rule(update_rule)
        self.optim_config = dict(optim_config or {})
        self.lr_decay, self.batch_size, self.num_epochs = float(lr_decay), int(batch_size), int(num_epochs)
        self.clip_norm = None if clip_norm is None else float(clip_norm)
        self.seed = int(seed)
        self.checkpoint_dir = None if checkpoint_dir is None else os.fspath(checkpoint_dir)
        self.val_fn, self.progress, self.callback = val_fn, progress, callback
        self.monitor, self.monitor_mode = monitor, monitor_mode
        self.keep_best, self._best_params = bool(keep_best), None
        self.drop_last = bool(drop_last)

    @property
    def checkpoint_path(self):
        return None if self.checkpoint_dir is None else os.path.join(self.checkpoint_dir, CHECKPOINT_NAME)

    def iterations_per_epoch(self) -> int:
        if self.drop_last:
            return max(len(self.train_data) // self.batch_size, 1)
        return math.ceil(len(self.train_data) / self.batch_size)

    def train(self, resume: bool = False) -> TrainResult:
        """Train to num_epochs; with resume=True, continue from the checkpoint if there is one."""
        start = time.perf_counter()
        state = self._resume_state() if resume else None
        state = state or _State(rng=np.random.default_rng(self.seed),
                                configs={k: dict(self.optim_config) for k in self.model.params})
        resumed_from = state.epoch
        bar = _Progress(self.progress, self.iterations_per_epoch() * self.num_epochs, len(state.loss_history))
        try:
            for epoch in range(state.epoch + 1, self.num_epochs + 1):
                self._run_epoch(state, epoch, bar)
        finally:
            bar.close()
        self._restore_best(state)
        return TrainResult(loss_history=list(state.loss_history), epochs=list(state.records),
                           best_val=self._best(state.records), seconds=time.perf_counter() - start,
                           iterations=len(state.loss_history), resumed_from=resumed_from)

    # --- one epoch -------------------------------------------------------------------

    def _run_epoch(self, state: _State, epoch: int, bar) -> None:
        t0 = time.perf_counter()
        order = state.rng.permutation(len(self.train_data))
        losses = []
        for i in range(0, self.iterations_per_epoch() * self.batch_size, self.batch_size):
            loss = self._step(state, order[i:i + self.batch_size], len(state.loss_history))
            state.loss_history.append(loss)
            losses.append(loss)
            bar(len(state.loss_history), loss, epoch)
        lr = _learning_rate(state.configs)  # the rate this epoch used, before its decay
        for config in state.configs.values():
            if "learning_rate" in config:
                config["learning_rate"] *= self.lr_decay
        record = EpochRecord(epoch=epoch, train_loss=float(np.mean(losses)), learning_rate=lr,
                             seconds=time.perf_counter() - t0, val=self._validate())
        state.records.append(record)
        state.epoch = epoch
        self._keep_if_best(state)
        if self.checkpoint_dir is not None:
            self._save_checkpoint(state)
        if self.callback is not None:
            self.callback(record)

    def _step(self, state: _State, indices, iteration: int) -> float:
        batch = self.train_data.batch(indices, rng=state.rng)
        loss, grads = self.model.loss(*batch)
        loss = float(loss)
        if not math.isfinite(loss):
            raise GradscopeError(f"training diverged: loss is {loss} at iteration {iteration}; "
                                 "try a lower learning rate or gradient clipping")
        missing = set(self.model.params) - set(grads)
        if missing:
            raise GradscopeError(f"model.loss returned no gradient for: {', '.join(sorted(missing))}")
        if self.clip_norm is not None:
            clip_by_global_norm({k: grads[k] for k in self.model.params}, self.clip_norm)
        params = self.model.params
        for name in params:
            params[name], state.configs[name] = self.update_rule(params[name], grads[name], state.configs[name])
        return loss

    def _validate(self) -> dict:
        val = {}
        if self.val_data is not None:
            val["val_loss"] = _mean_loss(self.model, self.val_data, self.batch_size)
        if self.val_fn is not None:
            out = self.val_fn(self.model)
            if not isinstance(out, dict):
                raise GradscopeError(f"val_fn must return a dict of numbers, got {type(out).__name__}")
            val.update({str(k): float(v) for k, v in out.items()})
        return val

    def _keep_if_best(self, state: _State) -> None:
        best = self._best(state.records)
        if not self.keep_best or best is None or best["epoch"] != state.epoch:
            return
        self._best_params = {k: np.array(v, copy=True) for k, v in self.model.params.items()}
        if self.checkpoint_dir is not None:
            save_npz(os.path.join(self.checkpoint_dir, BEST_NAME), self._best_params)

    def _restore_best(self, state: _State) -> None:
        best = self._best(state.records)
        if not self.keep_best or best is None or best["epoch"] == state.epoch:
            return  # the final parameters are the best ones
        params = self._best_params
        if params is None and self.checkpoint_dir is not None:
            params = load_npz(os.path.join(self.checkpoint_dir, BEST_NAME))
        if params is None:
            raise GradscopeError("keep_best: the best epoch's parameters were not kept")
        for name in self.model.params:
            self.model.params[name] = params[name].astype(self.model.params[name].dtype)

    def _best(self, records) -> dict | None:
        scored = [(r.val[self.monitor], r.epoch) for r in records if self.monitor in r.val]
        if not scored:
            return None
        pick = min if self.monitor_mode == "min" else max
        value, epoch = pick(scored, key=lambda s: s[0])
        return {"epoch": epoch, "metric": self.monitor, "value": value}

    # --- checkpoints -------------------------------------------------------------------

    def _settings(self) -> dict:
        """What must agree between a checkpoint and the trainer that resumes from it."""
        settings = {"seed": self.seed, "batch_size": self.batch_size, "update_rule": self.rule_name,
                    "lr_decay": self.lr_decay, "clip_norm": self.clip_norm, "n_train": len(self.train_data),
                    "params": {k: list(np.shape(v)) for k, v in self.model.params.items()},
                    "optim_config": {k: _json_scalar(v) for k, v in sorted(self.optim_config.items())}}
        if self.drop_last:  # only when set, so that older checkpoints still resume
            settings["drop_last"] = True
        return settings

    def _save_checkpoint(self, state: _State) -> None:
        arrays = {f"param/{k}": v for k, v in self.model.params.items()}
        arrays.update({f"buffer/{k}": v for k, v in getattr(self.model, "buffers", {}).items()})
        scalars = {}
        for name, config in state.configs.items():
            for key, value in config.items():
                if isinstance(value, np.ndarray):
                    arrays[f"optim/{name}/{key}"] = value
                else:
                    scalars.setdefault(name, {})[key] = _json_scalar(value)
        meta = {"format": _FORMAT, "epoch": state.epoch, "rng_state": state.rng.bit_generator.state,
                "optim_scalars": scalars, "records": [asdict(r) for r in state.records],
                "settings": self._settings()}
        arrays["loss_history"] = np.asarray(state.loss_history, dtype=np.float64)
        arrays["meta"] = json_array(meta)
        save_npz(self.checkpoint_path, arrays, compressed=False)

    def _resume_state(self) -> _State | None:
        """The state stored in checkpoint_dir, loaded into the model; None if there is none."""
        if self.checkpoint_path is None or not os.path.exists(self.checkpoint_path):
            return None
        arrays = load_npz(self.checkpoint_path)
        meta = read_json_array(arrays, "meta", self.checkpoint_path, _FORMAT, "gradscope trainer checkpoint")
        self._check_resumable(meta)
        for prefix, target in (("param/", self.model.params), ("buffer/", getattr(self.model, "buffers", {}))):
            for k in target:
                if prefix + k in arrays:
                    target[k] = arrays[prefix + k].astype(np.asarray(target[k]).dtype)
        configs = {k: dict(self.optim_config) for k in self.model.params}
        for name, scalars in meta["optim_scalars"].items():
            configs[name].update(scalars)
        for key, value in arrays.items():
            if key.startswith("optim/"):
                name, _, slot = key[len("optim/"):].rpartition("/")
                configs[name][slot] = value
        rng = np.random.default_rng()
        rng.bit_generator.state = meta["rng_state"]
        return _State(rng=rng, configs=configs, loss_history=arrays["loss_history"].tolist(),
                      records=[EpochRecord(**r) for r in meta["records"]], epoch=int(meta["epoch"]))

    def _check_resumable(self, meta: dict) -> None:
        """GradscopeError naming the first setting (e.g. learning_rate) the checkpoint was written
        with that this run changes: a resumed run cannot honour it, and would record it falsely."""
        saved, now = meta["settings"], self._settings()
        if "optim_config" not in saved:  # written before checkpoints recorded it
            now.pop("optim_config")
        saved, now = _flat_settings(saved), _flat_settings(now)
        for key in list(now) + [k for k in saved if k.startswith("optim_config.") and k not in now]:
            if saved.get(key) != now.get(key):
                name = key.partition(".")[2] or key
                raise GradscopeError(
                    f"cannot resume from {self.checkpoint_path!r}: it was written with {name}={saved.get(key)!r} "
                    f"but this run has {name}={now.get(key)!r}; resume with the checkpoint's settings or start a "
                    "new run")



class _Progress:
    """Per-iteration progress: nothing (None/False), progress(done, total), or a tqdm bar (True)."""

    def __init__(self, progress, total, done):
        self.fn, self.bar = None, None
        if progress is True:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=min(done, total), unit="it", leave=False, desc="train")
        elif callable(progress):
            self.fn, self.total = progress, total
        elif progress not in (None, False):
            raise GradscopeError(f"progress must be None, True or a callable(done, total), got {progress!r}")

    def __call__(self, done, loss, epoch):
        if self.fn is not None:
            self.fn(done, self.total)
        elif self.bar is not None:
            self.bar.update(1)
            if done % 10 == 1:
                self.bar.set_postfix(epoch=epoch, loss=f"{loss:.4f}")

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _flat_settings(settings: dict) -> dict:
    """settings with the optimizer's hyperparameters as keys of their own ('optim_config.learning_rate')."""
    out = {k: v for k, v in settings.items() if k != "optim_config"}
    out.update({f"optim_config.{k}": v for k, v in (settings.get("optim_config") or {}).items()})
    return out


def _json_scalar(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    raise GradscopeError(f"cannot checkpoint optimizer state of type {type(value).__name__}")


def _learning_rate(configs: dict) -> float:
    for config in configs.values():
        if "learning_rate" in config:
            return float(config["learning_rate"])
    return float("nan")


def _mean_loss(model, data, batch_size: int) -> float:
    """Example-weighted mean of model.loss over a dataset, in order."""
    total, n = 0.0, len(data)
    for i in range(0, n, batch_size):
        idx = np.arange(i, min(i + batch_size, n))
        total += float(model.loss(*data.batch(idx))[0]) * len(idx)
    return total / max(n, 1)


def _check_model_and_data(model, train_data, val_data) -> None:
    if not isinstance(getattr(model, "params", None), dict) or not callable(getattr(model, "loss", None)):
        raise GradscopeError("the model must have a `params` dict and a `loss(*batch)` method")
    for name, data in (("train_data", train_data), ("val_data", val_data)):
        if data is None and name == "val_data":
            continue
        if not hasattr(data, "__len__") or not callable(getattr(data, "batch", None)):
            raise GradscopeError(f"{name} must have __len__() and batch(indices, rng=None)")
    if len(train_data) == 0:
        raise GradscopeError("train_data is empty")


def _check_settings(batch_size, num_epochs, lr_decay, clip_norm, monitor_mode) -> None:
    if int(batch_size) < 1:
        raise GradscopeError(f"batch_size must be at least 1, got {batch_size}")
    if int(num_epochs) < 0:
        raise GradscopeError(f"num_epochs must be non-negative, got {num_epochs}")
    if not float(lr_decay) > 0:
        raise GradscopeError(f"lr_decay must be positive, got {lr_decay}")
    if clip_norm is not None and not float(clip_norm) > 0:
        raise GradscopeError(f"clip_norm must be positive, got {clip_norm}")
    if monitor_mode not in ("min", "max"):
        raise GradscopeError(f"monitor_mode must be 'min' or 'max', got {monitor_mode!r}")
