"""Pattern search as in LSTMVis (Strobelt et al., VIS 2017): select units over a brushed range,
then find every phrase of the corpus where the same units switch on.

A unit is *on* at a token when its value is >= θ (θ: one absolute value, or one value per unit,
e.g. a per-unit percentile, because cell states and pre-activations are unbounded).

- Select: the units on at every token of the brushed range [start, stop) and off at start - 1
  (when that token belongs to the same document; at a document start there is nothing to be off),
  optionally also off at stop (same rule).
- Match: a match is a maximal run of consecutive tokens of one document during which at least
  `need = ceil(min_fraction * k)` of the k selected units are on at every step (the paper's rule
  "the on-set covers the selection" is min_fraction = 1, the default). Runs never cross a document
  boundary; runs shorter than min_len or longer than max_len are dropped (not cut).
  Per match: matched = selected units on at every step of the match, extra = other units on at
  every step, Jaccard = |selected ∩ on| / |selected ∪ on| = matched / (k + extra).
  Ranking: most matched, then fewest extra, then longest, then corpus order.

This module holds the pure functions over arrays and `match_scan`, the plain chunked scan over
every token × unit (the reference). `pattern_index` holds the fast run-length index.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from rnnvis.errors import RnnvisError


@dataclass(frozen=True)
class Percentile:
    """A per-unit threshold: the q-th percentile (0..100) of each unit's values."""

    q: float


def unit_thresholds(threshold: Any, n_units: int, values: np.ndarray | None = None,
                    unit_stats: Any = None) -> np.ndarray:
    """(units,) float32 θ from a scalar, a (units,) array or a `Percentile`.

    A percentile comes from `unit_stats.quantile(q / 100)` (the store's histogram sketch, see
    `UnitStats`) when given, else exactly from `values` (tokens, units).
    """
    if isinstance(threshold, Percentile):
        q = float(threshold.q)
        if not 0.0 <= q <= 100.0:
            raise RnnvisError(f"percentile {q} is outside 0..100", "pass e.g. Percentile(90)")
        if unit_stats is not None:
            theta = np.asarray(unit_stats.quantile(q / 100.0), dtype=np.float64)
        elif values is not None:
            v = np.asarray(values, dtype=np.float64)
            if v.ndim != 2 or v.shape[0] == 0:
                raise RnnvisError(f"values must be (tokens, units) with tokens > 0, got {v.shape}",
                                  "pass the recorded stream")
            theta = np.quantile(v, q / 100.0, axis=0)
        else:
            raise RnnvisError("a percentile threshold needs the values or the unit statistics",
                              "pass values=... or unit_stats=store.stats[stream].units")
    else:
        theta = np.asarray(threshold, dtype=np.float64)
        if theta.ndim == 0:
            theta = np.full(n_units, float(theta))
    if theta.shape != (n_units,):
        raise RnnvisError(f"threshold has shape {theta.shape} but the stream has {n_units} units",
                          "pass one number, Percentile(q) or one threshold per unit")
    if not np.isfinite(theta).all():
        raise RnnvisError("threshold holds NaN or infinite values", "pass finite thresholds")
    return theta.astype(np.float32)


def on_mask(values: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """(tokens, units) bool: value >= θ, compared in float32 (as the store returns values)."""
    return np.asarray(values, dtype=np.float32) >= theta


@dataclass(frozen=True)
class SelectedUnits:
    """Units selected by a brushed range [start, stop) of one document."""

    units: np.ndarray  # (k,) int64 selected unit indices, ascending
    threshold: np.ndarray  # (units,) float32 θ used for on/off
    start: int  # first token of the range (index into the recording)
    stop: int  # one past the last token
    doc_id: int  # document holding the range
    checked_before: bool  # token start - 1 is in the same document (the "off before" rule applied)
    checked_after: bool  # require_off_after was asked and token stop is in the same document

    @property
    def k(self) -> int:
        return int(self.units.size)


def _shape(values, doc_ids: np.ndarray) -> tuple[int, int]:
    """(tokens, units) of values, checked against doc_ids (tokens,)."""
    shape = tuple(getattr(values, "shape", np.shape(values)))
    if len(shape) != 2:
        raise RnnvisError(f"values must be (tokens, units), got shape {shape}", "pass one stream")
    if doc_ids.shape != (shape[0],):
        raise RnnvisError(f"doc_ids has shape {doc_ids.shape}, values have {shape[0]} tokens",
                          "pass one document id per token")
    return int(shape[0]), int(shape[1])


def _check_range(n_tokens: int, doc_ids: np.ndarray, start: int, stop: int) -> None:
    if not (0 <= start < stop <= n_tokens):
        raise RnnvisError(f"token range [{start}, {stop}) is empty or outside 0..{n_tokens}",
                          "brush at least one token inside the recording")
    d = doc_ids[start:stop]
    if (d != d[0]).any():
        raise RnnvisError(f"token range [{start}, {stop}) crosses a document boundary",
                          "brush a range inside one document")


def select_units(values: np.ndarray, doc_ids: np.ndarray, start: int, stop: int, threshold: Any,
                 require_off_after: bool = False) -> SelectedUnits:
    """Units on (>= θ) over [start, stop) and off just before it (and after, if asked).

    values (tokens, units) may be a memmap or zarr array: only rows start-1 .. stop are read,
    except for a `Percentile` threshold, which is computed from all values.
    """
    doc_ids = np.asarray(doc_ids)
    n, units = _shape(values, doc_ids)
    start, stop = int(start), int(stop)
    _check_range(n, doc_ids, start, stop)
    theta = unit_thresholds(threshold, units, values=values if isinstance(threshold, Percentile) else None)
    doc = doc_ids[start]
    before = bool(start > 0 and doc_ids[start - 1] == doc)
    after = bool(require_off_after and stop < n and doc_ids[stop] == doc)
    lo, hi = start - int(before), stop + int(after)
    on = on_mask(values[lo:hi], theta)  # (hi - lo, units)
    sel = on[int(before):int(before) + stop - start].all(0)
    if before:
        sel &= ~on[0]
    if after:
        sel &= ~on[-1]
    return SelectedUnits(np.flatnonzero(sel).astype(np.int64), theta, start, stop, int(doc), before, after)


@dataclass(frozen=True)
class Match:
    """One matched phrase (a row of `PatternMatches`)."""

    rank: int
    doc_id: int
    start: int  # first token (index into the recording)
    stop: int  # one past the last token
    matched: int
    extra: int
    jaccard: float

    @property
    def length(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class PatternMatches:
    """All matches of a selection over the whole recording, ranked (best first)."""

    units: np.ndarray  # (k,) int64 selected units
    threshold: np.ndarray  # (units,) float32 θ
    min_fraction: float  # fraction of selected units that must be on at every step
    min_len: int
    max_len: int | None
    n_tokens: int  # tokens searched: the entire recording
    doc_ids: np.ndarray  # (m,) int64 document of each match
    starts: np.ndarray  # (m,) int64 first token of each match
    stops: np.ndarray  # (m,) int64 one past the last token
    matched: np.ndarray  # (m,) int64 selected units on during the whole match
    extra: np.ndarray  # (m,) int64 other units on during the whole match
    jaccard: np.ndarray  # (m,) float64 matched / (k + extra)
    length_hist: np.ndarray  # (max length + 1,) int64: length_hist[n] = matches of n tokens
    total: int  # matches found; m == total unless `top` cut the list

    @property
    def lengths(self) -> np.ndarray:
        """(m,) int64 tokens per match."""
        return self.stops - self.starts

    def __len__(self) -> int:
        return int(self.starts.size)

    def __getitem__(self, i: int) -> Match:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i %= len(self)
        return Match(i, int(self.doc_ids[i]), int(self.starts[i]), int(self.stops[i]), int(self.matched[i]),
                     int(self.extra[i]), float(self.jaccard[i]))


def check_match_args(selection: SelectedUnits, n_units: int, min_fraction: float, min_len: int,
                     max_len: int | None) -> int:
    """Validate match arguments; return `need`, the selected units that must be on per step."""
    if selection.k == 0:
        raise RnnvisError("the selection holds no units",
                          "brush a shorter range, lower the threshold or drop require_off_after")
    if selection.threshold.shape != (n_units,):
        raise RnnvisError(f"the selection's threshold has {selection.threshold.shape} entries, the stream "
                          f"has {n_units} units", "select units on the same stream you match")
    if selection.units.max() >= n_units:
        raise RnnvisError(f"selected unit {int(selection.units.max())} does not exist ({n_units} units)",
                          "select units on the same stream you match")
    if not 0.0 < float(min_fraction) <= 1.0:
        raise RnnvisError(f"min_fraction {min_fraction} is outside (0, 1]", "pass e.g. 1.0 (all units) or 0.8")
    if int(min_len) < 1 or (max_len is not None and int(max_len) < int(min_len)):
        raise RnnvisError(f"length bounds [{min_len}, {max_len}] are empty", "use 1 <= min_len <= max_len")
    return max(1, math.ceil(float(min_fraction) * selection.k - 1e-9))


def length_filter(starts: np.ndarray, stops: np.ndarray, min_len: int, max_len: int | None) -> np.ndarray:
    """(m,) bool: runs whose length lies in [min_len, max_len]."""
    n = stops - starts
    keep = n >= min_len
    return keep if max_len is None else keep & (n <= max_len)


def rank_matches(selection: SelectedUnits, n_tokens: int, min_fraction: float, min_len: int,
                 max_len: int | None, doc_ids, starts, stops, matched, extra, top: int | None) -> PatternMatches:
    """Rank runs (already length-filtered) by (-matched, extra, -length, start) into a result."""
    starts, stops = np.asarray(starts, np.int64), np.asarray(stops, np.int64)
    matched, extra = np.asarray(matched, np.int64), np.asarray(extra, np.int64)
    doc_ids = np.asarray(doc_ids, np.int64)
    lengths = stops - starts
    order = np.lexsort((starts, -lengths, extra, -matched))
    if top is not None:
        order = order[:max(0, int(top))]
    hist = np.bincount(lengths, minlength=1).astype(np.int64)
    jac = matched[order] / (selection.k + extra[order]).astype(np.float64)
    return PatternMatches(selection.units, selection.threshold, float(min_fraction), int(min_len),
                          None if max_len is None else int(max_len), int(n_tokens), doc_ids[order],
                          starts[order], stops[order], matched[order], extra[order], jac, hist, int(starts.size))


def match_scan(values: np.ndarray, doc_ids: np.ndarray, selection: SelectedUnits, min_fraction: float = 1.0,
               min_len: int = 1, max_len: int | None = None, top: int | None = None,
               chunk_tokens: int = 16384) -> PatternMatches:
    """Reference match: a plain vectorised scan over every token × unit, chunk by chunk.

    values (tokens, units) may be a memmap or zarr array; rows are read `chunk_tokens` at a time.
    """
    doc_ids = np.asarray(doc_ids)
    n, units = _shape(values, doc_ids)
    need = check_match_args(selection, units, min_fraction, min_len, max_len)
    sel, theta = selection.units, selection.threshold
    runs: list[np.ndarray] = []  # (r, 4) blocks of (start, stop, matched, extra)
    open_start, open_and = -1, None  # a run still going on at the end of the previous chunk
    is_sel = np.zeros(units, bool)
    is_sel[sel] = True

    def emit(s: np.ndarray, e: np.ndarray, conj: np.ndarray) -> None:  # conj: (r, units) on at every step
        m = conj[:, is_sel].sum(1)
        runs.append(np.stack([s, e, m, conj.sum(1) - m], 1).astype(np.int64))

    for a in range(0, n, chunk_tokens):
        b = min(n, a + chunk_tokens)
        on = on_mask(values[a:b], theta)  # (rows, units)
        good = on[:, sel].sum(1) >= need  # (rows,)
        d = doc_ids[a:b]
        newdoc = np.r_[a == 0 or d[0] != doc_ids[a - 1], d[1:] != d[:-1]]
        prev = np.r_[False, good[:-1]]
        nxt = np.r_[good[1:], False]
        nextdoc = np.r_[newdoc[1:], False]
        ss = np.flatnonzero(good & (~prev | newdoc))  # local run starts
        ee = np.flatnonzero(good & (~nxt | nextdoc)) + 1  # local run stops
        carried = open_and is not None
        if carried and not (ss.size and ss[0] == 0 and not newdoc[0]):
            emit(np.array([open_start]), np.array([a]), open_and[None])  # it ended at the chunk border
            carried, open_and = False, None
        if not ss.size:
            continue
        idx = np.stack([ss, ee], 1).ravel()
        if idx[-1] == b - a:
            idx = idx[:-1]
        conj = np.logical_and.reduceat(on, idx, axis=0)[::2]  # (segments, units)
        starts, stops = a + ss, a + ee
        if carried:  # the first segment continues the carried run
            conj[0] &= open_and
            starts[0] = open_start
            open_and = None
        if ee[-1] == b - a and b < n:  # the last segment may go on in the next chunk
            open_start, open_and = int(starts[-1]), conj[-1].copy()
            starts, stops, conj = starts[:-1], stops[:-1], conj[:-1]
        emit(starts, stops, conj)
    if open_and is not None:
        emit(np.array([open_start]), np.array([n]), open_and[None])
    arr = np.concatenate(runs) if runs else np.zeros((0, 4), np.int64)
    keep = length_filter(arr[:, 0], arr[:, 1], min_len, max_len)
    arr = arr[keep]
    return rank_matches(selection, n, min_fraction, min_len, max_len, doc_ids[arr[:, 0]], arr[:, 0], arr[:, 1],
                        arr[:, 2], arr[:, 3], top)
