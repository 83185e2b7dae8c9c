"""The corpus scans of the views on a real recording (Store), read chunk by chunk: they equal the
whole-array analyses, and their memory (tracemalloc, numpy included) does not grow with the recording."""
import numpy as np
import pytest
from perf_support import CHARS, lm_targets, tiny_recording, traced_peak

from rnnvis.analysis import annotate, error_taxonomy, lm_metrics, lm_metrics_scan, open_pattern_index, rank_units
from rnnvis.explore.discovery import rank_store
from rnnvis.explore.taxonomy import categories_path, taxonomy_store
from rnnvis.explore.scan import chunks, doc_table

NAMES = ["c_string", "bracket_depth", "inside_quotes"]


def decode(ids):
    return [CHARS[int(i)] for i in ids]


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("scans")
    return {n: tiny_recording(root / f"r{n}", n) for n in (10, 40, 160)}


def test_rank_store_equals_rank_units_on_the_whole_recording(stores):
    store = stores[40]
    found, probe = rank_store(store, decode, NAMES, chunk=300, probe_sample=3000)  # documents of 400 tokens
    h = store.read("layer0.fwd.h")
    ann = annotate(decode(store.token_ids), NAMES, doc_ids=store.doc_ids)
    for name in NAMES:
        got = found.rankings[name]
        ref = rank_units({"layer0.fwd.h": h}, ann[name], name, method="pearson")
        assert got.tokens == store.n_tokens and got.kind == ref.kind
        exact = dict(zip(ref.unit.tolist(), ref.score))
        diff = max(abs(exact[u] - s) for u, s in zip(got.unit.tolist(), got.score))
        assert diff <= (got.error + 1e-12 if got.kind == "binary" else 1e-9), (name, diff, got.error)
    assert probe == "layer0.fwd.h" and found.probes[("c_string", probe)].n_train > 0


def test_taxonomy_and_metrics_of_a_store_equal_the_whole_arrays(stores, tmp_path):
    store = stores[40]
    counts = {"abc": 9}
    path = tmp_path / "cats.npy"
    tax = taxonomy_store(store, CHARS, "char", None, counts, path, chunk=1000)
    rows, tgt = lm_targets(store)
    p = np.clip(np.exp(-store.output("loss")[rows].astype(np.float64)), 0, 1)
    ref = error_taxonomy(decode(store.token_ids[tgt]), store.doc_ids[rows], p, counts, level="char")
    codes = np.load(path)
    assert (tax.tokens, tax.errors) == (ref.tokens, ref.errors)
    np.testing.assert_array_equal(codes[rows].astype(int) - 2, np.where(ref.category >= 0, ref.category, -1))
    assert (np.delete(codes, rows) == 0).all()
    assert [c.count for c in tax.categories] == [c.count for c in ref.categories]
    got = lm_metrics_scan(chunks(store, (), ("loss",), 999), level="char")
    loss = store.output("loss")
    assert got.loss == pytest.approx(lm_metrics(loss[np.isfinite(loss)], level="char").loss, rel=1e-9)
    t = doc_table(store)
    assert t["doc"].tolist() == list(range(40)) and (t["stop"] - t["start"]).tolist() == [400] * 40
    assert categories_path(store, 5).name == "categories.order5.npy"
    # a document longer than the chunk: whole for its annotations, its stream values read 300 rows at a time
    seen = list(chunks(store, ["layer0.fwd.h"], ("doc_ids",), 300, by_document=True,
                       extra=lambda a, b, cols: {"span": np.full(b - a, b - a)}))
    assert max(len(c) for c in seen) <= 300 and {int(c.columns["span"][0]) for c in seen} == {400}
    assert [c.start for c in seen][:3] == [0, 300, 400] and seen[-1].stop == store.n_tokens


@pytest.mark.parametrize("scan", ["discovery", "taxonomy", "index"])
def test_store_scans_memory_does_not_grow_with_the_recording(stores, tmp_path, scan, monkeypatch):
    from rnnvis.analysis import pattern_build

    monkeypatch.setattr(pattern_build, "MMAP_BYTES", 0)  # the index opened at the end: every member mapped

    def run(n):
        store = stores[n]
        if scan == "discovery":
            rank_store(store, decode, NAMES, chunk=2000, probe_sample=1000)
        elif scan == "taxonomy":
            taxonomy_store(store, CHARS, "char", None, {}, tmp_path / f"c{n}.npy", chunk=2000)
        else:
            open_pattern_index(store, "layer0.fwd.h", 0.0, folder=tmp_path / f"i{n}", chunk_tokens=2000)

    small = traced_peak(lambda: run(40), warm=lambda: run(10))
    large = traced_peak(lambda: run(160), warm=lambda: run(10))
    assert large <= 1.3 * small, (small, large)
