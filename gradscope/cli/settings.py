"""Command-line options built from a method's settings record (gradscope.methods.settings):
each option's type, help text and stated default come from the record, so a default is
written once, beside the method.

    from gradscope.methods.saliency import SETTINGS
    add_settings(parser, SETTINGS, ["n_samples", "sigma"])   # --samples N (default 25), --sigma ...
    methods.smoothgrad(model, x, **settings_values(args, SETTINGS, ["n_samples", "sigma"]))

A method whose model may bring its own recipe (model.method_defaults, e.g. EfficientNet-Lite0's
class visualisation) gets `recipes={"EfficientNet-Lite0": {...}}`: the option's default is then
None (the library resolves it) and the help states every value: `(default 4; EfficientNet-Lite0: 8)`.
"""
from __future__ import annotations

from gradscope.cli import args as types

# Setting.kind -> argparse type (None: the values are `choices`)
KIND_TYPES = {"positive_int": types.positive_int, "nonneg_int": types.nonneg_int,
              "positive_float": types.positive_float, "nonneg_float": types.nonneg_float,
              "factor": types.scale_factor, "optional_int": types.positive_int, "seed": types.seed_int,
              "blur": types.blur_sigma, "noise": types.noise_level, "share": types.real_range("share"),
              "fractions": types.fraction_list, "positive_list": types.positive_list, "text": str,
              "choice": None}


def dest(setting) -> str:
    """The argparse attribute of a setting's option."""
    return setting.option.lstrip("-").replace("-", "_")


def default_text(setting, recipes: dict | None = None) -> str:
    """'default 25', or with model recipes 'default 4; EfficientNet-Lite0: 8'."""
    text = f"default {setting.shown()}"
    for model_name, recipe in (recipes or {}).items():
        if setting.name in recipe and recipe[setting.name] != setting.default:
            text += f"; {model_name}: {setting.shown(recipe[setting.name])}"
    return text


def add_settings(parser, settings, names=None, recipes: dict | None = None) -> None:
    """Add an option per setting (all of them, or those named, in that order)."""
    for name in names or settings.names:
        s = settings[name]
        own = any(name in r for r in (recipes or {}).values())
        kwargs = {"default": None if own else s.default, "dest": dest(s),
                  "help": f"{s.help} ({default_text(s, recipes)})"}
        if s.kind == "choice":
            kwargs["choices"] = list(s.choices)
        else:
            kwargs["type"] = KIND_TYPES[s.kind]
            kwargs["metavar"] = ("N" if s.kind.endswith("int") else "LIST" if s.kind.endswith(("s", "list"))
                                 else "NAME" if s.kind == "text" else "X")
        parser.add_argument(s.option, **kwargs)


def settings_values(args, settings, names=None) -> dict:
    """{library parameter: value} of the options add_settings added (None: not given, where
    the option defers to the model's recipe)."""
    return {name: getattr(args, dest(settings[name])) for name in names or settings.names
            if hasattr(args, dest(settings[name]))}
