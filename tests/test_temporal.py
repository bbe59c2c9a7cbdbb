"""Word embedding, temporal affine and the masked temporal softmax loss."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gradscope.errors import ShapeError
from gradscope.gradcheck import check_layer_gradients, eval_numerical_gradient, rel_error
from gradscope.layers import (temporal_affine_backward, temporal_affine_forward,
                              temporal_softmax_loss, word_embedding_backward,
                              word_embedding_forward)

TOL = 1e-7


# ----------------------------------------------------------------- word embedding

def embedding_inputs(seed=0, N=4, T=5, V=7, D=3, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return {"x": rng.integers(0, V, (N, T)), "W": rng.standard_normal((V, D)).astype(dtype)}


def test_embedding_forward_looks_up_rows():
    inp = embedding_inputs()
    out, _ = word_embedding_forward(**inp)
    assert out.shape == (4, 5, 3)
    np.testing.assert_array_equal(out[2, 3], inp["W"][inp["x"][2, 3]])


def test_embedding_gradient():
    inp = embedding_inputs(seed=1, V=5)  # 20 ids in 5 words: every row is used repeatedly
    errors = check_layer_gradients(word_embedding_forward, word_embedding_backward, inp, wrt=["W"])
    assert errors["W"] < TOL, errors


def test_embedding_unused_words_get_zero_gradient():
    x = np.array([[0, 2, 2]])
    W = np.ones((4, 2))
    _, cache = word_embedding_forward(x, W)
    dW = word_embedding_backward(np.ones((1, 3, 2)), cache)
    np.testing.assert_array_equal(dW, [[1, 1], [0, 0], [2, 2], [0, 0]])


def test_embedding_matches_torch():
    inp = embedding_inputs(seed=2)
    out, cache = word_embedding_forward(**inp)
    dout = np.random.default_rng(3).standard_normal(out.shape)
    W = torch.from_numpy(inp["W"]).requires_grad_()
    out_t = F.embedding(torch.from_numpy(inp["x"]), W)
    out_t.backward(torch.from_numpy(dout))
    np.testing.assert_array_equal(out, out_t.detach().numpy())
    np.testing.assert_allclose(word_embedding_backward(dout, cache), W.grad.numpy(), rtol=1e-12)


def test_embedding_float32():
    inp = embedding_inputs(dtype=np.float32)
    out, cache = word_embedding_forward(**inp)
    dW = word_embedding_backward(np.ones(out.shape, np.float32), cache)
    assert out.dtype == dW.dtype == np.float32


def test_embedding_bad_input():
    W = np.zeros((7, 3))
    with pytest.raises(ValueError, match=r"x must lie in \[0, 7\).*\[0, 7\]"):
        word_embedding_forward(np.array([[0, 7]]), W)
    with pytest.raises(ValueError, match="x must lie in"):
        word_embedding_forward(np.array([[-1, 2]]), W)
    with pytest.raises(ShapeError, match="integer word ids"):
        word_embedding_forward(np.array([[0.0, 1.0]]), W)
    with pytest.raises(ShapeError, match=r"x must have shape \(N, T\), got shape \(3,\)"):
        word_embedding_forward(np.array([0, 1, 2]), W)
    out, cache = word_embedding_forward(np.array([[0, 1]]), W)
    with pytest.raises(ShapeError, match=r"dout .*\(1, 2, 3\).*\(1, 2, 4\)"):
        word_embedding_backward(np.zeros((1, 2, 4)), cache)


# ---------------------------------------------------------------- temporal affine

def affine_inputs(seed=0, N=2, T=3, D=4, M=5, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((N, T, D)).astype(dtype),
            "w": rng.standard_normal((D, M)).astype(dtype),
            "b": rng.standard_normal(M).astype(dtype)}


def test_temporal_affine_gradients():
    errors = check_layer_gradients(temporal_affine_forward, temporal_affine_backward,
                                   affine_inputs())
    assert all(e < TOL for e in errors.values()), errors


def test_temporal_affine_matches_torch():
    inp = affine_inputs(seed=1)
    out, cache = temporal_affine_forward(**inp)
    dout = np.random.default_rng(2).standard_normal(out.shape)
    dx, dw, db = temporal_affine_backward(dout, cache)
    x, w, b = (torch.from_numpy(inp[k]).requires_grad_() for k in ("x", "w", "b"))
    out_t = F.linear(x, w.T, b)
    out_t.backward(torch.from_numpy(dout))
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=1e-12, atol=1e-12)
    for ours, theirs in ((dx, x), (dw, w), (db, b)):
        np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_temporal_affine_float32_and_errors():
    inp = affine_inputs(dtype=np.float32)
    out, cache = temporal_affine_forward(**inp)
    assert out.dtype == np.float32
    assert all(g.dtype == np.float32 for g in temporal_affine_backward(np.ones_like(out), cache))
    with pytest.raises(ShapeError, match="input dimension D mismatch: x has 4 but w has 6"):
        temporal_affine_forward(inp["x"], np.zeros((6, 5)), inp["b"])
    with pytest.raises(ShapeError, match=r"x must have shape \(N, T, D\)"):
        temporal_affine_forward(inp["x"][0], inp["w"], inp["b"])
    with pytest.raises(ShapeError, match="output dimension M mismatch"):
        temporal_affine_forward(inp["x"], inp["w"], np.zeros(2))


# ------------------------------------------------------------------- softmax loss

def softmax_inputs(seed=0, N=3, T=4, V=6, p=0.6, scale=1.0):
    rng = np.random.default_rng(seed)
    return (scale * rng.standard_normal((N, T, V)), rng.integers(0, V, (N, T)),
            rng.random((N, T)) < p)


def test_softmax_loss_gradient():
    x, y, mask = softmax_inputs()
    assert 0 < mask.sum() < mask.size
    loss, dx = temporal_softmax_loss(x, y, mask)
    dx_num = eval_numerical_gradient(lambda x: temporal_softmax_loss(x, y, mask)[0], x)
    assert rel_error(dx, dx_num) < TOL
    np.testing.assert_array_equal(dx[~mask], 0)  # masked steps get no gradient


def test_softmax_loss_matches_torch():
    x, y, mask = softmax_inputs(seed=1, N=5, T=6, V=9)
    loss, dx = temporal_softmax_loss(x, y, mask)
    xt = torch.from_numpy(x).requires_grad_()
    per_step = F.cross_entropy(xt.reshape(-1, 9), torch.from_numpy(y).reshape(-1), reduction="none")
    loss_t = (per_step * torch.from_numpy(mask).reshape(-1)).sum() / 5
    loss_t.backward()
    np.testing.assert_allclose(loss, loss_t.item(), rtol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("T, p", [(1, 1.0), (10, 1.0), (10, 0.1)])
def test_softmax_loss_of_small_scores_is_about_log_V(T, p):
    N, V = 100, 10
    x, y, mask = softmax_inputs(seed=T, N=N, T=T, V=V, p=p, scale=0.001)
    loss, _ = temporal_softmax_loss(x, y, mask)
    # every unmasked step costs about log V; averaged over N that is p * T * log V
    np.testing.assert_allclose(loss, mask.sum() / N * np.log(V), rtol=1e-2)
    np.testing.assert_allclose(loss, p * T * np.log(V), rtol=0.15)


def test_softmax_loss_is_stable_for_large_scores():
    x, y, mask = softmax_inputs(seed=2, scale=1e4)
    loss, dx = temporal_softmax_loss(x, y, mask)
    assert np.isfinite(loss) and np.all(np.isfinite(dx))
    # the loss of one step is the gap between the best score and the target's score
    gaps = (x.max(axis=2) - np.take_along_axis(x, y[..., None], axis=2)[..., 0])
    np.testing.assert_allclose(loss, (gaps * mask).sum() / x.shape[0], rtol=1e-6, atol=1e-6)


def test_softmax_loss_float32_and_errors():
    x, y, mask = softmax_inputs()
    loss, dx = temporal_softmax_loss(x.astype(np.float32), y, mask)
    assert loss.dtype == dx.dtype == np.float32
    with pytest.raises(ShapeError, match=r"mask must have shape \(N, T\) = \(3, 4\).*\(3, 5\)"):
        temporal_softmax_loss(x, y, np.ones((3, 5), bool))
    with pytest.raises(ShapeError, match=r"y must have shape \(N, T\)"):
        temporal_softmax_loss(x, y[:, :2], mask)
    with pytest.raises(ValueError, match=r"y must lie in \[0, 6\)"):
        temporal_softmax_loss(x, y + 6, mask)
    with pytest.raises(ShapeError, match=r"x must have shape \(N, T, V\)"):
        temporal_softmax_loss(x[0], y, mask)
