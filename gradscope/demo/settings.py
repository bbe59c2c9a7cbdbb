"""How much work each demo section does: the full demo (measured under 5 minutes on 2
cores) and a quick mode for tests and smoke runs."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from gradscope.captioning.evaluate import BEAM_SIZE

__all__ = ["DemoSettings", "FULL", "QUICK", "CLASSVIS_CLASSES", "FOOLING_TARGETS"]

# preferred classes (first ones the model knows are used; others fill up from the top)
CLASSVIS_CLASSES = ("goldfish", "monarch", "jellyfish", "school bus", "pizza", "lemon")
FOOLING_TARGETS = ("school bus", "goldfish", "lemon")


@dataclass(frozen=True)
class DemoSettings:
    top_k: int = 5
    beam_size: int = BEAM_SIZE  # as `gradscope caption`
    max_caption_length: int = 20
    smoothgrad_samples: int = 16
    smoothgrad_sigma: float = 0.15
    faithfulness_methods: tuple = ("vanilla", "smoothgrad", "ig", "gradcam", "occlusion", "perturbation")
    perturbation_iterations: int = 60  # the faithfulness table's extremal perturbation (cheap; default 200)
    fool_max_iter: int = 100
    fool_step_size: float = 0.25
    classvis_classes: int = 4
    classvis_iterations: int = 120  # the old (pixel) recipe
    classvis_new_classes: int = 2  # the new default recipe beside it (the first of the same classes)
    classvis_new_iterations: int = 512
    inversion_iterations: int = 150
    dream_iterations: int = 30  # total over the octaves
    dream_octaves: int = 3
    dream_size: int = 128
    display_size: int = 256  # side of the crops that overlays and thumbnails are drawn on

    def to_dict(self) -> dict:
        return asdict(self)


FULL = DemoSettings()
QUICK = DemoSettings(smoothgrad_samples=2, faithfulness_methods=("vanilla", "gradcam"), fool_max_iter=5, classvis_classes=2, classvis_iterations=4,
                     classvis_new_classes=1, classvis_new_iterations=3,
                     inversion_iterations=4, dream_iterations=4, dream_octaves=2, dream_size=64,
                     display_size=96)  # whole captions: the same max_caption_length as FULL
