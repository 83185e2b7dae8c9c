"""Corpus scans in token chunks: chunk ranges, and unit discovery folded over chunks equals (AUC within
its stated bound) the whole-array computation, in memory that does not grow with the corpus."""
import numpy as np
import pytest
from perf_support import synthetic_chunks, traced_peak
from sklearn.metrics import roc_auc_score

from rnnvis.analysis import (
    array_chunks,
    auc_all_units,
    auc_from_histograms,
    document_cuts,
    rank_units,
    scan_units,
    token_ranges,
)
from rnnvis.errors import RnnvisError


def test_token_ranges_cover_the_corpus_and_respect_documents():
    assert list(token_ranges(10, 4)) == [(0, 4), (4, 8), (8, 10)]
    cuts = np.array([0, 4, 5, 9])
    assert list(token_ranges(10, 3, cuts)) == [(0, 4), (4, 5), (5, 9), (9, 10)]  # long documents stay whole
    assert list(token_ranges(10, 6, cuts)) == [(0, 5), (5, 10)]
    d = np.array([3, 3, 1, 1, 1, 7])
    assert document_cuts(d).tolist() == [0, 2, 5]
    assert document_cuts(d, offset=10, previous=3).tolist() == [12, 15]
    with pytest.raises(RnnvisError):
        list(token_ranges(5, 0))


def test_histogram_auc_is_exact_without_shared_bins_and_bounded_with_them():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 4))
    y = rng.random(2000) < 0.3
    x[:, 1] += 1.5 * y
    exact = np.array([roc_auc_score(y, x[:, j]) for j in range(4)])
    for bins in (8, 64, 4096):
        lo, hi = x.min(0), x.max(0)
        b = np.clip(((x - lo) / (hi - lo) * bins).astype(int), 0, bins - 1)
        pos = np.stack([np.bincount(b[y, j], minlength=bins) for j in range(4)])
        allh = np.stack([np.bincount(b[:, j], minlength=bins) for j in range(4)])
        auc, bound = auc_from_histograms(pos, allh)
        assert np.all(np.abs(auc - exact) <= bound + 1e-12)
    assert bound.max() < 1e-3  # fine bins: nearly exact
    # values that fall in their own bins give the exact AUC, ties included
    v = np.array([[0.0], [1.0], [1.0], [2.0]])
    lab = np.array([False, True, False, True])
    auc, bound = auc_from_histograms(np.array([[0, 1, 1]]), np.array([[1, 2, 1]]))
    assert auc[0] == pytest.approx(auc_all_units(v, lab)[0]) and bound[0] > 0


def test_scan_units_equals_rank_units_on_small_data():
    rng = np.random.default_rng(1)
    n = 3000
    a = rng.normal(size=(n, 6)).astype(np.float32)
    b = np.round(rng.normal(size=(n, 3)), 1).astype(np.float32)  # many ties
    flag = rng.random(n) < 0.25
    depth = rng.normal(size=n) + a[:, 2]
    depth[::50] = np.nan  # unknown values are left out
    a[:, 4] -= 2 * flag
    doc = np.repeat(np.arange(30), 100)
    rngs = {s: (v.min(0), v.max(0)) for s, v in (("a", a), ("b", b))}
    cols = {"flag": flag, "depth": depth, "doc_ids": doc}
    found = scan_units(array_chunks({"a": a, "b": b}, cols, chunk=700, by_document=True), ["flag", "depth"], rngs,
                       probe_stream="a", probe_sample=1000)
    ref_flag = rank_units({"a": a, "b": b}, flag, "flag")
    ref_depth = rank_units({"a": a, "b": b}, depth, "depth", method="pearson")
    got = found.rankings["flag"]
    assert got.kind == "binary" and got.metric == "auc" and got.tokens == n
    assert 0 < got.error < 0.05  # the ties of b count in the bound
    assert (got.stream[0], got.unit[0]) == ("a", 4)
    key = lambda r: {(s, u): sc for s, u, sc in zip(r.stream, r.unit, r.score)}  # noqa: E731
    exact, approx = key(ref_flag), key(got)
    assert max(abs(exact[k] - approx[k]) for k in exact) <= got.error + 1e-12
    got = found.rankings["depth"]
    assert got.metric == "pearson" and got.error == 0 and got.tokens == int(np.isfinite(depth).sum())
    exact, approx = key(ref_depth), key(got)
    assert max(abs(exact[k] - approx[k]) for k in exact) < 1e-9
    assert (got.stream[0], got.unit[0]) == ("a", 2)
    probe = found.probes[("flag", "a")]
    assert probe.n_train + probe.n_test == 1000 and probe.test_score > probe.baseline
    # the same result whatever the chunking
    again = scan_units(array_chunks({"a": a, "b": b}, cols, chunk=257), ["flag", "depth"], rngs)
    np.testing.assert_allclose(again.rankings["depth"].score, found.rankings["depth"].score, rtol=1e-10)
    np.testing.assert_array_equal(again.rankings["flag"].score, found.rankings["flag"].score)


def test_scan_units_constant_annotation_and_bad_input():
    x = np.ones((10, 2), np.float32)
    cols = {"never": np.zeros(10, bool), "flat": np.full(10, 3.0)}
    found = scan_units(array_chunks({"s": x}, cols, chunk=4), ["never", "flat"], {"s": (0.0, 2.0)})
    assert found.rankings["never"].unit.size == 0 and found.rankings["flat"].unit.size == 0
    with pytest.raises(RnnvisError):  # no value range for the stream
        scan_units(array_chunks({"s": x}, cols), ["never"], {})
    with pytest.raises(RnnvisError):  # annotation missing from the chunks
        scan_units(array_chunks({"s": x}, cols), ["other"], {"s": (0.0, 2.0)})


def test_scan_units_memory_does_not_grow_with_the_corpus():
    def run(n):
        found = scan_units(synthetic_chunks(n), ["flag", "depth"], {"s": (-6.0, 10.0)}, probe_stream="s",
                           probe_sample=2000)
        assert (found.rankings["flag"].unit[0], found.rankings["depth"].unit[0]) == (0, 1)

    small, large = traced_peak(lambda: run(40_000), warm=lambda: run(5000)), traced_peak(lambda: run(160_000))
    assert large <= 1.3 * small, (small, large)


def test_lm_metrics_scan_equals_lm_metrics_and_skips_unscored_tokens():
    from rnnvis.analysis import lm_metrics, lm_metrics_scan

    rng = np.random.default_rng(4)
    loss = rng.exponential(size=1000)
    rank = rng.integers(1, 9, size=1000)
    loss[::7] = np.nan  # nothing predicted there
    rank[::11] = 0
    keep = np.isfinite(loss) & (rank >= 1)
    ref = lm_metrics(loss[keep], rank[keep], level="char")
    got = lm_metrics_scan(array_chunks(None, {"loss": loss, "rank": rank}, chunk=64), level="char")
    assert got.tokens == ref.tokens and got.top1 == pytest.approx(ref.top1) and got.top5 == pytest.approx(ref.top5)
    assert got.loss == pytest.approx(ref.loss, rel=1e-12) and got.bpc == pytest.approx(ref.bpc, rel=1e-12)
    assert lm_metrics_scan(array_chunks(None, {"loss": loss}, chunk=64)).top1 is None
    with pytest.raises(RnnvisError):
        lm_metrics_scan(array_chunks(None, {"loss": np.full(5, np.nan)}))
    run = lambda n: lm_metrics_scan(synthetic_chunks(n, units=2))  # noqa: E731
    small, large = traced_peak(lambda: run(40_000), warm=lambda: run(5000)), traced_peak(lambda: run(160_000))
    assert large <= 1.3 * small, (small, large)
