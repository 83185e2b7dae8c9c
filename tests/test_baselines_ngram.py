"""Kneser–Ney n-gram baseline: normalisation, a hand-checked perplexity, beating a unigram, caching."""
import math
import random

import numpy as np
import pytest

from rnnvis.baselines import KneserNeyLM, compute_baselines
from rnnvis.data.corpus import Corpus, Document
from rnnvis.data.tokenize import CharTokenizer, WordTokenizer
from rnnvis.errors import RnnvisError


@pytest.mark.parametrize("order,discount", [(1, None), (2, None), (3, None), (5, None), (3, 0.75)])
def test_distributions_sum_to_one(order, discount):
    rng = np.random.default_rng(order)
    docs = [rng.integers(1, 25, size=rng.integers(1, 40)).tolist() + [2] for _ in range(60)]
    lm = KneserNeyLM(25, order=order, discount=discount).fit(docs)
    for ctx in ([], [3], [3, 4], docs[0][:4], [24, 24, 24, 24], [1, 1]):
        p = lm.distribution(ctx)
        assert p[0] == 0 and (p > 0)[1:].all()
        assert abs(p.sum() - 1) < 1e-6, (ctx, p.sum())


def test_perplexity_on_a_hand_checked_corpus():
    # V = 5: <pad> <unk> <eos> a=3 b=4; documents "a b" and "a"; plain interpolated KN bigram with D = 0.5.
    lm = KneserNeyLM(5, order=2, discount=0.5).fit([[3, 4, 2], [3, 2]])
    # continuation counts: a 1 ({<s>}), b 1 ({a}), eos 2 ({a, b}); total 4, back-off mass 0.5*3 = 1.5
    p_uni = {3: (0.5 + 1.5 / 4) / 4, 4: (0.5 + 1.5 / 4) / 4, 2: (1.5 + 1.5 / 4) / 4, 1: (1.5 / 4) / 4}
    assert np.allclose(lm.distribution([])[1:], [(0.5 * p_uni[w]) / 2 + (1.5 / 2 if w == 3 else 0) for w in (1, 2, 3, 4)])
    p = [(2 - 0.5 + 0.5 * p_uni[3]) / 2,    # a | <s>
         (1 - 0.5 + 1.0 * p_uni[4]) / 2,    # b | a
         (1 - 0.5 + 0.5 * p_uni[2]) / 1,    # eos | b
         (2 - 0.5 + 0.5 * p_uni[3]) / 2,    # a | <s>
         (1 - 0.5 + 1.0 * p_uni[2]) / 2]    # eos | a
    assert np.allclose(np.exp(lm.log_probs([[3, 4, 2], [3, 2]])), p)
    m = lm.evaluate([[3, 4, 2], [3, 2]])
    assert m["tokens"] == 5 and math.isclose(m["ppl"], math.exp(-np.mean(np.log(p))), rel_tol=1e-12)


def grammar_corpus(n=150, seed=0):
    """Synthetic grammar: subject verb object sentences with agreement and a fixed closing word."""
    rng = random.Random(seed)
    subj = {"sg": ["cat", "dog", "bird"], "pl": ["cats", "dogs", "birds"]}
    verb = {"sg": ["sees", "likes"], "pl": ["see", "like"]}
    docs = []
    for i in range(n):
        num = rng.choice(["sg", "pl"])
        words = ["the", rng.choice(subj[num]), rng.choice(verb[num]), "the", rng.choice(subj["sg"]), "today"]
        docs.append(Document(str(i), " ".join(words)))
    return Corpus("grammar", docs)


def test_trigram_beats_unigram_and_results_are_cached(catalog):
    corpus = grammar_corpus()
    splits = corpus.split(0)
    tok = WordTokenizer().fit(corpus.subset(splits["train"]))
    res = compute_baselines(corpus, splits, tok, "lm", "word", catalog=catalog)
    assert res["ngram"]["order"] == 3 and not res["cached"]
    assert res["ngram"]["test"]["ppl"] < 0.6 * res["unigram"]["test"]["ppl"]
    assert res["ngram"]["valid"]["tokens"] == sum(len(tok.encode_doc(d)) for d in corpus.subset(splits["valid"]))
    again = compute_baselines(corpus, splits, tok, "lm", "word", catalog=catalog)
    assert again["cached"] and again["key"] == res["key"]
    assert again["ngram"]["test"]["ppl"] == pytest.approx(res["ngram"]["test"]["ppl"])
    rows = catalog.baselines("grammar")
    assert {(r["split"], r["kind"]) for r in rows} >= {("valid", "ngram"), ("test", "ngram"), ("test", "unigram")}
    # another split seed is another key
    other = compute_baselines(corpus, corpus.split(1), tok, "lm", "word", catalog=catalog)
    assert other["key"] != res["key"] and not other["cached"]


def test_char_level_sweep_reports_bpc():
    corpus = grammar_corpus(80)
    splits = corpus.split(0)
    tok = CharTokenizer().fit(corpus.subset(splits["train"]))
    res = compute_baselines(corpus, splits, tok, "lm", "char", orders=(3, 5))
    assert res["ngram"]["order"] in (3, 5) and set(res["ngram"]["sweep_valid_ppl"]) == {"3", "5"}
    t = res["ngram"]["test"]
    assert t["bpc"] == pytest.approx(t["loss"] / math.log(2)) and t["bpc"] < res["unigram"]["test"]["bpc"]


def test_unknown_ids_map_to_unk_and_errors():
    lm = KneserNeyLM(6, order=2).fit([[3, 4, 2], [5, 2]])
    assert np.isfinite(lm.log_probs([[99, 2]])).all()
    with pytest.raises(RnnvisError):
        KneserNeyLM(6, order=2).fit([[3, 7, 2]])
    with pytest.raises(RnnvisError):
        KneserNeyLM(6, order=0)
    with pytest.raises(RnnvisError, match="empty"):
        KneserNeyLM(6, order=2).fit([])
