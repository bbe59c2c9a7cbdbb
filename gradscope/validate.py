"""Checks of what model files hold, each failure one DataError that names the file and the
field (`model.json: layers[0] (conv1).kernel: missing`), and of the numbers models hold and
produce (NaN or infinite weights and outputs, named by the model).

A field rule is a function (value) -> problem text or None; `check_fields(obj, rules, where)`
applies a dict of rules {key: rule} (a key ending in "?" is optional).
"""
from __future__ import annotations

import math

import numpy as np

from gradscope.errors import DataError

__all__ = ["check_fields", "field_error", "positive_int", "nonnegative_int", "number_in", "numbers",
           "one_of", "of_type", "list_of", "check_finite_arrays", "check_finite_output"]


def field_error(where: str, field: str, problem: str) -> DataError:
    return DataError(f"{where}: field {field}: {problem}")


def check_fields(obj, rules: dict, where: str, prefix: str = "") -> None:
    """Apply rules {key or 'key?': rule} to the dict obj; DataError naming where and the field."""
    if not isinstance(obj, dict):
        raise field_error(where, prefix.rstrip(".") or "(top level)", f"must be an object, got {_show(obj)}")
    for name, rule in rules.items():
        key, optional = name.rstrip("?"), name.endswith("?")
        if key not in obj:
            if optional:
                continue
            raise field_error(where, prefix + key, "missing")
        problem = rule(obj[key])
        if problem:
            raise field_error(where, prefix + key, problem)


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def positive_int(v):
    return None if _is_int(v) and v >= 1 else f"must be a whole number >= 1, got {_show(v)}"


def nonnegative_int(v):
    return None if _is_int(v) and v >= 0 else f"must be a whole number >= 0, got {_show(v)}"


def number_in(lo=-math.inf, hi=math.inf, lo_open=False, hi_open=False):
    """Rule: a finite number in [lo, hi] (open ends when asked)."""
    span = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"

    def rule(v):
        ok = (_is_number(v) and math.isfinite(v) and (v > lo if lo_open else v >= lo)
              and (v < hi if hi_open else v <= hi))
        return None if ok else f"must be a finite number in {span}, got {_show(v)}"
    return rule


def numbers(n: int, positive: bool = False):
    """Rule: a list of n finite numbers (> 0 when positive)."""
    def rule(v):
        if not isinstance(v, list) or len(v) != n or not all(_is_number(x) and math.isfinite(x) for x in v):
            return f"must be a list of {n} finite numbers, got {_show(v)}"
        if positive and not all(x > 0 for x in v):
            return f"must hold numbers > 0, got {_show(v)}"
        return None
    return rule


def one_of(*options):
    def rule(v):
        return None if v in options else f"must be one of {', '.join(map(repr, options))}, got {_show(v)}"
    return rule


def of_type(kind, what: str):
    def rule(v):
        return None if isinstance(v, kind) and not isinstance(v, bool) else f"must be {what}, got {_show(v)}"
    return rule


def list_of(kind, what: str):
    def rule(v):
        if not isinstance(v, list) or not all(isinstance(x, kind) for x in v):
            return f"must be a list of {what}, got {_show(v)}"
        return None
    return rule


def check_finite_arrays(arrays: dict, model: str) -> None:
    """DataError naming the model and the first array holding NaN or infinite values."""
    for name, a in arrays.items():
        a = np.asarray(a)
        if a.dtype.kind in "fc" and not np.isfinite(a).all():
            bad = int(a.size - np.isfinite(a).sum())
            raise DataError(f"{model}: weight {name} holds {bad} NaN or infinite value(s) of {a.size}; "
                            "the file is damaged: use a good copy")


def check_finite_output(out, model: str, what: str = "outputs"):
    """out unchanged, or DataError naming the model when it holds NaN or infinite values."""
    arr = np.asarray(out)
    if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
        raise DataError(f"{model} produced NaN or infinite {what} (its weights or the input are broken)")
    return out
