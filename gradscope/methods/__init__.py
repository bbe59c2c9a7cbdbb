"""Image-gradient methods. Each depends only on the ImageModel protocol
(gradscope/interface.py, re-exported as gradscope.methods.interface), takes model-input
batches (N, 3, H, W), and returns a result dataclass with `to_dict()` (JSON-able
numbers) and `save(dest)` (PNGs).

Class visualisation, feature inversion and DeepDream are recipes over one loop,
`optimize` (ascent.py), which optimises the parameters of a parameterisation (params.py:
pixels, Fourier coefficients with decorrelated colour, masks) seen through random
differentiable views (views.py: pad, jitter, scale, rotation); `ascend` is its pixel form
with octaves. The loop is built from small pieces: objectives (objectives.py: class score,
class log-probability, channel, neuron, feature match, activation energy, diversity), priors
(regularizers.py: l2_prior + tv_prior), views (jitter, scale_jitter; views.py: pad,
crop_jitter, random_scale, random_rotate) and after-steps (blur_every, clip_pixels), and
step rules (steps.py: normalized_step, adam_step). Objectives add and scale:
`channel("block10", 7) - 0.5 * channel("block10", 3)`. Class visualisation has two recipes
(RECIPES in class_visualization.py): 'lucid' (the default; Fourier + decorrelated colour +
views + Adam, shared with `visualize_feature`) and 'pixel' (the 2016 recipe). The pixel
recipes take extra `priors=` and `transforms=`, so TV on DeepDream is
`deepdream(model, x, layer, priors=[tv_prior(1e-3)])`.
`fool` keeps its own loop (each image stops when its saved uint8 version is fooled) with
the same objectives and steps.

Vocabulary: `iterations` is the total number of steps of a run (over all octaves);
`max_iter` the most steps per image of `fool`; `points` the path points of integrated
gradients; `step` the pixels per deletion/insertion step; `seed` seeds every random choice of a
method that has any (deterministic methods take none). Each method module has one
settings record, SETTINGS (gradscope.methods.settings): the single source of its defaults
(DEFAULTS = SETTINGS.defaults), of the default values its docstrings state and of the
command line's options, help texts and stated defaults (class visualisation: one record per
recipe in RECIPES, and SETTINGS, all of them, for the command line).

Progress: every iterative method takes `callback(done, info)`, called after each unit
of work: `done` counts the units completed so far (steps; model inputs scored for
`deletion_insertion_auc`; `fool` also reports its initial check as 0) and `info` is a
dict holding `total` (the number of units in the run) and the step's numbers, per-image
(N,) arrays named as in the method's docstring, plus `images` (uint8 (N, H, W, 3), the
current images) for the methods that make images. Library code never prints.
"""
from gradscope.methods.ascent import AscentResult, OptimizeResult, ascend, optimize
from gradscope.methods.class_visualization import ClassVisResult, visualize_class
from gradscope.methods.deepdream import DreamResult, deepdream
from gradscope.methods.evaluation import (DeletionInsertionResult, PointingGameResult, deletion_insertion_auc,
                                          pointing_game)
from gradscope.methods.feature_inversion import InversionResult, invert
from gradscope.methods.feature_visualization import FeatureVisResult, visualize_feature
from gradscope.methods.fooling import FoolingResult, fool
from gradscope.methods.gradcam import gradcam
from gradscope.methods.occlusion import occlusion
from gradscope.methods.perturbation import extremal_perturbation
from gradscope.methods.interface import ImageModel, resolve_class, resolve_layer, score_gradient
from gradscope.methods.objectives import (Objective, activation_energy, channel, class_log_prob, class_score,
                                          diversity, feature_match, neuron)
from gradscope.methods.regularizers import blur_every, clip_pixels, jitter, l2_prior, tv_prior
from gradscope.methods.saliency import SaliencyResult, integrated_gradients, saliency, smoothgrad
from gradscope.methods.steps import adam_step, normalized_step

__all__ = ["saliency", "smoothgrad", "integrated_gradients", "gradcam", "occlusion", "extremal_perturbation", "fool",
           "visualize_class", "visualize_feature", "invert", "deepdream",
           "pointing_game", "deletion_insertion_auc", "ImageModel", "resolve_class", "resolve_layer",
           "score_gradient", "ascend", "optimize", "OptimizeResult", "class_score", "class_log_prob", "feature_match", "activation_energy",
           "channel", "neuron", "diversity", "Objective",
           "l2_prior", "tv_prior", "jitter", "blur_every", "clip_pixels", "normalized_step", "adam_step",
           "SaliencyResult", "FoolingResult", "ClassVisResult", "FeatureVisResult", "InversionResult", "DreamResult", "AscentResult",
           "PointingGameResult", "DeletionInsertionResult"]
