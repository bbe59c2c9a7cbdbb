"""Update rules: the fast in-place Adam against its textbook form, over many steps."""
import numpy as np
import pytest

from gradscope.training.optim import adam, adam_reference


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 2e-6)])
def test_adam_fast_path_equals_textbook(dtype, rtol):
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((7, 5)).astype(dtype)
    w_fast, w_ref = w0.copy(), w0.copy()
    fast, ref = {"learning_rate": 1e-2}, {"learning_rate": 1e-2}
    for _ in range(50):  # the bias corrections matter in the first steps, the moments later
        dw = rng.standard_normal(w0.shape).astype(dtype)
        w_fast, fast = adam(w_fast, dw, fast)
        w_ref, ref = adam_reference(w_ref, dw, ref)
        np.testing.assert_allclose(w_fast, w_ref, rtol=rtol, atol=rtol)
    assert w_fast.dtype == w_ref.dtype == dtype
    assert fast["t"] == ref["t"] == 50
    for key in ("m", "v"):
        np.testing.assert_allclose(fast[key], ref[key], rtol=rtol, atol=1e-12)


def test_adam_leaves_w_unchanged_and_fills_defaults():
    w, dw = np.ones(3), np.full(3, 0.5)
    for rule in (adam, adam_reference):
        next_w, config = rule(w, dw)
        np.testing.assert_array_equal(w, 1.0)
        # the first bias-corrected step moves each weight by learning_rate * sign(dw)
        np.testing.assert_allclose(next_w, 1 - 1e-3, rtol=1e-7)
        assert config["t"] == 1 and config["beta1"] == 0.9 and config["beta2"] == 0.999
