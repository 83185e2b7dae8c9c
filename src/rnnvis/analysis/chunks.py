"""Token chunks: the unit of every corpus scan in bounded memory.

A corpus scan (unit discovery, the error taxonomy, metrics, layer similarity, the pattern index)
never holds a whole (tokens, units) array: it folds one `TokenChunk` at a time into mergeable
partial results (counts, sums, histograms, Gram matrices, bottom-k samples). The explore layer
makes the chunks from a recording (`rnnvis.explore.scan.chunks`); tests and callers holding
arrays make them with `array_chunks`. Both cut the token axis with `token_ranges`.

Memory: a chunk of `CHUNK_TOKENS` tokens of a 256-unit stream is 64 MiB as float32, whatever the
size of the corpus. Scans whose per-token rules look back to the start of the document (annotations
such as bracket depth, the taxonomy's dynamic-memory oracle) ask for chunks cut at document starts:
such a chunk ends at the last document start within `chunk` tokens, or, for a document longer
than that, at the document's end (so memory is bounded by the longest document, not the corpus).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping

import numpy as np

from rnnvis.errors import RnnvisError

CHUNK_TOKENS = 1 << 16


@dataclass(frozen=True)
class TokenChunk:
    """Tokens [start, stop) of a corpus: stream values and per-token columns, all with stop - start rows."""

    start: int
    stop: int
    streams: Mapping[str, np.ndarray] = field(default_factory=dict)  # name -> (rows, units) float32
    columns: Mapping[str, np.ndarray] = field(default_factory=dict)  # name -> (rows, ...) e.g. doc_ids, loss

    def __len__(self) -> int:
        return self.stop - self.start


def token_ranges(n: int, chunk: int = CHUNK_TOKENS, cuts: np.ndarray | None = None) -> Iterator[tuple[int, int]]:
    """[start, stop) ranges covering 0..n, at most `chunk` tokens each unless `cuts` forbid it.

    cuts: sorted token indices where a document starts. Given, every range starts and stops at a
    cut (or 0 / n): it stops at the last cut within `chunk` tokens, or at the next cut when one
    document is longer than `chunk`.
    """
    if chunk < 1:
        raise RnnvisError(f"chunk size {chunk} is not positive", "use e.g. 65536 tokens")
    if cuts is None:
        for a in range(0, n, chunk):
            yield a, min(n, a + chunk)
        return
    c = np.unique(np.r_[np.asarray(cuts, dtype=np.int64), n])
    c = c[(c > 0) & (c <= n)]  # possible stops, ascending, ending with n
    a = 0
    while a < n:
        i = int(np.searchsorted(c, a + chunk, side="right")) - 1  # last stop within the chunk
        b = int(c[i]) if i >= 0 and c[i] > a else int(c[np.searchsorted(c, a, side="right")])
        yield a, b
        a = b


def document_cuts(doc_ids: np.ndarray, offset: int = 0, previous=None) -> np.ndarray:
    """Token indices (offset-based) where a new document starts within doc_ids (tokens,), given the
    doc id of the token before it (`previous`, None at the corpus start: token 0 is then a cut)."""
    d = np.asarray(doc_ids).reshape(-1)
    if d.size == 0:
        return np.zeros(0, np.int64)
    new = np.empty(d.size, bool)
    new[0] = previous is None or d[0] != previous
    new[1:] = d[1:] != d[:-1]
    return np.flatnonzero(new).astype(np.int64) + offset


def array_chunks(streams: Mapping[str, np.ndarray] | None = None, columns: Mapping[str, np.ndarray] | None = None,
                 chunk: int = CHUNK_TOKENS, by_document: bool = False) -> Iterator[TokenChunk]:
    """TokenChunks over in-memory arrays (all with the same number of rows); cut at document starts
    (columns['doc_ids']) when `by_document`."""
    streams, columns = dict(streams or {}), dict(columns or {})
    sizes = {len(v) for v in (*streams.values(), *columns.values())}
    if len(sizes) != 1:
        raise RnnvisError(f"arrays of different lengths {sorted(sizes)}", "pass one row per token in every array")
    n = sizes.pop()
    cuts = None
    if by_document:
        if "doc_ids" not in columns:
            raise RnnvisError("chunks by document need a doc_ids column", "pass columns={'doc_ids': ...}")
        cuts = document_cuts(columns["doc_ids"])
    for a, b in token_ranges(n, chunk, cuts):
        yield TokenChunk(a, b, {k: np.asarray(v[a:b], dtype=np.float32) for k, v in streams.items()},
                         {k: np.asarray(v[a:b]) for k, v in columns.items()})


def store_column(store, name: str, start: int, stop: int) -> np.ndarray | None:
    """Rows [start, stop) of a per-token column of a recording ('token_ids', 'doc_ids', 'positions', 'loss',
    'rank', 'topk_ids', 'topk_probs'), through `Store.column`; None when the recording has no such column.
    The one place (with `explore.scan`, which reads through it) where a scan reads a column."""
    out = store.column(name, start, stop)
    return None if out is None else np.asarray(out)


def check_chunks(chunks: Iterable[TokenChunk]) -> Iterator[TokenChunk]:
    """The chunks, checked to be consecutive and of consistent row counts (a scan's first line)."""
    expect = None
    for ch in chunks:
        if expect is not None and ch.start != expect:
            raise RnnvisError(f"chunk [{ch.start}, {ch.stop}) does not follow the previous one (ended at {expect})",
                              "pass consecutive token chunks, e.g. from token_ranges")
        for name, v in (*ch.streams.items(), *ch.columns.items()):
            if len(v) != len(ch):
                raise RnnvisError(f"{name!r} has {len(v)} rows in chunk [{ch.start}, {ch.stop})",
                                  "give every array one row per token of the chunk")
        expect = ch.stop
        yield ch


__all__ = ["CHUNK_TOKENS", "TokenChunk", "array_chunks", "check_chunks", "document_cuts", "store_column",
           "token_ranges"]
