"""Co-clustering of units × words: "memory chips" linked to "word clouds" (RNNVis).

The expected-response matrix s (units, words) is treated as a weighted bipartite graph between
units and words and partitioned by bipartite spectral co-clustering (Dhillon 2001, the algorithm of
scikit-learn's `SpectralCoclustering`) into k biclusters, each a group of units paired with a group
of words. The SVD is computed once and shared by every k tried (k-means runs per k), which makes
choosing k about as cheap as one fit; a test checks that the recovered planted blocks are at
least as good as scikit-learn's.

Sign: spectral co-clustering needs non-negative weights. We cluster on the magnitude |s| — a
unit that reacts strongly to a word, in either direction, is linked to it — and keep the sign for
drawing: every link between a unit cluster and a word cluster carries its mean signed response
and its positive and negative parts separately. RNNVis instead shifted negative responses
silently into the positive range, which turns "strongly negative" into "weak" and lets the
shift, not the data, decide the clusters; we do not.

Partition: k-means on the k-1 leading non-trivial singular vectors of the scaled matrix (the
spectral-clustering rule of Ng, Jordan and Weiss), not on ceil(log2 k) of them as Dhillon and
scikit-learn do: on scikit-learn's planted biclusters (300 x 300, k = 2..10, noise 5 and 10) this
recovers every planted partition exactly (consensus 1.0), where log2 k vectors reach 0.39-1.0 for
k >= 5 (`benchmarks/bench_analysis.py` measures it).

Choice of k: by the spectral gap. The scaled matrix D1^-1/2 |s| D2^-1/2 of k planted blocks has k
singular values standing clear of the bulk that noise makes (the first is always 1); so k is the
largest k in `k_range` with sigma_k >= GAP * sigma_(k+1) (1-based). GAP = 1.2 is in the middle of
the range 1.15-1.25 that finds the planted k in all 54 cases of the grid of issue 15 (300 x 300,
k = 5..10, noise 1/5/10, seeds 0-2) and in all 270 held-out cases below noise 20 (shapes 300 x 300,
128 x 400, 64 x 400, 400 x 200, 100 x 1000; k = 2..10; seeds 3-4). Barber's bipartite modularity
(Phys. Rev. E 76, 2007), which this module chose k by before, found 27 of the 54: it prefers
merging a small block into a large one. When no k in the range has such a gap (no block structure:
common for real expected responses, whose spectrum decays smoothly), k falls back to the argmax of
the modularity Q = (1/m) sum_ij (A_ij - r_i c_j / m) [i, j in the same bicluster] over `k_range`;
`k_rule` says which rule chose. Both curves are returned (`k_gaps`, `k_scores`).

Every cluster has at least one unit and one word: a k-means cluster left with only units or only
words is dissolved and its members join the nearest remaining centroid (so `n_clusters` can be below
the k asked for). Every fit is seeded, so the same input and seed give the same result.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from rnnvis.errors import RnnvisError


def bipartite_modularity(weights: np.ndarray, row_labels: np.ndarray, col_labels: np.ndarray) -> float:
    """Barber's modularity of a bicluster partition of a non-negative matrix (rows, cols)."""
    a = np.asarray(weights, dtype=np.float64)
    m = a.sum()
    if m <= 0:
        return 0.0
    r, c = a.sum(1), a.sum(0)  # (rows,), (cols,)
    q = 0.0
    for lab in np.union1d(row_labels, col_labels):
        ri, cj = row_labels == lab, col_labels == lab
        q += a[np.ix_(ri, cj)].sum() / m - r[ri].sum() * c[cj].sum() / (m * m)
    return float(q)


def block_means(s: np.ndarray, row_labels: np.ndarray, col_labels: np.ndarray, k: int) -> np.ndarray:
    """(k, k) mean of s over each block [row cluster a, column cluster b]; 0 for empty blocks."""
    rl = np.eye(k)[row_labels]  # (rows, k) one-hot
    cl = np.eye(k)[col_labels]  # (cols, k)
    sums = rl.T @ s @ cl  # (k, k)
    sizes = np.outer(rl.sum(0), cl.sum(0))
    return np.divide(sums, sizes, out=np.zeros_like(sums), where=sizes > 0)


def _magnitude(s: np.ndarray) -> np.ndarray:
    """|s| with a tiny floor so that no unit or word has zero total weight (the scaling divides by it)."""
    a = np.abs(s)
    scale = a.max() if a.size and a.max() > 0 else 1.0
    return a + 1e-9 * scale


GAP = 1.2  # sigma_k / sigma_(k+1) at least this: k singular values stand clear of the noise bulk


def _scaled_svd(magnitude: np.ndarray, n_vectors: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dhillon's bipartite spectral embedding: the singular vectors 2..n_vectors+1 of D1^-1/2 A D2^-1/2,
    rescaled by D^-1/2, for rows (rows, n_vectors) and columns (cols, n_vectors), and the singular
    values sigma_1..sigma_(n_vectors+1) of that matrix (sigma_1 = 1)."""
    from sklearn.utils.extmath import randomized_svd

    row_d = 1.0 / np.sqrt(magnitude.sum(axis=1))
    col_d = 1.0 / np.sqrt(magnitude.sum(axis=0))
    normalized = row_d[:, None] * magnitude * col_d[None, :]
    u, sv, vt = randomized_svd(normalized, n_vectors + 1, random_state=seed)
    return row_d[:, None] * u[:, 1:], col_d[:, None] * vt.T[:, 1:], sv  # the first pair is trivial


def _n_vectors(k: int) -> int:
    """Non-trivial singular vectors used for k clusters: k - 1 (Ng, Jordan and Weiss)."""
    return max(1, k - 1)


def _kmeans_labels(rows: np.ndarray, cols: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """k-means on the stacked embedding; a cluster left with only rows or only columns is dissolved,
    its members joining the nearest remaining centroid, so that every bicluster has both."""
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    z = np.vstack([rows, cols])
    n = rows.shape[0]
    with warnings.catch_warnings():
        # k above the structure present makes k-means find fewer distinct clusters; the score handles it
        warnings.simplefilter("ignore", ConvergenceWarning)
        km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(z)
    labels, centers = km.labels_.astype(np.int64), km.cluster_centers_
    keep = np.intersect1d(labels[:n], labels[n:])  # clusters with both rows and columns
    if keep.size and keep.size < np.unique(labels).size:
        lost = ~np.isin(labels, keep)
        d = ((z[lost, None, :] - centers[None, keep, :]) ** 2).sum(-1)  # (lost points, kept clusters)
        labels[lost] = keep[d.argmin(1)]
    return compact_labels(labels[:n], labels[n:])


def fit_coclusterings(magnitude: np.ndarray, ks: Sequence[int], seed: int = 0
                      ) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """([(row labels (rows,), column labels (cols,))] of a seeded spectral co-clustering into each k,
    singular values sigma_1..sigma_(max k) of the scaled matrix, plus sigma_(max k + 1) when it exists).

    Dhillon's algorithm (scale, SVD, k-means on the stacked singular vectors) with k - 1 vectors per
    k, and one SVD shared by every k: choosing k among 2..10 costs one decomposition and nine k-means
    runs. BLAS runs on one thread, which is faster for these shapes than two threads fighting over
    two cores.
    """
    from threadpoolctl import threadpool_limits

    out = []
    top = max(ks)
    n_vec = min(top, min(magnitude.shape) - 1)  # sigma_(top+1) too, for the gap at k = top
    with threadpool_limits(1):
        rows, cols, sv = _scaled_svd(magnitude, max(1, n_vec), seed)
        for k in ks:
            n = _n_vectors(k)
            out.append(_kmeans_labels(rows[:, :n], cols[:, :n], k, seed))
    return out, sv


def fit_coclustering(magnitude: np.ndarray, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(row labels (rows,), column labels (cols,)) of a seeded spectral co-clustering into k."""
    return fit_coclusterings(magnitude, [k], seed)[0][0]


def spectral_gaps(sv: np.ndarray, ks: Sequence[int]) -> np.ndarray:
    """sigma_k / sigma_(k+1) for each k (1-based singular values, descending); NaN where sigma_(k+1) is
    not known; inf after an exactly zero singular value."""
    out = np.full(len(ks), np.nan)
    for i, k in enumerate(ks):
        if 1 <= k < sv.size:
            out[i] = sv[k - 1] / sv[k] if sv[k] > 0 else np.inf
    return out


def choose_k(ks: Sequence[int], gaps: np.ndarray, scores: np.ndarray) -> tuple[int, str]:
    """(index into ks, rule): the largest k whose gap reaches GAP, else the modularity argmax (the
    smallest k within 1e-9 of the best: a larger k that leaves clusters empty repeats a partition)."""
    ok = np.flatnonzero(np.nan_to_num(gaps, nan=0.0) >= GAP)
    if ok.size:
        return int(ok[-1]), "spectral gap"
    return int(np.flatnonzero(scores >= scores.max() - 1e-9)[0]), "bipartite modularity (no spectral gap)"


def compact_labels(row_labels: np.ndarray, col_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Renumber bicluster labels 0..k'-1, dropping clusters with neither rows nor columns."""
    used, inv = np.unique(np.concatenate([row_labels, col_labels]), return_inverse=True)
    return inv[:row_labels.size], inv[row_labels.size:]


@dataclass(frozen=True)
class Coclusters:
    """Units and words partitioned into k paired clusters, with signed links for drawing."""

    n_clusters: int
    unit_labels: np.ndarray  # (units,) cluster of each unit, 0..k-1
    word_labels: np.ndarray  # (words,) cluster of each word, 0..k-1
    unit_clusters: tuple[np.ndarray, ...]  # k arrays of unit indices ("memory chips")
    word_clusters: tuple[np.ndarray, ...]  # k arrays of word indices ("word clouds"), heaviest first
    word_weights: np.ndarray  # (words,) mean |s| of each word to the units of its own cluster
    link: np.ndarray  # (k, k) mean signed s over block [unit cluster a, word cluster b]
    link_pos: np.ndarray  # (k, k) mean of max(s, 0) over the block
    link_neg: np.ndarray  # (k, k) mean of min(s, 0) over the block (≤ 0); link = link_pos + link_neg
    k_values: np.ndarray  # (n,) the k tried (just [k] when k was given)
    k_scores: np.ndarray  # (n,) bipartite modularity of each
    k_gaps: np.ndarray | None = None  # (n,) spectral gap sigma_k / sigma_(k+1) of each (NaN: unknown)
    k_rule: str = "given"  # how k was chosen: "given", "spectral gap" or the modularity fallback
    seed: int = 0
    words: list[str] | None = None  # (words,) the word strings, when given

    def word_cloud(self, cluster: int) -> list[tuple[int | str, float]]:
        """The words of one cluster with their weights, heaviest first (strings when known)."""
        if not 0 <= cluster < self.n_clusters:
            raise RnnvisError(f"cluster {cluster} out of range", f"choose 0..{self.n_clusters - 1}")
        idx = self.word_clusters[cluster]
        name = (lambda i: self.words[i]) if self.words is not None else int  # noqa: E731
        return [(name(i), float(self.word_weights[i])) for i in idx]

    def biclusters(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows (k, units), cols (k, words)) boolean indicators, as sklearn's `biclusters_`."""
        ks = np.arange(self.n_clusters)[:, None]
        return self.unit_labels[None, :] == ks, self.word_labels[None, :] == ks


def cocluster(s: np.ndarray, k: int | None = None, k_range: Sequence[int] = range(2, 11),
              seed: int = 0, words: Sequence[str] | None = None) -> Coclusters:
    """Co-cluster a response matrix s (units, words) on |s|; k chosen by the spectral gap (else by
    bipartite modularity) unless given.

    For an `ExpectedResponse` r, pass `r.mean.T` and `words=r.words`.
    """
    s = np.asarray(s, dtype=np.float64)
    if s.ndim != 2 or not np.isfinite(s).all():
        raise RnnvisError(f"response matrix must be finite and 2-D (units, words), got shape {s.shape}",
                          "drop NaN rows (words never seen) before co-clustering")
    if words is not None and len(words) != s.shape[1]:
        raise RnnvisError(f"{len(words)} words for a matrix of {s.shape[1]} columns", "pass s as (units, words)")
    kmax = min(s.shape)
    a = _magnitude(s)
    if k is not None:
        if not 1 <= k <= kmax:
            raise RnnvisError(f"k={k} clusters for a {s.shape} matrix", f"choose k in 1..{kmax}")
        candidates = [int(k)]
    else:
        candidates = sorted({int(x) for x in k_range if 2 <= x <= kmax})
        if not candidates:
            raise RnnvisError(f"no k in {list(k_range)} fits a {s.shape} matrix", f"use k between 2 and {kmax}")
    multi = [kk for kk in candidates if kk > 1]
    fitted, sv = fit_coclusterings(a, multi, seed) if multi else ([], np.ones(1))
    fitted = dict(zip(multi, fitted))
    fits, scores = [], []
    for kk in candidates:
        rl, cl = fitted.get(kk, (np.zeros(s.shape[0], np.int64), np.zeros(s.shape[1], np.int64)))
        fits.append((rl, cl))
        scores.append(bipartite_modularity(a, rl, cl))
    scores_arr, gaps = np.array(scores), spectral_gaps(sv, candidates)
    best, rule = (0, "given") if k is not None else choose_k(candidates, gaps, scores_arr)
    rl, cl = fits[best]
    kk = int(max(rl.max(initial=-1), cl.max(initial=-1))) + 1
    abs_s = np.abs(s)
    # mean |s| of each word to the units of its own cluster
    unit_onehot = np.eye(kk)[rl]  # (units, k)
    sizes = unit_onehot.sum(0)  # (k,)
    per_word = np.divide(unit_onehot.T @ abs_s, sizes[:, None], out=np.zeros((kk, s.shape[1])),
                         where=sizes[:, None] > 0)  # (k, words)
    weights = per_word[cl, np.arange(s.shape[1])]  # (words,)
    word_clusters = tuple(np.flatnonzero(cl == c)[np.argsort(-weights[cl == c], kind="stable")] for c in range(kk))
    return Coclusters(
        n_clusters=kk, unit_labels=rl, word_labels=cl,
        unit_clusters=tuple(np.flatnonzero(rl == c) for c in range(kk)), word_clusters=word_clusters,
        word_weights=weights, link=block_means(s, rl, cl, kk),
        link_pos=block_means(np.maximum(s, 0), rl, cl, kk), link_neg=block_means(np.minimum(s, 0), rl, cl, kk),
        k_values=np.array(candidates), k_scores=scores_arr, k_gaps=gaps, k_rule=rule, seed=int(seed),
        words=list(words) if words is not None else None)
