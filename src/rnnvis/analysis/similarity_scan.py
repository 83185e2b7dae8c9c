"""Layer similarity and unit matching of two models over a whole corpus, from streamed moments.

Linear CKA, SVCCA and Pearson correlations of units only need the column means and the centred
cross-product (Gram) matrix of the representations: with Zc the centred (tokens, units) values of
every scanned stream side by side, C = Zcᵀ Zc (units, units) holds Xcᵀ Xc, Ycᵀ Yc and Ycᵀ Xc for
every pair of streams. `moments_scan` folds C over token chunks (shifted by the first chunk's
mean for numerical stability; float64), so memory is units² whatever the number of tokens, and:

- CKA = ||C_ab||²_F / (||C_aa||_F ||C_bb||_F), exactly as `linear_cka`;
- SVCCA: with C_aa = V_a S_a² V_aᵀ, the kept orthonormal basis of `svcca` is U_a = Xc V_a S_a⁻¹,
  so U_aᵀ U_b = S_a⁻¹ V_aᵀ C_ab V_b S_b⁻¹ over the kept directions; its singular values are the
  canonical correlations (as `svcca_correlations`, up to rounding);
- correlation of unit i of a with unit j of b = C_ab[i, j] / sqrt(C_aa[i, i] C_bb[j, j]).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np

from rnnvis.analysis.chunks import TokenChunk, check_chunks
from rnnvis.analysis.matching import UnitMatching, assign_units
from rnnvis.analysis.similarity import METHODS, LayerSimilarity
from rnnvis.errors import RnnvisError

BLOCK = 16_384  # rows per Gram update (bounds the float64 temporaries)


@dataclass(frozen=True)
class Moments:
    """Count, means and centred cross-products of streams scanned side by side."""

    names: tuple[str, ...]  # streams, in column order
    widths: tuple[int, ...]  # units of each stream
    n: int  # tokens
    mean: np.ndarray  # (units,) all streams' units, in order
    cov: np.ndarray  # (units, units) Σ (z - mean)(z - mean)ᵀ, not divided by n

    def cols(self, name: str) -> slice:
        if name not in self.names:
            raise RnnvisError(f"stream {name!r} was not scanned", f"choose one of {self.names}")
        i = self.names.index(name)
        a = int(sum(self.widths[:i]))
        return slice(a, a + self.widths[i])

    def block(self, a: str, b: str) -> np.ndarray:
        """(units_a, units_b) centred cross-products of two scanned streams."""
        return self.cov[self.cols(a), self.cols(b)]


def moments_scan(chunks: Iterable[TokenChunk], names: Sequence[str] | None = None,
                 progress: Callable[[int], None] | None = None) -> Moments:
    """Fold the moments of the chunks' streams (`names`, default all, in chunk order) over every token."""
    shift = gram = total = None
    n, widths = 0, ()
    for ch in check_chunks(chunks):
        if names is None:
            names = tuple(ch.streams)
        z = np.concatenate([np.asarray(ch.streams[s], dtype=np.float64) for s in names], axis=1) \
            if len(ch) else np.zeros((0, 0))
        if gram is None:
            if not len(ch):
                continue
            widths = tuple(int(ch.streams[s].shape[1]) for s in names)
            shift = z.mean(0)
            gram = np.zeros((z.shape[1], z.shape[1]))
            total = np.zeros(z.shape[1])
        if not np.all(np.isfinite(z)):
            raise RnnvisError(f"non-finite values in tokens [{ch.start}, {ch.stop})", "check the recording")
        for r in range(0, z.shape[0], BLOCK):
            d = z[r:r + BLOCK] - shift
            gram += d.T @ d
            total += d.sum(0)
        n += len(ch)
        if progress is not None:
            progress(ch.stop)
    if gram is None or n < 2:
        raise RnnvisError("the similarity needs at least 2 tokens", "compare recordings that share tokens")
    m = total / n  # mean of the shifted values
    return Moments(tuple(names), widths, n, shift + m, gram - n * np.outer(m, m))


def cka_moments(m: Moments, a: str, b: str) -> float:
    """Linear CKA of two scanned streams (`linear_cka` on all the tokens)."""
    den = np.linalg.norm(m.block(a, a)) * np.linalg.norm(m.block(b, b))
    return float(np.linalg.norm(m.block(b, a)) ** 2 / den) if den > 0 else 0.0


def _kept(c: np.ndarray, keep: float) -> tuple[np.ndarray, np.ndarray]:
    """(V (units, d), S (d,)) top singular directions of the centred data explaining `keep` of its variance."""
    var, v = np.linalg.eigh((c + c.T) / 2)
    var, v = np.clip(var[::-1], 0, None), v[:, ::-1]
    if var.sum() <= 0:
        return v[:, :0], var[:0]
    d = int(np.searchsorted(np.cumsum(var) / var.sum(), keep - 1e-12) + 1)
    d = min(d, int((var > var[0] * 1e-12).sum()))
    return v[:, :d], np.sqrt(var[:d])


def svcca_moments(m: Moments, a: str, b: str, keep: float = 0.99) -> float:
    """Mean SVCCA correlation of two scanned streams (`svcca` on all the tokens)."""
    if not 0 < keep <= 1:
        raise RnnvisError(f"keep={keep} must be in (0, 1]", "use e.g. 0.99")
    va, sa = _kept(m.block(a, a), keep)
    vb, sb = _kept(m.block(b, b), keep)
    if sa.size == 0 or sb.size == 0:
        return 0.0
    t = (va.T @ m.block(a, b) @ vb) / sa[:, None] / sb[None, :]
    return float(np.clip(np.linalg.svd(t, compute_uv=False), 0.0, 1.0).mean())


def layer_similarity_moments(m: Moments, names_a: Sequence[str], names_b: Sequence[str], method: str = "cka",
                             keep: float = 0.99) -> LayerSimilarity:
    """`layer_similarity` of streams of model A and of model B scanned together."""
    if method not in METHODS:
        raise RnnvisError(f"unknown similarity method {method!r}", f"use one of {METHODS}")
    if not names_a or not names_b:
        raise RnnvisError("both models need at least one layer", "scan a stream of each model")
    fn = cka_moments if method == "cka" else (lambda mm, x, y: svcca_moments(mm, x, y, keep))
    return LayerSimilarity(method, tuple(names_a), tuple(names_b),
                           np.array([[fn(m, x, y) for y in names_b] for x in names_a]))


def correlation_moments(m: Moments, a: str, b: str) -> np.ndarray:
    """(units_a, units_b) Pearson correlations of the units of two scanned streams (0 for constant units)."""
    sa = np.sqrt(np.clip(np.diag(m.block(a, a)), 0, None))
    sb = np.sqrt(np.clip(np.diag(m.block(b, b)), 0, None))
    den = np.outer(sa, sb)
    return np.clip(np.divide(m.block(a, b), den, out=np.zeros_like(den), where=den > 0), -1.0, 1.0)


def match_units_moments(m: Moments, a: str, b: str, absolute: bool = False) -> UnitMatching:
    """`match_units` of two scanned streams, from their correlations over all the tokens."""
    return assign_units(correlation_moments(m, a, b), absolute)


__all__ = ["Moments", "cka_moments", "correlation_moments", "layer_similarity_moments", "match_units_moments",
           "moments_scan", "svcca_moments"]
