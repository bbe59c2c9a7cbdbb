#!/bin/sh
# Reproduce the shipped TinyImageNet-100-A CNN exactly as it was trained (torch engine, CPU).
#   sh scripts/train_cnn.sh [TINYIMAGENET_DIR]
# Stage 1 ran the first 4 epochs of a 24-epoch one-cycle schedule; the machine was too busy
# to finish it in time, so stage 2 warm-starts from its weights with a shorter schedule.
set -e
DATA="${1:-../shared/data/tiny-imagenet-100-A}"
gradscope cnn train --data "$DATA" --out runs/cnn --epochs-schedule 32:18,48:4,64:2 --stop-after 4 --threads 2
gradscope cnn train --data "$DATA" --out runs/cnn2 --epochs-schedule 32:7,48:2,64:1 \
    --init-from runs/cnn/checkpoint.pt --threads 2
mkdir -p gradscope/cnn/pretrained
cp runs/cnn2/model.json gradscope/cnn/pretrained/tinyimagenet100a.json
cp runs/cnn2/model.npz gradscope/cnn/pretrained/tinyimagenet100a.npz
