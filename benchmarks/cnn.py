"""Forward plus backward to the image (what saliency maps need) for a batch of images
through the shipped CNN, NumPy against PyTorch with the same weights, in the same
process with the same number of threads; runs interleaved, medians reported.

    python benchmarks/cnn.py [--batch 64] [--repeats 7] [--threads 2] [--profile]

Torch computes no weight gradients (parameters frozen), matching the NumPy side
(param_grads=False). GFLOP/s count the convolution and affine products, forward plus
the input-gradient backward (2x), against the matmul peak measured in the same run.
--profile also times every NumPy layer, forward and backward, and splits the
convolutions into GEMM, im2col copies and the rest.
"""
import argparse
import sys
import time

import _setup


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--profile", action="store_true", help="also time every NumPy layer")
    p.add_argument("--winograd", action="store_true", help="turn on the opt-in Winograd path (conv.USE_WINOGRAD)")
    _setup.add_arguments(p)
    return p.parse_args()


args = parse_args()
_setup.configure(args.threads, args.blas_core)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from gradscope.cnn import load_pretrained  # noqa: E402
from gradscope.interface import score_gradient  # noqa: E402
import gradscope.layers.conv as conv  # noqa: E402


def numpy_step(model, x, classes):
    return score_gradient(model, x, classes)


def torch_step(module, x, classes):
    xt = torch.from_numpy(x).requires_grad_(True)
    scores = module(xt)
    scores.gather(1, classes[:, None]).sum().backward()
    return scores.detach().numpy(), xt.grad.numpy()


class ConvSplit:
    """Wraps the convolution's im2col and padding to count the seconds spent copying."""
    def __init__(self):
        self.seconds = 0.0
        self._im2col, self._pad = conv._im2col, conv._pad_channels_last
        conv._im2col, conv._pad_channels_last = self._timed(self._im2col), self._timed(self._pad)

    def _timed(self, fn):
        def run(*a, **k):
            t0 = time.process_time()
            out = fn(*a, **k)
            self.seconds += time.process_time() - t0
            return out
        return run

    def close(self):
        conv._im2col, conv._pad_channels_last = self._im2col, self._pad


def print_profile(rows):
    print(f"\nper layer (median CPU ms of this process; conv copies = padding + im2col, forward and backward)\n"
          f"{'layer':<10} {'forward':>8} {'backward':>9} {'copies':>7}")
    kinds = {"GEMM (conv and affine, less copies)": 0.0, "conv copies": 0.0, "elementwise (relu, pool)": 0.0}
    for name, kind, _, f, b, c in rows:
        print(f"{name:<10} {f * 1e3:8.1f} {b * 1e3:9.1f} {c * 1e3:7.1f}")
        if kind in ("conv", "affine"):
            kinds["GEMM (conv and affine, less copies)"] += f + b - c
            kinds["conv copies"] += c
        else:
            kinds["elementwise (relu, pool)"] += f + b
    total = sum(kinds.values())
    for k, v in kinds.items():
        print(f"  {k:<38} {v * 1e3:7.1f} ms ({100 * v / total:4.1f}%)")


def main():
    conv.USE_WINOGRAD = args.winograd
    model = load_pretrained()
    module = _setup.frozen_torch_twin(model)
    rng = np.random.default_rng(0)
    S = model.input_size
    x = rng.standard_normal((args.batch, 3, S, S)).astype(np.float32)
    classes = rng.integers(0, model.num_classes, args.batch)
    tclasses = torch.from_numpy(classes)
    line, peak = _setup.header(args.threads)
    print(f"{line}\nshipped CNN, batch {args.batch} x 3 x {S} x {S}, {args.repeats} interleaved repeats")
    s_np, dx_np = numpy_step(model, x, classes)
    s_t, dx_t = torch_step(module, x, tclasses)
    # float32 rounding can flip which input of a max-pool window is largest, or the sign
    # of a ReLU input within rounding of 0 (each flip moves dx by ~1e-3 in relative L2;
    # both sides are valid float32 answers), so dx is compared by relative L2 norm
    print(f"agreement: max |scores diff| {np.abs(s_np - s_t).max():.2e}, "
          f"|dx - dx_torch| / |dx_torch| = {np.linalg.norm(dx_np - dx_t) / np.linalg.norm(dx_t):.2e}")
    t = _setup.timed({"numpy": lambda: numpy_step(model, x, classes),
                      "torch": lambda: torch_step(module, x, tclasses)}, args.repeats)
    _setup.print_image_gradient_times(t, 2 * args.batch * _setup.cnn_forward_flops(model), peak)  # fwd + bwd
    print(_setup.ratio_line(t))
    if args.profile:
        print_profile(_setup.profile_path(model, x, counter=ConvSplit))
    return 0


if __name__ == "__main__":
    sys.exit(main())
