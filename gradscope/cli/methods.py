"""Commands for the image-gradient methods: saliency maps (and `saliency evaluate`), fool,
classvis, featvis, invert, dream. Each handler turns its arguments into library calls, prints the
numbers (or JSON with --json, gradscope/cli/schema.json) and writes PNGs into -o DIR named
after each photo, class and method (gradscope.cli.output)."""
from __future__ import annotations

import numpy as np

from gradscope.cli.args import nonneg_float, positive_int
from gradscope.cli.classes import resolve_class_arg
from gradscope.cli.common import (COURSE_MODEL, add_json_arg, add_model_args, add_seed_arg, load_images,
                                  load_model)
from gradscope.cli.output import (add_output_args, class_fields, emit, envelope, file_name, image_stems,
                                  new_output, short_class, unique_slugs)
from gradscope.cli.progress import Progress
from gradscope.cli.settings import add_settings, settings_values
from gradscope.errors import GradscopeError

# --method NAME -> (gradscope.methods function, the module holding its SETTINGS, whether it takes a seed)
METHODS = {"vanilla": ("saliency", None, False), "smoothgrad": ("smoothgrad", "saliency", True),
           "ig": ("integrated_gradients", "saliency", False), "gradcam": ("gradcam", "gradcam", False),
           "occlusion": ("occlusion", "occlusion", False),
           "perturbation": ("extremal_perturbation", "perturbation", True)}
METHOD_NAMES = {k: v[0] for k, v in METHODS.items()}
# the settings of the saliency module each method takes
_SALIENCY_NAMES = {"smoothgrad": ("n_samples", "sigma"), "ig": ("points",)}
_CLI_HIDDEN = {"chunk"}  # settings the command line leaves at their defaults
EXIT_GOAL_MISSED = 1  # a run where no image reached its goal (e.g. none was fooled)


def register(subparsers) -> None:
    for add in (_add_saliency, _add_fool, _add_classvis, _add_featvis, _add_invert, _add_dream):
        add(subparsers)


# ---------------------------------------------------------------- shared helpers

def _common(p, output=True, model_default=None):
    """--model, --weights, --seed, --json and (output) -o DIR --overwrite."""
    add_model_args(p, **({"default": model_default} if model_default else {}))
    add_seed_arg(p)
    add_json_arg(p)
    if output:
        add_output_args(p)


def _output(args, command: str):
    """new_output for -o (checked now; this run's files replace the folder when it finishes)."""
    return new_output(args.output, args.overwrite, "-o", command)


def _model_input(model, image, keep_size=False):
    """(1, 3, H, W) model input from a uint8 image; keep_size skips the resize to
    model.input_size (pixel values mapped through the model's pixel bounds)."""
    from gradscope.interface import pixels_to_input

    if not keep_size or image.shape[:2] == (model.input_size, model.input_size):
        return model.preprocess(image[None])
    return pixels_to_input(model, image[None])


def _class_label(model, c) -> str:
    return f"{int(c)} {model.class_names[int(c)]}"


def _save(out, name: str, image) -> str:
    """Write a uint8 image as out.dir/name; returns its final path."""
    from gradscope.imageio import save_image

    return out.final_path(save_image(out.path(name), image))


def _save_figure(out, name: str, fig) -> str:
    from gradscope.figures import save_figure

    return out.final_path(save_figure(fig, out.path(name)))


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
    maps.add_argument("--target", metavar="CLASS",
                      help="class (index, wnid or name; see `gradscope classes`) (default: each image's top class)")
    maps.add_argument("--method", choices=sorted(METHODS), default="vanilla",
                      help="vanilla: |gradient|; smoothgrad: averaged over noisy copies; ig: integrated gradients; "
                           "gradcam; occlusion; perturbation: extremal perturbation masks (default vanilla)")
    maps.add_argument("--no-check", action="store_true",
                      help="skip the deletion/insertion check of each map against a random map")
    _method_args(maps)
    _common(maps)
    maps.set_defaults(func=_run_saliency)
    ev = s.add_parser("evaluate", help="deletion/insertion AUC, pointing game and randomisation check of methods")
    ev.add_argument("--data", metavar="DIR", help="TinyImageNet directory (val split) or ImageFolder (DIR/<wnid>/*) (required unless --merge)")
    ev.add_argument("--methods", default="random,vanilla,smoothgrad,ig,gradcam,occlusion",
                    help="comma list of " + ",".join(sorted(METHODS)) + ",random (default %(default)s)")
    ev.add_argument("--n", type=positive_int, default=100, help="number of images (default %(default)s)")
    ev.add_argument("--shard", type=_shard, default=(1, 1), metavar="K/N",
                    help="score every N-th of the n images, from the K-th (array jobs; default 1/1)")
    ev.add_argument("--results", metavar="FILE.jsonl", help="per-image results (appended; a rerun resumes) (default: a temporary file)")
    ev.add_argument("--sanity", action="store_true", help="also the model-randomisation check (slower)")
    ev.add_argument("--merge", nargs="+", metavar="FILE.jsonl", help="print the table of result files and stop (default: evaluate --data)")
    _method_args(ev)
    _common(ev, output=False, model_default=COURSE_MODEL)
    ev.set_defaults(func=_run_saliency_evaluate)
    group.set_defaults(func=lambda args: group.print_help() or 0)


def _shard(text):
    import argparse

    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K/N, got {text!r}") from None
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"expected K/N with 1 <= K <= N, got {text!r}")
    return k, n


def _settings_of(module: str):
    import importlib

    return importlib.import_module("gradscope.methods." + module).SETTINGS


def _option_records() -> list:
    """(settings record, names) of every method's command-line options, each option once;
    the deletion/insertion step last."""
    from gradscope.methods.evaluation import SETTINGS as EVAL

    out, seen = [], set()
    for method, (_, module, _) in METHODS.items():
        if module is None or module in seen:
            continue
        seen.add(module)
        record = _settings_of(module)
        out.append((record, [n for n in record.names if n not in _CLI_HIDDEN]))
    return out + [(EVAL, EVAL.names)]


def _method_args(p):
    """The options of every method, from each method's settings record, and --step."""
    for record, names in _option_records():
        add_settings(p, record, names)


def _method_settings(args, method) -> dict:
    """The keyword arguments of one method from the parsed options (seed where it takes one)."""
    _, module, seeded = METHODS[method]
    out = {"seed": args.seed} if seeded else {}
    if module == "saliency":
        from gradscope.methods.saliency import SETTINGS

        return dict(out, **settings_values(args, SETTINGS, list(_SALIENCY_NAMES[method])))
    if module is not None:
        record = _settings_of(module)
        out.update(settings_values(args, record, [n for n in record.names if n not in _CLI_HIDDEN]))
    return out


def _attribute(model, x, classes, args, method=None, callback=None):
    from gradscope import methods

    method = method or args.method
    kwargs = _method_settings(args, method)
    if method != "vanilla":
        kwargs["callback"] = callback
    return getattr(methods, METHODS[method][0])(model, x, classes, **kwargs)


def _check_maps(model, x, result, args):
    """Per image (deletion AUC, insertion AUC, random's deletion, random's insertion)."""
    from gradscope.methods import deletion_insertion_auc

    with Progress("saliency: deletion/insertion check", unit="inputs") as bar:
        di = deletion_insertion_auc(model, x, result.classes, result.maps, step=args.step, seed=args.seed,
                                    callback=bar.callback())
    return list(zip(di.deletion_auc, di.insertion_auc, di.random_deletion_auc, di.random_insertion_auc))


def _method_params(args, method=None) -> dict:
    """The JSON params of a method: its settings as given (seed where it takes one)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in _method_settings(args, method or args.method).items()}


def _check_fields(check) -> dict:
    d, ins, rd, ri = (float(v) for v in check)
    return {"deletion_auc": d, "insertion_auc": ins, "random_deletion_auc": rd, "random_insertion_auc": ri}


def _check_text(f) -> str:
    return (f"  deletion AUC {f['deletion_auc']:.3f} (random {f['random_deletion_auc']:.3f}, lower is better)  "
            f"insertion AUC {f['insertion_auc']:.3f} (random {f['random_insertion_auc']:.3f}, higher is better)")


def _run_saliency(args) -> int:
    from gradscope.figures import saliency_figure
    from gradscope.imageio import heatmap, map_top, overlay
    from gradscope.methods._inputs import check_not_constant
    images = load_images(args.images)
    stems = image_stems(args.images)
    with _output(args, "saliency") as out:
        model, info = load_model(args)
        x = np.concatenate([_model_input(model, im) for im in images])
        check_not_constant(x, names=args.images)  # the file's name in the error, not its index
        classes = None if args.target is None else resolve_class_arg(model, info["spec"], args.target)
        with Progress(f"saliency {args.method}", unit="inputs") as bar:
            result = _attribute(model, x, classes, args, callback=bar.callback())
        checks = None if args.no_check else _check_maps(model, x, result, args)
        records = []
        for i, (path, stem) in enumerate(zip(args.images, stems)):
            name = model.class_names[result.classes[i]]
            written = [_save(out, file_name(stem, name, args.method), heatmap(result.maps[i])),
                       _save(out, file_name(stem, name, args.method, "overlay"),
                             overlay(result.images[i], result.maps[i]))]
            records.append({"image": path, **class_fields(model, result.classes[i]),
                            "score": float(result.scores[i]), "map_p99": map_top(result.maps[i]),
                            "map_max": float(result.maps[i].max()),
                            **(_check_fields(checks[i]) if checks else {}), "written": written})
        figure = _save_figure(out, file_name(args.method, "figure"), saliency_figure(result, labels=stems))
    payload = envelope("saliency", info, records, method=args.method, params=_method_params(args),
                       written=[p for r in records for p in r["written"]] + [figure])
    lines = [f"{r['image']}: class {r['class']} {r['class_name']}  score {r['score']:.3f}"
             + (_check_text(r) if checks else "") for r in records]
    lines.append("maps: colour scale from 0 to each map's 99th percentile (map_p99), higher values clipped")
    emit(args, payload, lines + _written(payload["written"]))
    return 0


def _table_records(table) -> list:
    """The merged table as JSON records, one per method."""
    return [{"method": m, **entry} for m, entry in table.items()]


def _run_saliency_evaluate(args) -> int:
    from gradscope.methods import faithfulness as F

    if args.merge:
        table = F.merge_records(args.merge)
        emit(args, envelope("saliency evaluate", None, _table_records(table), merged=list(args.merge)),
             F.format_table(table))
        return 0
    if not args.data:
        raise GradscopeError("saliency evaluate needs --data DIR (or --merge FILES)")
    names = [m for m in args.methods.split(",") if m]
    bad = [m for m in names if m not in METHODS and m != "random"]
    if bad:
        raise GradscopeError(f"unknown method {bad[0]!r}: expected some of {', '.join(sorted(METHODS))}, random")
    model, info = load_model(args, COURSE_MODEL)
    items = F.shard_items(F.folder_items(model, args.data), args.n, args.shard, seed=args.seed)
    settings = {m: {k: v for k, v in _method_settings(args, m).items() if k != "seed"} for m in names if m in METHODS}
    methods = F.map_methods(names, settings)
    sanity = F.randomized_copy(model, seed=args.seed) if args.sanity else None
    path = args.results or _scratch_results()
    with Progress("saliency evaluate", unit="maps") as bar:
        F.evaluate_images(model, items, methods, path, sanity_model=sanity, step=args.step, seed=args.seed,
                          callback=bar.callback())
    table = F.merge_records([path])
    lines = [f"{len(items)} images (shard {args.shard[0]}/{args.shard[1]}); per-image results in {path}"]
    emit(args, envelope("saliency evaluate", info, _table_records(table), results_file=path,
                        params={m: {k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items()}
                                for m, kw in settings.items()}),
         lines + F.format_table(table))
    return 0


def _scratch_results():
    import os
    import tempfile

    fd, path = tempfile.mkstemp(prefix="gradscope-evaluate-", suffix=".jsonl")
    os.close(fd)
    os.remove(path)
    return path


# ---------------------------------------------------------------- fooling

def _add_fool(sub):
    from gradscope.methods.fooling import SETTINGS

    p = sub.add_parser("fool", help="change images slightly so that the model sees a target class",
                       description="gradscope fool IMAGE... --target CLASS -o OUT | gradscope fool --data DIR --n N. "
                                   "Exits 1 when no image was fooled.")
    p.add_argument("images", nargs="*", metavar="IMAGE", help="image files")
    p.add_argument("--target", metavar="CLASS",
                   help="target class (index, wnid or name; see `gradscope classes`) (required with images)")
    add_settings(p, SETTINGS)
    p.add_argument("--data", metavar="DIR", help="TinyImageNet directory: fool n correctly classified val images "
                                                 f"towards random classes (default model then: {COURSE_MODEL})")
    from gradscope.cli.args import default_of
    from gradscope.methods.benchmark import fool_benchmark

    p.add_argument("--n", type=positive_int, default=default_of(fool_benchmark, "n"),
                   help="--data: number of val images (default %(default)s)")
    add_model_args(p, default=None)
    add_seed_arg(p)
    add_json_arg(p)
    p.add_argument("-o", "--output", metavar="DIR", default=None,
                   help="output folder (required with images; a non-empty one is refused unless --overwrite)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the output folder's files with this run's (only a folder gradscope wrote)")
    p.set_defaults(func=_run_fool)


def _fool_records(model, r, paths=None) -> list:
    d = r.to_dict()["images"]
    records = []
    for i, item in enumerate(d):
        rec = {"image": paths[i]} if paths else {}
        rec.update(class_fields(model, item["target"]))
        rec.update({"success": item["success"], "iterations": item["iterations"],
                    "original_class": item["original_class"], "original_class_name": item["original_name"],
                    "original_prob": item["original_prob"], "final_class": item["final_class"],
                    "final_class_name": item["final_name"], "final_prob": item["final_prob"],
                    "target_prob_before": item["target_prob_before"], "target_prob": item["target_prob"],
                    "l2_0_255": item["l2"], "linf_0_255": item["linf"]})
        records.append(rec)
    return records


def _run_fool(args) -> int:
    from gradscope.figures import fooling_figure
    from gradscope.imageio import difference_image
    from gradscope.methods import fool
    from gradscope.methods.fooling import SETTINGS

    if args.data:
        if args.images or args.target is not None:
            raise GradscopeError("fool takes IMAGE... --target CLASS, or --data DIR (random targets), not both")
        return _run_fool_dataset(args)
    if not args.images or args.target is None or not args.output:
        raise GradscopeError("fool needs IMAGE... --target CLASS -o OUT (or --data DIR for the benchmark)")
    images = load_images(args.images)
    stems = image_stems(args.images)
    with _output(args, "fool") as out, Progress("fool", unit="steps") as bar:
        model, info = load_model(args)
        target = resolve_class_arg(model, info["spec"], args.target)
        x = np.concatenate([_model_input(model, im) for im in images])
        r = fool(model, x, target, **settings_values(args, SETTINGS), callback=bar.callback("target_prob"))
        records = _fool_records(model, r, args.images)
        tname = model.class_names[target]
        for i, (rec, stem) in enumerate(zip(records, stems)):
            verdict = "fooled" if rec["success"] else "not-fooled"
            rec["written"] = [_save(out, file_name(stem, tname, verdict), r.images[i]),
                              _save(out, file_name(stem, "original"), r.original_images[i]),
                              _save(out, file_name(stem, tname, "difference"),
                                    difference_image(r.images[i], r.original_images[i]))]
        figure = _save_figure(out, file_name("fool", "figure"), fooling_figure(r, labels=stems))
    lines = []
    for rec in records:
        lines += [f"{rec['image']}: {'fooled' if rec['success'] else 'NOT fooled'} after {rec['iterations']} steps",
                  f"  original: {_class_label(model, rec['original_class'])} p={rec['original_prob']:.3f}",
                  f"  final:    {_class_label(model, rec['final_class'])} p={rec['final_prob']:.3f} "
                  f"(target p {rec['target_prob_before']:.4f} -> {rec['target_prob']:.3f})",
                  f"  change: L2 {rec['l2_0_255']:.1f}  Linf {rec['linf_0_255']:.0f} (0-255 pixel units)"]
    written = [p for rec in records for p in rec["written"]] + [figure]
    fooled = sum(rec["success"] for rec in records)
    lines.append(f"fooled {fooled} of {len(records)} images")
    emit(args, envelope("fool", info, records, params=SETTINGS.params(settings_values(args, SETTINGS)),
                        written=written), lines + _written(written))
    return 0 if fooled else EXIT_GOAL_MISSED


def _run_fool_dataset(args) -> int:
    from contextlib import nullcontext

    from gradscope.methods.benchmark import fool_benchmark
    from gradscope.methods.fooling import SETTINGS

    settings = settings_values(args, SETTINGS)
    with (_output(args, "fool") if args.output else nullcontext()) as out, \
            Progress("fool --data", unit="steps") as bar:
        model, info = load_model(args, COURSE_MODEL)
        s, r = fool_benchmark(model, args.data, n=args.n, seed=args.seed, callback=bar.callback("target_prob"),
                              **settings)
        written = _save_benchmark_images(out, model, r) if out is not None else []
    lines = [f"fooled {s['success_rate'] * 100:.1f}% of {s['n']} correctly classified val images "
             f"(random targets, at most {settings['max_iter']} steps of {settings['step_size']})",
             f"iterations: median {s['median_iterations']}, max {s['max_iterations']}",
             f"change (0-255 units): median L2 {s['median_l2']:.1f}, median Linf {s['median_linf']:.1f}"]
    summary = {("_".join((k, "0_255")) if k.endswith(("l2", "linf")) else k): v for k, v in s.items()}
    emit(args, envelope("fool", info, _fool_records(model, r), params=SETTINGS.params(settings), summary=summary,
                        written=written), lines)
    return 0  # a benchmark reports its rate, whatever it is


def _save_benchmark_images(out, model, r) -> list:
    """'<i>_<target>_fooled.png' (or '_not-fooled') and '<i>_original.png' per benchmark image."""
    written = []
    for i in range(len(r.images)):
        verdict = "fooled" if r.success[i] else "not-fooled"
        written += [_save(out, file_name(f"{i:03d}", model.class_names[r.target[i]], verdict), r.images[i]),
                    _save(out, file_name(f"{i:03d}", "original"), r.original_images[i])]
    return written


# ---------------------------------------------------------------- class visualisation

def _model_recipes(method: str) -> dict:
    """{model name: its own settings of `method`} of the shipped models that bring one (for --help)."""
    from gradscope.cnn.efficientnet import METHOD_DEFAULTS

    return {"EfficientNet-Lite0": METHOD_DEFAULTS[method]} if method in METHOD_DEFAULTS else {}


def _recipes_shown() -> dict:
    """{recipe label: its settings} for --help: each recipe's values and EfficientNet-Lite0's own."""
    from gradscope.methods.class_visualization import RECIPES

    shown = {f"{name} recipe": r.defaults for name, r in RECIPES.items()}
    own = _model_recipes("visualize_class.pixel")
    return dict(shown, **{f"{k}, pixel recipe": v for k, v in own.items()})


def _add_classvis(sub):
    from gradscope.methods.class_visualization import DEFAULT_RECIPE, RECIPES, SETTINGS

    p = sub.add_parser("classvis", help="synthesise an image of a class from noise")
    p.add_argument("classes", nargs="+", metavar="CLASS",
                   help="class(es): index, wnid or name (see `gradscope classes`)")
    p.add_argument("--recipe", choices=list(RECIPES), default=None,
                   help="robust: lucid with mirrors, wider scaling and colour jitter; lucid: Fourier + decorrelated "
                        "colour + pad/jitter/scale/rotation + Adam; pixel: the 2016 course recipe (pixels, L2, blur, "
                        f"jitter) (default {DEFAULT_RECIPE}; the course's TinyImageNet CNN: pixel, which reaches "
                        "p >= 0.99 on it where lucid does not)")
    add_settings(p, SETTINGS, recipes=_recipes_shown())
    _common(p)
    p.set_defaults(func=_run_classvis)


def _given(args, settings) -> dict:
    """The options given on the command line (None: left to the recipe)."""
    return {k: v for k, v in settings_values(args, settings).items() if v is not None}


def _run_classvis(args) -> int:
    from gradscope.methods import visualize_class
    from gradscope.methods.class_visualization import SETTINGS

    with _output(args, "classvis") as out, Progress("classvis", unit="steps") as bar:
        model, info = load_model(args)
        targets = [resolve_class_arg(model, info["spec"], c) for c in args.classes]
        r = visualize_class(model, targets, recipe=args.recipe, **_given(args, SETTINGS), seed=args.seed,
                            callback=bar.callback("target_prob"))
        names = unique_slugs([short_class(model.class_names[t]) for t in r.targets])
        records = [{**class_fields(model, t), "probability": float(p), "score": float(s),
                    "written": [_save(out, file_name(name, "classvis"), r.images[i])]}
                   for i, (t, p, s, name) in enumerate(zip(r.targets, r.final_prob, r.final_score, names))]
    lines = [f"class {_class_label(model, rec['class'])}: probability {rec['probability']:.4f} "
             f"(score {rec['score']:.2f})" for rec in records]
    written = [p for rec in records for p in rec["written"]]
    emit(args, envelope("classvis", info, records, params=r.params, written=written), lines + _written(written))
    return 0


def _add_featvis(sub):
    from gradscope.methods.feature_visualization import SETTINGS

    p = sub.add_parser("featvis", help="synthesise images that excite channels (or neurons) of a layer")
    p.add_argument("features", nargs="+", metavar="LAYER:CHANNEL",
                   help="e.g. block10:7 (one image each; see `gradscope cnn layers --model M`); prefer a layer "
                        "before its ReLU (bn7, not relu7): a channel that is zero on the grey start gets no gradient")
    p.add_argument("--neuron", action="store_true", help="excite the centre unit, not the channel's mean")
    p.add_argument("--diversity", type=nonneg_float, default=0.0,
                   help="weight of a diversity term between the images of one layer (default 0)")
    add_settings(p, SETTINGS)
    _common(p)
    p.set_defaults(func=_run_featvis)


def _run_featvis(args) -> int:
    from gradscope.methods.feature_visualization import SETTINGS, parse_feature, visualize_feature

    layers = {}
    for layer, c in (parse_feature(f) for f in args.features):
        layers.setdefault(layer, []).append(c)
    kind = "neuron" if args.neuron else "channel"
    records = []
    with _output(args, "featvis") as out, Progress("featvis", unit="steps") as bar:
        model, info = load_model(args)
        for layer, chans in layers.items():
            r = visualize_feature(model, layer, chans, kind=kind, diversity_weight=args.diversity, seed=args.seed,
                                  callback=bar.callback("objective"), **_given(args, SETTINGS))
            records += [{"layer": r.layer, "channel": int(c), "kind": kind, "value": float(r.final_value[i]),
                         "written": [_save(out, file_name(r.layer, f"{kind}{int(c)}", "featvis"), r.images[i])]}
                        for i, c in enumerate(r.channels)]
    lines = [f"{rec['layer']}:{rec['channel']} {kind}: {rec['value']:.3f}" for rec in records]
    written = [p for rec in records for p in rec["written"]]
    emit(args, envelope("featvis", info, records, params=r.params, written=written), lines + _written(written))
    return 0


# ---------------------------------------------------------------- inversion and dreams

INVERT_OPTIONS = ["iterations", "lr", "l2_reg", "tv_weight"]


def _add_invert(sub):
    from gradscope.methods.feature_inversion import SETTINGS

    p = sub.add_parser("invert", help="reconstruct images from their activations at a layer")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    p.add_argument("--layer", required=True, help="layer name or index (see `gradscope cnn layers --model M`)")
    add_settings(p, SETTINGS, INVERT_OPTIONS)
    _common(p)
    p.set_defaults(func=_run_invert)


def _run_invert(args) -> int:
    from gradscope.methods import invert
    from gradscope.methods.feature_inversion import SETTINGS

    images = load_images(args.images)
    stems = image_stems(args.images)
    with _output(args, "invert") as out, Progress("invert", unit="steps") as bar:
        model, info = load_model(args)
        x = np.concatenate([_model_input(model, im) for im in images])
        r = invert(model, x, args.layer, **settings_values(args, SETTINGS, INVERT_OPTIONS), seed=args.seed,
                   callback=bar.callback("distance"))
        records = [{"image": path, "layer": r.layer, "relative_feature_distance": float(r.final_distance[i]),
                    "written": [_save(out, file_name(stem, r.layer, "inverted"), r.images[i]),
                                _save(out, file_name(stem, "target"), r.target_images[i])]}
                   for i, (path, stem) in enumerate(zip(args.images, stems))]
    lines = [f"{rec['image']}: layer {r.layer}: relative feature distance {rec['relative_feature_distance']:.4f}"
             for rec in records]
    written = [p for rec in records for p in rec["written"]]
    emit(args, envelope("invert", info, records, params=r.params, written=written), lines + _written(written))
    return 0


def _add_dream(sub):
    from gradscope.methods.deepdream import SETTINGS

    p = sub.add_parser("dream", help="DeepDream images at a layer (at each image's own size where the model "
                                     "accepts any size)")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    p.add_argument("--layer", required=True, help="layer name or index (see `gradscope cnn layers --model M`)")
    add_settings(p, SETTINGS)
    _common(p)
    p.set_defaults(func=_run_dream)


def _run_dream(args) -> int:
    from gradscope.methods import deepdream
    from gradscope.methods.ascent import accepts_shape
    from gradscope.methods.deepdream import SETTINGS

    images = load_images(args.images)
    stems = image_stems(args.images)
    records = []
    with _output(args, "dream") as out:
        model, info = load_model(args)
        for path, stem, image in zip(args.images, stems, images):  # one at a time: each keeps its own size
            x = _model_input(model, image, keep_size=accepts_shape(model, image.shape[:2]))
            with Progress(f"dream {stem}", unit="steps") as bar:
                r = deepdream(model, x, args.layer, **settings_values(args, SETTINGS), seed=args.seed,
                              callback=bar.callback("activation_norm"))
            norm = r.activation_norm
            records.append({"image": path, "layer": r.layer, "sizes": [list(s) for s in r.sizes],
                            "activation_rms_before": float(norm[0, 0]) if len(norm) else None,
                            "activation_rms_after": float(norm[-1, 0]) if len(norm) else None,
                            "written": [_save(out, file_name(stem, r.layer, "dream"), r.images[0])]})
    lines = [f"{rec['image']}: layer {rec['layer']}: activation RMS {rec['activation_rms_before']:.3f} -> "
             f"{rec['activation_rms_after']:.3f} at sizes {', '.join(f'{h}x{w}' for h, w in rec['sizes'])}"
             for rec in records if rec["activation_rms_before"] is not None]
    written = [p for rec in records for p in rec["written"]]
    emit(args, envelope("dream", info, records, params=SETTINGS.params(settings_values(args, SETTINGS)),
                        written=written), lines + _written(written))
    return 0
