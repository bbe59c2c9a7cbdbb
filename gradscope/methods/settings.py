"""One settings record per method: the single source of its defaults, of what its
command-line options say, of the default values its docstring states and of the
`params` its JSON reports.

    SETTINGS = MethodSettings("smoothgrad",
        Setting("n_samples", 25, "positive_int", "noisy copies averaged", flag="--samples"),
        Setting("sigma", 0.15, "nonneg_float", "noise std, as a fraction of the pixel range"))
    DEFAULTS = SETTINGS.defaults          # {"n_samples": 25, "sigma": 0.15}

    @SETTINGS.document                    # "{n_samples}" in the docstring becomes "25"
    def smoothgrad(model, x, n_samples=DEFAULTS["n_samples"], ...):
        '''...  n_samples: noisy copies (default {n_samples}).'''

The command line (gradscope.cli.settings) turns each Setting into an option with its
help and its default value; `kind` names the value's range ('positive_int',
'nonneg_int', 'positive_float', 'nonneg_float', 'factor' (> 1), 'choice', 'optional_int',
'seed', 'blur' (a Gaussian width in pixels), 'noise' (a fraction of the pixel range), 'share'
(a fraction 0..1), 'fractions' (comma-separated fractions in (0, 1)), 'positive_list'
(comma-separated positive numbers), 'text' (a string, e.g. a layer name)); the CLI maps kinds to parsers, so this module stays below the CLI.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Setting", "MethodSettings", "KINDS"]

KINDS = ("positive_int", "nonneg_int", "positive_float", "nonneg_float", "factor", "choice", "optional_int",
         "seed", "blur", "noise", "share", "fractions", "positive_list", "text")


@dataclass(frozen=True)
class Setting:
    """name: the library parameter; default: its value; kind: one of KINDS; help: what it
    does (no default in it: that is added from `default`); flag: the command-line option
    (default '--' + name with '_' -> '-'); choices: the values of a 'choice'."""
    name: str
    default: object
    kind: str
    help: str
    flag: str | None = None
    choices: tuple = ()

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"setting {self.name!r}: unknown kind {self.kind!r} (known: {', '.join(KINDS)})")
        if self.kind == "choice" and self.default not in self.choices:
            raise ValueError(f"setting {self.name!r}: default {self.default!r} is not one of {self.choices}")

    @property
    def option(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    def shown(self, value=None) -> str:
        """The value as help and docstrings print it (the default when value is None)."""
        value = self.default if value is None else value
        if value is None:
            return "none"
        if isinstance(value, (tuple, list)):
            return ",".join(str(v) for v in value)
        return str(value)


class MethodSettings:
    """The settings of one method, in order. `defaults` is a fresh {name: default} dict."""

    def __init__(self, method: str, *settings: Setting):
        self.method = method
        self._settings = {s.name: s for s in settings}
        if len(self._settings) != len(settings):
            raise ValueError(f"{method}: a setting name is repeated")

    def __getitem__(self, name: str) -> Setting:
        return self._settings[name]

    def __iter__(self):
        return iter(self._settings.values())

    def __contains__(self, name) -> bool:
        return name in self._settings

    @property
    def names(self) -> list:
        return list(self._settings)

    @property
    def defaults(self) -> dict:
        return {s.name: s.default for s in self}

    def params(self, values: dict | None = None, **given) -> dict:
        """{name: value} of every setting, the given values over the defaults: what a
        result reports as its `params` (JSON-able)."""
        merged = dict(self.defaults, **(values or {}), **given)
        return {name: (list(v) if isinstance(v, tuple) else v) for name, v in merged.items() if name in self}

    def document(self, fn):
        """Decorator: each '{name}' of fn's docstring becomes that setting's default."""
        if fn.__doc__:
            doc = fn.__doc__
            for s in self:
                doc = doc.replace("{" + s.name + "}", s.shown())
            fn.__doc__ = doc
        return fn
