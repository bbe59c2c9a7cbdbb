"""The method commands end to end on a tiny saved CNN and a fake TinyImageNet folder."""
import json
import os

import numpy as np
import pytest

from gradscope.cli import main
from gradscope.imageio import load_image, save_image
from test_methods import tiny_cnn


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    model = tiny_cnn(seed=1)
    model.save(root / "m.json")
    rng = np.random.default_rng(0)
    save_image(root / "img.png", rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))
    ds = root / "ds"
    (ds / "val" / "images").mkdir(parents=True)
    (ds / "wnids.txt").write_text("\n".join(model.wnids) + "\n")
    (ds / "words.txt").write_text("".join(f"{w}\t{n}\n" for w, n in zip(model.wnids, model.class_names)))
    lines = []
    for i in range(12):
        save_image(ds / "val" / "images" / f"val_{i}.JPEG", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
        lines.append(f"val_{i}.JPEG\t{model.wnids[i % 5]}\t2\t3\t10\t12\n")
    (ds / "val" / "val_annotations.txt").write_text("".join(lines))
    return root


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_saliency_command_writes_maps(files, capsys):
    code, out, _ = run(capsys, "saliency", files / "img.png", "--method", "smoothgrad", "--samples", 4,
                       "-o", files / "sal", "--model", files / "m.json", "--json")
    assert code == 0
    d = json.loads(out)
    assert d["method"] == "smoothgrad" and d["images"][0]["file"].endswith("img.png")
    assert sorted(os.listdir(files / "sal")) == ["0_map.png", "0_overlay.png", "saliency.png"]


def test_saliency_maps_of_every_method_with_their_check(files, capsys):
    m = files / "m.json"
    for method, extra in (("gradcam", ["--layer", "relu2"]), ("occlusion", ["--window", 4, "--stride", 4]),
                          ("perturbation", ["--iterations", 3, "--areas", "0.1,0.3"])):
        code, out, _ = run(capsys, "saliency", files / "img.png", "--method", method, *extra, "--step", 64,
                           "-o", files / method, "--model", m, "--json")
        d = json.loads(out)
        assert code == 0 and d["method"] == method, method
        item = d["images"][0]
        assert 0 <= item["deletion_auc"] <= 1 and 0 <= item["random_insertion_auc"] <= 1
    code, out, _ = run(capsys, "saliency", files / "img.png", "--method", "gradcam", "--no-check", "-o",
                       files / "gc2", "--model", m)
    assert code == 0 and "deletion AUC" not in out
    code, out, _ = run(capsys, "saliency", files / "img.png", "-o", files / "gc3", "--model", m)
    assert code == 0 and "deletion AUC" in out and "random" in out
    code, _, err = run(capsys, "saliency", files / "img.png", "--method", "gradcam", "--layer", "fc",
                       "-o", files / "gc4", "--model", m)
    assert code == 2 and "spatial extent" in err


def test_saliency_evaluate_shards_and_merge(files, capsys):
    m = files / "m.json"
    paths = [files / f"ev{k}.jsonl" for k in (1, 2)]
    for k, path in zip((1, 2), paths):
        code, out, _ = run(capsys, "saliency", "evaluate", "--data", files / "ds", "--n", 4, "--shard", f"{k}/2",
                           "--methods", "random,vanilla,gradcam", "--results", path, "--sanity", "--step", 64,
                           "--model", m, "--json")
        assert code == 0 and json.loads(out)["methods"]["gradcam"]["n"] == 2
    code, out, _ = run(capsys, "saliency", "evaluate", "--merge", *paths, "--json")
    table = json.loads(out)["methods"]
    assert code == 0 and set(table) == {"random", "vanilla", "gradcam"} and table["vanilla"]["n"] == 4
    right = [r for p in paths for r in map(json.loads, open(p)) if r["method"] == "gradcam" and r["class"] == r["label"]]
    assert table["gradcam"]["pointing_n"] == len(right)      # the pointing game counts correct predictions
    assert table["gradcam"]["sanity_spearman"] is not None
    code, _, err = run(capsys, "saliency", "evaluate", "--data", files / "ds", "--methods", "vanila", "--model", m)
    assert code == 2 and "unknown method" in err


def test_fool_benchmark(files, capsys):
    code, out, _ = run(capsys, "fool", "--data", files / "ds", "--n", 2, "--model", files / "m.json", "--json")
    d = json.loads(out)
    assert code == 0 and d["n"] == 2 and 0 <= d["success_rate"] <= 1


def test_fool_classvis_invert_dream_commands(files, capsys):
    m = files / "m.json"
    code, out, _ = run(capsys, "fool", files / "img.png", "--target", "synonym3", "-o", files / "fool", "--model", m)
    assert code == 0 and "class 3" in out
    assert load_image(files / "fool" / "0_fooled.png").shape == (16, 16, 3)
    code, out, _ = run(capsys, "classvis", 2, "n00000004", "--iterations", 5, "-o", files / "cv", "--model", m)
    assert code == 0 and sorted(os.listdir(files / "cv")) == ["0_class2.png", "1_class4.png"]
    code, out, _ = run(capsys, "invert", files / "img.png", "--layer", "relu1", "--iterations", 5,
                       "-o", files / "inv.png", "--model", m)
    assert code == 0 and "relative feature distance" in out
    assert sorted(p for p in os.listdir(files) if p.startswith("inv")) == ["inv_0_inverted.png", "inv_0_target.png"]
    code, out, _ = run(capsys, "dream", files / "img.png", "--layer", "relu2", "--iterations", 2,
                       "-o", files / "dream.png", "--model", m)
    assert code == 0 and load_image(files / "dream.png").shape == (20, 30, 3)  # the image's own size


def test_command_errors_are_clean(files, capsys):
    m = files / "m.json"
    code, _, err = run(capsys, "classvis", "synonim4", "-o", files / "x", "--model", m)
    assert code == 2 and "close matches: 'synonym4'" in err
    code, _, err = run(capsys, "invert", files / "img.png", "--layer", "relu_1", "-o", files / "x", "--model", m)
    assert code == 2 and "unknown layer" in err
    code, _, err = run(capsys, "saliency", files / "missing.png", "-o", files / "x", "--model", m)
    assert code == 2 and "not found" in err
    code, _, err = run(capsys, "fool", files / "img.png", "--model", m)
    assert code == 2 and "--target" in err
    code, _, err = run(capsys, "saliency", "evaluate", "--model", m)
    assert code == 2 and "--data" in err
