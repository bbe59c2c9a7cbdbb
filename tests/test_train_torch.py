"""The torch trainer: augmentation windows, crop phases, export to the NumPy model, and
exact resume (an interrupted run continued from its checkpoint ends with the same weights)."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gradscope.cnn import CNN  # noqa: E402
from gradscope.errors import GradscopeError  # noqa: E402
from gradscope.cnn.train_torch import _augment, train_tinyimagenet_torch  # noqa: E402
from tests.tiny_tinyimagenet import make_tiny_tinyimagenet  # noqa: E402


def _windows(img, side):
    """Every side x side window of a (3, H, W) image and of its mirror image."""
    h, w = img.shape[1:]
    return [v[:, y:y + side, x:x + side] for v in (img, img.flip(-1))
            for y in range(h - side + 1) for x in range(w - side + 1)]


@pytest.mark.parametrize("crop", [None, 5])
def test_augment_takes_one_window_per_image(crop):
    gen = torch.Generator().manual_seed(0)
    xb = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8, generator=gen)
    out = _augment(xb, 8, gen, crop)
    side = crop or 8
    assert out.shape == (16, 3, side, side) and out.dtype == torch.float32
    assert out.is_contiguous(memory_format=torch.channels_last)
    padded = torch.nn.functional.pad(xb.float(), (2, 2, 2, 2), mode="reflect") if crop is None else xb.float()
    for o, src in zip(out, padded):
        assert any(torch.equal(o, w) for w in _windows(src, side))
    offsets = {tuple(o.flatten()[:4].tolist()) for o in out}
    assert len(offsets) > 1  # windows differ between images of a batch


def _train(data, out, **kw):
    return train_tinyimagenet_torch(data, out, schedule=((8, 2, 6), (8, 1)), widths=(4, 6), batch_size=4,
                                    threads=1, seed=3, **kw)


def test_crop_schedule_trains_exports_and_resumes_exactly(tmp_path):
    data = make_tiny_tinyimagenet(tmp_path / "tin", per_class=4, n_classes=5)
    full = _train(data, tmp_path / "full")
    assert [(r["epoch"], r["resolution"], r["crop"]) for r in full.history] == [(1, 8, 6), (2, 8, 6), (3, 8, None)]
    assert all(np.isfinite(r["train_loss"]) for r in full.history)

    _train(data, tmp_path / "split", stop_after=2)
    trained = []
    resumed = _train(data, tmp_path / "split", resume=True,
                     progress=lambda info: trained.append(info["epoch"]) if "val_top1" in info else None)
    assert trained == [3]  # only the epoch the interrupted run had left
    a, b = CNN.load(f"{full.weights_path}.json"), CNN.load(f"{resumed.weights_path}.json")
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k], err_msg=k)
    assert [r["val_top1"] for r in resumed.history] == [r["val_top1"] for r in full.history]
    # a setting the checkpoint was written with cannot change on resume (the optimizer and schedule come from it)
    with pytest.raises(GradscopeError, match=r"written with lr=0\.2 but this run has lr=0\.5"):
        _train(data, tmp_path / "split", resume=True, lr=0.5)

    # the exported NumPy model computes what the trained torch module computes
    from gradscope.cnn.torch_module import params_to_torch
    module = params_to_torch(a.config, a.params, a.buffers).eval()
    x = np.random.default_rng(0).standard_normal((3, 3, 8, 8)).astype(np.float32)
    with torch.no_grad():
        ref = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(a.scores(x), ref, rtol=1e-4, atol=1e-4)


def test_warm_start_from_an_exported_model(tmp_path):
    from gradscope.cnn.torch_module import build_torch_module
    from gradscope.cnn.train_torch import _warm_start
    from gradscope.errors import DataError

    data = make_tiny_tinyimagenet(tmp_path / "tin", per_class=4, n_classes=5)
    first = _train(data, tmp_path / "first")
    saved = CNN.load(f"{first.weights_path}.json")
    module = build_torch_module(saved.config)
    history = _warm_start(module, saved.config, f"{first.weights_path}.json")
    assert [r["stage"] for r in history] == [1, 1, 1] and history[-1]["epoch"] == 3
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(module.eval()(torch.from_numpy(x)).numpy(), saved.scores(x), rtol=1e-4, atol=1e-4)

    second = train_tinyimagenet_torch(data, tmp_path / "second", schedule=((8, 1),), widths=(4, 6), batch_size=4,
                                      threads=1, init_from=f"{first.weights_path}.json")
    stages = [r.get("stage") for r in CNN.load(f"{second.weights_path}.json").config["training"]["history"]]
    assert stages == [1, 1, 1, None]  # the earlier run's epochs, then this run's
    with pytest.raises(DataError, match="layers differ"):
        _warm_start(None, dict(saved.config, layers=saved.layers[:-1]), f"{first.weights_path}.json")
