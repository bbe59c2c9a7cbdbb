"""Training steps per second of CaptioningRNN (NumPy) against the same model in torch
autograd (nn.Embedding, nn.LSTM/nn.RNN, nn.Linear, masked cross-entropy, Adam), in the
same process with the same number of threads.

A step is forward + backward + Adam update on one minibatch at the course shapes:
T = 16 steps (captions of 17 ids), vocabulary 1004, hidden 512, word vectors 256,
image features 512. Timings alternate between the two frameworks in rounds and report
the median step, so that load from other processes affects both alike.

    python benchmarks/captioning.py [--batches 25 128] [--cells lstm rnn] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import sys

import _setup


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[25, 128])
    parser.add_argument("--cells", nargs="+", choices=("lstm", "rnn"), default=["lstm"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3, help="steps per round and framework")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the results here")
    _setup.add_arguments(parser, threads=1)
    return parser.parse_args()


args = parse_args()
_setup.configure(args.threads, args.blas_core)

import numpy as np  # noqa: E402

from gradscope.captioning import CaptioningRNN  # noqa: E402
from gradscope.captioning.torch_twin import build_torch_captioner, torch_caption_loss  # noqa: E402
from gradscope.training.optim import adam  # noqa: E402

V, T, H, W, D = 1004, 17, 512, 256, 512


def course_batch(n, seed=0):
    """Random features (n, D) and captions (n, T): <START>, 5..15 words, <END>, <NULL> padding."""
    rng = np.random.default_rng(seed)
    captions = np.zeros((n, T), dtype=np.int32)
    for i, length in enumerate(rng.integers(5, T - 1, n)):
        captions[i, 0] = 1
        captions[i, 1:length + 1] = rng.integers(4, V, length)
        captions[i, length + 1] = 2
    return rng.standard_normal((n, D)).astype(np.float32), captions


def numpy_stepper(model, features, captions):
    configs = {k: {"learning_rate": 1e-3} for k in model.params}

    def step():
        _, grads = model.loss(features, captions)
        for k in model.params:
            model.params[k], configs[k] = adam(model.params[k], grads[k], configs[k])

    return step


def torch_stepper(model, features, captions):
    import torch

    net = build_torch_captioner(model)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    f, c = torch.tensor(features), torch.tensor(captions, dtype=torch.long)

    def step():
        opt.zero_grad(set_to_none=True)
        torch_caption_loss(net, f, c).backward()
        opt.step()

    return step


def step_flops(n):
    """Matrix-product FLOPs of one training step (forward + backward = 3x forward)."""
    t = T - 1
    fwd = 2 * n * (D * H + t * (W + H) * 4 * H + t * H * V)  # projection, LSTM, vocabulary
    return 3.0 * fwd


def main() -> int:
    w2i = {w: i for i, w in enumerate(["<NULL>", "<START>", "<END>", "<UNK>"] + [f"w{i}" for i in range(V - 4)])}
    line, peak = _setup.header(args.threads)
    print(f"{line}\nT={T - 1} V={V} H={H} wordvec={W} input={D}; median of {args.rounds * args.steps} steps, "
          f"rounds interleaved")
    results = []
    for cell in args.cells:
        for n in args.batches:
            model = CaptioningRNN(w2i, input_dim=D, wordvec_dim=W, hidden_dim=H, cell_type=cell, seed=0)
            features, captions = course_batch(n)
            steppers = {"numpy": numpy_stepper(model, features, captions),
                        "torch": torch_stepper(model, features, captions)}
            t = _setup.timed({k: (lambda s=s: [s() for _ in range(args.steps)]) for k, s in steppers.items()},
                             args.rounds)
            ms = {k: 1e3 * r["wall"][0] / args.steps for k, r in t.items()}
            g = step_flops(n) / (ms["numpy"] / 1e3) / 1e9 if cell == "lstm" else float("nan")
            print(f"{cell} batch {n:4d}: numpy {ms['numpy']:6.1f} ms/step ({g:4.0f} GFLOP/s = "
                  f"{g / peak['numpy']:.2f} x peak), torch {ms['torch']:6.1f} ms/step; {_setup.ratio_line(t)}",
                  flush=True)
            results.append({"cell": cell, "batch": n, "numpy_ms": ms["numpy"], "torch_ms": ms["torch"],
                            "ratio_wall": ms["numpy"] / ms["torch"],
                            "ratio_cpu": t["numpy"]["cpu"] / t["torch"]["cpu"]})
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
