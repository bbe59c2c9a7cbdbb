"""Every layer's public backward checks its upstream gradient once, first, with the one
check of gradscope/layers/_validate.py: a wrong shape or a non-array is a ShapeError
naming the upstream gradient and both shapes."""
import numpy as np
import pytest

from gradscope.errors import ShapeError
from gradscope.layers import (affine_backward, affine_forward, batchnorm_backward, batchnorm_backward_input,
                              batchnorm_forward, conv_backward, conv_backward_input, conv_backward_reference,
                              conv_forward, conv_forward_reference, depthwise_conv_backward,
                              depthwise_conv_backward_input, depthwise_conv_forward, dropout_backward,
                              dropout_forward, global_avg_pool_backward, global_avg_pool_forward, lstm_backward,
                              lstm_forward, max_pool_backward, max_pool_backward_reference, max_pool_forward,
                              max_pool_forward_reference, pad_backward, pad_forward, pointwise_conv_backward,
                              pointwise_conv_backward_input, pointwise_conv_forward, relu6_backward, relu6_forward,
                              relu_backward, relu_forward, rnn_backward, rnn_forward, spatial_batchnorm_backward,
                              spatial_batchnorm_forward, temporal_affine_backward, temporal_affine_forward,
                              word_embedding_backward, word_embedding_forward)
from gradscope.layers.depthwise import (depthwise_conv_backward_input_plain, depthwise_conv_forward_plain,
                                        pointwise_conv_backward_plain, pointwise_conv_forward_plain)

rng = np.random.default_rng(0)
X4 = rng.standard_normal((2, 3, 6, 6))
BN = {"mode": "train"}

# name -> (forward run on small inputs, backwards that take its cache)
CASES = {
    "affine": (lambda: affine_forward(X4, rng.standard_normal((108, 4)), np.zeros(4)), [affine_backward]),
    "relu": (lambda: relu_forward(X4), [relu_backward]),
    "relu6": (lambda: relu6_forward(X4), [relu6_backward]),
    "conv": (lambda: conv_forward(X4, rng.standard_normal((4, 3, 3, 3)), np.zeros(4), 1, 1),
             [conv_backward, conv_backward_input]),
    "conv reference": (lambda: conv_forward_reference(X4, rng.standard_normal((4, 3, 3, 3)), np.zeros(4)),
                       [conv_backward_reference]),
    "max pool": (lambda: max_pool_forward(X4, 2, 2), [max_pool_backward]),
    "max pool reference": (lambda: max_pool_forward_reference(X4, 2, 2), [max_pool_backward_reference]),
    "global avg pool": (lambda: global_avg_pool_forward(X4), [global_avg_pool_backward]),
    "batchnorm": (lambda: batchnorm_forward(X4[:, :, 0, 0], np.ones(3), np.zeros(3), BN),
                  [batchnorm_backward, batchnorm_backward_input]),
    "spatial batchnorm test": (lambda: spatial_batchnorm_forward(X4, np.ones(3), np.zeros(3), {"mode": "test"}),
                               [spatial_batchnorm_backward, batchnorm_backward_input]),
    "dropout": (lambda: dropout_forward(X4, 0.5, "train", seed=1), [dropout_backward]),
    "depthwise": (lambda: depthwise_conv_forward(X4, rng.standard_normal((3, 1, 3, 3))),
                  [depthwise_conv_backward, depthwise_conv_backward_input]),
    "depthwise plain": (lambda: depthwise_conv_forward_plain(X4, rng.standard_normal((3, 1, 3, 3))),
                        [depthwise_conv_backward_input_plain]),
    "pointwise": (lambda: pointwise_conv_forward(X4, rng.standard_normal((5, 3, 1, 1))),
                  [pointwise_conv_backward, pointwise_conv_backward_input]),
    "pointwise plain": (lambda: pointwise_conv_forward_plain(X4, rng.standard_normal((5, 3, 1, 1))),
                        [pointwise_conv_backward_plain]),
    "pad": (lambda: pad_forward(X4, (1, 0, 2, 1)), [pad_backward]),
    "rnn": (lambda: rnn_forward(X4[:, :, :, 0], np.zeros((2, 4)), rng.standard_normal((6, 4)),
                                rng.standard_normal((4, 4)), np.zeros(4)), [lambda d, c: rnn_backward(d, c)]),
    "lstm": (lambda: lstm_forward(X4[:, :, :, 0], np.zeros((2, 4)), rng.standard_normal((6, 16)),
                                  rng.standard_normal((4, 16)), np.zeros(16)), [lambda d, c: lstm_backward(d, c)]),
    "temporal affine": (lambda: temporal_affine_forward(X4[:, :, :, 0], rng.standard_normal((6, 4)), np.zeros(4)),
                        [temporal_affine_backward]),
    "word embedding": (lambda: word_embedding_forward(np.array([[0, 2], [1, 1]]), rng.standard_normal((3, 4))),
                       [word_embedding_backward]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_backward_rejects_a_wrong_upstream_gradient(name):
    forward, backwards = CASES[name]
    out, cache = forward()
    for backward in backwards:
        backward(np.ones_like(out), cache)  # the right shape passes
        wrong = np.ones(out.shape[:-1] + (out.shape[-1] + 1,))
        with pytest.raises(ShapeError, match=rf"upstream gradient.*{tuple(out.shape)}.*{wrong.shape}".replace("(", r"\(")
                           .replace(")", r"\)")):
            backward(wrong, cache)
        with pytest.raises(ShapeError, match="upstream gradient.*list"):
            backward(np.ones_like(out).tolist(), cache)
