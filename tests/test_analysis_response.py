"""Expected response: per-word statistics, grouped quantiles, top words and profiles."""
import numpy as np
import pytest

from rnnvis.analysis import (
    QUANTILE_LEVELS,
    expected_response,
    expected_response_from_tokens,
    grouped_quantiles,
    top_k_words,
    word_unit_stats,
)
from rnnvis.analysis.response import sequence_starts, token_deltas
from rnnvis.errors import RnnvisError


def test_word_unit_stats_matches_naive_loop():
    rng = np.random.default_rng(0)
    vals = rng.normal(size=(200, 4))
    ids = rng.integers(0, 7, size=200)
    ids[ids == 5] = 6  # word 5 never occurs
    counts, mean, var = word_unit_stats(vals, ids, vocab_size=8)
    assert counts.tolist() == [int((ids == w).sum()) for w in range(8)]
    for w in range(8):
        if counts[w]:
            np.testing.assert_allclose(mean[w], vals[ids == w].mean(0))
            np.testing.assert_allclose(var[w], vals[ids == w].var(0))
        else:
            assert np.isnan(mean[w]).all() and np.isnan(var[w]).all()


def test_grouped_quantiles_match_numpy_per_group():
    rng = np.random.default_rng(1)
    vals = np.round(rng.normal(size=(150, 3)), 1)  # ties on purpose
    groups = rng.integers(0, 9, size=150)
    groups[0] = 42  # a group of one token
    groups[groups == 3] = 4
    uniq, q = grouped_quantiles(vals, groups, QUANTILE_LEVELS, block=2)  # two column blocks
    assert q.shape == (4, uniq.size, 3)
    for gi, g in enumerate(uniq):
        expect = np.quantile(vals[groups == g], QUANTILE_LEVELS, axis=0)
        np.testing.assert_allclose(q[:, gi], expect)


def test_deltas_restart_at_document_boundaries_and_gaps():
    vals = np.array([[1.0], [3.0], [6.0], [10.0], [15.0]])
    docs = np.array([0, 0, 1, 1, 1])
    pos = np.array([0, 1, 0, 1, 5])  # a gap before the last token (a new window)
    starts = sequence_starts(docs, pos)
    assert starts.tolist() == [True, False, True, False, True]
    np.testing.assert_allclose(token_deltas(vals, starts)[:, 0], [1, 2, 6, 4, 15])


def _planted():
    """Unit 0 rises by 1 on 'up' and falls by 1 on 'down'; unit 1 is noise; 'rare' occurs once."""
    rng = np.random.default_rng(2)
    itos = ["up", "down", "flat", "rare", "unused"]
    ids = rng.choice([0, 1, 2], size=300)
    ids[17] = 3
    docs = np.repeat(np.arange(3), 100)
    step = np.where(ids == 0, 1.0, np.where(ids == 1, -1.0, 0.0))
    vals = np.zeros((300, 2))
    for d in range(3):
        sl = slice(100 * d, 100 * d + 100)
        vals[sl, 0] = np.cumsum(step[sl])
    vals[:, 1] = rng.normal(size=300)
    return vals, ids, docs, itos


def test_expected_response_from_tokens_recovers_planted_unit():
    vals, ids, docs, itos = _planted()
    r = expected_response_from_tokens(vals, ids, docs, itos, min_count=2)
    assert r.words == ["up", "down", "flat"]  # 'rare' below min_count, 'unused' never seen
    np.testing.assert_allclose(r.profile("up")[0], 1.0)
    np.testing.assert_allclose(r.profile("down")[0], -1.0)
    np.testing.assert_allclose(r.std[:, 0], 0.0, atol=1e-12)
    assert r.counts.tolist() == [int((ids == w).sum()) for w in range(3)]
    top = r.top_words(0, k=2)
    assert top.positive == [("up", 1.0)] and top.negative == [("down", -1.0)]
    with pytest.raises(RnnvisError):
        r.profile("rare")
    with pytest.raises(RnnvisError):
        r.top_words(5)


def test_quantiles_equal_numpy_and_can_be_restricted():
    vals, ids, docs, itos = _planted()
    delta = token_deltas(vals, sequence_starts(docs))
    full = expected_response_from_tokens(vals, ids, docs, itos, min_count=1)
    for row, w in enumerate(full.word_ids):
        np.testing.assert_allclose(full.quantiles[:, row], np.quantile(delta[ids == w], QUANTILE_LEVELS, axis=0))
    assert full.iqr.shape == (2, len(full.words), 2) and full.range_9_91.shape == (2, len(full.words), 2)
    part = expected_response_from_tokens(vals, ids, docs, itos, min_count=1, quantile_words=["down"],
                                         quantile_units=[1])
    down = part.index("down")
    np.testing.assert_allclose(part.quantiles[:, down, 1], full.quantiles[:, down, 1])
    mask = np.ones(part.quantiles.shape, bool)
    mask[:, down, 1] = False
    assert np.isnan(part.quantiles[mask]).all()


def test_from_statistics_equals_from_tokens():
    vals, ids, docs, itos = _planted()
    delta = token_deltas(vals, sequence_starts(docs))
    counts, mean, var = word_unit_stats(delta, ids, len(itos))
    a = expected_response(mean, var, counts, itos, min_count=1)
    b = expected_response_from_tokens(vals, ids, docs, itos, min_count=1, quantiles=False)
    assert a.words == b.words and b.quantiles is None
    np.testing.assert_allclose(a.mean, b.mean)
    np.testing.assert_allclose(a.std, b.std)
    restart = sequence_starts(docs)
    restart[50] = True  # a window start inside document 0: Δ against the zero state there
    c = expected_response_from_tokens(vals, ids, docs, itos, min_count=1, quantiles=False, starts=restart)
    w = ids[50]
    assert c.mean[w, 0] * c.counts[w] == pytest.approx(b.mean[w, 0] * b.counts[w] + vals[49, 0])
    only = expected_response(mean, var, counts, itos, min_count=1, words=["flat", "up"])
    assert only.words == ["up", "flat"]
    with pytest.raises(RnnvisError):
        expected_response(mean, var, counts, itos[:3])
    with pytest.raises(RnnvisError):
        expected_response(mean, var, counts, itos, words=["nope"])


def test_recorder_statistics_feed_expected_response():
    stats = pytest.importorskip("rnnvis.recording.stats")
    torch = pytest.importorskip("torch")
    vals, ids, docs, itos = _planted()
    delta = token_deltas(vals, sequence_starts(docs))
    w = stats.WordUnitStats.zeros(len(itos), 2, dtype=torch.float64)
    for sl in (slice(0, 120), slice(120, 300)):  # folded in two batches
        w.update(torch.from_numpy(delta[sl]), torch.from_numpy(ids[sl]))
    a = expected_response(w.mean.numpy(), w.var.numpy(), w.count.numpy(), itos, min_count=1)
    b = expected_response_from_tokens(vals, ids, docs, itos, min_count=1, quantiles=False)
    np.testing.assert_allclose(a.mean, b.mean, atol=1e-10)
    np.testing.assert_allclose(a.std, b.std, atol=1e-6)  # sqrt of a rounding-level variance


def test_top_k_words_per_unit():
    mean = np.array([[3.0, -1.0], [1.0, np.nan], [-2.0, 5.0], [0.5, -4.0]])
    pos, neg = top_k_words(mean, 2)
    assert pos.tolist() == [[0, 1], [2, 0]]
    assert neg.tolist() == [[2, 3], [3, 0]]
