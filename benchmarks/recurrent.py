"""Speed of gradscope's lstm_forward/rnn_forward (+ backward) against torch.nn.LSTM / nn.RNN
on the CPU: same shapes, float32, same number of threads, measured in one run with the
two implementations interleaved (so background load hits both alike).

    python benchmarks/recurrent.py                       # large LSTM (the target) and captioning shapes
    python benchmarks/recurrent.py --threads 1 --shapes captioning --kinds lstm rnn

Prints median times of forward and of forward+backward, the ratio gradscope/torch
(below 1 means gradscope is faster) and GFLOP/s against the matmul peak measured in
the same run, counting the matrix products only: forward 2*N*T*(D+H)*G*H FLOPs
(G = 4 gates for the LSTM, 1 for the RNN), backward twice that. --profile splits one
gradscope forward + backward (cProfile, wall time) into the cell's elementwise passes,
layout copies (time-major, batch-major, W.T) and the rest: the matrix products and the
in-loop adds beside them.
"""
from __future__ import annotations

import argparse
import sys
import time

import _setup

SHAPES = {"large": (256, 32, 512, 1024), "captioning": (128, 16, 256, 512)}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=5, help="timed runs per case")
    p.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), default=["large", "captioning"])
    p.add_argument("--kinds", nargs="+", choices=["lstm", "rnn"], default=["lstm"])
    p.add_argument("--profile", action="store_true", help="also split gradscope's time (see above)")
    _setup.add_arguments(p)
    return p.parse_args(argv)


args = parse_args()
_setup.configure(args.threads, args.blas_core)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from gradscope.layers.recurrent import lstm_backward, lstm_forward, rnn_backward, rnn_forward  # noqa: E402


def make_case(kind, N, T, D, H, seed=0):
    """Random float32 inputs; (ours, theirs) each run forward + backward and return the
    forward's wall seconds."""
    G = 4 if kind == "lstm" else 1
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, T, D), dtype=np.float32)
    h0 = rng.standard_normal((N, H), dtype=np.float32)
    Wx = (rng.standard_normal((D, G * H), dtype=np.float32) / np.sqrt(D)).astype(np.float32)
    Wh = (rng.standard_normal((H, G * H), dtype=np.float32) / np.sqrt(H)).astype(np.float32)
    b = np.zeros(G * H, np.float32)
    dh = rng.standard_normal((N, T, H), dtype=np.float32)
    fwd, bwd = (lstm_forward, lstm_backward) if kind == "lstm" else (rnn_forward, rnn_backward)
    module = (torch.nn.LSTM(D, H, batch_first=True) if kind == "lstm"
              else torch.nn.RNN(D, H, nonlinearity="tanh", batch_first=True))
    xt = torch.from_numpy(x).requires_grad_()
    h0t = torch.from_numpy(h0[None]).requires_grad_()
    state = (h0t, torch.zeros_like(h0t)) if kind == "lstm" else h0t
    dht = torch.from_numpy(dh)
    forward_s = {"gradscope": [], "torch": []}

    def ours():
        t0 = time.perf_counter()
        _, cache = fwd(x, h0, Wx, Wh, b)
        forward_s["gradscope"].append(time.perf_counter() - t0)
        bwd(dh, cache)

    def theirs():
        for p in (*module.parameters(), xt, h0t):
            p.grad = None
        t0 = time.perf_counter()
        out, _ = module(xt, state)
        forward_s["torch"].append(time.perf_counter() - t0)
        out.backward(dht)

    return {"gradscope": ours, "torch": theirs}, forward_s, 2.0 * N * T * (D + H) * G * H


def bench(kind, shape, repeats, peak):
    runs, forward_s, flops_fwd = make_case(kind, *shape)
    t = _setup.timed(runs, repeats)
    N, T, D, H = shape
    print(f"{kind.upper()} N={N} T={T} D={D} H={H} float32, {repeats} interleaved runs (medians)")
    for name, r in t.items():
        fwd = float(np.median(forward_s[name][1:]))  # without the warm-up
        g = 3 * flops_fwd / r["wall"][0] / 1e9
        print(f"  {name:9s} forward {fwd * 1e3:7.1f} ms, forward+backward {r['wall'][0] * 1e3:7.1f} ms "
              f"(min {r['wall'][1] * 1e3:.1f}, max {r['wall'][2] * 1e3:.1f}; cpu {r['cpu'] * 1e3:.1f}) "
              f"{g:4.0f} GFLOP/s = {g / peak['numpy' if name == 'gradscope' else 'torch']:.2f} x matmul peak")
    print("  " + _setup.ratio_line(t, "gradscope", "torch"))


def profile(kind, shape):
    """Print the split of one gradscope forward + backward (see the module docstring)."""
    import cProfile
    import pstats

    runs, _, _ = make_case(kind, *shape)
    prof = cProfile.Profile(time.perf_counter)  # wall: idle BLAS threads spin during the elementwise passes
    prof.runcall(runs["gradscope"])
    stats = pstats.Stats(prof).stats  # {(file, line, name): (calls, ncalls, tottime, cumtime, callers)}
    parts = {"cell elementwise": ("_lstm_cell", "_lstm_cell_backward", "_tanh_backward"),
             "layout copies": ("_time_major", "_batch_major", "_transposed", "ascontiguousarray")}
    total = sum(v[2] for v in stats.values())
    split = {part: sum(v[2] for k, v in stats.items() if k[2] in names or k[2].endswith(names))
             for part, names in parts.items()}
    split["matrix products and in-loop adds"] = total - sum(split.values())
    print(f"  gradscope {kind} profile, one forward + backward, {total * 1e3:.0f} ms wall:")
    for part, t in split.items():
        print(f"    {part:34s} {t * 1e3:7.1f} ms ({100 * t / total:4.1f}%)")


def main():
    line, peak = _setup.header(args.threads)
    print(line)
    for shape_name in args.shapes:
        for kind in args.kinds:
            bench(kind, SHAPES[shape_name], args.repeats, peak)
            if args.profile:
                profile(kind, SHAPES[shape_name])
    return 0


if __name__ == "__main__":
    sys.exit(main())
