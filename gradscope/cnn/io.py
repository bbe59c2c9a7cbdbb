"""Save and load a CNN as two files: `<stem>.json` (config) and `<stem>.npz` (weights).
Loading never unpickles."""
from __future__ import annotations

import json
import os

import numpy as np

from gradscope.errors import DataError
from gradscope.fileio import TEXT_ENCODING, load_npz, save_json, save_npz


def _stem(path):
    """'model.json', 'model.npz' or 'model' -> 'model'."""
    stem, ext = os.path.splitext(os.fspath(path))
    return stem if ext in (".json", ".npz") else os.fspath(path)


def save_weights(path, config: dict, params: dict, buffers: dict, float16: bool = True) -> None:
    """Write config JSON and weights .npz (params as 'param/<name>', buffers as
    'buffer/<name>'; float16 storage halves the size)."""
    stem = _stem(path)
    dtype = np.float16 if float16 else np.float32
    arrays = {f"param/{k}": np.asarray(v).astype(dtype) for k, v in params.items()}
    # running variances can be tiny or large: keep buffers in float32
    arrays.update({f"buffer/{k}": np.asarray(v).astype(np.float32) for k, v in buffers.items()})
    save_npz(stem + ".npz", arrays)
    save_json(stem + ".json", config)


def load_weights(path, dtype=np.float32) -> tuple[dict, dict, dict]:
    """(config, params, buffers) from files written by save_weights."""
    stem = _stem(path)
    try:
        with open(stem + ".json", encoding=TEXT_ENCODING) as f:
            config = json.load(f)
    except FileNotFoundError:
        raise DataError(f"model config not found: {stem + '.json'!r}") from None
    except json.JSONDecodeError as e:
        raise DataError(f"corrupt model config {stem + '.json'!r}: {e}") from None
    from gradscope.cnn.config import validate_config
    from gradscope.validate import check_finite_arrays

    validate_config(config, stem + ".json")
    arrays = load_npz(stem + ".npz")
    check_finite_arrays(arrays, f"model {stem + '.npz'!r}")
    params = {k[6:]: v.astype(dtype) for k, v in arrays.items() if k.startswith("param/")}
    buffers = {k[7:]: v.astype(dtype) for k, v in arrays.items() if k.startswith("buffer/")}
    return config, params, buffers
