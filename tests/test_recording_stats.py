"""Streaming statistics: equal to numpy computed directly, and shards merge to the whole."""
from __future__ import annotations


import numpy as np
import pytest
import torch


from rnnvis.recording.stats import UnitStats, WordUnitStats

V, U = 7, 5


def _data(n, seed):
    g = np.random.default_rng(seed)
    ids = g.integers(0, V - 1, n)  # word V-1 never occurs
    vals = g.normal(size=(n, U)) * (1 + ids[:, None]) + ids[:, None]  # per-word means and scales differ
    return torch.from_numpy(vals.astype(np.float32)), torch.from_numpy(ids)


def _fold(batches, dtype=torch.float64, flush_tokens=1 << 20):
    w = WordUnitStats.zeros(V, U, dtype=dtype, flush_tokens=flush_tokens)
    for vals, ids in batches:
        w.update(vals, ids)
    return w


@pytest.mark.parametrize("flush_tokens", [1 << 20, 10])  # one block, or Chan merges between blocks
def test_word_stats_match_numpy(flush_tokens):
    batches = [_data(n, s) for s, n in enumerate([13, 1, 40, 7])]
    w = _fold(batches, flush_tokens=flush_tokens)
    vals = torch.cat([b[0] for b in batches]).double().numpy()
    ids = torch.cat([b[1] for b in batches]).numpy()
    for word in range(V):
        sel = vals[ids == word]
        assert w.count[word].item() == len(sel)
        if len(sel):
            np.testing.assert_allclose(w.mean[word].numpy(), sel.mean(0), rtol=1e-10, atol=1e-10)
            np.testing.assert_allclose(w.var[word].numpy(), sel.var(0), rtol=1e-9, atol=1e-10)
        else:
            assert np.isnan(w.var[word].numpy()).all()


def test_word_stats_float32_default_is_close():
    batches = [_data(200, s) for s in range(5)]
    w32, w64 = _fold(batches, torch.float32, flush_tokens=300), _fold(batches)
    np.testing.assert_allclose(w32.mean.numpy(), w64.mean.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(w32.m2.numpy(), w64.m2.numpy(), rtol=1e-4, atol=1e-3)


def test_word_stats_shards_merge_to_whole():
    batches = [_data(n, s) for s, n in enumerate([30, 11, 25, 9, 50])]
    whole = _fold(batches)
    merged = _fold(batches[:2]).merge(_fold(batches[2:3])).merge(_fold(batches[3:]))
    assert torch.equal(merged.count, whole.count)
    np.testing.assert_allclose(merged.mean.numpy(), whole.mean.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(merged.m2.numpy(), whole.m2.numpy(), rtol=1e-10, atol=1e-10)


def test_unit_stats_match_numpy_and_merge():
    batches = [_data(n, s)[0] for s, n in enumerate([100, 57, 300])]
    lo, hi = torch.full((U,), -20.0), torch.full((U,), 30.0)
    shards = []
    for b in batches:
        u = UnitStats.zeros(U, dtype=torch.float64, bins=500, lo=lo, hi=hi)
        u.update(b)
        shards.append(u)
    whole = UnitStats.zeros(U, dtype=torch.float64, bins=500, lo=lo, hi=hi)
    for b in batches:
        whole.update(b)
    merged = shards[0].merge(shards[1]).merge(shards[2])
    allv = torch.cat(batches).double().numpy()
    for s in (whole, merged):
        assert s.count.item() == len(allv)
        np.testing.assert_allclose(s.mean.numpy(), allv.mean(0), rtol=1e-10)
        np.testing.assert_allclose(s.var.numpy(), allv.var(0), rtol=1e-9)
        np.testing.assert_array_equal(s.min.numpy(), allv.min(0))
        np.testing.assert_array_equal(s.max.numpy(), allv.max(0))
        np.testing.assert_array_equal(s.below.numpy(), (allv < 0.1).sum(0))
        np.testing.assert_array_equal(s.above.numpy(), (allv > 0.9).sum(0))
        assert s.hist.sum().item() == allv.size
    assert torch.equal(whole.hist, merged.hist)
    width = 50.0 / 500
    for q in (0.1, 0.5, 0.9):
        np.testing.assert_allclose(whole.quantile(q).numpy(), np.quantile(allv, q, axis=0), atol=2 * width)


def test_unit_stats_learned_range_and_mismatched_merge():
    a = UnitStats.zeros(U)
    vals = _data(100, 1)[0]
    a.update(vals)
    assert torch.all(a.lo < vals.min(0).values) and torch.all(a.hi > vals.max(0).values)
    assert a.hist[:, 0].sum() == 0 and a.hist[:, -1].sum() == 0  # first batch is inside the range
    b = UnitStats.zeros(U)
    b.update(vals * 3)
    with pytest.raises(ValueError, match="histogram ranges"):
        a.merge(b)
    # values beyond the learned range land in under/overflow and quantiles clamp to min/max
    a.update(vals * 100)
    assert a.hist[:, 0].sum() + a.hist[:, -1].sum() > 0
    assert torch.all(a.quantile(1.0) <= a.max) and torch.all(a.quantile(0.0) >= a.min)
