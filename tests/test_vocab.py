"""Tokenizer, vocabulary building, encoding and decoding of captions."""
import numpy as np
import pytest

from gradscope.data.vocab import (END_ID, NULL_ID, START_ID, UNK_ID, build_vocab, check_vocab,
                                  decode_captions, decode_tokens, encode, tokenize)
from gradscope.errors import DataError, GradscopeError


def test_tokenize_rule():
    assert tokenize("A dog's ball, in the GRASS!") == ["a", "dog's", "ball", "in", "the", "grass"]
    assert tokenize("black-and-white  'photo'\n") == ["black", "and", "white", "photo"]
    assert tokenize("two_people ... 3 cats") == ["two", "people", "3", "cats"]
    assert tokenize("   ") == []
    with pytest.raises(GradscopeError, match="string"):
        tokenize(["a"])


def test_build_vocab_order_and_min_count():
    tokens = [["b", "a", "c"], ["a", "b", "d"], ["a", "e", "e"]]
    word_to_idx, idx_to_word = build_vocab(tokens)
    assert idx_to_word[:4] == ["<NULL>", "<START>", "<END>", "<UNK>"]
    assert idx_to_word[4:] == ["a", "b", "e", "c", "d"]  # counts 3, 2, 2, 1, 1; ties alphabetical
    assert all(word_to_idx[w] == i for i, w in enumerate(idx_to_word))
    _, small = build_vocab(tokens, min_count=2)
    assert small[4:] == ["a", "b", "e"]
    with pytest.raises(GradscopeError, match="min_count"):
        build_vocab(tokens, min_count=0)


def test_encode_pads_truncates_and_unknowns():
    word_to_idx, idx_to_word = build_vocab([["a", "dog", "runs"]])
    caps = encode([["a", "dog"], ["a", "cat", "runs", "fast", "away"], []], word_to_idx, max_length=3)
    a, dog, runs = word_to_idx["a"], word_to_idx["dog"], word_to_idx["runs"]
    assert caps.dtype == np.int32 and caps.shape == (3, 5)
    np.testing.assert_array_equal(caps[0], [START_ID, a, dog, END_ID, NULL_ID])
    np.testing.assert_array_equal(caps[1], [START_ID, a, UNK_ID, runs, END_ID])
    np.testing.assert_array_equal(caps[2], [START_ID, END_ID, NULL_ID, NULL_ID, NULL_ID])


def test_decode_round_trip_1d_and_2d():
    tokens = [["a", "red", "circle"], ["a", "blue", "square", "here"]]
    word_to_idx, idx_to_word = build_vocab(tokens)
    caps = encode(tokens, word_to_idx, max_length=6)
    assert decode_captions(caps, idx_to_word) == ["a red circle", "a blue square here"]
    assert decode_captions(caps[0], idx_to_word) == "a red circle"
    assert decode_tokens(caps, idx_to_word) == tokens
    # stops at <END> even with words after it; <UNK> is kept
    assert decode_captions(np.array([START_ID, UNK_ID, END_ID, 5]), idx_to_word) == "<UNK>"
    with pytest.raises(GradscopeError, match="out of range"):
        decode_captions(np.array([999]), idx_to_word)
    with pytest.raises(GradscopeError, match="1-D or 2-D"):
        decode_captions(np.zeros((1, 1, 1), int), idx_to_word)


def test_check_vocab_errors():
    word_to_idx, idx_to_word = build_vocab([["x"]])
    check_vocab(word_to_idx, idx_to_word)
    assert check_vocab({"<NULL>": 0, "<START>": 2, "<END>": 1, "<UNK>": 3}) == ["<NULL>", "<END>", "<START>", "<UNK>"]
    assert check_vocab({"<NULL>": 0, "cat": 2, "dog": 3}) == ["<NULL>", None, "cat"]  # the course's: V = 3
    with pytest.raises(DataError, match="no <NULL>"):
        check_vocab({"<START>": 0, "<END>": 1})
    with pytest.raises(DataError, match="distinct"):
        check_vocab({"<NULL>": 0, "a": 1, "b": 1})
    with pytest.raises(DataError, match="distinct"):
        check_vocab({"<NULL>": 0, "a": -1})
    with pytest.raises(GradscopeError, match="encoding captions needs <UNK>"):
        encode([["a"]], {"<NULL>": 0, "<START>": 1, "<END>": 2, "a": 3}, max_length=3)
    with pytest.raises(DataError, match="disagree"):
        check_vocab(word_to_idx, idx_to_word[:-1])
