"""The torch twin of a CaptioningRNN (nn.Embedding, nn.RNN/nn.LSTM, nn.Linear, masked
cross-entropy) with the same weights: for parity tests and speed comparisons.
Requires the optional torch extra.

Gate order differs: gradscope stacks the LSTM gates as i, f, o, g; torch as i, f, g, o.
"""
from __future__ import annotations

import numpy as np

__all__ = ["build_torch_captioner", "torch_caption_loss"]


def _torch_gate_order(a, H):
    """Columns/rows (i, f, o, g) -> (i, f, g, o) along the last axis."""
    i, f, o, g = (a[..., k * H:(k + 1) * H] for k in range(4))
    return np.concatenate([i, f, g, o], axis=-1)


def build_torch_captioner(model):
    """An nn.Module with .proj, .embed, .rnn, .vocab holding `model`'s weights (its dtype)."""
    import torch
    import torch.nn as nn

    p, H = model.params, model.hidden_dim
    dtype = torch.float64 if model.dtype == np.float64 else torch.float32
    rnn_cls = nn.LSTM if model.cell_type == "lstm" else nn.RNN
    net = nn.Module()
    net.proj = nn.Linear(model.input_dim, H)
    net.embed = nn.Embedding(model.vocab_size, model.wordvec_dim)
    net.rnn = rnn_cls(model.wordvec_dim, H, batch_first=True)
    net.vocab = nn.Linear(H, model.vocab_size)
    Wx, Wh, b = p["Wx"], p["Wh"], p["b"]
    if model.cell_type == "lstm":
        Wx, Wh, b = (_torch_gate_order(a, H) for a in (Wx, Wh, b))
    weights = {"proj.weight": p["W_proj"].T, "proj.bias": p["b_proj"], "embed.weight": p["W_embed"],
               "rnn.weight_ih_l0": Wx.T, "rnn.weight_hh_l0": Wh.T, "rnn.bias_ih_l0": b,
               "rnn.bias_hh_l0": np.zeros_like(b), "vocab.weight": p["W_vocab"].T, "vocab.bias": p["b_vocab"]}
    net.to(dtype)  # before loading, so that float64 weights are not rounded to float32
    net.load_state_dict({k: torch.tensor(np.ascontiguousarray(v)) for k, v in weights.items()})
    net.cell_type, net.null_idx = model.cell_type, model.null_idx
    return net


def torch_caption_loss(net, features, captions):
    """The CaptioningRNN loss in torch: features (N, D) tensor, captions (N, T) long tensor."""
    import torch
    import torch.nn.functional as F

    words, targets = captions[:, :-1], captions[:, 1:]
    h0 = net.proj(features).unsqueeze(0)  # (1, N, H)
    state = (h0, torch.zeros_like(h0)) if net.cell_type == "lstm" else h0
    h, _ = net.rnn(net.embed(words), state)  # (N, T, H)
    scores = net.vocab(h)  # (N, T, V)
    losses = F.cross_entropy(scores.reshape(-1, scores.shape[-1]), targets.reshape(-1), reduction="none")
    return (losses * (targets.reshape(-1) != net.null_idx)).sum() / captions.shape[0]
