"""The one image-ascent loop and its pieces: objective and prior gradients against numeric
ones, summable priors, transforms and step rules that compose, any recipe taking any
prior or transform, and the one progress-callback convention."""
import numpy as np
import pytest

from gradscope.cnn import CNN, tiny_vgg
from gradscope.gradcheck import eval_numerical_gradient, rel_error
from gradscope.methods import (activation_energy, ascend, blur_every, class_log_prob, class_score, clip_pixels,
                               deepdream, feature_match, fool, invert, jitter, l2_prior, normalized_step, tv_prior,
                               visualize_class)
from gradscope.methods.regularizers import total_variation


def tiny(dtype=np.float32, seed=1):
    return CNN(tiny_vgg(num_classes=5, widths=(4, 8), input_size=16), seed=seed, dtype=dtype)


@pytest.fixture(scope="module")
def x64():
    return np.random.default_rng(0).normal(size=(2, 3, 16, 16))


@pytest.mark.parametrize("make", [lambda m, x: class_score(np.array([1, 3])),
                                  lambda m, x: class_log_prob(np.array([1, 3])),
                                  lambda m, x: feature_match("relu2", m.forward_to(x[::-1].copy(), "relu2")[0]),
                                  lambda m, x: activation_energy("relu2")])
def test_objective_gradients_match_numeric(make, x64):
    m = tiny(np.float64)
    objective = make(m, x64)
    ev = objective(m, x64)
    assert ev.value.shape == (2,) and all(v.shape == (2,) for v in ev.info.values())
    def value_of(i, v):
        xs = x64.copy()
        xs[i] = v
        return objective(m, xs).value[i]

    for i in range(2):
        num = eval_numerical_gradient(lambda v: value_of(i, v), x64[i].copy(), h=1e-5)
        assert rel_error(ev.grad[i], num) < 1e-5


def test_priors_add_and_their_gradients_match_numeric(x64):
    center = 0.3
    both = l2_prior(0.5, center) + tv_prior(0.2)
    value, grad = both(x64)
    assert np.allclose(value, 0.5 * np.sum((x64 - center) ** 2, axis=(1, 2, 3)) + total_variation(x64, 0.2)[0])
    num = eval_numerical_gradient(lambda v: both(v[None])[0][0], x64[0].copy())
    assert rel_error(grad[0], num) < 1e-5
    assert "l2(0.5) + tv(0.2)" in repr(both)


def test_ascend_raises_the_objective_over_octaves_and_reports_progress():
    m = tiny()
    rng = np.random.default_rng(0)
    x0 = (0.1 * rng.standard_normal((2, 3, 8, 8))).astype(np.float32)
    seen = []
    run = ascend(m, x0, class_log_prob(np.array([2, 4])), iterations=25, step=normalized_step(0.1),
                 priors=[l2_prior(1e-3)], transforms=[jitter(2), blur_every(5, 0.5), clip_pixels()],
                 octaves=[(8, 8), (12, 12), (16, 16)], rng=0, callback=lambda done, info: seen.append((done, info)))
    assert run.x.shape == (2, 3, 16, 16) and run.shapes == [(8, 8), (12, 12), (16, 16)]
    assert run.history["target_prob"].shape == (25, 2)
    assert np.all(run.history["target_prob"][-1] > run.history["target_prob"][0])
    assert [d for d, _ in seen] == list(range(1, 26)) and all(i["total"] == 25 for _, i in seen)
    assert [i["octave"] for _, i in seen] == [0] * 8 + [1] * 8 + [2] * 9  # the remainder goes to the finest
    lo, hi = m.pixel_bounds()
    assert np.all(run.x >= lo - 1e-6) and np.all(run.x <= hi + 1e-6)
    again = ascend(m, x0, class_log_prob(np.array([2, 4])), iterations=25, step=normalized_step(0.1),
                   priors=[l2_prior(1e-3)], transforms=[jitter(2), blur_every(5, 0.5), clip_pixels()],
                   octaves=[(8, 8), (12, 12), (16, 16)], rng=0)
    np.testing.assert_array_equal(run.x, again.x)  # seeded


def test_jitter_maps_the_gradient_back():
    """A linear objective sum(W * view) on the jittered view: the step on x must be W rolled
    back by the jitter's shift."""
    from gradscope.methods.objectives import Evaluation
    from gradscope.methods.steps import unit_rms

    W = np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)

    def linear(model, view):
        return Evaluation(np.sum(view * W, axis=(1, 2, 3)), np.broadcast_to(W, view.shape).copy(), {}, None)

    dy, dx = np.random.default_rng(4).integers(-3, 4, size=2)  # the shift ascend's jitter draws first
    assert (dy, dx) != (0, 0)
    run = ascend(tiny(), np.zeros((1, 3, 8, 8), np.float32), linear, iterations=1, step=normalized_step(1.0),
                 transforms=[jitter(3)], rng=4)
    np.testing.assert_allclose(np.roll(run.x, (dy, dx), axis=(2, 3)), unit_rms(W), rtol=1e-5)


def test_any_recipe_takes_any_prior_or_transform():
    m = tiny()
    x = m.preprocess(np.random.default_rng(2).integers(0, 256, (1, 16, 16, 3), dtype=np.uint8))
    plain = deepdream(m, x, "relu2", iterations=12, octaves=None, lr=0.05, seed=0)
    smooth = deepdream(m, x, "relu2", iterations=12, octaves=None, lr=0.05, seed=0, priors=[tv_prior(0.5)])
    tv = (lambda r: total_variation(r.images.astype(np.float64).transpose(0, 3, 1, 2))[0][0])
    assert tv(smooth) < tv(plain)
    a = invert(m, x, "relu1", iterations=6, seed=0)
    b = invert(m, x, "relu1", iterations=6, seed=0, transforms=[jitter(2)])
    assert not np.array_equal(a.images, b.images)
    c = visualize_class(m, 1, recipe="pixel", iterations=6, seed=0, priors=[tv_prior(0.5)])
    d = visualize_class(m, 1, recipe="pixel", iterations=6, seed=0)
    assert not np.array_equal(c.images, d.images)


@pytest.mark.parametrize("run", [
    lambda m, x, cb: visualize_class(m, [1, 2], recipe="pixel", iterations=5, octaves=2, callback=cb),
    lambda m, x, cb: visualize_class(m, [1, 2], iterations=5, callback=cb),
    lambda m, x, cb: invert(m, x, "relu1", iterations=5, callback=cb),
    lambda m, x, cb: deepdream(m, x, "relu1", iterations=5, octaves=2, callback=cb),
    lambda m, x, cb: fool(m, x, 3, step_size=1e-4, max_iter=5, callback=cb)])
def test_one_callback_convention(run):
    m = tiny()
    x = m.preprocess(np.random.default_rng(3).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8))
    seen = []
    run(m, x, lambda done, info: seen.append((done, info)))
    assert seen[-1][0] == seen[-1][1]["total"] == 5
    assert all(info["images"].dtype == np.uint8 and info["images"].shape[0] == 2 for _, info in seen)
