"""2-D maps of units and of hidden-state trajectories: PCA, t-SNE, and UMAP when installed.

- `project_units(responses (units, features))`: one point per unit, placed by its response
  profile (e.g. the expected response to each word), so units that respond alike land together.
- `project_trajectory(states (time, units))`: one point per time step of one sentence, the path
  its hidden state takes.
- `project(x (n, d))`: the shared engine.

Methods:
- "pca": centred SVD; coords are the scores on the top 2 principal axes (each axis's sign fixed
  so its largest loading is positive, for reproducible pictures); `explained_variance` (2,) is
  the fraction of the total variance each axis explains (0 for a missing axis when d == 1).
- "tsne": sklearn's TSNE, PCA-initialised and seeded (same seed, same input → same map); the
  perplexity is clipped to max(1, (n − 1)/3) (sklearn needs perplexity < n, and a perplexity
  near n makes every point everyone's neighbour, washing out clusters). No explained variance.
- "umap": umap-learn, seeded, with n_neighbors clipped to n − 1; a clear error when umap-learn
  is not installed (it is optional: `pip install umap-learn`).

Inputs need at least 3 rows and finite values.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from rnnvis.errors import RnnvisError

METHODS = ("pca", "tsne", "umap")


@dataclass(frozen=True)
class Projection:
    coords: np.ndarray  # (n, 2) float64 map coordinates, one row per input row
    method: str  # "pca", "tsne" or "umap"
    explained_variance: np.ndarray | None  # (2,) fraction of total variance per PCA axis; None otherwise
    labels: tuple[str, ...]  # (n,) one label per point (unit index, time step or token)


def _check(x: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise RnnvisError(f"{what} must be a 2-D array (rows, features), got shape {a.shape}",
                          "pass one row per point to place on the map")
    if a.shape[0] < 3:
        raise RnnvisError(f"{what} has {a.shape[0]} row(s); a 2-D projection needs at least 3",
                          "pass more units or a longer sentence")
    if a.shape[1] < 1:
        raise RnnvisError(f"{what} has no features", "pass at least one column per row")
    if not np.all(np.isfinite(a)):
        raise RnnvisError(f"{what} has non-finite values (NaN or inf)",
                          "drop or fill those rows, or check the recording")
    return a


def _labels(labels: Sequence | None, n: int) -> tuple[str, ...]:
    if labels is None:
        return tuple(str(i) for i in range(n))
    out = tuple(str(v) for v in labels)
    if len(out) != n:
        raise RnnvisError(f"{len(out)} labels for {n} points", "pass one label per row, or none")
    return out


def _pca(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c = a - a.mean(0)
    u, s, vt = np.linalg.svd(c, full_matrices=False)
    k = min(2, len(s))
    # sign convention: the largest-magnitude loading of each axis is positive
    signs = np.sign(vt[np.arange(k), np.abs(vt[:k]).argmax(1)])
    signs[signs == 0] = 1
    coords = np.zeros((a.shape[0], 2))
    coords[:, :k] = u[:, :k] * s[:k] * signs
    var = s ** 2
    ev = np.zeros(2)
    if var.sum() > 0:
        ev[:k] = var[:k] / var.sum()
    return coords, ev


def _tsne(a: np.ndarray, seed: int, perplexity: float) -> np.ndarray:
    from sklearn.manifold import TSNE

    n = a.shape[0]
    perp = float(min(perplexity, max(1.0, (n - 1) / 3)))  # < n, as sklearn needs; (n-1)/3 as openTSNE
    init = "pca" if a.shape[1] >= 2 else "random"
    return np.asarray(TSNE(n_components=2, perplexity=perp, init=init, random_state=seed).fit_transform(a),
                      dtype=np.float64)


def _umap(a: np.ndarray, seed: int, n_neighbors: int) -> np.ndarray:
    try:
        import umap  # type: ignore[import-not-found]
    except ImportError as exc:
        raise RnnvisError("method 'umap' needs the optional package umap-learn, which is not installed",
                          "install it with `pip install umap-learn`, or use method='pca' or 'tsne'") from exc
    nn = int(max(2, min(n_neighbors, a.shape[0] - 1)))
    return np.asarray(umap.UMAP(n_components=2, n_neighbors=nn, random_state=seed).fit_transform(a),
                      dtype=np.float64)


def project(x: np.ndarray, method: str = "pca", *, labels: Sequence | None = None, seed: int = 0,
            perplexity: float = 30.0, n_neighbors: int = 15, what: str = "input") -> Projection:
    """x (n, d) → a 2-D map of its n rows by `method` ("pca", "tsne" or "umap")."""
    if method not in METHODS:
        raise RnnvisError(f"unknown projection method {method!r}", f"use one of {', '.join(METHODS)}")
    if not perplexity > 0:
        raise RnnvisError(f"perplexity={perplexity!r} must be positive", "use e.g. 30")
    a = _check(x, what)
    labs = _labels(labels, a.shape[0])
    if method == "pca":
        coords, ev = _pca(a)
        return Projection(coords=coords, method=method, explained_variance=ev, labels=labs)
    coords = _tsne(a, seed, perplexity) if method == "tsne" else _umap(a, seed, n_neighbors)
    return Projection(coords=coords, method=method, explained_variance=None, labels=labs)


def project_units(responses: np.ndarray, method: str = "pca", *, labels: Sequence | None = None,
                  seed: int = 0, perplexity: float = 30.0, n_neighbors: int = 15) -> Projection:
    """responses (units, features) → one point per unit; labels default to the unit indices."""
    return project(responses, method, labels=labels, seed=seed, perplexity=perplexity,
                   n_neighbors=n_neighbors, what="unit responses (units, features)")


def project_trajectory(states: np.ndarray, method: str = "pca", *, tokens: Sequence | None = None,
                       seed: int = 0, perplexity: float = 30.0, n_neighbors: int = 15) -> Projection:
    """states (time, units) of one sentence → one point per step; labels are the tokens, else steps."""
    return project(states, method, labels=tokens, seed=seed, perplexity=perplexity,
                   n_neighbors=n_neighbors, what="hidden-state trajectory (time, units)")
