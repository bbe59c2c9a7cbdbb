"""The computations behind each demo section. Each calls the library (the CNN, the
captioner, gradscope.methods) and returns numbers or result objects; none draws or saves."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gradscope import methods
from gradscope.cnn.preprocessing import center_crop_resize
from gradscope.errors import GradscopeError
from gradscope.layers.core import softmax
from gradscope.interface import pixels_to_input, resolve_class

__all__ = ["TopK", "Captions", "top_k", "caption_images", "attributions", "fooling", "class_visualizations",
           "inversions", "dream", "pick_classes", "pick_fooling_target", "inversion_layers", "dream_layer",
           "dream_input", "cnn_history", "soup_size", "captioner_history"]


@dataclass
class TopK:
    """classes (N, k) and probs (N, k) of the k most likely classes, best first."""
    classes: np.ndarray
    probs: np.ndarray


@dataclass
class Captions:
    """Per image: greedy and beam-search captions (strings) with their log-probabilities (N,)."""
    greedy: list
    greedy_log_prob: np.ndarray
    beam: list
    beam_log_prob: np.ndarray
    beam_size: int


def top_k(model, x, k: int) -> TopK:
    """The k most likely classes of model inputs x (N, 3, S, S)."""
    probs = softmax(model.scores(x).astype(np.float64))  # (N, C)
    k = min(k, probs.shape[1])
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return TopK(order, np.take_along_axis(probs, order, axis=1))


def caption_images(captioner, cnn, pixels, beam_size: int, max_length: int) -> Captions:
    """Greedy and beam-search captions of uint8 photos from the features the captioner was
    trained on: the demo CNN's penultimate layer, or the CNN the captioner names."""
    from gradscope.captioning import beam_search, sequence_log_prob
    from gradscope.captioning.features import cnn_feature_fn, feature_fn_for, is_known_extractor
    from gradscope.data.vocab import decode_captions

    features = cnn_feature_fn(cnn)
    trained_on = str(captioner.info.get("features", "") or "")
    if trained_on != features.name and is_known_extractor(trained_on):  # its own CNN (EfficientNet-Lite0)
        features = feature_fn_for(captioner)
    if features.dim != captioner.input_dim or (trained_on and trained_on != features.name):
        raise GradscopeError(f"the captioner takes {captioner.input_dim}-D image features "
                             f"({trained_on or 'of unknown origin'}) but the CNN gives {features.dim}-D ones "
                             f"({features.name}): they were not trained together")
    feats = features(pixels)  # (N, D)
    greedy = captioner.sample(feats, max_length=max_length)
    beam, beam_lp = beam_search(captioner, feats, beam_size=beam_size, max_length=max_length)
    words = captioner.idx_to_word
    return Captions(decode_captions(greedy, words), sequence_log_prob(captioner, feats, greedy),
                    decode_captions(beam, words), np.asarray(beam_lp, dtype=np.float64), beam_size)


def attributions(model, x, settings, seed: int) -> tuple:
    """(vanilla saliency, SmoothGrad) of each image's predicted class."""
    vanilla = methods.saliency(model, x)
    smooth = methods.smoothgrad(model, x, vanilla.classes, n_samples=settings.smoothgrad_samples,
                                sigma=settings.smoothgrad_sigma, seed=seed)
    return vanilla, smooth


def faithfulness(model, x, classes, settings, seed: int) -> dict:
    """{method: DeletionInsertionResult} of each faithfulness method's maps of `classes` on
    the demo photos (RISE deletion/insertion, each beside seeded random maps); the methods
    run with their defaults, extremal perturbation with settings.perturbation_iterations steps."""
    from gradscope.methods.faithfulness import map_methods

    extra = {"perturbation": {"iterations": settings.perturbation_iterations},
             "smoothgrad": {"n_samples": settings.smoothgrad_samples}}
    out = {}
    for method in map_methods(settings.faithfulness_methods, extra):
        maps = method.maps(model, x, classes, seed=seed)
        out[method.name] = methods.deletion_insertion_auc(model, x, classes, maps, seed=seed)
    return out


def _known(model, names) -> list:
    out = []
    for name in names:
        try:
            out.append(resolve_class(model, name))
        except GradscopeError:
            continue
    return out


def pick_fooling_target(model, predicted: int, preferred) -> int:
    """The first preferred class the model knows that is not `predicted`; else the class
    half the list away from it."""
    for c in _known(model, preferred):
        if c != predicted:
            return c
    return (predicted + len(model.class_names) // 2) % len(model.class_names)


def fooling(model, x, target: int, settings, callback=None):
    """FoolingResult of the first image of x made to look like `target`."""
    return methods.fool(model, x[:1], target, step_size=settings.fool_step_size,
                        max_iter=settings.fool_max_iter, callback=callback)


def pick_classes(model, preferred, n: int) -> list:
    """n distinct classes: the preferred ones the model knows, then 0, 1, 2, ..."""
    chosen = list(dict.fromkeys(_known(model, preferred)))[:n]
    fill = (c for c in range(len(model.class_names)) if c not in chosen)
    while len(chosen) < min(n, len(model.class_names)):
        chosen.append(next(fill))
    return chosen


def class_visualizations(model, classes, settings, seed: int, callback=None):
    """(old, new) ClassVisResults, one synthesised image per class (batched): the 2016 pixel
    recipe on every class (settings.classvis_iterations steps) and the library's default recipe
    (class_visualization.DEFAULT_RECIPE, settings.classvis_new_iterations steps) on the first
    settings.classvis_new_classes of them (the new recipe costs ~4x more per image)."""
    from gradscope.methods.class_visualization import DEFAULT_RECIPE

    old = methods.visualize_class(model, list(classes), recipe="pixel", iterations=settings.classvis_iterations,
                                  seed=seed, callback=callback)
    new = methods.visualize_class(model, list(classes)[:settings.classvis_new_classes], recipe=DEFAULT_RECIPE,
                                  iterations=settings.classvis_new_iterations, seed=seed, callback=callback)
    return old, new


def _relu_layers(model) -> list:
    layers = getattr(model, "config", {}).get("layers", [])
    relus = [layer["name"] for layer in layers if layer.get("type") == "relu"]
    return relus or list(model.layer_names[:-1]) or list(model.layer_names)


def inversion_layers(model) -> tuple:
    """(early, deep): the second ReLU and the one three quarters of the way up (the last
    ones see too little of the image at 64x64 to be inverted recognisably)."""
    relus = _relu_layers(model)
    return relus[min(1, len(relus) - 1)], relus[min(len(relus) - 1, 3 * len(relus) // 4)]


def dream_layer(model) -> str:
    """A middle ReLU: mid-level patterns (textures, parts) make the clearest dreams."""
    relus = _relu_layers(model)
    return relus[len(relus) // 2]


def inversions(model, x, layers, settings, seed: int, callback=None) -> list:
    """InversionResult of the first image of x at each layer."""
    return [methods.invert(model, x[:1], layer, iterations=settings.inversion_iterations, seed=seed,
                           callback=callback) for layer in layers]


def dream_input(model, pixels, size: int) -> np.ndarray:
    """(1, 3, size, size) model input of the centre crop of a uint8 photo at any size."""
    return pixels_to_input(model, center_crop_resize(pixels, size)[None])


def dream(model, x, layer, settings, seed: int, callback=None):
    """DreamResult on x (1, 3, H, W) at `layer`."""
    return methods.deepdream(model, x, layer, iterations=settings.dream_iterations,
                             octaves=settings.dream_octaves, seed=seed, callback=callback)


def cnn_history(cnn) -> list:
    """Per-epoch training records stored in the CNN's config (empty list if none); for a model
    soup (gradscope.cnn.soup), the longest member's: the run the other members branch from."""
    training = getattr(cnn, "config", {}).get("training") or {}
    history = training.get("history") or []
    if not history and isinstance(training.get("members"), list):
        history = max(((m or {}).get("history") or [] for m in training["members"] if isinstance(m, dict)),
                      key=len, default=[])
    return [dict(r) for r in history if isinstance(r, dict)]


def soup_size(cnn) -> int:
    """How many networks a model soup's weights average (0: not a soup)."""
    members = (getattr(cnn, "config", {}).get("training") or {}).get("members")
    return len(members) if isinstance(members, list) else 0


def captioner_history(captioner) -> list:
    """Per-epoch training records stored in the captioner's metadata (empty list if none):
    the first list of epoch dicts among info['training']['history'], info['history'],
    info['epochs'] (TrainResult.epochs records, whose 'val' dict is flattened)."""
    info = getattr(captioner, "info", {}) or {}
    training = info.get("training") if isinstance(info.get("training"), dict) else {}
    for history in (training.get("history"), info.get("history"), info.get("epochs")):
        if isinstance(history, list) and history:
            return [_flat_record(r) for r in history if isinstance(r, dict)]
    return []


def _flat_record(record: dict) -> dict:
    """{'epoch': 1, 'train_loss': .., 'val': {'Bleu_4': ..}} -> one flat dict."""
    flat = {k: v for k, v in record.items() if not isinstance(v, dict)}
    for v in record.values():
        if isinstance(v, dict):
            flat.update(v)
    return flat
