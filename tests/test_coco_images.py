"""COCO in the official 2014 layout (json + photos, partial downloads, Karpathy splits), on small
files the tests write, and `coco:DIR` telling it apart from the course's h5 layout."""
import json

import numpy as np
import pytest

import gradscope.captioning.features as features_module
from gradscope.captioning import CaptioningRNN, save_captioner
from gradscope.captioning.features import CNNFeatures
from gradscope.captioning.sources import load_caption_source
from gradscope.cli import main
from gradscope.cnn import CNN, tiny_vgg
from gradscope.data.coco import coco_layout, load_coco_images
from gradscope.data.features import pixel_features
from gradscope.errors import DataError
from gradscope.imageio import save_image

CAPTIONS = ["A dog runs on the grass.", "a brown dog running", "Two cats sit on a sofa.", "a cat on a couch",
            "A man rides a bike.", "a person on a bicycle"]


def _write_split(root, split, ids, on_disk, size=(20, 24)):
    images = [{"id": i, "file_name": f"COCO_{split}2014_{i:012d}.jpg"} for i in ids]
    anns = [{"id": 10 * i + j, "image_id": i, "caption": CAPTIONS[(2 * k + j) % len(CAPTIONS)]}
            for k, i in enumerate(ids) for j in range(2)]
    (root / "annotations").mkdir(exist_ok=True)
    (root / "annotations" / f"captions_{split}2014.json").write_text(json.dumps({"images": images,
                                                                                  "annotations": anns}))
    (root / f"{split}2014").mkdir(exist_ok=True)
    rng = np.random.default_rng(len(ids))
    for i in on_disk:
        save_image(root / f"{split}2014" / f"COCO_{split}2014_{i:012d}.jpg",
                   rng.integers(0, 256, size + (3,), dtype=np.uint8))


@pytest.fixture
def coco_dir(tmp_path):
    root = tmp_path / "coco"
    root.mkdir()
    _write_split(root, "train", [1, 2, 3, 4], on_disk=[1, 2, 4])
    _write_split(root, "val", [7, 8, 9, 10, 11], on_disk=[8, 11], size=(30, 20))
    return root


def _prepare(image):
    return np.asarray(image[:16, :16])  # photos of different sizes -> one batchable size


class PixelFeatures:
    """pixel_features under a fingerprint (how a cache knows the extractor); fail: must not be called."""

    def __init__(self, fail=False):
        self.fail = fail

    def fingerprint(self):
        return "pixel-8x8"

    def __call__(self, images):
        assert not self.fail, "recomputed features the cache holds"
        return pixel_features(images)


def test_official_layout_skips_and_counts_missing_photos(coco_dir, tmp_path):
    assert coco_layout(coco_dir) == "images"
    data = load_coco_images(coco_dir, PixelFeatures(), tmp_path / "cache.h5", image_size=_prepare, min_count=1)
    assert data.missing == {"train": 1, "val": 3}
    train, val = data.splits["train"], data.splits["val"]
    assert train.n_images == 3 and val.n_images == 2 and len(train) == 6
    assert val.image_names == ["COCO_val2014_000000000008.jpg", "COCO_val2014_000000000011.jpg"]
    assert val.references()[0] == [["two", "cats", "sit", "on", "a", "sofa"], ["a", "cat", "on", "a", "couch"]]
    assert "dog" in train.word_to_idx and train.word_to_idx is val.word_to_idx  # vocabulary from train
    again = load_coco_images(coco_dir, PixelFeatures(fail=True), tmp_path / "cache.h5", image_size=_prepare, min_count=1)
    np.testing.assert_array_equal(again.splits["val"].features, val.features)  # cached: not recomputed


def test_karpathy_file_selects_the_splits(coco_dir, tmp_path):
    entry = lambda folder, i, split: {"filepath": folder, "filename": f"COCO_{folder}_{i:012d}.jpg",
                                      "split": split, "sentences": [{"raw": "A red bus.", "tokens": ["a"]}]}
    images = [entry("train2014", 1, "train"), entry("val2014", 8, "restval"), entry("train2014", 2, "val"),
              entry("val2014", 11, "test"), entry("val2014", 9, "test")]
    (coco_dir / "dataset_coco.json").write_text(json.dumps({"images": images}))
    data = load_coco_images(coco_dir, pixel_features, splits=("train", "val", "test"), image_size=_prepare,
                            min_count=1)
    assert [d.n_images for d in data.splits.values()] == [2, 1, 1]
    assert data.missing == {"train": 0, "val": 0, "test": 1}
    assert data.splits["test"].references() == [[["a", "red", "bus"]]]


def test_layouts_are_told_apart_and_bad_folders_named(tmp_path):
    course = tmp_path / "course" / "coco_captioning"
    course.mkdir(parents=True)
    (course / "coco2014_captions.h5").write_bytes(b"")
    assert coco_layout(tmp_path / "course") == "course"
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="neither"):
        coco_layout(tmp_path / "empty")
    with pytest.raises(DataError, match="not found"):
        coco_layout(tmp_path / "nope")


def test_no_photo_on_disk_is_a_clear_error(tmp_path):
    root = tmp_path / "c"
    root.mkdir()
    _write_split(root, "val", [1, 2], on_disk=[])
    with pytest.raises(DataError, match="none of the 2 val images"):
        load_coco_images(root, pixel_features, splits=["val"])


@pytest.fixture
def tiny_extractor(monkeypatch, tmp_path):
    monkeypatch.setenv("GRADSCOPE_CACHE", str(tmp_path / "cache"))
    cnn = CNN(tiny_vgg(num_classes=5, widths=(4, 8), input_size=16, hidden=12), seed=0)
    fn = CNNFeatures(cnn, layer="relu_fc1", dim=12, name="tiny:relu_fc1", prepare=_prepare)
    monkeypatch.setattr(features_module, "default_feature_fn", lambda: fn)
    return fn


def test_source_evaluate_and_train_on_official_files(coco_dir, tiny_extractor, tmp_path, capsys):
    source = load_caption_source(f"coco:{coco_dir}", splits=["val"])
    assert source.features == "tiny:relu_fc1" and source.skipped == {"val": 3}
    assert source.fingerprint == tiny_extractor.fingerprint()
    out = tmp_path / "run"
    assert main(["caption", "train", "--data", f"coco:{coco_dir}", "--hidden", "8", "--wordvec", "4",
                 "--epochs", "1", "--batch-size", "4", "--val-images", "2", "--no-progress", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["caption", "evaluate", "--data", f"coco:{coco_dir}", "--split", "val", "--json",
                 "--model", str(out / "model.npz")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 2 and report["images_missing"] == 3
    assert main(["caption", "evaluate", "--data", f"coco:{coco_dir}", "--split", "test",
                 "--model", str(out / "model.npz")]) == 2
    assert "Karpathy" in capsys.readouterr().err


def test_evaluate_refuses_a_captioner_of_other_features(coco_dir, tiny_extractor, tmp_path, capsys):
    model = CaptioningRNN({"<NULL>": 0, "<START>": 1, "<END>": 2, "<UNK>": 3}, input_dim=7, wordvec_dim=3,
                          hidden_dim=3, cell_type="lstm")
    save_captioner(tmp_path / "m.npz", model)
    assert main(["caption", "evaluate", "--data", f"coco:{coco_dir}", "--model", str(tmp_path / "m.npz")]) == 2
    assert "7-dimensional" in capsys.readouterr().err
