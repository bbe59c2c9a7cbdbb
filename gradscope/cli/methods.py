"""Commands for the image-gradient methods: saliency maps (and `saliency evaluate`), fool,
classvis, invert, dream. Each handler turns its arguments into library calls, prints the
numbers (or JSON with --json) and writes PNGs."""
from __future__ import annotations

import os

import numpy as np

from gradscope.cli.args import default_of, nonneg_float, nonneg_int, positive_float, positive_int, scale_factor, seed_int
from gradscope.cli.cnn import MODEL_HELP
from gradscope.cli.output import emit, output_folder
from gradscope.cli.progress import Progress
from gradscope.errors import GradscopeError

# --method NAME -> (gradscope.methods function, its settings record or None, whether it takes a seed)
METHODS = {"vanilla": ("saliency", None, False), "smoothgrad": ("smoothgrad", None, True),
           "ig": ("integrated_gradients", None, False), "gradcam": ("gradcam", "GradCamSettings", False),
           "occlusion": ("occlusion", "OcclusionSettings", False),
           "perturbation": ("extremal_perturbation", "PerturbationSettings", True)}
METHOD_NAMES = {k: v[0] for k, v in METHODS.items()}
_RECORDS = {"GradCamSettings": "gradscope.methods.gradcam", "OcclusionSettings": "gradscope.methods.occlusion",
            "PerturbationSettings": "gradscope.methods.perturbation"}
_CLI_HIDDEN = {"chunk"}  # settings the command line leaves at their defaults


def register(subparsers) -> None:
    for add in (_add_saliency, _add_fool, _add_classvis, _add_invert, _add_dream):
        add(subparsers)


# ---------------------------------------------------------------- shared helpers

def _common(p, output="required"):
    """--model, --weights, --seed, --json and (output 'required' or 'optional') -o."""
    p.add_argument("--model", metavar="SPEC", default=None, help=MODEL_HELP)
    p.add_argument("--weights", metavar="PATH", default=None, help="weights file for torch model specs")
    p.add_argument("--seed", type=seed_int, default=0, help="random seed (default 0)")
    p.add_argument("--json", action="store_true", help="print the numbers as JSON")
    if output:
        p.add_argument("-o", "--output", metavar="OUT", required=output == "required",
                       help="output folder (or .png file for a single image)")


def _load_model(args):
    from gradscope.modelspec import load_image_model

    return load_image_model(args.model, args.weights)


def _output(args):
    """The output folder guard of -o (checked now; removed again if the command fails)."""
    return output_folder(args.output, "-o", file_ext=".png")


def _model_input(model, image, keep_size=False):
    """(1, 3, H, W) model input from a uint8 image; keep_size skips the resize to
    model.input_size (pixel values mapped through the model's pixel bounds)."""
    from gradscope.interface import pixels_to_input

    if not keep_size or image.shape[:2] == (model.input_size, model.input_size):
        return model.preprocess(image[None])
    return pixels_to_input(model, image[None])


def _class_label(model, c) -> str:
    return f"{int(c)} {model.class_names[int(c)]}"


def _written(paths) -> list:
    return [f"wrote {p}" for p in paths]


# ---------------------------------------------------------------- saliency

def _add_saliency(sub):
    group = sub.add_parser("saliency", help="saliency maps of images, each with its faithfulness; 'saliency "
                                            "evaluate' scores methods on a dataset",
                           description="`gradscope saliency IMAGE... -o OUT` is short for `gradscope saliency "
                                       "maps IMAGE... -o OUT`; `gradscope saliency evaluate --data DIR` scores "
                                       "methods on a TinyImageNet or ImageFolder directory.")
    s = group.add_subparsers(dest="saliency_command", metavar="{maps,evaluate} | IMAGE")
    maps = s.add_parser("maps", help="saliency maps of image files (the default: `gradscope saliency IMAGE...`)")
    maps.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    maps.add_argument("--target", metavar="CLASS", help="class (index, wnid or name); default: the predicted class")
    maps.add_argument("--method", choices=sorted(METHODS), default="vanilla")
    maps.add_argument("--no-check", action="store_true",
                      help="skip the deletion/insertion check of each map against a random map")
    _step_arg(maps)
    _method_args(maps)
    _common(maps)
    maps.set_defaults(func=_run_saliency)
    ev = s.add_parser("evaluate", help="deletion/insertion AUC, pointing game and randomisation check of methods")
    ev.add_argument("--data", metavar="DIR", help="TinyImageNet directory (val split) or ImageFolder (DIR/<wnid>/*)")
    ev.add_argument("--methods", default="random,vanilla,smoothgrad,ig,gradcam,occlusion",
                    help="comma list of " + ",".join(sorted(METHODS)) + ",random (default %(default)s)")
    ev.add_argument("--n", type=positive_int, default=100, help="number of images (default %(default)s)")
    ev.add_argument("--shard", type=_shard, default=(1, 1), metavar="K/N",
                    help="score every N-th of the n images, from the K-th (array jobs; default 1/1)")
    ev.add_argument("--results", metavar="FILE.jsonl", help="per-image results (appended; a rerun resumes)")
    ev.add_argument("--sanity", action="store_true", help="also the model-randomisation check (slower)")
    ev.add_argument("--merge", nargs="+", metavar="FILE.jsonl", help="print the table of result files and stop")
    _step_arg(ev)
    _method_args(ev)
    _common(ev, output=None)
    ev.set_defaults(func=_run_saliency_evaluate)
    group.set_defaults(func=lambda args: group.print_help() or 0)


def _step_arg(p):
    p.add_argument("--step", type=positive_int, default=None,
                   help="deletion/insertion pixels per step (default 8 x image height: 28 steps at 224)")


def _shard(text):
    import argparse

    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K/N, got {text!r}") from None
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"expected K/N with 1 <= K <= N, got {text!r}")
    return k, n


def _fractions(text):
    import argparse

    try:
        return tuple(float(v) for v in str(text).split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _record(name):
    import importlib

    return getattr(importlib.import_module(_RECORDS[name]), name)


def _method_args(p):
    """The flags of every method: SmoothGrad's and IG's, then those of each settings record."""
    from gradscope.cli import args as kinds
    from gradscope.methods.saliency import DEFAULTS
    from gradscope.methods.settings import flag_specs

    p.add_argument("--samples", type=positive_int, default=DEFAULTS["n_samples"], help="SmoothGrad noisy samples")
    p.add_argument("--sigma", type=nonneg_float, default=DEFAULTS["sigma"],
                   help="SmoothGrad noise (fraction of the pixel range)")
    p.add_argument("--points", type=positive_int, default=DEFAULTS["points"], help="integrated-gradients path points")
    for method, (_, record, _) in METHODS.items():
        for name, default, what, kind in (flag_specs(_record(record)) if record else []):
            if name in _CLI_HIDDEN:
                continue
            parse = _fractions if kind == "fractions" else getattr(kinds, kind) if kind else str
            p.add_argument("--" + name.replace("_", "-"), type=parse, default=None,
                           help=f"{method}: {what} (default {default})")


def _method_settings(args, method) -> dict:
    """The keyword arguments of one method from the parsed flags (those given)."""
    from dataclasses import fields

    fn, record, seeded = METHODS[method]
    out = {"seed": args.seed} if seeded else {}
    if method == "smoothgrad":
        out.update(n_samples=args.samples, sigma=args.sigma)
    if method == "ig":
        out["points"] = args.points
    for f in (fields(_record(record)) if record else []):
        value = getattr(args, f.name, None)
        if value is not None:
            out[f.name] = value
    return out


def _attribute(model, x, classes, args, method=None):
    from gradscope import methods

    method = method or args.method
    return getattr(methods, METHODS[method][0])(model, x, classes, **_method_settings(args, method))


def _check_maps(model, x, result, args):
    """Per image (deletion AUC, insertion AUC, random's deletion, random's insertion)."""
    from gradscope.methods import deletion_insertion_auc

    with Progress("saliency: deletion/insertion check", unit="inputs") as bar:
        di = deletion_insertion_auc(model, x, result.classes, result.maps, step=args.step, seed=args.seed,
                                    callback=bar.callback())
    return list(zip(di.deletion_auc, di.insertion_auc, di.random_deletion_auc, di.random_insertion_auc))


def _run_saliency(args) -> int:
    from gradscope.figures import saliency_figure, save_figure
    from gradscope.imageio import load_image
    from gradscope.methods import resolve_class

    with _output(args):
        model = _load_model(args)
        x = np.concatenate([_model_input(model, load_image(p)) for p in args.images])
        classes = None if args.target is None else resolve_class(model, args.target)
        result = _attribute(model, x, classes, args)
        written = result.save(args.output)
        if not args.output.lower().endswith(".png"):
            written.append(save_figure(saliency_figure(result), os.path.join(args.output, "saliency.png")))
        checks = None if args.no_check else _check_maps(model, x, result, args)
    payload = result.to_dict()
    lines = []
    for i, (item, path) in enumerate(zip(payload["images"], args.images)):
        item["file"] = path
        line = f"{path}: class {_class_label(model, result.classes[i])}  score {result.scores[i]:.3f}"
        if checks:
            d, ins, rd, ri = (float(v) for v in checks[i])
            item.update(deletion_auc=d, insertion_auc=ins, random_deletion_auc=rd, random_insertion_auc=ri)
            line += (f"  deletion AUC {d:.3f} (random {rd:.3f}, lower is better)  insertion AUC {ins:.3f} "
                     f"(random {ri:.3f}, higher is better)")
        lines.append(line)
    emit(args, dict(payload, written=written), lines + _written(written))
    return 0


def _run_saliency_evaluate(args) -> int:
    from gradscope.methods import faithfulness as F

    if args.merge:
        table = F.merge_records(args.merge)
        emit(args, {"methods": table}, F.format_table(table))
        return 0
    if not args.data:
        raise GradscopeError("saliency evaluate needs --data DIR (or --merge FILES)")
    names = [m for m in args.methods.split(",") if m]
    bad = [m for m in names if m not in METHODS and m != "random"]
    if bad:
        raise GradscopeError(f"unknown method {bad[0]!r}: expected some of {', '.join(sorted(METHODS))}, random")
    model = _load_model(args)
    items = F.shard_items(F.folder_items(model, args.data), args.n, args.shard, seed=args.seed)
    methods = F.map_methods(names, {m: {k: v for k, v in _method_settings(args, m).items() if k != "seed"}
                                    for m in names if m in METHODS})
    sanity = F.randomized_copy(model, seed=args.seed) if args.sanity else None
    path = args.results or _scratch_results()
    with Progress("saliency evaluate", unit="maps") as bar:
        F.evaluate_images(model, items, methods, path, sanity_model=sanity, step=args.step, seed=args.seed,
                          callback=bar.callback())
    table = F.merge_records([path])
    lines = [f"{len(items)} images (shard {args.shard[0]}/{args.shard[1]}); per-image results in {path}"]
    emit(args, {"methods": table, "results_file": path}, lines + F.format_table(table))
    return 0


def _scratch_results():
    import tempfile

    fd, path = tempfile.mkstemp(prefix="gradscope-evaluate-", suffix=".jsonl")
    os.close(fd)
    os.remove(path)
    return path


# ---------------------------------------------------------------- fooling

def _add_fool(sub):
    from gradscope.methods.fooling import DEFAULTS

    p = sub.add_parser("fool", help="make an image classified as a target class",
                       description="gradscope fool IMAGE --target CLASS -o OUT | gradscope fool --data DIR --n N")
    p.add_argument("image", nargs="?", metavar="IMAGE")
    p.add_argument("--target", metavar="CLASS", help="target class (index, wnid or name)")
    p.add_argument("--step-size", type=positive_float, default=DEFAULTS["step_size"],
                   help="L2 length of each step (model-input units)")
    p.add_argument("--max-iter", type=positive_int, default=DEFAULTS["max_iter"], help="most steps per image")
    p.add_argument("--objective", choices=["log_prob", "score"], default=DEFAULTS["objective"],
                   help="climb the target's log-probability (default) or its raw score (course recipe)")
    p.add_argument("--data", metavar="DIR", help="TinyImageNet directory: fool n correctly classified val images")
    from gradscope.methods.benchmark import fool_benchmark

    p.add_argument("--n", type=positive_int, default=default_of(fool_benchmark, "n"),
                   help="--data: number of val images (default %(default)s)")
    _common(p, output="optional")
    p.set_defaults(func=_run_fool)


def _run_fool(args) -> int:
    from gradscope.imageio import load_image
    from gradscope.methods import fool, resolve_class

    if args.data:
        if args.image or args.target is not None:
            raise GradscopeError("fool takes IMAGE --target CLASS, or --data DIR (random targets), not both")
        return _run_fool_dataset(args)
    if not args.image or args.target is None or not args.output:
        raise GradscopeError("fool needs IMAGE --target CLASS -o OUT (or --data DIR for the benchmark)")
    with _output(args), Progress("fool", unit="steps") as bar:
        model = _load_model(args)
        target = resolve_class(model, args.target)
        x = _model_input(model, load_image(args.image))
        r = fool(model, x, target, step_size=args.step_size, max_iter=args.max_iter, objective=args.objective,
                 callback=bar.callback("target_prob"))
        written = r.save(args.output)
    d = r.to_dict()["images"][0]
    lines = [f"{'fooled' if d['success'] else 'NOT fooled'} after {d['iterations']} steps",
             f"original: {_class_label(model, d['original_class'])} p={d['original_prob']:.3f}",
             f"final:    {_class_label(model, d['final_class'])} p={d['final_prob']:.3f} "
             f"(target p {d['target_prob_before']:.4f} -> {d['target_prob']:.3f})",
             f"change: L2 {d['l2']:.1f}  Linf {d['linf']:.0f} (0-255 pixel units)"]
    emit(args, dict(r.to_dict(), written=written), lines + _written(written))
    return 0


def _run_fool_dataset(args) -> int:
    from contextlib import nullcontext

    from gradscope.methods.benchmark import fool_benchmark

    with (_output(args) if args.output else nullcontext()), Progress("fool --data", unit="steps") as bar:
        model = _load_model(args)
        s, r = fool_benchmark(model, args.data, n=args.n, seed=args.seed, callback=bar.callback("target_prob"),
                              step_size=args.step_size, max_iter=args.max_iter, objective=args.objective)
        if args.output:
            s["written"] = r.save(args.output)
    lines = [f"fooled {s['success_rate'] * 100:.1f}% of {s['n']} correctly classified val images "
             f"(random targets, at most {args.max_iter} steps of {args.step_size})",
             f"iterations: median {s['median_iterations']}, max {s['max_iterations']}",
             f"change (0-255 units): median L2 {s['median_l2']:.1f}, median Linf {s['median_linf']:.1f}"]
    emit(args, s, lines)
    return 0


# ---------------------------------------------------------------- class visualisation

def _ascent_args(p, defaults, names, model_recipe=False):
    """The shared numeric options of the ascent recipes, typed with their ranges; with model_recipe
    the default is None (the library then takes the model's own recipe, else `defaults`)."""
    specs = {"iterations": (positive_int, "total steps"), "lr": (positive_float, "step size"),
             "l2_reg": (nonneg_float, "L2 prior weight"), "tv_weight": (nonneg_float, "total-variation prior weight"),
             "jitter": (nonneg_int, "random shift in pixels per step"),
             "blur_every": (nonneg_int, "blur every N steps (0: never)"), "blur_sigma": (nonneg_float, "blur width"),
             "octaves": (positive_int, "number of scales, coarse to fine"),
             "octave_scale": (scale_factor, "size ratio between octaves (> 1)"),
             "scale_jitter": (nonneg_float, "random rescaling per step (fraction)"),
             "smooth_gradient": (nonneg_float, "blur width applied to the gradient")}
    for name in names:
        kind, what = specs[name]
        default = None if model_recipe else defaults[name]
        where = f"the model's own recipe, else {defaults[name]}" if model_recipe else "%(default)s"
        p.add_argument("--" + name.replace("_", "-"), type=kind, default=default, help=f"{what} (default {where})")


def _add_classvis(sub):
    from gradscope.methods.class_visualization import DEFAULTS

    p = sub.add_parser("classvis", help="synthesise an image of a class from noise")
    p.add_argument("classes", nargs="+", metavar="CLASS", help="class(es): index, wnid or name")
    _ascent_args(p, DEFAULTS, ["iterations"])
    # None: visualize_class takes the model's own recipe (model.method_defaults), else DEFAULTS
    _ascent_args(p, DEFAULTS, ["lr", "l2_reg", "jitter", "scale_jitter", "smooth_gradient", "blur_every",
                               "blur_sigma", "tv_weight", "octaves"], model_recipe=True)
    p.add_argument("--objective", choices=["score", "log_prob"], default=None,
                   help="climb the class log-probability (default) or its raw score (course recipe)")
    _common(p)
    p.set_defaults(func=_run_classvis)


def _run_classvis(args) -> int:
    from gradscope.methods import visualize_class

    with _output(args), Progress("classvis", unit="steps") as bar:
        model = _load_model(args)
        r = visualize_class(model, args.classes, iterations=args.iterations, lr=args.lr, l2_reg=args.l2_reg,
                            jitter=args.jitter, scale_jitter=args.scale_jitter, smooth_gradient=args.smooth_gradient,
                            blur_every=args.blur_every, blur_sigma=args.blur_sigma, tv_weight=args.tv_weight,
                            octaves=args.octaves, objective=args.objective, seed=args.seed,
                            callback=bar.callback("target_prob"))
        written = r.save(args.output)
    lines = [f"class {_class_label(model, t)}: probability {p:.4f} (score {s:.2f})"
             for t, p, s in zip(r.targets, r.final_prob, r.final_score)]
    emit(args, dict(r.to_dict(), written=written), lines + _written(written))
    return 0


# ---------------------------------------------------------------- inversion and dreams

def _add_invert(sub):
    from gradscope.methods.feature_inversion import DEFAULTS

    p = sub.add_parser("invert", help="reconstruct an image from its activations at a layer")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--layer", required=True, help="layer name or index")
    _ascent_args(p, DEFAULTS, ["iterations", "lr", "l2_reg", "tv_weight"])
    _common(p)
    p.set_defaults(func=_run_invert)


def _run_invert(args) -> int:
    from gradscope.imageio import load_image
    from gradscope.methods import invert

    with _output(args), Progress("invert", unit="steps") as bar:
        model = _load_model(args)
        x = _model_input(model, load_image(args.image))
        r = invert(model, x, args.layer, iterations=args.iterations, lr=args.lr, l2_reg=args.l2_reg,
                   tv_weight=args.tv_weight, seed=args.seed, callback=bar.callback("distance"))
        written = r.save(args.output)
    lines = [f"layer {r.layer}: relative feature distance {r.final_distance[0]:.4f}"]
    emit(args, dict(r.to_dict(), written=written), lines + _written(written))
    return 0


def _add_dream(sub):
    from gradscope.methods.deepdream import DEFAULTS

    p = sub.add_parser("dream", help="DeepDream an image at a layer (at the image's own size where the model "
                                     "accepts any size)")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--layer", required=True, help="layer name or index")
    _ascent_args(p, DEFAULTS, ["iterations", "lr", "jitter", "octaves", "octave_scale"])
    _common(p)
    p.set_defaults(func=_run_dream)


def _run_dream(args) -> int:
    from gradscope.imageio import load_image
    from gradscope.methods import deepdream
    from gradscope.methods.ascent import accepts_shape

    with _output(args), Progress("dream", unit="steps") as bar:
        model = _load_model(args)
        image = load_image(args.image)
        x = _model_input(model, image, keep_size=accepts_shape(model, image.shape[:2]))
        r = deepdream(model, x, args.layer, iterations=args.iterations, lr=args.lr, jitter=args.jitter,
                      octaves=args.octaves, octave_scale=args.octave_scale, seed=args.seed,
                      callback=bar.callback("activation_norm"))
        written = r.save(args.output)
    norm = r.activation_norm
    lines = [f"layer {r.layer}: activation RMS {norm[0, 0]:.3f} -> {norm[-1, 0]:.3f} over "
             f"{len(norm)} steps at sizes {', '.join(f'{h}x{w}' for h, w in r.sizes)}"] if len(norm) else []
    emit(args, dict(r.to_dict(), written=written), lines + _written(written))
    return 0
