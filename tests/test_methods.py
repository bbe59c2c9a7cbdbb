"""Image-gradient methods on tiny seeded networks: gradients against numeric ones,
exact answers on a linear model, objectives that improve, reproducibility, errors."""
import json

import numpy as np
import pytest

from gradscope.cnn import CNN, tiny_vgg
from gradscope.errors import GradscopeError, ShapeError, UnknownClassError, UnknownLayerError
from gradscope.gradcheck import eval_numerical_gradient, rel_error
from gradscope.methods import (deepdream, deletion_insertion_auc, fool, integrated_gradients, invert, pointing_game,
                               saliency, smoothgrad, visualize_class)
from toy_image_model import LinearImageModel, ToyImageModel


def numeric_grad(f, x):
    """Central differences of scalar f at x (float64), via gradscope.gradcheck."""
    return eval_numerical_gradient(f, x, verbose=False, h=1e-5)


def tiny_cnn(seed=0, dtype=np.float32, input_size=16):
    """conv1 bn1 relu1 pool1 conv2 bn2 relu2 conv3 bn3 relu3 gap fc; 5 named classes."""
    cfg = tiny_vgg(num_classes=5, widths=(4, 8), input_size=input_size)
    cfg["classes"] = {"wnids": [f"n{i:08d}" for i in range(5)], "names": [f"class {i}, synonym{i}" for i in range(5)]}
    return CNN(cfg, seed=seed, dtype=dtype)


@pytest.fixture(scope="module")
def model():
    return tiny_cnn(seed=1)  # an untrained net: from its predicted class 1, classes 2-4 are reachable


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(1).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def x(model, images):
    return model.preprocess(images)


def linear_model(seed=0, classes=3, size=8):
    W = np.random.default_rng(seed).normal(0, 0.05, (3 * size * size, classes))
    return LinearImageModel(W, input_size=size)


# ---------------------------------------------------------------- saliency family

def test_saliency_is_abs_max_of_numeric_gradient():
    m = tiny_cnn(seed=3, dtype=np.float64, input_size=8)
    x = np.random.default_rng(0).normal(size=(2, 3, 8, 8))
    r = saliency(m, x, [1, 4])
    for i, c in enumerate([1, 4]):
        g = numeric_grad(lambda v: m.scores(v[None])[0, c], x[i].copy())
        assert rel_error(r.attributions[i], g) < 1e-5
        assert rel_error(r.maps[i], np.abs(g).max(axis=0)) < 1e-5
    np.testing.assert_allclose(r.scores, m.scores(x)[[0, 1], [1, 4]])
    assert r.maps.shape == (2, 8, 8) and r.images.dtype == np.uint8


def test_log_prob_objective_gradient_matches_numeric():
    from gradscope.methods.objectives import class_log_prob, class_objective

    m = tiny_cnn(seed=3, dtype=np.float64, input_size=8)
    x = np.random.default_rng(0).normal(size=(2, 3, 8, 8))

    def log_prob(v, c):
        s = m.scores(v[None])[0]
        return s[c] - s.max() - np.log(np.sum(np.exp(s - s.max())))

    ev = class_log_prob(np.array([0, 3]))(m, x)
    for i, c in enumerate([0, 3]):
        assert ev.value[i] == pytest.approx(log_prob(x[i], c))
        assert rel_error(ev.grad[i], numeric_grad(lambda v: log_prob(v, c), x[i].copy())) < 1e-5
    with pytest.raises(GradscopeError, match="objective"):
        class_objective("prob", np.array([0, 3]))


def test_saliency_defaults_to_predicted_class_and_accepts_names(model, x):
    assert list(saliency(model, x).classes) == list(np.argmax(model.scores(x), axis=1))
    by_name = saliency(model, x, "synonym2")
    by_wnid = saliency(model, x, model.wnids[2])
    assert list(by_name.classes) == [2, 2, 2]
    np.testing.assert_array_equal(by_name.maps, by_wnid.maps)


def test_smoothgrad_shapes_seed_and_chunk_independence(model, x):
    a = smoothgrad(model, x, 1, n_samples=6, chunk=4, seed=3)
    b = smoothgrad(model, x, 1, n_samples=6, chunk=64, seed=3)
    c = smoothgrad(model, x, 1, n_samples=6, seed=4)
    assert a.maps.shape == (3, 16, 16) and a.attributions.shape == x.shape
    np.testing.assert_allclose(a.attributions, b.attributions, rtol=1e-5, atol=1e-7)
    assert not np.allclose(a.attributions, c.attributions)
    # no noise: the average of identical gradients is the plain gradient
    np.testing.assert_allclose(smoothgrad(model, x, 1, n_samples=3, sigma=0.0).maps, saliency(model, x, 1).maps,
                               rtol=1e-5, atol=1e-7)


def test_integrated_gradients_completeness(model, x):
    r = integrated_gradients(model, x, [0, 2, 4], points=128, chunk=50)
    total = r.attributions.sum(axis=(1, 2, 3))
    np.testing.assert_allclose(total, r.scores - r.baseline_scores, rtol=0.02, atol=0.02)
    assert r.maps.shape == (3, 16, 16) and np.all(r.maps >= 0)


def test_integrated_gradients_exact_on_linear_model():
    m = linear_model()
    x = np.random.default_rng(0).normal(size=(2, 3, 8, 8))
    base = np.full((1, 3, 8, 8), 0.3)
    r = integrated_gradients(m, x, [0, 2], points=3, baseline=base)
    W = m.params["fc.W"]
    for i, c in enumerate([0, 2]):
        np.testing.assert_allclose(r.attributions[i], (x[i] - base[0]) * W[:, c].reshape(3, 8, 8), atol=1e-12)


def test_saliency_results_save_and_serialise(model, x, tmp_path):
    r = integrated_gradients(model, x[:2], 1, points=4)
    paths = r.save(tmp_path / "out")
    assert sorted(p.rsplit("/", 1)[1] for p in paths) == ["0_map.png", "0_overlay.png", "1_map.png", "1_overlay.png"]
    d = json.loads(json.dumps(r.to_dict()))
    assert d["method"] == "integrated_gradients" and len(d["images"]) == 2 and "baseline_score" in d["images"][0]


# ---------------------------------------------------------------- fooling

def test_fooled_images_are_classified_as_target_after_uint8_round_trip(model, x):
    orig = np.argmax(model.scores(x), axis=1)
    target = np.array([2, 3, 4])
    seen = []
    r = fool(model, x, target, step_size=0.5, max_iter=200, callback=lambda i, info: seen.append(info["active"]))
    assert r.success.all()
    reread = model.preprocess(r.images)  # what a saved PNG becomes
    np.testing.assert_array_equal(np.argmax(model.scores(reread), axis=1), target)
    np.testing.assert_array_equal(r.final_class, target)
    np.testing.assert_array_equal(r.original_class, orig)
    assert np.all(r.iterations >= 1) and seen[-1] == 0 and len(seen) == r.iterations.max() + 1
    diff = r.images.astype(float) - r.original_images.astype(float)
    np.testing.assert_allclose(r.l2, np.sqrt((diff ** 2).sum(axis=(1, 2, 3))))
    np.testing.assert_allclose(r.linf, np.abs(diff).max(axis=(1, 2, 3)))
    assert np.all(r.target_prob > r.target_prob_before)


def test_fool_stops_each_image_on_its_own(model, x):
    orig = np.argmax(model.scores(x), axis=1)
    target = orig.copy()
    target[1] = 3  # only image 1 needs steps
    r = fool(model, x, target, step_size=0.5, max_iter=200)
    assert r.iterations[0] == 0 and r.iterations[2] == 0 and r.iterations[1] > 0
    np.testing.assert_array_equal(r.images[[0, 2]], r.original_images[[0, 2]])


def test_fool_log_prob_objective(model, x):
    r = fool(model, x, [2, 3, 4], step_size=0.5, max_iter=200, objective="log_prob")
    assert r.success.all()
    np.testing.assert_array_equal(np.argmax(model.scores(model.preprocess(r.images)), axis=1), [2, 3, 4])


def test_fool_reports_failure_when_out_of_steps(model, x):
    r = fool(model, x[:1], 4, step_size=1e-4, max_iter=2)
    assert not r.success[0] and r.iterations[0] == 2
    assert json.loads(json.dumps(r.to_dict()))["success_rate"] == 0.0


# ---------------------------------------------------------------- class visualisation

def test_class_visualization_raises_score_and_is_reproducible(model):
    a = visualize_class(model, [1, 3], recipe="pixel", iterations=30, seed=5)
    assert a.images.shape == (2, 16, 16, 3) and a.images.dtype == np.uint8
    assert a.score_history.shape == (30, 2)
    assert np.all(a.score_history[-5:].mean(axis=0) > a.score_history[:5].mean(axis=0) + 0.5)
    b = visualize_class(model, [1, 3], recipe="pixel", iterations=30, seed=5)
    np.testing.assert_array_equal(a.images, b.images)
    c = visualize_class(model, [1, 3], recipe="pixel", iterations=30, seed=6)
    assert not np.array_equal(a.images, c.images)


def test_class_visualization_options_tv_octaves_callback(model, tmp_path):
    seen = []
    r = visualize_class(model, 2, recipe="pixel", iterations=12, tv_weight=0.05, octaves=2, blur_every=3, objective="score",
                        callback=lambda i, info: seen.append((i, info["images"].shape)))
    assert [i for i, _ in seen] == list(range(1, 13))
    assert seen[0][1][1] < 16 and seen[-1][1] == (1, 16, 16, 3)  # coarse octave first
    assert r.final_prob.shape == (1,) and 0 <= r.final_prob[0] <= 1
    assert [p.rsplit("/", 1)[1] for p in r.save(tmp_path)] == ["0_class2.png"]
    json.dumps(r.to_dict())


@pytest.mark.parametrize("recipe", ["robust", "lucid"])
def test_class_visualization_fourier_recipes_raise_probability_and_are_reproducible(model, recipe):
    a = visualize_class(model, [1, 3], recipe=recipe, iterations=20, lr=0.1, seed=5)
    assert a.params["recipe"] == recipe and a.images.shape == (2, 16, 16, 3)
    assert np.all(a.score_history[-3:].mean(axis=0) > a.score_history[:3].mean(axis=0))
    again = visualize_class(model, [1, 3], recipe=recipe, iterations=20, lr=0.1, seed=5)
    np.testing.assert_array_equal(a.images, again.images)
    with pytest.raises(GradscopeError, match=f"recipe '{recipe}' has no setting l2_reg"):
        visualize_class(model, 1, recipe=recipe, l2_reg=0.1)
    with pytest.raises(GradscopeError, match="unknown recipe"):
        visualize_class(model, 1, recipe="deep")


def test_robust_recipe_is_lucid_with_more_transformation_robustness(model):
    """The default recipe differs from Lucid's only in the views' settings and the Fourier image's
    side, and those matter."""
    from gradscope.methods.class_visualization import DEFAULT_RECIPE, RECIPES, with_defaults

    robust, lucid = RECIPES["robust"].defaults, RECIPES["lucid"].defaults
    changed = {k for k in lucid if robust[k] != lucid[k]}
    assert DEFAULT_RECIPE == "robust" and changed == {"flip", "scale_jitter", "colour_jitter", "param_size"}
    assert lucid["flip"] == lucid["colour_jitter"] == 0 and lucid["scale_jitter"] == 0.1
    assert lucid["param_size"] == 128 and robust["param_size"] == 96
    a = visualize_class(model, 2, iterations=4, seed=1)
    b = visualize_class(model, 2, recipe="lucid", iterations=4, seed=1, **{k: robust[k] for k in changed})
    np.testing.assert_array_equal(a.images, b.images)
    assert not np.array_equal(a.images, visualize_class(model, 2, recipe="lucid", iterations=4, seed=1).images)
    with pytest.raises(ValueError, match="no setting bogus"):
        with_defaults("x", RECIPES["lucid"], bogus=1)


# ---------------------------------------------------------------- inversion and dreams

def test_feature_inversion_distance_goes_down(model, x):
    r = invert(model, x[:2], "relu1", iterations=60, seed=0)
    assert r.distance_history.shape == (60, 2)
    assert np.all(r.distance_history[-1] < 0.5 * r.distance_history[0])
    assert r.final_distance.shape == (2,) and r.images.shape == (2, 16, 16, 3)
    again = invert(model, x[:2], model.layer_names.index("relu1"), iterations=60, seed=0)
    np.testing.assert_array_equal(r.images, again.images)
    json.dumps(r.to_dict())


def test_deepdream_raises_activation_norm_at_any_size(model, images):
    x = model.preprocess(images[:1])
    r = deepdream(model, x, "relu2", iterations=15, octaves=None, seed=0)
    assert r.activation_norm[-1, 0] > 1.2 * r.activation_norm[0, 0]
    wide = np.random.default_rng(0).normal(size=(1, 3, 20, 28)).astype(np.float32)
    w = deepdream(model, wide, "conv2", iterations=8, octaves=3, seed=0)  # 8 steps in all: 2, 3, 3
    assert w.images.shape == (1, 20, 28, 3) and w.sizes[-1] == (20, 28) and len(w.sizes) == 3
    assert w.activation_norm.shape == (8, 1)


# ---------------------------------------------------------------- bad inputs

@pytest.mark.parametrize("bad, err", [
    (np.zeros((2, 16, 16, 3), np.float32), ShapeError),
    (np.zeros((2, 16, 16), np.float32), ShapeError),
    (np.zeros((1, 3, 16, 16), np.uint8), GradscopeError),
    ([[1.0]], ShapeError),
])
def test_bad_input_shapes(model, bad, err):
    with pytest.raises(err):
        saliency(model, bad, 0)


def test_nan_input_unknown_class_and_bad_layer(model, x):
    nan = x.copy()
    nan[0, 0, 0, 0] = np.nan
    with pytest.raises(GradscopeError, match="NaN"):
        fool(model, nan, 1)
    with pytest.raises(UnknownClassError, match="close matches"):
        saliency(model, x, "synonim2")
    with pytest.raises(UnknownClassError, match="out of range"):
        visualize_class(model, 7, iterations=1)
    with pytest.raises(ShapeError, match="2 classes for 3 images"):
        saliency(model, x, [0, 1])
    with pytest.raises(UnknownLayerError, match="close matches: relu1"):
        invert(model, x, "relu_1", iterations=1)
    with pytest.raises(UnknownLayerError):
        deepdream(model, x, 99, iterations=1)
    with pytest.raises(GradscopeError, match="lr"):
        visualize_class(model, 0, lr=-1.0)
    with pytest.raises(GradscopeError, match="n_samples"):
        smoothgrad(model, x, 0, n_samples=0)


# ---------------------------------------------------------------- evaluation

def test_pointing_game_known_answers():
    maps = np.zeros((3, 10, 10))
    maps[0, 2, 3] = 1.0   # inside box 0
    maps[1, 9, 9] = 1.0   # outside box 1
    maps[2, 5, 5] = 1.0   # image 2 has no box
    boxes = np.array([[1, 1, 4, 4], [0, 0, 5, 5], [-1, -1, -1, -1]])
    r = pointing_game(maps, boxes)
    assert list(r.hits) == [True, False, False] and r.hit_rate == 0.5
    assert pointing_game(maps, boxes, tolerance=4).hit_rate == 1.0
    full = pointing_game(np.random.default_rng(0).random((20, 6, 6)), np.tile([0, 0, 5, 5], (20, 1)))
    assert full.random_hit_rate == 1.0 and full.hit_rate == 1.0
    with pytest.raises(ShapeError):
        pointing_game(maps, boxes[:2])


def test_evaluation_checks_map_shapes(model, x):
    with pytest.raises(ShapeError, match="saliency maps are"):
        deletion_insertion_auc(model, x, 0, np.zeros((3, 8, 8)))


def test_methods_need_only_the_protocol(images):
    """A model that is not a CNN, only an ImageModel, works with every method."""
    toy = ToyImageModel(num_classes=5, input_size=16, seed=0)
    x = toy.preprocess(images)
    orig = np.argmax(toy.scores(x), axis=1)
    assert fool(toy, x, (orig + 1) % 5, step_size=0.5, max_iter=200).success.all()
    assert saliency(toy, x, 0).maps.shape == (3, 16, 16)
    assert invert(toy, x[:1], "relu1", iterations=10).distance_history.shape == (10, 1)
    assert deepdream(toy, x[:1], "relu2", iterations=2, octaves=2).images.shape == (1, 16, 16, 3)
    assert visualize_class(toy, 1, iterations=3).images.shape == (1, 16, 16, 3)
