"""The LM error taxonomy of a whole corpus in bounded memory: one pass over chunks of whole documents.

Every oracle of `error_taxonomy` looks only inside a token's document (n-gram context, dynamic
memory, the word around a character, word starts, the examples' context), so categorising each
chunk of whole documents on its own gives exactly the categories of the whole-array computation.
The scan folds per-category counts and keeps, per category, a seeded uniform sample of
`examples` errors (bottom-k of a hash of each token's index, so the sample does not depend on
how the corpus is chunked); per-token categories are handed to `sink` chunk by chunk instead of
being held. Memory: one chunk and the samples.

Chunk columns: 'token' (rows,) the true token strings; 'doc_ids'; 'p_true' (rows,) the model's
probability of the true token; optionally 'ngram_p' (rows, orders) the n-gram oracle's, and
'index' (rows,) the id reported as an example's `index` (default: the running token index).
"""
from __future__ import annotations

from typing import Callable, Iterable, Mapping

import numpy as np

from rnnvis.analysis.chunks import TokenChunk, check_chunks
from rnnvis.analysis.errors_lm import (
    ErrorCategory,
    ErrorExample,
    ErrorTaxonomy,
    categorise,
    default_window,
    examples_at,
)
from rnnvis.errors import RnnvisError

_MIX = np.uint64(0x9E3779B97F4A7C15)


def sample_keys(index: np.ndarray, seed: int = 0) -> np.ndarray:
    """(n,) uint64 pseudo-random key of each token index (splitmix64 of index and seed)."""
    with np.errstate(over="ignore"):
        z = np.asarray(index).astype(np.uint64) * _MIX + np.uint64(seed * 2 + 1) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def taxonomy_scan(chunks: Iterable[TokenChunk], train_counts: Mapping[str, int], level: str = "word",
                  max_order: int = 5, memory_context: int | None = None, rare_threshold: int = 5,
                  boost_threshold: float = 0.4, unk: str = "<unk>", examples: int = 5, window: int | None = None,
                  seed: int = 0, sink: Callable[[TokenChunk, np.ndarray, np.ndarray], None] | None = None,
                  progress: Callable[[int], None] | None = None) -> ErrorTaxonomy:
    """`error_taxonomy` over chunks of whole documents (see the module doc for the columns).

    sink(chunk, category (rows,), ngram order (rows,)) receives the per-token results; the returned
    taxonomy's `category` and `ngram_order` are empty. Examples are a seeded uniform sample of each
    category's errors, in token order.
    """
    window = default_window(level, window)
    names: tuple[str, ...] | None = None
    counts: np.ndarray | None = None
    kept: list[list[tuple[int, int, ErrorExample]]] = []  # per category: (key, index, example)
    n = 0
    for ch in check_chunks(chunks):
        for col in ("token", "doc_ids", "p_true"):
            if col not in ch.columns:
                raise RnnvisError(f"chunk [{ch.start}, {ch.stop}) has no column {col!r}",
                                  "give every chunk its true tokens, doc ids and p_true")
        toks = [str(t) for t in ch.columns["token"]]
        d = np.asarray(ch.columns["doc_ids"]).reshape(-1)
        p = np.asarray(ch.columns["p_true"], dtype=np.float64).reshape(-1)
        q = ch.columns.get("ngram_p")
        cat, order, names = categorise(toks, d, p, train_counts, None if q is None else np.asarray(q).T, level,
                                       max_order, memory_context, rare_threshold, boost_threshold, unk)
        if counts is None:
            counts = np.zeros(len(names), np.int64)
            kept = [[] for _ in names]
        counts += np.bincount(cat[cat >= 0], minlength=len(names))
        index = np.asarray(ch.columns.get("index", np.arange(ch.start, ch.stop)))
        if examples > 0:
            keys = sample_keys(index, seed)
            for ci in range(len(names)):
                where = np.flatnonzero(cat == ci)
                if where.size == 0:
                    continue
                bar = kept[ci][-1][0] if len(kept[ci]) >= examples else None
                cand = where[np.argsort(keys[where], kind="stable")[:examples]]
                if bar is not None:
                    cand = cand[keys[cand] < bar]
                if cand.size:
                    ex = examples_at(toks, d, p, cand, level, window, index=index)
                    kept[ci] = sorted(kept[ci] + [(int(keys[i]), int(index[i]), e) for i, e in zip(cand, ex)],
                                      key=lambda t: t[0])[:examples]
        if sink is not None:
            sink(ch, cat, order)
        n += len(ch)
        if progress is not None:
            progress(ch.stop)
    if names is None:
        raise RnnvisError("the corpus has no scored token", "record documents of at least two tokens")
    total = int(counts.sum())
    cats = tuple(ErrorCategory(name, int(counts[ci]), counts[ci] / total if total else 0.0,
                               tuple(e for _, _, e in sorted(kept[ci], key=lambda t: t[1])))
                 for ci, name in enumerate(names))
    empty = np.zeros(0, np.int64)
    return ErrorTaxonomy(level, n, total, total / n if n else 0.0, cats, empty, empty)


__all__ = ["sample_keys", "taxonomy_scan"]
