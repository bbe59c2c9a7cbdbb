"""scripts/run_course_notebooks.py on a two-cell Python 2 notebook written here."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))

import run_course_notebooks as runner  # noqa: E402


def test_runner_converts_redirects_and_reports(tmp_path):
    cells = [{"cell_type": "code", "source": ["%matplotlib inline\n", "import numpy as np\n",
                                              "from cs231n.rnn_layers import rnn_step_forward\n",
                                              "for k, v in {'a': 1}.iteritems():\n", "  print k, v\n"],
              "outputs": [{"output_type": "stream", "text": ["a 1\n"]}]},
             {"cell_type": "markdown", "source": ["text"]},
             {"cell_type": "code", "source": ["print xrange(3)[-1], open('cs231n/datasets/x.txt').read()\n"],
              "outputs": []},
             {"cell_type": "code", "source": ["raise ValueError('boom')\n"], "outputs": []}]
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps({"nbformat": 4, "cells": cells}))
    (tmp_path / "x.txt").write_text("data")
    parsed = runner.code_cells(path)
    assert [c[0] for c in parsed] == [0, 2, 3] and parsed[0][2] == "a 1\n"
    results = runner.run_notebook("nb", parsed, {"cs231n/datasets/x.txt": str(tmp_path / "x.txt")}, None, 60)
    assert [r["status"] for r in results] == ["passed", "passed", "failed"]
    assert results[0]["output"] == "a 1\n" and results[1]["output"] == "2 data\n"
    assert results[2]["error"].startswith("ValueError: boom")
