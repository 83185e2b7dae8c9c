"""Sentence glyphs (RNNVis): how each unit cluster's memory evolves along one sentence.

For every token t and unit cluster c (e.g. the "memory chips" of `cocluster`):
- pos[t, c]: sum of the positive values of h_t over the cluster's units,
- neg[t, c]: sum of the negative values (≤ 0),
- dpos, dneg: their change from the previous token (the first token against the initial state),
- kept[t, c]: the share of the previous state kept, in [0, 1].

"Kept" is defined as:
- with an LSTM forget gate f (time, units): the mean of f_t over the cluster's units — the
  fraction of the previous cell state the gate lets through;
- otherwise (RNN, GRU, or h alone): 1 - Σ|Δh| / Σ(|h_{t-1}| + |Δh|) over the cluster's units,
  with Δh = h_t - h_{t-1}. It is 1 when nothing changed and 0 when the previous state was zero
  or the change dwarfs it; a ratio of sums, so near-zero units do not dominate. 0/0 (both
  states zero) counts as fully kept (1).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnnvis.errors import RnnvisError


def cluster_sums(values: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """(time, k) sum of values (time, units) over the units of each cluster."""
    return values @ np.eye(k)[labels]


def kept_from_forget(forget: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """(time, k) mean forget gate over each cluster's units (NaN for an empty cluster)."""
    sizes = np.bincount(labels, minlength=k).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return cluster_sums(forget, labels, k) / sizes


def kept_from_change(h: np.ndarray, h_prev: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """(time, k) 1 - Σ|Δh| / Σ(|h_{t-1}| + |Δh|) over each cluster's units; 1 where both sums are 0."""
    change = np.abs(h - h_prev)
    num = cluster_sums(change, labels, k)
    den = cluster_sums(np.abs(h_prev) + change, labels, k)
    return 1.0 - np.divide(num, den, out=np.zeros_like(num), where=den > 0)


@dataclass(frozen=True)
class SentenceGlyphs:
    """Per token and unit cluster: positive/negative sums of h, their change, and the state kept."""

    pos: np.ndarray  # (time, k) sum of positive h over the cluster
    neg: np.ndarray  # (time, k) sum of negative h over the cluster (≤ 0)
    dpos: np.ndarray  # (time, k) pos_t - pos_{t-1}
    dneg: np.ndarray  # (time, k) neg_t - neg_{t-1}
    kept: np.ndarray  # (time, k) share of the previous state kept, in [0, 1]
    kept_from: str  # "forget" (mean LSTM forget gate) or "change" (1 - Σ|Δh| / Σ(|h_{t-1}| + |Δh|))
    sizes: np.ndarray  # (k,) units per cluster


def sentence_glyphs(h: np.ndarray, unit_labels: np.ndarray, forget: np.ndarray | None = None,
                    h0: np.ndarray | None = None, n_clusters: int | None = None) -> SentenceGlyphs:
    """Glyphs of one sentence: h (time, units), unit_labels (units,) in 0..k-1, optional forget gate
    (time, units) of an LSTM, optional initial state h0 (units,) (default zeros)."""
    h = np.asarray(h, dtype=np.float64)
    labels = np.asarray(unit_labels, dtype=np.int64)
    if h.ndim != 2 or labels.shape != (h.shape[1],):
        raise RnnvisError(f"h {h.shape} and unit_labels {labels.shape} do not match",
                          "pass h as (time, units) and one label per unit")
    if labels.size and labels.min() < 0:
        raise RnnvisError("negative unit labels", "give every unit a cluster in 0..k-1")
    k = int(labels.max(initial=-1)) + 1 if n_clusters is None else int(n_clusters)
    if labels.size and labels.max() >= k:
        raise RnnvisError(f"unit labels go up to {labels.max()} but n_clusters={k}", "raise n_clusters")
    prev = np.zeros(h.shape[1]) if h0 is None else np.asarray(h0, dtype=np.float64)
    h_prev = np.vstack([prev[None, :], h[:-1]])  # (time, units)
    pos = cluster_sums(np.maximum(h, 0), labels, k)
    neg = cluster_sums(np.minimum(h, 0), labels, k)
    pos_prev = cluster_sums(np.maximum(h_prev, 0), labels, k)
    neg_prev = cluster_sums(np.minimum(h_prev, 0), labels, k)
    if forget is not None:
        forget = np.asarray(forget, dtype=np.float64)
        if forget.shape != h.shape:
            raise RnnvisError(f"forget gate {forget.shape} does not match h {h.shape}",
                              "pass the same layer's gate.f stream for the same sentence")
        kept, how = kept_from_forget(forget, labels, k), "forget"
    else:
        kept, how = kept_from_change(h, h_prev, labels, k), "change"
    return SentenceGlyphs(pos, neg, pos - pos_prev, neg - neg_prev, kept, how,
                          np.bincount(labels, minlength=k))
