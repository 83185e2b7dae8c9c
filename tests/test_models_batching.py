"""Batching: BPTT streams, per-document windows for evaluation/recording, bucketed classifier batches."""
import numpy as np
import torch

from rnnvis.data.corpus import Document
from rnnvis.data.tokenize import EOS_ID, WordTokenizer
from rnnvis.models import IGNORE_INDEX, batchify, bptt_windows, classify_batches, lm_stream, lm_windows, take_tokens

DOCS = [Document("a", "one two three"), Document("b", "four five six seven eight nine ten"), Document("c", "two")]
TOK = WordTokenizer().fit(DOCS)


def test_stream_batchify_and_bptt():
    stream = lm_stream(TOK, DOCS)
    assert len(stream) == 3 + 1 + 7 + 1 + 1 + 1 and (stream == EOS_ID).sum() == 3
    data = batchify(stream, 2)  # (batch, tokens_per_row)
    assert data.shape == (2, 7)
    assert torch.equal(data.reshape(-1), torch.from_numpy(stream[:14]))
    wins = list(bptt_windows(data, 4))
    assert [x.shape[1] for x, _ in wins] == [4, 2]
    for x, y in wins:  # targets are the inputs shifted by one
        assert torch.equal(y[:, :-1], x[:, 1:])
    assert torch.equal(torch.cat([x for x, _ in wins], 1), data[:, :-1])


def test_take_tokens_is_deterministic_and_rotates():
    s = np.arange(100)
    a, b = take_tokens(s, 30, 0), take_tokens(s, 30, 1)
    assert len(a) == 31 and a[0] == 0 and b[0] == 30
    assert np.array_equal(take_tokens(s, 30, 1), b)
    assert np.array_equal(take_tokens(s, None), s)


def test_lm_windows_split_long_documents():
    batches = list(lm_windows(TOK, DOCS, window=3, batch_size=2))
    pieces = [(d, s, ids[:n].tolist(), t[:n].tolist())
              for b in batches for d, s, ids, t, n in zip(b["doc_ids"], b["start_pos"], b["ids"], b["targets"],
                                                           b["lengths"].tolist())]
    assert [(d, s) for d, s, _, _ in pieces] == [(0, 0), (0, 3), (1, 0), (1, 3), (1, 6), (2, 0)]
    for d, doc in enumerate(DOCS):
        seq = TOK.encode_doc(doc)
        mine = [p for p in pieces if p[0] == d]
        assert sum((p[2] for p in mine), []) == seq
        assert sum((p[3] for p in mine), []) == seq[1:] + [IGNORE_INDEX]  # next token, even across windows
    b = batches[0]
    assert b["ids"].shape == b["targets"].shape and b["ids"].dtype == torch.int64
    # padding: ids 0 and targets ignored
    last = batches[-1]
    assert last["ids"].shape[0] == 2 and (last["targets"][last["ids"] == 0] == IGNORE_INDEX).all()


def test_lm_windows_prepend_eos_scores_every_token():
    b = next(lm_windows(TOK, DOCS[:1], window=10, prepend_eos=True))
    seq = TOK.encode_doc(DOCS[0])
    assert b["ids"][0].tolist() == [EOS_ID] + seq[:-1] + [seq[-1]]
    assert b["targets"][0].tolist() == seq + [IGNORE_INDEX]


def test_classify_batches_bucket_truncate_and_keep_labels():
    docs = [Document(str(i), " ".join(["one"] * n), label=i % 2) for i, n in enumerate([9, 1, 5, 0, 3, 7])]
    batches = list(classify_batches(TOK, docs, batch_size=2, max_len=6))
    seen = sorted(d for b in batches for d in b["doc_ids"])
    assert seen == list(range(6))
    for b in batches:
        assert b["ids"].shape[1] == int(b["lengths"].max()) <= 6
        assert b["labels"].tolist() == [i % 2 for i in b["doc_ids"]]
    assert [b["lengths"].tolist() for b in batches] == [[1, 1], [3, 5], [6, 6]]  # bucketed by length
    shuffled = list(classify_batches(TOK, docs, batch_size=2, max_len=6, shuffle=True, seed=3))
    assert sorted(d for b in shuffled for d in b["doc_ids"]) == list(range(6))
