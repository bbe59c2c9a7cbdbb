"""Training the NumPy CNN with the generic Trainer, and accuracy evaluation."""
import numpy as np
import pytest

from gradscope.cnn import CNN, tiny_vgg
from gradscope.cnn.evaluate import evaluate_accuracy
from gradscope.cnn.train_numpy import ImageArrayDataset, train_cnn_numpy
from gradscope.errors import ShapeError


def toy_images(n, rng, size=8):
    """Two classes a small CNN can tell apart: bright left half vs bright right half."""
    y = rng.integers(0, 2, n)
    X = rng.integers(0, 60, (n, size, size, 3)).astype(np.uint8)
    for i, c in enumerate(y):
        X[i, :, c * size // 2:(c + 1) * size // 2] += 180
    return X, y


def small_model(seed=0):
    return CNN(tiny_vgg(num_classes=2, widths=(4, 8), input_size=8), seed=seed)


def test_dataset_batches_and_augmentation():
    rng = np.random.default_rng(0)
    X, y = toy_images(6, rng)
    model = small_model()
    plain = ImageArrayDataset(X, y, model, augment=False)
    xb, yb = plain.batch(np.array([4, 1]), rng=np.random.default_rng(0))
    assert xb.shape == (2, 3, 8, 8) and xb.dtype == np.float32 and yb.tolist() == [y[4], y[1]]
    assert np.array_equal(model.deprocess(xb), X[[4, 1]])
    aug = ImageArrayDataset(X, y, model, augment=True, shift=2)
    a1, _ = aug.batch(np.arange(6), rng=np.random.default_rng(3))
    a2, _ = aug.batch(np.arange(6), rng=np.random.default_rng(3))
    assert np.array_equal(a1, a2) and not np.array_equal(a1, plain.batch(np.arange(6))[0])
    big = ImageArrayDataset(np.repeat(np.repeat(X, 2, axis=1), 2, axis=2), y, model)  # 16x16 -> 8x8
    assert big.X.shape == (6, 8, 8, 3)
    with pytest.raises(ShapeError, match="uint8"):
        ImageArrayDataset(X.astype(np.float32), y, model)


def test_numpy_training_learns_and_resumes(tmp_path):
    rng = np.random.default_rng(0)
    X, y = toy_images(48, rng)
    Xv, yv = toy_images(20, rng)
    model = small_model()
    result = train_cnn_numpy(model, X, y, Xv, yv, num_epochs=3, batch_size=16,
                             optim_config={"learning_rate": 1e-2}, augment=False, checkpoint_dir=tmp_path,
                             progress=False)
    assert len(result.loss_history) == 9
    assert np.mean(result.loss_history[-3:]) < np.mean(result.loss_history[:3])
    assert result.epochs[-1].val["val_top1"] >= 0.8
    assert not np.allclose(model.buffers["bn1.running_var"], 1.0)  # running statistics were learned
    resumed_model = small_model()
    resumed = train_cnn_numpy(resumed_model, X, y, Xv, yv, num_epochs=4, batch_size=16,
                              optim_config={"learning_rate": 1e-2}, augment=False, checkpoint_dir=tmp_path, resume=True,
                              progress=False)
    assert resumed.resumed_from == 3 and len(resumed.loss_history) == 12
    assert resumed.loss_history[:9] == result.loss_history


def test_evaluate_accuracy_counts():
    class Fixed:
        class_names = ["a", "b", "c"]

        def preprocess(self, X):
            return X

        def scores(self, x):
            return x  # the "images" are the scores

    scores = np.array([[3, 2, 1], [1, 3, 2], [3, 1, 2], [1, 2, 3]], float)
    acc = evaluate_accuracy(Fixed(), scores, np.array([0, 1, 1, 1]), batch_size=3)
    assert acc.top1 == 0.5 and acc.top5 == 1.0 and acc.n == 4
    assert np.allclose(acc.per_class, [1, 1 / 3, np.nan], equal_nan=True)  # class c has no images
    assert acc.counts.tolist() == [1, 3, 0]
