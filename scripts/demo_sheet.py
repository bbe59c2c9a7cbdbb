"""docs/demo_sheet.png: the TinyImageNet CNN's figures of a demo run, on one sheet.

    gradscope demo -o demo_out
    python scripts/demo_sheet.py demo_out [--out docs/demo_sheet.png] [--tile 160]

Row 1: a photo and its vanilla and SmoothGrad saliency; a photo and its fooling image.
Row 2: the fooling perturbation (amplified); four class visualisations (the pixel recipe).
Row 3: a photo and its inversions from relu2 and relu7; a photo and its DeepDream.
"""
from __future__ import annotations

import argparse
import os
import sys

from PIL import Image

from gradscope.fileio import atomic_path

ROWS = [["saliency_coffee_photo", "saliency_coffee_vanilla", "saliency_coffee_smoothgrad",
         "fooling_original", "fooling_fooled"],
        ["fooling_difference", "classvis_0_22", "classvis_1_13", "classvis_2_94", "classvis_3_15"],
        ["inversion_target", "inversion_relu2", "inversion_relu7", "deepdream_original", "deepdream_dream"]]


def sheet(images_dir: str, tile: int = 160, gap: int = 4) -> Image.Image:
    """The ROWS grid of tile x tile images (resized with Lanczos) on white, gap pixels apart."""
    columns = max(len(row) for row in ROWS)
    out = Image.new("RGB", (columns * tile + (columns + 1) * gap, len(ROWS) * tile + (len(ROWS) + 1) * gap), "white")
    for r, row in enumerate(ROWS):
        for c, name in enumerate(row):
            with Image.open(os.path.join(images_dir, name + ".png")) as im:
                im = im.convert("RGB").resize((tile, tile), Image.LANCZOS)
            out.paste(im, (gap + c * (tile + gap), gap + r * (tile + gap)))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("demo_out", help="the folder `gradscope demo -o` wrote")
    p.add_argument("--out", default=os.path.join("docs", "demo_sheet.png"))
    p.add_argument("--tile", type=int, default=160)
    args = p.parse_args(argv)
    images = os.path.join(args.demo_out, "images")
    missing = [n for row in ROWS for n in row if not os.path.isfile(os.path.join(images, n + ".png"))]
    if missing:
        print(f"demo_sheet.py: {images!r} lacks {', '.join(missing)} (run `gradscope demo -o DIR` first)", file=sys.stderr)
        return 2
    with atomic_path(args.out) as tmp:
        sheet(images, args.tile).save(tmp, format="PNG", optimize=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
