"""The course face's CaptioningRNN draws its initial parameters as the course does (NumPy's
global state, the course's order and scales), so that RNN_Captioning's gradient-check cell
run after np.random.seed(231) prints the course's loss and errors.

REFERENCE: what that cell prints with the course's code (its classifiers/rnn.py and its
given rnn_layers, run under Python 3 at the same seed): loss 1.973182166185 and the
relative errors below."""
import numpy as np
import pytest

from gradscope.course.classifiers.rnn import CaptioningRNN
from gradscope.course.gradient_check import eval_numerical_gradient

REFERENCE_LOSS = 1.973182166185
REFERENCE_ERRORS = {"W_embed": 2.331071e-09, "W_proj": 9.974425e-09, "W_vocab": 4.274378e-09, "Wh": 1.313259e-08,
                    "Wx": 8.455229e-07, "b": 9.727212e-10, "b_proj": 1.934807e-08, "b_vocab": 7.087090e-11}
WORDS = {"<NULL>": 0, "cat": 2, "dog": 3}


def rel_error(x, y):  # the notebook's
    return np.max(np.abs(x - y) / (np.maximum(1e-8, np.abs(x) + np.abs(y))))


def gradient_check_cell():
    """The notebook cell's steps, in its order: seed, captions, features, model, loss, checks."""
    np.random.seed(231)
    captions = np.random.randint(len(WORDS), size=(2, 3))
    features = np.random.randn(2, 4)
    model = CaptioningRNN(WORDS, input_dim=4, wordvec_dim=5, hidden_dim=6, cell_type="rnn", dtype=np.float64)
    loss, grads = model.loss(features, captions)
    errors = {}
    for name in sorted(grads):
        num = eval_numerical_gradient(lambda _: model.loss(features, captions)[0], model.params[name],
                                      verbose=False, h=1e-6)
        errors[name] = rel_error(num, grads[name])
    return model, loss, errors


def test_gradient_check_cell_prints_the_course_numbers():
    model, loss, errors = gradient_check_cell()
    assert loss == pytest.approx(REFERENCE_LOSS, abs=1e-12)
    assert errors.keys() == REFERENCE_ERRORS.keys()
    for name, value in errors.items():  # printed with %e: 7 significant digits, the last may round apart
        assert value == pytest.approx(REFERENCE_ERRORS[name], rel=1e-6), name


def test_initial_parameters_follow_the_global_seed_in_the_course_order():
    np.random.seed(7)
    a = CaptioningRNN(WORDS, input_dim=4, wordvec_dim=5, hidden_dim=6, cell_type="lstm")
    after = np.random.randn()
    np.random.seed(7)
    draws = [np.random.randn(*shape) for shape in [(3, 5), (4, 6), (5, 24), (6, 24), (6, 3)]]
    assert np.random.randn() == after  # exactly five draws, nothing else taken from the global state
    expected = {"W_embed": draws[0] / 100, "W_proj": draws[1] / 2, "Wx": draws[2] / np.sqrt(5),
                "Wh": draws[3] / np.sqrt(6), "W_vocab": draws[4] / np.sqrt(6)}
    for name, value in expected.items():
        np.testing.assert_array_equal(a.params[name], value.astype(np.float32), err_msg=name)
    assert all(not a.params[b].any() for b in ("b_proj", "b", "b_vocab")) and a.params["b"].shape == (24,)
    assert {v.dtype for v in a.params.values()} == {np.dtype(np.float32)}


def test_seed_argument_leaves_the_global_state_alone():
    np.random.seed(3)
    state = np.random.get_state()[1].copy()
    a = CaptioningRNN(WORDS, input_dim=4, wordvec_dim=5, hidden_dim=6, seed=3)
    np.testing.assert_array_equal(np.random.get_state()[1], state)
    b = CaptioningRNN(WORDS, input_dim=4, wordvec_dim=5, hidden_dim=6)  # from the global state seeded with 3
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
