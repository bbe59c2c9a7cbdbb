"""Legibility of class visualisations, judged by measures the optimisation never sees.

    python scripts/featvis_eval.py render --out DIR [--models lite0,tiny] [--recipes lucid,pixel] [--set heldout]
    python scripts/featvis_eval.py report --out DIR

render: one image per (model, recipe, class) with the library defaults (what the CLI runs; a
name in VARIANTS is a recipe with some settings changed: the candidates tried on TUNING),
saved as DIR/<model>/<recipe>/<wnid>.png with a .json of its p(target) and run time; a
killed run resumes (existing images are skipped).

report: for each model and recipe, over the classes rendered by every recipe of that model:
- edits: mean p(target) on the generating network after each of a fixed set of ordinary
  edits (JPEG quality 50; a seeded random 80% crop resized back; Gaussian blur sigma 1 px;
  grey-scale), averaged over edits and classes;
- transfer: whether the other network recognises the class: EfficientNet-Lite0 images
  downsampled to 64 px and classified by the TinyImageNet-100-A CNN (top-5 among its 100
  classes), and TinyImageNet images upsampled to 224 px for Lite0 (top-5 among 1000).

Classes: the TinyImageNet-100-A wnids (all ImageNet classes). TUNING were used to look at
images while choosing the recipe; HELDOUT (8, drawn once with a fixed seed from the others)
were not looked at before the measurement; HELDOUT2 (8 more, seed 23, outside both) was drawn
after it, to see whether its margins hold; HELDOUT3 (8 more, seed 24, outside all three) after that.
TUNING2 (8 more, seed 25, outside all of those) is for choosing between VARIANTS on the transfer
measure (the other network's mean log-probability of the class, a continuous form of its top-5
count); HELDOUT4 (16 more, seed 26, outside everything above) measures the chosen recipe once.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time

import numpy as np
from PIL import Image

from gradscope.cnn import load_pretrained
from gradscope.fileio import atomic_path
from gradscope.imageio import load_image, save_image
from gradscope.layers.core import softmax
from gradscope.methods import visualize_class
from gradscope.methods.regularizers import gaussian_blur

MODELS = {"lite0": "efficientnet_lite0", "tiny": "tinyimagenet100a"}
TUNING = ["n07749582", "n04146614", "n01443537", "n02279972"]  # lemon, school bus, goldfish, monarch
# candidates tried on TUNING while choosing the default recipe: name -> (recipe, settings over its defaults)
VARIANTS = {"lucid_geo": ("lucid", {"flip": 0.5, "scale_jitter": 0.2}),
            "lucid_geo_colour": ("lucid", {"flip": 0.5, "scale_jitter": 0.2, "colour_jitter": 0.2}),
            # tried on TUNING2 for the transfer measure: smoother spectrum, wider rescaling, coarser parameterisation
            "robust_decay15": ("robust", {"decay_power": 1.5}),
            "robust_scale40": ("robust", {"scale_jitter": 0.4}),
            "robust_param96": ("robust", {"param_size": 96})}


def atomic_write_text(path, text) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)


def _drawn(seed: int, k: int, before: tuple) -> list:
    """k wnids drawn with `seed` from the TinyImageNet-100-A classes outside TUNING and the sets `before`."""
    seen = set(TUNING).union(*(SETS[name]() for name in before))
    wnids = [w for w in load_pretrained("tinyimagenet100a").wnids if w not in seen]
    return sorted(np.random.default_rng(seed).choice(wnids, size=k, replace=False).tolist())


def heldout() -> list:
    """The first held-out set: 8 wnids drawn with seed 22 from the classes outside TUNING."""
    return _drawn(22, 8, ())


SETS = {"heldout": heldout, "tuning": lambda: TUNING,
        # each drawn after the measurement before it, outside TUNING and the sets named
        "heldout2": lambda: _drawn(23, 8, ("heldout",)),
        "heldout3": lambda: _drawn(24, 8, ("heldout", "heldout2")),
        "tuning2": lambda: _drawn(25, 8, ("heldout", "heldout2", "heldout3")),
        "heldout4": lambda: _drawn(26, 16, ("heldout", "heldout2", "heldout3", "tuning2"))}


def _class_index(model, wnid) -> int:
    return list(model.wnids).index(wnid)


def render(out, models, recipes, wnids, log) -> None:
    for key in models:
        model = load_pretrained(MODELS[key])
        for recipe in recipes:
            folder = os.path.join(out, key, recipe)
            os.makedirs(folder, exist_ok=True)
            for w in wnids:
                png = os.path.join(folder, f"{w}.png")
                if os.path.exists(png):
                    continue
                t, c = time.time(), time.process_time()
                base, over = VARIANTS.get(recipe, (recipe, {}))
                r = visualize_class(model, w, recipe=base, seed=0, **over)
                info = {"wnid": w, "class": int(r.targets[0]), "class_name": r.class_names[0],
                        "p_target": float(r.final_prob[0]), "wall_s": time.time() - t,
                        "cpu_s": time.process_time() - c, "params": r.params}
                save_image(png, r.images[0])
                atomic_write_text(png[:-4] + ".json", json.dumps(info, indent=1, default=str))
                log(f"{key} {recipe} {w} {r.class_names[0][:30]}: p {info['p_target']:.4f}, "
                    f"{info['wall_s']:.0f} s wall, {info['cpu_s']:.0f} s cpu")


# ---- edits ------------------------------------------------------------------------------------------
def _jpeg(img, rng):
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=50)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def _crop(img, rng):
    h, w = img.shape[:2]
    ch, cw = round(0.8 * h), round(0.8 * w)
    y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    return np.asarray(Image.fromarray(img[y:y + ch, x:x + cw]).resize((w, h), Image.BILINEAR))


def _blur(img, rng):
    x = img.astype(np.float64).transpose(2, 0, 1)[None]
    return np.clip(np.round(gaussian_blur(x, 1.0)[0].transpose(1, 2, 0)), 0, 255).astype(np.uint8)


def _grey(img, rng):
    return np.repeat(np.asarray(Image.fromarray(img).convert("L"))[..., None], 3, axis=2)


EDITS = {"jpeg50": _jpeg, "crop80": _crop, "blur1": _blur, "grey": _grey}


def _probs(model, images) -> np.ndarray:
    return softmax(model.scores(model.preprocess(np.stack(images))).astype(np.float64))


def _resized(img, side):
    return np.asarray(Image.fromarray(img).resize((side, side), Image.BILINEAR))


def report(out) -> dict:
    nets = {key: load_pretrained(name) for key, name in MODELS.items()}
    rows = {}
    for key, model in nets.items():
        other_key = "tiny" if key == "lite0" else "lite0"
        other = nets[other_key]
        recipes = sorted(os.listdir(os.path.join(out, key))) if os.path.isdir(os.path.join(out, key)) else []
        rendered = [{f[:-5] for f in os.listdir(os.path.join(out, key, r)) if f.endswith(".json")} for r in recipes]
        common = sorted(set.intersection(*rendered)) if rendered else []  # compare recipes on the same classes
        for recipe in recipes:
            folder = os.path.join(out, key, recipe)
            wnids = common
            per = []
            for w in wnids:
                img = load_image(os.path.join(folder, f"{w}.png"))
                meta = json.load(open(os.path.join(folder, f"{w}.json")))
                c, rng = _class_index(model, w), np.random.default_rng(0)
                edited = [fn(img, rng) for fn in EDITS.values()]
                p_edits = _probs(model, edited)[:, c]
                p_clean = _probs(model, [img])[0, c]
                theirs = _probs(other, [_resized(img, other.input_size)])[0]
                oc = _class_index(other, w)
                top5 = oc in np.argsort(-theirs)[:5]
                per.append({"wnid": w, "class_name": meta["class_name"], "p_target": float(p_clean),
                            "p_edits": dict(zip(EDITS, map(float, p_edits))), "p_edits_mean": float(p_edits.mean()),
                            f"{other_key}_top5": bool(top5), f"{other_key}_p": float(theirs[oc]),
                            "wall_s": meta["wall_s"], "cpu_s": meta["cpu_s"]})
            rows[f"{key}/{recipe}"] = {
                "classes": len(per), "mean_p_target": float(np.mean([r["p_target"] for r in per])),
                "min_p_target": float(np.min([r["p_target"] for r in per])),
                "mean_p_after_edits": float(np.mean([r["p_edits_mean"] for r in per])),
                f"{other_key}_top5_hits": int(sum(r[f"{other_key}_top5"] for r in per)),
                f"{other_key}_mean_log_p": float(np.mean([np.log(max(r[f"{other_key}_p"], 1e-12)) for r in per])),
                "mean_cpu_s": float(np.mean([r["cpu_s"] for r in per])), "per_class": per}
    atomic_write_text(os.path.join(out, "report.json"), json.dumps(rows, indent=1))
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("action", choices=["render", "report"])
    p.add_argument("--out", required=True)
    p.add_argument("--models", default="lite0,tiny")
    p.add_argument("--recipes", default="lucid,pixel")
    p.add_argument("--set", choices=tuple(SETS), default="heldout")
    p.add_argument("--first", type=int, default=0, help="only the first N classes of the set (0: all)")
    p.add_argument("--reverse", action="store_true", help="render the classes in reverse order (a second worker)")
    p.add_argument("--only", default="", help="comma-separated wnids of the set to render (a further worker)")
    args = p.parse_args(argv)

    def log(line):
        print(time.strftime("%H:%M:%S"), line, flush=True)

    if args.action == "render":
        wnids = SETS[args.set]()
        wnids = [w for w in wnids if w in args.only.split(",")] if args.only else wnids
        wnids = wnids[::-1] if args.reverse else wnids
        render(args.out, args.models.split(","), args.recipes.split(","), wnids[:args.first or None], log)
        return 0
    for name, r in report(args.out).items():
        print(f"{name}: {r['classes']} classes, p(target) mean {r['mean_p_target']:.3f} min {r['min_p_target']:.3f}, "
              f"p after edits {r['mean_p_after_edits']:.3f}, other net top-5 "
              f"{[v for k, v in r.items() if k.endswith('top5_hits')][0]}/{r['classes']} "
              f"(mean log p {[v for k, v in r.items() if k.endswith('mean_log_p')][0]:.2f}), cpu {r['mean_cpu_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
