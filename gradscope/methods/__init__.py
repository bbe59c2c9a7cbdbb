"""Image-gradient methods. Each depends only on the ImageModel protocol
(gradscope.methods.interface), takes model-input batches (N, 3, H, W), and returns a
result dataclass with `to_dict()` (JSON-able numbers) and `save(dest)` (PNGs).

Iterative methods take `seed` (same seed, same image) and `callback(iteration, info)`,
where info holds the step's numbers (arrays over the batch) and `images`, the current
images as uint8 (N, H, W, 3).
"""
from gradscope.methods.class_visualization import ClassVisResult, visualize_class
from gradscope.methods.deepdream import DreamResult, deepdream
from gradscope.methods.evaluation import (DeletionInsertionResult, PointingGameResult, deletion_insertion_auc,
                                          pointing_game)
from gradscope.methods.feature_inversion import InversionResult, invert
from gradscope.methods.fooling import FoolingResult, fool
from gradscope.methods.interface import ImageModel, resolve_class, resolve_layer
from gradscope.methods.saliency import SaliencyResult, integrated_gradients, saliency, smoothgrad

__all__ = ["saliency", "smoothgrad", "integrated_gradients", "fool", "visualize_class", "invert", "deepdream",
           "pointing_game", "deletion_insertion_auc", "ImageModel", "resolve_class", "resolve_layer",
           "SaliencyResult", "FoolingResult", "ClassVisResult", "InversionResult", "DreamResult",
           "PointingGameResult", "DeletionInsertionResult"]
