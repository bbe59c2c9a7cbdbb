"""Speed of gradscope's lstm_forward/rnn_forward (+ backward) against torch.nn.LSTM / nn.RNN
on the CPU: same shapes, same dtype, same number of threads, measured in one run with
the two implementations interleaved (so background load hits both alike).

    python benchmarks/recurrent.py                 # captioning shape and a larger one
    python benchmarks/recurrent.py --repeats 9 --threads 1

Prints median times of forward and of forward+backward, the ratio gradscope/torch
(below 1 means gradscope is faster) and the achieved GFLOP/s, counting the matrix
products only: forward 2*N*T*(D+H)*G*H FLOPs (G = 4 gates for the LSTM, 1 for the
RNN), backward twice that. Times are wall clock and process CPU time (median, and the
fastest run); on a machine shared with other jobs, the CPU time of a single-threaded
run (--threads 1) is the steadier measure.
"""
from __future__ import annotations

import argparse
import ctypes
import glob
import os
import time

import numpy as np
import torch

from gradscope.layers.recurrent import lstm_backward, lstm_forward, rnn_backward, rnn_forward

SHAPES = {"captioning": (128, 16, 256, 512), "large": (256, 32, 512, 1024)}


def _openblas():
    """NumPy's bundled OpenBLAS as (get_num_threads, set_num_threads), or None."""
    libdir = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    for path in glob.glob(os.path.join(libdir, "*openblas*")):
        lib = ctypes.CDLL(path)
        for prefix, suffix in (("scipy_openblas_", "64_"), ("openblas_", "64_"), ("openblas_", "")):
            try:
                get = getattr(lib, f"{prefix}get_num_threads{suffix}")
                put = getattr(lib, f"{prefix}set_num_threads{suffix}")
            except AttributeError:
                continue
            get.restype = ctypes.c_int
            put.argtypes = [ctypes.c_int]
            return get, put
    return None


def numpy_threads(requested: int | None) -> int:
    """Set (when requested) and return the number of threads NumPy's BLAS uses."""
    blas = _openblas()
    if blas is None:
        env = os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS")
        if requested is not None and env != str(requested):
            raise SystemExit("cannot set NumPy's BLAS threads here; "
                             "set OPENBLAS_NUM_THREADS instead")
        return int(env) if env else os.cpu_count()
    get, put = blas
    if requested is not None:
        put(requested)
    return get()


def _clocks():
    return time.perf_counter(), time.process_time()


def _elapsed(t0, t1, t2):
    """(forward, forward+backward) in wall-clock seconds, then in process CPU seconds."""
    return t1[0] - t0[0], t2[0] - t0[0], t1[1] - t0[1], t2[1] - t0[1]


def make_case(kind, N, T, D, H, dtype, seed=0):
    """Random inputs, the gradscope call and the equivalent torch module call."""
    G = 4 if kind == "lstm" else 1
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, T, D)).astype(dtype)
    h0 = rng.standard_normal((N, H)).astype(dtype)
    Wx = (rng.standard_normal((D, G * H)) / np.sqrt(D)).astype(dtype)
    Wh = (rng.standard_normal((H, G * H)) / np.sqrt(H)).astype(dtype)
    b = np.zeros(G * H, dtype)
    dh = rng.standard_normal((N, T, H)).astype(dtype)
    fwd, bwd = (lstm_forward, lstm_backward) if kind == "lstm" else (rnn_forward, rnn_backward)
    if kind == "lstm":
        module = torch.nn.LSTM(D, H, batch_first=True)
    else:
        module = torch.nn.RNN(D, H, nonlinearity="tanh", batch_first=True)
    module = module.to(torch.float32 if dtype == np.float32 else torch.float64)
    xt = torch.from_numpy(x).requires_grad_()
    h0t = torch.from_numpy(h0[None]).requires_grad_()
    state = (h0t, torch.zeros_like(h0t)) if kind == "lstm" else h0t
    dht = torch.from_numpy(dh)

    def ours():
        t0 = _clocks()
        h, cache = fwd(x, h0, Wx, Wh, b)
        t1 = _clocks()
        bwd(dh, cache)
        return _elapsed(t0, t1, _clocks())

    def theirs():
        for p in (*module.parameters(), xt, h0t):
            p.grad = None
        t0 = _clocks()
        out, _ = module(xt, state)
        t1 = _clocks()
        out.backward(dht)
        return _elapsed(t0, t1, _clocks())

    flops_fwd = 2.0 * N * T * (D + H) * G * H
    return ours, theirs, flops_fwd


def bench(kind, shape, dtype, repeats):
    ours, theirs, flops_fwd = make_case(kind, *shape, dtype)
    ours(), theirs()  # warm up
    times = {"gradscope": [], "torch": []}
    for _ in range(repeats):  # interleaved
        times["gradscope"].append(ours())
        times["torch"].append(theirs())
    med = {k: np.median(np.array(v), axis=0) for k, v in times.items()}
    best = {k: np.min(np.array(v), axis=0) for k, v in times.items()}
    flops = np.array([flops_fwd, 3 * flops_fwd, flops_fwd, 3 * flops_fwd])
    N, T, D, H = shape
    print(f"{kind.upper()} N={N} T={T} D={D} H={H} {np.dtype(dtype).name}, {repeats} runs; "
          f"medians (cpu: process CPU time; best: fastest run)")
    for name, m in med.items():
        g = flops / m / 1e9
        print(f"  {name:9s} forward {m[0] * 1e3:7.1f} ms ({g[0]:5.1f} GFLOP/s), "
              f"forward+backward {m[1] * 1e3:7.1f} ms ({g[1]:5.1f} GFLOP/s) | "
              f"cpu {m[2] * 1e3:7.1f}, {m[3] * 1e3:7.1f} ms | best cpu {best[name][3] * 1e3:7.1f} ms")
    r = med["gradscope"] / med["torch"]
    rb = best["gradscope"] / best["torch"]
    print(f"  ratio gradscope/torch: forward {r[0]:.2f}, forward+backward {r[1]:.2f} | "
          f"cpu {r[2]:.2f}, {r[3]:.2f} | best cpu {rb[2]:.2f}, {rb[3]:.2f}")
    return r


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=7, help="timed runs per case at the captioning shape")
    p.add_argument("--large-repeats", type=int, default=3, help="timed runs at the large shape")
    p.add_argument("--threads", type=int, default=None, help="threads for both (default: NumPy's)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), default=["captioning", "large"])
    p.add_argument("--kinds", nargs="+", choices=["lstm", "rnn"], default=["lstm", "rnn"])
    args = p.parse_args(argv)
    threads = numpy_threads(args.threads)
    torch.set_num_threads(threads)
    print(f"threads: numpy (OpenBLAS) {threads}, torch {torch.get_num_threads()}; "
          f"numpy {np.__version__}, torch {torch.__version__}")
    dtype = np.dtype(args.dtype).type
    for shape_name in args.shapes:
        repeats = args.repeats if shape_name == "captioning" else args.large_repeats
        for kind in args.kinds:
            bench(kind, SHAPES[shape_name], dtype, repeats)


if __name__ == "__main__":
    main()
