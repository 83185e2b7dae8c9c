"""Unit discovery over a whole corpus in bounded memory: one pass over token chunks.

`scan_units` ranks every unit of every stream against each annotation, as `rank_units` does on
arrays, but folds each `TokenChunk` into mergeable partial results instead of holding
(tokens, units) arrays:

- scalar annotation: Pearson r from running sums n, Σx, Σx², Σy, Σy², Σxy (float64) — exact up
  to rounding. (Spearman ρ needs global ranks and is not offered by the scan.)
- binary annotation: AUC (Mann–Whitney U) from per-unit histograms of the unit's values over
  `bins` equal bins of [lo, hi] (the unit's recorded min and max), one histogram over all tokens
  and one over the annotated tokens. Pairs of a positive and a negative token in different bins
  are ordered exactly; pairs in the same bin count ½, as a tie. So the AUC is exact when no bin
  holds both a positive and a negative value, and otherwise off by at most
  ½ Σ_b pos_b·neg_b / (n₁·n₀), which is computed per unit and reported as `UnitRanking.error`
  (the largest bound over the ranked units).
- linear probe: trained on a seeded uniform sample of at most `probe_sample` tokens (a bottom-k
  sample: each token gets a random key from a generator seeded by (seed, chunk start), the k
  smallest keys are kept), split by document as `linear_probe` does.

Memory: the histograms (units × bins × 8 bytes per stream and binary annotation), the sums and
the sample; the chunk itself is processed in blocks of `BLOCK` rows. None of it grows with the
number of tokens.
"""
from __future__ import annotations

from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from rnnvis.analysis.chunks import TokenChunk, check_chunks
from rnnvis.analysis.discovery import ProbeResult, UnitDiscovery, UnitRanking, linear_probe
from rnnvis.errors import RnnvisError

AUC_BINS = 2048
PROBE_SAMPLE = 20_000
BLOCK = 16_384  # rows of a chunk processed at once (bounds the float64 / index temporaries)
# Σxy is one matrix-vector product per scalar annotation: one matrix product for all of them was
# measured 60x slower with a multi-threaded BLAS on busy shared cores.


def auc_from_histograms(pos: np.ndarray, total: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(auc (units,), error bound (units,)) from histograms (units, bins) of the positives and of all
    tokens over the same ordered bins; ties within a bin count ½."""
    pos = np.asarray(pos, dtype=np.float64)
    neg = np.asarray(total, dtype=np.float64) - pos
    n1, n0 = pos.sum(1), neg.sum(1)  # (units,)
    below = np.cumsum(neg, axis=1) - neg  # negatives in lower bins
    u = (pos * (below + 0.5 * neg)).sum(1)
    den = n1 * n0
    if not (den > 0).all():
        raise RnnvisError("AUC needs both positive and negative tokens", "choose a text where the annotation varies")
    return u / den, 0.5 * (pos * neg).sum(1) / den


class _Stream:
    """Bins and sums of one stream."""

    def __init__(self, units: int, lo, hi, bins: int):
        self.units, self.bins = units, bins
        self.lo = np.broadcast_to(np.asarray(lo, np.float32), (units,)).copy()
        width = np.broadcast_to(np.asarray(hi, np.float32), (units,)) - self.lo
        self.scale = np.where(width > 0, bins / np.where(width > 0, width, 1), 0).astype(np.float32)
        self.offsets = (np.arange(units, dtype=np.int64) * bins)[None]  # (1, units)
        self.hist = np.zeros(units * bins, np.int64)  # all tokens

    def bin_index(self, x: np.ndarray) -> np.ndarray:
        """(rows, units) int64 flat index unit * bins + bin of each value."""
        t = np.subtract(x, self.lo, dtype=np.float32)
        t *= self.scale
        np.clip(t, 0, self.bins - 1, out=t)
        idx = t.astype(np.int64)
        idx += self.offsets
        return idx


class _Scalar:
    """Running sums for Pearson r of every unit of every stream with one scalar annotation."""

    def __init__(self, units: Mapping[str, int]):
        self.n, self.sy, self.syy = 0, 0.0, 0.0
        self.sx = {s: np.zeros(u) for s, u in units.items()}
        self.sxx = {s: np.zeros(u) for s, u in units.items()}
        self.sxy = {s: np.zeros(u) for s, u in units.items()}

    def r(self, s: str) -> np.ndarray:
        n = self.n
        cov = n * self.sxy[s] - self.sx[s] * self.sy
        vx = n * self.sxx[s] - self.sx[s] ** 2
        vy = n * self.syy - self.sy ** 2
        ok = vx > 1e-12 * np.maximum(n * self.sxx[s], 1e-300)  # constant units (rounding aside) get r = 0
        den = np.sqrt(np.where(ok, vx, 0.0) * max(vy, 0.0))
        return np.divide(cov, den, out=np.zeros_like(cov), where=ok & (den > 0))


class _Sample:
    """Seeded bottom-k sample of tokens for the probe: keys, features, labels, doc ids."""

    def __init__(self, k: int, seed: int):
        self.k, self.seed = k, seed
        self.key = np.zeros(0)
        self.x: np.ndarray | None = None
        self.cols: dict[str, np.ndarray] = {}

    def add(self, start: int, x: np.ndarray, cols: Mapping[str, np.ndarray]) -> None:
        key = np.random.default_rng([self.seed, start]).random(x.shape[0])
        take = np.flatnonzero(key < self.key.max()) if self.key.size >= self.k else np.arange(key.size)
        if take.size == 0:
            return
        keys = np.r_[self.key, key[take]]
        xs = x[take] if self.x is None else np.concatenate([self.x, x[take]])
        cs = {n: v[take] if n not in self.cols else np.concatenate([self.cols[n], v[take]]) for n, v in cols.items()}
        keep = np.argsort(keys, kind="stable")[:self.k]
        self.key, self.x, self.cols = keys[keep], xs[keep], {n: v[keep] for n, v in cs.items()}


def _kind(a: np.ndarray) -> str:
    return "binary" if a.dtype == bool else "scalar"


def scan_units(chunks: Iterable[TokenChunk], annotations: Sequence[str],
               value_range: Mapping[str, tuple[np.ndarray, np.ndarray]], bins: int = AUC_BINS,
               probe_stream: str | None = None, probe_sample: int = PROBE_SAMPLE, seed: int = 0,
               progress: Callable[[int], None] | None = None) -> UnitDiscovery:
    """Rank all units of the chunks' streams against each annotation (chunk.columns[name]: bool for a
    binary annotation, float for a scalar one, NaN where unknown) and probe `probe_stream`.

    value_range: {stream: (lo (units,), hi (units,))}, the range binned for the AUC (e.g. the
    recorded per-unit min and max). progress(stop) is called after each chunk.
    Annotations that never vary get an empty ranking (and no probe).
    """
    if bins < 2:
        raise RnnvisError(f"bins={bins} is too small", "use e.g. 2048 bins")
    names = list(annotations)
    streams: dict[str, _Stream] | None = None
    kinds: dict[str, str] = {}
    pos: dict[str, dict[str, np.ndarray]] = {}
    scal: dict[str, _Scalar] = {}
    n1 = {nm: 0 for nm in names}
    total = 0
    sample = _Sample(probe_sample, seed) if probe_stream else None
    for ch in check_chunks(chunks):
        if streams is None:
            missing = [s for s in ch.streams if s not in value_range]
            if missing or not ch.streams:
                raise RnnvisError(f"no value range for streams {missing}" if missing else "the chunks hold no stream",
                                  "pass value_range={stream: (min, max)} for every stream of the chunks")
            streams = {s: _Stream(v.shape[1], *value_range[s], bins) for s, v in ch.streams.items()}
            if probe_stream is not None and probe_stream not in streams:
                raise RnnvisError(f"probe stream {probe_stream!r} is not scanned", f"choose one of {list(streams)}")
        for nm in names:
            if nm not in ch.columns:
                raise RnnvisError(f"chunk [{ch.start}, {ch.stop}) has no annotation {nm!r}",
                                  "annotate every chunk with every scanned annotation")
            k = _kind(np.asarray(ch.columns[nm]))
            if kinds.setdefault(nm, k) != k:
                raise RnnvisError(f"annotation {nm!r} is binary in some chunks and scalar in others",
                                  "give a binary annotation as bool in every chunk")
            if k == "binary" and nm not in pos:
                pos[nm] = {s: np.zeros(st.units * bins, np.int64) for s, st in streams.items()}
            elif k == "scalar" and nm not in scal:
                scal[nm] = _Scalar({s: st.units for s, st in streams.items()})
        total += len(ch)
        for r0 in range(0, len(ch), BLOCK):
            r1 = min(len(ch), r0 + BLOCK)
            ann = {nm: np.asarray(ch.columns[nm][r0:r1]) for nm in names}
            for nm in names:
                if kinds[nm] == "binary":
                    n1[nm] += int(ann[nm].sum())
                else:
                    y = ann[nm].astype(np.float64)
                    keep = np.isfinite(y)
                    ann[nm] = (y, keep, bool(keep.all()))
                    acc, yk = scal[nm], y[keep]
                    acc.n += yk.size
                    acc.sy += float(yk.sum())
                    acc.syy += float(yk @ yk)
            full = [nm for nm in names if kinds[nm] == "scalar" and ann[nm][2]]  # no NaN in this block
            for s, st in streams.items():
                x = np.asarray(ch.streams[s][r0:r1], dtype=np.float32)
                idx = st.bin_index(x)
                st.hist += np.bincount(idx.ravel(), minlength=st.hist.size)
                for nm in names:
                    if kinds[nm] == "binary" and ann[nm].any():
                        pos[nm][s] += np.bincount(idx[ann[nm]].ravel(), minlength=st.hist.size)
                del idx
                if not scal:
                    continue
                xd = x.astype(np.float64)
                if full:  # sums shared by the annotations without NaN here
                    sx, sxx = xd.sum(0), np.einsum("ij,ij->j", xd, xd)  # (units,), (units,)
                    for nm in full:
                        acc = scal[nm]
                        acc.sx[s] += sx
                        acc.sxx[s] += sxx
                        acc.sxy[s] += ann[nm][0] @ xd  # a matrix-vector product per annotation (see BLOCK)
                for nm in names:
                    if kinds[nm] == "scalar" and nm not in full:
                        y, keep, _ = ann[nm]
                        xk, acc = xd[keep], scal[nm]
                        acc.sx[s] += xk.sum(0)
                        acc.sxx[s] += np.einsum("ij,ij->j", xk, xk)
                        acc.sxy[s] += y[keep] @ xk
        if sample is not None:
            sample.add(ch.start, np.asarray(ch.streams[probe_stream], np.float32),
                       {**{nm: np.asarray(ch.columns[nm]) for nm in names},
                        "_doc": np.asarray(ch.columns["doc_ids"]) if "doc_ids" in ch.columns else np.zeros(len(ch))})
        if progress is not None:
            progress(ch.stop)
    rankings: dict[str, UnitRanking] = {}
    probes: dict[tuple[str, str], ProbeResult] = {}
    if streams is None:
        return UnitDiscovery(rankings, probes)
    for nm in names:
        kind = kinds[nm]
        if kind == "binary":
            if n1[nm] == 0 or n1[nm] == total:
                rankings[nm] = _ranking(nm, kind, "auc", {}, 0.0, total)
                continue
            parts = {s: auc_from_histograms(pos[nm][s].reshape(st.units, bins), st.hist.reshape(st.units, bins))
                     for s, st in streams.items()}
            ranking = _ranking(nm, kind, "auc", {s: p[0] for s, p in parts.items()},
                               max(float(p[1].max(initial=0)) for p in parts.values()), total)
        else:
            acc = scal[nm]
            if acc.n < 2 or acc.n * acc.syy - acc.sy ** 2 <= 1e-12 * max(acc.n * acc.syy, 1e-300):
                rankings[nm] = _ranking(nm, kind, "pearson", {}, 0.0, acc.n)
                continue
            ranking = _ranking(nm, kind, "pearson", {s: acc.r(s) for s in streams}, 0.0, acc.n)
        rankings[nm] = ranking
        if sample is not None and sample.x is not None:
            try:
                probes[(nm, probe_stream)] = linear_probe(sample.x, sample.cols[nm], nm, probe_stream,
                                                          doc_ids=sample.cols["_doc"], seed=seed)
            except (RnnvisError, ValueError):  # one class in the sample's training split: no probe
                pass
    return UnitDiscovery(rankings, probes)


def _ranking(name: str, kind: str, metric: str, scores: Mapping[str, np.ndarray], error: float,
             tokens: int) -> UnitRanking:
    names = np.concatenate([np.full(v.size, s, dtype=object) for s, v in scores.items()] + [np.zeros(0, object)])
    units = np.concatenate([np.arange(v.size) for v in scores.values()] + [np.zeros(0, np.int64)])
    score = np.concatenate(list(scores.values()) + [np.zeros(0)])
    effect = score - 0.5 if kind == "binary" else score
    order = np.argsort(-np.abs(effect), kind="stable")
    return UnitRanking(name, kind, metric, names[order], units[order], score[order], effect[order],
                       error=error, tokens=int(tokens))


__all__ = ["AUC_BINS", "PROBE_SAMPLE", "auc_from_histograms", "scan_units"]
