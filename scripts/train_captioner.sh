#!/bin/sh
# Reproduce the shipped Flickr8k LSTM captioner (features: EfficientNet-Lite0's pooled 1280-d
# features, shorter side 256, centre 224 crop).
#   sh scripts/train_captioner.sh [FLICKR8K_DIR]
set -e
DATA="${1:-../shared/data/flickr8k}"
gradscope caption train --data "flickr8k:$DATA" --cell lstm --hidden 512 --wordvec 256 \
    --optimizer adam --lr 2e-3 --lr-decay 0.8 --batch-size 128 --epochs 10 --clip 5 \
    --val-images 1000 --seed 0 --out runs/captioner
