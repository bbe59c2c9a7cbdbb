"""gradscope.course.classifiers.pretrained_cnn.PretrainedCNN and image_utils: the course's
block indexing, its image units, and gradients with respect to those units."""
import numpy as np
import pytest

from gradscope.cnn import load_pretrained
from gradscope.cnn.course_h5 import load_course_h5
from gradscope.course.classifiers.pretrained_cnn import PretrainedCNN, default_mean_image
from gradscope.course.image_utils import blur_image, deprocess_image, image_from_url, preprocess_image
from gradscope.errors import DataError, GradscopeError
from gradscope.imageio import save_image
from test_course_h5 import CLASSES, course_arrays, manual_forward, write_h5


@pytest.fixture(scope="module")
def shipped():
    return PretrainedCNN(dtype=np.float64)


def course_images(rng, n=2, size=64):
    pixels = rng.integers(0, 256, (n, size, size, 3)).astype(np.float64)
    return pixels.transpose(0, 3, 1, 2) - default_mean_image()[None], pixels


def test_shipped_model_reads_course_units(shipped):
    rng = np.random.default_rng(0)
    X, pixels = course_images(rng)
    reference = load_pretrained(dtype=np.float64)
    x = reference.preprocess(pixels.astype(np.uint8))  # the model's own preprocessing of the pixels
    np.testing.assert_allclose(shipped.loss(X), reference.scores(x), rtol=1e-6, atol=1e-6)
    assert len(shipped.blocks) == 10 and shipped.blocks[-1] == ("gap", "fc")


def test_blocks_chain_and_backward_is_the_gradient_in_course_units(shipped):
    rng = np.random.default_rng(1)
    X, _ = course_images(rng, n=1)
    scores, _ = shipped.forward(X)
    mid, _ = shipped.forward(X, end=3)
    np.testing.assert_allclose(shipped.forward(mid, start=4)[0], scores, rtol=1e-9)
    out, cache = shipped.forward(X, start=0, end=3)
    dout = rng.standard_normal(out.shape)
    dX, grads = shipped.backward(dout, cache)
    assert dX.shape == X.shape and "conv1.W" in grads
    v = rng.standard_normal(X.shape)  # directional derivative of sum(out * dout) along v
    eps = 1e-5  # small enough that no ReLU or max-pool choice flips (1e-3 flips some)
    f = lambda Z: float(np.sum(shipped.forward(Z, end=3)[0] * dout))  # noqa: E731
    numeric = (f(X + eps * v) - f(X - eps * v)) / (2 * eps)
    assert float(np.sum(dX * v)) == pytest.approx(numeric, rel=1e-5)
    dmid, _ = shipped.backward(np.ones_like(scores), shipped.forward(mid, start=4)[1])
    assert dmid.shape == mid.shape
    with pytest.raises(GradscopeError, match="block index in 0..9"):
        shipped.forward(X, end=10)


def test_other_sizes_take_the_mean_pixel(shipped):
    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 256, (1, 80, 96, 3)).astype(np.float64)
    X = preprocess_image(pixels[0], default_mean_image(), mean="pixel").astype(np.float64)
    feats, _ = shipped.forward(X, end=7)
    x = load_pretrained(dtype=np.float64)
    lo, hi = x.pixel_bounds()
    ref, _ = x.forward(lo + pixels.transpose(0, 3, 1, 2) * (hi - lo) / 255, end="relu8")
    np.testing.assert_allclose(feats, ref, rtol=1e-4, atol=1e-6)  # X passed through float32


def test_course_h5_model_is_the_course_network_on_course_units(tmp_path):
    rng = np.random.default_rng(3)
    arrays = course_arrays(rng)
    path = write_h5(tmp_path / "pretrained_model.h5", arrays)
    model = PretrainedCNN(dtype=np.float64, num_classes=CLASSES, h5_file=str(path))
    assert len(model.blocks) == 11 and model.blocks[9] == ("flatten", "relu10")
    X = 50 * rng.standard_normal((2, 3, 64, 64))
    ref = manual_forward({k: v.astype(np.float64) for k, v in arrays.items()}, X)
    np.testing.assert_allclose(model.loss(X), ref, rtol=1e-5, atol=1e-6)
    feats, cache = model.forward(X, end=3)  # after 4 conv blocks
    direct, _ = load_course_h5(path, dtype=np.float64).forward(X, end="relu4")
    np.testing.assert_allclose(feats, direct)
    dX, _ = model.backward(np.ones_like(feats), cache)
    assert dX.shape == X.shape
    loss, grads = model.loss(X, np.array([0, 1]))
    assert np.isfinite(loss) and grads["fc11.W"].shape == (7, CLASSES)
    with pytest.raises(GradscopeError, match="num_classes"):
        PretrainedCNN(h5_file=str(path))


def test_image_utils_follow_the_course():
    rng = np.random.default_rng(4)
    mean = 100 + 10 * rng.standard_normal((3, 8, 8))
    img = rng.integers(0, 256, (8, 8, 3)).astype(np.uint8)
    X = preprocess_image(img, mean)
    assert X.shape == (1, 3, 8, 8) and preprocess_image(img, mean.astype(np.float32)).dtype == np.float32
    np.testing.assert_array_equal(deprocess_image(X, mean), img)
    Xp = preprocess_image(img, mean, mean="pixel")
    np.testing.assert_allclose(Xp[0], img.transpose(2, 0, 1) - mean.mean(axis=(1, 2), keepdims=True), rtol=1e-6)
    np.testing.assert_array_equal(deprocess_image(Xp, mean, mean="pixel"), img)
    stretched = deprocess_image(X[0], mean, renorm=True)
    assert stretched.min() == 0 and stretched.max() == 255
    flat = np.full((1, 3, 5, 5), 50.0)
    blurred = blur_image(flat)
    np.testing.assert_allclose(blurred[0, :, 2, 2], 50.0)  # interior: the weights sum to 1
    assert blurred[0, 0, 0, 0] == pytest.approx(50.0 * (188 + 2 + 2 + 1) / 200)  # zero padding at a corner
    spike = np.zeros((1, 3, 3, 3))
    spike[0, 1, 1, 1] = 200.0
    out = blur_image(spike)
    assert out[0, 1].tolist() == [[1, 2, 1], [2, 188, 2], [1, 2, 1]] and not out[0, 0].any()
    with pytest.raises(ValueError, match="image or pixel or none"):
        preprocess_image(img, mean, mean="median")


def test_image_from_url_is_offline(tmp_path):
    img = np.random.default_rng(5).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    path = save_image(tmp_path / "a.png", img)
    np.testing.assert_array_equal(image_from_url(str(path)), img)
    np.testing.assert_array_equal(image_from_url("file://" + str(path)), img)
    with pytest.raises(DataError, match="offline"):
        image_from_url("http://farm4.staticflickr.com/3153/2970773875_164f0c0b83_z.jpg")
    with pytest.raises(DataError, match="no such image"):
        image_from_url(str(tmp_path / "missing.jpg"))
