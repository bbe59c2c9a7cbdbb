"""Forward plus backward to the image (what saliency maps need) for a batch of images
through the shipped CNN, NumPy against PyTorch with the same weights, in the same
process with the same number of threads. Runs are interleaved so that background
load hits both alike; medians are reported, of wall time and of this process's CPU
time (with one thread the CPU time is the robust number on a busy machine: it does
not count time spent waiting for a core).

    python benchmarks/cnn.py [--batch 64] [--repeats 7] [--threads 1] [--profile]

Uses the shipped model (gradscope.cnn.load_pretrained()). Torch computes no weight gradients
(parameters are frozen), matching the NumPy side (param_grads=False).
"""
import argparse
import os
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=1, help="BLAS / torch threads for both")
    p.add_argument("--profile", action="store_true", help="also time every NumPy layer")
    return p.parse_args()


args = parse_args()
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(args.threads)  # before NumPy loads its BLAS

import numpy as np  # noqa: E402
import torch  # noqa: E402

from gradscope.cnn import load_pretrained  # noqa: E402
from gradscope.interface import score_gradient  # noqa: E402
from gradscope.cnn.torch_module import params_to_torch  # noqa: E402



def numpy_step(model, x, classes):
    return score_gradient(model, x, classes)


def torch_step(module, x, classes):
    xt = torch.from_numpy(x).requires_grad_(True)
    scores = module(xt)
    scores.gather(1, classes[:, None]).sum().backward()
    return scores.detach().numpy(), xt.grad.numpy()


def profile_layers(model, x, repeats=3):
    """Median forward and backward (input gradient only) CPU seconds of every layer."""
    rows = []
    h = x
    for step in model.steps:
        if step.kind is None:  # a residual block's join
            continue
        layer, p = step.layer, model._step_arrays(step)
        fwd, bwd = [], []
        for _ in range(repeats):
            t0 = time.process_time()
            out, cache, _ = step.kind.forward(layer, p, h, "test", None)
            t1 = time.process_time()
            step.kind.backward(layer, np.ones_like(out), cache, False)
            t2 = time.process_time()
            fwd.append(t1 - t0)
            bwd.append(t2 - t1)
        rows.append((step.name, np.median(fwd), np.median(bwd)))
        h = out
    return rows


def main():
    torch.set_num_threads(args.threads)
    model, what = load_pretrained(), "shipped model"
    module = params_to_torch(model.config, model.params, model.buffers).eval()
    for p in module.parameters():
        p.requires_grad_(False)
    rng = np.random.default_rng(0)
    S = model.input_size
    x = rng.standard_normal((args.batch, 3, S, S)).astype(np.float32)
    classes = rng.integers(0, model.num_classes, args.batch)
    s_np, dx_np = numpy_step(model, x, classes)
    s_t, dx_t = torch_step(module, x, torch.from_numpy(classes))
    wall = {"numpy": [], "torch": []}
    cpu = {"numpy": [], "torch": []}
    steps = {"numpy": lambda: numpy_step(model, x, classes),
             "torch": lambda: torch_step(module, x, torch.from_numpy(classes))}
    for _ in range(args.repeats):
        for name, step in steps.items():
            t0, c0 = time.perf_counter(), time.process_time()
            step()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    print(f"model: {what}; batch {args.batch} x 3 x {S} x {S}; threads {args.threads}; "
          f"{args.repeats} interleaved repeats; numpy {np.__version__}, torch {torch.__version__}")
    # float32 rounding can flip which input of a max-pool window is largest (both are
    # valid gradients), so dx is compared by relative L2 norm, not elementwise
    print(f"agreement: max |scores diff| {np.abs(s_np - s_t).max():.2e}, "
          f"|dx - dx_torch| / |dx_torch| = {np.linalg.norm(dx_np - dx_t) / np.linalg.norm(dx_t):.2e}")
    for label, times in (("wall", wall), ("cpu", cpu)):
        med = {k: float(np.median(v)) for k, v in times.items()}
        for k in ("numpy", "torch"):
            print(f"{label:4s} {k:6s} forward+backward to image: median {med[k] * 1000:8.1f} ms "
                  f"(min {min(times[k]) * 1000:.1f}, max {max(times[k]) * 1000:.1f})")
        print(f"{label:4s} ratio numpy / torch: {med['numpy'] / med['torch']:.2f} (target <= 1.5)")
    if args.profile:
        print(f"\nper layer, CPU time\n{'layer':<10} {'forward ms':>11} {'backward ms':>12}")
        for name, f, b in profile_layers(model, x):
            print(f"{name:<10} {f * 1000:11.1f} {b * 1000:12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
