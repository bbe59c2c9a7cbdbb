"""Loading a CS231n `pretrained_model.h5`-layout file (a tiny one written here)."""
import h5py
import numpy as np
import pytest

from gradscope.interface import score_gradient
from gradscope.cnn.course_h5 import COURSE_STRIDES, load_course_h5
from gradscope.errors import DataError
from gradscope.layers import (affine_forward, batchnorm_forward, conv_forward, relu_forward,
                              spatial_batchnorm_forward)

WIDTHS = [2, 2, 3, 3, 4, 4, 5, 5, 6]   # the course used 64 ... 1024
KERNELS = [5, 3, 3, 3, 3, 3, 3, 3, 3]
HIDDEN, CLASSES = 7, 5


def course_arrays(rng, transpose_affine=False):
    a, c = {}, 3
    for i, (f, k) in enumerate(zip(WIDTHS, KERNELS), start=1):
        a[f"W{i}"] = rng.standard_normal((f, c, k, k)) * np.sqrt(2 / (c * k * k))
        c = f
    fan_in = c * 2 * 2  # five stride-2 convs: 64 -> 2
    a["W10"] = rng.standard_normal((fan_in, HIDDEN)) / np.sqrt(fan_in)
    a["W11"] = rng.standard_normal((HIDDEN, CLASSES)) / np.sqrt(HIDDEN)
    if transpose_affine:
        a["W10"], a["W11"] = a["W10"].T.copy(), a["W11"].T.copy()
    for i, d in enumerate(WIDTHS + [HIDDEN, CLASSES], start=1):
        a[f"b{i}"] = rng.standard_normal(d) * 0.1
        if i <= 10:
            a[f"gamma{i}"] = 1 + 0.1 * rng.standard_normal(d)
            a[f"beta{i}"] = 0.1 * rng.standard_normal(d)
            a[f"running_mean{i}"] = 0.1 * rng.standard_normal(d)
            a[f"running_var{i}"] = 0.5 + rng.random(d)
    return {k: v.astype(np.float32) for k, v in a.items()}


def write_h5(path, arrays, mean_image=None):
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f.create_dataset(k, data=v)
        if mean_image is not None:
            f.attrs["mean_image"] = mean_image
    return path


def manual_forward(a, x):
    """The course network written out with the layer functions."""
    h = x
    for i, (k, s) in enumerate(zip(KERNELS, COURSE_STRIDES), start=1):
        h, _ = conv_forward(h, a[f"W{i}"], a[f"b{i}"], stride=s, pad=k // 2)
        bn = {"mode": "test", "running_mean": a[f"running_mean{i}"], "running_var": a[f"running_var{i}"]}
        h, _ = relu_forward(spatial_batchnorm_forward(h, a[f"gamma{i}"], a[f"beta{i}"], bn)[0])
    h, _ = affine_forward(h, a["W10"], a["b10"])
    bn = {"mode": "test", "running_mean": a["running_mean10"], "running_var": a["running_var10"]}
    h, _ = relu_forward(batchnorm_forward(h, a["gamma10"], a["beta10"], bn)[0])
    return affine_forward(h, a["W11"], a["b11"])[0]


@pytest.mark.parametrize("transpose_affine", [False, True])
def test_course_model_forward_matches_manual(tmp_path, transpose_affine):
    rng = np.random.default_rng(0)
    arrays = course_arrays(rng, transpose_affine)
    model = load_course_h5(write_h5(tmp_path / "pretrained_model.h5", arrays), dtype=np.float64)
    assert model.input_size == 64 and model.num_classes == CLASSES
    assert [layer["stride"] for layer in model.layers if layer["type"] == "conv"] == list(COURSE_STRIDES)
    assert model.layers[0]["kernel"] == 5 and model.layers[0]["pad"] == 2
    x = rng.standard_normal((2, 3, 64, 64))
    ref = manual_forward(course_arrays(np.random.default_rng(0)), x)
    assert np.allclose(model.scores(x), ref, atol=1e-8)
    scores, dx = score_gradient(model, x, [0, 4])
    assert dx.shape == x.shape and np.all(np.isfinite(dx))


def test_mean_image_and_class_names(tmp_path):
    rng = np.random.default_rng(1)
    mean_image = (100 + 20 * rng.random((3, 64, 64))).astype(np.float32)
    path = write_h5(tmp_path / "m.h5", course_arrays(rng), mean_image)
    model = load_course_h5(path, class_names=list("abcde"))
    assert model.class_names == list("abcde")
    img = rng.integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    x = model.preprocess(img)
    # course input: raw pixels minus the mean, here reduced to its per-channel mean
    expected = img.transpose(0, 3, 1, 2) - mean_image.mean(axis=(1, 2))[None, :, None, None]
    assert np.allclose(x, expected, atol=1e-3)
    assert model.config["source"]["mean_image_max_deviation"] <= 20
    other = load_course_h5(path, mean_image=np.full((64, 64, 3), 50.0))  # (H, W, 3) works too
    assert np.allclose(other.preprocess(img), img.transpose(0, 3, 1, 2) - 50.0, atol=1e-3)


def test_wrong_strides_and_bad_files_are_clear_errors(tmp_path):
    path = write_h5(tmp_path / "m.h5", course_arrays(np.random.default_rng(2)))
    with pytest.raises(DataError, match="5 stride-2 layers"):
        load_course_h5(path, strides=(1, 2, 1, 2, 1, 2, 1, 2, 1))
    with pytest.raises(DataError, match="9 conv layers but 3 strides"):
        load_course_h5(path, strides=(2, 2, 2))
    with pytest.raises(DataError, match="not found"):
        load_course_h5(tmp_path / "missing.h5")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(DataError, match="HDF5"):
        load_course_h5(tmp_path / "junk.h5")
    arrays = course_arrays(np.random.default_rng(2))
    del arrays["running_var4"]
    with pytest.raises(DataError, match="running_var4"):
        load_course_h5(write_h5(tmp_path / "partial.h5", arrays))
