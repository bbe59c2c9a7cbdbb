"""The course's gradient_check: gradscope.gradcheck with the course's verbose default.

eval_numerical_gradient prints every entry (index and value) when verbose is true, as
the course's did; pass verbose=False (as the notebooks do) for silence.
"""
from gradscope import gradcheck as _gradcheck
from gradscope.gradcheck import eval_numerical_gradient_array, rel_error  # noqa: F401

__all__ = ["eval_numerical_gradient", "eval_numerical_gradient_array", "rel_error"]


def _print_entry(index, value):
    print(index, value)


def eval_numerical_gradient(f, x, verbose=True, h=0.00001):
    """Centered-difference gradient of scalar f at x (perturbed in place and restored)."""
    return _gradcheck.eval_numerical_gradient(f, x, verbose=_print_entry if verbose else False, h=h)
