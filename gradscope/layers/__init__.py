"""Layers as pure functions: `x_forward(...) -> (out, cache)` and
`x_backward(dout, cache) -> grads`, each backward beside its forward.

    core           affine, relu, softmax_loss
    recurrent      vanilla RNN and LSTM: single step and full sequence
    attention      soft attention over image regions, the attention-LSTM: step and sequence
    temporal       word embedding, temporal affine, masked temporal softmax loss
    conv           convolution
    pooling        max pooling, global average pooling
    normalization  batch norm and spatial batch norm
    dropout        inverted dropout
    depthwise      depthwise (per-channel) and 1x1 convolution
    padding        zero padding per side, TF "SAME" amounts
    activation     ReLU6
"""
from gradscope.layers.core import *  # noqa: F401,F403
from gradscope.layers.recurrent import *  # noqa: F401,F403
from gradscope.layers.attention import *  # noqa: F401,F403
from gradscope.layers.temporal import *  # noqa: F401,F403
from gradscope.layers.conv import *  # noqa: F401,F403
from gradscope.layers.pooling import *  # noqa: F401,F403
from gradscope.layers.normalization import *  # noqa: F401,F403
from gradscope.layers.dropout import *  # noqa: F401,F403
from gradscope.layers.depthwise import *  # noqa: F401,F403
from gradscope.layers.padding import *  # noqa: F401,F403
from gradscope.layers.activation import *  # noqa: F401,F403
