"""The generic Trainer and the update rules: convergence, torch parity, clipping,
exact kill-and-resume, atomic checkpoints, validation records."""
import os

import numpy as np
import pytest

from gradscope.errors import GradscopeError
from gradscope.layers.core import affine_backward, affine_forward, softmax_loss
from gradscope.training import ArrayDataset, Trainer, clip_by_global_norm
from gradscope.training.optim import UPDATE_RULES, get_update_rule
from gradscope.training.plots import plot_loss_curve


class SoftmaxRegression:
    """A non-captioning model: linear scores + softmax cross-entropy."""

    def __init__(self, dim, classes, seed=0):
        rng = np.random.default_rng(seed)
        self.params = {"W": 0.01 * rng.standard_normal((dim, classes)), "b": np.zeros(classes)}

    def loss(self, X, y):
        scores, cache = affine_forward(X, self.params["W"], self.params["b"])
        loss, dscores = softmax_loss(scores, y)
        _, dW, db = affine_backward(dscores, cache)
        return loss, {"W": dW, "b": db}

    def accuracy(self, X, y):
        return float(((X @ self.params["W"] + self.params["b"]).argmax(1) == y).mean())


class NoisyDataset(ArrayDataset):
    """Augments with the trainer's rng, so resuming must restore the rng state."""

    def batch(self, indices, rng=None):
        X, y = super().batch(indices)
        return X + 0.01 * rng.standard_normal(X.shape), y


class CrashingDataset(NoisyDataset):
    """Raises on the n-th batch request: a run killed mid-epoch."""

    def __init__(self, *arrays, crash_at):
        super().__init__(*arrays)
        self.calls, self.crash_at = 0, crash_at

    def batch(self, indices, rng=None):
        self.calls += 1
        if self.calls == self.crash_at:
            raise KeyboardInterrupt("killed")
        return super().batch(indices, rng)


def blobs(n=120, dim=5, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = 3 * rng.standard_normal((classes, dim))
    y = rng.integers(0, classes, n)
    return centers[y] + rng.standard_normal((n, dim)), y


@pytest.mark.parametrize("name", sorted(UPDATE_RULES))
def test_each_rule_decreases_a_quadratic(name):
    rule = get_update_rule(name)
    target = np.linspace(-1, 1, 6)
    w, config = np.zeros(6), {"learning_rate": 0.05}
    start = np.sum((w - target) ** 2)
    for _ in range(200):
        w, config = rule(w, 2 * (w - target), config)
    assert np.sum((w - target) ** 2) < 1e-2 * start


def test_rules_keep_float32():
    for rule in UPDATE_RULES.values():
        w, config = rule(np.ones(3, np.float32), np.ones(3, np.float32), {"learning_rate": 0.1})
        w, _ = rule(w, np.ones(3, np.float32), config)
        assert w.dtype == np.float32


@pytest.mark.parametrize("name", ["sgd", "sgd_momentum", "rmsprop", "adam"])
def test_rules_match_torch(name):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    w0, grads = rng.standard_normal((4, 5)), rng.standard_normal((6, 4, 5))
    p = torch.nn.Parameter(torch.tensor(w0))
    make = {"sgd": lambda: torch.optim.SGD([p], lr=0.1),
            "sgd_momentum": lambda: torch.optim.SGD([p], lr=0.1, momentum=0.9),
            "rmsprop": lambda: torch.optim.RMSprop([p], lr=0.1, alpha=0.99, eps=1e-8),
            "adam": lambda: torch.optim.Adam([p], lr=0.1, betas=(0.9, 0.999), eps=1e-8)}
    opt = make[name]()
    w, config = w0.copy(), {"learning_rate": 0.1}
    for g in grads:
        p.grad = torch.tensor(g)
        opt.step()
        w, config = UPDATE_RULES[name](w, g, config)
    np.testing.assert_allclose(w, p.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_unknown_rule_is_a_clear_error():
    with pytest.raises(GradscopeError, match="unknown update rule 'adamw'"):
        get_update_rule("adamw")


def test_clip_by_global_norm():
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}
    norm = clip_by_global_norm(grads, 1.0)
    assert norm == pytest.approx(5.0)
    assert np.sqrt(sum(np.sum(g ** 2) for g in grads.values())) == pytest.approx(1.0)
    np.testing.assert_allclose(grads["a"], [0.6, 0.0])
    small = {"a": np.array([0.1, 0.2])}
    clip_by_global_norm(small, 1.0)
    np.testing.assert_array_equal(small["a"], [0.1, 0.2])  # below the limit: untouched


def test_trainer_clips_the_step():
    class Steep:
        params = {"w": np.zeros(3)}

        def loss(self):
            return 0.0, {"w": np.array([1e3, 1e3, 1e3])}

    class One:
        def __len__(self):
            return 1

        def batch(self, indices, rng=None):
            return ()

    model = Steep()
    Trainer(model, One(), update_rule="sgd", optim_config={"learning_rate": 1.0}, batch_size=1,
            num_epochs=1, clip_norm=0.5, progress=False).train()
    assert np.linalg.norm(model.params["w"]) == pytest.approx(0.5)


def test_trains_a_non_captioning_model():
    X, y = blobs()
    model = SoftmaxRegression(5, 3)
    result = Trainer(model, ArrayDataset(X, y), update_rule="sgd_momentum", optim_config={"learning_rate": 0.1},
                     batch_size=16, num_epochs=8, progress=False).train()
    assert len(result.loss_history) == 8 * 8  # ceil(120 / 16) iterations per epoch
    assert result.loss_history[-1] < 0.3 * result.loss_history[0]
    assert model.accuracy(X, y) > 0.9
    assert [r.epoch for r in result.epochs] == list(range(1, 9))


def test_lr_decay_and_validation_records():
    X, y = blobs()
    model = SoftmaxRegression(5, 3)
    result = Trainer(model, ArrayDataset(X[:100], y[:100]), ArrayDataset(X[100:], y[100:]),
                     optim_config={"learning_rate": 0.02}, lr_decay=0.5, batch_size=25, num_epochs=3,
                     val_fn=lambda m: {"acc": m.accuracy(X[100:], y[100:])}, progress=False).train()
    assert [r.learning_rate for r in result.epochs] == pytest.approx([0.02, 0.01, 0.005])
    assert all(set(r.val) == {"val_loss", "acc"} for r in result.epochs)
    best = min(result.epochs, key=lambda r: r.val["val_loss"])
    assert result.best_val == {"epoch": best.epoch, "metric": "val_loss", "value": best.val["val_loss"]}


def _trainer(model, data, ckpt, epochs):
    return Trainer(model, data, update_rule="adam", optim_config={"learning_rate": 0.05}, lr_decay=0.8,
                   batch_size=32, num_epochs=epochs, clip_norm=5.0, seed=3, checkpoint_dir=ckpt, progress=False)


def test_kill_and_resume_equals_uninterrupted(tmp_path):
    X, y = blobs()
    full_model = SoftmaxRegression(5, 3, seed=0)
    full = _trainer(full_model, NoisyDataset(X, y), tmp_path / "full", 5).train()

    killed_model = SoftmaxRegression(5, 3, seed=0)
    crash = CrashingDataset(X, y, crash_at=4 * 2 + 3)  # 4 batches per epoch: dies inside epoch 3
    with pytest.raises(KeyboardInterrupt):
        _trainer(killed_model, crash, tmp_path / "run", 5).train(resume=True)
    fresh_model = SoftmaxRegression(5, 3, seed=99)  # different init: everything must come from the checkpoint
    resumed = _trainer(fresh_model, NoisyDataset(X, y), tmp_path / "run", 5).train(resume=True)

    assert resumed.resumed_from == 2
    for k in full_model.params:
        np.testing.assert_array_equal(fresh_model.params[k], full_model.params[k])
    assert resumed.loss_history == full.loss_history
    assert [r.train_loss for r in resumed.epochs] == [r.train_loss for r in full.epochs]
    assert sorted(os.listdir(tmp_path / "run")) == ["checkpoint.npz"]  # no temporary files left


def test_resume_extends_a_finished_run(tmp_path):
    X, y = blobs()
    a, b = SoftmaxRegression(5, 3), SoftmaxRegression(5, 3)
    _trainer(a, NoisyDataset(X, y), tmp_path / "a", 4).train()
    _trainer(b, NoisyDataset(X, y), tmp_path / "b", 2).train()
    result = _trainer(b, NoisyDataset(X, y), tmp_path / "b", 4).train(resume=True)
    assert len(result.epochs) == 4
    np.testing.assert_array_equal(a.params["W"], b.params["W"])


def test_resume_refuses_a_different_setup(tmp_path):
    X, y = blobs()
    _trainer(SoftmaxRegression(5, 3), NoisyDataset(X, y), tmp_path, 1).train()
    other = Trainer(SoftmaxRegression(5, 3), NoisyDataset(X, y), batch_size=10, num_epochs=2, seed=3,
                    checkpoint_dir=tmp_path, progress=False)
    with pytest.raises(GradscopeError, match="batch_size"):
        other.train(resume=True)


def test_resume_without_checkpoint_starts_fresh(tmp_path):
    X, y = blobs()
    result = _trainer(SoftmaxRegression(5, 3), NoisyDataset(X, y), tmp_path / "new", 1).train(resume=True)
    assert result.resumed_from == 0 and len(result.epochs) == 1


def test_diverging_loss_is_a_clear_error():
    X, y = blobs()
    X[0, 0] = np.nan
    with pytest.raises(GradscopeError, match="diverged"):
        Trainer(SoftmaxRegression(5, 3), ArrayDataset(X, y), batch_size=200, num_epochs=1, progress=False).train()


def test_bad_settings_are_clear_errors():
    X, y = blobs()
    with pytest.raises(GradscopeError, match="batch_size"):
        Trainer(SoftmaxRegression(5, 3), ArrayDataset(X, y), batch_size=0)
    with pytest.raises(GradscopeError, match="params"):
        Trainer(object(), ArrayDataset(X, y))


def test_plot_loss_curve_writes_png(tmp_path):
    X, y = blobs()
    result = Trainer(SoftmaxRegression(5, 3), ArrayDataset(X, y), ArrayDataset(X, y), batch_size=10,
                     num_epochs=2, progress=False).train()
    path = tmp_path / "loss.png"
    plot_loss_curve(result, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(tmp_path) == ["loss.png"]


@pytest.mark.parametrize("with_dir", [False, True])
def test_keep_best_restores_the_best_epochs_parameters(tmp_path, with_dir):
    X, y = blobs()
    model = SoftmaxRegression(5, 3)
    seen = {}

    def val_fn(m):  # a made-up score that peaks at epoch 2; remember the params it saw
        epoch = len(seen) + 1
        seen[epoch] = {k: v.copy() for k, v in m.params.items()}
        return {"score": -abs(epoch - 2)}

    ckpt = str(tmp_path) if with_dir else None
    result = Trainer(model, ArrayDataset(X, y), optim_config={"learning_rate": 0.05}, batch_size=16,
                     num_epochs=4, val_fn=val_fn, monitor="score", monitor_mode="max", keep_best=True,
                     checkpoint_dir=ckpt, progress=False).train()
    assert result.best_val["epoch"] == 2
    for k in model.params:
        np.testing.assert_array_equal(model.params[k], seen[2][k])
        assert not np.array_equal(model.params[k], seen[4][k])
    assert os.path.exists(os.path.join(str(tmp_path), "best.npz")) == with_dir


def test_trainer_is_silent_unless_given_progress_and_drop_last_counts_full_batches(capfd):
    X, y = blobs()
    n = len(X)
    result = Trainer(SoftmaxRegression(5, 3), ArrayDataset(X, y), batch_size=64, num_epochs=2).train()
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # no bar, no print by default
    assert result.iterations == 2 * -(-n // 64)
    seen = []
    result = Trainer(SoftmaxRegression(5, 3), ArrayDataset(X, y), batch_size=64, num_epochs=2, drop_last=True,
                     progress=lambda done, total: seen.append((done, total))).train()
    per_epoch = n // 64
    assert result.iterations == 2 * per_epoch and seen == [(i, 2 * per_epoch) for i in range(1, 2 * per_epoch + 1)]
    big = Trainer(SoftmaxRegression(5, 3), ArrayDataset(X, y), batch_size=10 * n, num_epochs=3, drop_last=True)
    assert big.train().iterations == 3  # smaller than one batch: one batch of everything per epoch
    with pytest.raises(GradscopeError, match="progress"):
        Trainer(SoftmaxRegression(5, 3), ArrayDataset(X, y), progress="yes").train()
