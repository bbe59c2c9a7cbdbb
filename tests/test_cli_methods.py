"""The method commands end to end on a tiny saved CNN and a fake TinyImageNet folder."""
import json
import os

import numpy as np
import pytest

from gradscope.cli import main
from gradscope.imageio import load_image, save_image
from gradscope.cli.output import short_class, slug
from json_schema import check_output
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
    d = check_output(out, "saliency")
    rec = d["results"][0]
    assert d["params"]["n_samples"] == 4 and rec["image"].endswith("img.png") and d["model"]["classes"] == 5
    stem = f"img_{slug(short_class(rec['class_name']))}_smoothgrad"
    assert sorted(os.listdir(files / "sal")) == [".gradscope-output", f"{stem}.png", f"{stem}_overlay.png",
                                                 "smoothgrad_figure.png"]
    assert rec["written"] == [str(files / "sal" / f"{stem}.png"), str(files / "sal" / f"{stem}_overlay.png")]


def test_saliency_maps_of_every_method_with_their_check(files, capsys):
    m = files / "m.json"
    for method, extra in (("gradcam", ["--layer", "relu2"]), ("occlusion", ["--window", 4, "--stride", 4]),
                          ("perturbation", ["--iterations", 3, "--areas", "0.1,0.3"])):
        code, out, _ = run(capsys, "saliency", files / "img.png", "--method", method, *extra, "--step", 64,
                           "-o", files / method, "--model", m, "--json")
        d = check_output(out, "saliency")
        assert code == 0 and d["method"] == method, method
        item = d["results"][0]
        assert 0 <= item["deletion_auc"] <= 1 and 0 <= item["random_insertion_auc"] <= 1
        assert item["written"][0].endswith(f"_{method}.png")
    code, out, _ = run(capsys, "saliency", files / "img.png", "--method", "gradcam", "--no-check", "-o",
                       files / "gc2", "--model", m)
    assert code == 0 and "deletion AUC" not in out
    code, out, _ = run(capsys, "saliency", files / "img.png", "-o", files / "gc3", "--model", m)
    assert code == 0 and "deletion AUC" in out and "random" in out
    code, _, err = run(capsys, "saliency", files / "img.png", "--method", "gradcam", "--layer", "fc",
                       "-o", files / "gc4", "--model", m)
    assert code == 2 and "spatial extent" in err


def _table(d):
    return {r["method"]: r for r in d["results"]}


def test_saliency_evaluate_shards_and_merge(files, capsys):
    m = files / "m.json"
    paths = [files / f"ev{k}.jsonl" for k in (1, 2)]
    for k, path in zip((1, 2), paths):
        code, out, _ = run(capsys, "saliency", "evaluate", "--data", files / "ds", "--n", 4, "--shard", f"{k}/2",
                           "--methods", "random,vanilla,gradcam", "--results", path, "--sanity", "--step", 64,
                           "--model", m, "--json")
        d = check_output(out, "saliency evaluate")
        assert code == 0 and _table(d)["gradcam"]["n"] == 2 and d["results_file"] == str(path)
    code, out, _ = run(capsys, "saliency", "evaluate", "--merge", *paths, "--json")
    table = _table(check_output(out, "saliency evaluate"))
    assert code == 0 and set(table) == {"random", "vanilla", "gradcam"} and table["vanilla"]["n"] == 4
    right = [r for p in paths for r in map(json.loads, open(p)) if r["method"] == "gradcam" and r["class"] == r["label"]]
    assert table["gradcam"]["pointing_n"] == len(right)      # the pointing game counts correct predictions
    assert table["gradcam"]["sanity_spearman"] is not None
    code, _, err = run(capsys, "saliency", "evaluate", "--data", files / "ds", "--methods", "vanila", "--model", m)
    assert code == 2 and "unknown method" in err


def test_saliency_evaluate_table_and_fool_benchmark(files, capsys):
    code, out, _ = run(capsys, "saliency", "evaluate", "--data", files / "ds", "--n", 6, "--step", 64,
                       "--methods", "random,vanilla", "--model", files / "m.json", "--json")
    d = check_output(out, "saliency evaluate")
    table = _table(d)
    assert code == 0 and set(table) == {"random", "vanilla"} and table["vanilla"]["n"] == 6
    assert {"deletion_auc", "insertion_auc", "gap", "pointing_hit"} <= set(table["vanilla"])
    code, out, _ = run(capsys, "fool", "--data", files / "ds", "--n", 2, "--model", files / "m.json", "--json",
                       "-o", files / "bench", "--max-iter", 3)
    d = check_output(out, "fool")
    assert code == 0 and d["summary"]["n"] == 2
    assert len(d["results"]) == 2 and "l2_0_255" in d["results"][0]
    fooled = sorted(n for n in os.listdir(files / "bench") if "fooled" in n)
    assert fooled == sorted(f"{i:03d}_{slug(short_class(r['class_name']))}_{'fooled' if r['success'] else 'not-fooled'}.png"
                            for i, r in enumerate(d["results"]))


def test_fool_benchmark(files, capsys):
    code, out, _ = run(capsys, "fool", "--data", files / "ds", "--n", 2, "--model", files / "m.json", "--json")
    d = check_output(out, "fool")
    assert code == 0 and d["summary"]["n"] == 2 and 0 <= d["summary"]["success_rate"] <= 1


def test_fool_several_images_named_by_outcome(files, capsys):
    m = files / "m.json"
    save_image(files / "other.png", np.full((12, 12, 3), 90, np.uint8))
    code, out, _ = run(capsys, "fool", files / "img.png", files / "other.png", "--target", "synonym3",
                       "-o", files / "fool", "--model", m, "--max-iter", 30, "--json")
    d = check_output(out, "fool")
    fooled = [r["success"] for r in d["results"]]
    assert code == (0 if any(fooled) else 1) and [r["image"] for r in d["results"]] == [str(files / "img.png"),
                                                                                        str(files / "other.png")]
    for rec, stem in zip(d["results"], ("img", "other")):
        outcome = "fooled" if rec["success"] else "not-fooled"
        assert rec["class"] == 3 and rec["written"][0] == str(files / "fool" / f"{stem}_class-3_{outcome}.png")
        assert load_image(rec["written"][0]).shape == (16, 16, 3)
    code, out, _ = run(capsys, "fool", files / "img.png", "--target", 3, "-o", files / "fool0", "--model", m,
                       "--max-iter", 1, "--step-size", 1e-6)
    assert code == 1 and "NOT fooled" in out and out.startswith("model: m.json, 16 px")  # no image reached it
    assert [n for n in os.listdir(files / "fool0") if "fooled" in n] == ["img_class-3_not-fooled.png"]


def test_classvis_invert_dream_commands(files, capsys):
    m = files / "m.json"
    code, out, _ = run(capsys, "classvis", 2, "n00000004", "--iterations", 5, "-o", files / "cv", "--model", m,
                       "--json")
    d = check_output(out, "classvis")
    assert code == 0 and [r["class"] for r in d["results"]] == [2, 4] and d["params"]["iterations"] == 5
    assert sorted(os.listdir(files / "cv")) == [".gradscope-output", "class-2_classvis.png", "class-4_classvis.png"]
    code, out, _ = run(capsys, "invert", files / "img.png", files / "img.png", "--layer", "relu1", "--iterations", 5,
                       "-o", files / "inv", "--model", m, "--json")
    d = check_output(out, "invert")
    assert code == 0 and len(d["results"]) == 2 and "relative_feature_distance" in d["results"][0]
    assert sorted(os.listdir(files / "inv")) == [".gradscope-output", "img-2_relu1_inverted.png", "img-2_target.png",
                                                 "img_relu1_inverted.png", "img_target.png"]
    code, out, _ = run(capsys, "dream", files / "img.png", "--layer", "relu2", "--iterations", 2,
                       "-o", files / "dream", "--model", m, "--json")
    d = check_output(out, "dream")
    assert code == 0 and load_image(d["results"][0]["written"][0]).shape == (20, 30, 3)  # the image's own size


RERUN = {"saliency": ["saliency", "{img}", "--method", "ig", "--points", "2"],
         "fool": ["fool", "{img}", "--target", "1", "--max-iter", "2"],
         "classvis": ["classvis", "1", "--iterations", "2"],
         "invert": ["invert", "{img}", "--layer", "relu1", "--iterations", "2"],
         "dream": ["dream", "{img}", "--layer", "relu1", "--iterations", "1"]}


@pytest.mark.parametrize("command", sorted(RERUN))
def test_each_command_refuses_its_own_folder_and_overwrites_it(files, capsys, command, tmp_path):
    argv = [a.format(img=files / "img.png") for a in RERUN[command]] + ["-o", tmp_path / "out", "--model",
                                                                        files / "m.json"]
    assert run(capsys, *argv)[0] in (0, 1)  # fool: 1 when not fooled
    first = sorted(os.listdir(tmp_path / "out"))
    (tmp_path / "out" / "stale_0_map.png").write_bytes(b"an earlier run's file")
    code, _, err = run(capsys, *argv)
    assert code == 2 and "not empty" in err and len(err.strip().splitlines()) == 1
    assert run(capsys, *argv, "--overwrite")[0] in (0, 1)
    assert sorted(os.listdir(tmp_path / "out")) == first  # only the new run's files
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_rerun_into_the_same_folder(files, capsys):
    m = files / "m.json"
    argv = ["classvis", 2, "--iterations", 2, "-o", files / "again", "--model", m]
    assert run(capsys, *argv)[0] == 0
    code, _, err = run(capsys, *argv)
    assert code == 2 and "not empty" in err and "--overwrite" in err and err.count("\n") == 1
    argv[1] = 1
    assert run(capsys, *argv, "--overwrite")[0] == 0
    assert sorted(os.listdir(files / "again")) == [".gradscope-output", "class-1_classvis.png"]
    assert [p for p in os.listdir(files) if "gradscope-new" in p or "gradscope-old" in p] == []
    code, _, err = run(capsys, "classvis", 2, "-o", files / "x.png", "--model", m)
    assert code == 2 and "takes a folder" in err


def test_featvis_and_classvis_recipes(files, capsys):
    m = files / "m.json"
    code, out, _ = run(capsys, "featvis", "relu2:1", "relu2:3", "--iterations", 3, "-o", files / "fv",
                       "--model", m, "--json")
    d = check_output(out, "featvis")
    assert code == 0 and [(r["layer"], r["channel"]) for r in d["results"]] == [("relu2", 1), ("relu2", 3)]
    assert d["params"]["iterations"] == 3 and len(d["written"]) == 2
    assert sorted(p for p in os.listdir(files / "fv") if not p.startswith(".")) == \
        ["relu2_channel1_featvis.png", "relu2_channel3_featvis.png"]
    code, out, _ = run(capsys, "classvis", 2, "--recipe", "pixel", "--l2-reg", 0.1, "--iterations", 2,
                       "-o", files / "cvp", "--model", m, "--json")
    d = check_output(out, "classvis")
    assert code == 0 and d["params"]["recipe"] == "pixel" and d["params"]["l2_reg"] == 0.1
    code, _, err = run(capsys, "classvis", 2, "--l2-reg", 0.1, "-o", files / "x", "--model", m)
    assert code == 2 and "recipe 'robust' has no setting l2_reg" in err and "pixel" in err
    code, _, err = run(capsys, "featvis", "relu2", "-o", files / "x", "--model", m)
    assert code == 2 and "LAYER:CHANNEL" in err


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
