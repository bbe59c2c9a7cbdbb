"""Write gradscope/course/tinyimagenet100a_mean.npz: the mean training image of
TinyImageNet-100-A, (3, 64, 64) in 0..255 pixel units, the mean the CS231n course's
`load_tiny_imagenet` subtracts. gradscope.course.PretrainedCNN uses it to turn the course's
mean-subtracted images back into pixels for the shipped model.

    python scripts/course_mean_image.py ../shared/data/tiny-imagenet-100-A
"""
import os
import sys

import numpy as np

from gradscope.data.tinyimagenet import TinyImageNet, load_rgb
from gradscope.fileio import save_npz

OUT = os.path.join(os.path.dirname(__file__), "..", "gradscope", "course", "tinyimagenet100a_mean.npz")


def main(root):
    items = TinyImageNet(root).items("train")
    total = np.zeros((64, 64, 3))
    for path, _, _ in items:
        total += load_rgb(path, 64)
    mean = (total / len(items)).transpose(2, 0, 1).astype(np.float32)  # (3, 64, 64)
    save_npz(OUT, {"mean_image": mean, "n_images": np.array(len(items))})
    print(f"{len(items)} images; channel means {mean.mean(axis=(1, 2)).round(3).tolist()}; wrote {OUT}")


if __name__ == "__main__":
    main(sys.argv[1])
