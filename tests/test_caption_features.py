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
    fn = feature_fn_for(load_pretrained())
    assert fn.fingerprint() == load_pretrained().info["features_fingerprint"]


def test_features_of_another_cnn_are_refused():
    fn = cnn_feature_fn()
    assert feature_fn_for(_captioner(fn, fn.fingerprint())).name == fn.name
    with pytest.raises(DataError, match="different CNN"):
        feature_fn_for(_captioner(fn, "0123456789ab"))
