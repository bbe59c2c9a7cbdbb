"""ROUGE-L as the COCO caption evaluation computes it: per image, the longest common
subsequence with each reference gives precision and recall; the best precision and
best recall (possibly from different references) combine into
F = (1 + beta^2) P R / (R + beta^2 P) with beta = 1.2; the corpus score is the mean."""
from __future__ import annotations

from gradscope.metrics.ngrams import check_corpus

__all__ = ["rouge_l", "rouge_l_per_image", "lcs_length"]

BETA = 1.2


def lcs_length(a, b) -> int:
    """Length of the longest common subsequence of two token lists."""
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l_per_image(references, hypotheses, beta: float = BETA) -> list:
    """ROUGE-L F score of every hypothesis."""
    references, hypotheses = check_corpus(references, hypotheses)
    scores = []
    for refs, hyp in zip(references, hypotheses):
        # an empty caption counts as one (empty) token, as the COCO scorer's split(" ") does
        lcs = [lcs_length(r, hyp) for r in refs]
        prec = max(m / max(len(hyp), 1) for m in lcs)
        rec = max(m / max(len(r), 1) for m, r in zip(lcs, refs))
        if prec == 0 or rec == 0:
            scores.append(0.0)
        else:
            scores.append((1 + beta ** 2) * prec * rec / (rec + beta ** 2 * prec))
    return scores


def rouge_l(references, hypotheses, beta: float = BETA) -> float:
    """Mean ROUGE-L F score over the corpus."""
    scores = rouge_l_per_image(references, hypotheses, beta)
    return sum(scores) / len(scores)
