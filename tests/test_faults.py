"""Faults in the middle of a command, each in its own process: SIGTERM is handled as Ctrl-C
(one line, exit 143, the output folder left as it was), a file-size limit (`ulimit -f`) or a
full disk is one line naming the file with nothing partial left, a feature cache that
cannot be written is skipped, and a 250-character output name works."""
import os
import resource
import subprocess
import sys
import textwrap

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def run_py(code, cwd, fsize=None, timeout=120):
    """Run python code in a fresh process (PYTHONPATH: this checkout and tests/), optionally
    under a file-size limit of `fsize` bytes."""
    limit = None if fsize is None else (lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, HERE]), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, preexec_fn=limit)


DEMO_TERMINATED = """
    import os, signal, sys
    import pytest
    from demo_models import use_tiny_models
    import gradscope.imageio
    from gradscope.cli import main

    use_tiny_models(pytest.MonkeyPatch())
    real, count = gradscope.imageio.save_image, [0]

    def save_then_term(*a, **k):  # SIGTERM after the 3rd PNG, as `kill PID` would
        real(*a, **k)
        count[0] += 1
        if count[0] == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    gradscope.imageio.save_image = save_then_term
    sys.exit(main(["demo", "--quick", "-o", sys.argv[-1] if len(sys.argv) > 1 else "out"]))
"""


def test_sigterm_during_demo_is_handled_like_ctrl_c(tmp_path):
    (tmp_path / "out").mkdir()  # an existing empty folder
    proc = run_py(DEMO_TERMINATED, tmp_path)
    assert proc.returncode == 143, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == "gradscope: terminated"
    assert os.listdir(tmp_path / "out") == []


CAPTION_TRAIN = """
    import sys
    from gradscope.cli import main
    sys.exit(main(["caption", "train", "--data", "synthetic:60", "--hidden", "12", "--wordvec", "6",
                   "--batch-size", "20", "--epochs", "1", "--val-images", "10", "--no-progress", "--out", "out"]))
"""


def test_file_size_limit_is_one_line_and_leaves_nothing(tmp_path):
    (tmp_path / "out").mkdir()
    proc = run_py(CAPTION_TRAIN, tmp_path, fsize=2000)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gradscope: error: cannot write ") and "File too large" in lines[0]
    assert os.listdir(tmp_path / "out") == []


FEATURES_LIMITED = """
    import numpy as np
    from PIL import Image
    from gradscope.data.features import extract_features

    paths = []
    for i in range(6):
        Image.fromarray(np.full((8, 8, 3), 20 * i, np.uint8)).save(f"im{i}.png")
        paths.append(f"im{i}.png")
    feats = extract_features(paths, lambda x: np.ones((len(x), 400)), batch_size=2, cache_path="c.h5")
    print(feats.shape)
"""


def test_feature_cache_write_failure_is_skipped(tmp_path):
    proc = run_py(FEATURES_LIMITED, tmp_path, fsize=3000)  # each batch is 3,200 bytes of features
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "(6, 400)" and "CacheWarning" in proc.stderr and "File too large" in proc.stderr
    assert not [n for n in os.listdir(tmp_path) if n.startswith("c.h5.part") or n == "c.h5"]


def test_long_output_names_fit_with_their_temporary_names(tmp_path):
    from gradscope.fileio import save_json

    name = "a" * 245 + ".json"  # 250 characters: a legal name
    save_json(tmp_path / name, {"x": 1})
    assert os.listdir(tmp_path) == [name]
    multibyte = "é" * 120 + ".json"  # 245 bytes in UTF-8
    save_json(tmp_path / multibyte, {"x": 2})
    assert sorted(os.listdir(tmp_path)) == sorted([name, multibyte])


def test_full_disk_names_the_file(tmp_path, monkeypatch):
    import errno

    from gradscope.errors import DataError
    from gradscope.fileio import save_npz

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("numpy.savez_compressed", full)
    with pytest.raises(DataError, match=r"cannot write .*x\.npz.*No space left on device"):
        save_npz(tmp_path / "x.npz", {})
    assert os.listdir(tmp_path) == []
