"""Pattern select and match (LSTMVis) over the view recording, with context and annotation tracks."""
from __future__ import annotations

import numpy as np

from .common import bad, check_int, doc_range, span, store_tokens, tolist, view_stream
from .discovery import level_annotations
from .session import Explorer

CONTEXT = 3


def threshold_of(threshold: dict | float | None):
    """{kind: 'abs'|'pct', value} -> a number or a Percentile, rounded (a percentile to a whole
    number, a value to 2 decimals) so that a pattern index is built for few distinct thresholds."""
    from ..analysis import Percentile

    if threshold is None:
        return 0.5
    if isinstance(threshold, (int, float)):
        return round(float(threshold), 2)
    kind, value = threshold.get("kind", "abs"), threshold.get("value")
    if not isinstance(value, (int, float)) or not np.isfinite(value):
        raise bad(f"threshold value {value!r}", "give a number")
    if kind == "abs":
        return round(float(value), 2)
    if kind == "pct":
        if not 0 <= value <= 100:
            raise bad(f"percentile {value} is outside 0..100", "use e.g. 90")
        return Percentile(float(round(value)))
    raise bad(f"threshold kind {kind!r}", "use 'abs' or 'pct'")


def select(ex: Explorer, ref: str, stream: str | None, doc: int, start: int, stop: int,
           threshold: dict | float | None = None, off_after: bool = False) -> dict:
    """Units on over the brushed range [start, stop) of document `doc` (and off just before it)."""
    from ..analysis import select_units_in_store

    store = ex.store(ref)
    stream = view_stream(ex, ref, stream, stored=True)
    a, s0, s1 = span(ex, ref, doc, start, stop)
    sel = select_units_in_store(store, stream, a + s0, a + s1, threshold_of(threshold), off_after)
    units = sel.units.tolist()
    values = store.read(stream, a + s0, a + s1, units=units) if units else np.zeros((s1 - s0, 0))
    return {"stream": stream, "units": units, "theta": tolist(sel.threshold, 6), "doc": int(doc),
            "tokens": store_tokens(ex, ref)[a + s0:a + s1], "values": tolist(values)}


def _doc_tracks(ex: Explorer, ref: str, doc: int) -> dict[str, np.ndarray]:
    """Annotations of one whole document of the view recording (numbers per token)."""
    from ..analysis import annotate

    a, b = doc_range(ex, ref, doc)

    def build():
        names = [n for n in level_annotations(ex.model(ref)) if not n.startswith("pos")]
        ann = annotate(store_tokens(ex, ref)[a:b], names)
        return {n: np.asarray(v, dtype=np.float64) for n, v in ann.items()}
    return ex.cached("doc_tracks", ref, {"doc": int(doc)}, build)


def on_counts(index, units: np.ndarray, start: int, stop: int) -> np.ndarray:
    """(stop-start,) how many of `units` are on (>= θ) at each token, from the index's packed
    on-bits: only these rows, nothing read from the recording."""
    sel = np.zeros(index.n_units, bool)
    sel[units] = True
    return np.unpackbits(index.bits[start:stop] & np.packbits(sel), axis=1).sum(1)


def match(ex: Explorer, ref: str, stream: str | None, units: list[int], threshold: dict | float | None = None,
          min_fraction: float = 1.0, min_len: int = 1, max_len: int | None = None, limit: int = 50) -> dict:
    """Phrases of the view recording where the selected units are on together, ranked."""
    from ..analysis import SelectedUnits, match_index, open_pattern_index
    from ..analysis.pattern_index import store_thresholds

    store = ex.store(ref)
    stream = view_stream(ex, ref, stream, stored=True)
    limit = check_int("limit", limit, 1, 500)
    if not units:
        raise bad("no units given", "select units first (pattern/select)")
    n_units = int(store.units[stream])
    if any(not isinstance(u, int) or not 0 <= u < n_units for u in units):
        raise bad(f"units {units[:5]}... outside 0..{n_units - 1}", "select units of this stream")
    thr = threshold_of(threshold)
    theta = store_thresholds(store, stream, thr)
    index = ex.cached("pattern_index", ref, {"stream": stream, "theta": theta.tobytes().hex()},
                      lambda: open_pattern_index(store, stream, thr))
    sel = SelectedUnits(np.unique(np.asarray(units, np.int64)), theta, 0, 1, 0, False, False)
    m = match_index(index, sel, min_fraction, min_len, max_len, top=limit)
    tokens = store_tokens(ex, ref)
    out = []
    for i in range(len(m)):
        d, s, e = int(m.doc_ids[i]), int(m.starts[i]), int(m.stops[i])
        a, b = doc_range(ex, ref, d)
        cs, ce = max(a, s - CONTEXT), min(b, e + CONTEXT)
        counts = on_counts(index, sel.units, cs, ce)
        tracks = _doc_tracks(ex, ref, d)
        out.append({"doc": d, "start": s - a, "stop": e - a, "tokens": tokens[cs:ce], "context": [s - cs, ce - e],
                    "matched": int(m.matched[i]), "extra": int(m.extra[i]), "jaccard": round(float(m.jaccard[i]), 6),
                    "counts": counts.astype(int).tolist(),
                    "tracks": {n: tolist(v[cs - a:ce - a], 4) for n, v in tracks.items()}})
    lengths = np.flatnonzero(m.length_hist)
    return {"total": int(m.total), "matches": out,
            "length_hist": {"lengths": lengths.tolist(), "counts": m.length_hist[lengths].astype(int).tolist()}}
