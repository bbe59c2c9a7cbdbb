"""Convolution, pooling, batch norm and dropout layers: numeric gradients of every
input and parameter, parity with PyTorch, and behaviour checks."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gradscope.errors import GradscopeError, ShapeError
from gradscope.gradcheck import eval_numerical_gradient_array, rel_error
from gradscope.layers import (batchnorm_backward, batchnorm_forward, conv_backward, conv_backward_input,
                              conv_backward_reference, conv_forward, conv_forward_reference, dropout_backward, dropout_forward, global_avg_pool_backward,
                              global_avg_pool_forward, max_pool_backward, max_pool_backward_reference,
                              max_pool_forward, max_pool_forward_reference,
                              spatial_batchnorm_backward, spatial_batchnorm_forward)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def t(a, grad=False):
    return torch.tensor(a, requires_grad=grad)


# ---- convolution -----------------------------------------------------------------------------

@pytest.mark.parametrize("stride,pad", [(1, 0), (1, 1), (2, 0), (2, 1)])
def test_conv_gradients(rng, stride, pad):
    x = rng.standard_normal((2, 3, 7, 6))
    w = rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(4)
    out, cache = conv_forward(x, w, b, stride, pad)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = conv_backward(dout, cache)
    f = lambda _: conv_forward(x, w, b, stride, pad)[0]  # noqa: E731
    assert rel_error(dx, eval_numerical_gradient_array(f, x, dout)) < 1e-7
    assert rel_error(dw, eval_numerical_gradient_array(f, w, dout)) < 1e-7
    assert rel_error(db, eval_numerical_gradient_array(f, b, dout)) < 1e-7
    assert np.array_equal(conv_backward_input(dout, cache), dx)


@pytest.mark.parametrize("stride,pad,k", [(1, 1, 3), (2, 1, 3), (1, 0, 3), (2, 2, 5), (3, 1, 2), (1, 2, 2),
                                          (1, 2, 5)])
def test_conv_matches_torch(rng, stride, pad, k):
    x = rng.standard_normal((3, 4, 9, 8)).astype(np.float32)
    w = rng.standard_normal((5, 4, k, k)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    out, cache = conv_forward(x, w, b, stride, pad)
    assert out.dtype == np.float32
    xt, wt, bt = t(x, True), t(w, True), t(b, True)
    ot = F.conv2d(xt, wt, bt, stride=stride, padding=pad)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    ot.backward(torch.from_numpy(dout))
    dx, dw, db = conv_backward(dout, cache)
    assert np.allclose(out, ot.detach().numpy(), atol=1e-4)
    assert np.allclose(dx, xt.grad.numpy(), atol=1e-4)
    assert np.allclose(dw, wt.grad.numpy(), atol=1e-3)
    assert np.allclose(db, bt.grad.numpy(), atol=1e-4)
    assert dx.dtype == dw.dtype == np.float32


@pytest.mark.parametrize("stride,pad,k,F", [(1, 1, 3, 4), (1, 1, 3, 9), (2, 1, 3, 4), (1, 0, 2, 3),
                                            (3, 2, 3, 5), (1, 2, 5, 4)])
def test_conv_fast_path_equals_reference(rng, stride, pad, k, F):
    """The channels-last im2col path (both dx forms) against the loop over kernel offsets."""
    x = rng.standard_normal((3, 4, 9, 8))
    w, b = rng.standard_normal((F, 4, k, k)), rng.standard_normal(F)
    out, cache = conv_forward(x, w, b, stride, pad)
    ref, ref_cache = conv_forward_reference(x, w, b, stride, pad)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    for g, g_ref in zip(conv_backward(dout, cache), conv_backward_reference(dout, ref_cache)):
        np.testing.assert_allclose(g, g_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("stride", [1, 2])
def test_conv_fast_path_in_chunks_of_one_image(rng, monkeypatch, stride):
    """Column blocks of one image each (the im2col views of a batch slice)."""
    import gradscope.layers.conv as conv

    monkeypatch.setattr(conv, "COLS_BYTES", 1)
    x = rng.standard_normal((3, 5, 7, 6))
    w, b = rng.standard_normal((4, 5, 3, 3)), rng.standard_normal(4)
    out, cache = conv_forward(x, w, b, stride, 1)
    ref, ref_cache = conv_forward_reference(x, w, b, stride, 1)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    for g, g_ref in zip(conv_backward(dout, cache), conv_backward_reference(dout, ref_cache)):
        np.testing.assert_allclose(g, g_ref, rtol=1e-12, atol=1e-12)


def test_winograd_fast_path_equals_reference(rng, monkeypatch):
    """The opt-in Winograd F(2x2,3x3) path (forward and stride-1 input gradient) against the loop."""
    import gradscope.layers.conv as conv

    monkeypatch.setattr(conv, "USE_WINOGRAD", True)
    x = rng.standard_normal((2, 16, 9, 10))  # odd sides: partial tiles
    w, b = rng.standard_normal((16, 16, 3, 3)), rng.standard_normal(16)
    out, cache = conv_forward(x, w, b, 1, 1)
    ref, ref_cache = conv_forward_reference(x, w, b, 1, 1)
    np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-10)
    dout = rng.standard_normal(out.shape)
    for g, g_ref in zip(conv_backward(dout, cache), conv_backward_reference(dout, ref_cache)):
        np.testing.assert_allclose(g, g_ref, rtol=1e-10, atol=1e-10)


def test_conv_reference_gradients(rng):
    x, w, b = rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    out, cache = conv_forward_reference(x, w, b, 2, 1)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = conv_backward_reference(dout, cache)
    f = lambda _: conv_forward_reference(x, w, b, 2, 1)[0]  # noqa: E731
    for grad, arr in ((dx, x), (dw, w), (db, b)):
        assert rel_error(grad, eval_numerical_gradient_array(f, arr, dout)) < 1e-7


def test_conv_first_layer_shape_uses_col2im_and_is_right(rng):
    """Many filters on few channels (a first layer) takes the col2im path for dx."""
    x = rng.standard_normal((2, 3, 6, 6))
    w, b = rng.standard_normal((8, 3, 3, 3)), rng.standard_normal(8)
    out, cache = conv_forward(x, w, b, 1, 1)
    dout = rng.standard_normal(out.shape)
    f = lambda _: conv_forward(x, w, b, 1, 1)[0]  # noqa: E731
    assert rel_error(conv_backward_input(dout, cache), eval_numerical_gradient_array(f, x, dout)) < 1e-7


@pytest.mark.parametrize("stride,pad", [(1, 1), (2, 1)])
def test_conv_chunked_batch_matches_unchunked(rng, monkeypatch, stride, pad):
    """Big batches run in chunks of images; chunk boundaries must not change anything."""
    import gradscope.layers.conv as conv

    x = rng.standard_normal((5, 3, 6, 7))
    w, b = rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    out, cache = conv_forward(x, w, b, stride, pad)
    dout = rng.standard_normal(out.shape)
    grads = conv_backward(dout, cache)
    monkeypatch.setattr(conv, "COLS_BYTES", 2 * 27 * 8 * out.shape[2] * out.shape[3])  # two images a chunk
    out2, cache2 = conv_forward(x, w, b, stride, pad)
    assert np.allclose(out, out2)
    for g, g2 in zip(grads, conv_backward(dout, cache2)):
        assert np.allclose(g, g2)


def test_conv_shape_errors(rng):
    x = rng.standard_normal((2, 3, 5, 5))
    with pytest.raises(ShapeError, match="input channels"):
        conv_forward(x, rng.standard_normal((4, 2, 3, 3)), np.zeros(4))
    with pytest.raises(ShapeError, match="filter count"):
        conv_forward(x, rng.standard_normal((4, 3, 3, 3)), np.zeros(3))
    with pytest.raises(ShapeError, match="does not fit"):
        conv_forward(x, rng.standard_normal((4, 3, 7, 7)), np.zeros(4))
    with pytest.raises(ShapeError, match=r"\(N, C, H, W\)"):
        conv_forward(x[0], rng.standard_normal((4, 3, 3, 3)), np.zeros(4))
    out, cache = conv_forward(x, rng.standard_normal((4, 3, 3, 3)), np.zeros(4), 1, 1)
    with pytest.raises(ShapeError, match="upstream gradient"):
        conv_backward(np.zeros((2, 4, 4, 4)), cache)


# ---- pooling ---------------------------------------------------------------------------------

@pytest.mark.parametrize("shape,size,stride", [((2, 3, 8, 6), 2, 2), ((2, 3, 7, 7), 2, 2),
                                               ((2, 2, 7, 8), 3, 2), ((1, 2, 5, 5), 2, 1),
                                               ((1, 2, 9, 9), 2, 3), ((2, 3, 6, 6), 3, 3)])
def test_max_pool_gradient_and_torch(rng, shape, size, stride):
    x = rng.standard_normal(shape)
    out, cache = max_pool_forward(x, size=size, stride=stride)
    dout = rng.standard_normal(out.shape)
    dx = max_pool_backward(dout, cache)
    f = lambda _: max_pool_forward(x, size=size, stride=stride)[0]  # noqa: E731
    assert rel_error(dx, eval_numerical_gradient_array(f, x, dout)) < 1e-7
    xt = t(x, True)
    ot = F.max_pool2d(xt, size, stride)
    ot.backward(t(dout))
    assert np.allclose(out, ot.detach().numpy())
    assert np.allclose(dx, xt.grad.numpy())


@pytest.mark.parametrize("shape,size,stride", [((2, 3, 8, 8), 2, 2), ((2, 2, 7, 9), 3, 2), ((1, 2, 6, 5), 2, 1)])
def test_max_pool_fast_path_equals_reference(rng, shape, size, stride):
    x = rng.integers(0, 4, shape).astype(np.float64)  # many ties: the first maximum must win in both
    out, cache = max_pool_forward(x, size, stride)
    ref, ref_cache = max_pool_forward_reference(x, size, stride)
    np.testing.assert_array_equal(out, ref)
    dout = rng.standard_normal(out.shape)
    np.testing.assert_allclose(max_pool_backward(dout, cache), max_pool_backward_reference(dout, ref_cache),
                               rtol=1e-14, atol=1e-14)


def test_max_pool_ties_route_gradient_once():
    x = np.zeros((1, 1, 4, 4), dtype=np.float32)  # every window is a four-way tie
    x[0, 0, 3, 3] = -1.0
    out, cache = max_pool_forward(x)
    dx = max_pool_backward(np.ones_like(out), cache)
    xt = t(x, True)
    F.max_pool2d(xt, 2, 2).sum().backward()
    assert dx.sum() == 4 and np.array_equal(dx, xt.grad.numpy())


def test_global_avg_pool(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    out, cache = global_avg_pool_forward(x)
    assert out.shape == (2, 3) and np.allclose(out, x.mean(axis=(2, 3)))
    dout = rng.standard_normal(out.shape)
    f = lambda _: global_avg_pool_forward(x)[0]  # noqa: E731
    assert rel_error(global_avg_pool_backward(dout, cache), eval_numerical_gradient_array(f, x, dout)) < 1e-7


def test_pool_shape_errors(rng):
    with pytest.raises(ShapeError, match="does not fit"):
        max_pool_forward(rng.standard_normal((1, 1, 1, 3)), size=2, stride=2)
    with pytest.raises(ShapeError):
        global_avg_pool_forward(rng.standard_normal((2, 3)))


# ---- batch norm ------------------------------------------------------------------------------

BN_CASES = [(batchnorm_forward, batchnorm_backward, (6, 4), (4,)),
            (spatial_batchnorm_forward, spatial_batchnorm_backward, (3, 4, 3, 2), (4,))]


@pytest.mark.parametrize("fwd,bwd,xshape,pshape", BN_CASES)
@pytest.mark.parametrize("mode", ["train", "test"])
def test_batchnorm_gradients(rng, fwd, bwd, xshape, pshape, mode):
    x = 3 * rng.standard_normal(xshape) + 1
    gamma, beta = rng.standard_normal(pshape), rng.standard_normal(pshape)
    bn = {"mode": mode, "running_mean": rng.standard_normal(pshape), "running_var": rng.random(pshape) + 0.5}
    out, cache = fwd(x, gamma, beta, bn)
    dout = rng.standard_normal(out.shape)
    dx, dgamma, dbeta = bwd(dout, cache)
    f = lambda _: fwd(x, gamma, beta, bn)[0]  # noqa: E731
    assert rel_error(dx, eval_numerical_gradient_array(f, x, dout)) < 1e-7
    assert rel_error(dgamma, eval_numerical_gradient_array(f, gamma, dout)) < 1e-7
    assert rel_error(dbeta, eval_numerical_gradient_array(f, beta, dout)) < 1e-7


@pytest.mark.parametrize("fwd,bwd,xshape,pshape", BN_CASES)
def test_batchnorm_matches_torch_and_updates_running_stats(rng, fwd, bwd, xshape, pshape):
    x = 2 * rng.standard_normal(xshape) + 0.5
    gamma, beta = rng.standard_normal(pshape), rng.standard_normal(pshape)
    rm, rv = rng.standard_normal(pshape), rng.random(pshape) + 0.5
    bn = {"mode": "train", "momentum": 0.8, "eps": 1e-5, "running_mean": rm.copy(), "running_var": rv.copy()}
    out, cache = fwd(x, gamma, beta, bn)
    ref = F.batch_norm(t(x), t(rm), t(rv), t(gamma), t(beta), training=True, eps=1e-5)
    assert np.allclose(out, ref.numpy(), atol=1e-10)
    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    assert np.allclose(cache.running_mean, 0.8 * rm + 0.2 * x.mean(axis=axes))
    assert np.allclose(cache.running_var, 0.8 * rv + 0.2 * x.var(axis=axes))  # biased variance
    assert np.array_equal(bn["running_mean"], rm) and np.array_equal(bn["running_var"], rv)  # pure
    test_out, test_cache = fwd(x, gamma, beta, dict(bn, mode="test"))
    ref = F.batch_norm(t(x), t(rm), t(rv), t(gamma), t(beta), training=False, eps=1e-5)
    assert np.allclose(test_out, ref.numpy(), atol=1e-10)
    assert np.array_equal(test_cache.running_mean, rm)


def test_batchnorm_errors(rng):
    x = rng.standard_normal((4, 3))
    with pytest.raises(ShapeError, match="feature count"):
        batchnorm_forward(x, np.ones(2), np.zeros(2), {"mode": "train"})
    with pytest.raises(GradscopeError, match="mode"):
        batchnorm_forward(x, np.ones(3), np.zeros(3), {"mode": "eval"})
    with pytest.raises(ShapeError, match=r"\(N, C, H, W\)"):
        spatial_batchnorm_forward(x, np.ones(3), np.zeros(3), {"mode": "train"})


def test_batchnorm_float32_stays_float32(rng):
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    g, b = np.ones(3, np.float32), np.zeros(3, np.float32)
    out, cache = spatial_batchnorm_forward(x, g, b, {"mode": "train"})
    dx, dg, db = spatial_batchnorm_backward(np.ones_like(out), cache)
    assert out.dtype == dx.dtype == dg.dtype == cache.running_var.dtype == np.float32


# ---- dropout ---------------------------------------------------------------------------------

def test_dropout_statistics_and_modes(rng):
    x = rng.standard_normal((200, 500)) + 10
    for p in (0.25, 0.6):
        out, cache = dropout_forward(x, p, "train", seed=1)
        assert abs((out == 0).mean() - p) < 0.01
        assert abs(out.mean() - x.mean()) < 0.1  # inverted dropout keeps the expectation
    out, cache = dropout_forward(x, 0.5, "test")
    assert out is x and dropout_backward(x, cache) is x
    a, _ = dropout_forward(x, 0.5, "train", seed=3)
    b, _ = dropout_forward(x, 0.5, "train", rng=np.random.default_rng(3))
    assert np.array_equal(a, b)


def test_dropout_gradient(rng):
    x = rng.standard_normal((4, 6))
    out, cache = dropout_forward(x, 0.4, "train", seed=7)
    dout = rng.standard_normal(out.shape)
    f = lambda _: dropout_forward(x, 0.4, "train", seed=7)[0]  # noqa: E731
    assert rel_error(dropout_backward(dout, cache), eval_numerical_gradient_array(f, x, dout)) < 1e-7
    with pytest.raises(GradscopeError, match="probability"):
        dropout_forward(x, 1.0, "train")
