"""Pattern select and match (LSTMVis): planted patterns, a hand-computed example, index == scan."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from rnnvis.analysis import (
    Percentile,
    build_run_index,
    load_run_index,
    match_index,
    match_scan,
    open_pattern_index,
    select_units,
    select_units_in_store,
)
from rnnvis.analysis.pattern import SelectedUnits, unit_thresholds
from rnnvis.analysis.pattern_index import _on_counts, _sweep
from rnnvis.errors import NotFound, RnnvisError


def assert_same(a, b):
    """Two PatternMatches hold the same matches in the same order."""
    assert a.total == b.total and len(a) == len(b)
    for f in ("units", "threshold", "doc_ids", "starts", "stops", "matched", "extra", "jaccard", "length_hist"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)


def both(values, docs, sel, **kw):
    """Scan and index results (checked equal), with small chunks to cross chunk borders."""
    scan = match_scan(values, docs, sel, chunk_tokens=7, **kw)
    idx = build_run_index(values, docs, sel.threshold, chunk_tokens=5)
    fast = match_index(idx, sel, **kw)
    assert_same(scan, fast)
    return fast


# ---- (1) a planted on-pattern is found at every planted place and nowhere else ----

def test_planted_pattern_found_everywhere_and_nowhere_else():
    rng = np.random.default_rng(1)
    T, U = 1200, 20
    values = rng.uniform(-1.0, 0.4, (T, U)).astype(np.float16)
    docs = np.repeat(np.arange(12), 100)  # documents start every 100 tokens
    pattern = np.array([3, 7, 11, 15])
    planted = [20, 150, 333, 610, 905]
    for p in planted:
        values[p:p + 4, pattern] = 0.9
    values[480:484, pattern[:3]] = 0.9  # near-miss: partial pattern
    values[698:702, pattern] = 0.9  # near-miss: crosses the document boundary at 700
    values[1000:1004, pattern] = 0.9  # same pattern plus an extra unit: found, ranked last
    values[1000:1004, 5] = 0.9
    sel = select_units(values, docs, 150, 154, 0.5)
    assert sel.units.tolist() == pattern.tolist() and sel.checked_before and sel.doc_id == 1
    m = both(values, docs, sel, min_len=3)
    assert m.starts.tolist() == planted + [1000] and m.stops.tolist() == [p + 4 for p in planted] + [1004]
    assert m.extra.tolist() == [0] * 5 + [1] and m.jaccard[-1] == pytest.approx(4 / 5)
    assert m.doc_ids.tolist() == [0, 1, 3, 6, 9, 10] and m.length_hist[4] == 6
    # without a minimum length the boundary-crossing plant is two matches, cut at the boundary
    m1 = both(values, docs, sel)
    assert sorted(zip(m1.starts.tolist(), m1.stops.tolist())) == sorted(
        [(p, p + 4) for p in planted] + [(698, 700), (700, 702), (1000, 1004)])
    # 3 of 4 units suffice: the partial plant is found too, with 3 matched units
    m2 = both(values, docs, sel, min_fraction=0.75, min_len=3)
    assert (480, 484) in zip(m2.starts.tolist(), m2.stops.tolist())
    assert m2[len(m2) - 1].start == 480 and m2[len(m2) - 1].matched == 3
    assert both(values, docs, sel, min_len=3, top=2).starts.tolist() == planted[:2]


# ---- (2) a hand-computed example: LSTMVis's rule written out ----

ON = np.array([  # tokens 0..11 (doc 0: 0-7, doc 1: 8-11) x units 0..3
    [0, 0, 1, 0], [1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 1],
    [0, 0, 0, 0], [1, 1, 0, 1], [1, 1, 1, 1], [0, 1, 0, 0],
    [1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 1, 1], [0, 0, 1, 0]])
HAND_DOCS = np.array([0] * 8 + [1] * 4)
HAND = np.where(ON == 1, 0.9, 0.1)


def rows(m):
    return [(x.start, x.stop, x.matched, x.extra, round(x.jaccard, 4)) for x in (m[i] for i in range(len(m)))]


def test_hand_example_selection_and_ranking():
    sel = select_units(HAND, HAND_DOCS, 5, 7, 0.5)  # tokens 5-6: units 0, 1, 3 on; all off at 4
    assert sel.units.tolist() == [0, 1, 3]
    assert select_units(HAND, HAND_DOCS, 1, 3, 0.5).units.tolist() == [0, 1]  # unit 2 is on before
    # all of {0, 1, 3} on: [2,4) with unit 2 extra, [5,7) exact, [9,10) with unit 2 extra
    assert rows(both(HAND, HAND_DOCS, sel)) == [(5, 7, 3, 0, 1.0), (2, 4, 3, 1, 0.75), (9, 10, 3, 1, 0.75)]
    # off after too (token 7: unit 1 on) leaves {0, 3}; ties on (matched, extra, length) in corpus order
    sel2 = select_units(HAND, HAND_DOCS, 5, 7, 0.5, require_off_after=True)
    assert sel2.units.tolist() == [0, 3] and sel2.checked_after
    assert rows(both(HAND, HAND_DOCS, sel2)) == [(5, 7, 2, 1, 0.6667), (9, 11, 2, 1, 0.6667), (2, 4, 2, 2, 0.5)]
    # 2 of 3 units on per step: [1,4) keeps units 0, 1 throughout, [8,11) only unit 0
    m = both(HAND, HAND_DOCS, sel, min_fraction=0.6)
    assert rows(m) == [(5, 7, 3, 0, 1.0), (1, 4, 2, 1, 0.5), (8, 11, 1, 1, 0.25)]
    assert m.length_hist.tolist() == [0, 0, 1, 2] and m.doc_ids.tolist() == [0, 0, 1]
    assert rows(both(HAND, HAND_DOCS, sel, min_fraction=0.6, max_len=2)) == [(5, 7, 3, 0, 1.0)]
    # at a document start nothing is before the range: the rule does not apply
    first = select_units(HAND, HAND_DOCS, 8, 10, 0.5)
    assert not first.checked_before and first.units.tolist() == [0, 1, 2]


# ---- (3) index == scan on random data, several thresholds ----

@pytest.mark.parametrize("threshold", [0.0, 0.6, Percentile(70), Percentile(90), "per-unit"])
def test_index_equals_scan_random(threshold, tmp_path):
    rng = np.random.default_rng(7)
    T, U = 3000, 24
    noise = rng.normal(size=(T, U))
    values = np.empty_like(noise)
    values[0] = noise[0]
    for t in range(1, T):  # AR(1): runs of several tokens, like real states
        values[t] = 0.8 * values[t - 1] + 0.6 * noise[t]
    values = values.astype(np.float32)
    docs = np.cumsum(rng.random(T) < 0.02)
    if threshold == "per-unit":
        threshold = rng.normal(0.5, 0.3, U)
    theta = unit_thresholds(threshold, U, values=values)
    idx = build_run_index(values, docs, theta, chunk_tokens=113)
    idx2 = load_run_index(idx.save(tmp_path / "i.npz"))
    found = 0
    for _ in range(12):
        s = int(rng.integers(0, T - 4))
        e = s + int(rng.integers(1, 4))
        if docs[s] != docs[e - 1]:
            continue
        sel = select_units(values, docs, s, e, threshold)
        np.testing.assert_array_equal(sel.threshold, theta)
        if sel.k == 0:
            continue
        for frac in (1.0, 0.5):
            for lens in ({}, {"min_len": 2, "max_len": 6}):
                a = match_scan(values, docs, sel, min_fraction=frac, chunk_tokens=97, **lens)
                assert_same(a, match_index(idx, sel, min_fraction=frac, **lens))
                assert_same(a, match_index(idx2, sel, min_fraction=frac, **lens))
                found += len(a)
                if frac < 1:  # both sweeps agree
                    need = int(np.ceil(frac * sel.k))
                    sp, dn = _sweep(idx, sel.units, need, False), _sweep(idx, sel.units, need, True)
                    np.testing.assert_array_equal(sp[0], dn[0])
                    np.testing.assert_array_equal(sp[1], dn[1])
                # candidate rows read in small batches give the same counts
                got = _on_counts(idx, sel.units, a.starts, a.stops, batch_rows=5)
                np.testing.assert_array_equal(got[0], a.matched)
                np.testing.assert_array_equal(got[1], a.matched + a.extra)
    assert found > 0


# ---- recordings: cached index beside the store, thresholds from the quantile sketch ----

class LM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(11, 4)
        self.rnn = nn.LSTM(4, 6, batch_first=True)
        self.dec = nn.Linear(6, 11)

    def forward(self, ids):
        return self.dec(self.rnn(self.emb(ids))[0])


def tiny_store(path):
    from rnnvis.recording import record_corpus
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    batches = [{"ids": torch.randint(0, 11, (3, 20), generator=g), "lengths": torch.tensor([20, 14, 20]),
                "doc_ids": torch.arange(3) + 3 * i, "start_pos": torch.zeros(3, dtype=torch.long)} for i in range(3)]
    return record_corpus(LM().eval(), batches, path, vocab_size=11, progress=False, chunk_tokens=16,
                         store_streams=("layer0.fwd.c",))


def test_store_index_cached_and_equal_to_scan(tmp_path):
    store = tiny_store(tmp_path / "rec")
    stream = "layer0.fwd.c"
    values, docs = store.read(stream), store.doc_ids
    found = 0
    for threshold in (Percentile(75), 0.05):
        idx = open_pattern_index(store, stream, threshold, chunk_tokens=9)
        if isinstance(threshold, Percentile):  # from the store's quantile sketch
            want = store.stats[stream].units.quantile(0.75).numpy().astype(np.float32)
            np.testing.assert_array_equal(idx.threshold, want)
        cached = list((tmp_path / "rec.patterns").glob("*.npz"))
        assert cached and open_pattern_index(store, stream, threshold).key == idx.key
        for s in (3, 25, 41):
            sel = select_units_in_store(store, stream, s, s + 2, threshold)
            assert sel.units.tolist() == select_units(values, docs, s, s + 2, sel.threshold).units.tolist()
            if sel.k:
                m = match_index(idx, sel)
                assert_same(m, match_scan(values, docs, sel))
                found += len(m)
    assert found > 0
    cached[0].write_bytes(b"not an npz")  # a damaged cache entry is rebuilt
    with pytest.raises(RnnvisError, match="not a readable pattern index"):
        load_run_index(cached[0])
    for threshold in (Percentile(75), 0.05):
        assert open_pattern_index(store, stream, threshold).n_tokens == store.n_tokens
    assert all(load_run_index(c).n_tokens == store.n_tokens for c in cached)
    other = open_pattern_index(store, stream, 0.05, folder=tmp_path / "elsewhere")
    assert list((tmp_path / "elsewhere").glob("*.npz")) and other.n_tokens == store.n_tokens
    with pytest.raises(NotFound, match="not stored"):
        open_pattern_index(store, "layer0.fwd.h", 0.0)


# ---- (4) bad input gets a clear error ----

def test_bad_input():
    with pytest.raises(RnnvisError, match="empty"):
        select_units(HAND, HAND_DOCS, 4, 4, 0.5)
    with pytest.raises(RnnvisError, match="outside"):
        select_units(HAND, HAND_DOCS, 10, 13, 0.5)
    with pytest.raises(RnnvisError, match="crosses a document boundary") as e:
        select_units(HAND, HAND_DOCS, 6, 9, 0.5)
    assert e.value.fix and "one document" in e.value.fix
    with pytest.raises(RnnvisError, match="4 units"):
        select_units(HAND, HAND_DOCS, 1, 3, np.zeros(3))
    with pytest.raises(RnnvisError, match="one document id per token"):
        select_units(HAND, HAND_DOCS[:5], 1, 3, 0.5)
    with pytest.raises(RnnvisError, match="percentile"):
        select_units(HAND, HAND_DOCS, 1, 3, Percentile(120))
    empty = select_units(HAND, HAND_DOCS, 0, 1, 0.95)
    with pytest.raises(RnnvisError, match="no units"):
        match_scan(HAND, HAND_DOCS, empty)
    sel = select_units(HAND, HAND_DOCS, 5, 7, 0.5)
    with pytest.raises(RnnvisError, match="min_fraction"):
        match_scan(HAND, HAND_DOCS, sel, min_fraction=0)
    with pytest.raises(RnnvisError, match="length bounds"):
        match_scan(HAND, HAND_DOCS, sel, min_len=3, max_len=2)
    with pytest.raises(RnnvisError, match="different thresholds"):
        match_index(build_run_index(HAND, HAND_DOCS, 0.4), sel)
    wide = SelectedUnits(np.array([0]), np.zeros(9, np.float32), 0, 1, 0, False, False)
    with pytest.raises(RnnvisError, match="same stream"):
        match_scan(HAND, HAND_DOCS, wide)


def test_index_file_is_memory_mapped_and_built_in_bounded_memory(tmp_path, monkeypatch):
    from perf_support import traced_peak

    from rnnvis.analysis import pattern_build

    rng = np.random.default_rng(5)
    values = (rng.random((3000, 20)) < 0.3).astype(np.float32)
    docs = np.repeat(np.arange(30), 100)
    ref = build_run_index(values, docs, 0.5, chunk_tokens=256)
    monkeypatch.setattr(pattern_build, "MMAP_BYTES", 0)  # map every member
    idx = build_run_index(values, docs, 0.5, chunk_tokens=1000, path=tmp_path / "i.npz")
    assert isinstance(idx.bits, np.memmap) and isinstance(idx.starts, np.memmap)
    for k in ("offsets", "starts", "ends", "bits", "doc_starts", "doc_ids", "threshold"):
        np.testing.assert_array_equal(getattr(idx, k), getattr(ref, k))
    sel = select_units(values, docs, 40, 41, 0.5)
    got, want = match_index(idx, sel, min_fraction=0.5), match_index(ref, sel, min_fraction=0.5)
    assert got.starts.size > 0
    for k in ("doc_ids", "starts", "stops", "matched"):
        np.testing.assert_array_equal(getattr(got, k), getattr(want, k))

    def build(n):  # values and doc ids made chunk by chunk: nothing of size n is held
        read = lambda a, b: (np.random.default_rng(a).random((b - a, 64)) < 0.3).astype(np.float32)  # noqa: E731
        build_run_index(None, None, 0.5, 4096, read=read, shape=(n, 64), path=tmp_path / f"{n}.npz",
                        read_docs=lambda a, b: np.arange(a, b) // 1000)

    monkeypatch.setattr(pattern_build, "MMAP_BYTES", 1 << 20)
    small, large = traced_peak(lambda: build(50_000), warm=lambda: build(5000)), traced_peak(lambda: build(200_000))
    assert large <= 1.3 * small, (small, large)
