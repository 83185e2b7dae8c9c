"""Run-length index of every unit's on-runs, so a pattern match never scans tokens × units.

For one stream and one threshold θ (units,), the index holds for each unit the sorted, disjoint
runs [start, end) of tokens where the unit is on (>= θ), split at document boundaries; CSR
layout: the runs of unit u are starts[offsets[u]:offsets[u+1]], ends[...]. It is built once,
streaming over the recording in token chunks, and saved as an npz file (atomic write, loaded
with allow_pickle=False) keyed by the recording, the stream and θ.

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
import json
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from rnnvis.analysis.pattern import (
    PatternMatches,
    Percentile,
    SelectedUnits,
    check_match_args,
    length_filter,
    on_mask,
    rank_matches,
    select_units,
    unit_thresholds,
)
from rnnvis.errors import NotFound, RnnvisError
from rnnvis.fsutil import atomic_path

INDEX_FORMAT = "rnnvis.pattern-index/1"


@dataclass(frozen=True)
class RunIndex:
    """On-runs of every unit of one stream at one threshold."""

    threshold: np.ndarray  # (units,) float32 θ
    n_tokens: int
    doc_starts: np.ndarray  # (docs,) int64 first token of each document, ascending
    doc_ids: np.ndarray  # (docs,) int64 id of each document
    offsets: np.ndarray  # (units + 1,) int64 runs of unit u: [offsets[u], offsets[u+1])
    starts: np.ndarray  # (runs,) int32/int64 first token of each run
    ends: np.ndarray  # (runs,) one past the last token of each run
    bits: np.ndarray  # (tokens, ceil(units / 8)) uint8 on-state per token, np.packbits along units
    key: str = ""  # identity of (recording, stream, θ) for the cache

    @property
    def n_units(self) -> int:
        return int(self.threshold.size)

    def runs(self, unit: int) -> tuple[np.ndarray, np.ndarray]:
        """(starts (r,), ends (r,)) of one unit's on-runs."""
        a, b = int(self.offsets[unit]), int(self.offsets[unit + 1])
        return self.starts[a:b], self.ends[a:b]

    def save(self, path) -> Path:
        """Write the index as an npz file, atomically."""
        path = Path(path)
        meta = json.dumps({"format": INDEX_FORMAT, "n_tokens": self.n_tokens, "key": self.key})
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, meta=np.array(meta), threshold=self.threshold, doc_starts=self.doc_starts,
                         doc_ids=self.doc_ids, offsets=self.offsets, starts=self.starts, ends=self.ends, bits=self.bits)
        return path


def load_run_index(path) -> RunIndex:
    """Read an index written by `RunIndex.save` (no pickle)."""
    try:
        with np.load(Path(path), allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            arrays = {k: z[k] for k in ("threshold", "doc_starts", "doc_ids", "offsets", "starts", "ends", "bits")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise RnnvisError(f"{path} is not a readable pattern index ({e})", "delete it; it is rebuilt on demand") from e
    if meta.get("format") != INDEX_FORMAT:
        raise RnnvisError(f"{path} has format {meta.get('format')!r}", "delete it; it is rebuilt on demand")
    return RunIndex(n_tokens=int(meta["n_tokens"]), key=str(meta["key"]), **arrays)


def build_run_index(values, doc_ids: np.ndarray, threshold: np.ndarray, chunk_tokens: int = 16384,
                    key: str = "", read: Callable[[int, int], np.ndarray] | None = None,
                    shape: tuple[int, int] | None = None) -> RunIndex:
    """Index the on-runs of values (tokens, units), reading `chunk_tokens` rows at a time.

    values: an array, memmap or zarr array; or None with read(start, stop) -> rows and shape.
    Memory: one chunk of values plus the runs, never the whole (tokens, units) array.
    """
    if read is None:
        values = values if hasattr(values, "shape") else np.asarray(values)
        n, units = values.shape
        read = lambda a, b: values[a:b]  # noqa: E731
    else:
        n, units = shape
    if n == 0:
        raise RnnvisError("the recording holds no tokens", "record at least one document")
    doc_ids = np.asarray(doc_ids)
    if doc_ids.shape != (n,):
        raise RnnvisError(f"doc_ids has shape {doc_ids.shape}, values have {n} tokens", "pass one id per token")
    theta = unit_thresholds(threshold, units)
    newdoc = np.r_[True, doc_ids[1:] != doc_ids[:-1]]
    doc_starts = np.flatnonzero(newdoc).astype(np.int64)
    pos_t = np.int32 if n < np.iinfo(np.int32).max else np.int64
    unit_t = np.uint16 if units <= np.iinfo(np.uint16).max else np.int32
    su, st, eu, et = [], [], [], []  # run starts/ends: unit and token, in token order
    carry = np.zeros(units, bool)  # on-state of the token before the chunk
    bits = np.empty((n, (units + 7) // 8), np.uint8)  # (tokens, ceil(units / 8))
    for a in range(0, n, chunk_tokens):
        b = min(n, a + chunk_tokens)
        on = on_mask(read(a, b), theta)  # (rows, units)
        bits[a:b] = np.packbits(on, axis=1)
        prev = np.concatenate([carry[None], on[:-1]])  # (rows, units) state one token earlier
        begin = on & ~prev
        end = prev & ~on  # a run ended just before this token
        for r in np.flatnonzero(newdoc[a:b]):  # document start: runs are cut here
            begin[r] = on[r]
            end[r] = prev[r]
        for flags, us, ts in ((begin, su, st), (end, eu, et)):
            r, u = np.nonzero(flags)  # token-major order
            us.append(u.astype(unit_t))
            ts.append((r + a).astype(pos_t))
        carry = on[-1]
    u = np.flatnonzero(carry)  # runs still open at the end of the recording
    eu.append(u.astype(unit_t))
    et.append(np.full(u.size, n, pos_t))
    starts, ends = _group(su, st), _group(eu, et)
    counts = np.bincount(np.concatenate(su), minlength=units)
    offsets = np.r_[0, np.cumsum(counts)].astype(np.int64)
    return RunIndex(theta, n, doc_starts, doc_ids[doc_starts].astype(np.int64), offsets, starts, ends, bits, key)


def _group(units: list[np.ndarray], tokens: list[np.ndarray]) -> np.ndarray:
    """Token positions sorted by unit, keeping token order inside a unit (stable radix sort)."""
    u, t = np.concatenate(units), np.concatenate(tokens)
    return t[np.argsort(u, kind="stable")]


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
    units = int(store.root[f"streams/{stream}"].shape[1])
    stats = _unit_stats(store, stream) if isinstance(threshold, Percentile) else None
    return unit_thresholds(threshold, units, unit_stats=stats)


_UNIT_KEYS = ("mean", "m2", "min", "max", "below", "above", "lo", "hi", "hist")


def _unit_stats(store, stream: str):
    """The per-unit statistics of one stream, without loading every stream's (vocab, units) arrays
    as `store.stats` does (layout: `save_stats`)."""
    import torch

    from rnnvis.recording.stats import UnitStats

    t = lambda key: torch.from_numpy(np.asarray(store.root[f"stats/{stream}/unit_{key}"][...]))  # noqa: E731
    return UnitStats(**{k: t(k) for k in _UNIT_KEYS}, count=t("count")[0])


def select_units_in_store(store, stream: str, start: int, stop: int, threshold: Any,
                          require_off_after: bool = False) -> SelectedUnits:
    """`select_units` on a stored stream, reading only the brushed rows and their neighbours."""
    theta = store_thresholds(store, stream, threshold)
    docs = store.doc_ids
    n = store.n_tokens
    start, stop = int(start), int(stop)
    if not (0 <= start < stop <= n):
        raise RnnvisError(f"token range [{start}, {stop}) is empty or outside 0..{n}",
                          "brush at least one token inside the recording")
    lo, hi = max(0, start - 1), min(n, stop + 1)
    s = select_units(store.read(stream, lo, hi), docs[lo:hi], start - lo, stop - lo, theta, require_off_after)
    return SelectedUnits(s.units, s.threshold, start, stop, s.doc_id, s.checked_before, s.checked_after)


def _cache_key(store, stream: str, theta: np.ndarray) -> str:
    """Content key: recording meta, the stream's per-unit moments and extremes (a fingerprint of
    its values, so a cache folder can move with the recording), the stream and θ."""
    h = hashlib.sha256()
    h.update(json.dumps(store.meta, sort_keys=True, default=str).encode())
    h.update(stream.encode())
    for k in ("mean", "m2", "min", "max"):
        h.update(np.ascontiguousarray(store.root[f"stats/{stream}/unit_{k}"][...]).tobytes())
    h.update(np.ascontiguousarray(theta, np.float32).tobytes())
    return h.hexdigest()


KEEP_INDEXES = 8  # index files kept per cache folder (recording), least recently used deleted


def open_pattern_index(store, stream: str, threshold: Any, folder=None, chunk_tokens: int = 16384,
                       keep: int = KEEP_INDEXES) -> RunIndex:
    """The run index of a stored stream at θ: loaded from the cache, else built and saved.

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
    units = int(theta.size)
    idx = build_run_index(None, store.doc_ids, theta, chunk_tokens, key,
                          read=lambda a, b: store.read(stream, a, b), shape=(n, units))
    idx.save(path)
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
