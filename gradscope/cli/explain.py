"""`gradscope caption explain IMAGE... -o OUT [--json]`: where each word of each image's caption looked.

For every word of the caption `gradscope caption IMAGE` gives, OUT gets <image>_<t>_<word>.png
(the word's maps over the photo, gradscope.captioning.explain.WORD_MAPS: the default contribution
map, gradient x (pixel - mean pixel) of log p(word | image, words before); the gradient map
|d log p / d pixels|; for an attention captioner its attention, alpha upsampled; with --all-maps
also integrated gradients and occlusion) and <image>_caption.png (the strip of the whole
caption); OUT/explain.json holds the numbers, with the deletion check per word for every map.
"""
from __future__ import annotations

import os

from gradscope.captioning.evaluate import BEAM_SIZE, LENGTH_NORM
from gradscope.captioning.explain import DEFAULT_MAP, MAPS, WORD_MAPS
from gradscope.cli.args import beam_size, caption_length, exponent, fraction, seed_int
from gradscope.cli.common import add_json_arg, captioner_help, captioner_info
from gradscope.cli.output import add_output_args, emit, envelope, image_stems, new_output
from gradscope.cli.progress import Progress
from gradscope.errors import GradscopeError


def register_explain(sub) -> None:
    """Add `explain` to the `caption` subcommands."""
    p = sub.add_parser("explain", help="word-level saliency: which pixels made each word of the caption",
                       description="Caption each image (as `gradscope caption IMAGE`) and map, for every word, "
                                   "the gradient of its log-probability with respect to the pixels.")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    add_output_args(p)
    p.add_argument("--fraction", type=fraction, default=0.1,
                   help="deletion check: fraction of pixels replaced by the mean pixel (default 0.1)")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the random-deletion baseline (default %(default)s)")
    p.add_argument("--no-deletion", action="store_true", help="skip the deletion check")
    p.add_argument("--model", default=None, metavar="PATH", help=captioner_help())
    p.add_argument("--beam", type=beam_size, default=BEAM_SIZE, metavar="K",
                   help="beam size (1 = greedy; default %(default)s)")
    p.add_argument("--length-norm", type=exponent, default=LENGTH_NORM, metavar="ALPHA",
                   help="beam length normalisation (default %(default)s)")
    p.add_argument("--max-length", type=caption_length, default=30, metavar="T", help="longest caption (default 30)")
    p.add_argument("--map", choices=list(MAPS), default=DEFAULT_MAP,
                   help="the map shown first and scored as deletion_drop_top/random (default %(default)s: of the "
                        "maps free beyond the gradient, the one whose deletion check came out best on Flickr8k dev): "
                        + "; ".join(f"{m.name}: {m.help}" for m in WORD_MAPS))
    p.add_argument("--all-maps", action="store_true",
                   help="also make and score the maps that need CNN passes of their own ("
                        + ", ".join(m.name for m in WORD_MAPS if m.passes) + "); otherwise only the free ones")
    add_json_arg(p)
    p.set_defaults(func=run_explain)


def run_explain(args) -> int:
    from gradscope.captioning import load_named, load_pretrained
    from gradscope.captioning.explain import explain_caption
    from gradscope.captioning.features import feature_fn_for
    from gradscope.fileio import save_json
    from gradscope.imageio import load_image

    if not 0 < args.fraction < 1:
        raise GradscopeError(f"--fraction must be between 0 and 1, got {args.fraction}")
    captioner = load_pretrained() if args.model is None else load_named(args.model)
    extractor = feature_fn_for(captioner)
    if not hasattr(getattr(extractor, "model", None), "backward_from"):
        raise GradscopeError("this captioner's features do not come from a CNN with a backward pass to the "
                             "pixels, so there are no pixel gradients")
    images = [load_image(p) for p in args.images]  # every file read before any output
    rows = []
    with new_output(args.output, args.overwrite, "-o", "caption explain") as out, \
            Progress("caption explain", total=len(images), unit="images") as bar:
        for k, (path, stem, image) in enumerate(zip(args.images, image_stems(args.images), images)):
            result = explain_caption(captioner, extractor, image, name=path, beam=args.beam,
                                     max_length=args.max_length, length_norm=args.length_norm,
                                     fraction=args.fraction, deletion=not args.no_deletion, seed=args.seed,
                                     default_map=args.map, maps="all" if args.all_maps else None)
            rows.append(_final_paths(result.save(out.dir, stem), out))
            bar.update(k + 1)
        payload = envelope("caption explain", captioner_info(captioner, args.model), rows)
        save_json(out.path("explain.json"), payload)
    emit(args, payload, _summary(rows, args.output, args.fraction))
    return 0


def _final_paths(row: dict, out) -> dict:
    """A saved row with the paths under out.dir replaced by their final paths."""
    def fix(value):
        if isinstance(value, str) and value.startswith(out.dir + os.sep):
            return out.final_path(value)
        if isinstance(value, dict):
            return {k: fix(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fix(v) for v in value]
        return value

    return fix(row)


def _summary(rows, out, fraction) -> list:
    """The text summary: each word's log-prob and deletion drops (the default map's, then any other map's),
    and per map how often top-pixel deletion beat random deletion."""
    lines, counts = [], {}  # map name -> [beats, words]
    for row in rows:
        default = row["map"]
        lines.append(f'{row["image"]}: "{row["caption"]}"  ({row["figure"]})')
        for w in row["words"]:
            checks = []
            for name, prefix in [(default, "")] + [(k[:-len("_deletion_drop_top")], k[:-len("deletion_drop_top")])
                                                  for k in w if k.endswith("_deletion_drop_top")]:
                top, rand = w[prefix + "deletion_drop_top"], w[prefix + "deletion_drop_random"]
                if top is None:
                    continue
                checks.append(f"{name} top {fraction:.0%} {top:+.3f}")
                c = counts.setdefault(name, [0, 0])
                c[0], c[1] = c[0] + (top > rand), c[1] + 1
            check = "" if not checks else f"  deletion drop: {', '.join(checks)}, random {w['deletion_drop_random']:+.3f}"
            lines.append(f"  {w['word']:12s} log p {w['logprob']:7.3f}{check}")
    for name, (beats, total) in counts.items():
        lines.append(f"top-pixel deletion by the {name} map lowered the word's log-prob more than random deletion "
                     f"for {beats} of {total} words")
    lines.append(f"wrote {os.path.join(out, 'explain.json')}")
    return lines
