"""The course's layers: gradscope's affine, ReLU, batch norm and softmax loss.

Course convention kept: the batch-norm forwards store the updated running statistics
back into `bn_param` (gradscope's layers leave it untouched and return them in the cache).
"""
from gradscope.layers import core as _core
from gradscope.layers import normalization as _norm
from gradscope.layers.core import affine_backward, affine_forward, relu_backward, relu_forward  # noqa: F401

__all__ = ["affine_forward", "affine_backward", "relu_forward", "relu_backward", "batchnorm_forward",
           "batchnorm_backward", "spatial_batchnorm_forward", "spatial_batchnorm_backward", "softmax_loss"]


def _keep_running_stats(result, bn_param):
    out, cache = result
    bn_param["running_mean"], bn_param["running_var"] = cache.running_mean, cache.running_var
    return out, cache


def batchnorm_forward(x, gamma, beta, bn_param):
    """x (N, D) -> (out, cache); bn_param's running statistics are updated in place (train mode)."""
    return _keep_running_stats(_norm.batchnorm_forward(x, gamma, beta, bn_param), bn_param)


def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    """x (N, C, H, W) -> (out, cache); bn_param's running statistics are updated in place."""
    return _keep_running_stats(_norm.spatial_batchnorm_forward(x, gamma, beta, bn_param), bn_param)


batchnorm_backward = _norm.batchnorm_backward
spatial_batchnorm_backward = _norm.spatial_batchnorm_backward
softmax_loss = _core.softmax_loss
