"""The CNN commands: classify, cnn layers, cnn evaluate, cnn train (both engines), on
tiny generated data and tiny models."""

import numpy as np
import pytest
from PIL import Image

from gradscope.cli import main
from gradscope.cnn import CNN, tiny_vgg

from json_schema import check_output
from tiny_tinyimagenet import WNIDS, make_tiny_tinyimagenet


@pytest.fixture
def saved_model(tmp_path):
    config = tiny_vgg(num_classes=3, widths=(4, 6), input_size=8)
    config["classes"] = {"wnids": WNIDS, "names": ["goldfish, Carassius auratus", "tabby, tabby cat", "n03"]}
    path = tmp_path / "model.json"
    CNN(config, seed=0).save(path)
    return str(path)


def test_classify_json_and_text(tmp_path, saved_model, capsys):
    rng = np.random.default_rng(0)
    paths = []
    for i, shape in enumerate([(30, 20, 3), (8, 8, 3)]):
        paths.append(str(tmp_path / f"img{i}.png"))
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(paths[-1])
    assert main(["classify", *paths, "--model", saved_model, "--top", "2", "--json"]) == 0
    out = check_output(capsys.readouterr().out, "classify")
    results = out["results"]
    assert [r["image"] for r in results] == paths and len(results[0]["top"]) == 2
    assert results[0]["top"][0]["probability"] >= results[0]["top"][1]["probability"]
    assert results[0]["class"] == results[0]["top"][0]["class"] and out["model"]["input_size"] == 8
    assert main(["classify", paths[1], "--model", saved_model]) == 0
    text = capsys.readouterr().out
    assert text.startswith("model: model.json, 8 px\n") and "tabby" in text
    assert main(["classify", str(tmp_path / "nope.png"), "--model", saved_model]) == 2
    assert "not found" in capsys.readouterr().err


def test_layers(saved_model, capsys):
    assert main(["cnn", "layers", "--model", saved_model]) == 0
    out = capsys.readouterr().out
    assert "conv1" in out and "spatial_batchnorm" in out and "4x8x8" in out
    assert main(["cnn", "layers", "--model", saved_model, "--input-size", "16", "--json"]) == 0
    rows = check_output(capsys.readouterr().out, "cnn layers")["results"]
    assert rows[0]["output_shape"] == [4, 16, 16] and rows[-1]["output_shape"] == [3] and rows[0]["layer"] == "conv1"


def test_evaluate(tmp_path, saved_model, capsys):
    data = make_tiny_tinyimagenet(tmp_path / "tin")
    assert main(["cnn", "evaluate", "--data", str(data), "--model", saved_model, "--json"]) == 0
    out = check_output(capsys.readouterr().out, "cnn evaluate")["results"][0]
    assert out["images"] == 4 and 0 <= out["top1"] <= out["top5"] == 1.0  # 3 classes: top-5 is everything
    assert set(out["per_class"]) == set(WNIDS)
    assert main(["cnn", "evaluate", "--data", str(data), "--model", saved_model]) == 0
    assert "top-1" in capsys.readouterr().out


@pytest.mark.parametrize("engine,extra", [("numpy", ["--epochs", "1", "--widths", "4,6"]),
                                          ("torch", ["--epochs-schedule", "8:2", "--widths", "4,6",
                                                     "--batch-size", "2", "--threads", "1"])])
def test_train_engines_write_a_loadable_model(tmp_path, capsys, engine, extra):
    data = make_tiny_tinyimagenet(tmp_path / "tin", n_classes=5)  # the torch trainer reports top-5
    out = tmp_path / "run"
    assert main(["cnn", "train", "--data", str(data), "--out", str(out), "--engine", engine, *extra]) == 0
    assert "val top-1" in capsys.readouterr().out
    model = CNN.load(out / "model.json")
    assert model.wnids == WNIDS + ["n04", "n05"] and model.class_names[1] == "tabby, tabby cat"
    assert model.scores(np.zeros((1, 3, 8, 8), np.float32)).shape == (1, 5)
