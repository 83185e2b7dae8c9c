"""Tiny seeded models for the performance / compare / training tests (imported by tests/test_*perf*.py)."""
from __future__ import annotations

import torch

LINES = [
    "the cat sat on the mat .", "a dog ran in the park .", "the bird sang a song .",
    "my friend read the book .", "the sun is not hot today .", "we ate the cake at noon .",
    "she said hello to the dog .", "he did not like the long film .", "the dog sat on the cat .",
    "a bird read the song .",
]
OTHER = ["one two three four five .", "five four three two one .", "two four six eight ten ."]
REVIEWS = [("a great and lovely film", 1), ("a bad and boring film", 0), ("i loved it , great fun", 1),
           ("awful , i hated it", 0), ("great acting and a lovely story", 1), ("boring plot and bad acting", 0),
           ("not great , not good", 0), ("really fun and very lovely", 1)]


def corpora():
    from rnnvis.data import Corpus, Document

    lines = Corpus("lines", [Document(id=str(i), text=t) for i, t in enumerate(LINES * 6)])
    other = Corpus("other", [Document(id=str(i), text=t) for i, t in enumerate(OTHER * 10)])
    reviews = Corpus("reviews", [Document(id=str(i), text=t, label=y) for i, (t, y) in enumerate(REVIEWS * 5)],
                     task="classify", label_names=["neg", "pos"])
    return {"lines": lines, "other": other, "reviews": reviews}


def build(ws, catalog) -> dict:
    """lm-a (LSTM, 2 epochs: two checkpoints) and lm-b (GRU) on `lines`, lm-other on `other`, clf on
    `reviews`; returns the corpora by name (serve them as own data so the Explorer finds them)."""
    from rnnvis.models import TrainConfig, train

    torch.manual_seed(0)
    data = corpora()
    common = dict(emb=8, hidden=12, batch_size=4, bptt=8, device="cpu", log_every=5, patience=None,
                  lr_schedule="none")
    train(data["lines"], TrainConfig(name="lm-a", task="lm", cell="lstm", epochs=2, **common), ws, catalog,
          progress=False)
    train(data["lines"], TrainConfig(name="lm-b", task="lm", cell="gru", epochs=1, **common), ws, catalog,
          progress=False)
    train(data["other"], TrainConfig(name="lm-other", task="lm", cell="lstm", epochs=1, **common), ws, catalog,
          progress=False)
    train(data["reviews"], TrainConfig(name="clf", task="classify", cell="lstm", epochs=2, **common), ws, catalog,
          progress=False)
    return data


def explorer(ws, catalog, data):
    from rnnvis.explore.jobs import JobManager
    from rnnvis.explore.session import Explorer

    try:
        ex = Explorer(ws, catalog, JobManager(), max_tokens=5000, warm=False)
    except TypeError:
        ex = Explorer(ws, catalog, JobManager(), max_tokens=5000)
    for name, c in data.items():
        ex.add_data(name, c)
    return ex


def ready(ex, ref, timeout=60):
    """The view recording (made through the 409 path on first use)."""
    from rnnvis.explore.session import NotReady

    try:
        return ex.store(ref)
    except NotReady as e:
        job = ex.jobs.wait(e.job.id, timeout)
        assert job.status == "done", job.error
        return ex.store(ref)


def settle(fn, ex, timeout=60):
    """fn() retried through NotReady (409) until its job is done."""
    from rnnvis.explore.session import NotReady

    for _ in range(20):
        try:
            return fn()
        except NotReady as e:
            job = ex.jobs.wait(e.job.id, timeout)
            assert job.status in ("done", "queued", "running"), job.error
    raise AssertionError("still not ready")


def lm_targets(store):
    """(rows, targets) from whole columns, the reference for the chunked scans: recorded tokens whose loss
    is known and whose next token follows in the same document, and the index of that next token."""
    import numpy as np

    loss = store.output("loss")
    d, p = store.doc_ids, store.positions
    nxt = np.zeros(d.shape[0], dtype=bool)
    nxt[:-1] = (d[1:] == d[:-1]) & (p[1:] == p[:-1] + 1)
    rows = np.flatnonzero(nxt & np.isfinite(loss))
    return rows, rows + 1


# ---- corpus scans in bounded memory ------------------------------------------------------------------
def traced_peak(fn, warm=None) -> int:
    """Peak bytes traced by tracemalloc (numpy allocations included) while fn() runs, after warm() (or
    fn()) ran once untraced, so that imports and first-use caches are not counted."""
    import gc
    import tracemalloc

    (warm or fn)()
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def synthetic_chunks(n: int, units: int = 16, chunk: int = 4096, doc_len: int = 500, seed: int = 0):
    """TokenChunks of a made-up corpus of n tokens, generated chunk by chunk (nothing held whole): a
    stream 's' whose unit 0 is higher inside a planted binary annotation 'flag' and unit 1 follows a
    scalar 'depth'; doc_ids, loss and rank columns."""
    import numpy as np

    from rnnvis.analysis import TokenChunk

    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        rng = np.random.default_rng([seed, a])
        t = np.arange(a, b)
        flag = (t % 97) < 20
        depth = (t % 31).astype(np.float64)
        x = rng.normal(size=(b - a, units)).astype(np.float32)
        x[:, 0] += flag
        x[:, 1] += depth / 10
        yield TokenChunk(a, b, {"s": x}, {"flag": flag, "depth": depth, "doc_ids": t // doc_len,
                                          "loss": rng.exponential(size=b - a).astype(np.float32),
                                          "rank": rng.integers(0, 8, size=b - a)})


CHARS = ["<pad>", "<unk>"] + list('abcxyz ();{}"/*\n=+')


def tiny_recording(path, n_docs: int, doc_len: int = 400, seed: int = 0):
    """A real view recording (Store) of a tiny seeded char LSTM LM over n_docs made-up documents of
    doc_len characters from `CHARS` (documents of 200-token windows, as the app records them)."""
    import torch
    from torch import nn

    from rnnvis.recording import record_corpus

    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.rnn, self.out = nn.Embedding(len(CHARS), 8), nn.LSTM(8, 16, batch_first=True), \
                nn.Linear(16, len(CHARS))

        def forward(self, ids):
            return self.out(self.rnn(self.emb(ids))[0])

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(seed)

    def batches():
        for d in range(n_docs):
            ids = torch.randint(2, len(CHARS), (1, doc_len), generator=g)
            for w in range(0, doc_len, 200):
                yield {"ids": ids[:, w:w + 200], "lengths": torch.tensor([min(200, doc_len - w)]),
                       "doc_ids": torch.tensor([d]), "start_pos": torch.tensor([w])}

    # small store chunks (1000 tokens), so that a store of a few documents already spans many of them
    return record_corpus(LM().eval(), batches(), path, vocab_size=len(CHARS), store_streams=("*.h",),
                         progress=False, chunk_tokens=1000)
