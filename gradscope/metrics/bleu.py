"""Corpus BLEU-1..4, computed the way the COCO caption evaluation (pycocoevalcap) does.

For each hypothesis: clipped n-gram matches against the per-n-gram maximum count over
its references, and the 'closest' reference length (ties -> the shorter one).
Matches, guesses and lengths are summed over the corpus, then

    BLEU-k = (prod_{j<=k} (correct_j + 1e-15) / (guess_j + 1e-9)) ** (1/k)
    times exp(1 - reflen / testlen) when testlen < reflen (brevity penalty),

the two small constants are the ones the COCO scorer uses to avoid 0/0.
"""
from __future__ import annotations

import math

from gradscope.metrics.ngrams import check_corpus, ngram_counts

__all__ = ["bleu", "TINY", "SMALL"]

TINY, SMALL = 1e-15, 1e-9


def bleu(references, hypotheses, n: int = 4) -> list:
    """[BLEU-1, ..., BLEU-n] of a corpus; references[i] = token lists, hypotheses[i] = token list."""
    references, hypotheses = check_corpus(references, hypotheses)
    correct, guess = [0] * n, [0] * n
    testlen = reflen = 0
    for refs, hyp in zip(references, hypotheses):
        max_ref = {}
        for ref in refs:
            for gram, c in ngram_counts(ref, n).items():
                max_ref[gram] = max(max_ref.get(gram, 0), c)
        for gram, c in ngram_counts(hyp, n).items():
            correct[len(gram) - 1] += min(max_ref.get(gram, 0), c)
        for k in range(n):
            guess[k] += max(0, len(hyp) - k)
        testlen += len(hyp)
        reflen += min((abs(len(r) - len(hyp)), len(r)) for r in refs)[1]
    scores, prod = [], 1.0
    for k in range(n):
        prod *= (correct[k] + TINY) / (guess[k] + SMALL)
        scores.append(prod ** (1.0 / (k + 1)))
    ratio = (testlen + TINY) / (reflen + SMALL)
    if ratio < 1:
        scores = [s * math.exp(1 - 1 / ratio) for s in scores]
    return scores
