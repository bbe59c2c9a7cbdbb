#!/bin/sh
# The README's figure of one caption with its per-word attention maps, docs/explain_attention.png:
# `gradscope caption explain` (the shipped attention captioner, beam 3) on a Flickr8k dev photo.
#   sh scripts/explain_figure.sh [FLICKR8K_DIR] [PHOTO_NAME]
set -e
DATA="${1:-../shared/data/flickr8k}"
PHOTO="${2:-2090545563_a4e66ec76b.jpg}"
OUT="${TMPDIR:-/tmp}/gradscope_explain_figure"
rm -rf "$OUT"
gradscope caption explain "$DATA/images/$PHOTO" -o "$OUT"
cp "$OUT/$(basename "$PHOTO" .jpg)_caption.png" docs/explain_attention.png
