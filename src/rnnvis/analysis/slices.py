"""Error slices of a sequence classifier: where does it fail?

The examples are cut into slices along several families, each a set of (possibly overlapping,
for `lexical`) subsets of the examples, and each slice gets its count, accuracy and error rate:

- ``length``: token count buckets, by upper edges (default 10, 20, 40: "1-10", "11-20", "21-40",
  ">40");
- ``negation``: "with" / "without" a negation word (not, no, never, n't, ...; see
  `rnnvis.analysis.annotations.is_negation`) — Li et al. (2016) probe these;
- ``intensifier``: "with" / "without" an intensifier (very, really, extremely, ...);
- ``contrast``: "with" / "without" a contrastive conjunction (but, though, although, however, yet);
- ``gold``: one slice per gold label;
- ``confidence``: buckets of the top class probability, by upper edges (default 0.5, 0.7, 0.9).

Words are matched case-insensitively after stripping surrounding punctuation. The misclassified
examples are listed with their tokens, gold and predicted label, confidence and, when given,
their per-token saliency (e.g. |∂S_c/∂e| from the saliency analysis).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from rnnvis.analysis.annotations import is_negation
from rnnvis.analysis.metrics import check_probs
from rnnvis.errors import RnnvisError

INTENSIFIERS = frozenset({"very", "really", "extremely", "so", "too", "quite", "absolutely", "incredibly",
                          "totally", "highly", "completely", "utterly", "truly", "remarkably", "terribly",
                          "awfully", "exceptionally", "particularly", "especially", "super"})
CONTRASTIVE = frozenset({"but", "though", "although", "however", "yet"})
FAMILIES = ("length", "negation", "intensifier", "contrast", "gold", "confidence")
_STRIP = ".,;:!?\"'()[]{}`"


@dataclass(frozen=True)
class Slice:
    """One subset of the examples."""

    family: str
    name: str
    count: int
    correct: int
    accuracy: float  # nan when empty
    error_rate: float  # 1 - accuracy; nan when empty
    indices: np.ndarray  # (count,) example indices


@dataclass(frozen=True)
class Misclassified:
    """One wrongly classified example."""

    index: int
    tokens: tuple[str, ...]
    label: str
    predicted: str
    confidence: float  # probability of the predicted class
    p_label: float  # probability given to the gold class
    saliency: np.ndarray | None  # (len(tokens),) per-token saliency when given


@dataclass(frozen=True)
class ErrorSlices:
    """Slices and misclassified examples of a classifier."""

    n: int
    accuracy: float
    slices: tuple[Slice, ...]  # grouped by family, in FAMILIES order
    errors: tuple[Misclassified, ...]  # most confident mistakes first

    def family(self, family: str) -> tuple[Slice, ...]:
        return tuple(s for s in self.slices if s.family == family)

    def get(self, family: str, name: str) -> Slice:
        for s in self.slices:
            if s.family == family and s.name == name:
                return s
        raise RnnvisError(f"no slice {family}/{name}",
                          f"choose one of {[f'{s.family}/{s.name}' for s in self.slices]}")


def _norm(token: str) -> str:
    return token.lower().strip(_STRIP)


def _has(tokens: Sequence[Sequence[str]], words: frozenset[str]) -> np.ndarray:
    return np.array([any(_norm(t) in words for t in toks) for toks in tokens], dtype=bool)


def has_negation(tokens: Sequence[Sequence[str]]) -> np.ndarray:
    """(n,) bool: the example contains a negation word."""
    return np.array([any(is_negation(_norm(t)) for t in toks if _norm(t)) for toks in tokens], dtype=bool)


def _bucket_names(edges: Sequence[float], integer: bool) -> list[str]:
    names, lo = [], None
    for e in edges:
        if integer:
            names.append(f"{1 if lo is None else int(lo) + 1}-{int(e)}")
        else:
            names.append(f"{0 if lo is None else lo:g}-{e:g}")
        lo = e
    names.append(f">{edges[-1]:g}" if edges else "all")
    return names


def _make(family: str, name: str, mask: np.ndarray, ok: np.ndarray) -> Slice:
    idx = np.flatnonzero(mask)
    c = int(ok[idx].sum())
    acc = c / idx.size if idx.size else float("nan")
    return Slice(family, name, int(idx.size), c, acc, 1 - acc, idx)


def error_slices(
    tokens: Sequence[Sequence[str]],
    probs: np.ndarray,
    labels: np.ndarray,
    saliency: Sequence[np.ndarray] | None = None,
    class_names: Sequence[str] | None = None,
    length_edges: Sequence[int] = (10, 20, 40),
    confidence_edges: Sequence[float] = (0.5, 0.7, 0.9),
    max_errors: int | None = 100,
) -> ErrorSlices:
    """Slice the examples (token lists, n) by the families above, given probs (n, classes) and labels (n,)."""
    p, y = check_probs(probs, labels)
    n, k = p.shape
    toks = [[str(t) for t in ex] for ex in tokens]
    if len(toks) != n:
        raise RnnvisError(f"{len(toks)} token lists for {n} predictions", "pass one token list per example")
    if saliency is not None and len(saliency) != n:
        raise RnnvisError(f"{len(saliency)} saliency arrays for {n} examples", "pass one per example or None")
    names = [str(c) for c in class_names] if class_names is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise RnnvisError(f"{len(names)} class names for {k} classes", "pass one name per class")
    for edges, what in ((length_edges, "length"), (confidence_edges, "confidence")):
        if list(edges) != sorted(set(edges)):
            raise RnnvisError(f"{what} edges {list(edges)} must be strictly increasing", "e.g. (10, 20, 40)")
    pred = p.argmax(1)
    conf = p.max(1)
    ok = pred == y
    lengths = np.array([len(t) for t in toks])
    out: list[Slice] = []
    length_bin = np.searchsorted(np.asarray(length_edges, dtype=np.float64), lengths, side="left")
    for b, name in enumerate(_bucket_names(length_edges, integer=True)):
        out.append(_make("length", name, length_bin == b, ok))
    for family, mask in (("negation", has_negation(toks)), ("intensifier", _has(toks, INTENSIFIERS)),
                         ("contrast", _has(toks, CONTRASTIVE))):
        out.append(_make(family, "with", mask, ok))
        out.append(_make(family, "without", ~mask, ok))
    for c in range(k):
        out.append(_make("gold", names[c], y == c, ok))
    conf_bin = np.searchsorted(np.asarray(confidence_edges, dtype=np.float64), conf, side="left")
    for b, name in enumerate(_bucket_names(confidence_edges, integer=False)):
        out.append(_make("confidence", name, conf_bin == b, ok))
    wrong = np.flatnonzero(~ok)
    wrong = wrong[np.argsort(-conf[wrong], kind="stable")][:max_errors]
    errors = []
    for i in wrong:
        sal = None
        if saliency is not None:
            sal = np.asarray(saliency[i], dtype=np.float64).reshape(-1)
            if sal.size != len(toks[i]):
                raise RnnvisError(f"saliency of example {i} has {sal.size} values for {len(toks[i])} tokens",
                                  "pass one saliency value per token")
        errors.append(Misclassified(int(i), tuple(toks[i]), names[y[i]], names[pred[i]], float(conf[i]),
                                    float(p[i, y[i]]), sal))
    return ErrorSlices(n, float(ok.mean()), tuple(out), tuple(errors))


__all__ = ["CONTRASTIVE", "INTENSIFIERS", "ErrorSlices", "Misclassified", "Slice", "error_slices",
           "has_negation"]
