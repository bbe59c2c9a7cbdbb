"""scripts/demo_sheet.py: the demo's figures on one sheet, in the stated grid."""
import importlib.util
import os

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))


def _script():
    spec = importlib.util.spec_from_file_location("demo_sheet", os.path.join(HERE, "..", "scripts", "demo_sheet.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_sheet_places_each_figure_in_its_cell(tmp_path):
    mod = _script()
    images = tmp_path / "demo_out" / "images"
    images.mkdir(parents=True)
    colours = {}
    for r, row in enumerate(mod.ROWS):
        for c, name in enumerate(row):
            colours[name] = (20 * r + 40, 30 * c + 10, 200 - 10 * c)
            Image.new("RGB", (64, 64), colours[name]).save(images / f"{name}.png")
    out = tmp_path / "sheet.png"
    assert mod.main([str(tmp_path / "demo_out"), "--out", str(out), "--tile", "20"]) == 0
    sheet = np.asarray(Image.open(out))
    assert sheet.shape == (3 * 20 + 4 * 4, 5 * 20 + 6 * 4, 3)
    for r, row in enumerate(mod.ROWS):
        for c, name in enumerate(row):
            y, x = 4 + r * 24 + 10, 4 + c * 24 + 10  # the centre of the cell
            assert tuple(sheet[y, x]) == colours[name]
    assert tuple(sheet[0, 0]) == (255, 255, 255)


def test_missing_figure_is_one_line_and_status_2(tmp_path, capsys):
    mod = _script()
    (tmp_path / "images").mkdir()
    assert mod.main([str(tmp_path), "--out", str(tmp_path / "s.png")]) == 2
    err = capsys.readouterr().err
    assert "lacks" in err and "gradscope demo" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s.png").exists()
