"""Affine, ReLU and softmax loss: numerical gradients, PyTorch parity, dtypes, errors."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gradscope.errors import ShapeError
from gradscope.gradcheck import check_layer_gradients, eval_numerical_gradient, rel_error
from gradscope.layers import (affine_backward, affine_forward, relu_backward, relu_forward,
                              softmax_loss)

TOL = 1e-7


def affine_inputs(seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((3, 2, 4)).astype(dtype),  # flattened to (3, 8)
            "w": rng.standard_normal((8, 5)).astype(dtype),
            "b": rng.standard_normal(5).astype(dtype)}


def relu_input(seed=0):
    """Entries at least 0.05 away from the kink at 0."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((4, 6))
    return np.where(np.abs(x) < 0.05, 0.5, x)


def test_affine_gradients():
    errors = check_layer_gradients(affine_forward, affine_backward, affine_inputs())
    assert list(errors) == ["x", "w", "b"] and all(e < TOL for e in errors.values()), errors


def test_relu_gradient():
    errors = check_layer_gradients(relu_forward, relu_backward, {"x": relu_input()})
    assert errors["x"] < TOL, errors


def test_softmax_loss_gradient():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((5, 7)), rng.integers(0, 7, 5)
    loss, dx = softmax_loss(x, y)
    dx_num = eval_numerical_gradient(lambda x: softmax_loss(x, y)[0], x)
    assert rel_error(dx, dx_num) < TOL


def test_affine_relu_match_torch():
    inp = affine_inputs(seed=2)
    a, a_cache = affine_forward(**inp)
    out, r_cache = relu_forward(a)
    dout = np.random.default_rng(3).standard_normal(out.shape)
    dx, dw, db = affine_backward(relu_backward(dout, r_cache), a_cache)

    x, w, b = (torch.from_numpy(inp[k]).requires_grad_() for k in ("x", "w", "b"))
    out_t = torch.relu(F.linear(x.reshape(3, -1), w.T, b))
    out_t.backward(torch.from_numpy(dout))
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=1e-12, atol=1e-12)
    for ours, theirs in ((dx, x), (dw, w), (db, b)):
        np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-12, atol=1e-12)
    assert dx.shape == inp["x"].shape


def test_softmax_loss_matches_torch():
    rng = np.random.default_rng(4)
    x, y = 3 * rng.standard_normal((6, 10)), rng.integers(0, 10, 6)
    loss, dx = softmax_loss(x, y)
    xt = torch.from_numpy(x).requires_grad_()
    loss_t = F.cross_entropy(xt, torch.from_numpy(y))
    loss_t.backward()
    np.testing.assert_allclose(loss, loss_t.item(), rtol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_float32_in_float32_out():
    inp = affine_inputs(dtype=np.float32)
    out, cache = affine_forward(**inp)
    assert out.dtype == np.float32
    assert all(g.dtype == np.float32 for g in affine_backward(np.ones_like(out), cache))
    r, rc = relu_forward(out)
    assert r.dtype == relu_backward(np.ones_like(r), rc).dtype == np.float32
    loss, dx = softmax_loss(out, np.array([0, 1, 2]))
    assert dx.dtype == np.float32 and np.asarray(loss).dtype == np.float32


def test_bad_shapes():
    inp = affine_inputs()
    with pytest.raises(ShapeError, match="input dimension D mismatch: x .* 8 but w has 9"):
        affine_forward(inp["x"], np.zeros((9, 5)), inp["b"])
    with pytest.raises(ShapeError, match="output dimension M mismatch: w has 5 but b has 4"):
        affine_forward(inp["x"], inp["w"], np.zeros(4))
    with pytest.raises(ShapeError, match="batch size N mismatch: x has 2 but y has 3"):
        softmax_loss(np.zeros((2, 4)), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"labels y must lie in \[0, 4\)"):
        softmax_loss(np.zeros((2, 4)), np.array([0, 4]))
