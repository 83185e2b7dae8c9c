"""Run-length index of every unit's on-runs, so a pattern match never scans tokens × units.

For one stream and one threshold θ (units,), the index holds for each unit the sorted, disjoint
runs [start, end) of tokens where the unit is on (>= θ), split at document boundaries; CSR
layout: the runs of unit u are starts[offsets[u]:offsets[u+1]], ends[...]. It is built once,
streaming over the recording in token chunks straight into an npz file (`pattern_build`: atomic
write, no pickle, opened memory-mapped) keyed by the recording's fingerprint, the stream and θ.

A match (see `pattern` for the rule) then:
- min_fraction = 1: intersects the run lists of the selected units, smallest first, each step a
  vectorised merge of two sorted interval lists (searchsorted + repeat);
- min_fraction < 1: sweeps the selected units' run starts/ends (+1/-1 events, cumulative sum)
  and keeps the stretches with >= need units on, cut at document starts;
- counts matched and extra units only for the candidates left after the length filter, from
  the index's packed on-bits (tokens, ceil(units / 8)) uint8: only the candidate rows are read
  and AND-reduced per candidate, then popcounted (a per-unit lookup in the run lists would cost
  units x candidates binary searches, too slow for loose selections with many candidates).
The result equals `match_scan` exactly. Size: 8 bytes per run plus units / 8 bytes per token
(1M tokens x 650 units: 81 MB of bits, 16x smaller than the float16 stream); the npz is not
compressed, so it loads at disk speed.
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from rnnvis.analysis.pattern import (
    PatternMatches,
    Percentile,
    SelectedUnits,
    check_match_args,
    length_filter,
    rank_matches,
    select_units,
    unit_thresholds,
)
from rnnvis.analysis.chunks import store_column
from rnnvis.analysis.pattern_build import INDEX_FORMAT, RunIndex, build_run_index, load_run_index  # noqa: F401
from rnnvis.errors import NotFound, RnnvisError

def _intersect(a_s, a_e, b_s, b_e):
    """Intersection of two sorted lists of disjoint intervals, vectorised."""
    lo = np.searchsorted(b_e, a_s, side="right")  # first b ending after a starts
    hi = np.searchsorted(b_s, a_e, side="left")  # b starting before a ends: < hi
    cnt = np.maximum(hi - lo, 0)
    ia = np.repeat(np.arange(a_s.size), cnt)
    ib = lo[ia] + (np.arange(ia.size) - np.repeat(np.cumsum(cnt) - cnt, cnt))
    s, e = np.maximum(a_s[ia], b_s[ib]), np.minimum(a_e[ia], b_e[ib])
    keep = s < e
    return s[keep], e[keep]


def _sweep(index: RunIndex, units: np.ndarray, need: int, dense: bool | None = None):
    """Stretches where >= need of `units` are on, cut at document starts.

    Sparse: sort the run starts/ends (cost ~ runs). Dense, chosen when the selected units have
    more than tokens / 6 runs (the measured break-even): count units on per token with two
    bincounts and a cumsum over (tokens,) (cost ~ tokens, independent of the number of units).
    """
    parts = [index.runs(int(u)) for u in units]
    if dense is None:
        dense = 6 * sum(p[0].size for p in parts) > index.n_tokens
    if dense:
        return _sweep_dense(index, parts, need)
    # one sort of keys 2 * position + (1 for a start, 0 for an end): no argsort needed
    key = np.concatenate([p[0].astype(np.int64) * 2 + 1 for p in parts] + [p[1].astype(np.int64) * 2 for p in parts])
    if key.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    key.sort()
    pos, cum = key >> 1, np.cumsum((key & 1) * 2 - 1)
    last = np.r_[pos[1:] != pos[:-1], True]
    p, c = pos[last], cum[last]  # c[i]: units on over [p[i], p[i+1])
    k = np.searchsorted(index.doc_starts, p)
    isdoc = (k < index.doc_starts.size) & (index.doc_starts[np.minimum(k, index.doc_starts.size - 1)] == p)
    good = c >= need  # good[-1] is False: every run has ended
    prev = np.r_[False, good[:-1]]
    nxt, nextdoc = np.r_[good[1:], False], np.r_[isdoc[1:], False]
    s = p[good & (~prev | isdoc)]
    e = p[np.flatnonzero(good & (~nxt | nextdoc)) + 1]
    return s, e


def _sweep_dense(index: RunIndex, parts, need: int):
    n = index.n_tokens
    starts = np.concatenate([p[0] for p in parts])
    ends = np.concatenate([p[1] for p in parts])
    count = np.cumsum(np.bincount(starts, minlength=n + 1) - np.bincount(ends, minlength=n + 1))[:n]  # (tokens,)
    good = count >= need
    newdoc = np.zeros(n + 1, bool)
    newdoc[index.doc_starts] = True
    newdoc[n] = True
    prev, nxt = np.r_[False, good[:-1]], np.r_[good[1:], False]
    s = np.flatnonzero(good & (~prev | newdoc[:n]))
    e = np.flatnonzero(good & (~nxt | newdoc[1:])) + 1
    return s, e


_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def _on_counts(index: RunIndex, units: np.ndarray, a: np.ndarray, b: np.ndarray, batch_rows: int = 1 << 20):
    """(matched (m,), total (m,)): selected / all units on at every token of each [a, b).

    Reads only the candidate rows of the packed on-bits, `batch_rows` rows at a time.
    """
    sel = np.zeros(index.n_units, bool)
    sel[units] = True
    selbits = np.packbits(sel)  # (ceil(units / 8),)
    matched, total = np.zeros(a.size, np.int64), np.zeros(a.size, np.int64)
    lens = b - a
    ends = np.cumsum(lens)
    i = 0
    while i < a.size:  # batches of candidates holding about batch_rows rows
        j = max(i + 1, int(np.searchsorted(ends, (ends[i - 1] if i else 0) + batch_rows, side="right")))
        ln = lens[i:j]
        first = np.cumsum(ln) - ln  # (c,) offset of each candidate's rows
        rows = np.repeat(a[i:j] - first, ln) + np.arange(int(ln.sum()))  # (rows,) token indices
        conj = np.bitwise_and.reduceat(index.bits[rows], first, axis=0)  # (c, bytes) on throughout
        matched[i:j] = _POPCOUNT[conj & selbits].sum(1, dtype=np.int64)
        total[i:j] = _POPCOUNT[conj].sum(1, dtype=np.int64)
        i = j
    return matched, total


def match_index(index: RunIndex, selection: SelectedUnits, min_fraction: float = 1.0, min_len: int = 1,
                max_len: int | None = None, top: int | None = None) -> PatternMatches:
    """Matches of a selection over the whole recording, from the run index (== `match_scan`)."""
    need = check_match_args(selection, index.n_units, min_fraction, min_len, max_len)
    if not np.array_equal(selection.threshold, index.threshold):
        raise RnnvisError("the selection and the index use different thresholds",
                          "select with the same threshold the index was built for")
    units = selection.units
    if need == units.size:  # every selected unit on: intersect run lists, shortest first
        sizes = np.diff(index.offsets)[units]
        order = units[np.argsort(sizes, kind="stable")]
        s, e = index.runs(int(order[0]))
        for u in order[1:]:
            if s.size == 0:
                break
            s, e = _intersect(s, e, *index.runs(int(u)))
    else:
        s, e = _sweep(index, units, need)
    s, e = s.astype(np.int64), e.astype(np.int64)
    keep = length_filter(s, e, min_len, max_len)
    s, e = s[keep], e[keep]
    matched, total = _on_counts(index, units, s, e)
    docs = index.doc_ids[np.searchsorted(index.doc_starts, s, side="right") - 1]
    return rank_matches(selection, index.n_tokens, min_fraction, min_len, max_len, docs, s, e,
                        matched, total - matched, top)


# ---- recordings: thresholds from the store's statistics, cached index next to the data ----


def store_thresholds(store, stream: str, threshold: Any) -> np.ndarray:
    """(units,) θ for a stored stream; a `Percentile` comes from the store's quantile sketch."""
    if stream not in store.streams:
        raise NotFound(f"stream {stream!r} is not stored per token",
                       f"stored: {', '.join(store.streams) or 'none'}; record with store_streams")
    units = int(store.meta["units"][stream])
    stats = store.stats[stream].units if isinstance(threshold, Percentile) else None
    return unit_thresholds(threshold, units, unit_stats=stats)


def _doc_reader(store):
    """read(start, stop) -> document ids of those rows of a recording."""
    return lambda a, b: store_column(store, "doc_ids", a, b)


def select_units_in_store(store, stream: str, start: int, stop: int, threshold: Any,
                          require_off_after: bool = False) -> SelectedUnits:
    """`select_units` on a stored stream, reading only the brushed rows and their neighbours."""
    theta = store_thresholds(store, stream, threshold)
    n = store.n_tokens
    start, stop = int(start), int(stop)
    if not (0 <= start < stop <= n):
        raise RnnvisError(f"token range [{start}, {stop}) is empty or outside 0..{n}",
                          "brush at least one token inside the recording")
    lo, hi = max(0, start - 1), min(n, stop + 1)
    s = select_units(store.read(stream, lo, hi), _doc_reader(store)(lo, hi), start - lo, stop - lo, theta,
                     require_off_after)
    return SelectedUnits(s.units, s.threshold, start, stop, s.doc_id, s.checked_before, s.checked_after)


def _cache_key(store, stream: str, theta: np.ndarray) -> str:
    """Content key: the recording's fingerprint (`Store.fingerprint`), the stream and θ — so a cache
    folder can move with the recording."""
    h = hashlib.sha256()
    h.update(str(store.fingerprint()).encode())
    h.update(stream.encode())
    h.update(np.ascontiguousarray(theta, np.float32).tobytes())
    return h.hexdigest()


KEEP_INDEXES = 8  # index files kept per cache folder (recording), least recently used deleted


def open_pattern_index(store, stream: str, threshold: Any, folder=None, chunk_tokens: int = 16384,
                       keep: int = KEEP_INDEXES) -> RunIndex:
    """The run index of a stored stream at θ: opened (memory-mapped) from the cache, else built into it.

    The cache is `folder` or, by default, `<recording>.patterns/` beside the recording; it keeps
    the `keep` most recently used index files (a file's time is set whenever it is used).
    """
    theta = store_thresholds(store, stream, threshold)
    key = _cache_key(store, stream, theta)
    folder = Path(folder) if folder is not None else store.path.with_name(store.path.name + ".patterns")
    path = folder / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', stream)}.{key[:20]}.npz"
    if path.exists():
        try:
            idx = load_run_index(path)
        except RnnvisError:
            idx = None  # damaged cache entry: rebuilt and replaced below
        if idx is not None and idx.key == key and np.array_equal(idx.threshold, theta) \
                and idx.n_tokens == store.n_tokens:
            _touch(path)
            return idx
    n = store.n_tokens
    idx = build_run_index(None, None, theta, chunk_tokens, key, read=lambda a, b: store.read(stream, a, b),
                          shape=(n, int(theta.size)), path=path, read_docs=_doc_reader(store))
    _prune(folder, keep)
    return idx


def _touch(path: Path) -> None:
    try:
        os.utime(path)
    except OSError:  # read-only cache: the order of use is only a hint
        pass


def _prune(folder: Path, keep: int) -> None:
    """Delete all but the `keep` most recently used index files of `folder`."""
    files = []
    for p in folder.glob("*.npz"):
        try:
            files.append((p.stat().st_mtime_ns, p))
        except OSError:  # deleted meanwhile
            pass
    files.sort(reverse=True)
    for _, p in files[max(1, keep):]:
        p.unlink(missing_ok=True)
