"""End-to-end demo: run_demo in quick mode on tiny models (and on the shipped ones when
they are in the package), results.json numbers, PNGs, the HTML report and the CLI."""
from __future__ import annotations

import base64
import io
import json
import os
import re
import sys

import numpy as np
import pytest
from demo_models import (CAPTIONER_HISTORY, CLASS_NAMES, CNN_HISTORY, WORDS, photo, shipped_models_present,
                         tiny_captioner, tiny_cnn, use_tiny_models)
from PIL import Image

from gradscope.cli import main
from gradscope.demo import QUICK, load_demo_images, run_demo
from gradscope.demo.analyses import captioner_history, inversion_layers, pick_classes, pick_fooling_target
from gradscope.errors import DataError, GradscopeError
from gradscope.imageio import save_image
from gradscope.methods.class_visualization import DEFAULT_RECIPE

SECTIONS = ["efficientnet", "captions", "explain", "classification", "saliency", "fooling", "classvis", "inversion",
            "deepdream", "training"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One quick demo on scikit-image's photos with the tiny models."""
    mp = pytest.MonkeyPatch()
    use_tiny_models(mp)
    events = []
    try:
        out = tmp_path_factory.mktemp("demo")
        result = run_demo(out, seed=3, progress=events.append, quick=True)
    finally:
        mp.undo()
    return result, events


def _png_paths(results) -> list:
    return [p for s in results["sections"].values() for p in s["images"]]


def _check_pngs(out_dir, results):
    """Every PNG named in results.json exists and decodes; no other PNG was written."""
    referenced = _png_paths(results)
    assert referenced and len(set(referenced)) == len(referenced)
    for rel in referenced:
        path = os.path.join(out_dir, rel)
        assert os.path.isfile(path), rel
        with Image.open(path) as im:
            assert im.format == "PNG" and im.size[0] > 0
    on_disk = {f"images/{f}" for f in os.listdir(os.path.join(out_dir, "images"))}
    assert on_disk == set(referenced)


def _img_sources(html) -> list:
    return re.findall(r'<img [^>]*src="([^"]*)"', html)


def test_demo_writes_results_pngs_and_report(demo):
    result, _ = demo
    with open(result.results_path, encoding="utf-8") as f:
        results = json.load(f)
    assert results == json.loads(json.dumps(result.results))
    assert list(results["sections"]) == SECTIONS
    assert all(s["error"] is None for s in results["sections"].values()), results["sections"]
    assert [im["name"] for im in results["images"]] == ["chelsea", "coffee", "astronaut", "rocket"]
    assert results["quick"] is True and results["seed"] == 3
    assert results["models"]["cnn"]["loaded"] and results["models"]["captioner"]["loaded"]
    _check_pngs(result.out_dir, results)
    assert result.report_path == os.path.join(result.out_dir, "index.html")


def test_classification_and_caption_numbers(demo):
    result, _ = demo
    sections = result.results["sections"]
    for item in sections["classification"]["numbers"]["images"]:
        probs = [t["prob"] for t in item["top"]]
        assert len(probs) == 5 and probs == sorted(probs, reverse=True)
        assert 0 < sum(probs) <= 1 + 1e-9
        assert all(t["name"] == CLASS_NAMES[t["class"]] for t in item["top"])
    caps = sections["captions"]["numbers"]
    assert caps["beam_size"] == QUICK.beam_size and len(caps["images"]) == 4
    for item in caps["images"]:
        assert isinstance(item["greedy"], str) and isinstance(item["beam"], str)
        assert item["greedy_log_prob"] <= 0 and item["beam_log_prob"] <= 0
        assert item["greedy"] and set(item["greedy"].split()) <= set(WORDS)


def test_method_numbers(demo):
    result, _ = demo
    s = result.results["sections"]
    for item in s["saliency"]["numbers"]["smoothgrad"]["images"]:
        assert item["map_max"] >= item["map_mean"] >= 0
    assert s["saliency"]["numbers"]["smoothgrad"]["params"]["n_samples"] == QUICK.smoothgrad_samples
    fool = s["fooling"]["numbers"]["images"][0]
    assert fool["success"] == (fool["final_class"] == fool["target"])
    assert 0 <= fool["iterations"] <= QUICK.fool_max_iter
    assert fool["l2"] >= fool["linf"] >= 0
    assert fool["target"] != fool["original_class"]
    classes = s["classvis"]["numbers"]["classes"]
    assert [c["target_name"] for c in classes] == [CLASS_NAMES[2], CLASS_NAMES[3]]  # goldfish, school bus
    assert all(len(c["prob_history"]) == QUICK.classvis_iterations for c in classes)
    new = s["classvis"]["numbers"]["new_recipe"]  # the default recipe beside the 2016 one
    assert new["params"]["recipe"] == DEFAULT_RECIPE and new["params"]["iterations"] == QUICK.classvis_new_iterations
    assert [c["target_name"] for c in new["classes"]] == [CLASS_NAMES[2]][:QUICK.classvis_new_classes]
    assert len(s["classvis"]["images"]) >= len(classes) + len(new["classes"])
    layers = s["inversion"]["numbers"]["layers"]
    assert list(layers) == list(inversion_layers(tiny_cnn()))
    assert all(len(v["distance_history"][0]) == QUICK.inversion_iterations for v in layers.values())
    dream = s["deepdream"]["numbers"]
    assert len(dream["activation_norm"][0]) == QUICK.dream_iterations  # total steps over the octaves
    assert s["training"]["numbers"] == {"cnn": CNN_HISTORY, "captioner": CAPTIONER_HISTORY}
    assert len(s["training"]["images"]) == 4  # loss and metrics of each model


def test_report_is_self_contained_and_escaped(demo):
    result, _ = demo
    with open(result.report_path, encoding="utf-8") as f:
        html = f.read()
    sources = _img_sources(html)
    assert len(sources) >= len(_png_paths(result.results))
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).verify()
    assert not re.search(r'(src|href)="(https?:|//)', html)
    assert "<script" not in html.lower()
    # a class name with markup in it (in every top-5 list) is shown as text
    assert "a &lt;b&gt;bold&lt;/b&gt; &amp; odd class" in html and "<b>bold" not in html
    for key in SECTIONS:
        assert f'id="{key}"' in html


def test_progress_events(demo):
    _, events = demo
    done = [e["section"] for e in events if e["status"] == "done"]
    assert done == SECTIONS
    iters = [e for e in events if e["section"] == "inversion" and e["status"] == "iteration"]
    assert [e["iteration"] for e in iters] == list(range(1, 2 * QUICK.inversion_iterations + 1))


def test_same_seed_same_numbers(demo, tmp_path, monkeypatch):
    use_tiny_models(monkeypatch)
    again = run_demo(tmp_path, seed=3, quick=True)
    first = demo[0].results["sections"]
    for key in SECTIONS:
        assert again.results["sections"][key]["numbers"] == first[key]["numbers"], key


def test_own_images_with_odd_names(tmp_path, monkeypatch):
    use_tiny_models(monkeypatch)
    (tmp_path / "x").mkdir()
    paths = [tmp_path / "a <b>&.png", tmp_path / "x" / "a <b>&.png"]
    for i, p in enumerate(paths):
        save_image(p, photo(i))
    result = run_demo(tmp_path / "out", images=[str(p) for p in paths], quick=True)
    names = [im["name"] for im in result.results["images"]]
    assert names == ["a <b>&", "a <b>&_2"]
    _check_pngs(result.out_dir, result.results)
    html = open(result.report_path, encoding="utf-8").read()
    assert "a &lt;b&gt;&amp;_2" in html and "a <b>&" not in html


def test_missing_models_are_reported_not_fatal(tmp_path, monkeypatch):
    use_tiny_models(monkeypatch, cnn=False, captioner=False)
    img = tmp_path / "p.png"
    save_image(img, photo(0))
    result = run_demo(tmp_path / "out", images=[str(img)], quick=True)
    sections = result.results["sections"]
    assert all(sections[k]["error"] for k in SECTIONS)
    assert "could not be loaded" in sections["saliency"]["error"]
    cnn = result.results["models"]["cnn"]
    assert not cnn["loaded"] and cnn["error"] == "the shipped CNN is missing (test)"
    html = open(result.report_path, encoding="utf-8").read()
    assert "cnn missing:" in html and "the shipped captioner is missing (test)" in html


def test_missing_captioner_only_skips_captions(tmp_path, monkeypatch):
    use_tiny_models(monkeypatch, captioner=False)
    img = tmp_path / "p.png"
    save_image(img, photo(1))
    result = run_demo(tmp_path / "out", images=[str(img)], quick=True)
    errors = {k: s["error"] for k, s in result.results["sections"].items() if s["error"]}
    assert set(errors) == {"captions", "explain"}
    assert result.results["sections"]["training"]["numbers"]["cnn"] == CNN_HISTORY
    assert "captioner" in result.results["sections"]["training"]["summary"][0]


def _synthetic_feature_captioner():
    model = tiny_captioner()
    model.info["features"] = "synthetic"
    return model


@pytest.mark.parametrize("make, message", [(lambda: tiny_captioner(input_dim=5), "takes 5-D image features"),
                                           (_synthetic_feature_captioner, "(synthetic)")])
def test_captioner_feature_mismatch_is_a_clear_error(tmp_path, monkeypatch, make, message):
    import gradscope.captioning

    use_tiny_models(monkeypatch)
    monkeypatch.setattr(gradscope.captioning, "load_pretrained", lambda dtype=None: make())
    img = tmp_path / "p.png"
    save_image(img, photo(2))
    result = run_demo(tmp_path / "out", images=[str(img)], quick=True)
    error = result.results["sections"]["captions"]["error"]
    assert message in error and "not trained together" in error
    assert result.results["sections"]["saliency"]["error"] is None


def test_captioner_history_formats():
    model = tiny_captioner(history=False)
    assert captioner_history(model) == []
    model.info["history"] = [{"epoch": 1, "train_loss": 2.0, "Bleu_4": 0.1}]
    assert captioner_history(model) == [{"epoch": 1, "train_loss": 2.0, "Bleu_4": 0.1}]
    del model.info["history"]
    model.info["epochs"] = [{"epoch": 1, "train_loss": 2.0, "learning_rate": 0.001, "seconds": 3.0,
                             "val": {"Bleu_4": 0.2}}]  # TrainResult.epochs records
    assert captioner_history(model) == [{"epoch": 1, "train_loss": 2.0, "learning_rate": 0.001, "seconds": 3.0,
                                         "Bleu_4": 0.2}]


def test_bad_inputs(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="not found"):
        load_demo_images([str(tmp_path / "nope.png")])
    with pytest.raises(GradscopeError, match="no images"):
        load_demo_images([])
    (tmp_path / "file").write_text("x")
    with pytest.raises(GradscopeError, match="not a folder"):
        run_demo(tmp_path / "file", images=[str(tmp_path / "nope.png")])
    monkeypatch.setitem(sys.modules, "skimage", None)  # as if scikit-image were not installed
    monkeypatch.setitem(sys.modules, "skimage.data", None)
    with pytest.raises(DataError, match=r"pip install scikit-image.*--images"):
        load_demo_images()


def test_class_picks_fall_back_when_preferred_are_unknown():
    model = tiny_cnn()
    assert pick_classes(model, ["goldfish", "no such class", "tabby"], 3) == [2, 0, 1]
    assert pick_classes(model, [], 2) == [0, 1]
    assert pick_fooling_target(model, 3, ["school bus", "espresso"]) == 1
    assert pick_fooling_target(model, 1, ["no such class"]) == (1 + 2) % 5


def test_cli_demo(tmp_path, monkeypatch, capsys):
    use_tiny_models(monkeypatch)
    img = tmp_path / "cat.png"
    save_image(img, photo(3))
    out = tmp_path / "report"
    assert main(["demo", "-o", str(out), "--images", str(img), "--seed", "1", "--quick"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("model: EfficientNet-Lite0, ImageNet-1k, 224 px")
    assert text.index("== EfficientNet-Lite0") < text.index("== Top-5 classification (TinyImageNet CNN")
    assert "cat: " in text and "== Fooling image" in text and "(beam, log p -" in text
    assert f"report: {out / 'index.html'}" in text
    assert json.loads((out / "results.json").read_text())["seed"] == 1
    argv = ["demo", "-o", str(out), "--images", str(img), "--seed", "2", "--quick"]
    assert main(argv) == 2 and "not empty" in capsys.readouterr().err
    assert main(argv + ["--overwrite"]) == 0
    assert json.loads((out / "results.json").read_text())["seed"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.png", "report"]


def test_demo_on_shipped_models(tmp_path):
    """The real shipped models when the package has them; otherwise the demo must say
    clearly that they are missing."""
    result = run_demo(tmp_path, seed=0, quick=True)
    sections = result.results["sections"]
    if not shipped_models_present():
        assert not result.results["models"]["cnn"]["loaded"] or not result.results["models"]["captioner"]["loaded"]
        assert any(s["error"] and "could not be loaded" in s["error"] for s in sections.values())
        return
    assert all(s["error"] is None for s in sections.values()), {k: s["error"] for k, s in sections.items()}
    top = {im["image"]: [t["name"] for t in im["top"]] for im in sections["classification"]["numbers"]["images"]}
    assert any("projectile" in n for n in top["rocket"]), top["rocket"]  # the cat photo comes out a golden retriever at 64x64
    assert any("espresso" in n for n in top["coffee"]), top["coffee"]
    assert all(item["beam"].strip() for item in sections["captions"]["numbers"]["images"])
    assert sections["training"]["numbers"]["cnn"], "the shipped CNN's config should hold its training history"
    _check_pngs(result.out_dir, result.results)
    assert np.isfinite(result.seconds)
