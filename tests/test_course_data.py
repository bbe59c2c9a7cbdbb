"""gradscope.course's data side: load_coco_data on a small course-layout directory made
here, decode_captions, sample_coco_minibatch, CaptioningSolver overfitting it, and
load_tiny_imagenet on a tiny TinyImageNet directory."""
import json

import h5py
import numpy as np
import pytest

from gradscope.course.captioning_solver import CaptioningSolver
from gradscope.course.classifiers.rnn import CaptioningRNN
from gradscope.course.coco_utils import decode_captions, load_coco_data, sample_coco_minibatch
from gradscope.course.data_utils import load_tiny_imagenet
from gradscope.errors import GradscopeError
from tiny_tinyimagenet import make_tiny_tinyimagenet

WORDS = ["<NULL>", "<START>", "<END>", "<UNK>", "a", "cat", "dog", "sits", "runs", "on", "mat", "grass"]
W2I = {w: i for i, w in enumerate(WORDS)}


def make_course_coco(root, n_train=20, n_val=4, D=8, T=17, seed=0):
    """The course's coco_captioning files, small: one caption per training image."""
    rng = np.random.default_rng(seed)
    root.mkdir()
    with open(root / "coco2014_vocab.json", "w") as f:
        json.dump({"idx_to_word": WORDS, "word_to_idx": W2I}, f)
    with h5py.File(root / "coco2014_captions.h5", "w") as f:
        for split, n, per in (("train", n_train, 1), ("val", n_val, 2)):
            caps = np.zeros((n * per, T), dtype=np.int32)
            for i in range(n * per):
                body = rng.integers(4, len(WORDS), rng.integers(3, 8))
                caps[i, :len(body) + 2] = [1, *body, 2]
            f[f"{split}_captions"] = caps
            f[f"{split}_image_idxs"] = np.repeat(np.arange(n), per).astype(np.int32)
    for split, n in (("train", n_train), ("val", n_val)):
        for suffix, dim in (("_pca", D), ("", 2 * D)):
            with h5py.File(root / f"{split}2014_vgg16_fc7{suffix}.h5", "w") as f:
                f["features"] = rng.standard_normal((n, dim)).astype(np.float32)
        (root / f"{split}2014_urls.txt").write_text("".join(f"http://example.org/{split}{i}.jpg\n" for i in range(n)))
    return root


@pytest.fixture()
def coco(tmp_path):
    return make_course_coco(tmp_path / "coco_captioning")


def test_load_coco_data_has_the_course_layout(coco):
    data = load_coco_data(base_dir=str(coco))
    assert set(data) == {"train_captions", "train_image_idxs", "train_features", "train_urls", "val_captions",
                         "val_image_idxs", "val_features", "val_urls", "idx_to_word", "word_to_idx"}
    assert data["train_captions"].shape == (20, 17) and data["train_captions"].dtype == np.int32
    assert data["train_image_idxs"].dtype == np.int32 and data["val_captions"].shape == (8, 17)
    assert isinstance(data["train_features"], np.ndarray) and data["train_features"].shape == (20, 8)
    assert data["val_urls"].shape == (4,) and data["val_urls"][1] == "http://example.org/val1.jpg"
    assert data["idx_to_word"] == WORDS and data["word_to_idx"] == W2I
    assert load_coco_data(base_dir=str(coco), pca_features=False)["val_features"].shape == (4, 16)
    small = load_coco_data(base_dir=str(coco), max_train=5)
    assert small["train_captions"].shape == (5, 17) and small["train_features"].shape == (20, 8)


def test_decode_and_sample_follow_the_course(coco):
    data = load_coco_data(base_dir=str(coco))
    assert decode_captions(np.array([1, 5, 7, 2, 0, 4]), WORDS) == "<START> cat sits <END>"
    assert decode_captions(np.array([[0, 4, 6], [4, 2, 5]]), WORDS) == ["a dog", "a <END>"]
    captions, features, urls = sample_coco_minibatch(data, batch_size=6, split="val",
                                                     rng=np.random.default_rng(0))
    assert captions.shape == (6, 17) and features.shape == (6, 8) and urls.shape == (6,)
    for cap, feat, url in zip(captions, features, urls):
        row = int(url.rsplit("val", 1)[1].split(".")[0])
        np.testing.assert_array_equal(feat, data["val_features"][row])
        assert any((cap == c).all() for c in data["val_captions"][data["val_image_idxs"] == row])
    with pytest.raises(GradscopeError, match="no 'test_captions'"):
        sample_coco_minibatch(data, split="test")


def test_captioning_solver_overfits_and_prints_like_the_course(coco, capsys):
    data = load_coco_data(base_dir=str(coco))
    np.random.seed(231)  # the course's model draws its initial parameters from NumPy's global state
    model = CaptioningRNN(data["word_to_idx"], input_dim=8, wordvec_dim=16, hidden_dim=32, cell_type="lstm")
    solver = CaptioningSolver(model, data, update_rule="adam", num_epochs=60, batch_size=10,
                              optim_config={"learning_rate": 1e-2}, lr_decay=0.99, verbose=True, print_every=10)
    solver.train()
    lines = capsys.readouterr().out.splitlines()
    total = 60 * (20 // 10)  # the course's count: full minibatches per epoch
    assert len(solver.loss_history) == total and solver.epoch == 60
    assert lines[0].startswith(f"(Iteration 1 / {total}) loss: ") and len(lines) == total // 10
    assert solver.loss_history[-1] < 0.1 * solver.loss_history[0]
    captions = model.sample(data["train_features"][:3])
    assert len(decode_captions(captions, data["idx_to_word"])) == 3
    quiet = CaptioningSolver(model, data, num_epochs=1, batch_size=50, verbose=False)
    quiet.train()
    assert capsys.readouterr().out == "" and len(quiet.loss_history) == 1  # fewer than a batch: one
    with pytest.raises(ValueError, match="Unrecognized arguments 'lr'"):
        CaptioningSolver(model, data, lr=1)
    with pytest.raises(ValueError, match="Invalid update_rule"):
        CaptioningSolver(model, data, update_rule="newton")


def test_load_tiny_imagenet_returns_the_course_dict(tmp_path):
    root = make_tiny_tinyimagenet(tmp_path / "tin", per_class=3, size=64)
    data = load_tiny_imagenet(str(root), subtract_mean=True)
    assert data["class_names"] == [["goldfish", "Carassius auratus"], ["tabby", "tabby cat"], ["n03"]]
    assert data["X_train"].shape == (9, 3, 64, 64) and data["X_train"].dtype == np.float32
    assert data["y_train"].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2] and data["y_train"].dtype == np.int64
    assert data["X_val"].shape == (4, 3, 64, 64) and data["y_val"].tolist() == [2, 0, 1, 2]
    assert data["mean_image"].shape == (3, 64, 64) and data["X_test"] is None and data["y_test"] is None
    raw = load_tiny_imagenet(str(root), subtract_mean=False)
    np.testing.assert_allclose(raw["mean_image"], raw["X_train"].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(data["X_val"] + data["mean_image"], raw["X_val"], atol=1e-4)
    assert (raw["X_train"][3] == 200).all()  # the grayscale image, on all three channels
    assert data["class_names"][data["y_val"][1:2]] == ["goldfish", "Carassius auratus"]  # as under 2016 NumPy
