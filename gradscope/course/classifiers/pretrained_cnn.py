"""The course's PretrainedCNN over gradscope's CNN: forward/backward by blocks, on images
in the course's units.

Blocks: the course numbered its layers as blocks, [conv - batchnorm - relu] x 9, then
[affine - batchnorm - relu], then the [affine] giving scores (indices 0..10). Here a block
ends at every ReLU and the layers after the last ReLU form the final block (the scores):
the course's own model (h5_file) gets exactly the course's 11 blocks; the shipped
TinyImageNet model gets 10 (9 conv blocks, then global pooling and the classifier), its
max pools opening the block after them.

Units: X is 0..255 pixels minus the TinyImageNet-100-A mean training image (what
data_utils.load_tiny_imagenet returns), or minus its per-channel mean for images of
another size (preprocess_image(..., mean='pixel')). The course's model reads these
directly. For the shipped model, forward maps them linearly to its input space and
backward scales the gradient back, so dX is the gradient with respect to the course's X
and the course's learning rates and regularisation weights apply as written.
"""
import os

import numpy as np

from gradscope.errors import GradscopeError
from gradscope.fileio import load_npz

__all__ = ["PretrainedCNN", "MEAN_IMAGE_PATH"]

MEAN_IMAGE_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                               "tinyimagenet100a_mean.npz")


def _blocks(model):
    """[(first layer name, last layer name)] of each block (module docstring)."""
    layers = model.describe()
    ends = [i for i, layer in enumerate(layers) if layer["type"] == "relu"]
    if not ends or ends[-1] != len(layers) - 1:
        ends.append(len(layers) - 1)
    starts = [0] + [e + 1 for e in ends[:-1]]
    return [(layers[s]["name"], layers[e]["name"]) for s, e in zip(starts, ends)]


def default_mean_image():
    """(3, 64, 64) float32: the TinyImageNet-100-A mean training image, 0..255 units."""
    return load_npz(MEAN_IMAGE_PATH)["mean_image"]


class PretrainedCNN:
    """PretrainedCNN(dtype=np.float32, num_classes=100, input_size=64, h5_file=None).

    h5_file None: gradscope's shipped TinyImageNet-100-A model; a path: the course's
    pretrained_model.h5 (gradscope.cnn.course_h5). mean_image (gradscope's addition):
    the (3, 64, 64) mean the inputs had subtracted, for the shipped model only (default
    the TinyImageNet-100-A training mean). `model` is the gradscope CNN underneath.
    """

    def __init__(self, dtype=np.float32, num_classes=100, input_size=64, h5_file=None, mean_image=None):
        from gradscope.cnn import load_pretrained
        from gradscope.cnn.course_h5 import load_course_h5

        self.dtype = np.dtype(dtype)
        if h5_file is None:
            self.model = load_pretrained(dtype=self.dtype)
            lo, hi = self.model.pixel_bounds()  # model inputs of pixels 0 and 255, (1, 3, 1, 1)
            self._scale = ((hi - lo) / 255.0).astype(np.float64)
            mean = default_mean_image() if mean_image is None else np.asarray(mean_image, dtype=np.float64)
            self._offset = lo + self._scale * mean[None]  # model input of a course X of 0
        else:
            self.model = load_course_h5(h5_file, input_size=input_size, dtype=self.dtype)
            self._scale, self._offset = None, None  # the course's model reads course units
        if self.model.num_classes != num_classes:
            raise GradscopeError(f"the model has {self.model.num_classes} classes, not num_classes={num_classes}")
        self.input_size, self.num_classes = input_size, num_classes
        self.blocks = _blocks(self.model)
        self.params = self.model.params

    def _index(self, i, default, what):
        i = default if i is None else i
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < len(self.blocks):
            raise GradscopeError(f"{what} must be a block index in 0..{len(self.blocks) - 1}, got {i!r}")
        return int(i)

    def _to_model(self, X):
        if self._scale is None:
            return X
        offset = self._offset
        if offset.shape[2:] != X.shape[2:]:  # another size: the mean was the per-channel one
            offset = offset.mean(axis=(2, 3), keepdims=True)
        return X * self._scale + offset

    def forward(self, X, start=None, end=None, mode="test"):
        """Run blocks start..end (inclusive; default all) on X, the input of block `start`
        ((N, 3, H, W) course-unit images for block 0). Returns (out, cache)."""
        s = self._index(start, 0, "start")
        e = self._index(end, len(self.blocks) - 1, "end")
        if s > e:
            raise GradscopeError(f"start block {s} comes after end block {e}")
        X = np.asarray(X, dtype=np.float64 if s == 0 else self.dtype)
        x = self._to_model(X) if s == 0 else X
        out, cache = self.model.forward(x.astype(self.dtype), start=self.blocks[s][0],
                                        end=self.blocks[e][1], mode=mode)
        return out, (s, cache)

    def backward(self, dout, cache):
        """dout shaped like forward's out -> (dX shaped like forward's X, grads of the
        parameters of the blocks run, keyed like `params`)."""
        s, model_cache = cache
        dx, grads = self.model.backward(np.asarray(dout, dtype=self.dtype), model_cache)
        if s == 0 and self._scale is not None:
            dx = dx * self._scale.astype(self.dtype)  # chain rule through the linear map
        return dx, grads

    def loss(self, X, y=None):
        """Scores (N, C) in test mode when y is None, else (loss, grads) in train mode
        (softmax cross-entropy, as the course's)."""
        from gradscope.layers import softmax_loss

        mode = "test" if y is None else "train"
        scores, cache = self.forward(X, mode=mode)
        if y is None:
            return scores
        loss, dscores = softmax_loss(scores, np.asarray(y))
        return loss, self.backward(dscores, cache)[1]
