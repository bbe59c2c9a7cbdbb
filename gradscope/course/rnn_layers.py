"""The course's rnn_layers: gradscope's recurrent and temporal layers under the course's names.

The one difference in a signature: temporal_softmax_loss takes the course's `verbose`
flag, which only the course's own debugging print used; it is accepted and ignored.
"""
import numpy as np

from gradscope.layers import temporal as _temporal
from gradscope.layers.recurrent import (lstm_backward, lstm_forward, lstm_step_backward,  # noqa: F401
                                        lstm_step_forward, rnn_backward, rnn_forward,
                                        rnn_step_backward, rnn_step_forward)
from gradscope.layers.temporal import (temporal_affine_backward, temporal_affine_forward,  # noqa: F401
                                       word_embedding_backward, word_embedding_forward)

__all__ = ["rnn_step_forward", "rnn_step_backward", "rnn_forward", "rnn_backward",
           "lstm_step_forward", "lstm_step_backward", "lstm_forward", "lstm_backward",
           "word_embedding_forward", "word_embedding_backward", "temporal_affine_forward",
           "temporal_affine_backward", "temporal_softmax_loss", "sigmoid"]


def sigmoid(x):
    """Logistic function, stable for large |x|: 1 / (1 + exp(-x)) written through tanh."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x)))


def temporal_softmax_loss(x, y, mask, verbose=False):
    """gradscope.layers.temporal_softmax_loss: x (N, T, V), y (N, T), mask (N, T) ->
    (loss, dx (N, T, V)); `verbose` is accepted for the course's signature."""
    return _temporal.temporal_softmax_loss(x, y, mask)
