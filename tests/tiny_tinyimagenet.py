"""Write a tiny TinyImageNet directory (standard layout) for tests."""
import numpy as np
from PIL import Image

WNIDS = ["n01", "n02", "n03"]


def make_tiny_tinyimagenet(root, per_class=3, size=8, seed=0, n_classes=3):
    """n_classes classes (wnids n01, n02, ...), `per_class` training images each (the first
    of class 1 grayscale), 4 validation images (classes 3, 1, 2, 3 when n_classes is 3),
    bounding boxes, and a words.txt naming the first two classes."""
    wnids = [f"n{i + 1:02d}" for i in range(n_classes)]
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (root / "words.txt").write_text("n01\tgoldfish, Carassius auratus\nn02\ttabby, tabby cat\nn99\tunused\n")
    for c, wnid in enumerate(wnids):
        folder = root / "train" / wnid
        (folder / "images").mkdir(parents=True)
        lines = []
        for j in range(per_class):
            name = f"{wnid}_{j}.JPEG"
            if c == 1 and j == 0:
                Image.fromarray(np.full((size, size), 200, np.uint8), mode="L").save(folder / "images" / name)
            else:
                Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / "images" / name)
            lines.append(f"{name}\t{j}\t{j + 1}\t{j + 5}\t{j + 6}")
        (folder / f"{wnid}_boxes.txt").write_text("\n".join(lines) + "\n")
    (root / "val" / "images").mkdir(parents=True)
    ann = []
    for i, wnid in enumerate([wnids[(c - 1) % n_classes] for c in (3, 1, 2, 3)]):
        img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(img).save(root / "val" / "images" / f"val_{i}.JPEG")
        ann.append(f"val_{i}.JPEG\t{wnid}\t1\t2\t3\t4")
    (root / "val" / "val_annotations.txt").write_text("\n".join(ann) + "\n")
    return root
