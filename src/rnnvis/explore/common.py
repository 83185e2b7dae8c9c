"""Helpers shared by the exploration views: checks that answer 400/404, JSON-ready arrays, the
view recording's tokens and document ranges."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import NotFound, RnnvisError
from .session import VIEW_WINDOW, Explorer, ModelHandle, parse_stream

MAX_SPAN = 2000  # tokens of one document shown at once (sentence view, trajectories)


def tolist(a, digits: int | None = 5) -> Any:
    """A numpy array (or number) as nested lists of floats, NaN/inf as None, rounded to `digits`."""
    a = np.asarray(a, dtype=np.float64)
    if digits is not None:
        a = np.round(a, digits)
    bad = ~np.isfinite(a)
    if bad.any():
        return np.where(bad, None, a).tolist()
    return a.tolist()


def num(x) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def bad(what: str, fix: str) -> RnnvisError:
    return RnnvisError(what, fix)


def check_int(name: str, value, lo: int, hi: int | None = None) -> int:
    if value is None or isinstance(value, bool) or int(value) != value or value < lo or (hi is not None and value > hi):
        raise bad(f"{name}={value!r} is out of range", f"use a whole number in {lo}..{hi if hi is not None else '∞'}")
    return int(value)


def default_stream(units: dict[str, int]) -> str:
    """The forward h of the top layer (else the first stream)."""
    parsed = {n: parse_stream(n) for n in units}
    top = max((p["layer"] for p in parsed.values()), default=0)
    hs = [n for n, p in parsed.items() if p["type"] == "h" and p["layer"] == top and p["direction"] == "fwd"]
    return hs[0] if hs else next(iter(units))


def stream_of(store, stream: str | None, stored: bool = False) -> str:
    """A stream of the recording (all have statistics; `stored` ones also per-token values); 404 else."""
    names = store.streams if stored else list(store.meta["all_streams"])
    if stream is None or stream == "":
        return default_stream({n: store.meta["units"][n] for n in names})
    if stream not in names:
        raise NotFound(f"unknown stream {stream!r}", f"choose one of {', '.join(names)}")
    return stream


def units_of(store, stream: str) -> int:
    return int(store.meta["units"][stream])


def check_unit(store, stream: str, unit: int) -> int:
    n = units_of(store, stream)
    if unit is None or not 0 <= int(unit) < n:
        raise NotFound(f"unit {unit} does not exist in {stream}", f"choose a unit in 0..{n - 1}")
    return int(unit)


def joiner(h: ModelHandle) -> str:
    return "" if h.level == "char" else " "


def store_tokens(ex: Explorer, ref: str) -> list[str]:
    """Token strings of every token of the view recording (cached)."""
    store = ex.store(ref)
    h = ex.model(ref)
    return ex.cached("tokens", ref, {}, lambda: h.decode(store.token_ids))


def window_starts(ex: Explorer, ref: str) -> np.ndarray:
    """(tokens,) bool: where the recorded state restarted from zero (document or window start)."""
    store = ex.store(ref)

    def build():
        d, p = store.doc_ids, store.positions
        starts = np.ones(d.shape[0], bool)
        starts[1:] = (d[1:] != d[:-1]) | (p[1:] != p[:-1] + 1)
        starts |= (p % VIEW_WINDOW) == 0
        return starts
    return ex.cached("window_starts", ref, {}, build)


def doc_range(ex: Explorer, ref: str, doc: int) -> tuple[int, int]:
    """(first token, stop token) of corpus document `doc` in the view recording; 404 else."""
    docs, starts, stops = ex.doc_index(ref)
    i = int(np.searchsorted(docs, doc))
    if doc is None or i >= docs.size or docs[i] != doc:
        raise NotFound(f"document {doc} is not in the view recording",
                       "GET /api/models/{ref}/documents lists the documents")
    return int(starts[i]), int(stops[i])


def span(ex: Explorer, ref: str, doc: int, start: int | None, stop: int | None, default: int = 200) -> tuple[int, int, int]:
    """(document's first token, start, stop) with start/stop relative to the document, checked."""
    a, b = doc_range(ex, ref, doc)
    n = b - a
    start = 0 if start is None else int(start)
    stop = min(n, start + default) if stop is None else int(stop)
    if not 0 <= start < stop <= n:
        raise bad(f"token range [{start}, {stop}) is empty or outside document {doc} (0..{n})",
                  f"use 0 <= start < stop <= {n}")
    if stop - start > MAX_SPAN:
        raise bad(f"token range [{start}, {stop}) is longer than {MAX_SPAN} tokens", "ask for a shorter range")
    return a, start, stop


def word_pos(ex: Explorer, ref: str) -> dict[str, str]:
    """word -> its most frequent coarse Brown tag over the view documents ({} without POS tags)."""
    from collections import Counter, defaultdict

    from ..analysis import coarse_brown_tag

    h = ex.model(ref)

    def build():
        if not ex.has_pos(h):
            return {}
        corpus, idx = ex.view_docs(h)
        tags: dict[str, Counter] = defaultdict(Counter)
        tok = h.tokenizer
        for d in corpus.subset(idx):
            pos = d.meta.get("pos")
            words = tok.split_doc(d) if hasattr(tok, "split_doc") else d.words()
            if not pos or len(pos) != len(words):
                continue
            for w, t in zip(words, pos):
                tags[w][coarse_brown_tag(t)] += 1
        return {w: c.most_common(1)[0][0] for w, c in tags.items()}
    return ex.cached("word_pos", ref, {}, build)


def token_pos(ex: Explorer, ref: str) -> np.ndarray | None:
    """(tokens,) coarse Brown tag of every token of the view recording ('' where none), or None."""
    from ..analysis import coarse_brown_tag

    h = ex.model(ref)
    if not ex.has_pos(h):
        return None
    store = ex.store(ref)

    def build():
        corpus, _ = ex.view_docs(h)
        d, p = store.doc_ids, store.positions
        out = np.full(d.shape[0], "", dtype=object)
        docs, starts, stops = ex.doc_index(ref)
        for did, a, b in zip(docs.tolist(), starts.tolist(), stops.tolist()):
            pos = corpus.documents[did].meta.get("pos") or []
            for i in range(a, b):
                if 0 <= p[i] < len(pos):
                    out[i] = coarse_brown_tag(pos[p[i]])
        return out
    return ex.cached("token_pos", ref, {}, build)
