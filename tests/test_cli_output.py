"""The shared output convention of the commands: file names, output folders (refused when
not empty, replaced whole with --overwrite), the settings records behind the options."""
import argparse
import os

import pytest

from gradscope.cli.output import MAX_NAME, file_name, image_stems, new_output
from gradscope.cli.settings import add_settings, settings_values
from gradscope.errors import GradscopeError
from gradscope.methods.settings import MethodSettings, Setting


def test_file_names_after_photo_class_and_method():
    assert file_name("chelsea", "tabby, tabby cat", "smoothgrad") == "chelsea_tabby_smoothgrad.png"
    assert file_name("Chelsea", "St. Bernard", None, "ig", "overlay") == "chelsea_st-bernard_ig_overlay.png"
    long = file_name("x" * 300, "y" * 300, "vanilla", "overlay")
    assert len(long) <= MAX_NAME and long.endswith("_vanilla_overlay.png")  # every part keeps its share
    assert image_stems(["a/Cat.JPG", "b/cat.png", "c/cat.png", "d/Grüße 2.jpeg"]) == ["cat", "cat-2", "cat-3",
                                                                                     "gr-e-2"]


def _write(out, name, text="x"):
    with open(out.path(name), "w") as f:
        f.write(text)
    return out.final_path(out.path(name))


def test_new_output_refuses_replaces_and_keeps_the_old_run_on_failure(tmp_path):
    dest = tmp_path / "run" / "out"
    with new_output(dest) as out:
        assert _write(out, "a.png") == str(dest / "a.png") and not dest.exists()
    assert sorted(os.listdir(dest)) == [".gradscope-output", "a.png"]
    with pytest.raises(GradscopeError, match="not empty; pass --overwrite"):
        with new_output(dest):
            pass
    with pytest.raises(RuntimeError):
        with new_output(dest, overwrite=True) as out:
            _write(out, "b.png")
            raise RuntimeError("the run failed")
    assert sorted(os.listdir(dest)) == [".gradscope-output", "a.png"]  # the earlier run, untouched
    with new_output(dest, overwrite=True) as out:
        _write(out, "b.png")
    assert sorted(os.listdir(dest)) == [".gradscope-output", "b.png"]
    assert sorted(os.listdir(dest.parent)) == ["out"]  # no staging or old folder left beside it
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(GradscopeError, match="did not write"):
        with new_output(mine, overwrite=True):
            pass
    assert (mine / "notes.txt").read_text() == "keep"
    with pytest.raises(RuntimeError):
        with new_output(tmp_path / "new" / "deep") as out:
            raise RuntimeError
    assert not (tmp_path / "new").exists()  # a failed run leaves no folder it created


def test_options_come_from_the_settings_record():
    settings = MethodSettings("m", Setting("n_samples", 25, "positive_int", "noisy copies", flag="--samples"),
                              Setting("objective", "log_prob", "choice", "what to climb", choices=("log_prob", "score")),
                              Setting("jitter", 4, "nonneg_int", "shift"))
    p = argparse.ArgumentParser()
    add_settings(p, settings, recipes={"Big": {"jitter": 8}})
    helps = {a.option_strings[0]: a.help for a in p._actions if a.option_strings}
    assert helps["--samples"] == "noisy copies (default 25)"
    assert helps["--objective"] == "what to climb (default log_prob)"
    assert helps["--jitter"] == "shift (default 4; Big: 8)"
    args = p.parse_args(["--samples", "3"])
    assert settings_values(args, settings) == {"n_samples": 3, "objective": "log_prob", "jitter": None}
    assert settings.params({"n_samples": 3}) == {"n_samples": 3, "objective": "log_prob", "jitter": 4}
    with pytest.raises(SystemExit):
        p.parse_args(["--samples", "0"])

    @settings.document
    def f():
        """n_samples: noisy copies (default {n_samples})."""
    assert f.__doc__ == "n_samples: noisy copies (default 25)."


def _options(parser, path=()):
    subs = getattr(parser, "subcommands", None)
    for name, sub in (subs.choices.items() if subs is not None else ()):
        yield from _options(sub, path + (name,))
    for action in parser._actions:
        if action.option_strings and action.dest not in ("help", "debug", "version") and action.nargs != 0:
            yield path, action


def test_every_option_has_help_with_its_default():
    from gradscope.cli import build_parser

    seen = 0
    for path, action in _options(build_parser()):
        seen += 1
        assert action.help, (path, action.option_strings)
        if not action.required:
            assert "default" in action.help or "required" in action.help, (path, action.option_strings)
    assert seen > 80


def test_maps_are_scaled_by_their_99th_percentile_and_clipped():
    import numpy as np

    from gradscope.figures import panel_title
    from gradscope.imageio import heatmap, map_top

    m = np.linspace(0.0, 1.0, 400).reshape(20, 20)
    m[0, 0] = 1000.0  # one extreme pixel
    assert map_top(m) == np.percentile(m, 99) and map_top(m) < 2
    h = heatmap(m)
    top = heatmap(np.ones((1, 1)) * 2, vmax=1.0)[0, 0]  # the top colour
    assert (h[0, 0] == top).all() and (h[-1, -1] == top).all()  # clipped at the top, not stretched
    assert h[10, 10].astype(int).sum() > 150  # a mid value is mid-scale, not near black as with the maximum
    assert map_top(np.zeros((4, 4))) == 0.0
    title = panel_title("chelsea: " + "Shetland sheepdog, Shetland sheep dog, Shetland (score 9.17)")
    assert len(title.splitlines()) == 2 and all(len(line) <= 24 for line in title.splitlines())


def test_readme_shows_the_schema_the_tests_use():
    import json
    import re

    from json_schema import schema

    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md"), encoding="utf-8").read()
    section = readme[readme.index("### JSON output"):]
    block = re.search(r"```json\n(.*?)```", section, re.S).group(1)
    assert json.loads(block) == schema()
