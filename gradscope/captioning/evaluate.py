"""Decode captions for many images in bounded memory, and score them against references."""
from __future__ import annotations

import numpy as np

from gradscope.captioning.beam_search import beam_search
from gradscope.errors import GradscopeError

__all__ = ["decode", "decoding_name", "evaluate_split", "check_feature_dim"]

# the shipped captioner's decoding (`caption IMAGE`, `evaluate`, `sample`, `explain`): beam 5,
# length normalisation alpha 0.5, chosen on Flickr8k dev (first 500 images, beam 3/5/8 x alpha
# 0/0.5/1: BLEU-4 0.195 at beam 3, 0.199 at beam 5, both alpha 0.5; README)
BEAM_SIZE, LENGTH_NORM = 5, 0.5
_SCORE_BUDGET = 2**28  # bytes of next-word scores held at once (chunk x beam x vocabulary float32)


def decode(model, features, beam_size: int = 1, max_length: int = 30, length_normalization=1.0,
           progress=None) -> np.ndarray:
    """Captions (N, max_length) int32 word ids of features (N, D): greedy (beam_size 1) or beam
    search, a chunk of images at a time so that memory stays bounded for any N and beam.
    progress: optional callable(done_images, total_images)."""
    n = len(features)
    chunk = max(1, min(500, _SCORE_BUDGET // (4 * beam_size * model.vocab_size)))
    out = []
    for i in range(0, max(n, 1), chunk):
        part = features[i:i + chunk]
        if beam_size == 1:
            out.append(model.sample(part, max_length=max_length))
        else:
            out.append(beam_search(model, part, beam_size=beam_size, max_length=max_length,
                                   length_normalization=length_normalization)[0])
        if progress is not None:
            progress(min(i + chunk, n), n)
    return np.concatenate(out)


def decoding_name(beam_size: int, length_normalization=1.0) -> str:
    return "greedy" if beam_size == 1 else f"beam {beam_size} (length norm {float(length_normalization):g})"


def check_feature_dim(model, dim: int, data: str) -> None:
    """GradscopeError when the captioner's input size differs from the data's features."""
    if model.input_dim != dim:
        raise GradscopeError(f"the captioner takes {model.input_dim}-dimensional image features but {data!r} "
                             f"has {dim}: it was trained on other data (features: "
                             f"{model.info.get('features', 'unknown')})")


def evaluate_split(model, split, max_images: int | None = None, beam_size: int = 1, max_length: int = 30,
                   length_normalization=1.0, progress=None) -> dict:
    """{'images': n, 'decoding': name, 'scores': BLEU-1..4, CIDEr-D, ROUGE-L} of the captions of
    the first max_images images (default all) of a CaptionDataset."""
    from gradscope.data.vocab import decode_tokens
    from gradscope.metrics import score_all

    ids = split.image_indices()[:max_images]
    captions = decode(model, split.image_features(ids), beam_size, max_length, length_normalization, progress)
    scores = score_all(split.references(ids), decode_tokens(captions, model.idx_to_word))
    return {"images": int(len(ids)), "decoding": decoding_name(beam_size, length_normalization), "scores": scores}
