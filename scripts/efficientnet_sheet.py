"""docs/efficientnet_sheet.jpg: EfficientNet-Lite0 class visualisations, the old default
recipe ('pixel', the 2016 recipe with Lite0's settings) above Lucid's ('lucid') and the new
default ('robust'), on the held-out classes of scripts/featvis_eval.py (rendered there, or
here when missing).

    python scripts/efficientnet_sheet.py --renders DIR [--out docs/efficientnet_sheet.jpg] [--columns 4] [--available]
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from PIL import Image, ImageDraw

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import featvis_eval  # noqa: E402  (the renders and the class set)

from gradscope.imageio import load_image  # noqa: E402

TILE, LABEL = 200, 16
RECIPES = (("pixel", "pixel"), ("lucid", "lucid"), ("robust", "robust (default)"))


def _tile(path_png, caption):
    img = Image.fromarray(load_image(path_png)).resize((TILE, TILE), Image.BILINEAR)
    tile = Image.new("RGB", (TILE, TILE + LABEL), "white")
    tile.paste(img, (0, 0))
    ImageDraw.Draw(tile).text((3, TILE + 2), caption, fill="black")
    return tile


def sheet(renders, wnids, columns: int) -> Image.Image:
    rows = []
    for start in range(0, len(wnids), columns):
        for recipe, what in RECIPES:
            row = []
            for w in wnids[start:start + columns]:
                meta = json.load(open(os.path.join(renders, "lite0", recipe, f"{w}.json")))
                name = meta["class_name"].split(",")[0]
                row.append(_tile(os.path.join(renders, "lite0", recipe, f"{w}.png"),
                                 f"{what}: {name} p={meta['p_target']:.2f}"))
            rows.append(row)
    gap = 4
    width = columns * TILE + (columns - 1) * gap
    out = Image.new("RGB", (width, len(rows) * (TILE + LABEL + gap) - gap), "white")
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            out.paste(tile, (c * (TILE + gap), r * (TILE + LABEL + gap)))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--renders", required=True, help="the folder of scripts/featvis_eval.py render")
    p.add_argument("--out", default=os.path.join("docs", "efficientnet_sheet.jpg"))
    p.add_argument("--columns", type=int, default=4)
    p.add_argument("--first", type=int, default=0, help="only the first N held-out classes (0: all)")
    p.add_argument("--available", action="store_true",
                   help="only the held-out classes already rendered by both recipes (render nothing)")
    args = p.parse_args(argv)
    wnids = featvis_eval.heldout()[:args.first or None]
    if args.available:
        wnids = [w for w in wnids if all(os.path.exists(os.path.join(args.renders, "lite0", r, f"{w}.json"))
                                         for r, _ in RECIPES)]
    else:
        featvis_eval.render(args.renders, ["lite0"], [r for r, _ in RECIPES], wnids, print)
    sheet(args.renders, wnids, args.columns).save(args.out, quality=88)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
