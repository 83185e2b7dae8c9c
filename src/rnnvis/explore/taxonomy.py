"""The error taxonomy of a language model's view recording (docs/api.md, "Performance and errors"):
errors peeled off by oracles (Karpathy et al. 2015), the n-gram oracle fitted on the model's training
split, in one pass over chunks of whole documents (`rnnvis.analysis.taxonomy_scan`); the per-token
categories go to a memory-mapped file beside the recording (`categories_path`), which compare reads.
Memory does not grow with the recording. `perf.errors` serves it as a cached analysis job.
"""
from __future__ import annotations

import collections
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..analysis.chunks import CHUNK_TOKENS, TokenChunk
from ..errors import RnnvisError
from .common import num
from .jobs import JobContext
from .scan import chunks, need_column, read_column
from .session import Explorer, ModelHandle

NGRAM_ORDER = 5  # n-gram oracle orders 1..5 (Karpathy et al. 2015)
MAX_NGRAM_TRAIN = 20_000_000  # training tokens the oracle is fitted on at most
ERROR_EXAMPLES = 8


def _training_docs(ex: Explorer, h: ModelHandle):
    """Documents of the model's training split, or None (own data: there is no training split)."""
    if h.own:
        if h.dataset is None or h.dataset in getattr(ex, "_own_data", {}):
            return None
        corpus = ex.corpus(h.dataset)
        return corpus.subset(corpus.split()["train"])
    corpus = ex.corpus(h.dataset)
    s = h.config["split"]
    return corpus.subset(corpus.split(seed=s["seed"], fractions=tuple(s["fractions"]))["train"])


def _encode(h: ModelHandle, doc) -> list[int]:
    try:
        return [int(i) for i in h.tokenizer.encode_doc(doc, add_eos=True)]
    except TypeError:
        return [int(i) for i in h.tokenizer.encode_doc(doc)]


def fit_oracle(train_docs, encode, itos: list[str], level: str, max_order: int = NGRAM_ORDER, step=None,
               max_train: int = MAX_NGRAM_TRAIN):
    """(n-gram oracle, training word counts, oracle info) from training documents: Kneser–Ney models of
    order 1..max_order on their first `max_train` tokens (encode(doc) -> ids)."""
    from ..analysis import ngram_oracle

    train_ids, n_train = [], 0
    for doc in train_docs:
        seq = np.asarray(encode(doc), dtype=np.int32)
        train_ids.append(seq)
        n_train += seq.size
        if n_train >= max_train:
            break
    if step is not None:
        step(0.05, f"fitting Kneser-Ney n-grams of order 1..{max_order} on {n_train:,} training tokens")
    score = ngram_oracle(train_ids, len(itos), max_order=max_order)
    if level == "char":
        counts = collections.Counter(w for doc in train_docs for w in doc.chars().split())
    else:
        counts = collections.Counter()
        for seq in train_ids:
            counts.update(itos[i] for i in seq.tolist())
    return score, counts, {"ngram_orders": [1, max_order], "train_tokens": int(n_train),
                           "counts_from": "training split"}


def _oracle(ex: Explorer, h: ModelHandle, max_order: int, step) -> tuple[Any, collections.Counter | None, dict]:
    """(n-gram oracle or None, training word counts or None, oracle info) from the model's training split."""
    train = _training_docs(ex, h)
    if train is None:
        return None, None, {"ngram_orders": None, "train_tokens": None,
                            "counts_from": "the view data (no training split)"}
    return fit_oracle(train, lambda doc: _encode(h, doc), h.itos, h.level, max_order, step)


def _view_counts(ex: Explorer, h: ModelHandle, store) -> collections.Counter:
    """Word counts of the view data itself (own data: no training split), read chunk by chunk."""
    itos = h.itos
    if h.level == "char":
        corpus, idx = ex.view_docs(h)
        return collections.Counter(w for doc in corpus.subset(idx) for w in doc.chars().split())
    counts: collections.Counter = collections.Counter()
    for ch in chunks(store, (), ("token_ids",)):
        counts.update(itos[i] for i in ch.columns["token_ids"].tolist() if 0 <= i < len(itos))
    return counts


def taxonomy_chunks(store, itos: list[str], score=None, chunk: int = CHUNK_TOKENS) -> Iterator[TokenChunk]:
    """Chunks of the scored tokens of an LM recording for `taxonomy_scan`: a token is scored when its loss
    is known and the next token (the one predicted) follows it in the same document; columns 'token' (the
    predicted token), 'doc_ids', 'p_true', 'index' (the recording row) and, with an oracle, 'ngram_p'."""
    done = 0
    for ch in chunks(store, (), ("token_ids", "doc_ids", "positions", "loss"), chunk, by_document=True):
        ids, d, pos, loss = (ch.columns[k] for k in ("token_ids", "doc_ids", "positions", "loss"))
        nxt = np.zeros(len(ch), dtype=bool)  # a chunk ends at a document end: its last token has no next
        nxt[:-1] = (d[1:] == d[:-1]) & (pos[1:] == pos[:-1] + 1)
        rows = np.flatnonzero(nxt & np.isfinite(loss))
        tgt = rows + 1
        words = [itos[i] if 0 <= i < len(itos) else "<unk>" for i in ids[tgt].tolist()]
        cols = {"token": np.array(words, dtype=object),
                "doc_ids": d[rows], "p_true": np.clip(np.exp(-loss[rows].astype(np.float64)), 0.0, 1.0),
                "index": rows + ch.start}
        if score is not None:
            cut = np.flatnonzero(d[1:] != d[:-1]) + 1
            q = score([r.tolist() for r in np.split(ids.astype(np.int64), cut)])  # (orders, chunk tokens)
            cols["ngram_p"] = q[:, tgt].T
        yield TokenChunk(done, done + rows.size, {}, cols)
        done += rows.size


def categories_path(store, max_order: int) -> Path:
    """Where the per-token categories of a recording's taxonomy are kept: (tokens,) uint8, 0 = not scored,
    1 = correct, 2 + c = error category c."""
    return store.path.with_name(store.path.name + ".taxonomy") / f"categories.order{max_order}.npy"


def taxonomy_store(store, itos: list[str], level: str, score, counts, path: Path, max_order: int = NGRAM_ORDER,
                   progress=None, chunk: int = CHUNK_TOKENS):
    """The ErrorTaxonomy of an LM recording in one pass over chunks of whole documents (`taxonomy_scan`),
    its per-token categories written to `path` ((tokens,) uint8, see `categories_path`)."""
    from ..analysis import taxonomy_scan
    from ..fsutil import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    n = store.n_tokens
    with atomic_path(path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n,))  # 0: not scored

        def sink(ch, cat, order) -> None:
            out[ch.columns["index"]] = (cat + 2).astype(np.uint8)
            out.flush()

        tax = taxonomy_scan(taxonomy_chunks(store, itos, score, chunk), counts, level=level, max_order=max_order,
                            examples=ERROR_EXAMPLES, sink=sink,
                            progress=None if progress is None else
                            lambda stop: progress(min(1.0, stop / max(n, 1)), stop))
        del out
    return tax


def lm_taxonomy_arrays(ex: Explorer, ref: str, ctx: JobContext | None = None, max_order: int = NGRAM_ORDER):
    """(ErrorTaxonomy, path of the per-token categories, oracle info) of an LM's view recording, in one pass
    over chunks of whole documents (`taxonomy_scan`); memory does not grow with the recording."""

    def step(f: float, msg: str) -> None:
        if ctx is not None:
            ctx.progress(f, msg)

    h = ex.model(ref)
    store = ex.store(ref)
    need_column(store, "loss", "the error taxonomy needs a language model's per-token loss")
    step(0.0, "reading the training split")
    score, counts, oracle = _oracle(ex, h, max_order, step)
    if counts is None:
        counts = _view_counts(ex, h, store)
    path = categories_path(store, max_order)
    tax = taxonomy_store(store, h.itos, h.level, score, counts, path, max_order,
                         progress=lambda f, done: step(0.1 + 0.9 * f, f"peeling the errors off: {done:,} scored tokens"))
    return tax, path, oracle


def _lm_taxonomy(ex: Explorer, ref: str, ctx: JobContext | None = None) -> dict:
    h = ex.model(ref)
    store = ex.store(ref)
    tax, path, oracle = lm_taxonomy_arrays(ex, ref, ctx)
    itos = h.itos

    def at(name: str, row: int):
        v = read_column(store, name, row, row + 1)
        return None if v is None else v[0]

    def predicted(row: int) -> str | None:
        top = at("topk_ids", row)
        if top is None:
            return None
        j = int(np.asarray(top).reshape(-1)[0])
        return itos[j] if 0 <= j < len(itos) else "<unk>"

    return {
        "kind": "lm", "level": h.level, "total": int(tax.tokens), "errors": int(tax.errors),
        "error_rate": num(tax.error_rate),
        "categories": [{"name": c.name, "count": int(c.count), "share": num(c.share), "examples": [
            {"left": e.left, "token": e.token, "right": e.right, "p_true": round(float(e.p_true), 6),
             "predicted": predicted(e.index), "doc": int(e.doc), "position": int(at("positions", e.index))}
            for e in c.examples]} for c in tax.categories],
        "oracle": oracle,
        # Karpathy, Johnson & Fei-Fei (2015) report this breakdown for a 3-layer LSTM on War and Peace;
        # their shares are not reproduced here (see docs/demo-comparison.md).
        "reference": None,
        "_categories": str(path), "_rows": int(tax.tokens),
    }


def token_categories(ex: Explorer, ref: str) -> tuple[np.ndarray, list[str]] | None:
    """(codes (tokens,) uint8 memory-mapped: 0 = not scored, 1 = correct, 2 + c = category c; category
    names) from a cached LM taxonomy, or None when there is none (or its file is gone)."""
    value = ex.peek("errors_lm", ref, {"order": NGRAM_ORDER}, persist=True)
    if value is None or "_categories" not in value:
        return None
    try:
        codes = np.load(value["_categories"], mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return None
    if codes.shape != (ex.store(ref).n_tokens,):
        return None
    return codes, [c["name"] for c in value["categories"]]


def start_taxonomy(ex: Explorer, ref: str) -> None:
    """Start the LM error-taxonomy job if it is not cached (returns at once)."""
    try:
        ex.cached_job("errors_lm", ref, {"order": NGRAM_ORDER}, lambda ctx: _lm_taxonomy(ex, ref, ctx),
                      "error taxonomy", persist=True, wait_s=0.0)
    except RnnvisError:
        pass


__all__ = ["categories_path", "fit_oracle", "lm_taxonomy_arrays", "start_taxonomy", "taxonomy_chunks",
           "taxonomy_store", "token_categories"]
