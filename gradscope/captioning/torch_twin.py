"""The torch twin of a CaptioningRNN with the same weights, for parity tests and speed
comparisons: its cell record (gradscope.captioning.cells) names the builder here.
Requires the optional torch extra.

    net = build_torch_captioner(model)      # an nn.Module in the model's dtype
    loss = torch_caption_loss(net, features, captions)   # the model's loss (no dropout)
    loss.backward(); net.grads()            # gradients keyed and laid out like model.params

Plain cells: nn.Embedding, nn.RNN/nn.LSTM, nn.Linear (attributes proj, embed, rnn, vocab).
Attention: nn.LSTMCell on [word vector, gated context], the attention as written in the
paper, torch.bmm for the context, plus the doubly stochastic penalty.
Gate order differs: gradscope stacks the LSTM gates as i, f, o, g; torch as i, f, g, o.
"""
from __future__ import annotations

import numpy as np

__all__ = ["build_torch_captioner", "torch_caption_loss", "plain_twin", "attention_twin"]


def _torch_gate_order(a, H):
    """Columns/rows (i, f, o, g) -> (i, f, g, o) along the last axis."""
    i, f, o, g = (a[..., k * H:(k + 1) * H] for k in range(4))
    return np.concatenate([i, f, g, o], axis=-1)


def _gradscope_gate_order(a, H):
    """Columns (i, f, g, o) -> (i, f, o, g) along the last axis."""
    i, f, g, o = (a[..., k * H:(k + 1) * H] for k in range(4))
    return np.concatenate([i, f, o, g], axis=-1)


def build_torch_captioner(model):
    """An nn.Module holding `model`'s weights (its dtype), built by its cell record."""
    return model.cell.torch_twin(model)


def torch_caption_loss(net, features, captions):
    """The CaptioningRNN loss in torch: features (N, D) or (N, L, D) tensor, captions (N, T) long tensor."""
    return net.loss(features, captions)


def _masked_cross_entropy(scores, targets, null_idx, n):
    import torch.nn.functional as F

    losses = F.cross_entropy(scores.reshape(-1, scores.shape[-1]), targets.reshape(-1), reduction="none")
    return (losses * (targets.reshape(-1) != null_idx)).sum() / n


def _load(net, weights, dtype):
    import torch

    net.to(dtype)  # before loading, so that float64 weights are not rounded to float32
    net.load_state_dict({k: torch.tensor(np.ascontiguousarray(v)) for k, v in weights.items()})


def _dtype(model):
    import torch

    return torch.float64 if model.dtype == np.float64 else torch.float32


def plain_twin(model):
    """The RNN/LSTM captioner: h0 = proj(features) (c0 = 0), nn.RNN or nn.LSTM, vocab(h)."""
    import torch.nn as nn

    lstm = model.cell.gates == 4
    p, H = model.params, model.hidden_dim

    class PlainTwin(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(model.input_dim, H)
            self.embed = nn.Embedding(model.vocab_size, model.wordvec_dim)
            self.rnn = (nn.LSTM if lstm else nn.RNN)(model.wordvec_dim, H, batch_first=True)
            self.vocab = nn.Linear(H, model.vocab_size)
            self.cell_type, self.null_idx = model.cell_type, model.null_idx

        def loss(self, features, captions):
            import torch

            words, targets = captions[:, :-1], captions[:, 1:]
            h0 = self.proj(features).unsqueeze(0)  # (1, N, H)
            h, _ = self.rnn(self.embed(words), (h0, torch.zeros_like(h0)) if lstm else h0)  # (N, T, H)
            return _masked_cross_entropy(self.vocab(h), targets, self.null_idx, captions.shape[0])

        def grads(self):
            g = {k: v.grad.numpy() for k, v in self.named_parameters()}
            order = (lambda a: _gradscope_gate_order(a, H)) if lstm else (lambda a: a)
            return {"W_proj": g["proj.weight"].T, "b_proj": g["proj.bias"], "W_embed": g["embed.weight"],
                    "Wx": order(g["rnn.weight_ih_l0"].T), "Wh": order(g["rnn.weight_hh_l0"].T),
                    "b": order(g["rnn.bias_ih_l0"]), "W_vocab": g["vocab.weight"].T, "b_vocab": g["vocab.bias"]}

    net = PlainTwin()
    Wx, Wh, b = p["Wx"], p["Wh"], p["b"]
    if lstm:
        Wx, Wh, b = (_torch_gate_order(a, H) for a in (Wx, Wh, b))
    _load(net, {"proj.weight": p["W_proj"].T, "proj.bias": p["b_proj"], "embed.weight": p["W_embed"],
                "rnn.weight_ih_l0": Wx.T, "rnn.weight_hh_l0": Wh.T, "rnn.bias_ih_l0": b,
                "rnn.bias_hh_l0": np.zeros_like(b), "vocab.weight": p["W_vocab"].T, "vocab.bias": p["b_vocab"]},
          _dtype(model))
    return net


def attention_twin(model):
    """The Show, Attend and Tell captioner: h0, c0 = tanh(Linear(mean feature)), soft attention,
    the gate beta on the context, nn.LSTMCell, vocab(h), masked cross-entropy plus the penalty."""
    import torch.nn as nn

    p, (D, W, H, A) = model.params, model.sizes

    class AttentionTwin(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(model.vocab_size, W)
            self.init_h, self.init_c = nn.Linear(D, H), nn.Linear(D, H)
            self.proj_att, self.h_att = nn.Linear(D, A), nn.Linear(H, A, bias=False)
            self.score, self.beta = nn.Linear(A, 1, bias=False), nn.Linear(H, 1)
            self.cell = nn.LSTMCell(W + D, H)
            self.vocab = nn.Linear(H, model.vocab_size)
            self.null_idx, self.reg = model.null_idx, model.attention_reg

        def loss(self, features, captions):
            import torch

            words, targets = captions[:, :-1], captions[:, 1:]
            mean = features.mean(dim=1)  # (N, D)
            h, c = torch.tanh(self.init_h(mean)), torch.tanh(self.init_c(mean))
            x, proj = self.embed(words), self.proj_att(features)  # (N, T, W), (N, L, A)
            hs, alphas = [], []
            for t in range(words.shape[1]):
                e = self.score(torch.tanh(proj + self.h_att(h)[:, None])).squeeze(2)  # (N, L)
                alpha = torch.softmax(e, dim=1)
                z = torch.bmm(alpha[:, None], features).squeeze(1)  # (N, D)
                h, c = self.cell(torch.cat([x[:, t], torch.sigmoid(self.beta(h)) * z], dim=1), (h, c))
                hs.append(h)
                alphas.append(alpha)
            n = captions.shape[0]
            loss = _masked_cross_entropy(self.vocab(torch.stack(hs, dim=1)), targets, self.null_idx, n)
            mask = (targets != self.null_idx).to(features.dtype)[:, :, None]  # (N, T, 1)
            gap = 1 - (torch.stack(alphas, dim=1) * mask).sum(dim=1)  # (N, L)
            return loss + self.reg * (gap ** 2).sum() / n

        def grads(self):
            g = {k: v.grad.numpy() for k, v in self.named_parameters()}
            wih = _gradscope_gate_order(g["cell.weight_ih"].T, H)
            return {"W_h0": g["init_h.weight"].T, "b_h0": g["init_h.bias"], "W_c0": g["init_c.weight"].T,
                    "b_c0": g["init_c.bias"], "W_embed": g["embed.weight"], "Wx": wih[:W], "Wz": wih[W:],
                    "Wh": _gradscope_gate_order(g["cell.weight_hh"].T, H),
                    "b": _gradscope_gate_order(g["cell.bias_ih"], H), "W_proj_att": g["proj_att.weight"].T,
                    "b_proj_att": g["proj_att.bias"], "W_att": g["h_att.weight"].T, "w_att": g["score.weight"][0],
                    "w_beta": g["beta.weight"][0], "b_beta": np.asarray(g["beta.bias"][0]),
                    "W_vocab": g["vocab.weight"].T, "b_vocab": g["vocab.bias"]}

    net = AttentionTwin()
    wih = _torch_gate_order(np.concatenate([p["Wx"], p["Wz"]]), H)
    _load(net, {"embed.weight": p["W_embed"], "init_h.weight": p["W_h0"].T, "init_h.bias": p["b_h0"],
                "init_c.weight": p["W_c0"].T, "init_c.bias": p["b_c0"], "proj_att.weight": p["W_proj_att"].T,
                "proj_att.bias": p["b_proj_att"], "h_att.weight": p["W_att"].T, "score.weight": p["w_att"][None],
                "beta.weight": p["w_beta"][None], "beta.bias": np.reshape(p["b_beta"], (1,)),
                "cell.weight_ih": wih.T, "cell.weight_hh": _torch_gate_order(p["Wh"], H).T,
                "cell.bias_ih": _torch_gate_order(p["b"], H), "cell.bias_hh": np.zeros(4 * H),
                "vocab.weight": p["W_vocab"].T, "vocab.bias": p["b_vocab"]}, _dtype(model))
    return net
