"""Depthwise and 1x1 convolution, TF "SAME" padding, ReLU6 and batch norm with eps 1e-3:
numeric gradients of every input and parameter (float64, random upstream gradient),
parity with torch autograd in float32, and the fast 1x1 path against its plain form."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gradscope.errors import ShapeError
from gradscope.gradcheck import check_layer_gradients
from gradscope.layers import (conv_forward, depthwise_conv_backward, depthwise_conv_backward_input,
                              depthwise_conv_forward, pad_backward, pointwise_conv_backward_input,
                              pad_forward, pointwise_conv_backward, pointwise_conv_backward_plain,
                              pointwise_conv_forward, pointwise_conv_forward_plain, relu6_backward,
                              relu6_forward, same_pads, spatial_batchnorm_backward, spatial_batchnorm_forward)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def away_from(x, kinks, margin=0.01):
    """Move entries of x that lie within `margin` of a kink off it (gradient checks)."""
    for k in kinks:
        near = np.abs(x - k) < margin
        x[near] = k + 2 * margin
    return x


@pytest.mark.parametrize("stride,k", [(1, 3), (2, 3), (2, 5), (1, 5)])
def test_depthwise_gradients(rng, stride, k):
    x = rng.standard_normal((2, 3, 8, 7))
    w = rng.standard_normal((3, 1, k, k))
    errs = check_layer_gradients(lambda x, w: depthwise_conv_forward(x, w, stride), depthwise_conv_backward,
                                 {"x": x, "w": w})
    assert max(errs.values()) < 1e-8, errs
    out, cache = depthwise_conv_forward(x, w, stride)
    dout = rng.standard_normal(out.shape)
    np.testing.assert_array_equal(depthwise_conv_backward_input(dout, cache), depthwise_conv_backward(dout, cache)[0])


@pytest.mark.parametrize("band_bytes", [64, 2000, 2 ** 18])  # row bands of one image, several images, all
@pytest.mark.parametrize("stride,k", [(1, 3), (2, 3), (2, 5), (1, 5)])
def test_depthwise_fast_path_equals_plain(rng, monkeypatch, band_bytes, stride, k):
    import gradscope.layers.depthwise as dw

    monkeypatch.setattr(dw, "DW_BAND_BYTES", band_bytes)
    x = rng.standard_normal((3, 4, 13, 12))
    w = rng.standard_normal((4, 1, k, k))
    out, cache = dw.depthwise_conv_forward(x, w, stride)
    out_plain, cache_plain = dw.depthwise_conv_forward_plain(x, w, stride)
    np.testing.assert_array_equal(out, out_plain)  # the same sums in the same order
    dout = rng.standard_normal(out.shape)
    np.testing.assert_allclose(dw.depthwise_conv_backward_input(dout, cache),
                               dw.depthwise_conv_backward_input_plain(dout, cache_plain), rtol=1e-12, atol=1e-13)
    with pytest.raises(ShapeError, match="upstream gradient"):
        dw.depthwise_conv_backward_input(dout[:, :, 1:], cache)


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-4), (np.float64, 1e-10)])
@pytest.mark.parametrize("stride,k", [(1, 3), (2, 3), (2, 5)])
def test_depthwise_matches_torch(rng, stride, k, dtype, tol):
    x = rng.standard_normal((2, 6, 11, 10)).astype(dtype)
    w = rng.standard_normal((6, 1, k, k)).astype(dtype)
    out, cache = depthwise_conv_forward(x, w, stride)
    assert out.dtype == dtype
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    ot = F.conv2d(xt, wt, stride=stride, groups=6)
    dout = rng.standard_normal(out.shape).astype(dtype)
    ot.backward(torch.from_numpy(dout))
    dx, dw = depthwise_conv_backward(dout, cache)
    assert dx.dtype == dw.dtype == dtype
    np.testing.assert_allclose(out, ot.detach().numpy(), atol=tol, rtol=tol)
    np.testing.assert_allclose(dx, xt.grad.numpy(), atol=tol, rtol=tol)
    np.testing.assert_allclose(dw, wt.grad.numpy(), atol=10 * tol, rtol=tol)


def test_depthwise_rejects_bad_shapes(rng):
    with pytest.raises(ShapeError, match="depthwise channels"):
        depthwise_conv_forward(rng.standard_normal((1, 3, 5, 5)), rng.standard_normal((4, 1, 3, 3)))
    with pytest.raises(ShapeError, match="does not fit"):
        depthwise_conv_forward(rng.standard_normal((1, 3, 2, 2)), rng.standard_normal((3, 1, 3, 3)))


@pytest.mark.parametrize("n,k,s", [(224, 3, 2), (112, 3, 1), (56, 5, 2), (7, 5, 1), (15, 3, 2), (14, 5, 2),
                                   (1, 3, 2)])
def test_same_pads_give_ceil_outputs(n, k, s):
    top, bottom, left, right = same_pads(n, n + 1, k, s)
    assert (n + top + bottom - k) // s + 1 == math.ceil(n / s)
    assert (n + 1 + left + right - k) // s + 1 == math.ceil((n + 1) / s)
    assert 0 <= bottom - top <= 1 and 0 <= right - left <= 1  # the extra one goes bottom/right


def test_same_pad_is_asymmetric_at_stride_2():
    assert same_pads(224, 224, 3, 2) == (0, 1, 0, 1)
    assert same_pads(28, 28, 5, 2) == (1, 2, 1, 2)
    assert same_pads(14, 14, 5, 1) == (2, 2, 2, 2)


def test_pad_gradients_and_torch(rng):
    x = rng.standard_normal((2, 3, 5, 4))
    pads = (0, 1, 2, 1)
    errs = check_layer_gradients(lambda x: pad_forward(x, pads), pad_backward, {"x": x})
    assert errs["x"] < 1e-9
    out, _ = pad_forward(x, pads)
    ref = F.pad(torch.tensor(x), (pads[2], pads[3], pads[0], pads[1]))  # torch: last axis first
    np.testing.assert_array_equal(out, ref.numpy())
    with pytest.raises(ShapeError, match=">= 0"):
        pad_forward(x, (0, -1, 0, 0))


def test_same_pad_then_depthwise_matches_tf_same(rng):
    """SAME pad + depthwise at stride 2 is torch conv2d on the asymmetrically padded input."""
    x = rng.standard_normal((1, 4, 14, 15)).astype(np.float32)
    w = rng.standard_normal((4, 1, 5, 5)).astype(np.float32)
    pads = same_pads(14, 15, 5, 2)
    out, _ = depthwise_conv_forward(pad_forward(x, pads)[0], w, 2)
    assert out.shape[2:] == (7, 8)
    ref = F.conv2d(F.pad(torch.tensor(x), (pads[2], pads[3], pads[0], pads[1])), torch.tensor(w), stride=2, groups=4)
    np.testing.assert_allclose(out, ref.numpy(), atol=1e-4)


def test_relu6_gradients_and_torch(rng):
    x = away_from(rng.uniform(-3, 9, size=(3, 4, 5)), [0.0, 6.0])
    errs = check_layer_gradients(relu6_forward, relu6_backward, {"x": x})
    assert errs["x"] < 1e-9
    xt = torch.tensor(x.astype(np.float32), requires_grad=True)
    dout = rng.standard_normal(x.shape).astype(np.float32)
    F.relu6(xt).backward(torch.from_numpy(dout))
    out, cache = relu6_forward(x.astype(np.float32))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, F.relu6(xt).detach().numpy())
    np.testing.assert_array_equal(relu6_backward(dout, cache), xt.grad.numpy())


@pytest.mark.parametrize("fwd,bwd", [(pointwise_conv_forward, pointwise_conv_backward),
                                     (pointwise_conv_forward_plain, pointwise_conv_backward_plain)])
def test_pointwise_gradients(rng, fwd, bwd):
    errs = check_layer_gradients(fwd, bwd, {"x": rng.standard_normal((2, 5, 3, 4)),
                                            "w": rng.standard_normal((6, 5, 1, 1))})
    assert max(errs.values()) < 1e-8, errs


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pointwise_fast_path_equals_plain_and_conv(rng, dtype):
    x = rng.standard_normal((3, 7, 5, 6)).astype(dtype)
    w = rng.standard_normal((4, 7, 1, 1)).astype(dtype)
    fast, cf = pointwise_conv_forward(x, w)
    plain, cp = pointwise_conv_forward_plain(x, w)
    conv, _ = conv_forward(x, w, np.zeros(4, dtype))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert fast.dtype == dtype
    np.testing.assert_allclose(fast, plain, atol=tol)
    np.testing.assert_allclose(fast, conv, atol=tol)
    dout = rng.standard_normal(fast.shape).astype(dtype)
    for a, b in zip(pointwise_conv_backward(dout, cf), pointwise_conv_backward_plain(dout, cp)):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, atol=10 * tol)
    np.testing.assert_array_equal(pointwise_conv_backward_input(dout, cf), pointwise_conv_backward(dout, cf)[0])


def test_pointwise_matches_torch(rng):
    x = rng.standard_normal((2, 8, 4, 4)).astype(np.float32)
    w = rng.standard_normal((3, 8, 1, 1)).astype(np.float32)
    out, cache = pointwise_conv_forward(x, w)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    ot = F.conv2d(xt, wt)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    ot.backward(torch.from_numpy(dout))
    dx, dw = pointwise_conv_backward(dout, cache)
    np.testing.assert_allclose(out, ot.detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(dx, xt.grad.numpy(), atol=1e-5)
    np.testing.assert_allclose(dw, wt.grad.numpy(), atol=1e-4)


def test_batchnorm_eps_1e3_test_mode(rng):
    """Test-mode spatial batch norm with eps 1e-3: every input and parameter, and torch's eval BN."""
    C = 4
    params = {"mean": rng.standard_normal(C), "var": rng.uniform(0.01, 0.1, C)}
    bn = {"mode": "test", "eps": 1e-3, "running_mean": params["mean"], "running_var": params["var"]}
    inputs = {"x": rng.standard_normal((2, C, 3, 3)), "gamma": rng.standard_normal(C), "beta": rng.standard_normal(C)}
    errs = check_layer_gradients(lambda x, gamma, beta: spatial_batchnorm_forward(x, gamma, beta, bn),
                                 spatial_batchnorm_backward, inputs)
    assert max(errs.values()) < 1e-8, errs
    out, _ = spatial_batchnorm_forward(inputs["x"], inputs["gamma"], inputs["beta"], bn)
    ref = F.batch_norm(torch.tensor(inputs["x"]), torch.tensor(params["mean"]), torch.tensor(params["var"]),
                       torch.tensor(inputs["gamma"]), torch.tensor(inputs["beta"]), training=False, eps=1e-3)
    np.testing.assert_allclose(out, ref.numpy(), atol=1e-12)
    # with a variance this small, eps 1e-5 would give visibly different outputs
    out5, _ = spatial_batchnorm_forward(inputs["x"], inputs["gamma"], inputs["beta"], {**bn, "eps": 1e-5})
    assert np.abs(out5 - out).max() > 1e-2
