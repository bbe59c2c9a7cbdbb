"""Partial data folders the commands accept: a Flickr8k folder holding only the split being
evaluated (the captioner carries its vocabulary), training without a dev list when
--val-images is 0; and progress lines when stderr is not a terminal."""
import io
import json

import numpy as np
import pytest

from gradscope.captioning import CaptioningRNN, save_captioner
from gradscope.captioning.features import default_feature_fn
from gradscope.cli import main
from gradscope.cli.progress import Progress
from gradscope.data.vocab import build_vocab
from gradscope.imageio import save_image

WORDS = ["a dog runs on grass", "a cat sits on a mat", "a red ball on grass"]


def flickr_folder(root, splits):
    """A Flickr8k-layout folder with 3 images per listed split and 5 captions per image."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    tokens = []
    for split in splits:
        names = [f"{split}{i}.jpg" for i in range(3)]
        (root / f"Flickr_8k.{split}Images.txt").write_text("\n".join(names) + "\n")
        for i, name in enumerate(names):
            save_image(root / "images" / name, rng.integers(0, 256, (24, 24, 3), dtype=np.uint8))
            tokens += [f"{name}#{k}\t{WORDS[(i + k) % 3]}\n" for k in range(5)]
    (root / "Flickr8k.token.txt").write_text("".join(tokens))
    return root


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADSCOPE_CACHE", str(tmp_path / "cache"))


def test_evaluate_with_only_the_dev_split(tmp_path, cache, capsys):
    data = flickr_folder(tmp_path / "f8k", ["dev"])
    fn = default_feature_fn()  # what flickr8k:DIR photos go through
    word_to_idx, _ = build_vocab((w.split() for w in WORDS), 1)
    model = CaptioningRNN(word_to_idx, input_dim=fn.dim, wordvec_dim=4, hidden_dim=6, cell_type="lstm")
    model.info = {"features": fn.name, "features_fingerprint": fn.fingerprint()}
    save_captioner(tmp_path / "cap.npz", model)
    argv = ["caption", "evaluate", "--data", f"flickr8k:{data}", "--split", "dev", "--model",
            str(tmp_path / "cap.npz"), "--json", "--no-progress"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 3 and set(report["scores"]) >= {"Bleu_4", "CIDEr"}


def test_train_with_val_images_0_needs_no_dev_list(tmp_path, cache, capsys):
    data = flickr_folder(tmp_path / "f8k", ["train"])
    argv = ["caption", "train", "--data", f"flickr8k:{data}", "--hidden", "6", "--wordvec", "4", "--epochs", "1",
            "--val-images", "0", "--no-progress", "--out", str(tmp_path / "run")]
    assert main(argv) == 0, capsys.readouterr().err
    assert (tmp_path / "run" / "model.npz").is_file()
    argv[argv.index("0")] = "2"
    assert main(argv) == 2 and "Flickr_8k.devImages.txt" in capsys.readouterr().err


def test_progress_lines_when_not_a_terminal(monkeypatch):
    monkeypatch.setenv("GRADSCOPE_PROGRESS_INTERVAL", "0")
    stream = io.StringIO()
    with Progress("saliency evaluate", total=4, unit="images", stream=stream) as bar:
        for i in range(1, 5):
            bar.update(i, loss=0.5)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("gradscope: saliency evaluate: 1/4 images (25%)") and "loss 0.5" in lines[0]
    assert lines[-1].startswith("gradscope: saliency evaluate: 4/4 images (100%)") and "done in" in lines[-1]
    assert "\r" not in stream.getvalue()
    quiet = io.StringIO()
    with Progress("x", total=2, stream=quiet, enabled=False) as bar:
        bar.update(2)
    assert quiet.getvalue() == ""
