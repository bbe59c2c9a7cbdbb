"""Residual blocks in the NumPy engine and the one-record-per-type layer table:
qualified names, forward to and backward from inner layers, skip rules, numeric
gradients of the input and every parameter, and parity with the torch twin."""
import numpy as np
import pytest
import torch

from gradscope.cnn import CNN
from gradscope.cnn.layer_types import LAYER_TYPES
from gradscope.cnn.torch_module import build_torch_module, params_to_torch, torch_to_params
from gradscope.errors import GradscopeError, ShapeError, UnknownLayerError
from gradscope.gradcheck import eval_numerical_gradient, eval_numerical_gradient_array, rel_error
from gradscope.interface import resolve_layer, score_gradient


def conv(name, c_in, c_out, k=3, stride=1):
    return {"name": name, "type": "conv", "in_channels": c_in, "out_channels": c_out, "kernel": k,
            "stride": stride, "pad": k // 2}


def bn(name, c):
    return {"name": name, "type": "spatial_batchnorm", "channels": c, "eps": 1e-5, "momentum": 0.9}


def residual_config():
    """stem; block1 (identity skip, with a nested block inside); block2 (changes width: no
    skip under 'auto'); pooling and a classifier."""
    inner = {"name": "inner", "type": "residual", "layers": [conv("c", 4, 4, 1), {"name": "r", "type": "relu"}]}
    block1 = {"name": "block1", "type": "residual",
              "layers": [conv("expand", 4, 6, 1), bn("bn", 6), {"name": "relu", "type": "relu"},
                         conv("project", 6, 4, 3), inner]}
    block2 = {"name": "block2", "type": "residual", "layers": [conv("widen", 4, 5, 3, stride=2), bn("bn", 5)]}
    layers = [conv("stem", 3, 4), bn("bn0", 4), {"name": "relu0", "type": "relu"}, block1, block2,
              {"name": "gap", "type": "global_avgpool"},
              {"name": "fc", "type": "affine", "in_features": 5, "out_features": 3}]
    return {"format": "gradscope-cnn/1", "input_size": 6, "layers": layers,
            "preprocess": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}}


def random_buffers(model, seed=1):
    rng = np.random.default_rng(seed)
    for k, v in model.buffers.items():
        model.buffers[k] = (rng.standard_normal(v.shape) * 0.1 if k.endswith("mean")
                            else rng.random(v.shape) + 0.5).astype(model.dtype)
    return model


@pytest.fixture
def net():
    return random_buffers(CNN(residual_config(), seed=0, dtype=np.float64))


@pytest.fixture
def x():
    return np.random.default_rng(0).standard_normal((2, 3, 6, 6))


def test_qualified_names_params_and_describe(net):
    assert net.layer_names == ["stem", "bn0", "relu0", "block1.expand", "block1.bn", "block1.relu",
                               "block1.project", "block1.inner.c", "block1.inner.r", "block1.inner", "block1",
                               "block2.widen", "block2.bn", "block2", "gap", "fc"]
    assert "block1.expand.W" in net.params and "block1.inner.c.b" in net.params
    assert "block2.bn.running_var" in net.buffers
    rows = {r["name"]: r for r in net.describe()}
    assert rows["block1"]["skip"] is True and rows["block1.inner"]["skip"] is True
    assert rows["block2"]["skip"] is False and rows["block2"]["output_shape"] == (5, 3, 3)
    assert rows["block1"]["params"] == sum(v.size for k, v in net.params.items() if k.startswith("block1."))
    assert resolve_layer(net, "block1.project") == 6 and resolve_layer(net, "block1") == 10


def test_block_output_is_inner_output_plus_skip(net, x):
    before = net.forward_to(x, "relu0")[0]
    inner_out = net.forward_to(x, "block1.inner.r")[0]
    inner_in = net.forward_to(x, "block1.project")[0]
    assert np.allclose(net.forward_to(x, "block1.inner")[0], inner_out + inner_in)
    assert np.allclose(net.forward_to(x, "block1")[0], inner_out + inner_in + before)
    # block2 changes shape: no skip under "auto"
    assert np.allclose(net.forward_to(x, "block2")[0], net.forward_to(x, "block2.bn")[0])
    # a range may start at a block (its first inner layer), not inside one
    a = net.forward_to(x, "relu0")[0]
    assert np.allclose(net.forward(a, start="block1", end="block1")[0], net.forward_to(x, "block1")[0])
    with pytest.raises(UnknownLayerError, match="inside residual block 'block1'"):
        net.forward(a, start="block1.bn")


@pytest.mark.parametrize("layer", ["block1.bn", "block1.inner.r", "block1.inner", "block1", "block2", "fc"])
def test_backward_from_any_layer_matches_numeric(net, x, layer):
    out, cache = net.forward_to(x, layer)
    dout = np.random.default_rng(2).standard_normal(out.shape)
    dx = net.backward_from(dout, cache)
    num = eval_numerical_gradient_array(lambda v: net.forward_to(v, layer)[0], x.copy(), dout)
    assert rel_error(dx, num) < 1e-6, layer


def test_gradients_of_every_parameter(net, x):
    dout = np.random.default_rng(3).standard_normal((2, 3))
    out, cache = net.forward(x, mode="test")
    _, grads = net.backward(dout, cache)
    assert set(grads) == set(net.params)
    for k, p in net.params.items():
        num = eval_numerical_gradient(lambda _: float(np.sum(net.forward(x, mode="test")[0] * dout)), p)
        assert np.all(np.abs(grads[k] - num) <= 1e-6 * (np.abs(grads[k]) + np.abs(num)) + 1e-8), k


def test_ranges_through_blocks_compose(net, x):
    out, cache = net.forward(x)
    dout = np.random.default_rng(4).standard_normal(out.shape)
    dx, grads = net.backward(dout, cache)
    a, c1 = net.forward(x, end="relu0")
    b, c2 = net.forward(a, start="block1")
    db, g2 = net.backward(dout, c2)
    dx2, g1 = net.backward(db, c1)
    assert np.allclose(b, out) and np.allclose(dx, dx2)
    assert set(g1) | set(g2) == set(grads)


def test_skip_keys():
    cfg = residual_config()
    cfg["layers"][4]["skip"] = "identity"  # block2 changes shape
    with pytest.raises(ShapeError, match="block2.*identity"):
        CNN(cfg)
    cfg["layers"][4]["skip"] = "sometimes"
    with pytest.raises(GradscopeError, match="skip must be one of"):
        CNN(cfg)
    cfg = residual_config()
    cfg["layers"][3]["skip"] = "none"
    net = CNN(cfg, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((1, 3, 6, 6))
    assert np.allclose(net.forward_to(x, "block1")[0], net.forward_to(x, "block1.inner")[0])
    for bad, match in (({"name": "a.b", "type": "relu"}, "contain no '.'"),
                       ({"name": "blk", "type": "residual", "layers": []}, "non-empty 'layers'"),
                       ({"name": "x", "type": "warp"}, "unknown type 'warp'")):
        cfg = residual_config()
        cfg["layers"].insert(0, bad)
        with pytest.raises(GradscopeError, match=match):
            CNN(cfg)


def test_torch_twin_parity_and_weight_round_trip(net, x):
    cfg = residual_config()
    model = random_buffers(CNN(cfg, seed=5))
    module = params_to_torch(cfg, model.params, model.buffers).eval()
    assert {n for n, _ in module.named_modules() if n} >= set(model.layer_names)
    x32 = x.astype(np.float32)
    scores, dx = score_gradient(model, x32, [0, 2])
    xt = torch.tensor(x32, requires_grad=True)
    st = module(xt)
    st[torch.arange(2), torch.tensor([0, 2])].sum().backward()
    assert np.allclose(scores, st.detach().numpy(), atol=1e-5)
    assert np.allclose(dx, xt.grad.numpy(), atol=1e-5)
    from gradscope.torch import cnn_to_torch

    twin = cnn_to_torch(model)
    assert twin.layer_names == model.layer_names
    for layer in ("block1.inner.c", "block1"):
        a, c = model.forward_to(x32, layer)
        at, ct = twin.forward_to(x32, layer)
        d = np.random.default_rng(6).standard_normal(a.shape).astype(np.float32)
        assert np.allclose(a, at, atol=1e-5) and np.allclose(model.backward_from(d, c), twin.backward_from(d, ct),
                                                             atol=1e-5)
    params, buffers = torch_to_params(cfg, module)
    assert all(np.array_equal(params[k], model.params[k]) for k in model.params)
    assert all(np.array_equal(buffers[k], model.buffers[k]) for k in model.buffers)


def test_every_record_has_a_torch_twin():
    """Each layer type's torch module holds the record's params and buffers under its torch keys."""
    cfg = {"name": "l", "in_channels": 2, "out_channels": 3, "kernel": 3, "channels": 2, "features": 2,
           "in_features": 2, "out_features": 3, "size": 2}
    for t, kind in LAYER_TYPES.items():
        layer = dict(cfg, type=t)
        state = kind.torch(layer).state_dict()
        for short, shape in {**kind.params(layer), **kind.buffers(layer)}.items():
            tshape = tuple(state[kind.torch_keys[short]].shape)
            assert tshape == (shape[::-1] if short in kind.torch_transposed else shape), (t, short)


def test_build_torch_module_checks_config():
    with pytest.raises(GradscopeError, match="unknown type"):
        build_torch_module({"layers": [{"name": "x", "type": "warp"}]})


def test_unknown_layer_names_the_blocks_of_a_long_network():
    from types import SimpleNamespace

    from gradscope.interface import UnknownLayerError

    short = SimpleNamespace(layer_names=["conv1", "relu1", "fc"])
    with pytest.raises(UnknownLayerError, match=r"unknown layer 'zz'; layers: conv1, relu1, fc$"):
        resolve_layer(short, "zz")
    names = ["stem"] + [f"block{i}.{s}" for i in range(12) for s in ("conv", "bn", "relu")] + \
            [f"block{i}" for i in range(12)] + ["head", "fc"]
    with pytest.raises(UnknownLayerError) as e:
        resolve_layer(SimpleNamespace(layer_names=names), "zz")
    msg = str(e.value)
    assert "blocks: stem, block0, block1," in msg and "block11, head, fc (51 layers in all" in msg
    assert "block0.conv" not in msg
    with pytest.raises(UnknownLayerError, match="close matches: block1.relu"):
        resolve_layer(SimpleNamespace(layer_names=names), "block1.rel")
