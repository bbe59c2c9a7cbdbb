"""Vanilla RNN and LSTM layers: numerical gradients, PyTorch parity, the fast sequence
path against the reference loop of textbook steps, dtypes and input errors."""
import numpy as np
import pytest
import torch

from gradscope.errors import ShapeError
from gradscope.gradcheck import check_layer_gradients
from gradscope.layers import (lstm_backward, lstm_backward_reference, lstm_forward, lstm_forward_reference,
                              lstm_step_backward, lstm_step_forward, rnn_backward, rnn_backward_reference,
                              rnn_forward, rnn_forward_reference, rnn_step_backward, rnn_step_forward, sigmoid)

N, T, D, H = 3, 4, 5, 6
TOL = 1e-7


def make_inputs(gates, seed=0, n=N, t=T, d=D, h=H, dtype=np.float64):
    """x (n, t, d), h0 (n, h) and weights small enough that tanh is not saturated."""
    rng = np.random.default_rng(seed)
    return {
        "x": rng.standard_normal((n, t, d)).astype(dtype),
        "h0": rng.standard_normal((n, h)).astype(dtype),
        "Wx": (0.4 * rng.standard_normal((d, gates * h))).astype(dtype),
        "Wh": (0.4 * rng.standard_normal((h, gates * h))).astype(dtype),
        "b": (0.3 * rng.standard_normal(gates * h)).astype(dtype),
    }


def step_inputs(gates, seed=0, lstm=False):
    s = make_inputs(gates, seed)
    out = {"x": s["x"][:, 0].copy(), "prev_h": s["h0"]}
    if lstm:
        out["prev_c"] = np.random.default_rng(seed + 1).standard_normal((N, H))
    out.update(Wx=s["Wx"], Wh=s["Wh"], b=s["b"])
    return out


# ------------------------------------------------------------- numerical gradients

def assert_all_close_to_numeric(errors):
    assert set(errors) and all(e < TOL for e in errors.values()), errors


def test_rnn_step_gradients():
    assert_all_close_to_numeric(check_layer_gradients(rnn_step_forward, rnn_step_backward,
                                                      step_inputs(1)))


def test_rnn_sequence_gradients():
    assert_all_close_to_numeric(check_layer_gradients(rnn_forward, rnn_backward, make_inputs(1)))


def test_lstm_step_gradients():
    assert_all_close_to_numeric(check_layer_gradients(lstm_step_forward, lstm_step_backward,
                                                      step_inputs(4, lstm=True)))


def test_lstm_sequence_gradients():
    errors = check_layer_gradients(lstm_forward, lstm_backward, make_inputs(4))
    assert list(errors) == ["x", "h0", "Wx", "Wh", "b"]
    assert_all_close_to_numeric(errors)


# ------------------------------------------------------------------ PyTorch parity

LSTM_TORCH_ORDER = np.r_[0:2 * H, 3 * H:4 * H, 2 * H:3 * H]  # ours i, f, o, g -> torch i, f, g, o


def torch_run(module, inp, dh, state):
    """Forward and backward through a batch_first torch module; returns numpy arrays."""
    x = torch.from_numpy(inp["x"]).requires_grad_()
    out, _ = module(x, state)
    out.backward(torch.from_numpy(dh))
    return out.detach().numpy(), x.grad.numpy()


def test_rnn_matches_torch():
    inp = make_inputs(1, seed=3)
    h, cache = rnn_forward(**inp)
    dh = np.random.default_rng(4).standard_normal(h.shape)
    dx, dh0, dWx, dWh, db = rnn_backward(dh, cache)

    rnn = torch.nn.RNN(D, H, nonlinearity="tanh", batch_first=True).double()
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(inp["Wx"].T))
        rnn.weight_hh_l0.copy_(torch.from_numpy(inp["Wh"].T))
        rnn.bias_ih_l0.copy_(torch.from_numpy(inp["b"]))
        rnn.bias_hh_l0.zero_()
    h0 = torch.from_numpy(inp["h0"][None]).requires_grad_()
    h_t, dx_t = torch_run(rnn, inp, dh, h0)

    np.testing.assert_allclose(h, h_t, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, dx_t, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dh0, h0.grad.numpy()[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dWx, rnn.weight_ih_l0.grad.numpy().T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dWh, rnn.weight_hh_l0.grad.numpy().T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(db, rnn.bias_ih_l0.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_lstm_matches_torch():
    inp = make_inputs(4, seed=5)
    h, cache = lstm_forward(**inp)
    dh = np.random.default_rng(6).standard_normal(h.shape)
    dx, dh0, dWx, dWh, db = lstm_backward(dh, cache)

    p = LSTM_TORCH_ORDER
    lstm = torch.nn.LSTM(D, H, batch_first=True).double()
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.from_numpy(inp["Wx"][:, p].T))
        lstm.weight_hh_l0.copy_(torch.from_numpy(inp["Wh"][:, p].T))
        lstm.bias_ih_l0.copy_(torch.from_numpy(inp["b"][p]))
        lstm.bias_hh_l0.zero_()
    h0 = torch.from_numpy(inp["h0"][None]).requires_grad_()
    h_t, dx_t = torch_run(lstm, inp, dh, (h0, torch.zeros_like(h0)))

    np.testing.assert_allclose(h, h_t, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, dx_t, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dh0, h0.grad.numpy()[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dWx[:, p], lstm.weight_ih_l0.grad.numpy().T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dWh[:, p], lstm.weight_hh_l0.grad.numpy().T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(db[p], lstm.bias_ih_l0.grad.numpy(), rtol=1e-10, atol=1e-12)


# ------------------------------------- fast path = reference sequence (a loop of steps)

def close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


FAST_AND_REFERENCE = [(rnn_forward, rnn_backward, rnn_forward_reference, rnn_backward_reference, 1),
                      (lstm_forward, lstm_backward, lstm_forward_reference, lstm_backward_reference, 4)]


@pytest.mark.parametrize("fwd, bwd, ref_fwd, ref_bwd, gates", FAST_AND_REFERENCE)
def test_fast_path_equals_reference_sequence(fwd, bwd, ref_fwd, ref_bwd, gates):
    inp = make_inputs(gates, seed=7 + gates)
    h, cache = fwd(**inp)
    h_ref, ref_cache = ref_fwd(**inp)
    close(h, h_ref)
    dh = np.random.default_rng(8 + gates).standard_normal(h.shape)
    grads, ref_grads = bwd(dh, cache), ref_bwd(dh, ref_cache)
    assert len(grads) == len(ref_grads) == 5  # dx, dh0, dWx, dWh, db
    for a, b in zip(grads, ref_grads):
        close(a, b)


@pytest.mark.parametrize("fwd, bwd, ref_fwd, ref_bwd, gates", FAST_AND_REFERENCE)
def test_fast_path_equals_reference_float32(fwd, bwd, ref_fwd, ref_bwd, gates):
    inp = {k: v.astype(np.float32) for k, v in make_inputs(gates, seed=20, n=5, t=7, d=8, h=9).items()}
    h, cache = fwd(**inp)
    h_ref, ref_cache = ref_fwd(**inp)
    np.testing.assert_allclose(h, h_ref, rtol=1e-5, atol=1e-6)
    dh = np.random.default_rng(21).standard_normal(h.shape).astype(np.float32)
    for a, b in zip(bwd(dh, cache), ref_bwd(dh, ref_cache)):
        assert a.dtype == b.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_reference_sequence_gradients():
    assert_all_close_to_numeric(check_layer_gradients(lstm_forward_reference, lstm_backward_reference,
                                                      make_inputs(4, t=3)))
    assert_all_close_to_numeric(check_layer_gradients(rnn_forward_reference, rnn_backward_reference,
                                                      make_inputs(1, t=3)))


def test_sigmoid_is_stable_and_exact():
    z = np.array([-1000.0, -30.0, -1.0, 0.0, 2.0, 40.0, 1000.0])
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # exp(-1000) may underflow
        s = sigmoid(z)
    np.testing.assert_allclose(s[1:-1], 1 / (1 + np.exp(-z[1:-1])), rtol=1e-15)
    assert s[0] == 0.0 and s[-1] == 1.0


# --------------------------------------------------------------- pure functions

@pytest.mark.parametrize("fwd, bwd, gates", [(rnn_forward, rnn_backward, 1),
                                             (lstm_forward, lstm_backward, 4)])
def test_inputs_and_cache_untouched(fwd, bwd, gates):
    inp = make_inputs(gates, seed=11)
    saved = {k: v.copy() for k, v in inp.items()}
    h, cache = fwd(**inp)
    dh = np.random.default_rng(12).standard_normal(h.shape)
    dh_saved = dh.copy()
    first = bwd(dh, cache)
    second = bwd(dh, cache)  # the backward pass works in place, but not on the cache
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    for k, v in inp.items():
        np.testing.assert_array_equal(v, saved[k])
    np.testing.assert_array_equal(dh, dh_saved)


@pytest.mark.parametrize("fwd, gates", [(rnn_forward, 1), (lstm_forward, 4)])
def test_cache_grows_linearly_in_T(fwd, gates):
    def cache_bytes(t):
        _, cache = fwd(**make_inputs(gates, t=t))
        return sum(a.nbytes for a in cache)
    b2, b4, b8 = cache_bytes(2), cache_bytes(4), cache_bytes(8)
    assert b8 - b4 == 2 * (b4 - b2)


def test_lstm_initial_cell_state_is_zero():
    inp = make_inputs(4, seed=13, t=1)
    h, _ = lstm_forward(**inp)
    h_step, _, _ = lstm_step_forward(inp["x"][:, 0], inp["h0"], np.zeros((N, H)),
                                     inp["Wx"], inp["Wh"], inp["b"])
    close(h[:, 0], h_step)


# ------------------------------------------------------------------------ dtypes

@pytest.mark.parametrize("fwd, bwd, gates", [(rnn_forward, rnn_backward, 1),
                                             (lstm_forward, lstm_backward, 4)])
def test_float32_in_float32_out(fwd, bwd, gates):
    inp64 = make_inputs(gates, seed=14)
    inp32 = {k: v.astype(np.float32) for k, v in inp64.items()}
    h32, cache = fwd(**inp32)
    dh = np.random.default_rng(15).standard_normal(h32.shape)
    grads32 = bwd(dh.astype(np.float32), cache)
    h64, cache64 = fwd(**inp64)
    grads64 = bwd(dh, cache64)
    assert h32.dtype == np.float32 and all(g.dtype == np.float32 for g in grads32)
    np.testing.assert_allclose(h32, h64, rtol=1e-4, atol=1e-5)
    for g32, g64 in zip(grads32, grads64):
        np.testing.assert_allclose(g32, g64, rtol=1e-3, atol=1e-4)


def test_float32_steps():
    inp = {k: v.astype(np.float32) for k, v in step_inputs(4, lstm=True).items()}
    next_h, next_c, cache = lstm_step_forward(**inp)
    grads = lstm_step_backward(np.ones_like(next_h), np.ones_like(next_c), cache)
    assert next_h.dtype == next_c.dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads)
    inp = {k: v.astype(np.float32) for k, v in step_inputs(1).items()}
    next_h, cache = rnn_step_forward(**inp)
    assert next_h.dtype == np.float32
    assert all(g.dtype == np.float32 for g in rnn_step_backward(np.ones_like(next_h), cache))


# ----------------------------------------------------------------------- errors

@pytest.mark.parametrize("fwd, gates", [(rnn_forward, 1), (lstm_forward, 4)])
@pytest.mark.parametrize("name, bad_shape", [
    ("x", lambda g: (N, D)),  # missing the time axis
    ("h0", lambda g: (N + 1, H)),
    ("Wx", lambda g: (D + 1, g * H)),
    ("Wh", lambda g: (H, g * H + 1)),
    ("b", lambda g: (2,)),
])
def test_bad_shapes_name_the_array(fwd, gates, name, bad_shape):
    inp = make_inputs(gates)
    inp[name] = np.zeros(bad_shape(gates))
    with pytest.raises(ShapeError) as err:
        fwd(**inp)
    msg = str(err.value)
    assert msg.startswith(name + " must have shape") and str(bad_shape(gates)) in msg, msg


@pytest.mark.parametrize("fwd, bwd, gates", [(rnn_forward, rnn_backward, 1),
                                             (lstm_forward, lstm_backward, 4)])
def test_bad_upstream_gradient_shape(fwd, bwd, gates):
    h, cache = fwd(**make_inputs(gates))
    with pytest.raises(ShapeError, match=r"dh .*\(3, 4, 6\).*\(3, 4, 5\)"):
        bwd(np.zeros((N, T, H - 1)), cache)


def test_step_errors_name_the_array():
    inp = step_inputs(4, lstm=True)
    inp["prev_c"] = np.zeros((N, H + 2))
    with pytest.raises(ShapeError, match="prev_c"):
        lstm_step_forward(**inp)
    with pytest.raises(ShapeError, match="must be a NumPy array"):
        rnn_step_forward([[1.0]], np.zeros((1, H)), np.zeros((1, H)), np.zeros((H, H)), np.zeros(H))
    next_h, next_c, cache = lstm_step_forward(**step_inputs(4, lstm=True))
    with pytest.raises(ShapeError, match="dnext_c"):
        lstm_step_backward(next_h, next_c[:, :2], cache)
