"""Caption text <-> integer ids.

Tokenization (one rule, used everywhere in gradscope):
    - lowercase;
    - every character that is not a letter, digit or apostrophe becomes a space
      (so "dog's" stays one token, "black-and-white" becomes three);
    - apostrophes at a token's edges are stripped ("'hello'" -> "hello");
    - split on whitespace.

Vocabulary built here: the four special tokens first, then the words by descending
count, ties broken alphabetically: <NULL>=0 (padding), <START>=1, <END>=2, <UNK>=3.

Vocabulary accepted everywhere (models, datasets; one rule, `check_vocab`), as in the
CS231n course: V = len(word_to_idx); each word has its own integer id >= 0; <NULL> must
be there (it pads captions and is masked out of the loss). The other special tokens are
needed only by what uses them: <START> and <END> by decoding, <START>, <END> and <UNK>
by encoding text (`require_tokens` names what is missing). A word whose id is >= V has
no row in a model; caption ids are checked against V where captions are given.
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
           "check_vocab", "require_tokens"]


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
    require_tokens(word_to_idx, (START, END, UNK), "encoding captions")
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
        if w is None:
            raise GradscopeError(f"token id {i} has no word in the vocabulary")
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


def check_vocab(word_to_idx, idx_to_word=None) -> list:
    """Apply the vocabulary rule (module docstring) and return idx_to_word: a list of
    V = len(word_to_idx) entries, None at an id no word has. A given idx_to_word must
    agree with word_to_idx. Raises DataError naming the problem."""
    try:
        pairs = [(w, int(i)) for w, i in dict(word_to_idx).items()]
    except (TypeError, ValueError):
        raise DataError("word_to_idx must map words to integer ids") from None
    if any(not isinstance(w, str) for w, _ in pairs):
        raise DataError("word_to_idx keys must be strings")
    if NULL not in word_to_idx:
        raise DataError(f"the vocabulary has no {NULL} (padding), which every caption model needs")
    table = [None] * len(pairs)
    seen = {}
    for w, i in pairs:
        if i < 0 or i in seen:
            raise DataError(f"vocabulary ids must be distinct integers >= 0; {w!r} has id {i}"
                            + (f", as does {seen[i]!r}" if i in seen else ""))
        seen[i] = w
        if i < len(table):
            table[i] = w
    if idx_to_word is not None:
        if len(idx_to_word) != len(table):
            raise DataError(f"vocabulary maps disagree: {len(table)} words in word_to_idx, "
                            f"{len(idx_to_word)} in idx_to_word")
        for i, w in enumerate(idx_to_word):
            if w != table[i]:
                raise DataError(f"vocabulary maps disagree at id {i} ({w!r})")
    return table


def require_tokens(word_to_idx, tokens, purpose: str) -> list:
    """The ids of special `tokens`; GradscopeError naming the missing ones and `purpose`."""
    missing = [t for t in tokens if t not in word_to_idx]
    if missing:
        raise GradscopeError(f"{purpose} needs {', '.join(missing)} in the vocabulary")
    return [int(word_to_idx[t]) for t in tokens]
