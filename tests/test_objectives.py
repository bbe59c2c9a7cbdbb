"""The objective algebra: each new term's gradient against numeric ones, sums and scales,
one pass per layer, and a clear error for a channel out of range."""
import numpy as np
import pytest

from gradscope.cnn import CNN, tiny_vgg
from gradscope.errors import GradscopeError
from gradscope.gradcheck import eval_numerical_gradient
from gradscope.methods.objectives import channel, class_log_prob, diversity, neuron


def tiny(dtype=np.float64, seed=1):
    return CNN(tiny_vgg(num_classes=5, widths=(4, 8), input_size=16), seed=seed, dtype=dtype)


@pytest.fixture(scope="module")
def x64():
    return np.random.default_rng(0).normal(size=(3, 3, 16, 16))


@pytest.mark.parametrize("make", [lambda: channel("relu2", 3), lambda: neuron("relu2", [5, 1, 0]),
                                  lambda: neuron("conv1", 1, 2, 3), lambda: channel("fc", 2),
                                  lambda: diversity("relu1"),
                                  lambda: channel("relu2", 3) - 0.5 * channel("relu1", 1) + 0.3 * diversity("relu2")])
def test_objective_gradient_of_the_batch_sum_matches_numeric(make, x64):
    m, objective = tiny(), make()
    ev = objective(m, x64)
    assert ev.value.shape == (3,)
    num = eval_numerical_gradient(lambda v: np.sum(objective(m, v).value), x64.copy(), h=1e-5)
    # relative to the largest entry: the Gram terms make tiny entries whose differences are rounding
    assert np.max(np.abs(ev.grad - num)) / np.max(np.abs(num)) < 1e-6 and np.max(np.abs(num)) > 0


def test_objectives_add_and_scale(x64):
    m = tiny()
    a, b, c = channel("relu2", 3), channel("relu2", 1), class_log_prob([0, 1, 2])
    combo = a - 0.5 * b + 2 * c
    ea, eb, ec, e = a(m, x64), b(m, x64), c(m, x64), combo(m, x64)
    np.testing.assert_allclose(e.value, ea.value - 0.5 * eb.value + 2 * ec.value, rtol=1e-10)
    np.testing.assert_allclose(e.grad, ea.grad - 0.5 * eb.grad + 2 * ec.grad, rtol=1e-8, atol=1e-12)
    assert e.scores is not None and "target_prob" in e.info and "channel_mean" in e.info
    assert sum([a, b]).name == "channel(relu2:3) + channel(relu2:1)"


def test_terms_at_one_layer_share_a_pass(x64):
    m = tiny()
    calls = []
    forward_to = m.forward_to
    m.forward_to = lambda x, layer: calls.append(layer) or forward_to(x, layer)
    (channel("relu2", 0) + neuron("relu2", 1) + 0.1 * diversity("relu2") - channel("relu1", 0))(m, x64)
    assert calls == ["relu2", "relu1"]


def test_diversity_is_zero_for_one_image_and_lower_for_copies(x64):
    m = tiny()
    assert diversity("relu2")(m, x64[:1]).value[0] == 0
    same = diversity("relu2")(m, np.repeat(x64[:1], 2, axis=0)).info["gram_similarity"]
    np.testing.assert_allclose(same, 1.0)
    assert np.all(diversity("relu2")(m, x64).info["gram_similarity"] < 1.0)


def test_channel_out_of_range_is_a_clear_error(x64):
    with pytest.raises(GradscopeError, match="channel 99 out of range"):
        channel("relu2", 99)(tiny(), x64)
