"""Batched feature extraction with its resumable HDF5 cache."""
import os

import numpy as np
import pytest
from PIL import Image

from gradscope.data.features import CacheWarning, extract_features, pixel_features, read_feature_cache
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
    part = f"{cache}.part-{os.getpid()}"
    assert not cache.exists() and os.path.exists(part)
    assert len(read_feature_cache(part)) == 6  # two finished batches
    fn, calls = CountingFn(), []
    feats = extract_features(image_files, fn, batch_size=3, cache_path=cache,
                             progress=lambda d, t: calls.append((d, t)))
    assert fn.seen == 2 and calls == [(2, 2)]  # only the missing images
    np.testing.assert_array_equal(feats, expected)
    assert sorted(os.listdir(cache.parent)) == ["feats.h5", "feats.h5.lock"]
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


def test_corrupt_part_and_cache_files_are_replaced(image_files, tmp_path):
    cache = tmp_path / "c.h5"
    (tmp_path / "c.h5.part-999999999").write_bytes(b"half written")  # a killed run's
    cache.write_bytes(b"garbage")
    fn = CountingFn()
    with pytest.warns(CacheWarning, match="unreadable"):
        extract_features(image_files, fn, cache_path=cache)
    assert fn.seen == 8 and sorted(os.listdir(tmp_path)) == ["c.h5", "c.h5.lock", "img"]
    assert len(read_feature_cache(cache)) == 8


def test_cache_is_keyed_by_content_and_extractor(image_files, tmp_path):
    cache = tmp_path / "c.h5"
    first = extract_features(image_files[:2], CountingFn(), cache_path=cache)
    # a second folder with the same file names but other photos
    other = tmp_path / "other"
    other.mkdir()
    for i, p in enumerate(image_files[:2]):
        Image.fromarray(np.full((6, 6, 3), 10 * i, np.uint8)).save(other / os.path.basename(p))
    fn = CountingFn()
    feats = extract_features([str(other / os.path.basename(p)) for p in image_files[:2]], fn, cache_path=cache)
    assert fn.seen == 2 and not np.allclose(feats, first)
    # same bytes under another name: served from the cache
    copy = tmp_path / "copy.png"
    copy.write_bytes(open(image_files[0], "rb").read())
    fn = CountingFn()
    np.testing.assert_array_equal(extract_features([str(copy)], fn, cache_path=cache), first[:1])
    assert fn.seen == 0
    # another extractor (or another preparation) does not get these rows
    fn2 = lambda x: np.ones((len(x), 4))  # noqa: E731
    np.testing.assert_array_equal(extract_features(image_files[:2], fn2, cache_path=cache), np.ones((2, 4)))
    fn = CountingFn()
    extract_features(image_files[:2], fn, cache_path=cache, image_size=6)
    assert fn.seen == 2
    # a photo replaced by a corrupt file is never scored from its old row
    with open(image_files[1], "wb") as f:
        f.write(b"not an image")
    with pytest.raises(DataError, match="cannot read image"):
        extract_features(image_files[:2], CountingFn(), cache_path=cache)


def test_read_only_cache_folder(image_files, tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    extract_features(image_files[:2], CountingFn(), cache_path=folder / "c.h5")
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):  # root writes anyway: make the folder refuse as a read-only one does
        import gradscope.data.features as features

        def refuse(path, mode="r", *a, **kw):
            if mode != "rb":
                raise PermissionError(13, "Permission denied", path)
            return open(path, mode, *a, **kw)

        monkeypatch.setattr(features, "open", refuse, raising=False)
    try:
        fn = CountingFn()
        with pytest.warns(CacheWarning, match="cannot write"):
            feats = extract_features(image_files, fn, cache_path=folder / "c.h5")
        assert feats.shape == (8, 4) and fn.seen == 6  # the two cached rows were read
    finally:
        folder.chmod(0o755)


def test_float16_storage(image_files, tmp_path):
    cache = tmp_path / "c.h5"
    a = extract_features(image_files, CountingFn(), cache_path=cache, dtype=np.float16)
    fn = CountingFn()
    b = extract_features(image_files, fn, cache_path=cache, dtype=np.float16)
    assert a.dtype == b.dtype == np.float16 and fn.seen == 0
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a, extract_features(image_files, CountingFn()), rtol=1e-3)


WORKER = """
import sys, time, numpy as np
from gradscope.data.features import extract_features
def fn(x):
    time.sleep(0.05)
    return x.reshape(len(x), -1)[:, :4].astype(np.float64)
out = extract_features(sys.argv[2:], fn, batch_size=1, cache_path=sys.argv[1])
print(out.shape[0])
"""


def test_two_concurrent_runs_share_one_cache(image_files, tmp_path):
    import subprocess
    import sys

    cache = str(tmp_path / "c.h5")
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    runs = [subprocess.Popen([sys.executable, "-c", WORKER, cache] + files, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
            for files in (image_files[:6], image_files[2:])]
    outs = [r.communicate(timeout=60) for r in runs]
    assert [r.returncode for r in runs] == [0, 0], outs
    assert [o[0].strip() for o in outs] == ["6", "6"] and not any(o[1] for o in outs)
    assert len(read_feature_cache(cache)) == 8
    assert sorted(os.listdir(tmp_path)) == ["c.h5", "c.h5.lock", "img"]


def test_cache_of_an_older_function_of_the_same_name_is_replaced(image_files, tmp_path):
    cache = tmp_path / "c.h5"

    class Fn:
        dim = 4

        def __call__(self, x):
            return np.zeros((len(x), self.dim))

    extract_features(image_files[:2], Fn(), cache_path=cache)
    changed = Fn()
    changed.dim = 9
    assert extract_features(image_files, changed, cache_path=cache).shape == (8, 9)
    assert {v.shape for v in read_feature_cache(cache).values()} == {(9,)}


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
