"""The course's coco_utils: the COCO captioning data as one dict of arrays.

load_coco_data reads the course's directory layout through gradscope.data.coco.load_coco
and returns the course's dict: train_captions (M, T) int32, train_image_idxs (M,),
train_features (n_images, D) float32 (read into memory), train_urls (n_images,) str,
the val_* counterparts, idx_to_word (list) and word_to_idx (dict).

Differences: max_train draws its captions with `seed` (default 0) and without repeats;
the urls are str, not bytes.
"""
import numpy as np

from gradscope.data.coco import load_coco
from gradscope.data.download import default_data_dir
from gradscope.data.vocab import check_vocab
from gradscope.errors import GradscopeError

__all__ = ["load_coco_data", "decode_captions", "sample_coco_minibatch"]


def load_coco_data(base_dir=None, max_train=None, pca_features=True, seed=0):
    """The course's data dict (module docstring). base_dir: the coco_captioning directory
    (default: gradscope's data directory, where `gradscope data download coco` puts it)."""
    splits = load_coco(default_data_dir() if base_dir is None else base_dir,
                       pca_features=pca_features, max_train=max_train, seed=seed)
    data = {}
    for name, split in splits.items():
        data[f"{name}_captions"] = split.captions
        data[f"{name}_image_idxs"] = split.image_idxs.astype(np.int32)
        data[f"{name}_features"] = np.asarray(split.features[()])  # the whole h5 dataset
        data[f"{name}_urls"] = np.asarray(split.urls if split.urls is not None else [""] * split.n_images)
    data["idx_to_word"] = list(splits["train"].idx_to_word)
    data["word_to_idx"] = dict(splits["train"].word_to_idx)
    return data


def decode_captions(captions, idx_to_word):
    """Caption ids -> strings, the course's way: <NULL> dropped, <START> and <END> kept,
    nothing after <END>. A 1-D array gives one string, a 2-D array a list of strings."""
    captions = np.asarray(captions)
    if captions.ndim not in (1, 2):
        raise GradscopeError(f"captions must be 1-D or 2-D word ids, got shape {captions.shape}")
    if isinstance(idx_to_word, dict):  # the course's model kept id -> word as a dict
        idx_to_word = [idx_to_word.get(i) for i in range(max(idx_to_word) + 1)]
    decoded = [" ".join(_course_words(row, idx_to_word)) for row in np.atleast_2d(captions)]
    return decoded[0] if captions.ndim == 1 else decoded


def _course_words(ids, idx_to_word):
    words = []
    for i in ids.tolist():
        if not 0 <= i < len(idx_to_word) or idx_to_word[i] is None:
            raise GradscopeError(f"word id {i} is not in the vocabulary of {len(idx_to_word)} ids")
        if idx_to_word[i] != "<NULL>":
            words.append(idx_to_word[i])
        if idx_to_word[i] == "<END>":
            break
    return words


def sample_coco_minibatch(data, batch_size=100, split="train", rng=None):
    """(captions (B, T), image_features (B, D), urls (B,)) of `batch_size` captions drawn
    with replacement from `split` (rng: a np.random.Generator; default NumPy's global state,
    as in the course)."""
    key = f"{split}_captions"
    if key not in data:
        raise GradscopeError(f"the data dict has no {key!r}; splits: "
                             f"{', '.join(k[:-9] for k in data if k.endswith('_captions'))}")
    n = data[key].shape[0]
    mask = (np.random if rng is None else rng).choice(n, batch_size)
    image_idxs = data[f"{split}_image_idxs"][mask]
    return data[key][mask], data[f"{split}_features"][image_idxs], data[f"{split}_urls"][image_idxs]


def caption_dataset(data, split="train"):
    """The `split` of a course data dict as a gradscope CaptionDataset (for the Trainer)."""
    from gradscope.data.captions import CaptionDataset

    idx_to_word = data.get("idx_to_word")
    if idx_to_word is None or isinstance(idx_to_word, dict):
        idx_to_word = check_vocab(data["word_to_idx"])
    return CaptionDataset(data[f"{split}_features"], data[f"{split}_captions"], data[f"{split}_image_idxs"],
                          data["word_to_idx"], list(idx_to_word), name=split)
