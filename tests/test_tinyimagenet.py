"""The TinyImageNet loader on a tiny generated directory in the standard layout."""
import numpy as np
import pytest

from gradscope.data.tinyimagenet import TinyImageNet, load_rgb
from gradscope.errors import DataError

from tiny_tinyimagenet import WNIDS, make_tiny_tinyimagenet


@pytest.fixture
def root(tmp_path):
    return make_tiny_tinyimagenet(tmp_path)


def test_classes_and_names(root):
    ds = TinyImageNet(root)
    assert ds.wnids == WNIDS and ds.num_classes == 3
    assert ds.names == ["goldfish, Carassius auratus", "tabby, tabby cat", "n03"]  # no words.txt entry -> wnid


def test_train_split_labels_boxes_and_grayscale(root):
    calls = []
    split = TinyImageNet(root).load("train", progress=lambda done, total: calls.append((done, total)))
    assert split.X.shape == (9, 8, 8, 3) and split.X.dtype == np.uint8
    assert split.y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert split.boxes[4].tolist() == [1, 2, 6, 7]
    gray = split.X[3]
    assert np.all(gray[..., 0] == gray[..., 1]) and np.all(gray[..., 1] == gray[..., 2])
    assert abs(int(gray[0, 0, 0]) - 200) <= 2  # JPEG round trip
    assert calls[-1] == (9, 9) and len(split.files) == 9


def test_val_split(root):
    val = TinyImageNet(root).load("val")
    assert val.y.tolist() == [2, 0, 1, 2]
    assert val.boxes[0].tolist() == [1, 2, 3, 4]


def test_class_subset_reindexes(root):
    ds = TinyImageNet(root, classes=["n03", 0])
    assert ds.wnids == ["n03", "n01"] and ds.names[1].startswith("goldfish")
    val = ds.load("val")
    assert val.y.tolist() == [0, 1, 0]  # the n02 image is dropped
    train = ds.load("train")
    assert sorted(set(train.y.tolist())) == [0, 1] and len(train.y) == 6


def test_per_class_limit_and_size(root):
    ds = TinyImageNet(root)
    assert ds.load("train", per_class=1).y.tolist() == [0, 1, 2]
    assert len(ds.load("train", limit=4).y) == 4
    assert ds.load("val", size=5).X.shape == (4, 5, 5, 3)


def test_errors(root, tmp_path):
    with pytest.raises(DataError, match="wnids.txt"):
        TinyImageNet(tmp_path / "train")
    with pytest.raises(DataError, match="unknown class"):
        TinyImageNet(root, classes=["n42"])
    with pytest.raises(DataError, match="out of range"):
        TinyImageNet(root, classes=[7])
    with pytest.raises(DataError, match="split"):
        TinyImageNet(root).load("test")
    with pytest.raises(DataError, match="not found"):
        load_rgb(str(root / "nope.JPEG"))
    (root / "bad.JPEG").write_bytes(b"garbage")
    with pytest.raises(DataError, match="cannot read"):
        load_rgb(str(root / "bad.JPEG"))
