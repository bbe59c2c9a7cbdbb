"""One validation of model files: a CNN .json or a captioner .npz with a missing or
malformed field is one DataError naming the file and the field; weights holding NaN or
infinity are refused naming the model; non-finite outputs are refused naming the model."""
import json

import numpy as np
import pytest

from gradscope.captioning import CaptioningRNN
from gradscope.captioning.beam_search import beam_search
from gradscope.captioning.io import load_captioner, save_captioner
from gradscope.cli import main
from gradscope.cnn import CNN, load_cnn, pretrained_path, tiny_vgg
from gradscope.errors import DataError
from gradscope.fileio import json_array, load_npz, save_npz
from gradscope.methods import gradcam, saliency, smoothgrad


@pytest.fixture
def cnn_files(tmp_path):
    model = CNN(tiny_vgg(num_classes=3, widths=(4, 6), input_size=16))
    model.save(tmp_path / "m")
    return tmp_path / "m"


CNN_CASES = [
    (lambda c: c["layers"][0].pop("kernel"), r"m\.json: field layers\[0\] \(conv1\)\.kernel: missing"),
    (lambda c: c.__setitem__("input_size", "big"), r"field input_size: must be a whole number >= 1, got 'big'"),
    (lambda c: c["preprocess"].__setitem__("mean", [0.1, 0.2]), r"field preprocess\.mean: must be a list of 3"),
    (lambda c: c["preprocess"].__setitem__("std", [0, 0, 0]), r"field preprocess\.std: must hold numbers > 0"),
    (lambda c: c["layers"][1].__setitem__("eps", -1), r"layers\[1\] \(bn1\)\.eps: must be a finite number"),
    (lambda c: c["layers"][2].__setitem__("type", "gelu"), r"layers\[2\]\.type: must be one of"),
    (lambda c: c.__setitem__("layers", {}), r"field layers: must be a list"),
    (lambda c: c["classes"].__setitem__("names", "abc"), r"field classes\.names: must be a list of strings"),
]


@pytest.mark.parametrize("edit, message", CNN_CASES)
def test_cnn_config_fields_are_named(cnn_files, edit, message):
    path = cnn_files.with_suffix(".json")
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(config))
    with pytest.raises(DataError, match=message):
        load_cnn(cnn_files)


def test_shipped_cnn_config_passes():
    assert load_cnn(pretrained_path()).num_classes == 100


def test_nan_weights_are_refused_naming_the_model(cnn_files, tmp_path, capsys):
    arrays = load_npz(cnn_files.with_suffix(".npz"))
    arrays["param/conv1.W"] = arrays["param/conv1.W"].copy()
    arrays["param/conv1.W"][0, 0, 0, 0] = np.nan
    save_npz(cnn_files.with_suffix(".npz"), arrays)
    with pytest.raises(DataError, match=r"model .*m\.npz'?: weight param/conv1\.W holds 1 NaN"):
        load_cnn(cnn_files)
    from PIL import Image

    Image.fromarray(np.full((20, 20, 3), 100, np.uint8)).save(tmp_path / "x.png")
    assert main(["classify", str(tmp_path / "x.png"), "--model", str(cnn_files) + ".json"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "conv1.W holds 1 NaN" in err[0]


def test_non_finite_scores_name_the_model(cnn_files):
    model = load_cnn(cnn_files)
    model.params["fc.W"][:] = 1e38  # finite weights that overflow
    x = np.random.default_rng(0).random((1, 3, 16, 16)).astype(np.float32) * 1e30
    with np.errstate(over="ignore", invalid="ignore"):
        for run in (lambda: model.scores(x), lambda: saliency(model, x, 0), lambda: gradcam(model, x, 0)):
            with pytest.raises(DataError, match=r"model .*m' produced NaN or infinite scores"):
                run()                                 # the gradient methods too, not NaN maps


def _captioner(tmp_path):
    model = CaptioningRNN({"<NULL>": 0, "<START>": 1, "<END>": 2, "a": 3}, input_dim=4, wordvec_dim=3, hidden_dim=5)
    save_captioner(tmp_path / "c.npz", model)
    return tmp_path / "c.npz"


@pytest.mark.parametrize("field, value, message", [
    ("dtype", "float8", r"field dtype: must be one of 'float32', 'float64', got 'float8'"),
    ("info", [1, 2], r"field info: must be an object, got \[1, 2\]"),
    ("hidden_dim", 0, r"field hidden_dim: must be a whole number >= 1"),
    ("idx_to_word", None, r"field idx_to_word: must be a list of strings"),
])
def test_captioner_metadata_fields_are_named(tmp_path, field, value, message):
    path = _captioner(tmp_path)
    arrays = load_npz(path)
    meta = json.loads(arrays["meta"].tobytes())
    meta[field] = value
    arrays["meta"] = json_array(meta)
    save_npz(path, arrays)
    with pytest.raises(DataError, match=r"c\.npz'?: " + message):
        load_captioner(path)


def test_captioner_nan_weights_and_scores(tmp_path):
    path = _captioner(tmp_path)
    arrays = load_npz(path)
    arrays["param/Wx"] = np.full_like(arrays["param/Wx"], np.inf)
    save_npz(path, arrays)
    with pytest.raises(DataError, match=r"captioner .*c\.npz'?: weight Wx holds \d+ NaN or infinite"):
        load_captioner(path)
    (tmp_path / "good").mkdir()
    model = load_captioner(_captioner(tmp_path / "good"))
    model.params["W_vocab"][:] = np.nan
    with pytest.raises(DataError, match="the captioner produced NaN or infinite word scores"):
        beam_search(model, np.ones((1, 4)), beam_size=2, max_length=3)


def test_torch_model_non_finite_scores_name_the_model():
    torch = pytest.importorskip("torch")
    from gradscope.torch import TorchModel

    module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
    with torch.no_grad():
        module[1].weight[0, 0] = float("nan")
    model = TorchModel(module, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), input_size=8, pixel_range=(0, 1))
    x = np.random.default_rng(0).random((1, 3, 8, 8)).astype(np.float32)
    for run in (lambda: model.scores(x), lambda: saliency(model, x, 0), lambda: smoothgrad(model, x, 0, n_samples=2)):
        with pytest.raises(DataError, match="model Sequential produced NaN or infinite scores"):
            run()


def test_a_file_that_is_no_npz_is_one_clear_error(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros(3))                  # np.load would return this array
    (tmp_path / "a.npy").rename(tmp_path / "a.npz")
    (tmp_path / "b.npz").write_bytes(b'{"layers": 3}')        # np.load would try to unpickle this
    (tmp_path / "c.npz").write_bytes(b"")
    for name, message in (("a", "not an .npz file"), ("b", "not an .npz file"), ("c", "the file is empty")):
        with pytest.raises(DataError, match=message):
            load_npz(tmp_path / f"{name}.npz")
    save_npz(tmp_path / "d.npz", {"w": np.arange(3)})
    assert load_npz(tmp_path / "d.npz")["w"].tolist() == [0, 1, 2]
