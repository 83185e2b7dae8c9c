"""How alike are two models? Representation similarity of layers and per-token loss differences.

Linear CKA (Kornblith et al. 2019): with column-centred X (tokens, a) and Y (tokens, b),
CKA = ||Yᵀ X||²_F / (||Xᵀ X||_F ||Yᵀ Y||_F). It is 1 for identical representations, invariant
to orthogonal transforms and isotropic scaling of either side, and near 0 for unrelated ones
(with tokens ≫ units).

SVCCA (Raghu et al. 2017): centre, keep the top singular directions of each side that explain
`keep` (99%) of its variance, then CCA between the two reduced subspaces; the canonical
correlations are the singular values of U_xᵀ U_y (the orthonormal bases of the kept directions),
and SVCCA is their mean. CCA is invariant to any invertible linear map, so it needs many more
tokens than kept directions to mean anything.

Both representations of a pair must be recorded on the same tokens, in the same order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from rnnvis.errors import RnnvisError

METHODS = ("cka", "svcca")


def _centred(x: np.ndarray, name: str = "representation") -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] < 2:
        raise RnnvisError(f"{name} must be (tokens, units) with at least 2 tokens, got {a.shape}",
                          "pass recorded states of one layer, one row per token")
    if not np.all(np.isfinite(a)):
        raise RnnvisError(f"{name} has non-finite values", "check the recording for NaN or inf")
    return a - a.mean(0)


def _same_tokens(x: np.ndarray, y: np.ndarray) -> None:
    if x.shape[0] != y.shape[0]:
        raise RnnvisError(f"the representations cover {x.shape[0]} and {y.shape[0]} tokens",
                          "record both models on the same tokens")


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of x (tokens, a) and y (tokens, b); 0 when either side is constant."""
    xc, yc = _centred(x), _centred(y)
    _same_tokens(xc, yc)
    cross = np.linalg.norm(yc.T @ xc) ** 2
    den = np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc)
    return float(cross / den) if den > 0 else 0.0


def _kept_basis(xc: np.ndarray, keep: float) -> np.ndarray:
    """(tokens, d) orthonormal basis of the top singular directions explaining `keep` of the variance."""
    u, s, _ = np.linalg.svd(xc, full_matrices=False)
    var = s ** 2
    if var.sum() <= 0:
        return u[:, :0]
    d = int(np.searchsorted(np.cumsum(var) / var.sum(), keep - 1e-12) + 1)
    return u[:, :min(d, len(s))]


def svcca_correlations(x: np.ndarray, y: np.ndarray, keep: float = 0.99) -> np.ndarray:
    """Canonical correlations (min(d_x, d_y),), descending, after SVD reduction to `keep` variance."""
    if not 0 < keep <= 1:
        raise RnnvisError(f"keep={keep} must be in (0, 1]", "use e.g. 0.99")
    xc, yc = _centred(x), _centred(y)
    _same_tokens(xc, yc)
    ux, uy = _kept_basis(xc, keep), _kept_basis(yc, keep)
    if ux.shape[1] == 0 or uy.shape[1] == 0:
        return np.zeros(0)
    return np.clip(np.linalg.svd(ux.T @ uy, compute_uv=False), 0.0, 1.0)


def svcca(x: np.ndarray, y: np.ndarray, keep: float = 0.99) -> float:
    """Mean SVCCA correlation of x (tokens, a) and y (tokens, b); 0 when either side is constant."""
    c = svcca_correlations(x, y, keep)
    return float(c.mean()) if c.size else 0.0


@dataclass(frozen=True)
class LayerSimilarity:
    """Similarity of every layer of model A to every layer of model B."""

    method: str  # cka | svcca
    names_a: tuple[str, ...]  # (layers_a,)
    names_b: tuple[str, ...]  # (layers_b,)
    matrix: np.ndarray  # (layers_a, layers_b)

    def value(self, a: str, b: str) -> float:
        if a not in self.names_a or b not in self.names_b:
            raise RnnvisError(f"no layer pair ({a!r}, {b!r})", f"choose from {self.names_a} × {self.names_b}")
        return float(self.matrix[self.names_a.index(a), self.names_b.index(b)])


def layer_similarity(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], method: str = "cka",
                     keep: float = 0.99) -> LayerSimilarity:
    """CKA or SVCCA for every pair of layers {name: (tokens, units)} of two models (same tokens)."""
    if method not in METHODS:
        raise RnnvisError(f"unknown similarity method {method!r}", f"use one of {METHODS}")
    if not a or not b:
        raise RnnvisError("both models need at least one layer", "pass {layer name: (tokens, units)} for each")
    fn = linear_cka if method == "cka" else (lambda x, y: svcca(x, y, keep))
    m = np.array([[fn(xa, xb) for xb in b.values()] for xa in a.values()])
    return LayerSimilarity(method, tuple(a), tuple(b), m)


@dataclass(frozen=True)
class LossDifference:
    """Per-group comparison of the per-token losses of model A and model B (diff = A - B, nats)."""

    groups: tuple[str, ...]  # (groups,) sorted by count, descending
    count: np.ndarray  # (groups,) tokens in the group
    mean_diff: np.ndarray  # (groups,) mean loss_a - loss_b: negative where A is better
    a_wins: np.ndarray  # (groups,) share of the group's tokens where loss_a < loss_b
    share: np.ndarray  # (groups,) share of all tokens in the group
    total_mean_diff: float
    total_a_wins: float

    def row(self, group: str) -> dict:
        if group not in self.groups:
            raise RnnvisError(f"no group {group!r}", "choose one of the groups present in the data")
        i = self.groups.index(group)
        return {"group": group, "count": int(self.count[i]), "mean_diff": float(self.mean_diff[i]),
                "a_wins": float(self.a_wins[i]), "share": float(self.share[i])}


def loss_difference(loss_a: np.ndarray, loss_b: np.ndarray, groups: Sequence | np.ndarray,
                    min_count: int = 1) -> LossDifference:
    """Aggregate loss_a - loss_b (tokens,) by a group label per token (word, POS tag, error category)."""
    la = np.asarray(loss_a, dtype=np.float64).reshape(-1)
    lb = np.asarray(loss_b, dtype=np.float64).reshape(-1)
    g = np.asarray([str(x) for x in groups], dtype=object)
    if not la.size == lb.size == g.size or la.size == 0:
        raise RnnvisError(f"loss_a ({la.size}), loss_b ({lb.size}) and groups ({g.size}) must have one value "
                          "per token", "score both models on the same non-empty tokens")
    names, inv = np.unique(g, return_inverse=True)
    inv = inv.reshape(-1)
    diff = la - lb
    count = np.bincount(inv, minlength=names.size)
    mean = np.bincount(inv, weights=diff, minlength=names.size) / count
    wins = np.bincount(inv, weights=(la < lb).astype(np.float64), minlength=names.size) / count
    order = np.argsort(-count, kind="stable")  # names are sorted already: ties stay alphabetical
    order = order[count[order] >= min_count]
    return LossDifference(tuple(str(x) for x in names[order]), count[order], mean[order], wins[order],
                          count[order] / la.size, float(diff.mean()), float((la < lb).mean()))


__all__ = ["LayerSimilarity", "LossDifference", "layer_similarity", "linear_cka", "loss_difference", "svcca",
           "svcca_correlations"]
