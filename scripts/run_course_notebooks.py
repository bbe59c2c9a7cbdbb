"""Run the CS231n (2016) assignment-3 notebooks against gradscope.course.

    python scripts/run_course_notebooks.py NOTEBOOK_DIR --tiny-imagenet DIR [--coco DIR]
           [--make-coco DIR] [--course-h5 FILE] [--answers] [--only NAME ...] [--json OUT]

NOTEBOOK_DIR holds RNN_Captioning.ipynb, LSTM_Captioning.ipynb, ImageGradients.ipynb,
ImageGeneration.ipynb (and kitten.jpg, sky.jpg); nothing of them is stored in gradscope.
Each code cell is run in order, in one namespace per notebook, after exactly these
steps: IPython magics (%...) dropped, 2to3, `cs231n.` imports -> `gradscope.course.`,
the course's data paths -> the directories given here (the course's pretrained_model.h5
-> --course-h5, or None = the shipped model). matplotlib runs with the Agg backend.
Two environment shims, not cell edits: scipy.misc.imread/imresize (removed from SciPy)
via Pillow, and $GRADSCOPE_DATA pointing load_coco_data's default at the COCO directory.
--answers replaces the assignment's unfilled functions (TODO bodies) with gradscope's
own answers (scripts/course_answers.py) after the cell defining them.
Prints per cell: passed / failed (the error) / skipped, the cell's output next to the
notebook's saved output.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shutil
import signal
import sys
import time
import traceback
import types
import warnings

NOTEBOOKS = ["RNN_Captioning", "LSTM_Captioning", "ImageGradients", "ImageGeneration"]


def code_cells(path):
    """[(cell number, source, saved output text)] of a notebook's code cells."""
    with open(path, encoding="utf-8") as f:
        nb = json.load(f)
    cells = nb.get("cells") or nb["worksheets"][0]["cells"]
    out = []
    for i, c in enumerate(cells):
        if c["cell_type"] != "code":
            continue
        src = "".join(c.get("source") or c.get("input") or [])
        saved = "".join("".join(o.get("text") or []) for o in c.get("outputs", []) if o.get("output_type") == "stream")
        out.append((i, src, saved))
    return out


def to_python3(src):
    """Drop IPython magics, then 2to3."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from lib2to3 import refactor
    lines = [line for line in src.splitlines() if not line.lstrip().startswith(("%", "!"))]
    tool = refactor.RefactoringTool(refactor.get_fixers_from_package("lib2to3.fixes"))
    return str(tool.refactor_string("\n".join(lines) + "\n", "<cell>"))


def redirect(src, paths):
    """cs231n imports -> gradscope.course; the course's data paths -> ours."""
    src = re.sub(r"\b(from|import)\s+cs231n\.", r"\1 gradscope.course.", src)
    for course_path, ours in paths.items():
        src = src.replace(repr(course_path), repr(ours)).replace(f'"{course_path}"', repr(ours))
    return src


def install_shims():
    """scipy.misc.imread / imresize (gone from SciPy) through Pillow."""
    import numpy as np
    from PIL import Image

    import scipy

    misc = types.ModuleType("scipy.misc")
    misc.imread = lambda path: np.asarray(Image.open(path).convert("RGB"))
    misc.imresize = lambda img, size: np.asarray(Image.fromarray(np.asarray(img)).resize(
        (int(size[1]), int(size[0])), Image.BILINEAR))
    sys.modules["scipy.misc"] = misc
    scipy.misc = misc


class CellTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise CellTimeout("cell ran past the time limit")


def run_notebook(name, cells, paths, answers, timeout):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.show = lambda *a, **k: plt.close("all")
    ns = {"__name__": "__main__"}
    results = []
    for number, src, saved in cells:
        code = redirect(to_python3(src), paths)
        buf = io.StringIO()
        t0 = time.time()
        status, error = "passed", ""
        signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(timeout)
        try:
            with contextlib.redirect_stdout(buf):
                exec(compile(code, f"<{name} cell {number}>", "exec"), ns)
        except Exception as e:  # noqa: BLE001 - every failure is reported, none stops the run
            status = "failed"
            error = f"{type(e).__name__}: {e}".splitlines()[0][:300]
            frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename.startswith("<")]
            if frames:
                error += f" (at {frames[-1].filename} line {frames[-1].lineno})"
        finally:
            signal.alarm(0)
        if answers is not None:
            replaced = answers.install(ns)
            if replaced:
                error = (error + "; " if error else "") + f"answers installed: {', '.join(replaced)}"
        results.append({"cell": number, "status": status, "error": error, "seconds": round(time.time() - t0, 1),
                        "output": buf.getvalue(), "saved_output": saved})
        plt.close("all")
        print(f"[{name} cell {number}] {status} ({time.time() - t0:.1f} s) {error}", file=sys.stderr, flush=True)
    return results


def make_coco(out_dir, coco_root, n_val_images=9):
    """A small COCO captioning directory in the course's layout from the real local files:
    the val2014 photos in coco_root/val2014 (their real captions, encoded with the course's
    vocabulary; features from gradscope's shipped CNN, standardised; file:// urls), split into
    train and val.
    Train keeps one caption per image: the course's max_train=50 drew 50 of 400,135 captions,
    almost surely of 50 different images, which a model can then memorise."""
    import h5py
    import numpy as np

    from gradscope.captioning.features import CNNFeatures
    from gradscope.data.coco import load_coco_annotations
    from gradscope.data.vocab import encode
    from gradscope.imageio import load_image
    from PIL import Image

    photos = sorted(f for f in os.listdir(os.path.join(coco_root, "val2014")) if f.endswith(".jpg"))
    ann = load_coco_annotations(os.path.join(coco_root, "captions_val2014.json"))
    refs = dict(zip(ann.file_names, ann.references))
    photos = [p for p in photos if p in refs]
    with open(os.path.join(coco_root, "coco_captioning", "coco2014_vocab.json")) as f:
        vocab = json.load(f)
    os.makedirs(out_dir, exist_ok=True)
    shutil.copy(os.path.join(coco_root, "coco_captioning", "coco2014_vocab.json"), out_dir)
    extractor = CNNFeatures()
    splits = {"train": photos[:-n_val_images], "val": photos[-n_val_images:]}
    stats = None  # the course's PCA features are centred: centre and scale ours by the train statistics
    with h5py.File(os.path.join(out_dir, "coco2014_captions.h5"), "w") as cap:
        for split, files in splits.items():
            images = np.stack([np.asarray(Image.fromarray(load_image(os.path.join(coco_root, "val2014", p)))
                                          .resize((64, 64), Image.BILINEAR)) for p in files])
            feats = extractor(images).astype(np.float64)
            stats = stats or (feats.mean(axis=0), feats.std(axis=0) + 1e-6)
            feats = ((feats - stats[0]) / stats[1]).astype(np.float32)
            for suffix in ("_pca", ""):
                with h5py.File(os.path.join(out_dir, f"{split}2014_vgg16_fc7{suffix}.h5"), "w") as f:
                    f["features"] = feats
            tokens = [refs[p][:1] if split == "train" else refs[p] for p in files]
            cap[f"{split}_captions"] = encode([t for ts in tokens for t in ts], vocab["word_to_idx"], 15)
            cap[f"{split}_image_idxs"] = np.repeat(np.arange(len(files)), [len(ts) for ts in tokens]).astype(np.int32)
            with open(os.path.join(out_dir, f"{split}2014_urls.txt"), "w") as f:
                f.writelines("file://" + os.path.abspath(os.path.join(coco_root, "val2014", p)) + "\n" for p in files)
    return out_dir


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("notebook_dir")
    ap.add_argument("--tiny-imagenet", required=True, help="TinyImageNet-100-A directory")
    ap.add_argument("--coco", help="a COCO captioning directory in the course's layout")
    ap.add_argument("--make-coco", nargs=2, metavar=("COCO_ROOT", "OUT_DIR"),
                    help="first make a small course-layout COCO directory from COCO_ROOT's local files")
    ap.add_argument("--course-h5", help="the course's pretrained_model.h5 (default: the shipped model)")
    ap.add_argument("--answers", action="store_true", help="fill the assignment's TODO functions with ours")
    ap.add_argument("--only", nargs="*", default=NOTEBOOKS)
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    ap.add_argument("--json", help="write the per-cell results here")
    args = ap.parse_args(argv)
    coco = args.coco
    if args.make_coco:
        coco = make_coco(args.make_coco[1], args.make_coco[0])
    if coco:
        os.environ["GRADSCOPE_DATA"] = os.path.abspath(coco)  # load_coco_data()'s default directory
    paths = {"cs231n/datasets/tiny-imagenet-100-A": os.path.abspath(args.tiny_imagenet),
             "cs231n/datasets/pretrained_model.h5": os.path.abspath(args.course_h5) if args.course_h5 else None,
             "cs231n/datasets/coco_captioning": os.path.abspath(coco) if coco else None}
    install_shims()
    answers = None
    if args.answers:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import course_answers as answers
    notebook_dir = os.path.abspath(args.notebook_dir)
    os.chdir(notebook_dir)  # the notebooks read kitten.jpg and sky.jpg from their folder
    report = {}
    for name in args.only:
        cells = code_cells(os.path.join(notebook_dir, name + ".ipynb"))
        report[name] = run_notebook(name, cells, paths, answers, args.timeout)
    for name, results in report.items():
        passed = sum(r["status"] == "passed" for r in results)
        print(f"== {name}: {len(results)} code cells, {passed} passed, {len(results) - passed} failed")
        for r in results:
            print(f"-- cell {r['cell']}: {r['status']} ({r['seconds']} s) {r['error']}")
            if r["output"].strip() or r["saved_output"].strip():
                print("   ours:  " + r["output"].strip().replace("\n", "\n          ")[:3000])
                print("   saved: " + r["saved_output"].strip().replace("\n", "\n          ")[:3000])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
