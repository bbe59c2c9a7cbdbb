"""The built-in synthetic captioning set: determinism, format, and features that determine the captions."""
import numpy as np
import pytest

from gradscope.data.synthetic import (COLORS, FEATURE_DIM, SHAPES, SLOTS, TEMPLATES, features_fn,
                                      random_scenes, render_scene, scene_captions, synthetic_captions)
from gradscope.errors import GradscopeError


def test_splits_format_and_determinism():
    data = synthetic_captions(n_train=40, n_val=10, n_test=5, seed=3)
    assert sorted(data) == ["test", "train", "val"]
    train, val = data["train"], data["val"]
    assert train.features.shape == (40, FEATURE_DIM) and train.features.dtype == np.float32
    assert train.images.shape == (40, 32, 32, 3) and train.images.dtype == np.uint8
    assert len(train) == 40 * len(TEMPLATES)
    np.testing.assert_array_equal(features_fn(val.images), val.features)
    refs = val.references()
    assert len(refs) == 10 and all(len(r) == len(TEMPLATES) for r in refs)
    assert val.word_to_idx is train.word_to_idx
    again = synthetic_captions(n_train=40, n_val=10, n_test=5, seed=3)
    np.testing.assert_array_equal(again["val"].images, val.images)
    np.testing.assert_array_equal(again["train"].captions, train.captions)
    other = synthetic_captions(n_train=40, n_val=10, seed=4)
    assert "test" not in other and not np.array_equal(other["val"].images, val.images)
    big = synthetic_captions(n_train=5, n_val=0, size=64)
    assert list(big) == ["train"] and big["train"].images.shape[1:] == (64, 64, 3)


def test_captions_name_objects_in_slot_order():
    scene = [("blue", "square", "top", 0.13, (0.0, 0.0)), ("red", "circle", "left", 0.13, (0.0, 0.0))]
    scene.sort(key=lambda o: list(SLOTS).index(o[2]))
    caps = scene_captions(scene)
    assert caps[0] == "a red circle on the left and a blue square at the top"
    assert caps[3] == "the circle on the left is red and the square at the top is blue"
    # each template starts with its own word, so a greedy decoder commits to one phrasing
    firsts = [c.split()[0] for c in caps]
    assert len(set(firsts)) == len(firsts)


def test_rendered_shapes_fill_their_boxes_differently():
    fills = {}
    for shape in SHAPES:
        img = render_scene([("white", shape, "left", 0.14, (0.0, 0.0))], size=64)
        mask = img.max(axis=-1) >= 110
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        fills[shape] = mask.sum() / ((rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1))
        assert cols.mean() < 32  # drawn on the left half
    assert fills["triangle"] < fills["circle"] < fills["square"]


def test_features_determine_each_slots_colour_and_shape():
    rng = np.random.default_rng(0)

    def slot_data(n):
        scenes = random_scenes(n, rng)
        feats = features_fn(np.stack([render_scene(s, 32, rng) for s in scenes])).reshape(n, len(SLOTS), -1)
        labels = np.full((n, len(SLOTS)), -1)
        for i, scene in enumerate(scenes):
            for colour, shape, slot, *_ in scene:
                labels[i, list(SLOTS).index(slot)] = list(COLORS).index(colour) * 3 + SHAPES.index(shape)
        return feats.reshape(n * len(SLOTS), -1), labels.ravel()

    x_train, y_train = slot_data(300)
    x_test, y_test = slot_data(100)
    nearest = ((x_test[:, None] - x_train[None]) ** 2).sum(-1).argmin(1)  # 1-nearest neighbour
    acc = (y_train[nearest] == y_test).mean()
    assert acc > 0.98


def test_bad_arguments():
    with pytest.raises(GradscopeError, match="size"):
        synthetic_captions(n_train=2, size=16)
    with pytest.raises(GradscopeError, match="n_train"):
        synthetic_captions(n_train=0)
    with pytest.raises(GradscopeError, match="unknown shape"):
        render_scene([("red", "hexagon", "left", 0.1, (0, 0))])
    with pytest.raises(GradscopeError, match=r"\(N, H, W, 3\)"):
        features_fn(np.zeros((4, 4, 3)))
