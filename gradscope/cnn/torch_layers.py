"""torch modules for layer types torch.nn lacks (the torch twins of gradscope/cnn/
layer_types.py records). Imported only when a twin is built."""
from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

from gradscope.layers.padding import same_pads

__all__ = ["SamePad"]


class SamePad(nn.Module):
    """TF "SAME" zero padding for a kernel/stride (the extra row/column bottom/right)."""

    def __init__(self, kernel: int, stride: int):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x):
        top, bottom, left, right = same_pads(x.shape[2], x.shape[3], self.kernel, self.stride)
        return F.pad(x, (left, right, top, bottom))

    def extra_repr(self):
        return f"kernel={self.kernel}, stride={self.stride}"
