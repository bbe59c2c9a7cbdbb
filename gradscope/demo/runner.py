"""`run_demo`: every part of gradscope on a few real photographs, written to a folder as
PNGs, `results.json` and a self-contained `index.html`.

Each section is one small function that computes (gradscope.demo.analyses) and then
presents (gradscope.demo.presenters); the runner saves what they return. A missing
shipped model turns the sections that need it into a clear note, not a crash.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field

import numpy as np

from gradscope.demo import analyses as an
from gradscope.demo import presenters as pr
from gradscope.demo.explain_section import explain_words
from gradscope.demo.images import load_demo_images, unique_name
from gradscope.demo.section import Section
from gradscope.demo.settings import CLASSVIS_CLASSES, FOOLING_TARGETS, FULL, QUICK
from gradscope.errors import GradscopeError
from gradscope.fileio import atomic_path, save_json

__all__ = ["DemoResult", "run_demo", "load_models", "IMAGE_DIR"]

IMAGE_DIR = "images"  # PNGs go to <out_dir>/images/


@dataclass
class DemoResult:
    """report_path: index.html; results_path: results.json; results: its contents."""
    out_dir: str
    report_path: str
    results_path: str
    sections: list
    results: dict
    seconds: float


@dataclass
class Models:
    """The shipped models, or None with the reason they could not be loaded."""
    cnn: object = None
    cnn_error: str = ""
    captioner: object = None
    captioner_error: str = ""


@dataclass
class _Context:
    photos: list
    models: Models
    settings: object
    seed: int
    progress: object = None
    state: dict = field(default_factory=dict)  # shared between sections: model inputs, predictions


def load_models() -> Models:
    """Load the shipped CNN and captioner (looked up at call time, so tests can swap them)."""
    import gradscope.captioning as captioning
    import gradscope.cnn as cnn

    models = Models()
    try:
        models.cnn = cnn.load_pretrained()
    except GradscopeError as e:
        models.cnn_error = str(e)
    try:
        models.captioner = captioning.load_pretrained()
    except GradscopeError as e:
        models.captioner_error = str(e)
    return models


# ---------------------------------------------------------------- sections

def _inputs(ctx):
    """(model inputs (N, 3, S, S), the uint8 images the model sees) of the photos, computed once."""
    if "x" not in ctx.state:
        cnn = ctx.models.cnn
        ctx.state["x"] = cnn.preprocess([p.pixels for p in ctx.photos])
        ctx.state["seen"] = cnn.deprocess(ctx.state["x"])
    return ctx.state["x"], ctx.state["seen"]


def _classification(ctx, callback) -> Section:
    x, seen = _inputs(ctx)
    topk = an.top_k(ctx.models.cnn, x, ctx.settings.top_k)
    ctx.state["predicted"] = topk.classes[:, 0]
    return pr.classification_section(ctx.photos, seen, topk, ctx.models.cnn.class_names)


def _captions(ctx, callback) -> Section:
    if ctx.models.captioner is None:
        raise GradscopeError("skipped: the shipped captioner could not be loaded (see Models)")
    caps = an.caption_images(ctx.models.captioner, ctx.models.cnn, [p.pixels for p in ctx.photos],
                             ctx.settings.beam_size, ctx.settings.max_caption_length)
    return pr.captions_section(ctx.photos, caps, [f"input_{p.name}" for p in ctx.photos])


def _saliency(ctx, callback) -> Section:
    from gradscope.cnn.preprocessing import center_crop_resize

    x, _ = _inputs(ctx)
    vanilla, smooth = an.attributions(ctx.models.cnn, x, ctx.settings, ctx.seed)
    crops = np.stack([center_crop_resize(p.pixels, ctx.settings.display_size) for p in ctx.photos])
    faith = an.faithfulness(ctx.models.cnn, x, vanilla.classes, ctx.settings, ctx.seed)
    return pr.saliency_section(ctx.photos, crops, vanilla, smooth, faith)


def _fooling(ctx, callback) -> Section:
    x, _ = _inputs(ctx)
    cnn = ctx.models.cnn
    predicted = int(np.argmax(cnn.scores(x[:1]), axis=1)[0])
    target = an.pick_fooling_target(cnn, predicted, FOOLING_TARGETS)
    result = an.fooling(cnn, x, target, ctx.settings, callback)
    return pr.fooling_section(ctx.photos[0].name, result)


def _classvis(ctx, callback) -> Section:
    classes = an.pick_classes(ctx.models.cnn, CLASSVIS_CLASSES, ctx.settings.classvis_classes)
    return pr.classvis_section(*an.class_visualizations(ctx.models.cnn, classes, ctx.settings, ctx.seed, callback))


def _inversion(ctx, callback) -> Section:
    x, _ = _inputs(ctx)
    layers = an.inversion_layers(ctx.models.cnn)
    results = an.inversions(ctx.models.cnn, x, layers, ctx.settings, ctx.seed, callback)
    return pr.inversion_section(ctx.photos[0].name, results)


def _deepdream(ctx, callback) -> Section:
    cnn = ctx.models.cnn
    x = an.dream_input(cnn, ctx.photos[0].pixels, ctx.settings.dream_size)
    result = an.dream(cnn, x, an.dream_layer(cnn), ctx.settings, ctx.seed, callback)
    return pr.dream_section(ctx.photos[0].name, result)


def _efficientnet(ctx, callback) -> Section:
    from gradscope.demo.efficientnet import efficientnet_section

    return efficientnet_section(ctx.photos, ctx.seed, quick=ctx.settings is QUICK, callback=callback)


def _training(ctx, callback) -> Section:
    m, notes = ctx.models, []
    cnn_hist = an.cnn_history(m.cnn) if m.cnn is not None else []
    cap_hist = an.captioner_history(m.captioner) if m.captioner is not None else []
    for model, hist, name in ((m.cnn, cnn_hist, "CNN"), (m.captioner, cap_hist, "captioner")):
        if model is None:
            notes.append(f"no {name} curves: the shipped {name} could not be loaded (see Models)")
        elif not hist:
            notes.append(f"the shipped {name} holds no training history")
    if m.cnn is not None and an.soup_size(m.cnn) and cnn_hist:
        notes.append(f"the CNN averages the weights of {an.soup_size(m.cnn)} networks (a model soup); "
                     "its curves are the longest member's")
    return pr.training_section(cnn_hist, cap_hist, notes)


# key, title, function, needs the CNN, iterations reported by the function's callback
# EfficientNet-Lite0 (the image commands' default model) leads; the TinyImageNet CNN (the course's
# model) follows
COURSE = " (TinyImageNet CNN, 64 px)"
SECTIONS = [
    ("efficientnet", "EfficientNet-Lite0 (ImageNet, 224 px)", _efficientnet, False, lambda s: 0),
    ("captions", "Captions", _captions, True, lambda s: 0),
    ("explain", "Why each word: caption saliency", explain_words, False, lambda s: 0),
    ("classification", "Top-5 classification" + COURSE, _classification, True, lambda s: 0),
    ("saliency", "Saliency maps" + COURSE, _saliency, True, lambda s: 0),
    ("fooling", "Fooling image" + COURSE, _fooling, True, lambda s: s.fool_max_iter),
    ("classvis", "Class visualisations" + COURSE, _classvis, True,
     lambda s: s.classvis_iterations + s.classvis_new_iterations),
    ("inversion", "Feature inversion" + COURSE, _inversion, True, lambda s: 2 * s.inversion_iterations),
    ("deepdream", "DeepDream" + COURSE, _deepdream, True, lambda s: s.dream_iterations),
    ("training", "Training curves", _training, False, lambda s: 0),
]


def _run_section(ctx, index, spec) -> Section:
    """Run one section, timing it; a GradscopeError (a missing model, say) becomes its error note."""
    key, title, fn, needs_cnn, iterations = spec
    total = iterations(ctx.settings)
    _emit(ctx.progress, key, title, index, "start", 0, total)
    offset = {"last": 0, "base": 0}

    def callback(iteration, info):
        if iteration < offset["last"]:  # a method ran again (inversion at a second layer)
            offset["base"] += offset["last"]
        offset["last"] = iteration
        _emit(ctx.progress, key, title, index, "iteration", offset["base"] + iteration, total)

    t0 = time.perf_counter()
    try:
        if needs_cnn and ctx.models.cnn is None:
            raise GradscopeError("skipped: the shipped CNN could not be loaded (see Models)")
        section = fn(ctx, callback)
        section.title = title  # which model it shows
    except GradscopeError as e:
        section = Section(key, title, pr.DESCRIPTIONS.get(key, ""), error=str(e))
    section.seconds = time.perf_counter() - t0
    _emit(ctx.progress, key, title, index, "done", total, total)
    return section


def _emit(progress, key, title, index, status, iteration, iterations):
    if progress is not None:
        progress({"section": key, "title": title, "index": index, "sections": len(SECTIONS),
                  "status": status, "iteration": iteration, "iterations": iterations})


# ---------------------------------------------------------------- saving

def _file_stem(name: str, used: set) -> str:
    return unique_name(re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "image", used)


def save_visuals(section: Section, out_dir: str, used: set) -> None:
    """Write each Visual of a section as <out_dir>/images/<name>.png and set its path."""
    from gradscope.figures import save_figure
    from gradscope.imageio import save_image

    for v in section.visuals:
        rel = f"{IMAGE_DIR}/{_file_stem(v.name, used)}.png"
        dest = os.path.join(out_dir, *rel.split("/"))
        if isinstance(v.image, np.ndarray):
            save_image(dest, v.image)
        else:
            save_figure(v.image, dest, dpi=100)
        v.path = rel


def _model_record(model, error, path) -> dict:
    return {"loaded": model is not None, "error": error or None, "path": path,
            "description": repr(model) if model is not None else None}


def _results(ctx, sections, seconds) -> dict:
    import gradscope
    import gradscope.captioning
    import gradscope.cnn

    m = ctx.models
    return {"format": "gradscope-demo/1", "gradscope_version": gradscope.__version__, "seed": ctx.seed,
            "quick": ctx.settings is QUICK, "settings": ctx.settings.to_dict(), "seconds": round(seconds, 3),
            "report": "index.html",
            "images": [{"name": p.name, "source": p.source, "description": p.description,
                        "shape": list(p.pixels.shape)} for p in ctx.photos],
            "models": {"cnn": _model_record(m.cnn, m.cnn_error, gradscope.cnn.pretrained_path() + ".json"),
                       "captioner": _model_record(m.captioner, m.captioner_error,
                                                  ",".join(gradscope.captioning.PRETRAINED_FILES))},
            "sections": {s.key: s.to_dict() for s in sections}}


def run_demo(out_dir, images=None, seed: int = 0, progress=None, quick: bool = False) -> DemoResult:
    """Run every demo section and write the report.

    Args:
        out_dir: output folder (created); gets index.html, results.json and images/*.png.
        images: image file paths; None = scikit-image's sample photos (needs scikit-image).
        seed: seeds every random choice (noise, jitter), so a run is reproducible.
        progress: optional callable(event dict: section, title, index, sections, status
            ('start' | 'iteration' | 'done'), iteration, iterations).
        quick: a few iterations per method (seconds instead of minutes; for tests).
    Returns:
        DemoResult with the report's path.
    """
    from gradscope.demo.report import build_report

    t0 = time.perf_counter()
    out_dir = os.fspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise GradscopeError(f"output path {out_dir!r} exists and is not a folder")
    ctx = _Context(load_demo_images(images), load_models(), QUICK if quick else FULL, int(seed), progress)
    sections, used = [], set()
    for index, spec in enumerate(SECTIONS):
        section = _run_section(ctx, index, spec)
        save_visuals(section, out_dir, used)
        sections.append(section)
    results = _results(ctx, sections, time.perf_counter() - t0)
    results_path = os.path.join(out_dir, "results.json")
    save_json(results_path, results)
    report_path = os.path.join(out_dir, "index.html")
    html = build_report(sections, results, out_dir)
    with atomic_path(report_path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(html)
    return DemoResult(out_dir, report_path, results_path, sections, results, time.perf_counter() - t0)
