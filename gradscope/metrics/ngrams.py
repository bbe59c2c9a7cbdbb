"""N-gram counting and input checks shared by the caption metrics."""
from __future__ import annotations

from collections import Counter

from gradscope.errors import GradscopeError

__all__ = ["ngram_counts", "check_corpus"]


def ngram_counts(tokens, n: int = 4) -> Counter:
    """Counts of every 1..n-gram (as tuples) in a token list."""
    counts = Counter()
    for k in range(1, n + 1):
        for i in range(len(tokens) - k + 1):
            counts[tuple(tokens[i:i + k])] += 1
    return counts


def check_corpus(references, hypotheses):
    """Validate references[i] (non-empty list of token lists) against hypotheses[i] (token list);
    return both as lists of lists."""
    references, hypotheses = list(references), list(hypotheses)
    if len(references) != len(hypotheses):
        raise GradscopeError(f"{len(references)} reference sets for {len(hypotheses)} hypotheses")
    if not hypotheses:
        raise GradscopeError("no hypotheses to score")
    for i, (refs, hyp) in enumerate(zip(references, hypotheses)):
        _check_tokens(hyp, f"hypothesis {i}")
        if isinstance(refs, str) or len(refs) == 0:
            raise GradscopeError(f"references[{i}] must be a non-empty list of token lists")
        for j, ref in enumerate(refs):
            _check_tokens(ref, f"reference {j} of image {i}")
    return [[list(r) for r in refs] for refs in references], [list(h) for h in hypotheses]


def _check_tokens(tokens, what):
    if isinstance(tokens, str) or not all(isinstance(t, str) for t in tokens):
        raise GradscopeError(f"{what} must be a list of word strings (tokenize captions first), "
                             f"got {type(tokens).__name__}")
