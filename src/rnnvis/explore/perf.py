"""Performance views of one model (docs/api.md, "Performance and errors"): metrics on the view
recording next to the catalog baselines, the error analysis (LM error taxonomy with an n-gram oracle
fitted on the training split; classifier error slices with saliency of the misclassified examples),
and the training curves and checkpoint dynamics of the model's run.

Each function returns the JSON-ready dict of its schema. The slow ones (the LM error taxonomy,
checkpoint dynamics) run as an "analysis" job and are kept in the catalog (`Explorer.cached(...,
persist=True)`); a request waits a little for the job and otherwise answers 409 with it, like a
view recording that is not ready.
"""
from __future__ import annotations

import base64
import collections
import json
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from ..analysis.chunks import CHUNK_TOKENS, TokenChunk
from ..errors import RnnvisError
from .common import num, tolist
from .jobs import JobContext
from .scan import chunks, need_column, read_column
from .session import Explorer, ModelHandle

NGRAM_ORDER = 5  # n-gram oracle orders 1..5 (Karpathy et al. 2015)
MAX_NGRAM_TRAIN = 20_000_000  # training tokens the oracle is fitted on at most
ERROR_EXAMPLES = 8
MISCLASSIFIED = 30  # misclassified examples listed (most confident first), each with saliency
MAX_TEXT_SHOWN = 2000
DYNAMICS_TOKENS = 3000  # tokens each checkpoint is recorded on for the dynamics
WAIT_S = 2.0  # how long a request waits for a fresh analysis job before answering 409


# ---- shared helpers --------------------------------------------------------------------------------
def peek(ex: Explorer, kind: str, ref: str, params: dict, persist: bool = True) -> Any | None:
    """The cached result of (kind, ref, params), or None: nothing is computed, nothing waits for a running
    analysis job (`Explorer.peek`)."""
    return ex.peek(kind, ref, params, persist=persist)


def analysis(ex: Explorer, kind: str, ref: str, params: dict, fn: Callable[[JobContext], Any], title: str,
             wait_s: float = WAIT_S) -> Any:
    """fn(ctx) as a cached, persisted "analysis" job (`Explorer.cached_job`): the result when cached or done
    within `wait_s`, else NotReady (409) carrying the job."""
    return ex.cached_job(kind, ref, params, fn, title, persist=True, wait_s=wait_s)


def _jsonable(x: Any) -> Any:
    """Plain JSON of a metrics dict from the catalog (NaN → None)."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, float):
        return x if np.isfinite(x) else None
    return x


def baselines(ex: Explorer, h: ModelHandle) -> list[dict]:
    """[{name, metrics}] of the catalog baselines of the model's data set on its view split (newest per kind)."""
    if h.dataset is None:
        return []
    rows: dict[str, dict] = {}
    for b in ex.catalog.baselines(h.dataset):
        if b["split"] != h.split:
            continue
        if b["kind"] not in rows or b.get("created_at", 0) >= rows[b["kind"]].get("created_at", 0):
            rows[b["kind"]] = b
    return [{"name": k, "metrics": _jsonable(b["metrics"])} for k, b in sorted(rows.items())]


def doc_predictions(ex: Explorer, ref: str) -> tuple[np.ndarray, np.ndarray]:
    """(documents (n,), class probabilities (n, classes)) of a classifier's view recording, one row per
    document (its last window), by document id."""
    store = ex.store(ref)

    def build():
        probs = np.asarray(store.output("doc_probs"), dtype=np.float64)
        docs = np.asarray(store.output("doc_probs_doc_ids"), dtype=np.int64)
        last = {int(d): i for i, d in enumerate(docs.tolist())}
        order = sorted(last)
        rows = np.array([last[d] for d in order], dtype=np.int64)
        p = probs[rows]
        return np.array(order, dtype=np.int64), p / p.sum(1, keepdims=True)

    if store.output("doc_probs") is None:
        raise RnnvisError(f"the view recording of {ex.model(ref).name!r} has no class probabilities",
                          "record it again (POST /api/models/{ref}/record)")
    return ex.cached("doc_predictions", ref, {}, build)


def gold_labels(ex: Explorer, h: ModelHandle, docs: np.ndarray) -> np.ndarray | None:
    """(n,) gold class of each document, or None when the data has no labels."""
    corpus, _ = ex.view_docs(h)
    labels = [corpus.documents[int(d)].label for d in docs]
    if any(lab is None for lab in labels):
        return None
    try:
        y = np.array([int(lab) for lab in labels], dtype=np.int64)
    except (TypeError, ValueError):
        return None
    if any(float(lab) != int(lab) for lab in labels):
        return None
    return y


def class_names(h: ModelHandle, k: int) -> list[str]:
    names = list(h.labels or [])
    return [names[i] if i < len(names) else str(i) for i in range(k)]


# ---- metrics -----------------------------------------------------------------------------------------
def metrics(ex: Explorer, ref: str) -> dict:
    """{kind, split, metrics, baselines, confusion, labels, calibration} on the view recording."""
    from ..analysis import classifier_metrics, lm_metrics_scan

    h = ex.model(ref)
    store = ex.store(ref)

    def build() -> dict:
        out = {"kind": h.kind, "split": h.split, "metrics": {}, "baselines": baselines(ex, h), "confusion": None,
               "labels": None, "calibration": None}
        if h.kind == "lm":
            need_column(store, "loss", "the model's output is not (batch, time, vocab) logits")

            def ranked(a: int, b: int, cols: dict) -> dict:  # 0-based recorded ranks -> 1-based, -1 stays < 1
                return {"rank": cols["rank"].astype(np.int64) + 1} if "rank" in cols else {}
            try:
                m = lm_metrics_scan(chunks(store, (), ("loss", "rank"), extra=ranked),
                                    level=h.level if h.level in ("word", "char") else "word")
            except RnnvisError as e:
                raise RnnvisError(f"the view recording of {h.name!r} has no scored token",
                                  "record documents of at least two tokens") from e
            out["metrics"] = {"tokens": m.tokens, "loss": num(m.loss), "ppl": num(m.perplexity),
                              "bpc": None if m.bpc is None else num(m.bpc), "top1": m.top1, "top5": m.top5,
                              "level": m.level}
            return out
        docs, probs = doc_predictions(ex, ref)
        names = class_names(h, probs.shape[1])
        out["labels"] = names
        y = gold_labels(ex, h, docs)
        conf = probs.max(1)
        if y is None or (y >= probs.shape[1]).any():
            out["metrics"] = {"n": int(docs.size), "mean_confidence": num(conf.mean()),
                              "predicted": {names[c]: int(n) for c, n in
                                            enumerate(np.bincount(probs.argmax(1), minlength=len(names)))},
                              "note": "the data has no gold labels: only the predictions are summarised"}
            return out
        cm = classifier_metrics(probs, y, class_names=names)
        out["metrics"] = {"n": cm.n, "accuracy": num(cm.accuracy), "macro_f1": num(cm.macro_f1),
                          "precision": dict(zip(names, tolist(cm.precision))),
                          "recall": dict(zip(names, tolist(cm.recall))), "f1": dict(zip(names, tolist(cm.f1))),
                          "mean_confidence": num(conf.mean())}
        out["confusion"] = cm.confusion.astype(int).tolist()
        c = cm.calibration
        out["calibration"] = {"bins": tolist(c.edges), "accuracy": tolist(c.accuracy),
                              "confidence": tolist(c.confidence), "counts": c.count.astype(int).tolist(),
                              "ece": num(c.ece), "mce": num(c.mce)}
        return out

    return ex.cached("metrics", ref, {}, build)


# ---- errors ------------------------------------------------------------------------------------------
def errors(ex: Explorer, ref: str) -> dict:
    """LM: error taxonomy; classifier: error slices and the misclassified examples with saliency."""
    h = ex.model(ref)
    ex.store(ref)  # 409 until the view recording is ready
    if h.kind == "lm":
        value = analysis(ex, "errors_lm", ref, {"order": NGRAM_ORDER},
                         lambda ctx: _lm_taxonomy(ex, ref, ctx), "error taxonomy")
        return {k: v for k, v in value.items() if not k.startswith("_")}
    return ex.cached("errors_classifier", ref, {"n": MISCLASSIFIED}, lambda: _classifier_errors(ex, ref),
                     persist=True)


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


def encode_categories(category: np.ndarray) -> str:
    """Per-token categories (-1 = correct) as base64 of uint8 (0 = correct, c + 1 = category c)."""
    return base64.b64encode((np.asarray(category) + 1).astype(np.uint8).tobytes()).decode("ascii")


def decode_categories(blob: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(blob), dtype=np.uint8).astype(np.int64) - 1


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
    value = peek(ex, "errors_lm", ref, {"order": NGRAM_ORDER})
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
        analysis(ex, "errors_lm", ref, {"order": NGRAM_ORDER}, lambda ctx: _lm_taxonomy(ex, ref, ctx),
                 "error taxonomy", wait_s=0.0)
    except RnnvisError:
        pass


def doc_tokens(ex: Explorer, ref: str) -> dict[int, tuple[int, int]]:
    docs, starts, stops = ex.doc_index(ref)
    return {int(d): (int(a), int(b)) for d, a, b in zip(docs.tolist(), starts.tolist(), stops.tolist())}


def _classifier_errors(ex: Explorer, ref: str) -> dict:
    from ..analysis import error_slices
    from ..analysis import saliency as run_saliency

    h = ex.model(ref)
    store = ex.store(ref)
    docs, probs = doc_predictions(ex, ref)
    names = class_names(h, probs.shape[1])
    y = gold_labels(ex, h, docs)
    if y is None or (y >= probs.shape[1]).any():
        raise RnnvisError(f"the view data of {h.name!r} has no gold class labels",
                          "serve labelled data (e.g. a data set with a label column) to slice the errors")
    ranges = doc_tokens(ex, ref)
    itos = h.itos
    doc_ids = [read_column(store, "token_ids", *ranges[int(dd)]) for dd in docs]
    toks = [[itos[i] if 0 <= i < len(itos) else "<unk>" for i in seq.tolist()] for seq in doc_ids]
    sl = error_slices(toks, probs, y, class_names=names, max_errors=MISCLASSIFIED)
    corpus, _ = ex.view_docs(h)
    mis = []
    for m in sl.errors:
        seq = doc_ids[m.index]
        with h.lock:
            s = run_saliency(h.module, seq.astype(np.int64), target=names.index(m.predicted), score="logprob",
                             steps=0)
        doc = corpus.documents[int(docs[m.index])]
        text = doc.text if doc.text is not None else " ".join(doc.tokens or [])
        mis.append({"doc": int(docs[m.index]), "text": text[:MAX_TEXT_SHOWN], "gold": m.label,
                    "predicted": m.predicted, "confidence": num(m.confidence), "p_gold": num(m.p_label),
                    "tokens": list(m.tokens), "saliency": tolist(s.grad_norm, 6)})
    return {"kind": "classifier", "n": int(sl.n), "accuracy": num(sl.accuracy),
            "slices": [{"family": s.family, "name": s.name, "n": int(s.count),
                        "accuracy": num(s.accuracy), "errors": int(s.count - s.correct)} for s in sl.slices],
            "misclassified": mis}


# ---- training -------------------------------------------------------------------------------------------
def training(ex: Explorer, ref: str) -> dict:
    """{run_id, curves, dynamics} of the model's run (dynamics when it saved several checkpoints)."""
    from ..analysis import training_curves

    h = ex.model(ref)
    if h.run_id is None:
        return {"run_id": None, "curves": [], "dynamics": None}
    tc = training_curves(ex.catalog.metric_series(h.run_id))
    curves = [{"split": c.split, "key": c.key, "points": [
        {"step": int(s), "epoch": num(e), "value": num(v)} for s, e, v in zip(c.step, c.epoch, c.value)]}
        for c in tc.curves]
    ckpts = checkpoints(ex, h)
    dynamics = None
    if len(ckpts) >= 2:
        params = {"ids": [c["id"] for c in ckpts], "tokens": DYNAMICS_TOKENS}
        dynamics = analysis(ex, "dynamics", ref, params, lambda ctx: _dynamics(ex, ref, ckpts, ctx),
                            "checkpoint dynamics", wait_s=5.0)
    return {"run_id": h.run_id, "curves": curves, "dynamics": dynamics}


def checkpoints(ex: Explorer, h: ModelHandle) -> list[dict]:
    """Catalog rows of the run's checkpoints with a folder on disk, one per model id, by epoch."""
    from pathlib import Path

    by_id: dict[str, dict] = {}
    for m in ex.catalog.models(h.name):
        if m["run_id"] != h.run_id or m["epoch"] is None or not Path(m["path"]).is_dir():
            continue
        old = by_id.get(m["id"])
        if old is None or (old["tag"] == "best" and m["tag"] != "best"):  # prefer the epoch folder
            by_id[m["id"]] = {**m, "best": (old is not None and old["tag"] == "best") or m["tag"] == "best"}
        elif m["tag"] == "best":
            old["best"] = True
    return sorted(by_id.values(), key=lambda m: (m["epoch"], m["created_at"]))


def dynamics_batches(ex: Explorer, h: ModelHandle, max_tokens: int) -> list[list[int]]:
    """Token-id sequences (windows of ≤ 200) of the first view documents, `max_tokens` in all."""
    corpus, idx = ex.view_docs(h)
    out, n = [], 0
    for d in idx:
        seq = _encode(h, corpus.documents[d])
        if h.kind == "classifier":
            seq = seq[:200]
        for s in range(0, len(seq), 200):
            w = seq[s:s + 200]
            if len(w) < 2:
                continue
            out.append(w[:max_tokens - n])
            n += len(out[-1])
            if n >= max_tokens:
                return out
            if h.kind == "classifier":
                break
    return out


def _dynamics(ex: Explorer, ref: str, ckpts: list[dict], ctx: JobContext | None = None) -> dict:
    from ..analysis import checkpoint_dynamics
    from ..models import load_checkpoint
    from ..recording import record

    h = ex.model(ref)
    seqs = dynamics_batches(ex, h, DYNAMICS_TOKENS)
    if not seqs:
        raise RnnvisError(f"no view document of {h.name!r} to record the checkpoints on", "serve some data")
    doc_of = np.concatenate([np.full(len(s), i) for i, s in enumerate(seqs)])
    states = []
    for k, row in enumerate(ckpts):
        if ctx is not None:
            ctx.progress(k / len(ckpts), f"recording checkpoint {k + 1} of {len(ckpts)} (epoch {row['epoch']})")
        model = load_checkpoint(row["path"], device=torch.device("cpu"), expected_id=row["id"]).model.eval()
        parts: dict[str, list[np.ndarray]] = {}
        with torch.no_grad():
            for seq in seqs:
                _, rec = record(model, torch.tensor([seq], dtype=torch.long))
                for name in rec.streams:
                    parts.setdefault(name, []).append(np.asarray(rec[name][0], dtype=np.float32))
        states.append({n: np.concatenate(v) for n, v in parts.items()})
        del model
    labels = [f"epoch {c['epoch']}" + (" (best)" if c.get("best") else "") for c in ckpts]
    dyn = checkpoint_dynamics(states, labels=labels, doc_ids=doc_of)
    return {"labels": list(dyn.checkpoints), "tokens": int(doc_of.size),
            "saturation": {s: {"left": tolist(dyn.saturation_left[s]), "right": tolist(dyn.saturation_right[s])}
                           for s in dyn.saturation_left},
            "mean_abs_delta": {s: tolist(v) for s, v in dyn.delta.items()},
            "cka_to_final": {s: tolist(v) for s, v in dyn.cka_to_final.items()}}


# ---- training a model (POST /api/train) -------------------------------------------------------------------
NAME_RE = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
TRAIN_LIMITS = {"layers": (1, 4), "emb": (1, 2048), "hidden": (1, 2048), "epochs": (1, 100),
                "batch_size": (1, 1024), "bptt": (1, 2000), "max_len": (1, 10_000), "eval_window": (1, 10_000),
                "log_every": (1, 1_000_000), "lr_step_size": (1, 1000), "patience": (0, 100),
                "max_vocab": (2, 200_000), "min_count": (1, 1_000_000), "num_threads": (1, 256)}


class _Stop(KeyboardInterrupt):
    """Raised from the training callback when the job is cancelled: `train` stops cleanly (run "stopped")."""


class _TrainProgress:
    """`train` callback: job progress per step and epoch, cancel between steps."""

    def __init__(self, ctx: JobContext, epochs: int):
        self.ctx, self.epochs = ctx, max(1, epochs)
        self.epoch, self.in_epoch = 0, 0
        self.stopped = False

    def _report(self, fraction: float, message: str) -> None:
        if self.ctx.cancelled:
            self.stopped = True
            raise _Stop()
        from .jobs import JobCancelled

        try:
            self.ctx.progress(fraction, message)
        except JobCancelled:
            self.stopped = True
            raise _Stop() from None

    def _run(self, info: dict) -> None:
        run_id = info.get("run_id")
        if run_id is not None and self.ctx.job.meta.get("run_id") != run_id:
            self.ctx.set_meta(run_id=int(run_id))

    def on_step(self, info: dict) -> None:
        self._run(info)
        if info["epoch"] != self.epoch:
            self.epoch, self.in_epoch = info["epoch"], 0
        self.in_epoch += 1
        steps = max(1, int(info.get("epoch_steps") or 1))
        f = (self.epoch - 1 + min(1.0, self.in_epoch / steps)) / self.epochs
        self._report(0.98 * f, f"epoch {self.epoch} of {self.epochs}, step {self.in_epoch} of {steps}, "
                               f"loss {info['loss']:.3f}")

    def on_epoch(self, info: dict) -> None:
        self._run(info)
        v = info.get("valid") or {}
        shown = ", ".join(f"valid {k} {v[k]:.4g}" for k in ("ppl", "bpc", "accuracy") if isinstance(v.get(k), float))
        self._report(0.98 * info["epoch"] / self.epochs,
                     f"epoch {info['epoch']} done" + (f": {shown}" if shown else ""))


def _check_train_value(key: str, value: Any, default: Any) -> None:
    def bad(fix: str) -> RnnvisError:
        return RnnvisError(f"training option {key}={value!r} is not valid", fix)

    if key in TRAIN_LIMITS and value is not None:
        lo, hi = TRAIN_LIMITS[key]
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise bad(f"use a whole number in {lo}..{hi}")
        return
    if value is None:
        if default is not None and key not in ("clip", "time_budget_s", "max_train_tokens", "max_vocab",
                                                "patience", "num_threads"):
            raise bad("give a value")
        return
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad("use true or false")
    elif isinstance(default, int) or key in ("max_train_tokens",):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise bad("use a whole number ≥ 0")
    elif isinstance(default, float) or key in ("clip", "time_budget_s"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
            raise bad("use a number ≥ 0")
    elif isinstance(default, str):
        if not isinstance(value, str) or len(value) > 64:
            raise bad("use a short string")
    elif isinstance(default, (tuple, list)):
        if not isinstance(value, (list, tuple)) or len(value) != 3 or \
                not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value):
            raise bad("use three fractions, e.g. [0.8, 0.1, 0.1]")
    elif isinstance(default, dict):
        if not isinstance(value, dict) or len(json.dumps(value, default=str)) > 10_000:
            raise bad("use a small JSON object")


def train_config(ex: Explorer, body: Any) -> tuple[Any, Any]:
    """(TrainConfig, data set name) from a POST /api/train body, checked (400/404 with a fix)."""
    import dataclasses
    import re

    from ..data.registry import DATASETS, list_datasets
    from ..errors import NotFound
    from ..models import TrainConfig

    if not isinstance(body, dict):
        raise RnnvisError("the body must be a JSON object", 'send e.g. {"dataset": "brown", "cell": "lstm"}')
    body = dict(body)
    dataset = body.pop("dataset", None)
    if not isinstance(dataset, str) or not dataset:
        raise RnnvisError("no data set given", 'send {"dataset": "<name>", ...}; GET /api/datasets lists them')
    own = getattr(ex, "_own_data", {})
    if dataset in own:
        corpus = own[dataset]
        task, level = corpus.task, corpus.level
    elif dataset in DATASETS:
        row = next(r for r in list_datasets(ex.ws) if r["name"] == dataset)
        if not row["fetched"]:
            raise RnnvisError(f"the data set {dataset!r} is not fetched yet",
                              f"fetch it first: rnnvis fetch {dataset}")
        task, level = DATASETS[dataset].task, DATASETS[dataset].level
    else:
        raise NotFound(f"unknown data set {dataset!r}",
                       f"use one of {', '.join(sorted(set(DATASETS) | set(own)))}")
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise RnnvisError(f"unknown training option(s) {', '.join(str(u)[:40] for u in unknown[:10])}",
                          f"known options: dataset, {', '.join(sorted(fields))}")
    defaults = TrainConfig()
    for key, value in body.items():
        _check_train_value(key, value, getattr(defaults, key))
    body.setdefault("task", "classify" if task == "classify" else "lm")
    body.setdefault("level", level)
    cell = body.get("cell", defaults.cell)
    name = body.setdefault("name", f"{dataset}-{cell}-{body.get('hidden', defaults.hidden)}")
    if not re.fullmatch(NAME_RE, name) or name in (".", ".."):
        raise RnnvisError(f"model name {name!r} cannot be used",
                          "use 1-64 letters, digits, '.', '-' or '_', starting with a letter or digit")
    if any(m["name"] == name for m in ex.models()):
        raise RnnvisError(f"a model named {name!r} exists already", "choose another name")
    cfg = TrainConfig.from_json(body)
    cfg.validate()
    if cfg.task == "classify" and task != "classify":
        raise RnnvisError(f"the data set {dataset!r} has no class labels", 'train a language model ("task": "lm")')
    return cfg, dataset


def start_training(ex: Explorer, body: Any):
    """The Job training a model as POST /api/train asks; it shows up in /api/models when done."""
    from ..models import train
    from .jobs import JobCancelled

    cfg, dataset = train_config(ex, body)
    if cfg.device == "auto":
        cfg.device = getattr(ex, "device", "cpu") or "cpu"

    def run(ctx: JobContext) -> dict:
        ctx.progress(0.0, f"loading {dataset}")
        corpus = ex.corpus(dataset)
        cb = _TrainProgress(ctx, cfg.epochs)
        result = train(corpus, cfg, ex.ws, ex.catalog, progress=False, callbacks=[cb])
        if cb.stopped or result.interrupted:
            raise JobCancelled(f"training of {cfg.name} was cancelled")
        return {"name": cfg.name, "run_id": result.run_id, "model_id": result.model_id,
                "epochs_run": result.epochs_run, "stopped_early": result.stopped_early,
                "metrics": _jsonable(result.metrics)}

    # meta: the model's name now, its run_id once the run exists (the first training step)
    return ex.jobs.submit("train", f"train {cfg.name} ({cfg.cell}, {cfg.layers}×{cfg.hidden}) on {dataset}", run,
                          key=f"train:{cfg.name}", meta={"model": cfg.name, "dataset": dataset})


__all__ = ["analysis", "baselines", "checkpoints", "errors", "lm_taxonomy_arrays", "metrics", "peek",
           "start_taxonomy", "start_training", "token_categories", "train_config", "training"]
