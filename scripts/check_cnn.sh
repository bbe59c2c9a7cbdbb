#!/bin/sh
# The shipping checks of a TinyImageNet-100-A CNN (issue 26), from the project's root:
#   sh scripts/check_cnn.sh MODEL.json [TINYIMAGENET_DIR]
# Top-1/top-5 on both halves of val (NumPy engine; ship only on val-select, report val-report),
# fooling 100 correctly classified val images, and class visualisation of three classes with the
# shipped CNN's CLI defaults (the pixel recipe; images go to $OUT, default runs/check_classvis).
set -e
MODEL="$1"
DATA="${2:-../shared/data/tiny-imagenet-100-A}"
PY="${PYTHON:-python}"
for split in val-select val-report; do
    echo "== $split"
    $PY -m gradscope cnn evaluate --data "$DATA" --split $split --model "$MODEL"
done
echo "== fooling"
$PY -m gradscope fool --data "$DATA" --n 100 --model "$MODEL"
echo "== class visualisation"
$PY -m gradscope classvis "Egyptian cat" pretzel "school bus" --recipe pixel --model "$MODEL" \
    -o "${OUT:-runs/check_classvis}" --overwrite
