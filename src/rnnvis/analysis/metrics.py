"""Evaluation metrics of language models and sequence classifiers.

Language models: from the per-token loss (negative log-likelihood of the true token, in nats)
and optionally the rank of the true token among all predictions (1 = the model's top choice):
mean loss, perplexity exp(loss), bits per character loss / ln 2 (character level), top-1 and
top-5 accuracy (share of tokens whose rank is ≤ 1 / ≤ 5).

Classifiers: from class probabilities (n, classes) and gold labels (n,): accuracy, per-class
precision / recall / F1 and their macro mean, the confusion matrix (rows gold, columns
predicted), and calibration: a reliability curve over equal-width confidence bins on [0, 1]
(bin b holds confidences in (b/B, (b+1)/B], the first bin also holds 0) with per-bin mean
confidence, accuracy and count, and the expected calibration error
ECE = Σ_b (n_b / n) |accuracy_b - confidence_b| (Guo et al. 2017). The confidence of a
prediction is its largest class probability.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from rnnvis.analysis.chunks import TokenChunk, check_chunks
from rnnvis.errors import RnnvisError

LEVELS = ("word", "char")


@dataclass(frozen=True)
class LMMetrics:
    """Summary of a language model on a set of tokens."""

    level: str
    tokens: int
    loss: float  # mean nats per token
    perplexity: float  # exp(loss)
    bpc: float | None  # bits per character (char level only)
    top1: float | None  # share of tokens whose true token ranks first (None without ranks)
    top5: float | None  # share of tokens whose true token ranks in the top 5


def lm_metrics(loss: np.ndarray, ranks: np.ndarray | None = None, level: str = "word") -> LMMetrics:
    """Loss, perplexity, bpc and top-k accuracy from per-token loss (tokens,) and ranks (tokens,).

    `ranks` are 1-based: 1 means the true token had the highest predicted probability.
    """
    if level not in LEVELS:
        raise RnnvisError(f"unknown level {level!r}", f"use one of {LEVELS}")
    loss = np.asarray(loss, dtype=np.float64).reshape(-1)  # (tokens,)
    if loss.size == 0:
        raise RnnvisError("no tokens to evaluate", "pass a non-empty per-token loss array")
    if not np.all(np.isfinite(loss)) or loss.min() < 0:
        raise RnnvisError("per-token loss must be finite and ≥ 0 (nats)",
                          "pass -log p(true token), clipping p away from 0")
    mean = float(loss.mean())
    top1 = top5 = None
    if ranks is not None:
        r = np.asarray(ranks).reshape(-1)  # (tokens,)
        if r.shape != loss.shape:
            raise RnnvisError(f"ranks {r.shape} and loss {loss.shape} differ in length", "pass one rank per token")
        if r.size and r.min() < 1:
            raise RnnvisError("ranks must be ≥ 1 (1 = the model's top choice)", "add 1 to 0-based ranks")
        top1, top5 = float(np.mean(r <= 1)), float(np.mean(r <= 5))
    return LMMetrics(level, int(loss.size), mean, math.exp(min(mean, 700.0)),
                     mean / math.log(2) if level == "char" else None, top1, top5)


def lm_metrics_scan(chunks: Iterable[TokenChunk], level: str = "word") -> LMMetrics:
    """`lm_metrics` over token chunks with columns 'loss' and optionally 'rank' (1-based), folded as sums.

    Tokens whose loss is unknown (NaN: nothing was predicted there) or, with ranks, whose rank is
    < 1 are left out, as a recording marks them.
    """
    if level not in LEVELS:
        raise RnnvisError(f"unknown level {level!r}", f"use one of {LEVELS}")
    n, total, top1, top5, ranked = 0, 0.0, 0, 0, None
    for ch in check_chunks(chunks):
        loss = np.asarray(ch.columns["loss"], dtype=np.float64).reshape(-1)
        keep = np.isfinite(loss)
        r = ch.columns.get("rank")
        if ranked is None:
            ranked = r is not None
        if ranked:
            r = np.asarray(r).reshape(-1)
            keep &= r >= 1
            top1 += int((r[keep] <= 1).sum())
            top5 += int((r[keep] <= 5).sum())
        lk = loss[keep]
        if lk.size and lk.min() < 0:
            raise RnnvisError("per-token loss must be ≥ 0 (nats)", "pass -log p(true token)")
        n += lk.size
        total += float(lk.sum())
    if n == 0:
        raise RnnvisError("no tokens to evaluate", "pass chunks with at least one scored token")
    mean = total / n
    return LMMetrics(level, n, mean, math.exp(min(mean, 700.0)), mean / math.log(2) if level == "char" else None,
                     top1 / n if ranked else None, top5 / n if ranked else None)


def true_token_ranks(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """1-based rank of each target among its row of logits (tokens, vocab) → (tokens,); ties count for it."""
    z = np.asarray(logits, dtype=np.float64)
    t = np.asarray(targets, dtype=np.int64).reshape(-1)
    if z.ndim != 2 or z.shape[0] != t.size:
        raise RnnvisError(f"logits {z.shape} must be (tokens, vocab) with one target per row ({t.size})",
                          "pass matching logits and targets")
    true = z[np.arange(t.size), t][:, None]  # (tokens, 1)
    return (z > true).sum(1).astype(np.int64) + 1


@dataclass(frozen=True)
class Calibration:
    """Reliability curve over equal-width confidence bins and the expected calibration error."""

    edges: np.ndarray  # (bins + 1,) bin edges from 0 to 1
    confidence: np.ndarray  # (bins,) mean confidence per bin (nan for empty bins)
    accuracy: np.ndarray  # (bins,) accuracy per bin (nan for empty bins)
    count: np.ndarray  # (bins,) predictions per bin
    ece: float  # Σ (count/n) |accuracy - confidence|
    mce: float  # max |accuracy - confidence| over non-empty bins


def calibration(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> Calibration:
    """Reliability curve from confidences (n,) in [0, 1] and correctness (n,) bool."""
    c = np.asarray(confidence, dtype=np.float64).reshape(-1)  # (n,)
    ok = np.asarray(correct, dtype=bool).reshape(-1)  # (n,)
    if c.shape != ok.shape or c.size == 0:
        raise RnnvisError(f"confidence {c.shape} and correct {ok.shape} must be equal, non-empty",
                          "pass one confidence and one correctness flag per prediction")
    if bins < 1:
        raise RnnvisError(f"bins must be ≥ 1, got {bins}", "use e.g. 10 or 15")
    if np.any(~np.isfinite(c)) or c.min() < 0 or c.max() > 1 + 1e-9:
        raise RnnvisError("confidences must lie in [0, 1]", "pass probabilities, not logits")
    idx = np.clip(np.ceil(c * bins).astype(np.int64) - 1, 0, bins - 1)  # (n,)
    count = np.bincount(idx, minlength=bins)
    conf_sum = np.bincount(idx, weights=c, minlength=bins)
    acc_sum = np.bincount(idx, weights=ok.astype(np.float64), minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.where(count > 0, conf_sum / count, np.nan)
        acc = np.where(count > 0, acc_sum / count, np.nan)
    gap = np.abs(acc - conf)
    seen = count > 0
    ece = float(np.sum(count[seen] / c.size * gap[seen]))
    return Calibration(np.linspace(0.0, 1.0, bins + 1), conf, acc, count, ece, float(gap[seen].max()))


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """(classes, classes) counts: rows gold label, columns predicted label."""
    y = np.asarray(labels, dtype=np.int64).reshape(-1)
    p = np.asarray(predicted, dtype=np.int64).reshape(-1)
    if y.shape != p.shape:
        raise RnnvisError(f"labels {y.shape} and predictions {p.shape} differ", "pass one of each per example")
    for name, a in (("labels", y), ("predictions", p)):
        if a.size and (a.min() < 0 or a.max() >= n_classes):
            raise RnnvisError(f"{name} fall outside 0..{n_classes - 1}", "encode classes as 0..classes-1")
    return np.bincount(y * n_classes + p, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def f1_scores(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, f1), each (classes,), from a confusion matrix; 0 where undefined."""
    cm = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(cm)
    pred, gold = cm.sum(0), cm.sum(1)
    precision = np.divide(tp, pred, out=np.zeros_like(tp), where=pred > 0)
    recall = np.divide(tp, gold, out=np.zeros_like(tp), where=gold > 0)
    s = precision + recall
    f1 = np.divide(2 * precision * recall, s, out=np.zeros_like(tp), where=s > 0)
    return precision, recall, f1


@dataclass(frozen=True)
class ClassifierMetrics:
    """Accuracy, F1, confusion matrix and calibration of a classifier on n examples."""

    n: int
    class_names: tuple[str, ...]  # (classes,)
    accuracy: float
    macro_f1: float  # mean F1 over the classes that occur as gold or predicted label
    precision: np.ndarray  # (classes,)
    recall: np.ndarray  # (classes,)
    f1: np.ndarray  # (classes,)
    confusion: np.ndarray  # (classes, classes) rows gold, columns predicted
    calibration: Calibration
    predicted: np.ndarray  # (n,) argmax class
    confidence: np.ndarray  # (n,) max probability


def check_probs(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validated (probs (n, classes) float64, labels (n,) int64)."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels).reshape(-1)
    if p.ndim != 2 or p.shape[0] != y.size or p.shape[0] == 0:
        raise RnnvisError(f"probabilities {p.shape} must be (n, classes) with one label per row ({y.size})",
                          "pass softmax outputs and gold labels of the same examples")
    if not np.all(np.isfinite(p)) or p.min() < 0 or np.max(np.abs(p.sum(1) - 1)) > 1e-3:
        raise RnnvisError("class probabilities must be ≥ 0 and sum to 1 per row",
                          "apply softmax to the logits first")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= p.shape[1]:
        raise RnnvisError(f"labels must be integers in 0..{p.shape[1] - 1}", "encode the gold classes as ids")
    return p, y.astype(np.int64)


def classifier_metrics(probs: np.ndarray, labels: np.ndarray, bins: int = 10,
                       class_names: Sequence[str] | None = None) -> ClassifierMetrics:
    """All classifier metrics from probabilities (n, classes) and gold labels (n,)."""
    p, y = check_probs(probs, labels)
    k = p.shape[1]
    names = tuple(str(c) for c in class_names) if class_names is not None else tuple(str(i) for i in range(k))
    if len(names) != k:
        raise RnnvisError(f"{len(names)} class names for {k} classes", "pass one name per class")
    pred = p.argmax(1)
    conf = p.max(1)
    cm = confusion_matrix(y, pred, k)
    precision, recall, f1 = f1_scores(cm)
    present = (cm.sum(0) + cm.sum(1)) > 0
    ok = pred == y
    return ClassifierMetrics(int(y.size), names, float(ok.mean()), float(f1[present].mean()), precision, recall,
                             f1, cm, calibration(conf, ok, bins), pred, conf)


__all__ = ["Calibration", "ClassifierMetrics", "LMMetrics", "calibration", "classifier_metrics",
           "confusion_matrix", "f1_scores", "lm_metrics", "true_token_ranks"]
