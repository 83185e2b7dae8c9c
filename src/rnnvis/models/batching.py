"""Turning documents into batches of token ids.

Three shapes of batch, one per use:

- `lm_stream` + `batchify` + `bptt_windows`: training a language model with
  truncated back-propagation through time over one contiguous id stream (each
  document followed by <eos>), state carried (detached) between windows.
- `lm_windows`: evaluation and recording, document by document. Each yields
  {"ids": (batch, time) padded with 0, "lengths": (batch,), "doc_ids": list,
  "start_pos": list, "targets": (batch, time) next token, -100 at padding}.
  A document longer than `window` is cut into consecutive windows, each starting
  from the zero state. This dict is what the recording engine consumes.
- `classify_batches`: length-bucketed padded batches {"ids", "lengths", "labels", "doc_ids"}.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch

from ..data.corpus import Document
from ..data.tokenize import EOS_ID, PAD_ID, Tokenizer
from ..errors import RnnvisError

IGNORE_INDEX = -100


def lm_stream(tokenizer: Tokenizer, docs: Sequence[Document]) -> np.ndarray:
    """All documents encoded and concatenated, each followed by <eos>. (tokens,) int64."""
    parts = [np.asarray(tokenizer.encode_doc(d, add_eos=True), dtype=np.int64) for d in docs]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def take_tokens(stream: np.ndarray, max_tokens: int | None, epoch: int = 0) -> np.ndarray:
    """A deterministic slice of at most `max_tokens` (+1 for the last target), rotating with the epoch.

    Epoch k starts at offset k*max_tokens (mod the stream length), so successive
    epochs see different parts of a large corpus while a seed always gives the same data.
    """
    if not max_tokens or len(stream) <= max_tokens + 1:
        return stream
    start = (epoch * max_tokens) % len(stream)
    idx = (start + np.arange(max_tokens + 1)) % len(stream)
    return stream[idx]


def batchify(stream: np.ndarray, batch_size: int) -> torch.Tensor:
    """Cut the stream into `batch_size` contiguous rows. → (batch, tokens_per_row) int64, remainder dropped."""
    per_row = len(stream) // batch_size
    if per_row < 2:
        raise RnnvisError(
            f"the training split has {len(stream)} tokens: too few for batch size {batch_size}",
            "lower --batch-size or use a larger corpus")
    return torch.from_numpy(np.ascontiguousarray(stream[: per_row * batch_size]).reshape(batch_size, per_row))


def bptt_windows(data: torch.Tensor, bptt: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(inputs, targets) windows of at most `bptt` steps over batchified data; targets shifted by one."""
    n = data.shape[1] - 1
    for i in range(0, n, bptt):
        seq = min(bptt, n - i)
        yield data[:, i:i + seq], data[:, i + 1:i + 1 + seq]  # (batch, seq) each


def num_bptt_windows(data: torch.Tensor, bptt: int) -> int:
    return (data.shape[1] - 1 + bptt - 1) // bptt


def _pad(rows: list[np.ndarray], fill: int) -> torch.Tensor:
    out = np.full((len(rows), max(len(r) for r in rows)), fill, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return torch.from_numpy(out)


def lm_windows(tokenizer: Tokenizer, docs: Sequence[Document], window: int = 256, batch_size: int = 32,
               doc_ids: Sequence[int] | None = None, prepend_eos: bool = False,
               sort_by_length: bool = False) -> Iterator[dict]:
    """Per-document windows for evaluation and recording (see the module docstring).

    The sequence of document d is `encode_doc(d)` (its tokens then <eos>); with
    `prepend_eos` an <eos> start symbol goes first, so every real token, the first
    included, is predicted from the document boundary as in training. `start_pos`
    is the index of the window's first id in that sequence. The target of the last
    id of a document is ignored (-100).
    """
    if window < 1 or batch_size < 1:
        raise RnnvisError(f"window={window} and batch_size={batch_size} must be positive", "use e.g. 256 and 32")
    doc_ids = list(range(len(docs))) if doc_ids is None else list(doc_ids)
    pieces: list[tuple[int, int, np.ndarray, np.ndarray]] = []  # (doc id, start, ids, targets)
    for did, doc in zip(doc_ids, docs):
        seq = tokenizer.encode_doc(doc, add_eos=True)
        if prepend_eos:
            seq = [EOS_ID] + seq
        seq = np.asarray(seq, dtype=np.int64)
        tgt = np.append(seq[1:], IGNORE_INDEX)
        for s in range(0, len(seq), window):
            pieces.append((did, s, seq[s:s + window], tgt[s:s + window]))
    if sort_by_length:
        pieces.sort(key=lambda p: -len(p[2]))
    for b in range(0, len(pieces), batch_size):
        chunk = pieces[b:b + batch_size]
        yield {
            "ids": _pad([p[2] for p in chunk], PAD_ID),            # (batch, time)
            "lengths": torch.tensor([len(p[2]) for p in chunk]),   # (batch,)
            "doc_ids": [p[0] for p in chunk],
            "start_pos": [p[1] for p in chunk],
            "targets": _pad([p[3] for p in chunk], IGNORE_INDEX),  # (batch, time)
        }


def doc_labels(docs: Sequence[Document]) -> np.ndarray:
    """Integer class labels; a clear error for missing or non-integer (rating) labels."""
    labels = []
    for d in docs:
        lab = d.label
        if lab is None or isinstance(lab, bool) or not float(lab).is_integer() or lab < 0:
            raise RnnvisError(f"document {d.id!r} has label {lab!r}, not a class index",
                              "classification needs integer class labels 0..K-1")
        labels.append(int(lab))
    return np.asarray(labels, dtype=np.int64)


def classify_batches(tokenizer: Tokenizer, docs: Sequence[Document], batch_size: int = 32, max_len: int = 200,
                     shuffle: bool = False, seed: int = 0, doc_ids: Sequence[int] | None = None,
                     with_labels: bool = True) -> Iterator[dict]:
    """Length-bucketed padded batches, documents truncated to their first `max_len` tokens.

    Documents are sorted by length and cut into batches (little padding); with
    `shuffle`, the order of the batches is shuffled by `seed`. An empty document
    becomes the single token <eos> so every sequence has a state.
    """
    if max_len < 1 or batch_size < 1:
        raise RnnvisError(f"max_len={max_len} and batch_size={batch_size} must be positive", "use e.g. 200 and 32")
    doc_ids = list(range(len(docs))) if doc_ids is None else list(doc_ids)
    labels = doc_labels(docs) if with_labels else None
    seqs = []
    for d in docs:
        ids = tokenizer.encode_doc(d, add_eos=False)[:max_len]
        seqs.append(np.asarray(ids or [EOS_ID], dtype=np.int64))
    order = sorted(range(len(seqs)), key=lambda i: (len(seqs[i]), i))
    batches = [order[b:b + batch_size] for b in range(0, len(order), batch_size)]
    if shuffle:
        np.random.default_rng(seed).shuffle(batches)
    for idx in batches:
        batch = {
            "ids": _pad([seqs[i] for i in idx], PAD_ID),           # (batch, time)
            "lengths": torch.tensor([len(seqs[i]) for i in idx]),  # (batch,)
            "doc_ids": [doc_ids[i] for i in idx],
        }
        if labels is not None:
            batch["labels"] = torch.from_numpy(labels[idx])        # (batch,)
        yield batch
