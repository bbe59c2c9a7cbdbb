"""`gradscope classes`, class names on the command line, and the default model: EfficientNet-Lite0
(swapped here for a tiny random network of its shape, so the tests stay fast)."""
import numpy as np
import pytest

import gradscope.cnn.efficientnet
from demo_models import tiny_lite
from gradscope.cli import main
from gradscope.imageio import save_image
from json_schema import check_output


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_classes_cat_lists_the_cats(capsys):
    code, out, _ = run(capsys, "classes", "cat")
    lines = out.splitlines()
    assert code == 0 and lines[0] == "model: EfficientNet-Lite0, ImageNet-1k, 224 px"
    cats = [ln.split(None, 2)[2] for ln in lines[2:7]]  # whole-word matches come first
    for name in ("tabby, tabby cat", "tiger cat", "Egyptian cat", "Persian cat"):
        assert name in cats
    d = check_output(run(capsys, "classes", "cat", "--json")[1], "classes")
    assert d["model"]["classes"] == 1000 and d["results"][0] == {"class": 281, "class_name": "tabby, tabby cat",
                                                                  "wnid": "n02123045"}
    d = check_output(run(capsys, "classes", "--model", "tinyimagenet", "--json")[1], "classes")
    assert len(d["results"]) == 100 and d["model"]["input_size"] == 64


def test_unknown_class_hints(capsys):
    code, out, _ = run(capsys, "classes", "tiger cat", "--model", "tinyimagenet")
    assert code == 1 and "EfficientNet-Lite0 has 'tiger cat' (--model efficientnet_lite0)" in out
    code, out, _ = run(capsys, "classes", "golden retrievr")
    assert code == 1 and "close spellings: 'golden retriever'" in out
    code, out, _ = run(capsys, "classes", "n02123045", "--model", "gradscope")  # the old name of tinyimagenet
    assert code == 0 and "tabby, tabby cat" in out


@pytest.fixture
def tiny_default(monkeypatch, tmp_path):
    monkeypatch.setattr(gradscope.cnn.efficientnet, "load_efficientnet_lite0", lambda dtype=None: tiny_lite())
    save_image(tmp_path / "cat.png", np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8))
    return tmp_path


def test_default_model_is_efficientnet_lite0(tiny_default, capsys):
    code, out, _ = run(capsys, "classify", tiny_default / "cat.png", "--top", 2)
    assert code == 0 and out.startswith("model: EfficientNet-Lite0, ImageNet-1k, 32 px\n")
    d = check_output(run(capsys, "classify", tiny_default / "cat.png", "--json")[1], "classify")
    assert d["model"]["spec"] == "efficientnet_lite0" and d["model"]["classes"] == 1000


def test_unknown_target_names_substring_matches_and_the_other_model(tiny_default, capsys):
    code, _, err = run(capsys, "fool", tiny_default / "cat.png", "--target", "cat", "-o", tiny_default / "f")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.index("classes containing 'cat': 'tabby, tabby cat'") < err.index("close matches")
    code, _, err = run(capsys, "classvis", "tiger cat", "-o", tiny_default / "c", "--model", "tinyimagenet")
    assert code == 2 and "unknown class 'tiger cat'" in err and "EfficientNet-Lite0 has 'tiger cat'" in err
    assert not (tiny_default / "f").exists() and not (tiny_default / "c").exists()
    code, _, err = run(capsys, "classvis", " ", "-o", tiny_default / "c", "--model", "tinyimagenet")
    assert code == 2 and err.strip() == ("gradscope: error: empty class name ' ': give an index (0..99), a wnid or "
                                         "a name; see `gradscope classes QUERY --model M`")
