"""Baselines for a corpus on given splits with a given tokenizer, cached in the catalog.

Language modelling: an interpolated modified Kneser–Ney n-gram model. Order 3
for words; for characters the order among (5, 6, 7) with the lowest validation
perplexity (a small sweep: higher orders help on large character corpora, lower
ones on small). A KN unigram is reported too, as the floor. Classification: the
majority class and a tf-idf bag-of-words logistic regression (C on valid).

The cache key hashes the corpus fingerprint, the split indices, the tokenizer's
vocabulary and options, and the parameters, so a cached result is never stale.
"""
from __future__ import annotations

import hashlib
import json
import time
from typing import Sequence

from ..catalog import Catalog
from ..data.corpus import Corpus, Splits
from ..data.tokenize import Tokenizer
from ..errors import RnnvisError
from ..models.batching import doc_labels
from .classify import C_GRID, bow_logreg_baseline, majority_baseline
from .ngram import KneserNeyLM

VERSION = 1
WORD_ORDERS = (3,)
CHAR_ORDERS = (5, 6, 7)
EVAL_SPLITS = ("valid", "test")


def baseline_key(corpus: Corpus, splits: Splits, tokenizer: Tokenizer, params: dict) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"version": VERSION, "corpus": corpus.fingerprint(), "splits": splits.indices,
                         "tokenizer": tokenizer.to_json(), "params": params}, sort_keys=True).encode())
    return h.hexdigest()[:16]


def _lm_baselines(corpus: Corpus, splits: Splits, tokenizer: Tokenizer, level: str,
                  orders: Sequence[int]) -> dict[str, dict]:
    enc = {s: [tokenizer.encode_doc(d, add_eos=True) for d in corpus.subset(splits[s])] for s in splits.indices}
    if not enc.get("train"):
        raise RnnvisError("the training split is empty", "give the training split a larger fraction")
    V = len(tokenizer.vocab)
    sweep, best = {}, None
    for n in orders:
        t = time.monotonic()
        model = KneserNeyLM(V, order=n).fit(enc["train"])
        res = {s: model.evaluate(enc[s], level) for s in EVAL_SPLITS if enc.get(s)}
        res["fit_s"] = time.monotonic() - t
        sel = res.get("valid", {}).get("ppl", res.get("test", {}).get("ppl", float("inf")))
        sweep[str(n)] = sel
        if best is None or sel < best[0]:
            best = (sel, n, res)
    _, order, res = best
    unigram = KneserNeyLM(V, order=1).fit(enc["train"])
    return {
        "ngram": {"order": order, "sweep_valid_ppl": sweep, "smoothing": "interpolated modified Kneser-Ney", **res},
        "unigram": {"order": 1, **{s: unigram.evaluate(enc[s], level) for s in EVAL_SPLITS if enc.get(s)}},
    }


def _classify_baselines(corpus: Corpus, splits: Splits, tokenizer: Tokenizer) -> dict[str, dict]:
    train_docs = corpus.subset(splits["train"])
    if not train_docs:
        raise RnnvisError("the training split is empty", "give the training split a larger fraction")
    eval_docs = {s: corpus.subset(splits[s]) for s in EVAL_SPLITS if splits.indices.get(s)}
    y_train = doc_labels(train_docs)
    num_classes = max(len(corpus.label_names or []), int(doc_labels(corpus.documents).max()) + 1)
    return {
        "majority": majority_baseline(y_train, {s: doc_labels(d) for s, d in eval_docs.items()}, num_classes),
        "bow_logreg": bow_logreg_baseline(tokenizer, train_docs, eval_docs, num_classes),
    }


def compute_baselines(corpus: Corpus, splits: Splits, tokenizer: Tokenizer, task: str, level: str,
                      catalog: Catalog | None = None, orders: Sequence[int] | None = None) -> dict:
    """{kind: {"valid": metrics, "test": metrics, ...params}} for the task, plus "key".

    Cached per (corpus name, split, kind, key) with `catalog.put_baseline`.
    """
    if task == "lm":
        orders = tuple(orders or (CHAR_ORDERS if level == "char" else WORD_ORDERS))
        params = {"task": task, "level": level, "orders": list(orders)}
        kinds = ("ngram", "unigram")
    elif task in ("classify", "classifier"):
        params = {"task": "classify", "c_grid": list(C_GRID)}
        kinds = ("majority", "bow_logreg")
    else:
        raise RnnvisError(f"unknown task {task!r}", "use lm or classify")
    key = baseline_key(corpus, splits, tokenizer, params)
    if catalog is not None:
        cached = {k: catalog.get_baseline(corpus.name, "all", k, key) for k in kinds}
        if all(v is not None for v in cached.values()):
            return {**cached, "key": key, "cached": True}
    if task == "lm":
        result = _lm_baselines(corpus, splits, tokenizer, level, orders)
    else:
        result = _classify_baselines(corpus, splits, tokenizer)
    if catalog is not None:
        for kind, metrics in result.items():
            for split in EVAL_SPLITS:
                if split in metrics:  # one row per split for listings, one "all" row with the parameters
                    catalog.put_baseline(corpus.name, split, kind, key, metrics[split])
            catalog.put_baseline(corpus.name, "all", kind, key, metrics)
    return {**result, "key": key, "cached": False}


__all__ = ["compute_baselines", "baseline_key", "WORD_ORDERS", "CHAR_ORDERS"]


