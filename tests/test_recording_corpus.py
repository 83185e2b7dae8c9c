"""Corpus recording: store contents, statistics, model outputs, atomicity, disk full."""
from __future__ import annotations

import errno

import numpy as np
import pytest
import torch
from torch import nn


from rnnvis.errors import RnnvisError
from rnnvis.recording import Store, record, record_corpus
from rnnvis.recording.store import StoreWriter

from recording_support import window_batches

V, E, H, WIN = 23, 6, 5, 7


pytestmark = pytest.mark.usefixtures("one_thread")


class LM(nn.Module):
    def __init__(self, cell="lstm"):
        super().__init__()
        self.emb = nn.Embedding(V, E)
        self.rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell](E, H, num_layers=2, batch_first=True)
        self.dec = nn.Linear(H, V)

    def forward(self, ids):
        return self.dec(self.rnn(self.emb(ids))[0])


class CellLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(V, E)
        self.cell = nn.GRUCell(E, H)
        self.dec = nn.Linear(H, V)

    def forward(self, ids):
        h, outs = None, []
        x = self.emb(ids)
        for t in range(ids.shape[1]):
            h = self.cell(x[:, t], h)
            outs.append(h)
        return self.dec(torch.stack(outs, 1))


def make_docs(n_docs=9, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, V, (int(torch.randint(3, 20, (1,), generator=g)),), generator=g) for _ in range(n_docs)]


def batches_of(docs, batch=3):
    """Split documents into windows of WIN tokens and group windows into padded batches."""
    yield from window_batches(docs, WIN, batch)


def expected(model, docs):
    """Per-token streams via record() on each batch, padding removed, plus ids/docs/positions."""
    out = {}
    ids, dids, pos = [], [], []
    for b in batches_of(docs):
        _, rec = record(model.rnn if hasattr(model, "rnn") else model, model.emb(b["ids"]) if hasattr(model, "rnn") else b["ids"])
        for r, L in enumerate(b["lengths"].tolist()):
            for name in rec.streams:
                out.setdefault(name, []).append(rec[name][r, :L])
            ids.append(b["ids"][r, :L].numpy())
            dids.append(np.full(L, b["doc_ids"][r].item()))
            pos.append(b["start_pos"][r].item() + np.arange(L))
    return {k: np.concatenate(v) for k, v in out.items()}, np.concatenate(ids), np.concatenate(dids), np.concatenate(pos)


@pytest.mark.parametrize("method", ["scan", "batched"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_store_holds_every_stream_and_stats(tmp_path, method, cell):
    torch.manual_seed(0)
    model = LM(cell).eval()
    docs = make_docs()
    store = record_corpus(model, batches_of(docs), tmp_path / "rec", vocab_size=V, dtype="float32",
                          progress=False, method=method, chunk_tokens=16, meta={"model_id": "tiny"},
                          store_streams="*", word_stats="*", shard_tokens=40)
    assert len(store.meta["shards"]) > 1  # reads below cross shard borders
    want, ids, dids, pos = expected(model, docs)
    n = sum(len(d) for d in docs)
    assert store.n_tokens == n and store.meta["model_id"] == "tiny"
    assert sorted(store.streams) == sorted(want)
    np.testing.assert_array_equal(store.token_ids, ids)
    np.testing.assert_array_equal(store.doc_ids, dids)
    np.testing.assert_array_equal(store.positions, pos)
    for name, w in want.items():
        np.testing.assert_allclose(store.read(name), w, atol=1e-5, err_msg=name)
    # token ranges across chunk borders, unit subsets
    np.testing.assert_allclose(store.read("layer1.fwd.h", 10, 40, units=[4, 1]), want["layer1.fwd.h"][10:40][:, [4, 1]], atol=1e-5)
    # per-word statistics equal numpy on the values; Δ within windows, first step against 0
    starts = pos % WIN == 0  # every window starts from the zero state
    for name, vals in want.items():
        st = store.stats[name]
        d = vals.astype(np.float64).copy()
        d[1:] -= vals[:-1]
        d[starts] = vals[starts]
        for word in np.unique(ids)[:6]:
            sel = ids == word
            assert st.words.count[word].item() == sel.sum()
            np.testing.assert_allclose(st.words.mean[word].numpy(), vals[sel].mean(0), atol=1e-5)
            np.testing.assert_allclose(st.words.var[word].numpy(), vals[sel].var(0), atol=1e-5)
            np.testing.assert_allclose(st.deltas.mean[word].numpy(), d[sel].mean(0), atol=1e-5)
        np.testing.assert_allclose(st.units.mean.numpy(), vals.mean(0), atol=1e-5)
        np.testing.assert_allclose(st.units.max.numpy(), vals.max(0), atol=1e-6)
        if ".gate." in name:  # exact counts; tanh-ranged gates (g, n) saturate below -0.9
            low = -0.9 if name.endswith(("gate.g", "gate.n")) else 0.1
            np.testing.assert_array_equal(st.units.below.numpy(), (vals < low).sum(0))
            np.testing.assert_array_equal(st.units.above.numpy(), (vals > 0.9).sum(0))
    # language-model outputs: loss and rank of the next token within the window
    logits = torch.cat([model(b["ids"])[r, :L] for b in batches_of(docs) for r, L in enumerate(b["lengths"].tolist())])
    logp = torch.log_softmax(logits, -1).detach().numpy()
    loss, rank = store.output("loss"), store.output("rank")
    nxt = np.r_[~starts[1:], False]  # token has a successor in its window
    tgt = np.r_[ids[1:], 0]
    np.testing.assert_allclose(loss[nxt], -logp[nxt, tgt[nxt]], rtol=1e-4)
    assert np.isnan(loss[~nxt]).all() and (rank[~nxt] == -1).all()
    np.testing.assert_array_equal(rank[nxt], (logp[nxt] > logp[nxt, tgt[nxt]][:, None]).sum(1))
    np.testing.assert_array_equal(store.output("topk_ids")[:, 0], logp.argmax(1))
    assert store.output("topk_probs").shape == (n, 5)


def test_float16_default_subset_of_streams_and_cells(tmp_path):
    torch.manual_seed(1)
    model = CellLM().eval()
    docs = make_docs(5)
    store = record_corpus(model, batches_of(docs), tmp_path / "r", vocab_size=V, progress=False,
                          store_streams=["*.h", "*.gate.z"])
    assert sorted(store.streams) == ["cell.gate.z", "cell.h"]
    assert sorted(store.stats) == ["cell.gate.n", "cell.gate.r", "cell.gate.z", "cell.h"]
    assert store.dask("cell.h").dtype == np.float16
    assert store.has_word_stats("cell.h") and not store.has_word_stats("cell.gate.z")
    ref = torch.cat([torch.stack([h for h in _cell_h(model, b)], 1)[r, :L]
                     for b in batches_of(docs) for r, L in enumerate(b["lengths"].tolist())])
    np.testing.assert_allclose(store.read("cell.h"), ref.numpy(), atol=2e-3)
    with pytest.raises(RnnvisError, match="not stored"):
        store.read("cell.gate.r")


def _cell_h(model, b):
    h = None
    x = model.emb(b["ids"])
    for t in range(b["ids"].shape[1]):
        h = model.cell(x[:, t], h)
        yield h.detach()


def test_classifier_doc_probs(tmp_path):
    torch.manual_seed(2)

    class Clf(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.rnn, self.out = nn.Embedding(V, E), nn.GRU(E, H, batch_first=True), nn.Linear(H, 3)

        def forward(self, ids):
            return self.out(self.rnn(self.emb(ids))[1][-1])

    model = Clf().eval()
    docs = make_docs(4)
    bs = list(batches_of(docs))
    store = record_corpus(model, bs, tmp_path / "c", vocab_size=V, progress=False)
    probs = store.output("doc_probs")
    assert probs.shape == (sum(b["ids"].shape[0] for b in bs), 3)
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)
    np.testing.assert_array_equal(store.output("doc_probs_doc_ids"), torch.cat([b["doc_ids"] for b in bs]).numpy())
    assert store.output("loss") is None


def test_packing_classifier_whose_longest_document_comes_late_in_the_batch(tmp_path):
    """The first-batch checks look at a few windows; a model that packs its input returns only
    their width, so the longest window must be among them (regression: an IndexError)."""
    from torch.nn.utils.rnn import pack_padded_sequence

    torch.manual_seed(3)

    class Packed(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.rnn, self.out = nn.Embedding(V, E), nn.GRU(E, H, batch_first=True), nn.Linear(H, 2)

        def forward(self, ids, lengths):
            x = pack_padded_sequence(self.emb(ids), lengths.cpu(), batch_first=True, enforce_sorted=False)
            return self.out(self.rnn(x)[1][-1])

    B, T = 24, 9
    lengths = torch.full((B,), 3)
    lengths[20] = T  # the only full-width row, beyond the first 16
    batch = {"ids": torch.randint(0, V, (B, T)), "lengths": lengths, "doc_ids": torch.arange(B),
             "start_pos": torch.zeros(B, dtype=torch.long)}
    store = record_corpus(Packed().eval(), [batch], tmp_path / "p", vocab_size=V, progress=False,
                          forward=lambda m, b: m(b["ids"], b["lengths"]))
    assert store.n_tokens == int(lengths.sum())
    assert store.output("doc_probs").shape == (B, 2)


def test_shard_stores_merge_to_whole(tmp_path):
    torch.manual_seed(3)
    model = LM("gru").eval()
    docs = make_docs(10)
    bs = list(batches_of(docs))
    kw = dict(vocab_size=V, progress=False, word_stats="*")
    whole = record_corpus(model, bs, tmp_path / "w", write=True, **kw).stats
    a = record_corpus(model, bs[:2], tmp_path / "a", **kw).stats
    b = record_corpus(model, bs[2:], tmp_path / "b", **kw).stats
    name = "layer1.fwd.gate.z"  # gates have fixed histogram edges, so shards merge fully
    m = a[name].merge(b[name])
    assert torch.equal(m.words.count, whole[name].words.count)
    np.testing.assert_allclose(m.words.mean.numpy(), whole[name].words.mean.numpy(), atol=1e-5)
    np.testing.assert_allclose(m.words.m2.numpy(), whole[name].words.m2.numpy(), atol=1e-4)
    np.testing.assert_allclose(m.deltas.m2.numpy(), whole[name].deltas.m2.numpy(), atol=1e-4)
    assert torch.equal(m.units.hist, whole[name].units.hist)


def test_disk_full_leaves_nothing(tmp_path, monkeypatch):
    def full(self, arr, start, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(StoreWriter, "_write_chunk", full)
    model = LM().eval()
    with pytest.raises(RnnvisError, match="disk full"):
        record_corpus(model, batches_of(make_docs()), tmp_path / "rec", vocab_size=V, progress=False, chunk_tokens=8)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_recording_leaves_nothing_and_restart_works(tmp_path):
    model = LM().eval()
    target = tmp_path / "rec"

    def interrupted():
        for i, b in enumerate(batches_of(make_docs())):
            if i == 2:
                raise KeyboardInterrupt
            yield b

    with pytest.raises(KeyboardInterrupt):
        record_corpus(model, interrupted(), target, vocab_size=V, progress=False, chunk_tokens=8)
    assert list(tmp_path.iterdir()) == []
    store = record_corpus(model, batches_of(make_docs()), target, vocab_size=V, progress=False)
    assert store.n_tokens == sum(len(d) for d in make_docs())
    # a failing re-recording keeps the old, complete store
    with pytest.raises(RnnvisError):
        record_corpus(model, iter([]), target, vocab_size=V, progress=False)
    assert Store(target).n_tokens == store.n_tokens
    assert [p.name for p in tmp_path.iterdir()] == ["rec"]


def test_store_refuses_incomplete_and_missing(tmp_path):
    with pytest.raises(RnnvisError, match="no recording"):
        Store(tmp_path / "nope")
    w = StoreWriter(tmp_path / "half")
    w.add_column("token_ids", (), np.int32)
    w.abort()
    with pytest.raises(RnnvisError, match="not a complete"):
        Store(tmp_path / "half")


def test_bad_token_ids_and_no_recurrent_layer(tmp_path):
    with pytest.raises(RnnvisError, match="outside the vocabulary"):
        record_corpus(LM().eval(), batches_of(make_docs()), tmp_path / "x", vocab_size=5, progress=False)
    with pytest.raises(RnnvisError, match="no nn.RNN"):
        record_corpus(nn.Embedding(V, 3), batches_of(make_docs()), tmp_path / "y", vocab_size=V, progress=False)
    assert list(tmp_path.iterdir()) == []
