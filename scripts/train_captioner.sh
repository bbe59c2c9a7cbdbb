#!/bin/sh
# Reproduce the shipped Flickr8k LSTM captioner (features: the shipped CNN's penultimate layer).
#   sh scripts/train_captioner.sh [FLICKR8K_DIR]
# The epoch with the best dev BLEU-4 (greedy, 1000 dev images) is kept; 12 epochs of 1-6
# minutes each on 2 cores (slower while other jobs ran).
set -e
DATA="${1:-../shared/data/flickr8k}"
gradscope caption train --data "flickr8k:$DATA" --cell lstm --hidden 512 --wordvec 256 \
    --optimizer adam --lr 2e-3 --lr-decay 0.9 --batch-size 128 --epochs 12 --clip 5 \
    --val-images 1000 --seed 0 --out runs/captioner
mkdir -p gradscope/captioning/pretrained
cp runs/captioner/model.npz gradscope/captioning/pretrained/flickr8k_lstm.npz
