"""gradscope.course's layer functions and CaptioningRNN with the CS231n assignment-3
notebooks' fixed inputs and expected values, and their gradient checks."""
import numpy as np
import pytest

from gradscope.course.classifiers.rnn import CaptioningRNN
from gradscope.course.gradient_check import eval_numerical_gradient, eval_numerical_gradient_array, rel_error
from gradscope.course.layers import batchnorm_forward, spatial_batchnorm_forward
from gradscope.course.rnn_layers import (lstm_backward, lstm_forward, lstm_step_backward, lstm_step_forward,
                                         rnn_backward, rnn_forward, rnn_step_backward, rnn_step_forward,
                                         sigmoid, temporal_affine_backward, temporal_affine_forward,
                                         temporal_softmax_loss, word_embedding_backward, word_embedding_forward)
from gradscope.course.optim import adam, sgd

COURSE_VOCAB = {"<NULL>": 0, "cat": 2, "dog": 3}


def lin(lo, hi, *shape):
    return np.linspace(lo, hi, num=int(np.prod(shape))).reshape(shape)


def test_rnn_step_and_sequence_forward_match_the_notebook():
    next_h, _ = rnn_step_forward(lin(-0.4, 0.7, 3, 10), lin(-0.2, 0.5, 3, 4), lin(-0.1, 0.9, 10, 4),
                                 lin(-0.3, 0.7, 4, 4), lin(-0.2, 0.4, 4))
    expected = [[-0.58172089, -0.50182032, -0.41232771, -0.31410098],
                [0.66854692, 0.79562378, 0.87755553, 0.92795967],
                [0.97934501, 0.99144213, 0.99646691, 0.99854353]]
    assert rel_error(expected, next_h) < 1e-6
    h, _ = rnn_forward(lin(-0.1, 0.3, 2, 3, 4), lin(-0.3, 0.1, 2, 5), lin(-0.2, 0.4, 4, 5),
                       lin(-0.4, 0.1, 5, 5), lin(-0.7, 0.1, 5))
    expected = [[[-0.42070749, -0.27279261, -0.11074945, 0.05740409, 0.22236251],
                 [-0.39525808, -0.22554661, -0.0409454, 0.14649412, 0.32397316],
                 [-0.42305111, -0.24223728, -0.04287027, 0.15997045, 0.35014525]],
                [[-0.55857474, -0.39065825, -0.19198182, 0.02378408, 0.23735671],
                 [-0.27150199, -0.07088804, 0.13562939, 0.33099728, 0.50158768],
                 [-0.51014825, -0.30524429, -0.06755202, 0.17806392, 0.40333043]]]
    assert rel_error(expected, h) < 1e-6


def test_lstm_step_and_sequence_forward_match_the_notebook():
    next_h, next_c, _ = lstm_step_forward(lin(-0.4, 1.2, 3, 4), lin(-0.3, 0.7, 3, 5), lin(-0.4, 0.9, 3, 5),
                                          lin(-2.1, 1.3, 4, 20), lin(-0.7, 2.2, 5, 20), lin(0.3, 0.7, 20))
    assert rel_error([[0.24635157, 0.28610883, 0.32240467, 0.35525807, 0.38474904],
                      [0.49223563, 0.55611431, 0.61507696, 0.66844003, 0.7159181],
                      [0.56735664, 0.66310127, 0.74419266, 0.80889665, 0.858299]], next_h) < 1e-6
    assert rel_error([[0.32986176, 0.39145139, 0.451556, 0.51014116, 0.56717407],
                      [0.66382255, 0.76674007, 0.87195994, 0.97902709, 1.08751345],
                      [0.74192008, 0.90592151, 1.07717006, 1.25120233, 1.42395676]], next_c) < 1e-6
    h, _ = lstm_forward(lin(-0.4, 0.6, 2, 3, 5), lin(-0.4, 0.8, 2, 4), lin(-0.2, 0.9, 5, 16),
                        lin(-0.3, 0.6, 4, 16), lin(0.2, 0.7, 16))
    expected = [[[0.01764008, 0.01823233, 0.01882671, 0.0194232],
                 [0.11287491, 0.12146228, 0.13018446, 0.13902939],
                 [0.31358768, 0.33338627, 0.35304453, 0.37250975]],
                [[0.45767879, 0.4761092, 0.4936887, 0.51041945],
                 [0.6704845, 0.69350089, 0.71486014, 0.7346449],
                 [0.81733511, 0.83677871, 0.85403753, 0.86935314]]]
    assert rel_error(expected, h) < 1e-6
    assert sigmoid(np.array([-800.0, 0.0, 800.0])).tolist() == [0.0, 0.5, 1.0]


def test_word_embedding_matches_the_notebook():
    out, _ = word_embedding_forward(np.asarray([[0, 3, 1, 2], [2, 1, 0, 3]]), lin(0, 1, 5, 3))
    rows = lin(0, 1, 5, 3)
    np.testing.assert_allclose(out[0], rows[[0, 3, 1, 2]])
    assert rel_error(out[1, 0], [0.42857143, 0.5, 0.57142857]) < 1e-6


def _num_grads(f, arrays, dout):
    return [eval_numerical_gradient_array(lambda a, i=i: f(*[a if j == i else arrays[j] for j in range(len(arrays))]),
                                          arrays[i], dout) for i in range(len(arrays))]


def test_step_and_sequence_gradients_at_the_notebooks_orders():
    rng = np.random.default_rng(0)
    x, h, Wx, Wh, b = (rng.standard_normal(s) for s in ((4, 5), (4, 6), (5, 6), (6, 6), (6,)))
    out, cache = rnn_step_forward(x, h, Wx, Wh, b)
    dout = rng.standard_normal(out.shape)
    nums = _num_grads(lambda *a: rnn_step_forward(*a)[0], [x, h, Wx, Wh, b], dout)
    assert max(rel_error(n, g) for n, g in zip(nums, rnn_step_backward(dout, cache))) < 1e-7
    x, h0, Wx, Wh, b = (rng.standard_normal(s) for s in ((2, 10, 3), (2, 6), (3, 24), (6, 24), (24,)))
    out, cache = lstm_forward(x, h0, Wx, Wh, b)
    dout = rng.standard_normal(out.shape)
    nums = _num_grads(lambda *a: lstm_forward(*a)[0], [x, h0, Wx, Wh, b], dout)
    assert max(rel_error(n, g) for n, g in zip(nums, lstm_backward(dout, cache))) < 1e-7
    x, h0, Wx, Wh, b = (rng.standard_normal(s) for s in ((2, 10, 3), (2, 5), (3, 5), (5, 5), (5,)))
    out, cache = rnn_forward(x, h0, Wx, Wh, b)
    dout = rng.standard_normal(out.shape)
    nums = _num_grads(lambda *a: rnn_forward(*a)[0], [x, h0, Wx, Wh, b], dout)
    assert max(rel_error(n, g) for n, g in zip(nums, rnn_backward(dout, cache))) < 1e-7


def test_lstm_step_backward_returns_the_course_layout():
    rng = np.random.default_rng(1)
    args = [rng.standard_normal(s) for s in ((4, 5), (4, 6), (4, 6), (5, 24), (6, 24), (24,))]
    next_h, next_c, cache = lstm_step_forward(*args)
    dh, dc = rng.standard_normal(next_h.shape), rng.standard_normal(next_c.shape)
    grads = lstm_step_backward(dh, dc, cache)  # dx, dprev_h, dprev_c, dWx, dWh, db
    for i, g in enumerate(grads):
        def f(a, k):
            return lstm_step_forward(*[a if j == i else args[j] for j in range(6)])[k]
        num = eval_numerical_gradient_array(lambda a: f(a, 0), args[i], dh) + \
            eval_numerical_gradient_array(lambda a: f(a, 1), args[i], dc)
        assert rel_error(num, g) < 1e-7, i


def test_temporal_layers_and_softmax_loss_sanity_values():
    rng = np.random.default_rng(2)
    x, w, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 5)), rng.standard_normal(5)
    out, cache = temporal_affine_forward(x, w, b)
    dout = rng.standard_normal(out.shape)
    nums = _num_grads(lambda *a: temporal_affine_forward(*a)[0], [x, w, b], dout)
    assert max(rel_error(n, g) for n, g in zip(nums, temporal_affine_backward(dout, cache))) < 1e-8
    ids = rng.integers(5, size=(50, 3))
    W = rng.standard_normal((5, 6))
    out, cache = word_embedding_forward(ids, W)
    dout = rng.standard_normal(out.shape)
    num = eval_numerical_gradient_array(lambda W: word_embedding_forward(ids, W)[0], W, dout)
    assert rel_error(word_embedding_backward(dout, cache), num) < 1e-9

    def check_loss(N, T, V, p):
        x = 0.001 * rng.standard_normal((N, T, V))
        return temporal_softmax_loss(x, rng.integers(V, size=(N, T)), rng.random((N, T)) <= p)[0]

    assert check_loss(100, 1, 10, 1.0) == pytest.approx(np.log(10), abs=0.01)  # "about 2.3"
    assert check_loss(100, 10, 10, 1.0) == pytest.approx(10 * np.log(10), abs=0.05)  # "about 23"
    assert check_loss(5000, 10, 10, 0.1) == pytest.approx(np.log(10), abs=0.1)  # "about 2.3"
    x, y, mask = rng.standard_normal((7, 8, 9)), rng.integers(9, size=(7, 8)), rng.random((7, 8)) > 0.5
    loss, dx = temporal_softmax_loss(x, y, mask, verbose=False)
    num = eval_numerical_gradient(lambda x: temporal_softmax_loss(x, y, mask)[0], x, verbose=False)
    assert rel_error(dx, num) < 1e-7


@pytest.mark.parametrize("cell, lo, hi, expected", [("rnn", -1.5, 0.3, 9.83235591003),
                                                    ("lstm", -0.5, 1.7, 9.82445935443)])
def test_captioning_loss_check_with_the_course_vocabulary(cell, lo, hi, expected):
    N, D, W, H, T = 10, 20, 30, 40, 13
    V = len(COURSE_VOCAB)
    model = CaptioningRNN(COURSE_VOCAB, input_dim=D, wordvec_dim=W, hidden_dim=H, cell_type=cell, dtype=np.float64)
    for k, v in model.params.items():
        model.params[k] = np.linspace(-1.4, 1.3, num=v.size).reshape(*v.shape)
    loss, _ = model.loss(lin(lo, hi, N, D), (np.arange(N * T) % V).reshape(N, T))
    assert abs(loss - expected) < 1e-6  # the notebooks print the difference: ~2e-12


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_captioning_gradient_check_with_the_course_vocabulary(cell):
    np.random.seed(231)  # the model draws its parameters from NumPy's global state, as the course's does
    rng = np.random.default_rng(3)
    captions = rng.integers(len(COURSE_VOCAB), size=(2, 3))
    features = rng.standard_normal((2, 4))
    model = CaptioningRNN(COURSE_VOCAB, input_dim=4, wordvec_dim=5, hidden_dim=6, cell_type=cell, dtype=np.float64)
    _, grads = model.loss(features, captions)
    for name in sorted(grads):
        num = eval_numerical_gradient(lambda _: model.loss(features, captions)[0], model.params[name],
                                      verbose=False, h=1e-6)
        if cell == "rnn":
            assert rel_error(num, grads[name]) < 1e-5, name  # the notebook shows up to ~3e-6
        else:  # h = 1e-6 leaves ~1e-10 of rounding: an absolute floor for entries near zero
            np.testing.assert_allclose(grads[name], num, rtol=1e-5, atol=1e-9, err_msg=name)


def test_verbose_numerical_gradient_prints_like_the_course(capsys):
    x = np.array([1.0, 2.0])
    eval_numerical_gradient(lambda x: float(np.sum(x ** 2)), x)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("(0,) 2.0")


def test_batchnorm_keeps_running_statistics_in_bn_param_and_update_rules():
    rng = np.random.default_rng(4)
    bn_param = {"mode": "train", "momentum": 0.9}
    x = rng.standard_normal((20, 3)) + 5
    batchnorm_forward(x, np.ones(3), np.zeros(3), bn_param)
    np.testing.assert_allclose(bn_param["running_mean"], 0.1 * x.mean(axis=0))
    sp = {"mode": "train"}
    spatial_batchnorm_forward(rng.standard_normal((2, 3, 4, 4)), np.ones(3), np.zeros(3), sp)
    assert sp["running_var"].shape == (3,)
    w, config = sgd(np.ones(2), np.ones(2), {"learning_rate": 0.5})
    assert w.tolist() == [0.5, 0.5]
    w, config = adam(np.ones(2), np.ones(2))
    assert config["t"] == 1 and w.shape == (2,)
