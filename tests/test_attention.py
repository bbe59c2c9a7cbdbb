"""Soft attention and the attention-LSTM: numerical gradients of every input and
parameter (through z and alpha), PyTorch autograd parity, the fast sequence path
against the reference loop of textbook steps, dtypes and input errors."""
import numpy as np
import pytest
import torch

from gradscope.errors import ShapeError
from gradscope.gradcheck import check_layer_gradients
from gradscope.layers import (att_lstm_backward, att_lstm_backward_reference, att_lstm_forward,
                              att_lstm_forward_reference, att_lstm_step_backward, att_lstm_step_forward,
                              attention_backward, attention_forward)

N, T, L, D, A, W, H = 2, 3, 4, 5, 6, 3, 4
TOL = 1e-7
SEQUENCE_GRADS = ["x", "h0", "c0", "feats", "W_proj_att", "b_proj_att", "Wx", "Wz", "Wh", "b",
                  "W_att", "w_att", "w_beta", "b_beta"]


def sequence_inputs(seed=0, n=N, t=T, dtype=np.float64):
    """Every input of att_lstm_forward, in its argument order; weights small enough that
    tanh and the sigmoids are not saturated."""
    rng = np.random.default_rng(seed)

    def r(*shape, scale=0.5):
        return (scale * rng.standard_normal(shape)).astype(dtype)
    return {"x": r(n, t, W, scale=1), "h0": r(n, H, scale=1), "c0": r(n, H, scale=1),
            "feats": r(n, L, D, scale=1), "W_proj_att": r(D, A), "b_proj_att": r(A),
            "Wx": r(W, 4 * H), "Wz": r(D, 4 * H), "Wh": r(H, 4 * H), "b": r(4 * H),
            "W_att": r(H, A), "w_att": r(A, scale=1), "w_beta": r(H), "b_beta": np.array(0.3, dtype=dtype)}


def step_inputs(seed=0, s=None):
    """att_lstm_step_forward's inputs at the first step of sequence_inputs(seed) (or of s)."""
    s = sequence_inputs(seed) if s is None else s
    proj = s["feats"] @ s["W_proj_att"] + s["b_proj_att"]
    return {"x": s["x"][:, 0].copy(), "prev_h": s["h0"], "prev_c": s["c0"], "proj": proj,
            **{k: s[k] for k in ("feats", "Wx", "Wz", "Wh", "b", "W_att", "w_att", "w_beta", "b_beta")}}


def attention_inputs(seed=0):
    s = step_inputs(seed)
    return {"h_prev": s["prev_h"], "proj": s["proj"], "feats": s["feats"], "W_att": s["W_att"],
            "w_att": s["w_att"]}


def flat(forward):
    """forward returning ((out1, out2, ...), cache) as check_layer_gradients wants it:
    (out1, out2, ..., cache)."""
    def run(**inputs):
        outs, cache = forward(**inputs)
        return (*outs, cache)
    return run


def assert_all_close_to_numeric(errors, names):
    assert list(errors) == names
    assert all(e < TOL for e in errors.values()), errors


# ------------------------------------------------------------- numerical gradients
# check_layer_gradients draws a random upstream gradient for every output, so each
# check runs through dz and dalpha as well as dh / dnext_h, dnext_c.

def test_attention_gradients():
    inp = attention_inputs()
    assert_all_close_to_numeric(check_layer_gradients(flat(attention_forward), attention_backward, inp),
                                list(inp))


def test_attention_lstm_step_gradients():
    inp = step_inputs(1)
    assert_all_close_to_numeric(check_layer_gradients(flat(att_lstm_step_forward), att_lstm_step_backward,
                                                      inp), list(inp))


@pytest.mark.parametrize("fwd, bwd", [(att_lstm_forward_reference, att_lstm_backward_reference),
                                      (att_lstm_forward, att_lstm_backward)])
def test_attention_lstm_sequence_gradients(fwd, bwd):
    errors = check_layer_gradients(flat(fwd), bwd, sequence_inputs(2))
    assert_all_close_to_numeric(errors, SEQUENCE_GRADS)


def test_need_dfeats_false_skips_only_dfeats():
    inp = sequence_inputs(7)
    (h, zg, alpha), cache = att_lstm_forward(**inp)
    rng = np.random.default_rng(8)
    douts = rng.standard_normal(h.shape), rng.standard_normal(zg.shape), rng.standard_normal(alpha.shape)
    full, lean = att_lstm_backward(*douts, cache), att_lstm_backward(*douts, cache, need_dfeats=False)
    assert lean[3] is None and full[3].shape == inp["feats"].shape
    for i, (a, b) in enumerate(zip(full, lean)):
        if i != 3:
            np.testing.assert_array_equal(a, b)


def test_missing_upstream_gradients_are_zeros():
    inp = sequence_inputs(3)
    (h, zg, alpha), cache = att_lstm_forward(**inp)
    dh = np.random.default_rng(4).standard_normal(h.shape)
    for a, b in zip(att_lstm_backward(dh, None, None, cache),
                    att_lstm_backward(dh, np.zeros_like(zg), np.zeros_like(alpha), cache)):
        np.testing.assert_array_equal(a, b)
    (z, alpha), cache = attention_forward(**attention_inputs(5))
    dz = np.random.default_rng(6).standard_normal(z.shape)
    for a, b in zip(attention_backward(dz, None, cache), attention_backward(dz, np.zeros_like(alpha), cache)):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ PyTorch parity

def torch_att_lstm(x, h0, c0, feats, W_proj_att, b_proj_att, Wx, Wz, Wh, b, W_att, w_att, w_beta, b_beta):
    """The same equations in torch, for autograd to differentiate."""
    proj = feats @ W_proj_att + b_proj_att
    h, c, outs = h0, c0, []
    for t in range(x.shape[1]):
        alpha = torch.softmax(torch.tanh(proj + (h @ W_att)[:, None, :]) @ w_att, dim=1)
        zg = torch.sigmoid(h @ w_beta + b_beta)[:, None] * (alpha[:, :, None] * feats).sum(dim=1)
        a = x[:, t] @ Wx + zg @ Wz + h @ Wh + b
        i, f, o = torch.sigmoid(a[:, :3 * H]).split(H, dim=1)
        c = f * c + i * torch.tanh(a[:, 3 * H:])
        h = o * torch.tanh(c)
        outs.append((h, zg, alpha))
    return [torch.stack(o, dim=1) for o in zip(*outs)]


def test_sequence_matches_torch_autograd():
    inp = sequence_inputs(7)
    outs, cache = att_lstm_forward(**inp)
    rng = np.random.default_rng(8)
    douts = [rng.standard_normal(o.shape) for o in outs]
    grads = att_lstm_backward(*douts, cache)

    tin = {k: torch.from_numpy(v.copy()).requires_grad_() for k, v in inp.items()}
    touts = torch_att_lstm(**tin)
    sum((o * torch.from_numpy(d)).sum() for o, d in zip(touts, douts)).backward()
    for ours, theirs in zip(outs, touts):
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-12, atol=1e-13)
    assert len(grads) == len(SEQUENCE_GRADS)
    for name, g in zip(SEQUENCE_GRADS, grads):
        assert g.shape == inp[name].shape, name
        np.testing.assert_allclose(g, tin[name].grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)


# ------------------------------------- fast path = reference sequence (a loop of steps)

def close(a, b, **kw):
    np.testing.assert_allclose(a, b, **(kw or {"rtol": 1e-12, "atol": 1e-13}))


@pytest.mark.parametrize("dtype, tol", [(np.float64, {}), (np.float32, {"rtol": 1e-4, "atol": 1e-5})])
def test_fast_path_equals_reference_sequence(dtype, tol):
    inp = sequence_inputs(9, n=3, t=5, dtype=dtype)
    outs, cache = att_lstm_forward(**inp)
    ref_outs, ref_cache = att_lstm_forward_reference(**inp)
    for a, b in zip(outs, ref_outs):
        assert a.dtype == b.dtype == dtype
        close(a, b, **tol)
    rng = np.random.default_rng(10)
    douts = [rng.standard_normal(o.shape).astype(dtype) for o in outs]
    grads, ref_grads = att_lstm_backward(*douts, cache), att_lstm_backward_reference(*douts, ref_cache)
    assert len(grads) == len(ref_grads) == len(SEQUENCE_GRADS)
    for name, a, b in zip(SEQUENCE_GRADS, grads, ref_grads):
        assert a.dtype == b.dtype == dtype, name
        assert a.shape == b.shape == inp[name].shape, name
        close(a, b, **tol)


def test_step_by_step_equals_the_sequence():
    inp = sequence_inputs(11, t=4)
    (h, zg, alpha), _ = att_lstm_forward(**inp)
    s = step_inputs(s=inp)
    prev_h, prev_c = inp["h0"], inp["c0"]
    for t in range(4):
        s.update(x=inp["x"][:, t], prev_h=prev_h, prev_c=prev_c)
        (prev_h, prev_c, zg_t, alpha_t), _ = att_lstm_step_forward(**s)
        close(h[:, t], prev_h)
        close(zg[:, t], zg_t)
        close(alpha[:, t], alpha_t)


def test_attention_weights_are_a_distribution_and_z_their_average():
    inp = attention_inputs(12)
    (z, alpha), _ = attention_forward(**inp)
    assert np.all(alpha > 0)
    close(alpha.sum(axis=1), np.ones(N))
    close(z, np.einsum("nl,nld->nd", alpha, inp["feats"]))


# --------------------------------------------------------------- pure functions

def test_inputs_and_cache_untouched():
    inp = sequence_inputs(13)
    saved = {k: v.copy() for k, v in inp.items()}
    outs, cache = att_lstm_forward(**inp)
    rng = np.random.default_rng(14)
    douts = [rng.standard_normal(o.shape) for o in outs]
    saved_douts = [d.copy() for d in douts]
    first = att_lstm_backward(*douts, cache)
    second = att_lstm_backward(*douts, cache)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    for k, v in inp.items():
        np.testing.assert_array_equal(v, saved[k])
    for d, s in zip(douts, saved_douts):
        np.testing.assert_array_equal(d, s)


# ------------------------------------------------------------------------ dtypes

def test_float32_steps():
    inp = {k: v.astype(np.float32) for k, v in step_inputs(15).items()}
    outs, cache = att_lstm_step_forward(**inp)
    grads = att_lstm_step_backward(np.ones_like(outs[0]), np.ones_like(outs[1]), None, None, cache)
    assert all(o.dtype == np.float32 for o in outs)
    assert all(g.dtype == np.float32 for g in grads)


# ----------------------------------------------------------------------- errors

@pytest.mark.parametrize("name, bad_shape", [
    ("x", (N, W)),  # missing the time axis
    ("feats", (N + 1, L, D)),
    ("W_proj_att", (D + 1, A)),
    ("Wz", (D, 4 * H + 1)),
    ("W_att", (H + 1, A)),
    ("w_att", (A + 1,)),
    ("w_beta", (H, 1)),
    ("b_beta", (1,)),
])
def test_bad_shapes_name_the_array(name, bad_shape):
    inp = sequence_inputs()
    inp[name] = np.zeros(bad_shape)
    for fwd in (att_lstm_forward, att_lstm_forward_reference):
        with pytest.raises(ShapeError, match=name):
            fwd(**inp)


def test_bad_upstream_gradient_shape():
    (h, zg, alpha), cache = att_lstm_forward(**sequence_inputs())
    with pytest.raises(ShapeError, match=r"dalpha .*\(2, 3, 4\)"):
        att_lstm_backward(h, None, alpha[:, :, :2], cache)
    with pytest.raises(ShapeError, match=r"dz"):
        att_lstm_backward(h, zg[:, :1], None, cache)
