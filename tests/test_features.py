"""Batched feature extraction with its resumable HDF5 cache."""
import os

import numpy as np
import pytest
from PIL import Image

from gradscope.data.features import extract_features, pixel_features, read_feature_cache
from gradscope.errors import DataError, GradscopeError


@pytest.fixture
def image_files(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(7):
        p = tmp_path / "img" / f"im{i}.png"
        p.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (6, 6, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    gray = tmp_path / "img" / "gray.png"
    Image.fromarray(np.full((6, 6), 200, np.uint8)).save(gray)
    return paths + [str(gray)]


class CountingFn:
    """feature_fn that records how many images it saw; optionally fails on call `fail_at`."""

    def __init__(self, fail_at=None):
        self.seen, self.calls, self.fail_at = 0, 0, fail_at

    def __call__(self, images):
        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt
        self.seen += len(images)
        return images.reshape(len(images), -1)[:, :4].astype(np.float64) + images.mean(axis=(1, 2, 3))[:, None]


def test_extract_without_cache_and_grayscale(image_files):
    fn = CountingFn()
    feats = extract_features(image_files, fn, batch_size=3)
    assert feats.shape == (8, 4) and feats.dtype == np.float32 and fn.calls == 3
    assert feats[-1, 0] == pytest.approx(200 + 200)  # grayscale became RGB (all channels 200)


def test_cache_reuse_and_resume_after_interruption(image_files, tmp_path):
    cache = tmp_path / "cache" / "feats.h5"
    expected = extract_features(image_files, CountingFn(), batch_size=3)
    with pytest.raises(KeyboardInterrupt):
        extract_features(image_files, CountingFn(fail_at=3), batch_size=3, cache_path=cache)
    assert not cache.exists() and os.path.exists(str(cache) + ".part")
    assert len(read_feature_cache(str(cache) + ".part")) == 6  # two finished batches
    fn, calls = CountingFn(), []
    feats = extract_features(image_files, fn, batch_size=3, cache_path=cache,
                             progress=lambda d, t: calls.append((d, t)))
    assert fn.seen == 2 and calls == [(2, 2)]  # only the missing images
    np.testing.assert_array_equal(feats, expected)
    assert cache.exists() and not os.path.exists(str(cache) + ".part")
    assert not [f for f in os.listdir(cache.parent) if f.startswith(".tmp-")]
    # fully cached, in another order: nothing is computed
    fn = CountingFn()
    np.testing.assert_array_equal(extract_features(image_files[::-1], fn, cache_path=cache), expected[::-1])
    assert fn.calls == 0


def test_cache_grows_with_new_images(image_files, tmp_path):
    cache = tmp_path / "c.h5"
    extract_features(image_files[:3], CountingFn(), cache_path=cache)
    fn = CountingFn()
    extract_features(image_files, fn, cache_path=cache)
    assert fn.seen == 5 and len(read_feature_cache(cache)) == 8


def test_corrupt_part_file_is_discarded(image_files, tmp_path):
    cache = tmp_path / "c.h5"
    (tmp_path / "c.h5.part").write_bytes(b"half written")
    fn = CountingFn()
    extract_features(image_files, fn, cache_path=cache)
    assert fn.seen == 8 and not (tmp_path / "c.h5.part").exists()


def test_cache_errors(image_files, tmp_path):
    cache = tmp_path / "c.h5"
    cache.write_bytes(b"garbage")
    with pytest.raises(DataError, match="corrupt feature cache"):
        extract_features(image_files, CountingFn(), cache_path=cache)
    os.remove(cache)
    extract_features(image_files[:2], CountingFn(), cache_path=cache)
    with pytest.raises(DataError, match="returns 9 features but the cache .* holds 4: delete it"):
        extract_features(image_files, lambda x: np.zeros((len(x), 9)), cache_path=cache)
    assert not os.path.exists(str(cache) + ".part")


def test_bad_feature_fn_and_sizes(image_files, tmp_path):
    with pytest.raises(GradscopeError, match=r"\(3, D\)"):
        extract_features(image_files[:3], lambda x: np.zeros(3))
    big = tmp_path / "big.png"
    Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(big)
    with pytest.raises(DataError, match="image_size"):
        extract_features([image_files[0], str(big)], CountingFn())
    assert extract_features([image_files[0], str(big)], CountingFn(), image_size=5).shape == (2, 4)
    with pytest.raises(DataError, match="not found"):
        extract_features([str(tmp_path / "nope.png")], CountingFn())


def test_pixel_features():
    img = np.zeros((1, 4, 4, 3), np.uint8)
    img[0, :2, :2] = 255  # top-left quarter white
    f = pixel_features(img, size=2)
    assert f.shape == (1, 12)
    np.testing.assert_allclose(f.reshape(2, 2, 3)[:, :, 0], [[1, 0], [0, 0]])
    with pytest.raises(GradscopeError, match="smaller"):
        pixel_features(img, size=8)
