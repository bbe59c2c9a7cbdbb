"""Argument types with ranges, and library defaults, for the command parsers.

A type raises argparse.ArgumentTypeError, which the parser reports as one line
`gradscope: error: <command>: argument --flag: <why>` with exit status 2.

Every number of the command line is finite and range-checked here, and the ranges live in
one table, RANGES (a kind of quantity -> its bounds); each float type below is made from
one entry, so a flag's range is the range of what it means.
"""
from __future__ import annotations

import argparse
import inspect
import math

MAX_SEED = 2**32 - 1
MAX_BEAM = 64  # wider beams cost memory (N x beam x vocabulary scores) and barely change captions
MAX_CAPTION_LENGTH = 200


def _integer(text) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


# kind -> (low, high, low excluded, high excluded, what it is)
RANGES = {
    "positive": (0.0, 1e6, True, False, ""),                       # rates, step sizes, norms, weights
    "nonneg": (0.0, 1e6, False, False, ""),
    "blur": (0.0, 50.0, False, False, " pixels (a Gaussian width)"),  # the kernel spans 6 sigma
    "noise": (0.0, 10.0, False, False, " (a fraction of the pixel range)"),
    "fraction": (0.0, 1.0, True, True, " (a fraction)"),
    "share": (0.0, 1.0, False, False, " (a fraction)"),
    "scale": (1.0, 10.0, True, False, " (a size ratio)"),
    "exponent": (0.0, 10.0, False, False, ""),
}


def real_range(kind: str):
    """An argparse type: a finite number within RANGES[kind]."""
    lo, hi, lo_open, hi_open, what = RANGES[kind]

    def parse(text) -> float:
        value = _real(text)
        if (value <= lo if lo_open else value < lo) or (value >= hi if hi_open else value > hi):
            span = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
            raise argparse.ArgumentTypeError(f"must be in {span}{what}, got {text}")
        return value

    parse.__name__ = f"real_{kind}"
    return parse


def _real(text) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def int_range(lo: int, hi: int | None = None, why: str = ""):
    """An argparse type: a whole number in lo..hi (hi None: no upper bound)."""

    def parse(text) -> int:
        value = _integer(text)
        if value < lo or (hi is not None and value > hi):
            bound = f"at least {lo}" if hi is None else f"between {lo} and {hi}"
            raise argparse.ArgumentTypeError(f"must be {bound}{why}, got {value}")
        return value

    parse.__name__ = f"int_{lo}_{hi}"
    return parse


positive_int = int_range(1)
nonneg_int = int_range(0)
seed_int = int_range(0, MAX_SEED)
beam_size = int_range(1, MAX_BEAM, " (1 = greedy decoding)")
caption_length = int_range(1, MAX_CAPTION_LENGTH)


positive_float = real_range("positive")
nonneg_float = real_range("nonneg")
blur_sigma = real_range("blur")
noise_level = real_range("noise")
fraction = real_range("fraction")
scale_factor = real_range("scale")   # e.g. the size ratio between octaves
exponent = real_range("exponent")


def int_list(text) -> tuple:
    """'32,64,128' -> (32, 64, 128), each a positive whole number."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}")
    return tuple(positive_int(p) for p in parts)


def _real_list(text, parse, what: str) -> tuple:
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}")
    return tuple(parse(p) for p in parts)


def fraction_list(text) -> tuple:
    """'0.05,0.1' -> (0.05, 0.1), each a fraction in (0, 1)."""
    return _real_list(text, fraction, "fractions in (0, 1)")


def positive_list(text) -> tuple:
    """'300,4900' -> (300.0, 4900.0), each a positive number."""
    return _real_list(text, positive_float, "positive numbers")


def schedule(text) -> tuple:
    """'64:7:48,64:1' -> ((64, 7, 48), (64, 1)): (resolution, epochs[, crop]) phases, all positive."""
    phases = []
    for part in str(text).split(","):
        fields = part.split(":")
        if len(fields) not in (2, 3):
            raise argparse.ArgumentTypeError(f"expected RES:EPOCHS[:CROP],... such as '64:7:48,64:1', got {text!r}")
        phases.append(tuple(positive_int(v) for v in fields))
    return tuple(phases)


def default_of(fn, name: str):
    """The default value of parameter `name` of the library function (or class) fn, so that
    the command line states no default of its own."""
    param = inspect.signature(fn).parameters[name]
    if param.default is inspect.Parameter.empty:
        raise TypeError(f"{fn.__qualname__}() has no default for {name!r}")
    return param.default
