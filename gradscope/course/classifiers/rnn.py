"""The course's CaptioningRNN: gradscope's model (same constructor, params names and shapes,
loss(features, captions) -> (loss, grads), sample(features, max_length=30)) with the
course's initial parameters.

The initial parameters are drawn as the course draws them, from NumPy's global random
state (so a notebook's np.random.seed(...) fixes them) in the course's order and scales:
W_embed (V, W) ~ N(0, 1) / 100; W_proj (D, H) / sqrt(D), b_proj = 0; Wx (W, G*H) / sqrt(W),
Wh (H, G*H) / sqrt(H), b = 0; W_vocab (H, V) / sqrt(H), b_vocab = 0 (G = 4 for the LSTM,
1 for the RNN), then cast to dtype; and its loss value is computed in the course's
arithmetic (gradscope.course.rnn_layers.temporal_softmax_loss). After the same seed the
parameters, the loss and a gradient check's printed errors are the course's. seed=N draws the same sequence from
np.random.RandomState(N) instead, leaving the global state alone.

Difference: `idx_to_word` is a list of V entries (None at an id no word has), not a dict.
"""
import numpy as np

from gradscope.captioning.model import CaptioningRNN as _CaptioningRNN
from gradscope.course.rnn_layers import temporal_softmax_loss

__all__ = ["CaptioningRNN"]


class CaptioningRNN(_CaptioningRNN):
    __doc__ = _CaptioningRNN.__doc__
    softmax_loss = staticmethod(temporal_softmax_loss)  # the loss value in the course's arithmetic

    def __init__(self, word_to_idx, input_dim=512, wordvec_dim=128, hidden_dim=128, cell_type="rnn",
                 dtype=np.float32, seed=None):
        super().__init__(word_to_idx, input_dim=input_dim, wordvec_dim=wordvec_dim, hidden_dim=hidden_dim,
                         cell_type=cell_type, dtype=dtype)  # draws from its own generator, not np.random's
        draw = np.random.randn if seed is None else np.random.RandomState(seed).randn
        self.params = course_initial_params(draw, self.vocab_size, self.input_dim, self.wordvec_dim,
                                            self.hidden_dim, 4 if self.cell_type == "lstm" else 1, self.dtype)


def course_initial_params(randn, V, D, W, H, G, dtype) -> dict:
    """The course's initial parameters from randn(*shape) calls in the course's order (see the
    module docstring); biases zero; every array cast to dtype."""
    params = {}
    params["W_embed"] = randn(V, W) / 100  # (V, W)
    params["W_proj"] = randn(D, H) / np.sqrt(D)  # (D, H)
    params["b_proj"] = np.zeros(H)
    params["Wx"] = randn(W, G * H) / np.sqrt(W)  # (W, G*H)
    params["Wh"] = randn(H, G * H) / np.sqrt(H)  # (H, G*H)
    params["b"] = np.zeros(G * H)
    params["W_vocab"] = randn(H, V) / np.sqrt(H)  # (H, V)
    params["b_vocab"] = np.zeros(V)
    return {k: v.astype(dtype) for k, v in params.items()}
