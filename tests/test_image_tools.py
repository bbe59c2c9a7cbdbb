"""Regularisers, image files and figures used by the image methods."""
import os

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from gradscope.errors import DataError, ShapeError
from gradscope.gradcheck import rel_error
from gradscope.figures import curves_figure, fooling_figure, image_grid, saliency_figure, save_figure
from gradscope.imageio import difference_image, heatmap, load_image, overlay, save_image, save_images
from gradscope.methods import fool, saliency
from gradscope.methods.regularizers import (clip_to_bounds, gaussian_blur, gaussian_kernel, l2_penalty,
                                            random_jitter, resize, roll, total_variation)
from test_methods import numeric_grad
from toy_image_model import ToyImageModel


# ---------------------------------------------------------------- regularisers

@pytest.mark.parametrize("penalty", [l2_penalty, total_variation])
def test_penalty_gradients_match_numeric(penalty):
    x = np.random.default_rng(0).normal(size=(2, 3, 5, 4))
    values, grad = penalty(x, 0.7)
    assert values.shape == (2,)
    num = numeric_grad(lambda v: penalty(v, 0.7)[0].sum(), x.copy())
    assert rel_error(grad, num) < 1e-7


def test_total_variation_of_constant_image_is_zero():
    v, g = total_variation(np.full((1, 3, 6, 6), 4.0))
    assert v[0] == 0 and not g.any()


def test_blur_keeps_constants_and_mean_and_smooths():
    assert gaussian_kernel(1.0).sum() == pytest.approx(1.0)
    const = np.full((1, 3, 9, 7), 2.5, np.float32)
    out = gaussian_blur(const, 1.2)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, const, rtol=1e-6)
    noise = np.random.default_rng(0).normal(size=(2, 3, 16, 16))
    assert total_variation(gaussian_blur(noise, 1.0))[0].sum() < 0.2 * total_variation(noise)[0].sum()
    assert gaussian_blur(np.ones((1, 1, 2, 2)), 5.0).shape == (1, 1, 2, 2)  # kernel wider than the image
    np.testing.assert_array_equal(gaussian_blur(noise, 0), noise)


def test_jitter_roll_round_trip_and_clip():
    x = np.arange(2 * 3 * 4 * 5, dtype=float).reshape(2, 3, 4, 5)
    r, (dy, dx) = random_jitter(x, 3, np.random.default_rng(0))
    np.testing.assert_array_equal(roll(r, -dy, -dx), x)
    assert roll(x, 1, 0)[0, 0, 1, 0] == x[0, 0, 0, 0]
    assert random_jitter(x, 0, None)[1] == (0, 0)
    lo, hi = np.full((1, 3, 1, 1), 10.0), np.full((1, 3, 1, 1), 20.0)
    c = clip_to_bounds(x, (lo, hi))
    assert c.min() == 10 and c.max() == 20


def test_resize_identity_constant_and_matches_pillow():
    x = np.random.default_rng(0).random((1, 3, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(resize(x, 8), x)
    np.testing.assert_allclose(resize(np.full((1, 1, 5, 7), 3.0), (9, 4)), 3.0)
    # upsampling agrees with Pillow's bilinear filter (no antialiasing needed when enlarging)
    ours = resize(x, (16, 12))[0, 0]
    pil = np.asarray(Image.fromarray(x[0, 0]).resize((12, 16), Image.Resampling.BILINEAR))
    np.testing.assert_allclose(ours, pil, atol=1e-5)


# ---------------------------------------------------------------- image files

def test_image_round_trip_and_conversions(tmp_path):
    img = np.random.default_rng(0).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    path = save_image(tmp_path / "sub" / "a.png", img)
    np.testing.assert_array_equal(load_image(path), img)
    assert not [f for f in os.listdir(tmp_path / "sub") if f.startswith(".tmp")]
    Image.fromarray(img[:, :, 0]).save(tmp_path / "gray.png")
    gray = load_image(tmp_path / "gray.png")
    assert gray.shape == (7, 9, 3) and np.array_equal(gray[:, :, 1], img[:, :, 0])
    rgba = np.dstack([img, np.full((7, 9), 255, np.uint8)])
    rgba[0, 0, 3] = 0  # a transparent pixel becomes white
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    loaded = load_image(tmp_path / "rgba.png")
    assert loaded.shape == (7, 9, 3) and tuple(loaded[0, 0]) == (255, 255, 255)
    np.testing.assert_array_equal(loaded[1:], img[1:])


def test_image_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match="corrupt"):
        load_image(tmp_path / "bad.png")
    with pytest.raises(DataError, match="directory"):
        load_image(tmp_path)
    with pytest.raises(ShapeError, match="uint8"):
        save_image(tmp_path / "f.png", np.zeros((4, 4, 3)))
    with pytest.raises(ShapeError):
        save_image(tmp_path / "f.png", np.zeros((4, 4, 5), np.uint8))


def test_save_images_naming(tmp_path):
    a = np.zeros((2, 2, 3), np.uint8)
    assert save_images(tmp_path / "one.png", {"x": a}) == [str(tmp_path / "one.png")]
    assert save_images(tmp_path / "two.png", {"x": a, "y": a}) == [str(tmp_path / "two_x.png"),
                                                                   str(tmp_path / "two_y.png")]
    assert save_images(tmp_path / "dir", {"x": a}) == [str(tmp_path / "dir" / "x.png")]


def test_heatmap_overlay_difference():
    m = np.zeros((4, 4))
    m[1, 2] = 2.0
    h = heatmap(m)
    assert h.shape == (4, 4, 3) and h.dtype == np.uint8
    assert h[1, 2].sum() > h[0, 0].sum()  # the peak is the bright end of the colormap
    img = np.full((8, 8, 3), 100, np.uint8)
    assert overlay(img, m).shape == (8, 8, 3)  # map resized to the image
    np.testing.assert_array_equal(overlay(img, m, alpha=0.0), img)
    d = difference_image(np.full((2, 2, 3), 110, np.uint8), np.full((2, 2, 3), 100, np.uint8))
    assert d.max() == 255
    with pytest.raises(ShapeError):
        heatmap(np.zeros((2, 2, 2)))


# ---------------------------------------------------------------- figures

def test_figures_draw_and_save(tmp_path):
    model = ToyImageModel()
    x = model.preprocess(np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8))
    figs = [image_grid(model.deprocess(x), ["a", "b"]), saliency_figure(saliency(model, x, 1)),
            fooling_figure(fool(model, x, 0, max_iter=3)),
            curves_figure({"score": np.arange(5.0), "batch": np.ones((5, 2))}, ylabel="score")]
    for i, fig in enumerate(figs):
        assert isinstance(fig, Figure)
        path = save_figure(fig, tmp_path / f"f{i}.png")
        assert load_image(path).shape[2] == 3
