"""CaptionDataset, and the COCO / Flickr8k loaders on tiny files in the real formats."""
import json
import os

import h5py
import numpy as np
import pytest
from PIL import Image

from gradscope.data.captions import CaptionDataset
from gradscope.data.coco import load_coco, load_coco_annotations
from gradscope.data.flickr8k import load_flickr8k
from gradscope.data.vocab import build_vocab, encode
from gradscope.errors import DataError, GradscopeError

REFS = [[["a", "dog"], ["the", "dog", "runs"]], [["a", "cat"]], [["two", "cats", "sit"], ["a", "cat", "pair"]]]


def small_dataset(features):
    word_to_idx, idx_to_word = build_vocab(t for refs in REFS for t in refs)
    return CaptionDataset.from_references(features, REFS, word_to_idx, idx_to_word, max_length=4)


def test_batch_and_references_in_memory():
    feats = np.arange(12, dtype=np.float64).reshape(3, 4)
    ds = small_dataset(feats)
    assert len(ds) == 5 and ds.n_images == 3 and ds.max_length == 4
    f, c = ds.batch(np.array([4, 0, 2]))
    np.testing.assert_array_equal(f, feats[[2, 0, 1]])
    assert f.dtype == np.float64 and c.dtype == np.int32 and c.shape == (3, 6)
    np.testing.assert_array_equal(ds.image_indices(), [0, 1, 2])
    assert ds.references() == REFS
    assert ds.references([2, 0]) == [REFS[2], REFS[0]]


def test_references_decoded_without_raw_tokens():
    ds = small_dataset(np.zeros((3, 2), np.float32))
    ds.raw_tokens = None
    assert ds.references() == REFS  # max_length 4 holds every caption


def test_h5py_and_memmap_features_read_lazily(tmp_path):
    feats = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f["features"] = feats
    mm = np.lib.format.open_memmap(tmp_path / "f.npy", mode="w+", dtype=np.float16, shape=feats.shape)
    mm[:] = feats
    with h5py.File(tmp_path / "f.h5", "r") as f:
        for store in (f["features"], np.load(tmp_path / "f.npy", mmap_mode="r")):
            ds = small_dataset(store)
            idx = np.array([4, 0, 3, 0])  # unsorted, repeated image rows 2, 0, 2, 0
            got, _ = ds.batch(idx)
            assert got.dtype == np.float32
            np.testing.assert_allclose(got, feats[[2, 0, 2, 0]], atol=1e-3)


def test_subset_keeps_whole_images():
    ds = small_dataset(np.zeros((3, 2)))
    sub = ds.subset(2)
    np.testing.assert_array_equal(sub.image_indices(), [0, 1])
    assert len(sub) == 3 and sub.references() == REFS[:2]
    rand = ds.subset(1, seed=0)
    assert len(rand.image_indices()) == 1 and rand.features is ds.features
    with pytest.raises(GradscopeError, match="n_images"):
        ds.subset(0)


@pytest.mark.parametrize("change, match", [
    (dict(features=np.zeros(3)), "2-D"),
    (dict(image_idxs=np.array([0, 1, 5])), "outside the 3 feature rows"),
    (dict(captions=np.array([[1, 99, 2]] * 3)), "outside the vocabulary"),
    (dict(captions=np.zeros((3, 4), np.float32)), "integer"),
    (dict(image_idxs=np.array([0, 1])), r"\(3,\)"),
    (dict(image_names=["a"]), "1 image_names for 3 images"),
])
def test_dataset_validation(change, match):
    word_to_idx, idx_to_word = build_vocab([["a", "b"]])
    fields = dict(features=np.zeros((3, 2)), captions=encode([["a"]] * 3, word_to_idx, 2),
                  image_idxs=np.array([0, 1, 2]), word_to_idx=word_to_idx, idx_to_word=idx_to_word)
    fields.update(change)
    with pytest.raises(DataError, match=match):
        CaptionDataset(**fields)


def test_batch_index_errors():
    ds = small_dataset(np.zeros((3, 2)))
    with pytest.raises(GradscopeError, match="out of range"):
        ds.batch([7])
    with pytest.raises(GradscopeError, match="integer"):
        ds.batch(np.array([0.5]))


# ---------------------------------------------------------------- COCO (course layout)

def make_coco(folder, n_train=4, n_val=3, d=6, pca_d=3):
    rng = np.random.default_rng(0)
    os.makedirs(folder, exist_ok=True)
    idx_to_word = ["<NULL>", "<START>", "<END>", "<UNK>", "a", "dog", "cat", "runs"]
    with open(os.path.join(folder, "coco2014_vocab.json"), "w") as f:
        json.dump({"idx_to_word": idx_to_word, "word_to_idx": {w: i for i, w in enumerate(idx_to_word)}}, f)
    with h5py.File(os.path.join(folder, "coco2014_captions.h5"), "w") as f:
        for split, n in (("train", n_train), ("val", n_val)):
            f[f"{split}_captions"] = np.array([[1, 4, 5 + i % 2, 7, 2, 0] for i in range(2 * n)], dtype=np.int32)
            f[f"{split}_image_idxs"] = np.repeat(np.arange(n), 2).astype(np.int32)
    feats = {}
    for split, n in (("train", n_train), ("val", n_val)):
        for suffix, dim in (("", d), ("_pca", pca_d)):
            feats[split + suffix] = rng.standard_normal((n, dim)).astype(np.float32)
            with h5py.File(os.path.join(folder, f"{split}2014_vgg16_fc7{suffix}.h5"), "w") as f:
                f["features"] = feats[split + suffix]
        with open(os.path.join(folder, f"{split}2014_urls.txt"), "w") as f:
            f.write("".join(f"http://images.example/{split}_{i}.jpg\n" for i in range(n)))
    return feats


def test_load_coco_lazy_features(tmp_path):
    feats = make_coco(tmp_path / "coco_captioning")
    data = load_coco(tmp_path)  # the parent folder works too
    train, val = data["train"], data["val"]
    assert isinstance(train.features, h5py.Dataset) and train.feature_dim == 3
    assert len(train) == 8 and len(val) == 6 and train.urls[1] == "http://images.example/train_1.jpg"
    assert train.image_names[0] == "train_0.jpg"
    f, c = train.batch(np.array([7, 0, 3]))
    np.testing.assert_array_equal(f, feats["train_pca"][[3, 0, 1]])
    assert c.shape == (3, 6)
    assert val.references()[0] == [["a", "dog", "runs"], ["a", "cat", "runs"]]
    full = load_coco(tmp_path / "coco_captioning", pca_features=False, splits=("val",))
    assert list(full) == ["val"] and full["val"].feature_dim == 6
    sub = load_coco(tmp_path, max_train=3, seed=1)["train"]
    assert len(sub) == 3


def test_load_coco_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_coco(tmp_path / "nowhere")
    with pytest.raises(DataError, match="no coco2014_captions.h5"):
        load_coco(tmp_path)
    folder = tmp_path / "c"
    make_coco(folder)
    os.remove(folder / "val2014_vgg16_fc7_pca.h5")
    assert list(load_coco(folder, splits=("train",))) == ["train"]
    with pytest.raises(DataError, match="missing COCO features .*val2014_vgg16_fc7_pca.h5"):
        load_coco(folder)
    with pytest.raises(DataError, match="unknown COCO split"):
        load_coco(folder, splits=("test",))
    (folder / "train2014_vgg16_fc7_pca.h5").write_bytes(b"not hdf5")
    with pytest.raises(DataError, match="cannot read COCO features"):
        load_coco(folder, splits=("train",))
    (folder / "coco2014_vocab.json").write_text("{broken")
    with pytest.raises(DataError, match="corrupt COCO vocabulary"):
        load_coco(folder)


def test_load_coco_mismatched_urls(tmp_path):
    make_coco(tmp_path)
    (tmp_path / "train2014_urls.txt").write_text("http://x/1.jpg\n")
    with pytest.raises(DataError, match="train2014_urls.txt.* 1 urls for 4 feature rows"):
        load_coco(tmp_path, splits=("train",))


def test_load_coco_annotations(tmp_path):
    path = tmp_path / "captions_val2014.json"
    path.write_text("\ufeff" + json.dumps({  # with a byte-order mark
        "images": [{"id": 42, "file_name": "COCO_val2014_000000000042.jpg"}, {"id": 7, "file_name": "b.jpg"}],
        "annotations": [{"image_id": 42, "id": 1, "caption": "A Dog runs."},
                        {"image_id": 7, "id": 2, "caption": "Two cats"},
                        {"image_id": 42, "id": 3, "caption": "the dog's ball"}]}))
    ann = load_coco_annotations(path)
    assert ann.image_ids == [7, 42] and ann.file_names == ["b.jpg", "COCO_val2014_000000000042.jpg"]
    assert ann.references == [[["two", "cats"]], [["a", "dog", "runs"], ["the", "dog's", "ball"]]]
    path.write_text(json.dumps({"annotations": [{"caption": "x"}]}))
    with pytest.raises(DataError, match="malformed COCO annotation"):
        load_coco_annotations(path)
    with pytest.raises(DataError, match="not found"):
        load_coco_annotations(tmp_path / "missing.json")


# ---------------------------------------------------------------- Flickr8k

def make_flickr(root, image_dir="images", splits=("train", "dev")):
    rng = np.random.default_rng(0)
    os.makedirs(root / image_dir)
    names = [f"{1000 + i}_abc.jpg" for i in range(6)]
    for i, n in enumerate(names):
        if i == 5:  # one grayscale image
            Image.fromarray(rng.integers(0, 255, (20, 30), dtype=np.uint8)).save(root / image_dir / n)
        else:
            Image.fromarray(rng.integers(0, 255, (24, 16 + i, 3), dtype=np.uint8)).save(root / image_dir / n)
    lines = []
    for i, n in enumerate(names):
        for k in range(5):
            word = "zebra" if i >= 4 else "dog"  # 'zebra' only in the dev images
            lines.append(f"{n}#{k}\tA {word} runs{' fast' * k} .")
    (root / "Flickr8k.token.txt").write_text("\n".join(lines) + "\n")
    files = {"train": ("Flickr_8k.trainImages.txt", names[:4]), "dev": ("Flickr_8k.devImages.txt", names[4:]),
             "test": ("Flickr_8k.testImages.txt", names[4:])}
    for s in splits:
        (root / files[s][0]).write_text("\n".join(files[s][1]) + "\n")
    return names


def mean_colour(images):
    return images.reshape(len(images), -1, 3).mean(axis=1)


def test_load_flickr8k(tmp_path):
    names = make_flickr(tmp_path / "f8k")
    calls = []
    data = load_flickr8k(tmp_path / "f8k", feature_fn=mean_colour, feature_cache=tmp_path / "cache.h5",
                         min_count=2, max_length=5, image_size=8, batch_size=4,
                         progress=lambda s, d, t: calls.append((s, d, t)))
    assert sorted(data) == ["train", "val"]  # no test file: that split is simply absent
    train, val = data["train"], data["val"]
    assert len(train) == 20 and train.image_names == names[:4] and train.feature_dim == 3
    assert "zebra" not in train.word_to_idx and "fast" in train.word_to_idx  # vocab from train only
    assert val.references()[0][0] == ["a", "zebra", "runs"]  # raw references keep the word
    np.testing.assert_array_equal(val.captions[0], [1, train.word_to_idx["a"], 3, train.word_to_idx["runs"], 2, 0, 0])
    assert train.captions.shape[1] == 7  # max_length + 2, long captions truncated
    assert ("train", 4, 4) in calls and ("val", 2, 2) in calls
    # second load: everything comes from the cache, feature_fn is not called
    calls.clear()
    again = load_flickr8k(tmp_path / "f8k", feature_fn=mean_colour, feature_cache=tmp_path / "cache.h5",
                          min_count=2, max_length=5, image_size=8, splits=["val"],
                          progress=lambda s, d, t: calls.append((s, d, t)))
    np.testing.assert_array_equal(again["val"].features, val.features)
    assert calls == []
    # another extractor never gets these rows (the cache is keyed by extractor and image bytes)
    other = load_flickr8k(tmp_path / "f8k", feature_fn=None, feature_cache=tmp_path / "cache.h5",
                          min_count=2, max_length=5, image_size=8, splits=["val"])
    assert other["val"].feature_dim == 192


def test_flickr8k_missing_split_and_files(tmp_path):
    make_flickr(tmp_path / "a", image_dir="Flicker8k_Dataset", splits=("dev",))
    with pytest.raises(DataError, match="Flickr_8k.testImages.txt"):
        load_flickr8k(tmp_path / "a", feature_fn=mean_colour, image_size=8, splits=["test"])
    # the vocabulary needs the train split unless one is given
    with pytest.raises(DataError, match="Flickr_8k.trainImages.txt"):
        load_flickr8k(tmp_path / "a", feature_fn=mean_colour, image_size=8)
    vocab = build_vocab([["a", "zebra", "runs"]])
    data = load_flickr8k(tmp_path / "a", feature_fn=mean_colour, image_size=8, vocab=vocab)
    assert list(data) == ["val"] and "zebra" in data["val"].word_to_idx
    with pytest.raises(DataError, match="not found"):
        load_flickr8k(tmp_path / "nothing")
    os.remove(tmp_path / "a" / "Flickr8k.token.txt")
    with pytest.raises(DataError, match="Flickr8k.token.txt"):
        load_flickr8k(tmp_path / "a", vocab=vocab)


def test_flickr8k_bad_token_line(tmp_path):
    make_flickr(tmp_path / "b")
    (tmp_path / "b" / "Flickr8k.token.txt").write_text("no tab here\n")
    with pytest.raises(DataError, match="Flickr8k.token.txt:1"):
        load_flickr8k(tmp_path / "b")


def test_flickr8k_text_files_with_a_bom_hash_names_and_empty_captions(tmp_path):
    root = tmp_path / "f8k"
    names = make_flickr(root)
    os.rename(root / "images" / names[4], root / "images" / "photo#4.jpg")  # a '#' in a file name
    token = root / "Flickr8k.token.txt"
    lines = token.read_text().replace(names[4], "photo#4.jpg").splitlines()
    lines = [f"{n}#{k}\t" if n == names[5] else line for line, (n, k) in
             zip(lines, [(n, k) for n in names for k in range(5)])]  # the last image: five empty captions
    token.write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")  # a byte-order mark, as Notepad writes
    dev = root / "Flickr_8k.devImages.txt"
    dev.write_text("\ufeff" + f"photo#4.jpg\n{names[5]}\n", encoding="utf-8")
    data = load_flickr8k(root, feature_fn=mean_colour, min_count=1, image_size=8)
    train, val = data["train"], data["val"]
    assert train.references()[0][0] == ["a", "dog", "runs"]  # the first caption survives the BOM
    assert len(train) == 20
    assert val.image_names == ["photo#4.jpg", names[5]]
    assert val.references()[0][0] == ["a", "zebra", "runs"]
    assert list(val.image_indices()) == [0] and val.no_references == 1  # not scored against empty references
