"""The default store keeps h per token; c and every gate of any window are recomputed exactly.

Across the configurations of the equivalence matrix (cell kinds, LSTM projections, depth,
directions, layouts, packed sequences, initial states, both methods), windows recomputed from
the default store equal a full float32 recording within 1e-5.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnvis.errors import NotFound, RnnvisError
from rnnvis.recording import Store, recompute, record_corpus

from test_recording_equivalence import CONFIGS, make

V, I, WIN = 17, 3, 11
TOL = 1e-5

pytestmark = pytest.mark.usefixtures("one_thread")


class Wrapped(nn.Module):
    """Embedding -> fused layer (any layout, optionally packed, optionally a learned h0) -> logits."""

    def __init__(self, rnn: nn.Module, kind: str, packed: bool, init: bool):
        super().__init__()
        self.emb, self.rnn, self.kind, self.packed = nn.Embedding(V, I), rnn, kind, packed
        D = 2 if rnn.bidirectional else 1
        hout = getattr(rnn, "proj_size", 0) or rnn.hidden_size
        self.out = nn.Linear(D * hout, V)
        self.h0 = nn.Parameter(torch.randn(rnn.num_layers * D, 1, hout)) if init else None
        self.c0 = nn.Parameter(torch.randn(rnn.num_layers * D, 1, rnn.hidden_size)) if init and kind == "lstm" else None

    def forward(self, ids, lengths):
        bf = self.rnn.batch_first
        x = self.emb(ids)
        x = x if bf else x.transpose(0, 1)
        if self.packed:
            x = pack_padded_sequence(x, lengths.cpu(), batch_first=bf, enforce_sorted=False)
        hx = None
        if self.h0 is not None:
            B = ids.shape[0]
            h0 = self.h0.expand(-1, B, -1).contiguous()
            hx = (h0, self.c0.expand(-1, B, -1).contiguous()) if self.kind == "lstm" else h0
        y = self.rnn(x, hx)[0]
        if self.packed:
            y = pad_packed_sequence(y, batch_first=bf, total_length=ids.shape[1])[0]
        y = y if bf else y.transpose(0, 1)
        return self.out(y)


def forward(m, b):
    return m(b["ids"], b["lengths"])


def docs_batches(seed=0, n_docs=7, batch=3):
    g = torch.Generator().manual_seed(seed)
    docs = [torch.randint(0, V, (int(torch.randint(4, 30, (1,), generator=g)),), generator=g) for _ in range(n_docs)]
    wins = [(d, doc[s:s + WIN], s) for d, doc in enumerate(docs) for s in range(0, len(doc), WIN)]
    out = []
    for i in range(0, len(wins), batch):
        group = wins[i:i + batch]
        T = max(len(w) for _, w, _ in group)
        ids = torch.zeros(len(group), T, dtype=torch.long)
        for r, (_, w, _) in enumerate(group):
            ids[r, :len(w)] = w
        out.append({"ids": ids, "lengths": torch.tensor([len(w) for _, w, _ in group]),
                    "doc_ids": torch.tensor([d for d, _, _ in group]), "start_pos": torch.tensor([s for _, _, s in group])})
    return out


def ranges(n):
    return [(0, n), (1, 5), (7, 19), (WIN + 4, WIN + 5), (n - 6, n)]


def _matrix():
    """Every cell kind x depth x direction x packing; layout, initial state and method take
    each of their values across these (the full product is covered by the recording tests)."""
    out = []
    for i, ((kind, proj), layers, bidir, packed) in enumerate(
            (c, L, d, p) for c in CONFIGS for L in (1, 2) for d in (False, True) for p in (False, True)):
        out.append((kind, proj, layers, bidir, packed, bool(i % 2), bool(i // 2 % 2), ("scan", "batched")[i // 4 % 2]))
    return out


@pytest.mark.parametrize("kind,proj,layers,bidir,packed,bf,init,method", _matrix())
def test_recomputed_windows_equal_a_full_recording(tmp_path, kind, proj, layers, bidir, bf, packed, init, method):
    torch.manual_seed(layers * 7 + bidir)
    m = Wrapped(make(kind, layers, bidir, bf, proj), kind, packed, init).eval()
    bs = docs_batches(layers + 2 * bidir)
    common = dict(vocab_size=V, forward=forward, progress=False, method=method, keyframe_every=4, shard_tokens=60)
    full = record_corpus(m, bs, tmp_path / "full", store_streams="*", word_stats="*", dtype="float32", **common)
    small = record_corpus(m, bs, tmp_path / "small", **common)
    assert all(n.endswith(".h") for n in small.streams) and small.all_streams == full.all_streams
    assert len(small.meta["shards"]) > 1
    # keyframes are kept exactly where a window can restart from them
    assert small.meta["keyframe_every"] == (0 if bidir else 4)
    for a, b in ranges(small.n_tokens):
        got = recompute(m, small, a, b, forward=forward)
        assert sorted(got) == sorted(full.all_streams)
        for name, v in got.items():
            np.testing.assert_allclose(v, full.read(name, a, b), atol=TOL, rtol=0, err_msg=f"{name} [{a}, {b})")


def test_default_store_is_small_and_statistics_follow_the_defaults(tmp_path):
    torch.manual_seed(0)
    m = Wrapped(make("lstm", 2, False, True, 0), "lstm", False, False).eval()
    bs = docs_batches(0, n_docs=12)
    full = record_corpus(m, bs, tmp_path / "full", vocab_size=V, forward=forward, progress=False,
                         store_streams="*", word_stats="*", dtype="float32")
    small = record_corpus(m, bs, tmp_path / "small", vocab_size=V, forward=forward, progress=False)
    assert small.streams == ["layer0.fwd.h", "layer1.fwd.h"]
    assert small.dask("layer0.fwd.h").dtype == np.float16
    np.testing.assert_allclose(small.read("layer1.fwd.h"), full.read("layer1.fwd.h"), atol=2e-3)
    for name in full.all_streams:
        words = name.endswith((".h", ".c"))
        assert small.has_word_stats(name) == words
        s, f = small.stats[name], full.stats[name]
        assert (s.words is not None) == words and (s.deltas is not None) == words
        # per-unit statistics and saturation counts for every stream, equal to the full recording's
        np.testing.assert_allclose(s.units.mean.numpy(), f.units.mean.numpy(), atol=1e-6)
        np.testing.assert_array_equal(s.units.below.numpy(), f.units.below.numpy())
        np.testing.assert_array_equal(s.units.hist.numpy(), f.units.hist.numpy())
        if words:
            np.testing.assert_allclose(s.deltas.mean.numpy(), f.deltas.mean.numpy(), atol=1e-6)
    with pytest.raises(NotFound, match="recompute"):
        small.read("layer0.fwd.c")
    # windows: consecutive [start, stop) ranges covering the store
    w = small.windows
    assert w[0, 0] == 0 and w[-1, 1] == small.n_tokens and np.all(w[1:, 0] == w[:-1, 1])
    with pytest.raises(RnnvisError, match="outside the recording"):
        recompute(m, small, 5, small.n_tokens + 1, forward=forward)
    with pytest.raises(NotFound, match="unknown streams"):
        recompute(m, small, 0, 3, names=["layer9.fwd.c"], forward=forward)


def test_cells_in_a_user_loop_recompute_from_the_window_start(tmp_path):
    class CellLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.cell, self.dec = nn.Embedding(V, I), nn.LSTMCell(I, 5), nn.Linear(5, V)

        def forward(self, ids):
            state, outs = None, []
            x = self.emb(ids)
            for t in range(ids.shape[1]):
                state = self.cell(x[:, t], state)
                outs.append(state[0])
            return self.dec(torch.stack(outs, 1))

    torch.manual_seed(4)
    m = CellLM().eval()
    bs = docs_batches(4)
    full = record_corpus(m, bs, tmp_path / "f", vocab_size=V, progress=False, store_streams="*", dtype="float32")
    small = record_corpus(m, bs, tmp_path / "s", vocab_size=V, progress=False)
    assert small.meta["keyframe_every"] == 0
    for a, b in ranges(small.n_tokens):
        got = recompute(m, small, a, b)
        for name, v in got.items():
            np.testing.assert_allclose(v, full.read(name, a, b), atol=TOL, err_msg=name)


def test_a_model_that_sees_neighbouring_tokens_gets_no_keyframes(tmp_path):
    class ConvLM(nn.Module):  # a convolution over the previous token feeds the recurrence
        def __init__(self):
            super().__init__()
            self.emb, self.conv = nn.Embedding(V, I), nn.Conv1d(I, I, 2, padding=1)
            self.rnn, self.dec = nn.GRU(I, 4, batch_first=True), nn.Linear(4, V)

        def forward(self, ids):
            x = self.conv(self.emb(ids).transpose(1, 2))[:, :, :ids.shape[1]].transpose(1, 2)
            return self.dec(self.rnn(x)[0])

    torch.manual_seed(5)
    m = ConvLM().eval()
    bs = docs_batches(5)
    full = record_corpus(m, bs, tmp_path / "f", vocab_size=V, progress=False, store_streams="*", dtype="float32",
                         keyframe_every=4)
    small = record_corpus(m, bs, tmp_path / "s", vocab_size=V, progress=False, keyframe_every=4)
    assert small.meta["keyframe_every"] == 0  # restarting mid-window would lose the previous token
    got = recompute(m, small, 3, 25)
    for name, v in got.items():
        np.testing.assert_allclose(v, full.read(name, 3, 25), atol=TOL, err_msg=name)


def test_store_opens_only_when_complete(tmp_path):
    torch.manual_seed(6)
    m = Wrapped(make("gru", 1, False, True, 0), "gru", False, False).eval()
    store = record_corpus(m, docs_batches(6), tmp_path / "r", vocab_size=V, forward=forward, progress=False)
    assert isinstance(Store(store.path), Store)
    assert not (tmp_path / "r.part").exists()
