"""Caption text <-> integer ids.

Tokenization (one rule, used everywhere in gradscope):
    - lowercase;
    - every character that is not a letter, digit or apostrophe becomes a space
      (so "dog's" stays one token, "black-and-white" becomes three);
    - apostrophes at a token's edges are stripped ("'hello'" -> "hello");
    - split on whitespace.

Vocabulary: the four special tokens first, then the words by descending count,
ties broken alphabetically:
    <NULL>=0 (padding), <START>=1, <END>=2, <UNK>=3.
"""
from __future__ import annotations

import re
from collections import Counter

import numpy as np

from gradscope.errors import DataError, GradscopeError

NULL, START, END, UNK = "<NULL>", "<START>", "<END>", "<UNK>"
SPECIAL_TOKENS = (NULL, START, END, UNK)
NULL_ID, START_ID, END_ID, UNK_ID = 0, 1, 2, 3

_NON_WORD = re.compile(r"[^\w']+|_+")

__all__ = ["NULL", "START", "END", "UNK", "SPECIAL_TOKENS", "NULL_ID", "START_ID", "END_ID",
           "UNK_ID", "tokenize", "build_vocab", "encode", "decode_tokens", "decode_captions",
           "check_vocab"]


def tokenize(text: str) -> list[str]:
    """Split a caption into lowercase word tokens (see the module docstring for the rule)."""
    if not isinstance(text, str):
        raise GradscopeError(f"tokenize expects a string, got {type(text).__name__}")
    words = (w.strip("'") for w in _NON_WORD.sub(" ", text.lower()).split())
    return [w for w in words if w]


def build_vocab(token_lists, min_count: int = 1):
    """Vocabulary of the words seen at least `min_count` times.

    Args:
        token_lists: iterable of token lists (one per caption).
        min_count: words rarer than this map to <UNK>.
    Returns:
        (word_to_idx dict, idx_to_word list) with the special tokens at ids 0..3.
    """
    if min_count < 1:
        raise GradscopeError(f"min_count must be >= 1, got {min_count}")
    counts = Counter(w for tokens in token_lists for w in tokens)
    for tok in SPECIAL_TOKENS:
        counts.pop(tok, None)
    words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    idx_to_word = list(SPECIAL_TOKENS) + words
    return {w: i for i, w in enumerate(idx_to_word)}, idx_to_word


def encode(token_lists, word_to_idx: dict, max_length: int) -> np.ndarray:
    """Token lists -> (M, max_length + 2) int32: <START> words <END> then <NULL> padding.

    Captions longer than max_length words are truncated (still ending in <END>);
    unknown words become <UNK>.
    """
    if max_length < 1:
        raise GradscopeError(f"max_length must be >= 1, got {max_length}")
    check_vocab(word_to_idx)
    token_lists = list(token_lists)
    out = np.full((len(token_lists), max_length + 2), NULL_ID, dtype=np.int32)  # (M, T)
    unk = word_to_idx[UNK]
    for i, tokens in enumerate(token_lists):
        ids = [word_to_idx.get(w, unk) for w in tokens[:max_length]]
        out[i, 0] = word_to_idx[START]
        out[i, 1:len(ids) + 1] = ids
        out[i, len(ids) + 1] = word_to_idx[END]
    return out


def decode_tokens(ids, idx_to_word) -> list:
    """Token lists from ids (1-D -> one list, 2-D -> list of lists): stops at <END>,
    drops <NULL> and <START>."""
    ids = np.asarray(ids)
    if ids.ndim == 2:
        return [decode_tokens(row, idx_to_word) for row in ids]
    if ids.ndim != 1:
        raise GradscopeError(f"caption ids must be 1-D or 2-D, got shape {ids.shape}")
    words = []
    for i in ids.tolist():
        if not 0 <= i < len(idx_to_word):
            raise GradscopeError(f"token id {i} out of range for a vocabulary of {len(idx_to_word)}")
        w = idx_to_word[i]
        if w == END:
            break
        if w not in (NULL, START):
            words.append(w)
    return words


def decode_captions(ids, idx_to_word):
    """Caption strings from ids: a 1-D array gives one string, a 2-D array a list of strings.

    Stops at <END>; drops <NULL> and <START> (<UNK> is kept).
    """
    tokens = decode_tokens(ids, idx_to_word)
    if np.ndim(ids) == 2:
        return [" ".join(t) for t in tokens]
    return " ".join(tokens)


def check_vocab(word_to_idx: dict, idx_to_word=None) -> None:
    """Raise DataError unless the vocabulary has the special tokens at 0..3 (and the two maps agree)."""
    for i, tok in enumerate(SPECIAL_TOKENS):
        if word_to_idx.get(tok) != i:
            raise DataError(f"vocabulary must map {tok} to {i}, got {word_to_idx.get(tok)!r}")
    if idx_to_word is not None:
        if len(idx_to_word) != len(word_to_idx):
            raise DataError(f"vocabulary maps disagree: {len(word_to_idx)} words in word_to_idx, "
                            f"{len(idx_to_word)} in idx_to_word")
        for i, w in enumerate(idx_to_word):
            if word_to_idx.get(w) != i:
                raise DataError(f"vocabulary maps disagree at id {i} ({w!r})")
