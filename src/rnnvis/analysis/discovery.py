"""Unit discovery: which units of which streams track which hypothesis about the tokens.

Every unit of every stream (tokens, units) is scored against each token annotation (tokens,):
- binary annotation: AUC of the unit's value as a detector of the annotated tokens, computed for
  all units at once from ranks (Mann–Whitney U; ties get average ranks, as `roc_auc_score`).
  Effect = AUC - 0.5, signed: > 0 the unit is higher on annotated tokens, < 0 lower.
- scalar annotation: Spearman ρ (default, robust to saturating units such as h = o·tanh(c)) or
  Pearson r with the annotation. Effect = the signed correlation.
- categorical annotation (strings, e.g. POS tags): one-vs-rest binary annotations "name=value".
Units are ranked by |effect| over all streams together. Tokens where a scalar annotation is NaN
are left out of its scores.

A linear probe per annotation and stream tells how much of the hypothesis the whole layer holds:
logistic regression (binary/categorical; held-out accuracy against the majority class) or ridge
regression (scalar; held-out R²), on standardised features, with a seeded split by document when
document ids are given (adjacent tokens are not independent), else by token.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
from scipy.stats import rankdata

from rnnvis.errors import RnnvisError


def auc_all_units(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(units,) ROC AUC of each column of values (tokens, units) for binary labels (tokens,)."""
    y = np.asarray(labels).astype(bool)
    n1 = int(y.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        raise RnnvisError("AUC needs both positive and negative tokens", "choose a text where the annotation varies")
    ranks = rankdata(np.asarray(values, dtype=np.float64), axis=0)  # (tokens, units) average ranks
    u = ranks[y].sum(0) - n1 * (n1 + 1) / 2.0
    return u / (n1 * n0)


def pearson_all_units(values: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(units,) Pearson r of each column with target (tokens,); 0 for constant columns."""
    x = np.asarray(values, dtype=np.float64)
    y = np.asarray(target, dtype=np.float64)
    xc = x - x.mean(0)
    yc = y - y.mean()
    den = np.sqrt((xc * xc).sum(0) * (yc @ yc))
    return np.divide(yc @ xc, den, out=np.zeros(x.shape[1]), where=den > 0)


def spearman_all_units(values: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(units,) Spearman ρ: Pearson r of average ranks."""
    return pearson_all_units(rankdata(values, axis=0), rankdata(target))


def annotation_kind(a: np.ndarray) -> str:
    """'binary' (bool or only 0/1), 'categorical' (strings/objects) or 'scalar'."""
    a = np.asarray(a)
    if a.dtype == bool:
        return "binary"
    if a.dtype.kind in "OUS":
        return "categorical"
    if a.dtype.kind == "f" and np.isnan(a).any():
        return "scalar"
    return "binary" if a.size and np.isin(a, (0, 1)).all() else "scalar"


@dataclass(frozen=True)
class UnitRanking:
    """All units of all streams ranked for one annotation, strongest |effect| first."""

    annotation: str
    kind: str  # "binary" or "scalar"
    metric: str  # "auc", "spearman" or "pearson"
    stream: np.ndarray  # (n,) stream name of each ranked unit
    unit: np.ndarray  # (n,) unit index within its stream
    score: np.ndarray  # (n,) the metric (AUC, or the correlation)
    effect: np.ndarray  # (n,) signed effect size: AUC - 0.5, or the correlation
    error: float = 0.0  # bound on |score - exact score| (histogram AUC of `scan_units`); 0 when exact
    tokens: int = 0  # tokens scored (0: not recorded)

    def top(self, k: int = 10) -> list[tuple[str, int, float]]:
        """The k strongest (stream, unit, effect)."""
        return [(str(s), int(u), float(e)) for s, u, e in zip(self.stream[:k], self.unit[:k], self.effect[:k])]

    def of_stream(self, stream: str) -> "UnitRanking":
        """The ranking restricted to one stream."""
        m = self.stream == stream
        return UnitRanking(self.annotation, self.kind, self.metric, self.stream[m], self.unit[m],
                           self.score[m], self.effect[m], self.error, self.tokens)


@dataclass(frozen=True)
class ProbeResult:
    """Held-out quality of a linear probe that reads an annotation from one stream."""

    annotation: str
    stream: str
    kind: str  # "binary", "categorical" or "scalar"
    metric: str  # "accuracy" or "r2"
    train_score: float
    test_score: float
    baseline: float  # majority-class accuracy, or 0.0 for R²
    n_train: int
    n_test: int


@dataclass(frozen=True)
class UnitDiscovery:
    """Rankings per (expanded) annotation and probes per (annotation, stream)."""

    rankings: dict[str, UnitRanking]
    probes: dict[tuple[str, str], ProbeResult] = field(default_factory=dict)

    def top(self, k: int = 5) -> dict[str, list[tuple[str, int, float]]]:
        """{annotation: the k strongest (stream, unit, effect)} — which units track which hypothesis."""
        return {name: r.top(k) for name, r in self.rankings.items()}


def rank_units(streams: Mapping[str, np.ndarray], annotation: np.ndarray, name: str = "annotation",
               method: str = "spearman") -> UnitRanking:
    """Rank every unit of every stream against one binary or scalar annotation."""
    if method not in ("spearman", "pearson"):
        raise RnnvisError(f"unknown correlation {method!r}", "use 'spearman' or 'pearson'")
    a = np.asarray(annotation)
    kind = annotation_kind(a)
    if kind == "categorical":
        raise RnnvisError(f"annotation {name!r} is categorical", "rank one-vs-rest, as discover_units does")
    keep = np.isfinite(a.astype(np.float64))
    names, units, scores = [], [], []
    for sname, v in streams.items():
        v = np.asarray(v)
        if v.ndim != 2 or v.shape[0] != a.shape[0]:
            raise RnnvisError(f"stream {sname!r} has shape {v.shape} for {a.shape[0]} annotated tokens",
                              "pass streams as (tokens, units) aligned with the annotation")
        vk, ak = v[keep], a[keep]
        if kind == "binary":
            sc = auc_all_units(vk, ak)
        else:
            sc = (spearman_all_units if method == "spearman" else pearson_all_units)(vk, ak)
        names.append(np.full(v.shape[1], sname, dtype=object))
        units.append(np.arange(v.shape[1]))
        scores.append(sc)
    if not names:
        raise RnnvisError("no streams given", "pass at least one (tokens, units) stream")
    score = np.concatenate(scores)
    effect = score - 0.5 if kind == "binary" else score
    order = np.argsort(-np.abs(effect), kind="stable")
    return UnitRanking(name, kind, "auc" if kind == "binary" else method, np.concatenate(names)[order],
                       np.concatenate(units)[order], score[order], effect[order])


def _split(n: int, groups: np.ndarray | None, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/test indices, by group when there are at least two groups."""
    from sklearn.model_selection import GroupShuffleSplit, ShuffleSplit

    idx = np.arange(n)
    if groups is not None and np.unique(groups).size >= 2:
        return next(GroupShuffleSplit(1, test_size=test_size, random_state=seed).split(idx, groups=groups))
    return next(ShuffleSplit(1, test_size=test_size, random_state=seed).split(idx))


def linear_probe(x: np.ndarray, y: np.ndarray, annotation: str = "annotation", stream: str = "stream",
                 doc_ids: np.ndarray | None = None, test_size: float = 0.25, seed: int = 0,
                 alpha: float = 1.0, c: float = 1.0) -> ProbeResult:
    """Fit a linear probe from features x (tokens, units) to an annotation y (tokens,), scored held out."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    kind = annotation_kind(y)
    keep = np.ones(y.shape[0], bool) if kind == "categorical" else np.isfinite(y.astype(np.float64))
    x, y = x[keep], y[keep]
    groups = None if doc_ids is None else np.asarray(doc_ids)[keep]
    tr, te = _split(y.shape[0], groups, test_size, seed)
    if kind == "scalar":
        model = make_pipeline(StandardScaler(), Ridge(alpha=alpha))
        model.fit(x[tr], y[tr].astype(np.float64))
        return ProbeResult(annotation, stream, kind, "r2", float(model.score(x[tr], y[tr])),
                           float(model.score(x[te], y[te])), 0.0, tr.size, te.size)
    if np.unique(y[tr]).size < 2:
        raise RnnvisError(f"annotation {annotation!r} has one class in the training split",
                          "use more text or a different seed")
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000))
    model.fit(x[tr], y[tr])
    values, counts = np.unique(y[tr], return_counts=True)
    baseline = float(np.mean(y[te] == values[np.argmax(counts)]))
    return ProbeResult(annotation, stream, kind, "accuracy", float(model.score(x[tr], y[tr])),
                       float(model.score(x[te], y[te])), baseline, tr.size, te.size)


def discover_units(streams: Mapping[str, np.ndarray], annotations: Mapping[str, np.ndarray],
                   method: str = "spearman", probe: bool = True, doc_ids: np.ndarray | None = None,
                   test_size: float = 0.25, seed: int = 0) -> UnitDiscovery:
    """Rank all units against every annotation (categorical ones one-vs-rest) and probe each stream."""
    rankings: dict[str, UnitRanking] = {}
    probes: dict[tuple[str, str], ProbeResult] = {}
    for name, a in annotations.items():
        a = np.asarray(a)
        if annotation_kind(a) == "categorical":
            if np.unique(a).size < 2:
                continue
            for value in np.unique(a):
                sub = f"{name}={value}"
                if 0 < (a == value).sum() < a.size:
                    rankings[sub] = rank_units(streams, a == value, sub, method)
        elif np.nanstd(a.astype(np.float64)) > 0:
            rankings[name] = rank_units(streams, a, name, method)
        else:
            continue
        if probe:
            for sname, v in streams.items():
                probes[(name, sname)] = linear_probe(v, a, name, sname, doc_ids, test_size, seed)
    return UnitDiscovery(rankings, probes)
