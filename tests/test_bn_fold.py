"""The engine's FAST PATH that folds test-mode batch norms into the linear layer before
them (conv, depthwise, 1x1 conv) equals running the two layers one by one: outputs,
input gradients from any layer, inside residual blocks and for layers without a bias."""
import numpy as np
import pytest

from gradscope.cnn import CNN
from gradscope.cnn.efficientnet import lite0_config
from gradscope.cnn.fold import FOLDED_BN
from gradscope.errors import GradscopeError
from gradscope.interface import score_gradient

from test_residual import random_buffers, residual_config


def tiny_lite0():
    """An EfficientNet-Lite0-shaped net (depthwise and 1x1 convs with no bias, residual
    blocks, ReLU6) small enough for float64 tests."""
    blocks = [(8, 8, 3, 1, 1), (8, 12, 3, 2, 2), (12, 12, 5, 1, 2)]
    config = lite0_config(input_size=16, blocks=blocks, stem_width=8, head_width=16)
    config["layers"][-1]["out_features"] = 5
    config.pop("classes")
    model = CNN(config, seed=0, dtype=np.float64)
    rng = np.random.default_rng(3)
    for k in model.params:  # non-trivial batch norm affines
        if k.endswith((".gamma", ".beta")):
            model.params[k] = rng.standard_normal(model.params[k].shape) * 0.5 + (k.endswith(".gamma"))
    return random_buffers(model)


@pytest.fixture(params=["residual", "lite0"])
def net(request):
    return random_buffers(CNN(residual_config(), seed=0, dtype=np.float64)) if request.param == "residual" \
        else tiny_lite0()


def _x(net, n=3):
    return np.random.default_rng(0).standard_normal((n, 3, net.input_size, net.input_size))


def _folded(cache):
    """Whether a forward cache ran any batch norm folded."""
    return any(step.kind is FOLDED_BN for step, _ in cache.steps)


def test_every_batch_norm_after_a_linear_layer_folds(net):
    bns = [i for i, s in enumerate(net.steps) if s.layer["type"] == "spatial_batchnorm"]
    assert bns and {i - 1 for i in bns} == net._fold.pairs


def test_folded_forward_and_gradients_equal_layer_by_layer(net):
    x = _x(net)
    for end in net.layer_names:
        out, cache = net.forward(x, end=end)
        out_f, cache_f = net.forward(x, end=end, fold=True)
        np.testing.assert_allclose(out_f, out, rtol=1e-11, atol=1e-12, err_msg=end)
        dout = np.random.default_rng(1).standard_normal(out.shape)
        np.testing.assert_allclose(net.backward(dout, cache_f, param_grads=False)[0],
                                   net.backward(dout, cache, param_grads=False)[0], rtol=1e-10, atol=1e-12,
                                   err_msg=end)


def test_a_range_ending_at_a_linear_layer_returns_its_own_output(net):
    x = _x(net)
    for i in sorted(net._fold.pairs):
        lin = net.layer_names[i]
        np.testing.assert_allclose(net.forward(x, end=lin, fold=True)[0], net.forward(x, end=lin)[0],
                                   rtol=1e-11, atol=1e-12)  # earlier pairs fold; this one does not


def test_a_range_starting_at_a_batch_norm_runs_it():
    net = random_buffers(CNN(residual_config(), seed=0, dtype=np.float64))
    act = net.forward(_x(net), end="stem")[0]
    out, cache = net.forward(act, start="bn0", end="relu0", fold=True)
    assert not _folded(cache)
    np.testing.assert_array_equal(out, net.forward(act, start="bn0", end="relu0")[0])


def test_image_gradient_path_folds_and_matches_numeric(net):
    from gradscope.gradcheck import eval_numerical_gradient_array

    x = _x(net, 2)
    classes = np.array([1, 2])
    scores, dx = score_gradient(net, x, classes)
    assert _folded(net.forward(x, fold=True)[1])
    pick = np.zeros_like(scores)
    pick[np.arange(2), classes] = 1
    numeric = eval_numerical_gradient_array(lambda z: net.forward(z)[0], x.copy(), pick)
    np.testing.assert_allclose(dx, numeric, rtol=1e-5, atol=1e-7)


def test_folded_float32_close_to_float64():
    net = tiny_lite0()
    x = _x(net)
    net32 = CNN(net.config, params=net.params, buffers=net.buffers, dtype=np.float32)
    out64 = net.forward(x)[0]
    out32 = net32.forward(x.astype(np.float32), fold=True)[0]
    assert np.abs(out32 - out64).max() <= 1e-5 * np.abs(out64).max()


def test_folded_cache_refuses_weight_gradients_and_train_mode(net):
    x = _x(net)
    out, cache = net.forward(x, fold=True)
    with pytest.raises(GradscopeError, match="param_grads=False"):
        net.backward(np.ones_like(out), cache)
    with pytest.raises(GradscopeError, match="mode='test'"):
        net.forward(x, mode="train", fold=True)
    # without fold, weight gradients in test mode still come back for every parameter
    out, cache = net.forward(x)
    assert set(net.backward(np.ones_like(out), cache)[1]) == set(net.params)


def test_folded_weights_follow_every_change_of_params_and_buffers(net):
    """The fold is cached, yet never stale: after changing a param in place, by
    assignment, a buffer, or the whole dict, the folded forward equals the plain one."""
    x = _x(net)
    lin = net.steps[min(net._fold.pairs)].name
    bn = net.steps[min(net._fold.pairs) + 1].name

    def same():
        np.testing.assert_allclose(net.forward(x, fold=True)[0], net.forward(x)[0], rtol=1e-10, atol=1e-12)

    same()
    net.params[f"{lin}.W"] *= 1.5               # in place, through the dict
    same()
    net.params[f"{bn}.gamma"][0] = -2.0         # in place, one entry
    same()
    net.params[f"{lin}.W"] = net.params[f"{lin}.W"] * -1.0  # assignment
    same()
    net.buffers[f"{bn}.running_var"] = net.buffers[f"{bn}.running_var"] + 1.0
    same()
    net.params = {k: v * 0.5 for k, v in net.params.items()}  # a new dict
    same()
    net.forward(x, mode="train")                # training updates the running statistics
    same()
