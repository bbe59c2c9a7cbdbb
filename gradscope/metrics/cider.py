"""CIDEr-D as the COCO caption evaluation (pycocoevalcap's Cider) computes it.

Document frequencies come from the references: df(g) = number of images whose
references contain n-gram g; idf(g) = log(n_images) - log(max(1, df(g))).
Each caption becomes, per n = 1..4, a vector of tf * idf over its n-grams. For a
hypothesis h and reference r the n-gram similarity is

    sum_g min(h_g, r_g) * r_g / (|h| |r|)          (clipped cosine; 0 if a norm is 0)
    times exp(-(len_h - len_r)^2 / (2 sigma^2))     (length penalty, sigma = 6)

where, as in the COCO code, len counts bigrams (max(words - 1, 0)). The image score
is 10 * mean over n of the mean over references; the corpus score is the mean over images.
"""
from __future__ import annotations

import math
from collections import Counter

from gradscope.metrics.ngrams import check_corpus, ngram_counts

__all__ = ["cider", "cider_per_image"]


def cider_per_image(references, hypotheses, n: int = 4, sigma: float = 6.0) -> list:
    """CIDEr-D of every hypothesis (document frequencies from this corpus's references)."""
    references, hypotheses = check_corpus(references, hypotheses)
    ref_counts = [[ngram_counts(r, n) for r in refs] for refs in references]
    df = Counter(g for refs in ref_counts for g in set().union(*refs))
    log_n = math.log(len(references))

    def vectorize(counts):
        vec = [{} for _ in range(n)]
        norm = [0.0] * n
        for gram, tf in counts.items():
            w = tf * (log_n - math.log(max(1.0, df.get(gram, 0))))
            vec[len(gram) - 1][gram] = w
            norm[len(gram) - 1] += w * w
        bigrams = sum(tf for g, tf in counts.items() if len(g) == 2)
        return vec, [math.sqrt(v) for v in norm], bigrams

    scores = []
    for hyp, refs in zip(hypotheses, ref_counts):
        vh, nh, lh = vectorize(ngram_counts(hyp, n))
        total = 0.0
        for ref in refs:
            vr, nr, lr = vectorize(ref)
            penalty = math.exp(-((lh - lr) ** 2) / (2 * sigma ** 2))
            for k in range(n):
                val = sum(min(w, vr[k].get(g, 0.0)) * vr[k].get(g, 0.0) for g, w in vh[k].items())
                if nh[k] != 0 and nr[k] != 0:
                    val /= nh[k] * nr[k]
                total += val * penalty
        scores.append(10.0 * total / n / len(refs))
    return scores


def cider(references, hypotheses, n: int = 4, sigma: float = 6.0) -> float:
    """Mean CIDEr-D over the corpus; references[i] = token lists, hypotheses[i] = token list."""
    scores = cider_per_image(references, hypotheses, n, sigma)
    return sum(scores) / len(scores)
