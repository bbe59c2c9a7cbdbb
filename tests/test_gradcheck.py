"""The numerical gradient checker itself: exact answers on known functions, inputs
restored, and wrong backward passes caught."""
import numpy as np
import pytest

from gradscope.errors import GradscopeError, ShapeError
from gradscope.gradcheck import (check_layer_gradients, eval_numerical_gradient,
                                 eval_numerical_gradient_array, rel_error)
from gradscope.layers import affine_backward, affine_forward, lstm_step_backward, lstm_step_forward


def test_scalar_gradient_of_known_function():
    x = np.random.default_rng(0).standard_normal((3, 4))
    saved = x.copy()
    grad = eval_numerical_gradient(lambda x: np.sum(x ** 3), x)
    np.testing.assert_allclose(grad, 3 * saved ** 2, rtol=1e-8, atol=1e-9)
    np.testing.assert_array_equal(x, saved)  # perturbed in place, then restored


def test_verbose_callback_sees_every_entry():
    seen = []
    eval_numerical_gradient(lambda x: float(x.sum()), np.zeros((2, 3)),
                            verbose=lambda ix, g: seen.append((ix, g)))
    assert [ix for ix, _ in seen] == list(np.ndindex(2, 3))
    np.testing.assert_allclose([g for _, g in seen], 1.0)


def test_array_gradient_of_known_function():
    rng = np.random.default_rng(1)
    x, A, df = rng.standard_normal((4, 3)), rng.standard_normal((3, 5)), rng.standard_normal((4, 5))
    saved = x.copy()
    grad = eval_numerical_gradient_array(lambda x: x @ A, x, df)
    np.testing.assert_allclose(grad, df @ A.T, rtol=1e-8, atol=1e-10)
    np.testing.assert_array_equal(x, saved)


def test_rel_error():
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0  # no division by zero
    assert rel_error(np.array([1.0, 2.0]), np.array([1.0, 2.2])) == pytest.approx(0.2 / 4.2)
    # the denominator is floored at 1e-8
    assert rel_error(np.array([1e-12]), np.array([0.0])) == pytest.approx(1e-4)
    with pytest.raises(ShapeError, match=r"\(3,\) and \(2,\)"):
        rel_error(np.zeros(3), np.zeros(2))


def test_check_layer_gradients_passes_a_correct_layer():
    rng = np.random.default_rng(2)
    inputs = {"x": rng.standard_normal((3, 4)), "w": rng.standard_normal((4, 2)),
              "b": rng.standard_normal(2)}
    errors = check_layer_gradients(affine_forward, affine_backward, inputs)
    assert set(errors) == {"x", "w", "b"} and max(errors.values()) < 1e-9


def test_check_layer_gradients_catches_wrong_gradients():
    rng = np.random.default_rng(3)
    inputs = {"x": rng.standard_normal((3, 4)), "w": rng.standard_normal((4, 2)),
              "b": rng.standard_normal(2)}

    def backward_wrong_db(dout, cache):
        dx, dw, db = affine_backward(dout, cache)
        return dx, dw, db * 2  # a classic bug: db counted twice

    errors = check_layer_gradients(affine_forward, backward_wrong_db, inputs)
    assert errors["x"] < 1e-9 and errors["w"] < 1e-9
    assert errors["b"] > 0.1


def test_check_layer_gradients_catches_a_subtle_error():
    rng = np.random.default_rng(4)
    N, D, H = 2, 3, 4
    inputs = {"x": rng.standard_normal((N, D)), "prev_h": rng.standard_normal((N, H)),
              "prev_c": rng.standard_normal((N, H)), "Wx": 0.4 * rng.standard_normal((D, 4 * H)),
              "Wh": 0.4 * rng.standard_normal((H, 4 * H)), "b": 0.3 * rng.standard_normal(4 * H)}

    def backward_off_by_a_bit(dnext_h, dnext_c, cache):
        grads = list(lstm_step_backward(dnext_h, dnext_c, cache))
        grads[4] = grads[4].copy()
        grads[4][0, 0] *= 1.0001  # one entry of dWh off by 0.01%
        return tuple(grads)

    errors = check_layer_gradients(lstm_step_forward, backward_off_by_a_bit, inputs)
    assert errors["Wh"] > 1e-5
    assert max(v for k, v in errors.items() if k != "Wh") < 1e-9


def test_check_layer_gradients_input_errors():
    inputs = {"x": np.ones((2, 3)), "w": np.ones((3, 2)), "b": np.ones(2)}
    with pytest.raises(GradscopeError, match="not among the inputs"):
        check_layer_gradients(affine_forward, affine_backward, inputs, wrt=["W"])
    with pytest.raises(GradscopeError, match="3 gradients for 2 inputs"):
        check_layer_gradients(affine_forward, affine_backward, inputs, wrt=["x", "w"])
