#!/bin/sh
# The README's figure of one caption with its per-word attention maps, docs/explain_attention.jpg:
# `gradscope caption explain` (the shipped default captioner, beam 3) on a Flickr8k dev photo.
#   sh scripts/explain_figure.sh [FLICKR8K_DIR] [PHOTO_NAME]
set -e
DATA="${1:-../shared/data/flickr8k}"
PHOTO="${2:-2090545563_a4e66ec76b.jpg}"
OUT="${TMPDIR:-/tmp}/gradscope_explain_figure"
rm -rf "$OUT"
gradscope caption explain "$DATA/images/$PHOTO" -o "$OUT" --map attention  # attention maps in the first row, then contribution, gradient
python -c "from PIL import Image; import sys
im = Image.open(sys.argv[1]).convert('RGB')
im.resize((im.width * 2 // 3, im.height * 2 // 3), Image.LANCZOS).save('docs/explain_attention.jpg', quality=85)" \
    "$OUT/$(basename "$PHOTO" .jpg | tr _ -)_caption.png"
