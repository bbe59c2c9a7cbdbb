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
    (loss, dx (N, T, V)); `verbose` is accepted for the course's signature.

    The loss value is computed in the course's arithmetic: the softmax probabilities first,
    then the log of each target's (gradscope takes shifted score minus log-sum, which
    rounds differently). Equal to 1e-16 relative, but numeric gradient checks divide such
    rounding by a tiny step, and the notebooks print those errors: this way they print
    the course's. dx is gradscope's."""
    loss, dx = _temporal.temporal_softmax_loss(x, y, mask)
    x = np.asarray(x)
    x = x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float64)  # (N, T, V)
    N, T, V = x.shape
    x2 = x.reshape(N * T, V)
    probs = np.exp(x2 - x2.max(axis=1, keepdims=True))  # (N*T, V)
    probs /= probs.sum(axis=1, keepdims=True)
    target = probs[np.arange(N * T), np.asarray(y).reshape(-1)]
    course_loss = -np.sum(np.asarray(mask).reshape(-1) * np.log(target)) / N
    return loss.dtype.type(course_loss), dx
