"""Classification baselines: the majority class and a bag-of-words logistic regression.

Features are the tokenizer's own symbols (words outside the vocabulary become
<unk>), unigrams plus bigrams, sublinear tf-idf; the inverse regularisation C is
chosen on the validation split (macro F1), then the model is scored on valid and test.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..data.corpus import Document
from ..data.tokenize import Tokenizer
from ..errors import RnnvisError
from ..models.batching import doc_labels
from ..models.evaluate import classification_metrics

C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)


def majority_baseline(train_labels: np.ndarray, eval_labels: dict[str, np.ndarray], num_classes: int) -> dict:
    """Always predict the most frequent training class. → {split: metrics, "class": k}"""
    cls = int(np.bincount(train_labels, minlength=num_classes).argmax())
    out: dict = {"class": cls}
    for split, y in eval_labels.items():
        out[split] = _public(classification_metrics(y, np.full(len(y), cls), num_classes))
    return out


def _public(m: dict) -> dict:
    return {k: m[k] for k in ("accuracy", "macro_f1", "n", "confusion")}


def _analyzer(tokenizer: Tokenizer):
    vocab = tokenizer._require_vocab()

    def analyse(doc: Document) -> list[str]:
        syms = [s if s in vocab.stoi else "<unk>" for s in tokenizer.split_doc(doc)]
        return syms + [f"{a} {b}" for a, b in zip(syms, syms[1:])]
    return analyse


def bow_logreg_baseline(tokenizer: Tokenizer, train_docs: Sequence[Document], eval_docs: dict[str, Sequence[Document]],
                        num_classes: int, c_grid: Sequence[float] = C_GRID, seed: int = 0) -> dict:
    """Logistic regression on tf-idf unigrams+bigrams, C picked on the "valid" split. → {split: metrics, "C": c}"""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    y_train = doc_labels(train_docs)
    if len(np.unique(y_train)) < 2:
        raise RnnvisError("the training split has a single class", "a classifier needs at least two classes")
    vec = TfidfVectorizer(analyzer=_analyzer(tokenizer), sublinear_tf=True, min_df=1)
    x_train = vec.fit_transform(train_docs)
    xs = {s: vec.transform(list(d)) for s, d in eval_docs.items() if len(d)}
    ys = {s: doc_labels(d) for s, d in eval_docs.items() if len(d)}
    select = "valid" if "valid" in xs else None

    def fit(c: float):
        return LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(x_train, y_train)

    best_c, best_model, best_score = c_grid[0], None, -1.0
    for c in (c_grid if select else (1.0,)):
        model = fit(c)
        if select is None:
            best_c, best_model = c, model
            break
        score = classification_metrics(ys[select], model.predict(xs[select]), num_classes)["macro_f1"]
        if score > best_score + 1e-12:
            best_c, best_model, best_score = c, model, score
    out: dict = {"C": best_c, "selected_on": select or "none (no validation split: C=1)"}
    for s in xs:
        out[s] = _public(classification_metrics(ys[s], best_model.predict(xs[s]), num_classes))
    return out


__all__ = ["majority_baseline", "bow_logreg_baseline", "C_GRID"]
