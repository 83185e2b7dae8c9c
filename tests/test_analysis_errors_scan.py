"""The LM error taxonomy over chunks of whole documents equals the whole-array taxonomy, and its memory
does not grow with the corpus."""
import numpy as np
import pytest
from perf_support import traced_peak

from rnnvis.analysis import TokenChunk, array_chunks, error_taxonomy, ngram_oracle, ngram_p_true, taxonomy_scan
from rnnvis.errors import RnnvisError

TEXT = "int main(void) { return f(x, y); }\n/* a comment */ if (x) y = 2;\n"


def corpus(n_docs: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    docs = [TEXT[: int(rng.integers(10, len(TEXT)))] for _ in range(n_docs)]
    toks = [c for d in docs for c in d]
    doc_ids = np.concatenate([np.full(len(d), i) for i, d in enumerate(docs)])
    p = rng.beta(2, 2, size=len(toks))
    p[rng.random(len(toks)) < 0.1] = 1.0
    return docs, toks, doc_ids, p


def test_taxonomy_scan_equals_the_whole_array_taxonomy():
    docs, toks, doc_ids, p = corpus(40)
    vocab = sorted(set(TEXT))
    enc = {c: i + 2 for i, c in enumerate(vocab)}
    ids = [[enc[c] for c in d] for d in docs]
    q = ngram_p_true(ids[:20], ids, len(vocab) + 2, max_order=3)  # (3, tokens)
    counts = {"int": 30, "main(void)": 1, "return": 30, "x": 2}
    ref = error_taxonomy(toks, doc_ids, p, counts, ngram_p=q, level="char", max_order=3, memory_context=3)
    got_cat = np.full(len(toks), -9)
    got_ord = np.full(len(toks), -9)

    def sink(ch, cat, order):
        got_cat[ch.start:ch.stop] = cat
        got_ord[ch.start:ch.stop] = order

    cols = {"token": np.array(toks, dtype=object), "doc_ids": doc_ids, "p_true": p, "ngram_p": q.T}
    tax = taxonomy_scan(array_chunks(None, cols, chunk=300, by_document=True), counts, level="char", max_order=3,
                        memory_context=3, examples=4, sink=sink)
    np.testing.assert_array_equal(got_cat, ref.category)
    np.testing.assert_array_equal(got_ord, ref.ngram_order)
    assert (tax.tokens, tax.errors) == (ref.tokens, ref.errors) and tax.error_rate == pytest.approx(ref.error_rate)
    assert [(c.name, c.count, c.share) for c in tax.categories] == [(c.name, c.count, c.share) for c in ref.categories]
    for ci, c in enumerate(tax.categories):
        assert len(c.examples) == min(4, c.count)
        idx = [e.index for e in c.examples]
        assert idx == sorted(idx) and all(ref.category[i] == ci for i in idx)
        for e in c.examples:  # the same context as the whole-array taxonomy gives
            assert e.token == toks[e.index] and e.p_true == p[e.index]
            start = int(np.flatnonzero(doc_ids == doc_ids[e.index])[0])
            assert e.position == e.index - start and e.left == "".join(toks[max(start, e.index - 40):e.index])
    # the examples do not depend on how the corpus is chunked
    again = taxonomy_scan(array_chunks(None, cols, chunk=97, by_document=True), counts, level="char", max_order=3,
                          memory_context=3, examples=4)
    assert [[e.index for e in c.examples] for c in again.categories] == \
        [[e.index for e in c.examples] for c in tax.categories]


def test_ngram_oracle_scores_chunks_like_the_whole():
    rng = np.random.default_rng(3)
    train = [rng.integers(2, 9, 40).tolist() + [1] for _ in range(10)]
    evals = [rng.integers(2, 9, 30).tolist() for _ in range(6)]
    score = ngram_oracle(train, 10, max_order=3)
    whole = ngram_p_true(train, evals, 10, max_order=3)
    np.testing.assert_allclose(np.concatenate([score(evals[:2]), score(evals[2:])], axis=1), whole)


def test_taxonomy_scan_bad_input():
    with pytest.raises(RnnvisError):
        taxonomy_scan(iter(()), {})
    with pytest.raises(RnnvisError):
        taxonomy_scan([TokenChunk(0, 2, {}, {"token": np.array(["a", "b"]), "doc_ids": np.zeros(2)})], {})


def test_taxonomy_scan_memory_does_not_grow_with_the_corpus():
    def gen(n_docs):
        start = 0
        for k in range(0, n_docs, 50):
            _, toks, doc_ids, p = corpus(50, seed=k)
            yield TokenChunk(start, start + len(toks), {}, {"token": np.array(toks, dtype=object),
                                                            "doc_ids": doc_ids + k, "p_true": p})
            start += len(toks)

    run = lambda n: taxonomy_scan(gen(n), {"int": 30}, level="char", examples=5)  # noqa: E731
    small = traced_peak(lambda: run(400), warm=lambda: run(50))
    large = traced_peak(lambda: run(1600), warm=lambda: run(50))
    assert large <= 1.3 * small, (small, large)
