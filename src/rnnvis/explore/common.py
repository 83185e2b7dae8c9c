"""Helpers shared by the exploration views: checks that answer 400/404, JSON-ready arrays, the
view recording's tokens and document ranges, and `read_streams`, the one way a view reads the
values of any stream for a token range (stored per token, or recomputed from the model)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import NotFound, RnnvisError
from .session import Explorer, ModelHandle, parse_stream

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


def _record_more(h: ModelHandle | None, option: str) -> str:
    """How to get a view recording that keeps more: the `rnnvis record` command for this model and
    split (the server then reads that recording), or why not for an own model."""
    if h is not None and h.own:
        return "an own model's view recording keeps the default streams; the Sentence and Detail views show any stream"
    split = f" --split {h.split}" if h is not None and h.split != "test" else ""
    return f"or record them once: rnnvis record {h.name if h is not None else 'MODEL'}{split} {option} '*'"


def view_stream(ex: Explorer, ref: str, stream: str | None, stored: bool = False, words: bool = False) -> str:
    """`stream_of` the view recording of `ref`, with fixes that name the model and its split."""
    return stream_of(ex.store(ref), stream, stored, words, ex.model(ref))


def stream_of(store, stream: str | None, stored: bool = False, words: bool = False,
              h: ModelHandle | None = None) -> str:
    """A stream of the recording (default: the top layer's forward h); 404 for an unknown one.

    Every stream has per-unit statistics and can be read for a token range (`read_streams`).
    `stored`: the view scans every token of the recording, so the stream must be stored per token;
    `words`: the view needs per-word statistics (expected response). 400 with the fix otherwise
    (naming the model `h` when given)."""
    names = store.all_streams
    if stream is None or stream == "":
        ok = [n for n in names if (not stored or n in store.streams) and (not words or store.has_word_stats(n))]
        return default_stream({n: store.units[n] for n in (ok or names)})
    if stream not in names:
        raise NotFound(f"unknown stream {stream!r}", f"choose one of {', '.join(names)}")
    if stored and stream not in store.streams:
        raise bad(f"{stream} is not stored per token in the view recording, and this view scans every token",
                  f"choose a stored stream ({', '.join(store.streams)}), {_record_more(h, '--streams')}")
    if words and not store.has_word_stats(stream):
        with_words = [n for n in names if store.has_word_stats(n)]
        raise bad(f"the view recording has no per-word statistics (expected response) of {stream}",
                  f"choose one of {', '.join(with_words)}, {_record_more(h, '--word-stats')}")
    return stream


def read_streams(ex: Explorer, ref: str, names, start: int, stop: int) -> dict[str, np.ndarray]:
    """{stream: (stop-start, units) float32} of the view recording's tokens [start, stop): read
    where the stream is stored per token, else recomputed exactly from the model (from the nearest
    keyframe or window start, all missing streams in one pass, with the model's lock held)."""
    from ..recording import recompute

    store = ex.store(ref)
    names = list(dict.fromkeys(names))
    out = {n: store.read(n, start, stop) for n in names if n in store.streams}
    missing = [n for n in names if n not in out]
    if missing:
        h = ex.model(ref)
        with h.lock, torch.no_grad():
            out.update(recompute(h.module, store, start, stop, names=missing, forward=h.forward))
    return {n: np.asarray(out[n], dtype=np.float32) for n in names}


def units_of(store, stream: str) -> int:
    return int(store.units[stream])


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
    """(tokens,) bool: where the recorded state restarted from zero (the recording's window starts)."""
    store = ex.store(ref)

    def build():
        starts = np.zeros(store.n_tokens, bool)
        w = store.windows
        starts[w[w[:, 0] < store.n_tokens, 0]] = True
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
