"""Token chunks of a view recording, read through the Store's public API, for the corpus scans.

Every scan of per-token data in the views (unit discovery, the LM error taxonomy, metrics,
compare) reads the recording here, one `TokenChunk` at a time (`rnnvis.analysis.chunks`), and
hands the chunks to a pure analysis; none of them reads whole columns or (tokens, units) arrays.
"""
from __future__ import annotations

from typing import Callable, Iterator, Sequence

import numpy as np

from ..analysis.chunks import CHUNK_TOKENS, TokenChunk, document_cuts, token_ranges
from ..analysis.chunks import store_column as read_column
from ..errors import NotFound, RnnvisError


def read_stream(store, name: str, start: int, stop: int) -> np.ndarray:
    """(stop - start, units) float32 of a stream stored per token; 404 with the stored ones else."""
    return store.read(name, start, stop)


def has_column(store, name: str) -> bool:
    """Whether the recording holds the per-token column (e.g. 'loss' only for language models)."""
    return read_column(store, name, 0, 0) is not None


def value_range(store, stream: str) -> tuple[np.ndarray, np.ndarray]:
    """((units,), (units,)) recorded min and max of every unit of a stream."""
    u = store.stats[stream].units
    return np.asarray(u.min, np.float32).reshape(-1), np.asarray(u.max, np.float32).reshape(-1)


def doc_cuts(store, chunk: int = CHUNK_TOKENS) -> np.ndarray:
    """(documents,) first token of every document run of the recording, read chunk by chunk."""
    parts, prev = [], None
    for a, b in token_ranges(store.n_tokens, chunk):
        d = read_column(store, "doc_ids", a, b)
        parts.append(document_cuts(d, a, prev))
        prev = d[-1]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def doc_table(store, chunk: int = CHUNK_TOKENS) -> dict[str, np.ndarray]:
    """{doc, start, stop, first, last} (documents,) of every document run of the recording, in recording
    order: its id, first and stop row, and the positions of its first and last token (read chunk by chunk)."""
    cuts = doc_cuts(store, chunk)
    n = store.n_tokens
    stops = np.r_[cuts[1:], n].astype(np.int64)
    out = {"start": cuts, "stop": stops, "doc": np.zeros(cuts.size, np.int64), "first": np.zeros(cuts.size, np.int64),
           "last": np.zeros(cuts.size, np.int64)}
    for a, b in token_ranges(n, chunk):
        d, p = read_column(store, "doc_ids", a, b), read_column(store, "positions", a, b)
        i = np.flatnonzero((cuts >= a) & (cuts < b))
        out["doc"][i], out["first"][i] = d[cuts[i] - a], p[cuts[i] - a]
        j = np.flatnonzero((stops > a) & (stops <= b))
        out["last"][j] = p[stops[j] - 1 - a]
    return out


def chunks(store, streams: Sequence[str] = (), columns: Sequence[str] = (), chunk: int = CHUNK_TOKENS,
           by_document: bool = False, extra: Callable[[int, int, dict], dict] | None = None,
           start: int = 0, stop: int | None = None) -> Iterator[TokenChunk]:
    """TokenChunks of [start, stop) of the recording with the named streams and columns (missing
    columns are left out). extra(a, b, columns) adds derived columns (e.g. annotations) to each range.

    by_document: ranges are cut at document starts, so `extra` sees whole documents (a document longer
    than `chunk` is one range); chunks carrying streams are still at most `chunk` tokens — the range's
    columns are computed once and sliced, its stream values read `chunk` rows at a time."""
    stop = store.n_tokens if stop is None else stop
    missing = [s for s in streams if s not in store.streams]
    if missing:
        raise NotFound(f"streams {missing} are not stored per token",
                       f"stored: {', '.join(store.streams) or 'none'}; record them with store_streams")
    cuts = doc_cuts(store, chunk) - start if by_document else None
    if cuts is not None:
        cuts = cuts[(cuts >= 0) & (cuts < stop - start)]
    for a, b in token_ranges(stop - start, chunk, cuts):
        a, b = a + start, b + start
        cols = {}
        for c in columns:
            v = read_column(store, c, a, b)
            if v is not None:
                cols[c] = v
        if extra is not None:
            cols.update(extra(a, b, cols))
        if not streams:
            yield TokenChunk(a, b, {}, cols)
            continue
        for s0 in range(a, b, chunk):
            s1 = min(b, s0 + chunk)
            yield TokenChunk(s0, s1, {s: read_stream(store, s, s0, s1) for s in streams},
                             {k: v[s0 - a:s1 - a] for k, v in cols.items()})


def need_column(store, name: str, what: str) -> None:
    if not has_column(store, name):
        raise RnnvisError(f"the recording has no per-token {name!r}", what)


__all__ = ["chunks", "doc_cuts", "doc_table", "has_column", "need_column", "read_column", "read_stream", "value_range"]
