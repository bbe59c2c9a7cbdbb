"""Caption metrics: parity with pycocoevalcap on the same tokens, plus small hand-checked cases."""
import math

import numpy as np
import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge

from gradscope.errors import GradscopeError
from gradscope.metrics import bleu, cider, cider_per_image, rouge_l, rouge_l_per_image, score_all
from gradscope.metrics.rouge import lcs_length

WORDS = "a the dog cat man on red sits runs grass ball with two of and".split()


def random_corpus(rng, n_images, allow_empty=False):
    lo = 0 if allow_empty else 1

    def sentence():
        return [WORDS[i] for i in rng.integers(0, len(WORDS), size=rng.integers(lo, 12))]

    refs = [[sentence() for _ in range(rng.integers(1, 6))] for _ in range(n_images)]
    hyps = [sentence() for _ in range(n_images)]
    for i in range(0, n_images, 3):  # some hypotheses that copy part of a reference
        hyps[i] = refs[i][0][: max(1, len(refs[i][0]) - 1)]
    return refs, hyps


def coco_dicts(refs, hyps):
    gts = {i: [" ".join(r) for r in rs] for i, rs in enumerate(refs)}
    res = {i: [" ".join(h)] for i, h in enumerate(hyps)}
    return gts, res


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bleu_matches_pycocoevalcap(seed):
    refs, hyps = random_corpus(np.random.default_rng(seed), 30)
    expected, _ = Bleu(4).compute_score(*coco_dicts(refs, hyps), verbose=0)
    np.testing.assert_allclose(bleu(refs, hyps), expected, rtol=0, atol=1e-6)


def test_bleu_matches_pycocoevalcap_short_hypotheses():
    # hypotheses shorter than the references trigger the brevity penalty and zero 4-gram counts
    refs = [[["a", "dog", "runs", "on", "the", "grass"], ["the", "dog", "is", "running"]],
            [["a", "man", "sits"], ["man", "sits", "on", "a", "red", "chair"]]]
    hyps = [["a", "dog"], ["man"]]
    expected, _ = Bleu(4).compute_score(*coco_dicts(refs, hyps), verbose=0)
    np.testing.assert_allclose(bleu(refs, hyps), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cider_matches_pycocoevalcap(seed):
    refs, hyps = random_corpus(np.random.default_rng(seed), 30)
    expected, per_image = Cider().compute_score(*coco_dicts(refs, hyps))
    assert abs(cider(refs, hyps) - expected) < 1e-6
    np.testing.assert_allclose(cider_per_image(refs, hyps), per_image, rtol=0, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_rouge_matches_pycocoevalcap(seed):
    refs, hyps = random_corpus(np.random.default_rng(seed), 30)
    expected, per_image = Rouge().compute_score(*coco_dicts(refs, hyps))
    assert abs(rouge_l(refs, hyps) - expected) < 1e-6
    np.testing.assert_allclose(rouge_l_per_image(refs, hyps), per_image, rtol=0, atol=1e-6)


def test_empty_hypotheses_match_pycocoevalcap():
    refs, hyps = random_corpus(np.random.default_rng(5), 12, allow_empty=True)
    hyps[1] = []
    gts, res = coco_dicts(refs, hyps)
    np.testing.assert_allclose(bleu(refs, hyps), Bleu(4).compute_score(gts, res, verbose=0)[0], atol=1e-6)
    assert abs(cider(refs, hyps) - Cider().compute_score(gts, res)[0]) < 1e-6
    assert abs(rouge_l(refs, hyps) - Rouge().compute_score(gts, res)[0]) < 1e-6


def test_perfect_match_gives_bleu_one_and_rouge_one():
    refs = [[["a", "red", "circle", "on", "the", "left"], ["there", "is", "a", "red", "circle"]],
            [["a", "blue", "square", "at", "the", "top"]]]
    hyps = [["a", "red", "circle", "on", "the", "left"], ["a", "blue", "square", "at", "the", "top"]]
    np.testing.assert_allclose(bleu(refs, hyps), [1.0] * 4, atol=1e-9)
    assert rouge_l(refs, hyps) == pytest.approx(1.0)


def test_bleu_hand_computed():
    # hypothesis "the cat the cat" vs reference "the cat sat": unigram matches clipped to 2 of 4,
    # bigrams: "the cat" x2 clipped to 1, "cat the" 0 -> 1 of 3; reflen 3 < testlen 4: no penalty
    b1, b2, _, _ = bleu([[["the", "cat", "sat"]]], [["the", "cat", "the", "cat"]])
    assert b1 == pytest.approx(2 / 4)
    assert b2 == pytest.approx(math.sqrt(2 / 4 * 1 / 3))


def test_bleu_brevity_penalty_and_closest_length():
    # refs of length 6 and 2, hypothesis of length 3: closest is 2 -> no penalty
    refs = [[["a", "b", "c", "d", "e", "f"], ["a", "b"]]]
    assert bleu(refs, [["a", "b", "c"]])[0] == pytest.approx(1.0)
    # only a 6-word reference: penalty exp(1 - 6/3)
    assert bleu([[refs[0][0]]], [["a", "b", "c"]])[0] == pytest.approx(math.exp(1 - 6 / 3))


def test_cider_identical_corpus_and_disjoint():
    refs = [[["a", "red", "circle"]], [["two", "blue", "squares"]], [["green", "triangle", "here"]]]
    same = [r[0] for r in refs]
    # every n-gram occurs in one image out of 3: the cosine is 1 for n <= 3, 0 for 4-grams
    assert cider(refs, same) == pytest.approx(10 * 3 / 4)
    assert cider(refs, [["zebra"], ["zebra"], ["zebra"]]) == 0.0


def test_lcs_length():
    assert lcs_length(list("abcbdab"), list("bdcaba")) == 4
    assert lcs_length([], ["a"]) == 0


def test_score_all_keys():
    refs, hyps = random_corpus(np.random.default_rng(3), 5)
    scores = score_all(refs, hyps)
    assert list(scores) == ["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "CIDEr", "ROUGE_L"]
    assert scores["CIDEr"] == pytest.approx(cider(refs, hyps))


@pytest.mark.parametrize("refs, hyps, match", [
    ([[["a"]]], [], "1 reference sets for 0 hypotheses"),
    ([[]], [["a"]], "non-empty list"),
    ([[["a"]]], ["a dog"], "tokenize"),
    ([["a dog"]], [["a"]], "tokenize"),
])
def test_bad_input_is_named(refs, hyps, match):
    with pytest.raises(GradscopeError, match=match):
        bleu(refs, hyps)
