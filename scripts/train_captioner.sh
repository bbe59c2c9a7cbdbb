#!/bin/sh
# Reproduce the shipped Flickr8k LSTM captioner, gradscope/captioning/pretrained/flickr8k_lstm.npz.
#   sh scripts/train_captioner.sh [FLICKR8K_DIR] [--torch-features]
# Features: EfficientNet-Lite0's pooled 1280-d features (shorter side 256, centre 224 crop), cached
# under $GRADSCOPE_CACHE (default ~/.cache/gradscope). `caption train` computes them with the NumPy
# engine (~2 s an image on a busy 2-core machine); --torch-features fills the same cache first with
# the torch twin (scripts/torch_features.py; equal to the NumPy features to 6.4e-6, checked before
# writing), which is how the shipped file was made: its arrays are then reproduced exactly.
# Recipe chosen on the dev split; the epoch with the best dev BLEU-4 (greedy, 1000 dev images) is kept.
# NumPy training: 7 epochs, 2-21 minutes each on 2 cores shared with ~7 other jobs.
set -e
DATA="${1:-../shared/data/flickr8k}"
if [ "$2" = "--torch-features" ]; then
    python scripts/torch_features.py "flickr8k:$DATA"
fi
gradscope caption train --data "flickr8k:$DATA" --cell lstm --hidden 512 --wordvec 256 \
    --optimizer adam --lr 2e-3 --lr-decay 0.8 --batch-size 128 --epochs 7 --clip 5 \
    --val-images 1000 --seed 0 --out runs/captioner
# float16 weights (half the size; loading casts back to float32)
python -c "from gradscope.captioning import load_captioner, save_captioner
save_captioner('gradscope/captioning/pretrained/flickr8k_lstm.npz', load_captioner('runs/captioner/model.npz'), float16=True)"
