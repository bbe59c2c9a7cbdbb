#!/bin/sh
# Reproduce the shipped TinyImageNet-100-A model (about 60-90 CPU-minutes on 2 cores).
exec gradscope cnn train --data "${1:-../shared/data/tiny-imagenet-100-A}" --out runs/cnn
