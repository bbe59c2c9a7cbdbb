"""The EfficientNet-Lite layer types as engine records: an MBConv-shaped residual block
(SAME pad, depthwise and 1x1 conv, ReLU6, batch norm eps 1e-3) in a tiny CNN, checked by
numeric gradients of the input and every parameter (float64, random upstream gradient)
and against its torch twin (outputs and input gradients)."""
import numpy as np
import pytest
import torch

from gradscope.cnn import CNN
from gradscope.cnn.torch_module import params_to_torch
from gradscope.gradcheck import eval_numerical_gradient_array, rel_error


def tiny_lite_config():
    """stem (SAME 3x3 stride 2 conv, BN, ReLU6), one expanding MBConv with a skip, one
    strided 5x5 MBConv without, 1x1 head, pool, fc: every new layer type, on 8x8 inputs."""
    def bn(name, c):
        return {"name": name, "type": "spatial_batchnorm", "channels": c, "eps": 1e-3}

    def mbconv(name, cin, cout, k, s, mid):
        return {"name": name, "type": "residual", "skip": "auto", "layers": [
            {"name": "expand_conv", "type": "pointwise_conv", "in_channels": cin, "out_channels": mid},
            bn("expand_bn", mid), {"name": "expand_relu", "type": "relu6"},
            {"name": "dw_pad", "type": "same_pad", "kernel": k, "stride": s},
            {"name": "dw_conv", "type": "depthwise_conv", "channels": mid, "kernel": k, "stride": s},
            bn("dw_bn", mid), {"name": "dw_relu", "type": "relu6"},
            {"name": "project_conv", "type": "pointwise_conv", "in_channels": mid, "out_channels": cout},
            bn("project_bn", cout)]}

    stem = {"name": "stem", "type": "residual", "skip": "none", "layers": [
        {"name": "pad", "type": "same_pad", "kernel": 3, "stride": 2},
        {"name": "conv", "type": "conv", "in_channels": 3, "out_channels": 4, "kernel": 3, "stride": 2, "pad": 0},
        bn("bn", 4), {"name": "relu", "type": "relu6"}]}
    layers = [stem, mbconv("block0", 4, 4, 3, 1, 8), mbconv("block1", 4, 5, 5, 2, 6),
              {"name": "head", "type": "residual", "skip": "none", "layers": [
                  {"name": "conv", "type": "pointwise_conv", "in_channels": 5, "out_channels": 6},
                  bn("bn", 6), {"name": "relu", "type": "relu6"}]},
              {"name": "pool", "type": "global_avgpool"},
              {"name": "fc", "type": "affine", "in_features": 6, "out_features": 3}]
    return {"format": "gradscope-cnn/1", "input_size": 8, "layers": layers}


@pytest.fixture
def net():
    model = CNN(tiny_lite_config(), seed=0, dtype=np.float64)
    rng = np.random.default_rng(1)
    for k, v in model.buffers.items():  # nontrivial statistics (test-mode BN)
        model.buffers[k] = rng.standard_normal(v.shape) * 0.1 if k.endswith("mean") else rng.random(v.shape) + 0.5
    return model


def test_shapes_and_skips(net):
    rows = {r["name"]: r for r in net.describe()}
    assert rows["stem.pad"]["output_shape"] == (3, 9, 9)  # 8: pad 0 top/left, 1 bottom/right
    assert rows["stem"]["output_shape"] == (4, 4, 4)      # ceil(8 / 2)
    assert rows["block0"]["skip"] and not rows["block1"]["skip"]
    assert rows["block1"]["output_shape"] == (5, 2, 2)
    assert net.params["block1.dw_conv.W"].shape == (6, 1, 5, 5)
    assert net.params["block0.expand_conv.W"].shape == (8, 4, 1, 1)


def test_numeric_gradients_of_input_and_every_parameter(net):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 8, 8))
    out, cache = net.forward(x, mode="test")
    dout = rng.standard_normal(out.shape)
    dx, grads = net.backward(dout, cache)
    assert set(grads) == set(net.params)

    def f(_):
        return net.forward(x, mode="test")[0]

    assert rel_error(dx, eval_numerical_gradient_array(f, x, dout)) < 1e-6
    for name, p in net.params.items():
        assert rel_error(grads[name], eval_numerical_gradient_array(f, p, dout)) < 1e-6, name


def test_gradient_from_inside_a_block(net):
    x = np.random.default_rng(3).standard_normal((1, 3, 8, 8))
    act, cache = net.forward_to(x, "block1.dw_conv")
    assert act.shape == (1, 6, 2, 2)
    d = np.random.default_rng(4).standard_normal(act.shape)
    dx = net.backward_from(d, cache)
    num = eval_numerical_gradient_array(lambda _: net.forward_to(x, "block1.dw_conv")[0], x, d)
    assert rel_error(dx, num) < 1e-6


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 1e-4)])
def test_torch_twin_outputs_and_input_gradients(net, dtype, tol):
    # the twin holds float32 weights: give the NumPy side the same rounded values
    rounded = {k: v.astype(np.float32) for k, v in net.params.items()}
    model = CNN(net.config, params=rounded, buffers={k: v.astype(np.float32) for k, v in net.buffers.items()},
                dtype=dtype)
    twin = params_to_torch(model.config, model.params, model.buffers).eval()
    twin = twin.double() if dtype == np.float64 else twin
    x = np.random.default_rng(5).standard_normal((2, 3, 9, 8)).astype(dtype)  # odd, non-square: SAME asymmetry
    out, cache = model.forward(x)
    d = np.random.default_rng(6).standard_normal(out.shape).astype(dtype)
    dx, _ = model.backward(d, cache, param_grads=False)
    xt = torch.tensor(x, requires_grad=True)
    ot = twin(xt)
    ot.backward(torch.from_numpy(d))
    np.testing.assert_allclose(out, ot.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=tol, atol=tol)
    assert dx.dtype == dtype


def test_scale_jitter_maps_the_gradient_back_exactly():
    """<view(x), g> = <x, back(g)>: the gradient at the resized view, mapped back, is the
    gradient at x (the transform is linear, its back map its transpose)."""
    from gradscope.methods.regularizers import scale_jitter, smooth_gradient

    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 20, 17))
    for seed in range(3):
        xv, back = scale_jitter(0.2).view(x, np.random.default_rng(seed))
        g = rng.standard_normal(xv.shape)
        assert np.isclose(np.sum(xv * g), np.sum(x * back(g)))
    xv, back = smooth_gradient(1.0).view(x, rng)
    assert xv is x and back(x).shape == x.shape and np.abs(back(x)).max() < np.abs(x).max()


def test_methods_take_the_models_own_recipe(net):
    """Settings left unset come from model.method_defaults; given ones win; then DEFAULTS."""
    from gradscope.methods import visualize_class
    from gradscope.methods.class_visualization import RECIPES

    net.class_names = [str(i) for i in range(3)]
    net.method_defaults = {"visualize_class.pixel": {"jitter": 2, "scale_jitter": 0.1, "smooth_gradient": 0.5}}
    r = visualize_class(net, 1, recipe="pixel", iterations=2, jitter=1, seed=0)
    assert (r.params["jitter"], r.params["scale_jitter"], r.params["smooth_gradient"]) == (1, 0.1, 0.5)
    assert r.params["lr"] == RECIPES["pixel"].defaults["lr"] and r.images.shape == (1, 8, 8, 3)
    del net.method_defaults
    assert visualize_class(net, 1, recipe="pixel", iterations=1).params["scale_jitter"] == RECIPES["pixel"].defaults["scale_jitter"] == 0.0
