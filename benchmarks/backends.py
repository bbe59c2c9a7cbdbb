"""Time per iteration of each image-gradient method on the NumPy engine against the torch
adapter (gradscope.torch.cnn_to_torch: the same model, the same weights), in one run,
interleaved so that background load hits both alike; medians are reported.

    python benchmarks/backends.py [--batch 1] [--iterations 5] [--repeats 3] [--threads 1]

Uses the shipped model (gradscope.cnn.load_pretrained()). One "iteration" is one model evaluation with its gradient (one
gradient step; vanilla saliency is a single one). Prints ms per iteration and the ratio
numpy/torch (above 1: the torch adapter is faster).
"""
import argparse
import os
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=1, help="images per method call")
    p.add_argument("--iterations", type=int, default=5, help="steps per timed run of the iterative methods")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per method and engine")
    p.add_argument("--threads", type=int, default=1, help="BLAS / torch threads for both")
    p.add_argument("--device", default="cpu", help="torch device for the adapter")
    return p.parse_args()


args = parse_args()
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(args.threads)  # before NumPy loads its BLAS

import numpy as np  # noqa: E402
import torch  # noqa: E402

from gradscope.cnn import load_pretrained  # noqa: E402
from gradscope.methods import deepdream, fool, invert, saliency, visualize_class  # noqa: E402
from gradscope.torch import cnn_to_torch  # noqa: E402



def method_runs(model, x, layer, k):
    """name -> function(model) running the method; each returns the iterations it did."""
    n = len(x)
    unreachable = np.argmin(model.scores(x), axis=1)  # the least likely class

    def counted(run):
        def timed(m):
            calls = []
            run(m, lambda it, info: calls.append(it))
            return max(1, len(calls))
        return timed

    return {
        "saliency": lambda m: (saliency(m, x, [0] * n), 1)[1],
        # fooling: a tiny step keeps it from succeeding early, so it runs k steps
        "fooling": counted(lambda m, cb: fool(m, x, unreachable, step_size=1e-3, max_iter=k - 1, callback=cb)),
        "class_vis": counted(lambda m, cb: visualize_class(m, [0] * n, iterations=k, callback=cb)),
        "inversion": counted(lambda m, cb: invert(m, x, layer, iterations=k, callback=cb)),
        "deepdream": counted(lambda m, cb: deepdream(m, x, layer, iterations=k, octaves=None, callback=cb)),
    }


def main():
    torch.set_num_threads(args.threads)
    cnn, what = load_pretrained(), "shipped model"
    twin = cnn_to_torch(cnn, device=args.device)
    rng = np.random.default_rng(0)
    x = cnn.preprocess(rng.integers(0, 256, (args.batch, cnn.input_size, cnn.input_size, 3), dtype=np.uint8))
    relus = [n for n in cnn.layer_names if n.startswith("relu")]
    layer = relus[len(relus) // 2]  # a middle layer
    print(f"{what}, input {cnn.input_size}x{cnn.input_size}, batch {args.batch}, threads {args.threads}, "
          f"torch device {twin.device}; inversion/DeepDream at layer {layer}")
    print(f"{'method':10s} {'numpy ms/it':>12s} {'torch ms/it':>12s} {'numpy/torch':>12s}")
    for name, run in method_runs(cnn, x, layer, args.iterations).items():
        run(twin)  # warm up the torch side
        times = {"numpy": [], "torch": []}
        for _ in range(args.repeats):  # interleaved
            for key, model in (("numpy", cnn), ("torch", twin)):
                t0 = time.perf_counter()
                its = run(model)
                times[key].append((time.perf_counter() - t0) / its)
        t_np, t_t = np.median(times["numpy"]) * 1e3, np.median(times["torch"]) * 1e3
        print(f"{name:10s} {t_np:12.1f} {t_t:12.1f} {t_np / t_t:12.2f}")


if __name__ == "__main__":
    main()
