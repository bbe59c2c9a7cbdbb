#!/bin/sh
# Reproduce the shipped TinyImageNet-100-A CNN exactly as it was trained (torch engine, CPU,
# 2 threads), from the project's root in a git checkout:
#   sh scripts/train_cnn.sh [TINYIMAGENET_DIR]
# Stages 1-2 are the previously shipped model (git commit dd54f55, made by that commit's
# scripts/train_cnn.sh: 14 epochs, mostly at 32 px); this script takes its file from git.
# Stage 3 warm-starts from it with a fresh 2-epoch one-cycle schedule: 1 epoch on random
# 48-pixel windows of the 64-pixel images, 1 on 56-pixel windows (objects keep their
# test-time scale at about half and three quarters of the cost of a full-size epoch).
# Stage 4 warm-starts from stage 3 with a fresh 6-epoch one-cycle schedule: 4 epochs on
# 48-pixel windows, 2 on 56-pixel windows (about 12 minutes on 2 free cores).
# Stage 5 distils EfficientNet-Lite0 into stage 4's network twice (scripts/train_cnn_distill.sh
# with seeds 1 and 2: the teacher's logits once, 27 minutes on one core, then 6 epochs, 48-78
# minutes a seed).
# Stage 6, the shipped file: the mean of the weights of stage 4 and the two stage-5 runs (a model
# soup, `gradscope cnn soup`) with its batch-norm statistics measured again on 3,000 training
# images (about a minute).
# If it is interrupted, add --resume to the train line and run it again: the trainer resumes
# exactly from its last checkpoint (stage 5: RESUME=--resume).
set -e
DATA="${1:-../shared/data/tiny-imagenet-100-A}"
PREV=dd54f55:gradscope/cnn/pretrained/tinyimagenet100a
mkdir -p runs/cnn_prev
git show "$PREV.json" > runs/cnn_prev/model.json
git show "$PREV.npz" > runs/cnn_prev/model.npz
${PYTHON:-python} -m gradscope cnn train --data "$DATA" --out runs/cnn3 --init-from runs/cnn_prev/model.json \
    --epochs-schedule 64:1:48,64:1:56 --lr 0.05 --widths 32,64,128,256,256 --threads 2 --seed 0
${PYTHON:-python} -m gradscope cnn train --data "$DATA" --out runs/cnn4 --init-from runs/cnn3/model.json \
    --epochs-schedule 64:4:48,64:2:56 --lr 0.05 --widths 32,64,128,256,256 --threads 2 --seed 0
SEED=1 RUN=runs/cnn5_seed1 sh scripts/train_cnn_distill.sh "$DATA" runs/cnn4/model.json
SEED=2 RUN=runs/cnn5_seed2 sh scripts/train_cnn_distill.sh "$DATA" runs/cnn4/model.json
${PYTHON:-python} -m gradscope cnn soup runs/cnn4/model.json runs/cnn5_seed1/model.json runs/cnn5_seed2/model.json \
    --data "$DATA" --out runs/cnn6
mkdir -p gradscope/cnn/pretrained
cp runs/cnn6/model.json gradscope/cnn/pretrained/tinyimagenet100a.json
cp runs/cnn6/model.npz gradscope/cnn/pretrained/tinyimagenet100a.npz
