"""The PyTorch adapter on real architecture patterns, defined here in small versions (no
torchvision): a ResNet (skip connections, shared in-place ReLU), a SqueezeNet-style net
(fire modules: concatenated branches), models returning a dict and a tuple, and a
1-channel model. Every image method runs on each; gradients are checked against plain
torch autograd. Also the model specs of gradscope.modelspec."""
from __future__ import annotations

import functools
import os
import sys
import textwrap
import types

import numpy as np
import pytest
import torch
import torch.nn as nn

from gradscope.interface import score_gradient
from gradscope.errors import DataError, GradscopeError, ShapeError, UnknownLayerError
from gradscope.methods import deepdream, fool, invert, saliency, visualize_class
from gradscope.methods.interface import ImageModel
from gradscope.modelspec import load_image_model
from gradscope.torch import TorchModel

SIZE = 16
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


class BasicBlock(nn.Module):
    """torchvision-style residual block: one ReLU(inplace=True) module used twice."""

    def __init__(self, c_in, c_out, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class TinyResNet(nn.Module):
    def __init__(self, num_classes=5):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(BasicBlock(8, 8), BasicBlock(8, 16, stride=2))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x):
        x = self.layer1(self.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class Fire(nn.Module):
    def __init__(self, c_in, squeeze, expand):
        super().__init__()
        self.squeeze = nn.Conv2d(c_in, squeeze, 1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze, expand, 1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze, expand, 3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x):
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat([self.expand1x1_activation(self.expand1x1(x)),
                          self.expand3x3_activation(self.expand3x3(x))], 1)


class TinySqueezeNet(nn.Module):
    """SqueezeNet layout (conv, max pool, fire modules, 1x1-conv class maps, average pool);
    the class maps skip SqueezeNet's final ReLU so that raw-score ascent (fooling) can
    lower competing classes in this tiny net."""

    def __init__(self, num_classes=5):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1), nn.ReLU(inplace=True),
                                      nn.MaxPool2d(3, 2, ceil_mode=True), Fire(16, 4, 8), Fire(16, 4, 8))
        self.classifier = nn.Sequential(nn.Conv2d(16, num_classes, 1), nn.AdaptiveAvgPool2d(1))
        for m in self.modules():  # He init keeps the signal alive through the ReLUs
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return torch.flatten(self.classifier(self.features(x)), 1)


class DictNet(nn.Module):
    """Returns {'out': logits, 'aux': features}, like segmentation/detection heads."""

    def __init__(self, num_classes=5):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.head = nn.Linear(32, num_classes)

    def forward(self, x):
        f = self.body(x)
        return {"aux": f, "out": self.head(f)}


class TupleNet(DictNet):
    """Returns (logits, features), like Inception's aux-logit models."""

    def forward(self, x):
        f = self.body(x)
        return self.head(f), f


class GrayNet(nn.Module):
    """A 1-channel (grayscale) classifier."""

    def __init__(self, num_classes=5):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.act = nn.Tanh()
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.act(self.conv(x))), 1))


def _randomize_bn(module, seed=0):
    """Non-trivial batch-norm statistics and affine parameters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
                m.weight.copy_(1 + 0.2 * torch.randn(m.num_features, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.num_features, generator=g))
    return module


ARCHS = {"resnet": TinyResNet, "squeezenet": TinySqueezeNet, "dict": DictNet, "tuple": TupleNet, "gray": GrayNet}


@functools.lru_cache(maxsize=None)
def _trained_state(kind):
    """Weights after a short training on a synthetic 5-class task (class = a fixed random
    pattern, plus noise), so that the tests run on a network that tells classes apart
    rather than on a degenerate random one. The last layer is then centred over classes
    (which changes no softmax probability) so that raw-score ascent makes classes compete."""
    torch.manual_seed(0)
    net = ARCHS[kind]().train()
    g = torch.Generator().manual_seed(0)
    templates = torch.randn(5, 3, SIZE, SIZE, generator=g)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(60):
        y = torch.randint(0, 5, (32,), generator=g)
        x = templates[y] + 0.7 * torch.randn(32, 3, SIZE, SIZE, generator=g)
        if kind == "gray":
            x = torch.einsum("nchw,c->nhw", x, torch.tensor([0.299, 0.587, 0.114]))[:, None]
        out = net(x)
        out = out["out"] if isinstance(out, dict) else out[0] if isinstance(out, tuple) else out
        opt.zero_grad()
        nn.functional.cross_entropy(out, y).backward()
        opt.step()
    last = [m for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d))][-1]
    with torch.no_grad():
        last.weight.sub_(last.weight.mean(dim=0, keepdim=True))
        last.bias.sub_(last.bias.mean())
    return {k: v.clone() for k, v in net.state_dict().items()}


def _wrap(kind, **kw):
    net = ARCHS[kind]()
    net.load_state_dict(_trained_state(kind))
    if kind == "gray":  # Caffe-style: mean/std on 0..255 pixels
        return TorchModel(net, mean=[120.0], std=[60.0], input_size=SIZE, device="cpu", **kw)
    output = {"dict": "out", "tuple": 0}.get(kind)
    return TorchModel(net, mean=MEAN, std=STD, input_size=SIZE, pixel_range=(0, 1), device="cpu",
                      output=output, **kw)


# a layer inside each model (inside a residual block / a fire module where there is one)
INNER = {"resnet": "layer1.1.bn1", "squeezenet": "features.3.expand3x3", "dict": "body.1",
         "tuple": "body.1", "gray": "act"}
KINDS = list(INNER)


def _images(model, n=2, seed=0):
    rng = np.random.default_rng(seed)
    return model.preprocess(rng.integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8))


def _logits(model, xt):
    out = model.module(xt)
    return {"dict": lambda o: o["out"], "tuple": lambda o: o[0]}.get(
        "dict" if isinstance(out, dict) else "tuple" if isinstance(out, tuple) else "", lambda o: o)(out)


def _fed(model, x):
    """What the adapter feeds the module for model input x (the luma for a gray model)."""
    xt = torch.from_numpy(x).requires_grad_(True)
    if model.in_channels == 1:
        return xt, (0.299 * xt[:, 0] + 0.587 * xt[:, 1] + 0.114 * xt[:, 2])[:, None]
    return xt, xt.clone()


# ---- the protocol and the gradients --------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_protocol_and_score_gradient_match_autograd(kind):
    model = _wrap(kind)
    assert isinstance(model, ImageModel)
    assert model.num_classes == 5 and len(model.class_names) == 5
    x = _images(model, 3)
    classes = [0, 3, 4]
    scores, dx = score_gradient(model, x, classes)
    xt, fed = _fed(model, x)
    s = _logits(model, fed)
    ref, = torch.autograd.grad(s[torch.arange(3), torch.tensor(classes)].sum(), xt)
    np.testing.assert_allclose(scores, s.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dx, ref.numpy(), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(model.scores(x), scores, rtol=1e-5, atol=1e-6)
    res = saliency(model, x, classes)  # saliency is the plain input gradient, |.| max over channels
    np.testing.assert_allclose(res.attributions, ref.numpy(), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(res.maps, np.abs(ref.numpy()).max(axis=1), rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("kind", KINDS)
def test_forward_to_inner_layer_and_backward_from(kind):
    model = _wrap(kind)
    name = INNER[kind]
    x = _images(model, 2, seed=1)
    act, cache = model.forward_to(x, name)
    # reference: the full forward pass with a hook that copies the layer's output
    captured = {}

    def hook(_module, _inputs, out):  # returns None: the module's output is kept
        captured.setdefault("out", out.clone())

    handle = dict(model.module.named_modules())[name].register_forward_hook(hook)
    xt, fed = _fed(model, x)
    model.module(fed)
    handle.remove()
    ref = captured["out"]
    np.testing.assert_allclose(act, ref.detach().numpy(), rtol=1e-5, atol=1e-6)
    dact = np.random.default_rng(2).standard_normal(act.shape).astype(np.float32)
    dx = model.backward_from(dact, cache)
    want, = torch.autograd.grad(ref, xt, grad_outputs=torch.from_numpy(dact))
    np.testing.assert_allclose(dx, want.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(model.backward_from(dact, cache), dx)  # the cache can be reused


def test_inplace_relu_cannot_overwrite_captured_activation():
    """bn1's output is overwritten by the block's ReLU(inplace=True) in a full pass; the
    adapter stops right after bn1, so its negative values survive."""
    model = _wrap("resnet")
    x = _images(model, 2)
    act, cache = model.forward_to(x, "layer1.0.bn1")
    assert (act < 0).any()
    with torch.no_grad():
        m = model.module
        stem = m.relu(m.bn1(m.conv1(torch.from_numpy(x))))
        want = m.layer1[0].bn1(m.layer1[0].conv1(stem))
    np.testing.assert_allclose(act, want.numpy(), rtol=1e-5, atol=1e-6)
    assert model.backward_from(np.ones_like(act), cache).shape == x.shape


def test_layer_names_in_execution_order_and_errors():
    model = _wrap("resnet")
    names = model.layer_names
    for inner, outer in [("layer1.0.conv1", "layer1.0"), ("layer1.0", "layer1.1.conv1"),
                         ("layer1.1.downsample.0", "layer1.1"), ("layer1", "fc")]:
        assert names.index(inner) < names.index(outer)
    act_idx, _ = model.forward_to(_images(model, 1), names.index("layer1.0"))
    assert act_idx.shape == (1, 8, SIZE, SIZE)
    with pytest.raises(UnknownLayerError, match="close matches"):
        model.forward_to(_images(model, 1), "layer1.0.conv")
    sq = _wrap("squeezenet", layers=["features.3", "features.4.expand1x1", "classifier"])
    assert sq.layer_names == ["features.3", "features.4.expand1x1", "classifier"]
    assert sq.forward_to(_images(sq, 1), 0)[0].shape == (1, 16, 8, 8)  # concatenated branches
    with pytest.raises(UnknownLayerError, match="no submodule"):
        _wrap("squeezenet", layers=["features.9"])


def test_eval_mode_frozen_params_dtype_and_batch_independence():
    torch.manual_seed(0)
    net = _randomize_bn(TinyResNet()).train()
    for p in net.parameters():
        p.requires_grad_(False)
    model = TorchModel(net, mean=MEAN, std=STD, input_size=SIZE, pixel_range=(0, 1), device="cpu")
    assert not net.training
    x = _images(model, 3)
    s, dx = score_gradient(model, x, [1, 1, 1])
    s0, dx0 = score_gradient(model, x[:1], [1])  # eval-mode batch norm: images are independent
    np.testing.assert_allclose(s[:1], s0, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dx[:1], dx0, rtol=1e-4, atol=1e-7)
    assert all(p.grad is None for p in net.parameters())
    s64, dx64 = score_gradient(model, x.astype(np.float64), [1, 1, 1])
    assert s64.dtype == np.float64 and dx64.dtype == np.float64
    np.testing.assert_allclose(dx64, dx, rtol=1e-6)
    double = TorchModel(net.double(), mean=MEAN, std=STD, input_size=SIZE, pixel_range=(0, 1), device="cpu")
    _, dx_double = score_gradient(double, x.astype(np.float64), [1, 1, 1])  # a float64 module runs in float64
    np.testing.assert_allclose(dx_double, dx, rtol=1e-3, atol=1e-6)
    assert np.abs(dx_double - dx).max() > 0


def test_pixels_contract_and_gray_model():
    model = _wrap("gray")  # mean/std 120/60 on 0..255 pixels
    assert model.in_channels == 1
    lo, hi = model.pixel_bounds()
    np.testing.assert_allclose(lo.ravel(), [-2.0] * 3)
    np.testing.assert_allclose(hi.ravel(), [2.25] * 3)
    img = np.random.default_rng(0).integers(0, 256, (2, SIZE, SIZE, 3), dtype=np.uint8)
    x = model.preprocess(img)
    assert x.shape == (2, 3, SIZE, SIZE) and x.dtype == np.float32
    np.testing.assert_array_equal(model.deprocess(x), img)
    # the module sees the luma; the gradient reaches each channel scaled by its weight
    _, dx = score_gradient(model, x, [2, 2])
    np.testing.assert_allclose(dx[:, 1] / 0.587, dx[:, 0] / 0.299, rtol=1e-4, atol=1e-8)
    np.testing.assert_allclose(dx[:, 2] / 0.114, dx[:, 0] / 0.299, rtol=1e-4, atol=1e-8)
    small = model.preprocess([img[0, :5, :7], img[1]])  # any size in, input_size out
    assert small.shape == (2, 3, SIZE, SIZE)


def test_output_selection_and_input_errors():
    with pytest.raises(GradscopeError, match="tuple of length 2.*output="):
        TorchModel(TupleNet(), mean=MEAN, std=STD, input_size=SIZE, pixel_range=(0, 1), device="cpu")
    with pytest.raises(GradscopeError, match="keys \\['aux', 'out'\\]"):
        TorchModel(DictNet(), mean=MEAN, std=STD, input_size=SIZE, pixel_range=(0, 1), device="cpu")
    picked = TorchModel(TupleNet(), mean=MEAN, std=STD, input_size=SIZE, pixel_range=(0, 1), device="cpu",
                        output=lambda o: o[0] * 2)
    assert picked.num_classes == 5
    with pytest.raises(GradscopeError, match="pixel_range=\\(0, 1\\)"):
        TorchModel(DictNet(), mean=MEAN, std=STD, input_size=SIZE, output="out")  # 0..255 default
    with pytest.raises(GradscopeError, match="class_names has 2 entries"):
        _wrap("dict", class_names=["a", "b"])
    model = _wrap("squeezenet")
    with pytest.raises(ShapeError, match="\\(N, 3, H, W\\)"):
        model.scores(np.zeros((1, 1, SIZE, SIZE), np.float32))
    with pytest.raises(ShapeError, match="failed on input of shape \\(1, 3, 1, 1\\)"):
        model.scores(np.zeros((1, 3, 1, 1), np.float32))  # too small for the max pool
    assert model.scores(np.zeros((1, 3, 5, 5), np.float32)).shape == (1, 5)  # small images work


# ---- every method on every architecture ---------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_fooling_reaches_target(kind):
    model = _wrap(kind)
    x = _images(model, 2, seed=3)
    target = (np.argmax(model.scores(x), axis=1) + 1) % 5
    res = fool(model, x, target, step_size=1.0, max_iter=100)
    assert res.success.all(), res.to_dict()
    again = model.scores(model.preprocess(res.images))  # the saved uint8 image is fooled
    np.testing.assert_array_equal(np.argmax(again, axis=1), target)


@pytest.mark.parametrize("kind", KINDS)
def test_class_visualization_improves_score(kind):
    model = _wrap(kind)
    res = visualize_class(model, 1, recipe="pixel", iterations=15, lr=0.2, l2_reg=1e-3, blur_every=0, seed=0)
    assert res.images.shape == (1, SIZE, SIZE, 3)
    assert res.score_history[-1, 0] > res.score_history[0, 0]


@pytest.mark.parametrize("kind", KINDS)
def test_inversion_reduces_distance(kind):
    model = _wrap(kind)
    x = _images(model, 1, seed=4)
    res = invert(model, x, INNER[kind], iterations=15, lr=0.1, seed=0)
    assert res.distance_history[-1, 0] < res.distance_history[0, 0]


@pytest.mark.parametrize("kind", KINDS)
def test_deepdream_amplifies_layer(kind):
    model = _wrap(kind)
    x = _images(model, 1, seed=5)
    res = deepdream(model, x, INNER[kind], iterations=8, lr=0.05, octaves=None, seed=0)
    assert res.activation_norm[-1, 0] > res.activation_norm[0, 0]


# ---- model specs -----------------------------------------------------------------------

FACTORY = """
import torch.nn as nn
from gradscope.torch import TorchModel


def net():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 3))


def wrapped():
    return TorchModel(net(), mean=[0.5] * 3, std=[0.5] * 3, input_size=12, pixel_range=(0, 1),
                      class_names=["cat", "dog", "fox"], device="cpu")


def not_a_model():
    return 42
"""


@pytest.fixture
def factory_file(tmp_path):
    path = tmp_path / "my_models.py"
    path.write_text(textwrap.dedent(FACTORY))
    return str(path)


def test_spec_file_factory_and_weights(factory_file, tmp_path):
    bare = load_image_model(f"{factory_file}:net")
    assert isinstance(bare, TorchModel) and bare.input_size == 224 and bare.num_classes == 3
    model = load_image_model(f"{factory_file}:wrapped")
    assert model.class_names == ["cat", "dog", "fox"] and model.input_size == 12
    torch.manual_seed(1)
    trained = load_image_model(f"{factory_file}:wrapped").module
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(torch.randn_like(p))
    weights = tmp_path / "w.pt"
    torch.save(trained.state_dict(), weights)
    loaded = load_image_model(f"{factory_file}:wrapped", weights=str(weights))
    x = np.random.default_rng(0).standard_normal((2, 3, 12, 12)).astype(np.float32)
    with torch.no_grad():
        want = trained(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(loaded.scores(x), want, rtol=1e-5, atol=1e-6)
    torch.save({"epoch": 3, "state_dict": trained.state_dict()}, tmp_path / "ckpt.pt")
    unwrapped = load_image_model(f"{factory_file}:net", weights=str(tmp_path / "ckpt.pt"))
    assert unwrapped.num_classes == 3


def test_spec_errors(factory_file, tmp_path):
    with pytest.raises(GradscopeError, match="has no function 'nope'.*net"):
        load_image_model(f"{factory_file}:nope")
    with pytest.raises(GradscopeError, match="returned a int"):
        load_image_model(f"{factory_file}:not_a_model")
    with pytest.raises(GradscopeError, match="no factory"):
        load_image_model(factory_file)
    with pytest.raises(DataError, match="model file not found"):
        load_image_model(str(tmp_path / "missing.py") + ":net")
    with pytest.raises(GradscopeError, match="unknown model spec"):
        load_image_model("resnet18")
    with pytest.raises(DataError, match="weights file not found"):
        load_image_model(f"{factory_file}:net", weights=str(tmp_path / "none.pt"))
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pt")
    with pytest.raises(DataError, match="does not fit the model"):
        load_image_model(f"{factory_file}:net", weights=str(tmp_path / "other.pt"))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(DataError, match="junk.pt"):
        load_image_model(f"{factory_file}:net", weights=str(tmp_path / "junk.pt"))
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(GradscopeError, match="importing .*broken.py.* failed: RuntimeError: boom"):
        load_image_model(f"{broken}:net")


class _Payload:
    """A pickle that would create a file when unpickled, if anything ran its code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_malicious_checkpoint_is_refused(factory_file, tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"0.weight": _Payload(str(marker))}, evil)
    with pytest.raises(DataError, match="refusing to load .*evil.pt.*could run code"):
        load_image_model(f"{factory_file}:net", weights=str(evil))
    assert not marker.exists()


def test_torchvision_spec(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # as if not installed
    with pytest.raises(GradscopeError, match="needs torchvision"):
        load_image_model("torchvision:resnet18", weights="w.pt")
    # a stand-in torchvision with one architecture and its metadata
    weights_enum = [types.SimpleNamespace(meta={"categories": ["a", "b", "c"]},
                                          transforms=lambda: types.SimpleNamespace(crop_size=[20]))]
    models = types.SimpleNamespace(
        list_models=lambda module=None: ["tinynet"],
        get_model=lambda name, weights=None: nn.Sequential(nn.Conv2d(3, 3, 3), nn.AdaptiveAvgPool2d(1),
                                                           nn.Flatten()),
        get_model_weights=lambda name: weights_enum)
    monkeypatch.setitem(sys.modules, "torchvision", types.SimpleNamespace(models=models))
    with pytest.raises(GradscopeError, match="needs --weights PATH"):
        load_image_model("torchvision:tinynet")
    with pytest.raises(GradscopeError, match="unknown torchvision .*'tinynt'.*tinynet"):
        load_image_model("torchvision:tinynt", weights="w.pt")
    torch.manual_seed(0)
    net = models.get_model("tinynet")
    torch.save(net.state_dict(), tmp_path / "tv.pt")
    model = load_image_model("torchvision:tinynet", weights=str(tmp_path / "tv.pt"))
    assert model.class_names == ["a", "b", "c"] and model.input_size == 20
    np.testing.assert_allclose(model.pixel_bounds()[0].ravel(),
                               -np.array(MEAN) / np.array(STD), rtol=1e-6)


def test_torch_is_not_imported_by_gradscope():
    """torch stays optional: gradscope, its methods, model specs and CLI import without it."""
    import subprocess

    code = ("import sys, gradscope, gradscope.methods, gradscope.modelspec, gradscope.cli; "
            "gradscope.cli.build_parser(); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_lucid_class_and_feature_visualization(kind):
    """The Fourier / decorrelated-colour recipe and channel visualisation on any ImageModel."""
    from gradscope.methods import visualize_class
    from gradscope.methods.feature_visualization import visualize_feature

    model = _wrap(kind)
    res = visualize_class(model, 1, iterations=12, lr=0.1, seed=0)
    assert res.images.shape == (1, SIZE, SIZE, 3) and res.params["recipe"] == "robust"
    assert res.score_history[-3:, 0].mean() > res.score_history[:3, 0].mean()  # the raw score is climbed
    feat = visualize_feature(model, INNER[kind], [0, 1], iterations=8, lr=0.1, seed=0)
    assert feat.images.shape == (2, SIZE, SIZE, 3) and feat.value_history.shape == (8, 2)
    assert np.all(feat.value_history[-1] > feat.value_history[0])
