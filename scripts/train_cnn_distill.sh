#!/bin/sh
# Stage 5 of the TinyImageNet-100-A CNN (issue 26): distil EfficientNet-Lite0 into it, from the
# project's root in a git checkout:
#   [SEED=0] [RUN=runs/cnn5] [THREADS=2] sh scripts/train_cnn_distill.sh [TINYIMAGENET_DIR] [INIT_MODEL.json] [TEACHER_IMAGES]
# 1. the teacher's logits (160 px, restricted to the 100 classes) for the first TEACHER_IMAGES
#    training images in class-balanced order (default all 50,000; 25-32 images/s on one core,
#    27 minutes; resumable, and a larger count continues the cached partial file);
# 2. a warm start from INIT_MODEL (default runs/cnn4/model.json, stage 4 of scripts/train_cnn.sh:
#    the file shipped before the soup) with the shipped stage-4 schedule (6 epochs one-cycle, peak lr 0.05, 4 on 48-pixel
#    and 2 on 56-pixel windows) and the distillation loss, w = 0.5, T = 2, on the images with
#    teacher logits (the label loss alone on the rest; 48 minutes on 2 cores). Measured with all
#    50,000: val-select 60.5% top-1 (seed 0), 61.9% (seed 1), 61.7% (seed 2), 61.7% (seed 3) and
#    60.7% (seed 4) against stage 4's 62.1% (THREADS=1 runs two seeds at once on 2 cores).
# 3. scripts/check_cnn.sh on the result (in RUN, default runs/cnn5). Alone it does not beat the
#    shipped stage-4 file; scripts/train_cnn.sh averages seeds 1 and 2 with stage 4 (a model soup, stage 6).
# If it is interrupted, run it again with RESUME=--resume: the trainer resumes from its last epoch.
set -e
DATA="${1:-../shared/data/tiny-imagenet-100-A}"
INIT="${2:-runs/cnn4/model.json}"
COUNT="${3:-50000}"
PY="${PYTHON:-python}"
mkdir -p runs
$PY scripts/teacher_logits.py "$DATA" --size 160 --threads 1 --count "$COUNT" | tee runs/teacher_prefix.log
TEACHER="$(tail -n 1 runs/teacher_prefix.log)"
# (a pipe's status is tee's: a failed teacher run shows here as a missing file)
[ -f "$TEACHER" ] || { echo "train_cnn_distill.sh: no teacher file (see runs/teacher_prefix.log)" >&2; exit 1; }
RUN="${RUN:-runs/cnn5}"
$PY -m gradscope cnn train --data "$DATA" --out "$RUN" --init-from "$INIT" --teacher "$TEACHER" \
    --distill-weight 0.5 --temperature 2 --epochs-schedule 64:4:48,64:2:56 --lr 0.05 \
    --widths 32,64,128,256,256 --threads "${THREADS:-2}" --seed "${SEED:-0}" $RESUME
sh scripts/check_cnn.sh "$RUN/model.json" "$DATA"
