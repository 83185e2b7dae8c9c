"""Which unit of model B plays the role of a unit of model A? And do two clusterings agree?

Unit matching: the Pearson correlation of every unit of A with every unit of B over the same
tokens gives a (units_a, units_b) matrix; the Hungarian algorithm
(`scipy.optimize.linear_sum_assignment`) picks the one-to-one pairing with the largest total
correlation (or total |correlation| with `absolute=True`, since a unit and its negation carry the
same information in a tanh layer). When the layer widths differ, min(units_a, units_b) pairs are
made and the rest stay unmatched. Match quality is the correlation of each matched pair and their
mean. A constant unit correlates 0 with everything.

Clustering correspondence: two labelings of the same items (e.g. the word clusters that the
co-clustering finds for two models over one vocabulary, or the unit clusters of two checkpoints of
one model) are compared by their contingency table and the adjusted Rand index (Hubert & Arabie
1985: 1 for identical partitions up to renaming, about 0 for independent ones), and their
clusters are paired one-to-one by the largest overlap.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from rnnvis.errors import RnnvisError


def correlation_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(units_a, units_b) Pearson correlation of the columns of a (tokens, units_a) and b (tokens, units_b)."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0] or x.shape[0] < 2:
        raise RnnvisError(f"activations {x.shape} and {y.shape} must be (tokens, units) over the same ≥ 2 tokens",
                          "record both models on the same tokens")
    x = x - x.mean(0)
    y = y - y.mean(0)
    sx, sy = np.linalg.norm(x, axis=0), np.linalg.norm(y, axis=0)  # (units_a,), (units_b,)
    x = np.divide(x, sx, out=np.zeros_like(x), where=sx > 0)
    y = np.divide(y, sy, out=np.zeros_like(y), where=sy > 0)
    return np.clip(x.T @ y, -1.0, 1.0)


@dataclass(frozen=True)
class UnitMatching:
    """One-to-one matching of the units of model A to the units of model B."""

    correlation: np.ndarray  # (units_a, units_b) full correlation matrix
    rows: np.ndarray  # (pairs,) unit of A, ascending
    cols: np.ndarray  # (pairs,) its matched unit of B
    matched: np.ndarray  # (pairs,) correlation of each matched pair (signed)
    mean: float  # mean matched correlation (of |correlation| when absolute)
    absolute: bool
    unmatched_a: np.ndarray  # (units_a - pairs,) units of A left without a partner
    unmatched_b: np.ndarray  # (units_b - pairs,)

    def partner_of(self, unit_a: int) -> int | None:
        """The unit of B matched to unit `unit_a` of A, or None."""
        hit = np.flatnonzero(self.rows == unit_a)
        return int(self.cols[hit[0]]) if hit.size else None


def match_units(a: np.ndarray, b: np.ndarray, absolute: bool = False) -> UnitMatching:
    """Hungarian matching of the units of a (tokens, units_a) to b (tokens, units_b) by correlation."""
    return assign_units(correlation_matrix(a, b), absolute)


def assign_units(c: np.ndarray, absolute: bool = False) -> UnitMatching:
    """Hungarian matching from a (units_a, units_b) correlation matrix (e.g. streamed moments)."""
    score = np.abs(c) if absolute else c
    rows, cols = linear_sum_assignment(score, maximize=True)
    matched = c[rows, cols]
    return UnitMatching(c, rows.astype(np.int64), cols.astype(np.int64), matched,
                        float(score[rows, cols].mean()) if rows.size else 0.0, absolute,
                        np.setdiff1d(np.arange(c.shape[0]), rows), np.setdiff1d(np.arange(c.shape[1]), cols))


def contingency_table(labels_a: np.ndarray, labels_b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clusters of a (ka,), clusters of b (kb,), counts (ka, kb)) of two labelings of the same items."""
    la = np.asarray(labels_a).reshape(-1)
    lb = np.asarray(labels_b).reshape(-1)
    if la.size != lb.size or la.size == 0:
        raise RnnvisError(f"the labelings have {la.size} and {lb.size} items",
                          "label the same non-empty list of items (e.g. the same words) in both")
    ua, ia = np.unique(la, return_inverse=True)
    ub, ib = np.unique(lb, return_inverse=True)
    table = np.zeros((ua.size, ub.size), dtype=np.int64)
    np.add.at(table, (ia.reshape(-1), ib.reshape(-1)), 1)
    return ua, ub, table


def _pairs(x: np.ndarray) -> np.ndarray | float:
    return x * (x - 1) / 2.0


def adjusted_rand_index(table: np.ndarray) -> float:
    """Adjusted Rand index from a contingency table (ka, kb); 1.0 when both partitions are trivial alike."""
    t = np.asarray(table, dtype=np.float64)
    n = t.sum()
    index = _pairs(t).sum()
    sa, sb = _pairs(t.sum(1)).sum(), _pairs(t.sum(0)).sum()
    expected = sa * sb / _pairs(n) if n > 1 else 0.0
    top = (sa + sb) / 2.0
    if top == expected:  # both partitions all-in-one or all-singletons
        return 1.0
    return float((index - expected) / (top - expected))


@dataclass(frozen=True)
class ClusterCorrespondence:
    """Agreement of two clusterings of the same items."""

    clusters_a: np.ndarray  # (ka,) cluster labels of A
    clusters_b: np.ndarray  # (kb,)
    contingency: np.ndarray  # (ka, kb) items in cluster i of A and j of B
    ari: float  # adjusted Rand index
    pairs: tuple[tuple[int, int, int], ...]  # (label a, label b, shared items), largest-overlap pairing


def cluster_correspondence(labels_a: np.ndarray, labels_b: np.ndarray) -> ClusterCorrespondence:
    """Contingency table, adjusted Rand index and one-to-one cluster pairing of two labelings (items,)."""
    ua, ub, table = contingency_table(labels_a, labels_b)
    rows, cols = linear_sum_assignment(table, maximize=True)
    pairs = tuple((ua[r].item(), ub[c].item(), int(table[r, c])) for r, c in zip(rows, cols))
    return ClusterCorrespondence(ua, ub, table, adjusted_rand_index(table), pairs)


__all__ = ["ClusterCorrespondence", "UnitMatching", "adjusted_rand_index", "cluster_correspondence",
           "contingency_table", "correlation_matrix", "match_units"]
