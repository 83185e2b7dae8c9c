"""Views of one text: the sentence view (states, outputs, glyphs) of a typed text or a corpus
document, the list of documents of the view recording, and token saliency."""
from __future__ import annotations

import numpy as np
import torch

from ..errors import NotFound, RnnvisError
from .common import (MAX_SPAN, bad, check_int, default_stream, joiner, read_streams, span, store_tokens, tolist,
                     view_stream)
from .memory import unit_labels
from .session import Explorer, ModelHandle, NotReady

MAX_TEXT = 10_000  # characters of a typed text
MAX_TOKENS = MAX_SPAN  # tokens of a typed text (as of a corpus span): sentence view, trajectories
MAX_SALIENCY_TOKENS = 512  # tokens of a saliency text (a backward pass per integrated-gradient step)
MAX_STEPS = 64  # integrated-gradient steps
IG_ROWS = 32_768  # batch × tokens of one integrated-gradient pass
IG_LOGITS = 1 << 24  # batch × tokens × vocabulary of one pass of a language model (64 MB of float32)
TOP = 5
GLYPH_ARRAYS = ("pos", "neg", "dpos", "dneg", "kept")


class TooLarge(RnnvisError):
    """A request over a size limit (HTTP 413)."""


def check_text(text: str | None) -> None:
    """413 for a typed text of more than MAX_TEXT characters."""
    if text is not None and len(text) > MAX_TEXT:
        raise TooLarge(f"the text has {len(text):,} characters, more than {MAX_TEXT:,}",
                       f"send at most {MAX_TEXT:,} characters")


def encode_typed(h: ModelHandle, text: str, max_tokens: int = MAX_TOKENS) -> tuple[list[str], list[int]]:
    """(tokens, ids) of a typed text; 413 above MAX_TEXT characters or `max_tokens` tokens."""
    check_text(text)
    tokens, ids = h.encode(text)
    if len(ids) > max_tokens:
        raise TooLarge(f"the text has {len(ids):,} tokens, more than {max_tokens:,}",
                       f"type a shorter text (at most {max_tokens:,} {h.level}s)")
    return tokens, ids


def ig_batch(n_tokens: int, vocab: int = 1) -> int:
    """Integrated-gradient steps per forward/backward pass: bounded rows (and LM logits) per pass."""
    return max(1, min(IG_ROWS // max(1, n_tokens), IG_LOGITS // max(1, n_tokens * vocab)))


# ---- documents ------------------------------------------------------------------------------------
def documents(ex: Explorer, ref: str, offset: int = 0, limit: int = 50, q: str | None = None) -> dict:
    """{total, documents: [{doc, tokens, preview}]} of the view recording, filtered by substring `q`."""
    offset = check_int("offset", offset, 0)
    limit = check_int("limit", limit, 1, 1000)
    h = ex.model(ref)
    docs, starts, stops = ex.doc_index(ref)

    def texts():
        toks = store_tokens(ex, ref)
        j = joiner(h)
        return [j.join(toks[a:b]) for a, b in zip(starts.tolist(), stops.tolist())]
    all_texts = ex.cached("doc_texts", ref, {}, texts)
    rows = range(len(all_texts))
    if q:
        ql = q.lower()
        rows = [i for i in rows if ql in all_texts[i].lower()]
    page = list(rows)[offset:offset + limit]
    return {"total": len(rows), "documents": [
        {"doc": int(docs[i]), "tokens": int(stops[i] - starts[i]), "preview": all_texts[i][:200]} for i in page]}


# ---- outputs -----------------------------------------------------------------------------------------
def _top(h: ModelHandle, ids: np.ndarray, probs: np.ndarray) -> list[list[dict]]:
    return [[{"token": t, "prob": round(float(p), 6)} for t, p in zip(h.decode(i), pr)] for i, pr in zip(ids, probs)]


def _typed_outputs(h: ModelHandle, out: dict) -> dict:
    """Compact outputs of a typed text (arrays; `_render_outputs` makes the JSON)."""
    logits = torch.from_numpy(out["logits"])
    if logits.dim() == 3:  # LM (1, T, V)
        p = torch.softmax(logits[0].double(), -1)
        top = p.topk(min(TOP, p.shape[-1]), -1)
        loss = np.array([np.nan if v is None else v for v in out["loss"]], dtype=np.float32)  # float32 values
        return {"loss": loss, "top_ids": top.indices.numpy().astype(np.int32), "top_probs": top.values.numpy(),
                "probs": None}
    return {"loss": None, "top_ids": None, "top_probs": None,
            "probs": _class_probs(h, torch.softmax(logits[0].double(), -1).numpy())}


def _render_outputs(h: ModelHandle, o: dict) -> dict:
    return {"loss": None if o["loss"] is None else tolist(o["loss"]),
            "top": None if o["top_ids"] is None else _top(h, o["top_ids"], o["top_probs"]), "probs": o["probs"]}


def _class_probs(h: ModelHandle, p: np.ndarray) -> list[dict]:
    labels = h.labels or [str(i) for i in range(len(p))]
    return [{"label": labels[i] if i < len(labels) else str(i), "prob": round(float(v), 6)} for i, v in enumerate(p)]


def _corpus_outputs(ex: Explorer, ref: str, h: ModelHandle, doc: int, a: int, b: int) -> dict:
    store = ex.store(ref)
    if h.kind == "lm":
        def cols():
            return {k: store.output(k) for k in ("loss", "topk_ids", "topk_probs")}
        o = ex.cached("lm_outputs", ref, {}, cols)
        if o["loss"] is None:
            return {"loss": None, "top_ids": None, "top_probs": None, "probs": None}
        return {"loss": np.asarray(o["loss"][a:b]), "top_ids": np.asarray(o["topk_ids"][a:b]),
                "top_probs": np.asarray(o["topk_probs"][a:b]), "probs": None}
    probs, pdocs = store.output("doc_probs"), store.output("doc_probs_doc_ids")
    hit = np.flatnonzero(pdocs == doc) if pdocs is not None else []
    return {"loss": None, "top_ids": None, "top_probs": None,
            "probs": _class_probs(h, probs[hit[0]]) if len(hit) else None}


# ---- glyphs --------------------------------------------------------------------------------------------
def forget_stream(stream: str) -> str | None:
    """The LSTM forget gate of the layer of an h or c stream ('layer0.fwd.h' -> 'layer0.fwd.gate.f')."""
    for suffix in (".h", ".c"):
        if stream.endswith(suffix):
            return stream[: -len(suffix)] + ".gate.f"
    return None


def glyphs(ex: Explorer, ref: str, stream: str, h_values: np.ndarray, forget: np.ndarray | None,
           h0: np.ndarray | None, k: int | None) -> dict | None:
    """Sentence glyphs of `stream` for the unit clusters of its co-clustering (k given or chosen), as arrays
    (`_render_glyphs` makes the JSON); None for a stream without per-word statistics (nothing to
    co-cluster: gates by default)."""
    from ..analysis import sentence_glyphs

    if not ex.store(ref).has_word_stats(stream):
        return None
    labels, kk = unit_labels(ex, ref, stream, k)
    g = sentence_glyphs(h_values, labels, forget=forget, h0=h0, n_clusters=kk)
    return {"stream": stream, "k": kk, "unit_labels": labels.astype(np.int32),
            **{k: np.asarray(getattr(g, k)) for k in GLYPH_ARRAYS}}


def _render_glyphs(g: dict | None) -> dict | None:
    if g is None:
        return None
    return {**g, **{k: tolist(g[k]) for k in GLYPH_ARRAYS}, "unit_labels": g["unit_labels"].tolist()}


# ---- sentence ----------------------------------------------------------------------------------------
def sentence(ex: Explorer, ref: str, text: str | None = None, doc: int | None = None, start: int | None = None,
             stop: int | None = None, streams: list[str] | None = None, k: int | None = None,
             stream: str | None = None) -> dict:
    """Sentence: states of `streams`, outputs and glyphs of a typed text or a range of a corpus document.

    The cache keeps a compact form (float32 states of the requested streams, arrays of outputs and glyphs:
    about 1/8 of the JSON-ready lists); each answer is rendered from it."""
    check_text(text)
    params = {"text": text, "doc": doc, "start": start, "stop": stop, "streams": streams, "k": k, "stream": stream}
    out = ex.cached("sentence", ref, params, lambda: _sentence(ex, ref, text, doc, start, stop, streams, k, stream))
    if text is not None and out["glyphs"] is None:  # made before the view recording was ready: not kept
        ex.forget("sentence", ref, params)
    return {**out, "streams": {n: tolist(v) for n, v in out["streams"].items()},
            "outputs": _render_outputs(ex.model(ref), out["outputs"]), "glyphs": _render_glyphs(out["glyphs"])}


def _sentence(ex: Explorer, ref: str, text, doc, start, stop, streams, k, stream) -> dict:
    if (text is None) == (doc is None):
        raise bad("give exactly one of text or doc", "type a text, or pick a document of the view recording")
    if k is not None:
        check_int("k", k, 1, 64)
    h = ex.model(ref)
    if text is not None:
        encode_typed(h, text)  # 413 above MAX_TOKENS, before any state is computed
        tokens, rec, out = h.run_text(text)
        names = {n: int(rec[n].shape[-1]) for n in rec.streams}
        gstream = stream or default_stream(names)
        wanted = streams or [gstream]
        for n in set(wanted) | {gstream}:
            if n not in names:
                raise NotFound(f"unknown stream {n!r}", f"choose one of {', '.join(names)}")
        values = {n: rec[n][0] for n in set(wanted) | {gstream}}
        fs = forget_stream(gstream)
        forget = rec[fs][0] if fs in names else None
        try:
            g = glyphs(ex, ref, gstream, values[gstream], forget, None, k)
        except NotReady:  # typed texts work before the view recording is ready; glyphs need it
            g = None
        return {"source": "typed", "doc": None, "tokens": tokens,
                "streams": {n: _owned(values[n]) for n in wanted},
                "outputs": _typed_outputs(h, out), "glyphs": g}
    store = ex.store(ref)
    doc = int(doc)
    a, s0, s1 = span(ex, ref, doc, start, stop)
    gstream = view_stream(ex, ref, stream)
    wanted = [view_stream(ex, ref, n) for n in (streams or [gstream])]
    lo, hi = a + s0, a + s1
    prev = lo > a and not bool(_restart(ex, ref, lo))  # the state before the range carries over
    fs = forget_stream(gstream)
    fs = fs if fs in store.all_streams else None
    values = read_streams(ex, ref, [*wanted, gstream, *([fs] if fs else [])], lo - int(prev), hi)
    forget = values[fs][int(prev):] if fs else None
    hv = values[gstream]
    h0 = hv[0] if prev else None
    g = glyphs(ex, ref, gstream, hv[int(prev):], forget, h0, k)
    tokens = store_tokens(ex, ref)[lo:hi]
    return {"source": "corpus", "doc": doc, "tokens": tokens,
            "streams": {n: _owned(values[n][int(prev):]) for n in wanted},
            "outputs": _corpus_outputs(ex, ref, h, doc, lo, hi), "glyphs": g}


def _owned(a) -> np.ndarray:
    """A float32 array that owns its memory: a cached view would keep every stream of the run alive."""
    a = np.asarray(a, dtype=np.float32)
    return a.copy() if a.base is not None else a


def _restart(ex: Explorer, ref: str, i: int) -> bool:
    from .common import window_starts

    return bool(window_starts(ex, ref)[i])


# ---- saliency -------------------------------------------------------------------------------------------
def saliency(ex: Explorer, ref: str, text: str, target: int | str | None = None, steps: int = 32) -> dict:
    """Token saliency (gradient, gradient × input, integrated gradients) of a typed text."""
    from ..analysis import saliency as run_saliency

    if not text:
        raise bad("no text given", "type a text")
    check_text(text)
    steps = check_int("steps", steps, 0, MAX_STEPS)
    h = ex.model(ref)

    def build():
        tokens, ids = encode_typed(h, text, MAX_SALIENCY_TOKENS)
        batch = ig_batch(len(ids), len(h.itos) if h.kind != "classifier" else 1)
        x = torch.tensor([ids], dtype=torch.long)
        with h.lock, torch.no_grad():
            logits = h.forward_logits(x).double()
        if h.kind == "classifier":
            p = torch.softmax(logits[0], -1).numpy()
            labels = h.labels or [str(i) for i in range(len(p))]
            tgt = int(np.argmax(p)) if target is None else _class_index(target, labels)
            with h.lock:
                s = run_saliency(h.module, ids, target=tgt, score="logprob", steps=steps, batch_size=batch,
                                 forward=h.forward_logits)
            label = labels[tgt] if tgt < len(labels) else str(tgt)
            prediction = [{"label": labels[i] if i < len(labels) else str(i), "prob": round(float(v), 6)}
                          for i, v in enumerate(p)]
        else:
            p = torch.softmax(logits[0, -1], -1)
            tgt = int(p.argmax()) if target is None else _token_index(h, target)
            with h.lock:
                s = run_saliency(h.module, ids, target=tgt, position=len(ids) - 1, score="logprob", steps=steps,
                                 batch_size=batch, forward=h.forward_logits)
            label = h.decode([tgt])[0]
            top = p.topk(min(TOP, p.shape[0]))
            prediction = [{"label": t, "prob": round(float(v), 6)}
                          for t, v in zip(h.decode(top.indices.tolist()), top.values)]
        # kept as arrays (a (tokens, embedding) float64 array is 1/4 of its lists); rendered per answer
        return {"tokens": tokens, "target": tgt, "target_label": label,
                "methods": {"grad": s.grad_norm, "grad_x_input": s.gxi_token, "integrated": s.ig_token},
                "dims": s.grad_abs, "prediction": prediction}
    out = ex.cached("saliency", ref, {"text": text, "target": target, "steps": steps}, build)
    return {**out, "methods": {k: None if v is None else tolist(v, 6) for k, v in out["methods"].items()},
            "dims": tolist(out["dims"], 6)}


def _class_index(target, labels: list[str]) -> int:
    if isinstance(target, str) and not target.lstrip("-").isdigit():
        if target not in labels:
            raise bad(f"unknown class {target!r}", f"choose one of {', '.join(labels)}")
        return labels.index(target)
    t = int(target)
    if not 0 <= t < len(labels):
        raise bad(f"class {t} out of range", f"choose 0..{len(labels) - 1}")
    return t


def _token_index(h: ModelHandle, target) -> int:
    itos = h.itos
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit() and target not in itos):
        t = int(target)
        if not 0 <= t < len(itos):
            raise bad(f"token id {t} out of range", f"choose 0..{len(itos) - 1}")
        return t
    for w in (target, target.lower()):
        if w in itos:
            return itos.index(w)
    raise NotFound(f"token {target!r} is not in the vocabulary", "choose a word the model knows")

