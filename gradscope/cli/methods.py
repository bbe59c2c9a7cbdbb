"""Commands for the image-gradient methods: saliency (and its evaluation), fool,
classvis, invert, dream. Each prints its numbers (or JSON with --json) and writes PNGs."""
from __future__ import annotations

import json
import os
import sys

import numpy as np

from gradscope.errors import GradscopeError

METHOD_NAMES = {"vanilla": "saliency", "smoothgrad": "smoothgrad", "ig": "integrated_gradients"}


def register(subparsers) -> None:
    for add in (_add_saliency, _add_fool, _add_classvis, _add_invert, _add_dream):
        add(subparsers)


# ---------------------------------------------------------------- shared helpers

def _common(p, output_required=True):
    p.add_argument("--model", metavar="SPEC", default=None,
                   help="model: 'gradscope' (shipped CNN, default), 'efficientnet_lite0', 'path/model.json', "
                        "'torchvision:NAME' or 'file.py:factory'")
    p.add_argument("--weights", metavar="PATH", default=None, help="weights file for torch model specs")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--json", action="store_true", help="print the numbers as JSON")
    p.add_argument("-o", "--output", metavar="OUT", required=output_required,
                   help="output folder (or .png file for a single image)")


def _load_model(args):
    from gradscope.modelspec import load_image_model

    return load_image_model(args.model, args.weights)


def _progress(total, desc, key=None):
    """(callback, bar): a tqdm bar on stderr advanced by a method callback; the postfix
    shows the mean of info[key]."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, leave=False, file=sys.stderr, disable=None)

    def callback(iteration, info):
        bar.n = iteration
        if key is not None and key in info:
            bar.set_postfix({key: f"{float(np.mean(info[key])):.3f}"}, refresh=False)
        bar.refresh()

    return callback, bar


def _model_input(model, image, keep_size=False):
    """(1, 3, H, W) model input from a uint8 image; keep_size skips the resize to
    model.input_size (pixel values mapped through the model's pixel bounds)."""
    from gradscope.interface import pixels_to_input

    if not keep_size or image.shape[:2] == (model.input_size, model.input_size):
        return model.preprocess(image[None])
    return pixels_to_input(model, image[None])


def _emit(args, payload: dict, lines: list) -> None:
    if args.json:
        print(json.dumps(payload, indent=1))
    else:
        for line in lines:
            print(line)


def _class_label(model, c) -> str:
    return f"{int(c)} {model.class_names[int(c)]}"


def _written(paths) -> list:
    return [f"wrote {p}" for p in paths]


# ---------------------------------------------------------------- saliency

def _add_saliency(sub):
    p = sub.add_parser("saliency", help="saliency maps of images; 'saliency evaluate' scores them",
                       description="gradscope saliency IMAGE... -o OUT | gradscope saliency evaluate --data DIR")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files, or 'evaluate'")
    p.add_argument("--target", metavar="CLASS", help="class (index, wnid or name); default: the predicted class")
    p.add_argument("--method", choices=sorted(METHOD_NAMES), default="vanilla")
    from gradscope.methods.evaluation import DEFAULTS as EVAL
    from gradscope.methods.saliency import DEFAULTS

    p.add_argument("--samples", type=int, default=DEFAULTS["n_samples"], help="SmoothGrad noisy samples")
    p.add_argument("--sigma", type=float, default=DEFAULTS["sigma"],
                   help="SmoothGrad noise (fraction of the pixel range)")
    p.add_argument("--points", type=int, default=DEFAULTS["points"], help="integrated-gradients path points")
    p.add_argument("--stages", type=int, default=EVAL["stages"], help="evaluate: deletion/insertion stages")
    p.add_argument("--data", metavar="DIR", help="evaluate: TinyImageNet directory (uses its val split)")
    p.add_argument("--n", type=int, default=100, help="evaluate: number of val images")
    _common(p, output_required=False)
    p.set_defaults(func=_run_saliency)


def _attribute(model, x, classes, args):
    from gradscope import methods

    if args.method == "smoothgrad":
        return methods.smoothgrad(model, x, classes, n_samples=args.samples, sigma=args.sigma, seed=args.seed)
    if args.method == "ig":
        return methods.integrated_gradients(model, x, classes, points=args.points)
    return methods.saliency(model, x, classes)


def _run_saliency(args) -> int:
    if args.images[0] == "evaluate":
        if len(args.images) > 1:
            raise GradscopeError("'saliency evaluate' takes no image files, only --data DIR")
        return _run_saliency_evaluate(args)
    if not args.output:
        raise GradscopeError("saliency needs -o OUT (folder for the maps)")
    from gradscope.figures import saliency_figure, save_figure
    from gradscope.imageio import load_image
    from gradscope.methods import resolve_class

    model = _load_model(args)
    images = [load_image(p) for p in args.images]
    x = np.concatenate([_model_input(model, im) for im in images])
    classes = None if args.target is None else resolve_class(model, args.target)
    result = _attribute(model, x, classes, args)
    written = result.save(args.output)
    if not args.output.lower().endswith(".png"):
        written.append(save_figure(saliency_figure(result), os.path.join(args.output, "saliency.png")))
    payload = result.to_dict()
    for item, path in zip(payload["images"], args.images):
        item["file"] = path
    lines = [f"{path}: class {_class_label(model, c)}  score {s:.3f}"
             for path, c, s in zip(args.images, result.classes, result.scores)]
    _emit(args, dict(payload, written=written), lines + _written(written))
    return 0


def _run_saliency_evaluate(args) -> int:
    from gradscope.methods import deletion_insertion_auc, pointing_game
    from gradscope.methods.benchmark import load_batch, val_items

    if not args.data:
        raise GradscopeError("'saliency evaluate' needs --data DIR (a TinyImageNet directory)")
    model = _load_model(args)
    items, order = val_items(model, args.data, args.seed, need_box=True)
    x, y, boxes = load_batch(model, items, order[:args.n])
    result = _attribute(model, x, y, args)
    pg = pointing_game(result.maps, boxes, seed=args.seed)
    cb, bar = _progress(4 * len(y) * (args.stages + 1), "deletion/insertion")
    with bar:
        di = deletion_insertion_auc(model, x, y, result.maps, stages=args.stages, seed=args.seed, callback=cb)
    acc = float(np.mean(np.argmax(model.scores(x), axis=1) == y))
    payload = {"method": args.method, "n": len(y), "accuracy": acc, "pointing_game": {k: v for k, v in pg.to_dict().items() if k != "hits"},
               "deletion_insertion": {k: v for k, v in di.to_dict().items() if k != "per_image"}}
    lines = [f"{args.method} saliency on {len(y)} val images (top-1 accuracy {acc:.3f})",
             f"pointing game hit rate   {pg.hit_rate:.3f}   random {pg.random_hit_rate:.3f}",
             f"deletion AUC (lower)     {di.deletion_auc.mean():.3f}   random {di.random_deletion_auc.mean():.3f}",
             f"insertion AUC (higher)   {di.insertion_auc.mean():.3f}   random {di.random_insertion_auc.mean():.3f}"]
    _emit(args, payload, lines)
    return 0


# ---------------------------------------------------------------- fooling

def _add_fool(sub):
    p = sub.add_parser("fool", help="make an image classified as a target class",
                       description="gradscope fool IMAGE --target CLASS -o OUT | gradscope fool --data DIR --n N")
    p.add_argument("image", nargs="?", metavar="IMAGE")
    p.add_argument("--target", metavar="CLASS", help="target class (index, wnid or name)")
    from gradscope.methods.fooling import DEFAULTS

    p.add_argument("--step-size", type=float, default=DEFAULTS["step_size"],
                   help="L2 length of each step (model-input units)")
    p.add_argument("--max-iter", type=int, default=DEFAULTS["max_iter"], help="most steps per image")
    p.add_argument("--objective", choices=["log_prob", "score"], default=DEFAULTS["objective"],
                   help="climb the target's log-probability (default) or its raw score (course recipe)")
    p.add_argument("--data", metavar="DIR", help="TinyImageNet directory: fool n correctly classified val images")
    p.add_argument("--n", type=int, default=100)
    _common(p, output_required=False)
    p.set_defaults(func=_run_fool)


def _run_fool(args) -> int:
    from gradscope.imageio import load_image
    from gradscope.methods import fool, resolve_class

    if args.data:
        return _run_fool_dataset(args)
    if not args.image or args.target is None or not args.output:
        raise GradscopeError("fool needs IMAGE --target CLASS -o OUT (or --data DIR for the benchmark)")
    model = _load_model(args)
    target = resolve_class(model, args.target)
    x = _model_input(model, load_image(args.image))
    cb, bar = _progress(args.max_iter, "fooling", "target_prob")
    with bar:
        r = fool(model, x, target, step_size=args.step_size, max_iter=args.max_iter, objective=args.objective,
                 callback=cb)
    written = r.save(args.output)
    d = r.to_dict()["images"][0]
    lines = [f"{'fooled' if d['success'] else 'NOT fooled'} after {d['iterations']} steps",
             f"original: {_class_label(model, d['original_class'])} p={d['original_prob']:.3f}",
             f"final:    {_class_label(model, d['final_class'])} p={d['final_prob']:.3f} "
             f"(target p {d['target_prob_before']:.4f} -> {d['target_prob']:.3f})",
             f"change: L2 {d['l2']:.1f}  Linf {d['linf']:.0f} (0-255 pixel units)"]
    _emit(args, dict(r.to_dict(), written=written), lines + _written(written))
    return 0


def _run_fool_dataset(args) -> int:
    from gradscope.methods.benchmark import fool_benchmark

    model = _load_model(args)
    cb, bar = _progress(args.max_iter, "fooling", "target_prob")
    with bar:
        s, r = fool_benchmark(model, args.data, n=args.n, seed=args.seed, callback=cb, step_size=args.step_size,
                              max_iter=args.max_iter, objective=args.objective)
    if args.output:
        s["written"] = r.save(args.output)
    lines = [f"fooled {s['success_rate'] * 100:.1f}% of {s['n']} correctly classified val images "
             f"(random targets, at most {args.max_iter} steps of {args.step_size})",
             f"iterations: median {s['median_iterations']}, max {s['max_iterations']}",
             f"change (0-255 units): median L2 {s['median_l2']:.1f}, median Linf {s['median_linf']:.1f}"]
    _emit(args, s, lines)
    return 0


# ---------------------------------------------------------------- class visualisation

def _add_classvis(sub):
    from gradscope.methods.class_visualization import DEFAULTS

    p = sub.add_parser("classvis", help="synthesise an image of a class from noise")
    p.add_argument("classes", nargs="+", metavar="CLASS", help="class(es): index, wnid or name")
    p.add_argument("--iterations", type=int, default=DEFAULTS["iterations"])
    recipe = "(default: the model's own recipe, else {})"  # None: visualize_class resolves it
    for flag, kind in (("lr", float), ("l2_reg", float), ("jitter", int), ("scale_jitter", float),
                       ("smooth_gradient", float), ("blur_every", int), ("blur_sigma", float), ("tv_weight", float),
                       ("octaves", int)):
        p.add_argument("--" + flag.replace("_", "-"), type=kind, default=None, help=recipe.format(DEFAULTS[flag]))
    p.add_argument("--objective", choices=["score", "log_prob"], default=None,
                   help="climb the class log-probability (default) or its raw score (course recipe)")
    _common(p)
    p.set_defaults(func=_run_classvis)


def _run_classvis(args) -> int:
    from gradscope.methods import visualize_class

    model = _load_model(args)
    cb, bar = _progress(args.iterations, "classvis", "target_prob")
    with bar:
        r = visualize_class(model, args.classes, iterations=args.iterations, lr=args.lr, l2_reg=args.l2_reg,
                            jitter=args.jitter, scale_jitter=args.scale_jitter, smooth_gradient=args.smooth_gradient,
                            blur_every=args.blur_every, blur_sigma=args.blur_sigma, tv_weight=args.tv_weight,
                            octaves=args.octaves, objective=args.objective, seed=args.seed, callback=cb)
    written = r.save(args.output)
    lines = [f"class {_class_label(model, t)}: probability {p:.4f} (score {s:.2f})"
             for t, p, s in zip(r.targets, r.final_prob, r.final_score)]
    _emit(args, dict(r.to_dict(), written=written), lines + _written(written))
    return 0


# ---------------------------------------------------------------- inversion and dreams

def _add_invert(sub):
    from gradscope.methods.feature_inversion import DEFAULTS

    p = sub.add_parser("invert", help="reconstruct an image from its activations at a layer")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--layer", required=True, help="layer name or index")
    p.add_argument("--iterations", type=int, default=DEFAULTS["iterations"])
    p.add_argument("--lr", type=float, default=DEFAULTS["lr"])
    p.add_argument("--l2-reg", type=float, default=DEFAULTS["l2_reg"])
    p.add_argument("--tv-weight", type=float, default=DEFAULTS["tv_weight"])
    _common(p)
    p.set_defaults(func=_run_invert)


def _run_invert(args) -> int:
    from gradscope.imageio import load_image
    from gradscope.methods import invert

    model = _load_model(args)
    x = _model_input(model, load_image(args.image))
    cb, bar = _progress(args.iterations, "invert", "distance")
    with bar:
        r = invert(model, x, args.layer, iterations=args.iterations, lr=args.lr, l2_reg=args.l2_reg,
                   tv_weight=args.tv_weight, seed=args.seed, callback=cb)
    written = r.save(args.output)
    lines = [f"layer {r.layer}: relative feature distance {r.final_distance[0]:.4f}"]
    _emit(args, dict(r.to_dict(), written=written), lines + _written(written))
    return 0


def _add_dream(sub):
    from gradscope.methods.deepdream import DEFAULTS

    p = sub.add_parser("dream", help="DeepDream an image at a layer (any image size)")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--layer", required=True, help="layer name or index")
    p.add_argument("--iterations", type=int, default=DEFAULTS["iterations"], help="total steps (over the octaves)")
    p.add_argument("--lr", type=float, default=DEFAULTS["lr"])
    p.add_argument("--jitter", type=int, default=DEFAULTS["jitter"])
    p.add_argument("--octaves", type=int, default=DEFAULTS["octaves"])
    p.add_argument("--octave-scale", type=float, default=DEFAULTS["octave_scale"])
    _common(p)
    p.set_defaults(func=_run_dream)


def _run_dream(args) -> int:
    from gradscope.imageio import load_image
    from gradscope.methods import deepdream

    model = _load_model(args)
    x = _model_input(model, load_image(args.image), keep_size=True)
    cb, bar = _progress(args.iterations, "dream", "activation_norm")
    with bar:
        r = deepdream(model, x, args.layer, iterations=args.iterations, lr=args.lr, jitter=args.jitter,
                      octaves=args.octaves, octave_scale=args.octave_scale, seed=args.seed, callback=cb)
    written = r.save(args.output)
    norm = r.activation_norm
    lines = [f"layer {r.layer}: activation RMS {norm[0, 0]:.3f} -> {norm[-1, 0]:.3f} over "
             f"{len(norm)} steps at sizes {', '.join(f'{h}x{w}' for h, w in r.sizes)}"] if len(norm) else []
    _emit(args, dict(r.to_dict(), written=written), lines + _written(written))
    return 0
