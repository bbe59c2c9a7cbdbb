"""kill -9 of `caption train` and `cnn train` at several points (mid-epoch, while a checkpoint
is being written, just before and just after its rename), then `--resume`: the final
parameters equal an uninterrupted run's bit for bit, the checkpoint on disk is always
readable, and the temporary file a kill leaves behind is cleaned up by the resumed run."""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from gradscope.cli import main
from gradscope.fileio import load_npz
from tiny_tinyimagenet import make_tiny_tinyimagenet

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

CAPTION = ["caption", "train", "--data", "synthetic:60", "--hidden", "12", "--wordvec", "6", "--batch-size", "20",
           "--lr", "1e-2", "--epochs", "3", "--val-images", "10", "--no-progress"]


def cnn_args(data):
    return ["cnn", "train", "--engine", "numpy", "--data", str(data), "--widths", "4,6", "--epochs", "3",
            "--batch-size", "4"]


def killed(argv, point, tmp):
    """Run gradscope argv in a subprocess that SIGKILLs itself at `point` (see kill_hook.py)."""
    env = dict(os.environ, KILL_POINT=point, PYTHONPATH=os.pathsep.join([ROOT, HERE]))
    proc = subprocess.run([sys.executable, os.path.join(HERE, "kill_hook.py"), *argv], env=env, cwd=tmp,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, (point, proc.returncode, proc.stderr[-2000:])


def final_state(out):
    """Parameters and loss history of the finished run in `out` (from its last checkpoint)."""
    ck = load_npz(os.path.join(out, "checkpoint.npz"))
    return {k: v for k, v in ck.items() if k.startswith("param/") or k == "loss_history"}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k


def check_kill_and_resume(argv, point, tmp_path, reference, extra_files=()):
    if point == "step:mid-epoch-2":  # half-way through the second of three epochs
        point = f"step:{len(reference['loss_history']) // 2 + 1}"
    out = str(tmp_path / point.replace(":", "_"))
    killed([*argv, "--out", out], point, tmp_path)
    ck = os.path.join(out, "checkpoint.npz")
    assert os.path.isfile(ck)
    load_npz(ck)  # the checkpoint the kill left is readable
    left = [n for n in os.listdir(out) if n.startswith(".tmp-")]
    if ":before" in point or ":during" in point:
        assert left, "the kill should have left a temporary file"
    assert main([*argv, "--out", out, "--resume"]) == 0
    assert not [n for n in os.listdir(out) if n.startswith(".tmp-")], "stale temporary files were not cleaned"
    assert_same(final_state(out), reference)
    for name in extra_files:
        assert_same(load_npz(os.path.join(out, name)), load_npz(os.path.join(str(tmp_path / "ref"), name)))


@pytest.fixture(scope="module")
def caption_reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("caption_kill")
    assert main([*CAPTION, "--out", str(tmp / "ref")]) == 0
    return tmp, final_state(str(tmp / "ref"))


@pytest.mark.parametrize("point", ["step:mid-epoch-2", "write:2:during", "write:2:before", "write:1:after"])
def test_caption_train_kill_resume(caption_reference, point, capsys):
    tmp, reference = caption_reference
    check_kill_and_resume(CAPTION, point, tmp, reference, extra_files=("model.npz",))


@pytest.fixture(scope="module")
def cnn_reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cnn_kill")
    data = make_tiny_tinyimagenet(tmp / "tin", per_class=4, n_classes=3)
    assert main([*cnn_args(data), "--out", str(tmp / "ref")]) == 0
    return tmp, data, final_state(str(tmp / "ref"))


@pytest.mark.parametrize("point", ["step:mid-epoch-2", "write:2:during", "write:1:after"])
def test_cnn_train_kill_resume(cnn_reference, point, capsys):
    tmp, data, reference = cnn_reference
    check_kill_and_resume(cnn_args(data), point, tmp, reference)


def test_stale_temp_files_are_cleaned_live_ones_kept(tmp_path):
    from gradscope.fileio import clean_stale_temp_files, save_npz

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    names = {"dead": f".tmp-{dead}-checkpoint.npz-abc.npz", "live": f".tmp-{os.getpid()}-checkpoint.npz-def.npz",
             "other": f".tmp-{dead}-best.npz-ghi.npz", "legacy_old": ".tmp-k2j3h4.npz", "legacy_new": ".tmp-a1b2c3.npz"}
    for name in names.values():
        (tmp_path / name).write_bytes(b"half")
    old = os.path.getmtime(tmp_path / names["legacy_old"]) - 7200
    os.utime(tmp_path / names["legacy_old"], (old, old))
    save_npz(tmp_path / "checkpoint.npz", {"a": np.zeros(2)})  # cleans what a dead writer of this file left
    assert not (tmp_path / names["dead"]).exists() and (tmp_path / names["other"]).exists()
    removed = {os.path.basename(p) for p in clean_stale_temp_files(tmp_path)}
    assert removed == {names["other"], names["legacy_old"]}
    assert (tmp_path / names["live"]).exists() and (tmp_path / names["legacy_new"]).exists()
