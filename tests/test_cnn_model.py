"""The NumPy CNN: layer ranges, backward to the image, parity with its torch twin,
save/load, preprocessing, training and clear errors. Tiny random networks only."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gradscope.interface import score_gradient
from gradscope.cnn import CNN, tiny_vgg
from gradscope.cnn.torch_module import build_torch_module, params_to_torch
from gradscope.errors import GradscopeError, ShapeError, UnknownLayerError
from gradscope.gradcheck import eval_numerical_gradient, eval_numerical_gradient_array, rel_error
from gradscope.methods.interface import ImageModel
from gradscope.training.optim import adam


def all_types_config():
    """Every layer type once: conv (stride 1 and 2), both batch norms, pooling, dropout."""
    L = [{"name": "conv1", "type": "conv", "in_channels": 3, "out_channels": 4, "kernel": 3, "stride": 1, "pad": 1},
         {"name": "bn1", "type": "spatial_batchnorm", "channels": 4, "eps": 1e-5, "momentum": 0.9},
         {"name": "relu1", "type": "relu"},
         {"name": "pool1", "type": "maxpool", "size": 2, "stride": 2},
         {"name": "conv2", "type": "conv", "in_channels": 4, "out_channels": 5, "kernel": 3, "stride": 2, "pad": 1},
         {"name": "relu2", "type": "relu"},
         {"name": "flat", "type": "flatten"},
         {"name": "fc1", "type": "affine", "in_features": 20, "out_features": 6},
         {"name": "bn2", "type": "batchnorm", "features": 6, "eps": 1e-5, "momentum": 0.9},
         {"name": "relu3", "type": "relu"},
         {"name": "drop", "type": "dropout", "p": 0.3},
         {"name": "fc2", "type": "affine", "in_features": 6, "out_features": 3}]
    return {"format": "gradscope-cnn/1", "input_size": 8, "layers": L,
            "preprocess": {"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3]},
            "classes": {"wnids": ["n1", "n2", "n3"], "names": ["cat", "dog", "fish"]}}


def with_random_buffers(model, seed=1):
    """Non-trivial running statistics so test mode really exercises them."""
    rng = np.random.default_rng(seed)
    for k in model.buffers:
        shape = model.buffers[k].shape
        v = rng.standard_normal(shape) * 0.1 if k.endswith("mean") else rng.random(shape) + 0.5
        model.buffers[k] = v.astype(model.dtype)
    return model


@pytest.fixture
def model64():
    return with_random_buffers(CNN(all_types_config(), seed=0, dtype=np.float64))


@pytest.fixture
def x8():
    return np.random.default_rng(0).standard_normal((3, 3, 8, 8))


def test_implements_image_model_protocol(model64):
    assert isinstance(model64, ImageModel)
    assert model64.class_names == ["cat", "dog", "fish"] and model64.wnids == ["n1", "n2", "n3"]
    assert model64.layer_names[0] == "conv1" and model64.input_size == 8


def test_describe_matches_forward(model64, x8):
    x = x8
    for i, row in enumerate(model64.describe()):
        x, _ = model64.forward(x, start=i, end=i)
        assert x.shape[1:] == row["output_shape"], row["name"]
    assert model64.describe()[0]["params"] == 4 * 3 * 9 + 4


@pytest.mark.parametrize("split", ["relu1", "pool1", "flat", 9])
def test_forward_and_backward_ranges_compose(model64, x8, split):
    out, cache = model64.forward(x8, mode="test")
    dout = np.random.default_rng(1).standard_normal(out.shape)
    dx, grads = model64.backward(dout, cache)
    a, c1 = model64.forward(x8, end=split)
    k = model64.layer_names.index(split) if isinstance(split, str) else split
    out2, c2 = model64.forward(a, start=k + 1, end=None)
    assert np.allclose(out, out2)
    da, g2 = model64.backward(dout, c2)
    dx2, g1 = model64.backward(da, c1)
    assert np.allclose(dx, dx2)
    assert set(g1).isdisjoint(g2) and set(g1) | set(g2) == set(grads) == set(model64.params)
    for key, g in {**g1, **g2}.items():
        assert np.allclose(g, grads[key]), key


def test_backward_to_image_matches_numeric(model64, x8):
    out, cache = model64.forward(x8, end="relu3")
    dout = np.random.default_rng(2).standard_normal(out.shape)
    dx = model64.backward_from(dout, cache)
    num = eval_numerical_gradient_array(lambda x: model64.forward_to(x, "relu3")[0], x8.copy(), dout)
    assert rel_error(dx, num) < 1e-6


def test_score_gradient_is_gradient_of_raw_score(model64, x8):
    classes = [0, 2, 1]
    scores, dx = score_gradient(model64, x8, classes)
    assert np.allclose(scores, model64.scores(x8))
    for i, c in enumerate(classes):
        xi = x8[i:i + 1].copy()
        num = eval_numerical_gradient(lambda x: model64.scores(x)[0, c], xi)
        assert rel_error(dx[i:i + 1], num) < 1e-6


def test_loss_gradients_of_all_params(model64, x8):
    y = np.array([0, 1, 2])

    def f(_):
        model64.rng = np.random.default_rng(5)  # the same dropout mask every call
        return model64.loss(x8, y, reg=0.1)[0]

    model64.rng = np.random.default_rng(5)
    loss, grads = model64.loss(x8, y, reg=0.1)
    assert np.isfinite(loss) and set(grads) == set(model64.params)
    for k, p in model64.params.items():
        num = eval_numerical_gradient(f, p)
        # relative per element, absolute near 0 (a conv bias before train-mode batch norm has gradient 0)
        assert np.all(np.abs(grads[k] - num) <= 1e-6 * (np.abs(grads[k]) + np.abs(num)) + 1e-8), k


def test_train_mode_stores_running_stats_test_mode_does_not(model64, x8):
    before = {k: v.copy() for k, v in model64.buffers.items()}
    model64.forward(x8, mode="test")
    assert all(np.array_equal(before[k], v) for k, v in model64.buffers.items())
    model64.forward(x8, mode="train")
    assert not np.allclose(before["bn1.running_mean"], model64.buffers["bn1.running_mean"])
    conv_out, _ = model64.forward(x8, end="conv1")
    expected = 0.9 * before["bn1.running_mean"] + 0.1 * conv_out.mean(axis=(0, 2, 3))
    assert np.allclose(model64.buffers["bn1.running_mean"], expected)


def test_layer_addressing_by_name_and_index(model64, x8):
    a = model64.forward_to(x8, "pool1")[0]
    assert np.array_equal(a, model64.forward_to(x8, 3)[0])
    assert np.array_equal(a, model64.forward_to(x8, 3 - len(model64.layer_names))[0])
    assert np.array_equal(a, model64.forward_to(x8, "3")[0])
    with pytest.raises(UnknownLayerError, match="pool1"):
        model64.forward_to(x8, "pool")
    with pytest.raises(UnknownLayerError, match="out of range"):
        model64.forward_to(x8, 40)
    with pytest.raises(UnknownLayerError, match="after"):
        model64.forward(x8, start="fc1", end="conv2")


def test_matches_torch_twin_forward_and_gradients():
    config = tiny_vgg(num_classes=7, widths=(4, 6, 8), input_size=16, hidden=10)
    model = with_random_buffers(CNN(config, seed=3))
    module = params_to_torch(config, model.params, model.buffers).eval()
    x = np.random.default_rng(4).standard_normal((4, 3, 16, 16)).astype(np.float32)
    scores, dx = score_gradient(model, x, [0, 3, 6, 1])
    xt = torch.tensor(x, requires_grad=True)
    st = module(xt)
    st[torch.arange(4), torch.tensor([0, 3, 6, 1])].sum().backward()
    assert np.allclose(scores, st.detach().numpy(), atol=1e-4)
    assert np.allclose(dx, xt.grad.numpy(), atol=1e-4)
    # a training step: batch statistics, mean cross-entropy, gradients of every parameter
    y = np.array([1, 2, 3, 4])
    loss, grads = model.loss(x, y)
    module.train()
    module.zero_grad()
    tl = F.cross_entropy(module(torch.from_numpy(x)), torch.from_numpy(y))
    tl.backward()
    assert abs(loss - tl.item()) < 1e-4
    for name, m in module.named_children():
        if isinstance(m, torch.nn.Conv2d):
            assert np.allclose(grads[f"{name}.W"], m.weight.grad.numpy(), atol=1e-4)
        elif isinstance(m, torch.nn.BatchNorm2d):
            assert np.allclose(grads[f"{name}.gamma"], m.weight.grad.numpy(), atol=1e-4)
        elif isinstance(m, torch.nn.Linear):
            assert np.allclose(grads[f"{name}.W"], m.weight.grad.numpy().T, atol=1e-4)
    assert np.allclose(model.buffers["bn1.running_mean"], module.bn1.running_mean.numpy(), atol=1e-5)


def test_build_torch_module_any_size_input():
    config = tiny_vgg(num_classes=3, widths=(4, 6), input_size=8)
    model = with_random_buffers(CNN(config, seed=0))
    module = params_to_torch(config, model.params, model.buffers).eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 12, 10)).astype(np.float32)  # global pooling: any size
    with torch.no_grad():
        assert np.allclose(model.scores(x), module(torch.from_numpy(x)).numpy(), atol=1e-4)
    assert isinstance(build_torch_module(config), torch.nn.Sequential)


@pytest.mark.parametrize("float16", [False, True])
def test_save_load_round_trip(tmp_path, float16):
    model = with_random_buffers(CNN(all_types_config(), seed=2))
    model.save(tmp_path / "m.json", float16=float16)
    loaded = CNN.load(tmp_path / "m")
    assert loaded.config == model.config and loaded.layer_names == model.layer_names
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    tol = 1e-2 if float16 else 0
    for k, v in model.params.items():
        assert np.allclose(loaded.params[k], v, atol=tol, rtol=tol)
    for k, v in model.buffers.items():
        assert np.array_equal(loaded.buffers[k], v)  # buffers are always stored in float32
    assert np.allclose(loaded.scores(x), model.scores(x), atol=5 * tol + 1e-6)


def test_loss_goes_down_with_numpy_training():
    rng = np.random.default_rng(0)
    config = tiny_vgg(num_classes=4, widths=(4, 8), input_size=8)
    model = CNN(config, seed=0)
    X = rng.standard_normal((16, 3, 8, 8)).astype(np.float32)
    y = rng.integers(0, 4, 16)
    configs = {}
    losses = []
    for _ in range(15):
        loss, grads = model.loss(X, y)
        losses.append(loss)
        for k in model.params:
            model.params[k], configs[k] = adam(model.params[k], grads[k], configs.get(k, {"learning_rate": 1e-2}))
    assert losses[-1] < 0.5 * losses[0]
    assert all(v.dtype == np.float32 for v in model.params.values())


def test_preprocess_deprocess_round_trip_and_bounds():
    model = CNN(all_types_config(), seed=0)
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    x = model.preprocess(imgs)
    assert x.shape == (2, 3, 8, 8) and x.dtype == np.float32
    assert np.array_equal(model.deprocess(x), imgs)
    lo, hi = model.pixel_bounds()
    assert lo.shape == hi.shape == (1, 3, 1, 1)
    assert np.allclose(model.preprocess(np.zeros((1, 8, 8, 3), np.uint8)), lo)
    assert np.allclose(model.preprocess(np.full((1, 8, 8, 3), 255, np.uint8)), hi)


def test_preprocess_any_size_and_kind():
    model = CNN(all_types_config(), seed=0)
    rng = np.random.default_rng(0)
    wide = rng.integers(0, 256, (20, 40, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, (9, 8), dtype=np.uint8)
    rgba = rng.integers(0, 256, (8, 8, 4), dtype=np.uint8)
    x = model.preprocess([wide, gray, rgba])
    assert x.shape == (3, 3, 8, 8)
    assert np.array_equal(model.deprocess(x[2:]), rgba[None, :, :, :3])
    assert model.preprocess(wide).shape == (1, 3, 8, 8)  # one image without a batch axis
    # a centre crop of a wide image keeps its middle: a white band in the middle stays white
    band = np.zeros((8, 24, 3), np.uint8)
    band[:, 8:16] = 255
    assert (model.deprocess(model.preprocess([band])) == 255).all()
    with pytest.raises(ShapeError, match="uint8"):
        model.preprocess([wide.astype(np.float32) / 255])
    with pytest.raises(ShapeError):
        model.preprocess(np.zeros((2, 8, 8), np.uint8))


def test_clear_errors(model64, x8):
    with pytest.raises(ShapeError, match=r"\(N, 3, H, W\)"):
        model64.scores(x8[:, :2])
    with pytest.raises(ShapeError, match=r"\(N, 3, H, W\)"):
        model64.scores(x8[0])
    bad = x8.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(GradscopeError, match="NaN"):
        score_gradient(model64, bad, [0, 0, 0])
    with pytest.raises(ShapeError, match="fc1"):
        model64.scores(np.zeros((1, 3, 12, 12)))  # flatten + affine need the trained size
    with pytest.raises(ShapeError, match="upstream gradient"):
        _, cache = model64.forward_to(x8, "pool1")
        model64.backward_from(np.zeros((3, 4, 8, 8)), cache)
    with pytest.raises(ShapeError, match="input to layer 'fc1'"):
        model64.forward(np.zeros((3, 4, 4, 4)), start="fc1")
    with pytest.raises(GradscopeError, match="classes"):
        score_gradient(model64, x8, [0, 1, 3])
    params = dict(model64.params)
    params["conv1.W"] = params["conv1.W"][:, :2]
    with pytest.raises(ShapeError, match="conv1.W"):
        CNN(all_types_config(), params=params)
    del params["conv1.W"]
    with pytest.raises(GradscopeError, match="missing"):
        CNN(all_types_config(), params=params)
    config = all_types_config()
    config["layers"][4]["in_channels"] = 7
    with pytest.raises(ShapeError, match="conv2"):
        CNN(config)
    config["layers"][4]["type"] = "conv3d"
    with pytest.raises(GradscopeError, match="unknown type"):
        CNN(config)
