"""Training steps per second of CaptioningRNN (NumPy) against the same model in torch
autograd (nn.Embedding, nn.LSTM/nn.RNN, nn.Linear, masked cross-entropy, Adam), in the
same process with the same number of threads.

A step is forward + backward + Adam update on one minibatch at the course shapes:
T = 16 steps (captions of 17 ids), vocabulary 1004, hidden 512, word vectors 256,
image features 512. Timings alternate between the two frameworks in rounds and report
the median step, so that load from other processes affects both alike.

    OMP_NUM_THREADS=1 python benchmarks/captioning.py [--batches 25 128] [--cells lstm rnn]
"""
from __future__ import annotations

import os

THREADS = int(os.environ.setdefault("OMP_NUM_THREADS", "1"))
for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, str(THREADS))

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

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


def median_step_seconds(steppers, rounds, steps_per_round):
    """{name: median seconds per step}, alternating the steppers round by round."""
    times = {name: [] for name in steppers}
    for step in steppers.values():
        step()  # warm-up: allocations, thread pools
    for _ in range(rounds):
        for name, step in steppers.items():
            for _ in range(steps_per_round):
                t0 = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - t0)
    return {name: float(np.median(t)) for name, t in times.items()}


def main() -> int:
    import torch

    torch.set_num_threads(THREADS)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[25, 128])
    parser.add_argument("--cells", nargs="+", choices=("lstm", "rnn"), default=["lstm", "rnn"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3, help="steps per round and framework")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the results here")
    args = parser.parse_args()
    w2i = {w: i for i, w in enumerate(["<NULL>", "<START>", "<END>", "<UNK>"] + [f"w{i}" for i in range(V - 4)])}
    print(f"threads {THREADS} (numpy BLAS and torch); T={T - 1} V={V} H={H} wordvec={W} input={D}; "
          f"median of {args.rounds * args.steps} steps")
    print(f"{'cell':5s} {'batch':>5s} {'numpy ms':>9s} {'torch ms':>9s} {'numpy/torch':>11s} {'numpy steps/s':>13s}")
    results = []
    for cell in args.cells:
        for n in args.batches:
            model = CaptioningRNN(w2i, input_dim=D, wordvec_dim=W, hidden_dim=H, cell_type=cell, seed=0)
            features, captions = course_batch(n)
            steppers = {"numpy": numpy_stepper(model, features, captions),
                        "torch": torch_stepper(model, features, captions)}
            t = median_step_seconds(steppers, args.rounds, args.steps)
            ratio = t["numpy"] / t["torch"]
            results.append({"cell": cell, "batch": n, "numpy_s": t["numpy"], "torch_s": t["torch"], "ratio": ratio})
            print(f"{cell:5s} {n:5d} {1e3 * t['numpy']:9.1f} {1e3 * t['torch']:9.1f} {ratio:11.2f} "
                  f"{1 / t['numpy']:13.2f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": THREADS, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
