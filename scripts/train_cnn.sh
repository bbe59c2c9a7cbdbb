#!/bin/sh
# Reproduce the shipped TinyImageNet-100-A CNN exactly as it was trained (torch engine, CPU,
# 2 threads), from the project's root:
#   sh scripts/train_cnn.sh [TINYIMAGENET_DIR]
# One one-cycle run of 8 epochs: 7 on random 48-pixel windows of the 64-pixel images (objects
# at their test-time scale, at about half the cost of a full-size epoch), then 1 on shifted
# full-size images so that the batch-norm statistics match test time. If it is interrupted,
# run it again: the trainer resumes exactly from its last epoch's checkpoint.
set -e
DATA="${1:-../shared/data/tiny-imagenet-100-A}"
${PYTHON:-python} -m gradscope cnn train --data "$DATA" --out runs/cnn --epochs-schedule 64:7:48,64:1 \
    --widths 32,64,128,256,256 --threads 2 --seed 0 --resume
mkdir -p gradscope/cnn/pretrained
cp runs/cnn/model.json gradscope/cnn/pretrained/tinyimagenet100a.json
cp runs/cnn/model.npz gradscope/cnn/pretrained/tinyimagenet100a.npz
