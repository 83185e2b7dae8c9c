"""Error taxonomy of a language model (Karpathy, Johnson, Fei-Fei 2015), word or character level.

A token is an error when the model's probability of the true token is below 0.5. Errors are
peeled off by oracles, in this order; each error gets the first category whose oracle fixes it:

1. ``ngram``: an n-gram model of some order n = 1..N, trained on the training split, gives the
   true token p > 0.5 (`ngram_order` records the smallest such n).
2. ``memory`` (dynamic memory): the true token already followed the same k preceding tokens
   earlier in the same document, i.e. the (k+1)-gram ending at this token occurred before in
   the document (k = `memory_context`: 3 at word level, 5 at character level by default). A
   document is a contiguous run of equal doc ids; the k context tokens must lie inside it.
3. ``rare``: the word is rare in training (count ≤ `rare_threshold`, or the <unk> token). At
   character level the word is the whitespace-delimited word that contains the character, looked
   up in word counts; whitespace characters are never rare.
4. ``word_start`` (character level only): the first character after a space or newline (or at
   the document start).
5. ``punctuation``: the token (all its characters) is punctuation (Unicode category P*).
6. ``boost``: p(true) is already ≥ `boost_threshold` (0.4): a small boost would fix it.
7. ``rest``: everything else.

A model that is certain of the true token (p = 1) is never charged an error.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from rnnvis.errors import RnnvisError

ERROR_P = 0.5
WORD_CATEGORIES = ("ngram", "memory", "rare", "punctuation", "boost", "rest")
CHAR_CATEGORIES = ("ngram", "memory", "rare", "word_start", "punctuation", "boost", "rest")
SPACES = frozenset({" ", "\n", "\t", "\r"})


@dataclass(frozen=True)
class ErrorExample:
    """One error token in context."""

    index: int  # position in the whole token stream
    doc: int | str  # document id
    position: int  # position inside its document
    token: str
    p_true: float
    left: str  # text of up to `window` tokens before it in the document
    right: str  # text of up to `window` tokens after it


@dataclass(frozen=True)
class ErrorCategory:
    """Errors peeled off by one oracle."""

    name: str
    count: int
    share: float  # of all errors (pie-chart slice)
    examples: tuple[ErrorExample, ...]


@dataclass(frozen=True)
class ErrorTaxonomy:
    """Per-token categories and per-category counts, shares and examples."""

    level: str
    tokens: int
    errors: int
    error_rate: float
    categories: tuple[ErrorCategory, ...]  # in peeling order
    category: np.ndarray  # (tokens,) int: index into `categories`, -1 where not an error
    ngram_order: np.ndarray  # (tokens,) smallest n-gram order that fixes the error, 0 otherwise

    def get(self, name: str) -> ErrorCategory:
        for c in self.categories:
            if c.name == name:
                return c
        raise RnnvisError(f"no error category {name!r}", f"choose one of {[c.name for c in self.categories]}")

    def labels(self, correct: str = "correct") -> np.ndarray:
        """(tokens,) category name of each token, `correct` where it is not an error (e.g. groups for
        `rnnvis.analysis.similarity.loss_difference`)."""
        names = np.array([c.name for c in self.categories] + [correct], dtype=object)
        return names[np.where(self.category >= 0, self.category, len(self.categories))]

    def pie(self) -> dict[str, float]:
        """{category: share of errors}."""
        return {c.name: c.share for c in self.categories}


def document_starts(doc_ids: np.ndarray) -> np.ndarray:
    """(tokens,) index of the first token of each token's document (contiguous runs of equal ids)."""
    d = np.asarray(doc_ids).reshape(-1)
    new = np.ones(d.size, dtype=bool)
    new[1:] = d[1:] != d[:-1]
    return np.maximum.accumulate(np.where(new, np.arange(d.size), 0))


def seen_before(ids: np.ndarray, doc_ids: np.ndarray, k: int) -> np.ndarray:
    """(tokens,) bool: the (k+1)-gram ending here (context inside the document) occurred earlier in it."""
    ids = np.asarray(ids, dtype=np.int64)
    n = ids.size
    starts = document_starts(doc_ids)
    valid = np.arange(n) - starts >= k
    base = np.unique(ids, return_inverse=True)[1].reshape(-1).astype(np.int64)  # (tokens,) dense ids
    v = int(base.max()) + 1 if n else 1
    rank = base
    for _ in range(k):  # dense rank of the m-gram ending at each position, m = 2..k+1
        prev = np.zeros_like(rank)
        prev[1:] = rank[:-1]
        rank = np.unique(prev * v + base, return_inverse=True)[1].reshape(-1).astype(np.int64)
    seg = np.unique(starts, return_inverse=True)[1].reshape(-1).astype(np.int64)
    key = np.where(valid, seg * (int(rank.max()) + 1 if n else 1) + rank, -1 - np.arange(n))
    _, first, inv = np.unique(key, return_index=True, return_inverse=True)
    return valid & (first[inv.reshape(-1)] < np.arange(n))


def char_words(tokens: Sequence[str], doc_ids: np.ndarray) -> list[str]:
    """(tokens,) the whitespace-delimited word containing each character ('' for whitespace)."""
    out = [""] * len(tokens)
    d = np.asarray(doc_ids).reshape(-1)
    i = 0
    while i < len(tokens):
        if tokens[i] in SPACES:
            i += 1
            continue
        j = i
        while j < len(tokens) and tokens[j] not in SPACES and d[j] == d[i]:
            j += 1
        word = "".join(tokens[i:j])
        out[i:j] = [word] * (j - i)
        i = j
    return out


def is_punctuation(token: str) -> bool:
    return bool(token) and all(unicodedata.category(c).startswith("P") for c in token)


def _context(tokens: Sequence[str], i: int, lo: int, hi: int, window: int, sep: str) -> tuple[str, str]:
    return sep.join(tokens[max(lo, i - window): i]), sep.join(tokens[i + 1: min(hi, i + 1 + window)])


def error_taxonomy(
    tokens: Sequence[str],
    doc_ids: np.ndarray,
    p_true: np.ndarray,
    train_counts: Mapping[str, int] | np.ndarray,
    ngram_p: np.ndarray | Callable[[int], np.ndarray] | None = None,
    level: str = "word",
    max_order: int = 5,
    memory_context: int | None = None,
    rare_threshold: int = 5,
    boost_threshold: float = 0.4,
    unk: str = "<unk>",
    examples: int = 5,
    window: int | None = None,
) -> ErrorTaxonomy:
    """Peel the errors of a language model into oracle categories.

    tokens (tokens,) strings; doc_ids (tokens,); p_true (tokens,) model probability of each true
    token; train_counts: {word: training count} or a (tokens,) array of each token's count;
    ngram_p: (N, tokens) probability of the true token under n-gram models of order 1..N, or a
    callable order → (tokens,) called for orders 1..max_order (see `ngram_p_true`), or None.
    Examples are evenly spaced over each category's errors. For a corpus in chunks, see
    `rnnvis.analysis.errors_lm_scan.taxonomy_scan`.
    """
    toks = [str(t) for t in tokens]
    d = np.asarray(doc_ids).reshape(-1)
    p = np.asarray(p_true, dtype=np.float64).reshape(-1)  # (tokens,)
    category, order, names = categorise(toks, d, p, train_counts, ngram_p, level, max_order, memory_context,
                                        rare_threshold, boost_threshold, unk)
    n = len(toks)
    total = int((category >= 0).sum())
    window = default_window(level, window)
    cats = []
    for ci, name in enumerate(names):
        where = np.flatnonzero(category == ci)
        pick = where[np.unique(np.linspace(0, where.size - 1, min(examples, where.size)).astype(np.int64))] \
            if where.size and examples > 0 else where[:0]
        ex = examples_at(toks, d, p, pick, level, window)
        cats.append(ErrorCategory(name, int(where.size), where.size / total if total else 0.0, tuple(ex)))
    return ErrorTaxonomy(level, n, total, total / n if n else 0.0, tuple(cats), category, order)


def default_window(level: str, window: int | None = None) -> int:
    return window if window is not None else (8 if level == "word" else 40)


def examples_at(toks: Sequence[str], d: np.ndarray, p: np.ndarray, pick: np.ndarray, level: str, window: int,
                index: np.ndarray | None = None) -> list[ErrorExample]:
    """ErrorExamples of the tokens `pick` of one block of whole documents (context inside the document);
    index: the (tokens,) id reported as each token's `index` (default: its position in the block)."""
    starts = document_starts(d)
    n = len(toks)
    sep = " " if level == "word" else ""
    out = []
    for i in np.asarray(pick, dtype=np.int64).tolist():
        stop = i + 1
        while stop < n and d[stop] == d[i]:
            stop += 1
        left, right = _context(toks, i, int(starts[i]), stop, window, sep)
        doc = d[i].item() if isinstance(d[i], np.generic) else d[i]
        out.append(ErrorExample(int(i if index is None else index[i]), doc, int(i - starts[i]), toks[i], float(p[i]),
                                left, right))
    return out


def categorise(toks: list[str], d: np.ndarray, p: np.ndarray, train_counts: Mapping[str, int] | np.ndarray,
               ngram_p=None, level: str = "word", max_order: int = 5, memory_context: int | None = None,
               rare_threshold: int = 5, boost_threshold: float = 0.4,
               unk: str = "<unk>") -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(category (tokens,), n-gram order (tokens,), category names) of tokens forming whole documents:
    the peeling of `error_taxonomy`, which looks at nothing outside a token's document."""
    if level not in ("word", "char"):
        raise RnnvisError(f"unknown level {level!r}", "use 'word' or 'char'")
    n = len(toks)
    if d.size != n or p.size != n:
        raise RnnvisError(f"tokens ({n}), doc_ids ({d.size}) and p_true ({p.size}) differ in length",
                          "pass one doc id and one probability per token")
    if n and (not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1 + 1e-9):
        raise RnnvisError("p_true must be probabilities in [0, 1]", "pass exp(-loss), not the loss")
    k = memory_context if memory_context is not None else (3 if level == "word" else 5)
    if k < 1:
        raise RnnvisError(f"memory_context must be ≥ 1, got {k}", "use e.g. 3 (words) or 5 (characters)")
    names = WORD_CATEGORIES if level == "word" else CHAR_CATEGORIES
    remaining = p < ERROR_P  # (tokens,) errors not yet explained
    category = np.full(n, -1, dtype=np.int64)
    order = np.zeros(n, dtype=np.int64)

    def peel(name: str, fixed: np.ndarray) -> None:
        hit = remaining & fixed
        category[hit] = names.index(name)
        remaining[hit] = False

    # 1. n-gram oracle
    if ngram_p is not None:
        if callable(ngram_p):
            per_order = [np.asarray(ngram_p(m), dtype=np.float64).reshape(-1) for m in range(1, max_order + 1)]
        else:
            arr = np.asarray(ngram_p, dtype=np.float64)
            per_order = list(arr.reshape(1, -1) if arr.ndim == 1 else arr)
        for m, q in enumerate(per_order, start=1):
            if q.size != n:
                raise RnnvisError(f"n-gram probabilities of order {m} have {q.size} values for {n} tokens",
                                  "score the same tokens (one value per token, in order)")
            fix = remaining & (q > ERROR_P)
            order[fix] = m
            peel("ngram", fix)
    # 2. dynamic memory
    index: dict[str, int] = {}
    ids = np.fromiter((index.setdefault(t, len(index)) for t in toks), dtype=np.int64, count=n)  # (tokens,)
    peel("memory", seen_before(ids, d, k))
    # 3. rare words
    if isinstance(train_counts, Mapping):
        words = toks if level == "word" else char_words(toks, d)
        counts = np.array([train_counts.get(w, 0) if w else rare_threshold + 1 for w in words], dtype=np.int64)
    else:
        counts = np.asarray(train_counts).reshape(-1)
        if counts.size != n:
            raise RnnvisError(f"{counts.size} training counts for {n} tokens",
                              "pass a {word: count} dict or one count per token")
    unk_mask = np.array([t == unk for t in toks], dtype=bool)
    peel("rare", (counts <= rare_threshold) | unk_mask)
    # 4. word start (characters)
    if level == "char":
        start = np.ones(n, dtype=bool)
        start[1:] = np.array([t in SPACES for t in toks[:-1]], dtype=bool)
        start &= np.array([t not in SPACES for t in toks], dtype=bool)
        start |= document_starts(d) == np.arange(n)
        peel("word_start", start)
    # 5. punctuation, 6. boost, 7. rest
    peel("punctuation", np.array([is_punctuation(t) for t in toks], dtype=bool))
    peel("boost", p >= boost_threshold)
    peel("rest", np.ones(n, dtype=bool))
    return category, order, names


def ngram_p_true(train_docs: Sequence[Sequence[int]], eval_docs: Sequence[Sequence[int]], vocab_size: int,
                 max_order: int = 5, discount: float | None = None) -> np.ndarray:
    """(max_order, tokens) probability of each true token of `eval_docs` under Kneser–Ney models of order
    1..max_order fitted on `train_docs` (id lists, each ending with <eos>; every token is scored)."""
    return ngram_oracle(train_docs, vocab_size, max_order, discount)(eval_docs)


def ngram_oracle(train_docs: Sequence[Sequence[int]], vocab_size: int, max_order: int = 5,
                 discount: float | None = None) -> Callable[[Sequence[Sequence[int]]], np.ndarray]:
    """Kneser–Ney models of order 1..max_order fitted once on `train_docs`, as a function
    eval_docs -> (max_order, tokens) probabilities of their true tokens (so that a corpus can be
    scored chunk by chunk of whole documents)."""
    from rnnvis.baselines.ngram import KneserNeyLM

    if max_order < 1:
        raise RnnvisError(f"max_order must be ≥ 1, got {max_order}", "use e.g. 5")
    train = train_docs if isinstance(train_docs, list) else list(train_docs)
    models = [KneserNeyLM(vocab_size, m, discount).fit(train) for m in range(1, max_order + 1)]

    def score(eval_docs: Sequence[Sequence[int]]) -> np.ndarray:
        evals = list(eval_docs)
        return np.stack([np.exp(m.log_probs(evals)) for m in models])
    return score


__all__ = ["CHAR_CATEGORIES", "WORD_CATEGORIES", "ErrorCategory", "ErrorExample", "ErrorTaxonomy",
           "categorise", "error_taxonomy", "examples_at", "ngram_oracle", "ngram_p_true",
           "seen_before"]
