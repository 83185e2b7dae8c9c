"""CKA, SVCCA and unit matching from streamed moments equal the whole-array computations, in memory
that does not grow with the corpus."""
import numpy as np
import pytest
from perf_support import synthetic_chunks, traced_peak

from rnnvis.analysis import (
    array_chunks,
    layer_similarity,
    layer_similarity_moments,
    match_units,
    match_units_moments,
    moments_scan,
)
from rnnvis.analysis.similarity_scan import correlation_moments
from rnnvis.errors import RnnvisError


def test_moments_give_the_whole_array_cka_svcca_and_matching():
    rng = np.random.default_rng(0)
    n = 4000
    a = rng.normal(size=(n, 8)) + 3.0  # far from 0: the shifted sums keep the precision
    b = a[:, ::-1] @ np.diag(np.arange(1, 9)) + 0.3 * rng.normal(size=(n, 8))
    c = rng.normal(size=(n, 5))
    c[:, 4] = 2.0  # a constant unit
    streams = {"a/h": a, "b/h": b, "b/c": c}
    m = moments_scan(array_chunks(streams, chunk=999))
    assert m.n == n and m.names == ("a/h", "b/h", "b/c")
    np.testing.assert_allclose(m.mean, np.concatenate([a.mean(0), b.mean(0), c.mean(0)]), rtol=1e-6)
    for method in ("cka", "svcca"):
        ref = layer_similarity({"h": a}, {"h": b, "c": c}, method)
        got = layer_similarity_moments(m, ["a/h"], ["b/h", "b/c"], method)
        np.testing.assert_allclose(got.matrix, ref.matrix, rtol=1e-6, atol=1e-9)
    assert layer_similarity_moments(m, ["a/h"], ["a/h"], "cka").matrix[0, 0] == pytest.approx(1.0)
    assert layer_similarity_moments(m, ["a/h"], ["a/h"], "svcca").matrix[0, 0] == pytest.approx(1.0, abs=1e-6)
    ref = match_units(a, b, absolute=True)
    got = match_units_moments(m, "a/h", "b/h", absolute=True)
    np.testing.assert_array_equal(got.cols, ref.cols)
    np.testing.assert_allclose(got.correlation, ref.correlation, atol=1e-7)  # chunks hold float32
    assert correlation_moments(m, "a/h", "b/c")[:, 4].tolist() == [0.0] * 8
    with pytest.raises(RnnvisError):
        moments_scan(array_chunks({"x": a[:1]}))
    with pytest.raises(RnnvisError):
        m.block("a/h", "nope")


def test_moments_memory_does_not_grow_with_the_corpus():
    run = lambda n: moments_scan(synthetic_chunks(n, units=32))  # noqa: E731
    small, large = traced_peak(lambda: run(40_000), warm=lambda: run(5000)), traced_peak(lambda: run(160_000))
    assert large <= 1.3 * small, (small, large)
