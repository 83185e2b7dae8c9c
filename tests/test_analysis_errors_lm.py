"""Language-model error taxonomy (Karpathy, Johnson, Fei-Fei 2015)."""
import numpy as np
import pytest

from rnnvis.analysis.errors_lm import error_taxonomy, ngram_p_true, seen_before
from rnnvis.errors import RnnvisError


def test_certain_prediction_is_never_an_error():
    toks = ["the", "cat", "sat", ",", "zyzzyva", "the", "cat"]
    p = np.ones(len(toks))  # certain everywhere
    t = error_taxonomy(toks, np.zeros(len(toks), int), p, {"the": 100}, level="word")
    assert t.errors == 0 and (t.category == -1).all()
    p[2] = 1e-3
    t = error_taxonomy(toks, np.zeros(len(toks), int), p, {"the": 100, "sat": 100}, level="word")
    assert t.errors == 1 and t.category[2] >= 0 and (np.delete(t.category, 2) == -1).all()


def test_ngram_oracle_removes_error_that_a_bigram_fixes():
    # ids: 1 <unk>, 2 <eos>, 3 'a', 4 'b', 5.. fillers; 'b' always follows 'a' in training
    rng = np.random.default_rng(0)
    train = [[int(x) for x in np.r_[rng.integers(5, 15, 6), 3, 4, rng.integers(5, 15, 6), 2]] for _ in range(30)]
    test_doc = [7, 9, 3, 4, 11, 2]
    q = ngram_p_true(train, [test_doc], vocab_size=15, max_order=3)
    assert q.shape == (3, 6) and q[0, 3] < 0.5 < q[1, 3]
    toks = ["w7", "w9", "a", "b", "w11", "<eos>"]
    p = np.full(6, 0.9)
    p[3] = 0.05  # the RNN misses 'b' after 'a'
    t = error_taxonomy(toks, np.zeros(6, int), p, {w: 100 for w in toks}, ngram_p=q)
    assert t.category[3] == 0 and t.get("ngram").count == 1 and t.ngram_order[3] == 2
    # without the oracle the same error falls through to the rest
    t = error_taxonomy(toks, np.zeros(6, int), p, {w: 100 for w in toks})
    assert t.get("rest").count == 1 and t.get("ngram").count == 0
    # a callable oracle gives the same answer
    t = error_taxonomy(toks, np.zeros(6, int), p, {w: 100 for w in toks}, ngram_p=lambda m: q[m - 1], max_order=3)
    assert t.ngram_order[3] == 2


def test_dynamic_memory_is_per_document_and_needs_the_context():
    ids = np.array([1, 2, 3, 9, 1, 2, 3, 5, 1, 2, 3])
    docs = np.array([0] * 8 + [1] * 3)
    m = seen_before(ids, docs, k=2)
    assert m.tolist() == [False] * 6 + [True] + [False] * 4  # (1 2) 3 repeats in doc 0 only


def test_categories_in_peeling_order_char_level():
    text = "ab ab, xqz!"
    toks = list(text)
    p = np.full(len(toks), 0.9)
    err = {3: 0.1, 4: 0.1, 5: 0.1, 7: 0.1, 8: 0.45, 9: 0.1, 10: 0.1}
    for i, v in err.items():
        p[i] = v
    counts = {"ab": 50, "ab,": 50, "xqz!": 50}
    t = error_taxonomy(toks, np.zeros(len(toks), int), p, counts, level="char", memory_context=1)
    names = [t.categories[c].name if c >= 0 else None for c in t.category]
    assert names[3] == "word_start"  # 'a' after a space: ' a' was not seen before
    assert names[4] == "memory"  # 'b' followed 'a' earlier in the document
    assert names[5] == "punctuation"
    assert names[7] == "word_start" and names[8] == "boost" and names[9] == "rest" and names[10] == "punctuation"
    assert sum(c.count for c in t.categories) == t.errors == 7
    assert abs(sum(t.pie().values()) - 1) < 1e-12
    assert t.labels()[[0, 3, 8]].tolist() == ["correct", "word_start", "boost"]
    ex = t.get("punctuation").examples[0]
    assert ex.token == "," and ex.left == "ab ab" and ex.right == " xqz!"


def test_rare_words_and_bad_input():
    toks = ["the", "aardvark", "<unk>", "the"]
    p = np.array([0.9, 0.1, 0.1, 0.9])
    t = error_taxonomy(toks, np.zeros(4, int), p, {"the": 100, "aardvark": 2})
    assert t.get("rare").count == 2
    with pytest.raises(RnnvisError):
        error_taxonomy(toks, np.zeros(3, int), p, {})
    with pytest.raises(RnnvisError):
        error_taxonomy(toks, np.zeros(4, int), p + 1, {})


def test_rare_words_at_character_level_use_the_containing_word():
    toks = list("the qat sat")
    p = np.full(len(toks), 0.9)
    p[[5, 9]] = 0.1  # 'a' of the rare 'qat', 'a' of the frequent 'sat'
    t = error_taxonomy(toks, np.zeros(len(toks), int), p, {"the": 90, "sat": 90, "qat": 1}, level="char",
                       memory_context=3)
    assert t.labels()[5] == "rare" and t.labels()[9] == "rest"
