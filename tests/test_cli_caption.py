"""`gradscope caption ...` end to end on the synthetic set, and the CNN feature function."""
import json

from json_schema import check_output

import numpy as np
import pytest

from gradscope.captioning import load_captioner
from gradscope.captioning.features import CNNFeatures, feature_fn_for
from gradscope.cli import main
from gradscope.cnn import CNN, tiny_vgg
from gradscope.errors import DataError
from gradscope.data.synthetic import synthetic_captions
from gradscope.imageio import save_image

SMALL = ["--data", "synthetic:40", "--hidden", "16", "--wordvec", "8", "--batch-size", "50", "--lr", "1e-2",
         "--val-images", "20", "--no-progress"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("caption_run")
    assert main(["caption", "train", *SMALL, "--epochs", "1", "--out", str(out)]) == 0
    return out


def test_train_writes_model_checkpoint_and_plot(trained, capsys):
    assert {p.name for p in trained.iterdir()} == {"model.npz", "checkpoint.npz", "best.npz", "loss.png",
                                                 "train_result.json"}
    model = load_captioner(trained / "model.npz")
    assert model.info["features"] == "synthetic" and model.info["data"] == "synthetic:40"
    result = json.loads((trained / "train_result.json").read_text())
    assert len(result["epochs"]) == 1 and "Bleu_4" in result["epochs"][0]["val"]


def test_train_resume_continues(trained, capsys):
    assert main(["caption", "train", *SMALL, "--epochs", "2", "--out", str(trained), "--resume"]) == 0
    out = capsys.readouterr().out
    assert "epoch 2:" in out and "epoch 1:" not in out
    assert len(json.loads((trained / "train_result.json").read_text())["epochs"]) == 2


def test_train_init_from_starts_at_the_given_parameters(trained, tmp_path, capsys):
    """--init-from copies a captioner's parameters before the first step (fine-tuning): at a
    learning rate of 1e-12 the run ends where the file started (a run from scratch does not);
    another size is one clear error."""
    start = load_captioner(trained / "model.npz")
    tiny_lr = [x if x != "1e-2" else "1e-12" for x in SMALL]
    for name, extra in (("ft", ["--init-from", str(trained / "model.npz")]), ("scratch", ["--seed", "7"])):
        assert main(["caption", "train", *tiny_lr, "--epochs", "1", "--out", str(tmp_path / name), *extra]) == 0
    tuned, scratch = (load_captioner(tmp_path / name / "model.npz") for name in ("ft", "scratch"))
    assert tuned.info["training"]["init_from"] == "model.npz"
    for k, v in start.params.items():
        np.testing.assert_allclose(tuned.params[k], v, atol=1e-9)
    assert not np.allclose(scratch.params["W_embed"], start.params["W_embed"])
    capsys.readouterr()
    argv = [x if x != "16" else "12" for x in SMALL]   # --hidden 12: not the file's size
    assert main(["caption", "train", *argv, "--epochs", "1", "--out", str(tmp_path / "bad"),
                 "--init-from", str(trained / "model.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "init_from" in err[0] and "differ" in err[0], err


def report_vocabulary(path) -> int:
    from gradscope.captioning import load_captioner

    return load_captioner(path).vocab_size


@pytest.mark.parametrize("flag, value, name", [("--lr", "0.5", "learning_rate"), ("--lr-decay", "0.5", "lr_decay"),
                                               ("--clip", "3", "clip_norm"), ("--optimizer", "sgd", "update_rule"),
                                               ("--hidden", "12", "params")])
def test_resume_refuses_changed_hyperparameters(trained, capsys, flag, value, name):
    argv = [*SMALL, "--epochs", "3", "--out", str(trained), "--resume"]
    if flag in argv:
        argv[argv.index(flag) + 1] = value
    else:
        argv += [flag, value]
    before = (trained / "checkpoint.npz").read_bytes()
    assert main(["caption", "train", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"it was written with {name}=" in err[0], err
    assert (trained / "checkpoint.npz").read_bytes() == before


def test_evaluate_json_names_the_decoding(trained, capsys):
    model = str(trained / "model.npz")
    assert main(["caption", "evaluate", "--data", "synthetic:40", "--split", "dev", "--model", model,
                 "--beam", "2", "--max-images", "10", "--json"]) == 0
    d = check_output(capsys.readouterr().out, "caption evaluate")
    report = d["results"][0]
    assert d["model"]["vocabulary"] == report_vocabulary(model) and report["decoding"].startswith("beam 2") and report["images"] == 10 and report["split"] == "dev"
    assert set(report["scores"]) == {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "CIDEr", "ROUGE_L"}
    assert main(["caption", "evaluate", "--data", "synthetic:40", "--split", "test", "--model", model,
                 "--max-images", "5"]) == 0
    assert "beam 5 (length norm 0.5) decoding" in capsys.readouterr().out  # the default, as `caption IMAGE`
    assert main(["caption", "evaluate", "--data", "synthetic:40", "--split", "test", "--model", model,
                 "--max-images", "5", "--beam", "1"]) == 0
    assert "greedy decoding" in capsys.readouterr().out


def test_sample_and_image_files(trained, tmp_path, capsys):
    model = str(trained / "model.npz")
    assert main(["caption", "sample", "--data", "synthetic:40", "--n", "3", "--model", model]) == 0
    out = capsys.readouterr().out
    assert out.count("reference:") == 3 and out.count("(log p -") == 3 and out.startswith("model: LSTM captioner")
    assert main(["caption", "sample", "--data", "synthetic:40", "--n", "2", "--model", model, "--json"]) == 0
    d = check_output(capsys.readouterr().out, "caption sample")
    assert len(d["results"]) == 2 and all(r["log_prob"] < 0 for r in d["results"])
    images = synthetic_captions(n_train=3, n_val=0, seed=7)["train"].images
    paths = [str(tmp_path / f"im{i}.png") for i in range(2)]
    for p, im in zip(paths, images):
        save_image(p, im)
    for argv in (["caption", *paths, "--model", model], ["caption", "--beam", "1", "--model", model, *paths],
                 ["caption", "image", *paths, "--model", model], ["caption", "sample", *paths, "--model", model]):
        assert main(argv) == 0
        lines = capsys.readouterr().out.strip().splitlines()
        assert lines[0].startswith("model: ") and [line.split(":")[0] for line in lines[1:]] == paths
    assert main(["caption", paths[0], "--model", model, "--json"]) == 0
    d = check_output(capsys.readouterr().out, "caption")
    assert d["results"][0]["image"] == paths[0] and d["model"]["spec"] == model


def test_clean_errors(trained, tmp_path, capsys):
    model = str(trained / "model.npz")
    assert main(["caption", str(tmp_path / "missing.png"), "--model", model]) == 2
    assert "image file not found" in capsys.readouterr().err
    assert main(["caption", "evaluate", "--data", "flickr9k:x", "--model", model]) == 2
    assert "unknown data source" in capsys.readouterr().err
    assert main(["caption", "evaluate", "--data", "synthetic:40", "--model", str(tmp_path / "none.npz")]) == 2
    assert "not found" in capsys.readouterr().err


def test_cnn_features_are_the_input_of_the_last_affine_layer():
    cnn = CNN(tiny_vgg(num_classes=5, widths=(4, 8), input_size=16, hidden=12), seed=0)
    fn = CNNFeatures(cnn, batch_size=3)
    assert (fn.layer, fn.dim) == ("relu_fc1", 12)
    images = np.random.default_rng(0).integers(0, 256, (5, 20, 20, 3), dtype=np.uint8)
    feats = fn(images)
    expected, _ = cnn.forward_to(cnn.preprocess(images), "relu_fc1")
    assert feats.shape == (5, 12) and feats.dtype == np.float32
    np.testing.assert_allclose(feats, expected, rtol=1e-6)
    assert CNNFeatures(CNN(tiny_vgg(num_classes=5, widths=(4, 8), input_size=16), seed=0)).layer == "gap"


def test_feature_fn_for_unknown_features_is_a_clear_error():
    class Stub:
        info = {"features": "coco-vgg16-fc7-pca"}

    with pytest.raises(DataError, match="cannot compute this captioner's image features"):
        feature_fn_for(Stub())


def test_an_ensemble_of_files_evaluates_and_is_not_a_starting_point(trained, tmp_path, capsys):
    """--model a.npz,b.npz decodes with both captioners (a second run of the recipe, another
    seed); an ensemble cannot seed --init-from: one clear line, exit 2."""
    second = tmp_path / "second"
    assert main(["caption", "train", *SMALL, "--epochs", "1", "--seed", "3", "--out", str(second)]) == 0
    pair = f"{trained / 'model.npz'},{second / 'model.npz'}"
    capsys.readouterr()
    assert main(["caption", "evaluate", "--data", "synthetic:40", "--split", "dev", "--model", pair,
                 "--max-images", "5", "--json"]) == 0
    d = check_output(capsys.readouterr().out, "caption evaluate")
    assert d["model"]["name"].startswith("ensemble of 2 ") and d["results"][0]["images"] == 5
    assert main(["caption", "train", *SMALL, "--epochs", "1", "--out", str(tmp_path / "ft"), "--init-from", pair]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ensemble of 2" in err[0], err
