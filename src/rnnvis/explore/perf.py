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

from typing import Any, Callable

import numpy as np
import torch

from ..errors import RnnvisError
from .common import num, tolist
from .jobs import JobContext
from .scan import chunks, need_column, read_column
from .session import Explorer, ModelHandle
from .training import _jsonable, start_training, train_config  # noqa: F401 - served from here (routes_perf)
from .taxonomy import NGRAM_ORDER, _encode, _lm_taxonomy, lm_taxonomy_arrays, start_taxonomy, token_categories

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
                             steps=0, forward=h.forward_logits)
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


__all__ = ["analysis", "baselines", "checkpoints", "errors", "lm_taxonomy_arrays", "metrics", "peek",
           "start_taxonomy", "start_training", "token_categories", "train_config", "training"]
