"""Speed of an attention-LSTM captioning training step (Show, Attend and Tell, soft
attention) in gradscope's layers against the same model in torch autograd, in the same
process with the same number of threads, timings interleaved.

A step is forward + backward on one minibatch: word embedding -> att_lstm_forward over
L = 49 regions (7x7) of D = 1280 features, projected to A = 512 for the attention ->
temporal affine onto the vocabulary -> masked temporal softmax loss; the initial states
h0, c0 are tanh of affine maps of the mean region feature. gradscope's side is the\ncaptioner itself (gradscope.captioning.CaptioningRNN, cell 'attention'), its loss() step. Shapes: T = 16 steps, V = 2500 words,
W = 256, H = 512. The features are data (no gradient is asked for them on either side).
The torch model is written as PyTorch users write it (nn.Embedding, nn.Linear,
nn.LSTMCell on [word vector, gated context], torch.bmm for the context), holding the
same weights; the benchmark checks that both compute the same loss and gradients.

    python benchmarks/attention.py [--batch 25] [--threads 1] [--blas-core auto] [--profile]

Prints median ms per step, the ratio gradscope / torch (below 1: gradscope is faster)
and GFLOP/s of the matrix products against the matmul peak measured in the same run.
--profile splits one gradscope step (cProfile, wall time) by function.
"""
from __future__ import annotations

import argparse
import sys
import time

import _setup

T, V, L, D, A, W, H = 16, 2500, 49, 1280, 512, 256, 512


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=25)
    p.add_argument("--repeats", type=int, default=5, help="timed steps per framework")
    p.add_argument("--profile", action="store_true", help="also split one gradscope step by function")
    _setup.add_arguments(p, threads=1)
    return p.parse_args(argv)


args = parse_args()
_setup.configure(args.threads, args.blas_core)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from gradscope.captioning import CaptioningRNN  # noqa: E402

# ---------------------------------------------------------------- the model: gradscope's captioner


def make_params(seed=0):
    """float32 weights of the attention captioner, scaled by 1/sqrt(fan-in)."""
    rng = np.random.default_rng(seed)
    shapes = {"W_embed": (V, W), "W_h0": (D, H), "b_h0": (H,), "W_c0": (D, H), "b_c0": (H,),
              "W_proj_att": (D, A), "b_proj_att": (A,), "Wx": (W, 4 * H), "Wz": (D, 4 * H), "Wh": (H, 4 * H),
              "b": (4 * H,), "W_att": (H, A), "w_att": (A,), "w_beta": (H,), "b_beta": (),
              "W_vocab": (H, V), "b_vocab": (V,)}
    return {k: (rng.standard_normal(s) / np.sqrt(s[0] if len(s) == 2 else 100)).astype(np.float32)
            for k, s in shapes.items()}


def make_captioner(p):
    """gradscope.captioning.CaptioningRNN (cell 'attention', float32, no dropout or penalty)
    holding the weights of p; words 0..3 are <NULL>, <START>, <END>, <UNK>."""
    words = ["<NULL>", "<START>", "<END>", "<UNK>"] + [f"w{i}" for i in range(4, V)]
    model = CaptioningRNN({w: i for i, w in enumerate(words)}, input_dim=D, wordvec_dim=W, hidden_dim=H,
                          attention_dim=A, cell_type="attention", dtype=np.float32)
    assert set(model.params) == set(p), sorted(set(model.params) ^ set(p))
    model.params = {k: p[k] for k in model.params}
    return model


def make_batch(n, seed=1):
    """Region features (n, L, D) >= 0 (as after a ReLU6) and captions (n, T + 1) of
    <START>, 5..15 words, <END>, <NULL> padding."""
    rng = np.random.default_rng(seed)
    feats = rng.uniform(0, 6, (n, L, D)).astype(np.float32) * (rng.random((n, L, D)) < 0.3)
    captions = np.zeros((n, T + 1), dtype=np.int64)
    for i, length in enumerate(rng.integers(5, T, n)):
        captions[i, 0] = 1
        captions[i, 1:length + 1] = rng.integers(4, V, length)
        captions[i, length + 1] = 2
    return feats.astype(np.float32), captions


def numpy_step(model, feats, captions):
    """Loss and gradients (a dict keyed like model.params) of one minibatch: the captioner's
    own training loss (CaptioningRNN.loss)."""
    return model.loss(feats, captions)


# ---------------------------------------------------------------- the model, in torch

TORCH_GATES = np.r_[0:2 * H, 3 * H:4 * H, 2 * H:3 * H]  # ours i, f, o, g -> torch i, f, g, o


class TorchAttentionCaptioner(torch.nn.Module):
    """The same model as PyTorch users write it, with the weights of `p`."""

    def __init__(self, p):
        super().__init__()
        self.embed = torch.nn.Embedding(V, W)
        self.init_h, self.init_c = torch.nn.Linear(D, H), torch.nn.Linear(D, H)
        self.proj_att, self.h_att, self.score = torch.nn.Linear(D, A), torch.nn.Linear(H, A, bias=False), \
            torch.nn.Linear(A, 1, bias=False)
        self.beta = torch.nn.Linear(H, 1)
        self.cell = torch.nn.LSTMCell(W + D, H)
        self.vocab = torch.nn.Linear(H, V)
        g = TORCH_GATES
        weights = {self.embed.weight: p["W_embed"], self.init_h.weight: p["W_h0"].T, self.init_h.bias: p["b_h0"],
                   self.init_c.weight: p["W_c0"].T, self.init_c.bias: p["b_c0"],
                   self.proj_att.weight: p["W_proj_att"].T, self.proj_att.bias: p["b_proj_att"],
                   self.h_att.weight: p["W_att"].T, self.score.weight: p["w_att"][None],
                   self.beta.weight: p["w_beta"][None], self.beta.bias: p["b_beta"][None],
                   self.cell.weight_ih: np.concatenate([p["Wx"], p["Wz"]])[:, g].T,
                   self.cell.weight_hh: p["Wh"][:, g].T, self.cell.bias_ih: p["b"][g],
                   self.cell.bias_hh: np.zeros(4 * H, np.float32),
                   self.vocab.weight: p["W_vocab"].T, self.vocab.bias: p["b_vocab"]}
        with torch.no_grad():
            for param, value in weights.items():
                param.copy_(torch.from_numpy(np.ascontiguousarray(value)))

    def forward(self, feats, captions):
        words_in, words_out = captions[:, :-1], captions[:, 1:]
        mean = feats.mean(dim=1)
        h, c = torch.tanh(self.init_h(mean)), torch.tanh(self.init_c(mean))
        x = self.embed(words_in)  # (N, T, W)
        proj = self.proj_att(feats)  # (N, L, A)
        hs = []
        for t in range(T):
            alpha = torch.softmax(self.score(torch.tanh(proj + self.h_att(h)[:, None])).squeeze(2), dim=1)
            z = torch.bmm(alpha[:, None], feats).squeeze(1)  # (N, D)
            zg = torch.sigmoid(self.beta(h)) * z
            h, c = self.cell(torch.cat([x[:, t], zg], dim=1), (h, c))
            hs.append(h)
        scores = self.vocab(torch.stack(hs, dim=1))  # (N, T, V)
        mask = words_out != 0
        return torch.nn.functional.cross_entropy(scores[mask], words_out[mask], reduction="sum") / feats.shape[0]


def torch_grads(net):
    """The torch gradients in gradscope's names and layouts."""
    g = {k: v.grad.numpy() for k, v in net.named_parameters()}
    inv = np.argsort(TORCH_GATES)
    wih = g["cell.weight_ih"].T[:, inv]
    return {"W_embed": g["embed.weight"], "W_h0": g["init_h.weight"].T, "b_h0": g["init_h.bias"],
            "W_c0": g["init_c.weight"].T, "b_c0": g["init_c.bias"], "W_proj_att": g["proj_att.weight"].T,
            "b_proj_att": g["proj_att.bias"], "Wx": wih[:W], "Wz": wih[W:], "Wh": g["cell.weight_hh"].T[:, inv],
            "b": g["cell.bias_ih"][inv], "W_att": g["h_att.weight"].T,
            "w_att": g["score.weight"][0], "w_beta": g["beta.weight"][0], "b_beta": g["beta.bias"][0],
            "W_vocab": g["vocab.weight"].T, "b_vocab": g["vocab.bias"]}


# ---------------------------------------------------------------- the measurement

def step_flops(n):
    """Matrix-product FLOPs of one step: forward (projections, per-step attention and
    LSTM products, vocabulary) and a backward of twice that."""
    fwd = n * (L * D * A + T * (H * (A + 4 * H + 1) + L * A + L * D + (W + D) * 4 * H + H * V) + 2 * D * H)
    return 3 * 2.0 * fwd


def check_same(model, feats, captions, net, tf, tc):
    """Largest relative difference of loss and gradients, gradscope against torch."""
    loss, grads = numpy_step(model, feats, captions)
    net.zero_grad(set_to_none=True)
    tloss = net(tf, tc)
    tloss.backward()
    tloss = tloss.item()
    theirs = torch_grads(net)
    worst = max(float(np.abs(grads[k] - theirs[k]).max() / (np.abs(theirs[k]).max() + 1e-12)) for k in grads)
    return abs(float(loss) - tloss) / abs(tloss), worst


def profile(model, feats, captions):
    """Print the functions that take most of one gradscope step (wall time)."""
    import cProfile
    import pstats

    prof = cProfile.Profile(time.perf_counter)
    prof.runcall(numpy_step, model, feats, captions)
    stats = pstats.Stats(prof)
    total = sum(v[2] for v in stats.stats.values())
    rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:12]
    print(f"  gradscope profile, one step, {total * 1e3:.0f} ms wall; own time per function:")
    for (file, line, name), (_, calls, tottime, _, _) in rows:
        print(f"    {name[:40]:40s} {calls:5d} calls {tottime * 1e3:8.1f} ms ({100 * tottime / total:4.1f}%)")


def main():
    line, peak = _setup.header(args.threads)
    print(line)
    n = args.batch
    p = make_params()
    model = make_captioner(p)
    feats, captions = make_batch(n)
    net = TorchAttentionCaptioner(p)
    tf, tc = torch.from_numpy(feats), torch.from_numpy(captions)
    dloss, dgrad = check_same(model, feats, captions, net, tf, tc)

    def theirs():
        net.zero_grad(set_to_none=True)
        net(tf, tc).backward()

    t = _setup.timed({"gradscope": lambda: numpy_step(model, feats, captions), "torch": theirs}, args.repeats)
    print(f"attention-LSTM captioning train step, batch {n}: T={T} L={L} D={D} A={A} W={W} H={H} V={V} "
          f"float32, {args.repeats} interleaved steps (medians); same loss to {dloss:.1e}, "
          f"gradients to {dgrad:.1e} (relative to each array's largest entry)")
    flops = step_flops(n)
    for name, r in t.items():
        g = flops / r["wall"][0] / 1e9
        print(f"  {name:9s} {r['wall'][0] * 1e3:7.1f} ms/step (min {r['wall'][1] * 1e3:.1f}, max "
              f"{r['wall'][2] * 1e3:.1f}; cpu {r['cpu'] * 1e3:.1f}) {g:4.0f} GFLOP/s = "
              f"{g / peak['numpy' if name == 'gradscope' else 'torch']:.2f} x matmul peak")
    print("  " + _setup.ratio_line(t, "gradscope", "torch"))
    if args.profile:
        profile(model, feats, captions)
    return 0


if __name__ == "__main__":
    sys.exit(main())
