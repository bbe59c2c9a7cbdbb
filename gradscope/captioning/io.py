"""Save and load a CaptioningRNN as one .npz file: the parameters as 'param/<name>'
arrays and a JSON metadata string (vocabulary, sizes, cell type (the entry of
gradscope.captioning.cells.CELL_TYPES), free-form info such as training settings) stored
as a uint8 array under 'meta'. Loading never unpickles. Files written before attention
captioners existed (no attention_dim) load as they were."""
from __future__ import annotations

import os

import numpy as np

from gradscope.captioning.model import CaptioningRNN
from gradscope.errors import DataError, GradscopeError
from gradscope.fileio import json_array, load_npz, read_json_array, save_npz
from gradscope.validate import check_fields, check_finite_arrays, list_of, of_type, one_of, positive_int

__all__ = ["save_captioner", "load_captioner", "load_captioners", "FORMAT"]

FORMAT = "gradscope-captioner/1"

# the metadata fields a captioner file must hold (gradscope.validate rules; "key?": optional)
META_FIELDS = {"cell_type": of_type(str, "a string"), "input_dim": positive_int, "wordvec_dim": positive_int,
               "hidden_dim": positive_int, "dtype?": one_of("float32", "float64"),
               "idx_to_word": list_of(str, "strings"), "word_to_idx?": of_type(dict, "an object"),
               "info?": of_type(dict, "an object")}


def save_captioner(path, model: CaptioningRNN, extra_meta: dict | None = None, float16: bool = False) -> None:
    """Write model to `path` (.npz) atomically; extra_meta (JSON-able) is merged into model.info.
    float16=True stores the parameters at half precision (half the size; loading casts back).
    An ensemble is saved as its members' files (load_captioners reads them back together)."""
    if not isinstance(model, CaptioningRNN):
        raise GradscopeError(f"save_captioner saves one CaptioningRNN, got {type(model).__name__}: save an "
                             "ensemble's members one file each")
    info = {**model.info, **(extra_meta or {})}
    meta = {"format": FORMAT, "cell_type": model.cell_type, "input_dim": model.input_dim,
            "wordvec_dim": model.wordvec_dim, "hidden_dim": model.hidden_dim, "attention_dim": model.attention_dim,
            "dropout": model.dropout, "attention_reg": model.attention_reg,
            "dtype": model.dtype.name, "idx_to_word": model.idx_to_word,
            "word_to_idx": model.word_to_idx, "info": info}
    arrays = {f"param/{k}": v.astype(np.float16) if float16 else v for k, v in model.params.items()}
    try:
        arrays["meta"] = json_array(meta)
    except TypeError as e:
        raise GradscopeError(f"extra_meta must be JSON-serializable: {e}") from None
    save_npz(path, arrays)


def load_captioner(path, dtype=None) -> CaptioningRNN:
    """The CaptioningRNN stored at `path` (dtype: as saved unless given)."""
    path = os.fspath(path)
    arrays = load_npz(path)
    meta = read_json_array(arrays, "meta", path, FORMAT, "gradscope captioner file")
    check_fields(meta, META_FIELDS, repr(path))
    check_finite_arrays({k[6:]: v for k, v in arrays.items() if k.startswith("param/")}, f"captioner {path!r}")
    try:
        word_to_idx = meta.get("word_to_idx") or {w: i for i, w in enumerate(meta["idx_to_word"])}
        model = CaptioningRNN(word_to_idx, input_dim=meta["input_dim"], wordvec_dim=meta["wordvec_dim"],
                              hidden_dim=meta["hidden_dim"], cell_type=meta["cell_type"],
                              dtype=dtype or meta["dtype"], attention_dim=meta.get("attention_dim"),
                              dropout=meta.get("dropout", 0.0), attention_reg=meta.get("attention_reg", 0.0))
    except (KeyError, GradscopeError) as e:
        raise DataError(f"{path!r} holds invalid captioner metadata: {e}") from None
    for name, init in model.params.items():
        saved = arrays.get(f"param/{name}")
        if saved is None or saved.shape != init.shape:
            got = "missing" if saved is None else f"shape {saved.shape}"
            raise DataError(f"{path!r}: parameter {name} is {got}, expected shape {init.shape}")
        model.params[name] = np.asarray(saved.astype(model.dtype))
    model.info = dict(meta.get("info") or {})
    return model


def load_captioners(paths, dtype=None):
    """The captioner stored at one path, or a CaptionerEnsemble of the captioners at several
    (paths: a list, or one string with the files separated by commas)."""
    from gradscope.captioning.ensemble import CaptionerEnsemble

    if isinstance(paths, (str, os.PathLike)):
        paths = [paths] if os.path.exists(paths) else [p for p in str(paths).split(",") if p]
    models = [load_captioner(p, dtype=dtype) for p in paths]
    if not models:
        raise GradscopeError("no captioner file given")
    return models[0] if len(models) == 1 else CaptionerEnsemble(models)
