"""Hypothesis discovery: which units track which token annotation (AUC / correlation), and how
well a linear probe reads it from one stream, on (a prefix of) the view recording."""
from __future__ import annotations

import numpy as np

from .common import bad, check_int, default_stream, num, store_tokens, token_pos
from .session import Explorer, ModelHandle

CHAR_ANNOTATIONS = ("c_string", "c_comment", "bracket_depth", "position_in_line", "inside_quotes")
WORD_ANNOTATIONS = ("inside_quotes", "negation_scope", "position_in_sentence")
MAX_TOKENS = 10_000  # tokens ranked (whole documents from the start of the recording)
PROBE_TOKENS = 5_000
INLINE_CELLS = 2_000_000  # tokens x units x annotations computed within the request (about 0.3 s)
MAX_POS = 8  # most frequent POS classes offered


def level_annotations(h: ModelHandle) -> list[str]:
    return list(CHAR_ANNOTATIONS if h.level == "char" else WORD_ANNOTATIONS)


def available(ex: Explorer, ref: str) -> list[str]:
    h = ex.model(ref)
    names = level_annotations(h)
    tags = token_pos(ex, ref)
    if tags is not None:
        vals, counts = np.unique(tags[tags != ""].astype(str), return_counts=True)
        names += [f"pos={v}" for v in vals[np.argsort(-counts, kind="stable")[:MAX_POS]]]
    return names


def discovery(ex: Explorer, ref: str, annotations: list[str] | None = None, top: int = 10) -> dict:
    """{annotations: [{name, kind, metric, top: [{stream, unit, score, effect}], probe}], available}."""
    from ..analysis import annotate, linear_probe, rank_units

    store = ex.store(ref)
    top = check_int("top", top, 1, 100)
    avail = available(ex, ref)
    names = list(annotations) if annotations else avail
    unknown = [n for n in names if n not in avail]
    if unknown:
        raise bad(f"unknown annotations {unknown}", f"choose from {', '.join(avail)}")
    n = min(store.n_tokens, MAX_TOKENS)
    units = {s: store.meta["units"][s] for s in store.streams}
    probe_stream = default_stream(units)

    loaded: dict[str, np.ndarray] = {}

    def streams_n() -> dict[str, np.ndarray]:
        if not loaded:
            loaded.update({s: store.read(s, 0, n) for s in store.streams})
        return loaded

    def one(name: str) -> dict:
        tokens = store_tokens(ex, ref)[:n]
        doc_ids = store.doc_ids[:n]
        if name.startswith("pos="):
            a = token_pos(ex, ref)[:n].astype(str) == name[4:]
        else:
            a = annotate(tokens, [name], doc_ids=doc_ids)[name]
        a = np.asarray(a)
        if a.dtype != bool and np.isin(a, (0, 1)).all() and name not in ("bracket_depth",):
            a = a.astype(bool)
        if np.nanstd(a.astype(np.float64)) == 0:
            return {"name": name, "kind": "binary" if a.dtype == bool else "scalar",
                    "metric": "auc" if a.dtype == bool else "pearson", "top": [], "probe": None}
        streams = streams_n()
        rk = rank_units(streams, a, name, method="pearson")
        probe = None
        try:
            p = linear_probe(streams[probe_stream][:PROBE_TOKENS], a[:PROBE_TOKENS], name, probe_stream,
                             doc_ids=doc_ids[:PROBE_TOKENS])
            probe = {"stream": probe_stream, "metric": p.metric, "test_score": num(p.test_score),
                     "baseline": num(p.baseline)}
        except Exception:  # noqa: BLE001 - one class in the probe's split: no probe, the ranking stands
            probe = None
        return {"name": name, "kind": rk.kind, "metric": rk.metric,
                "top": [{"stream": str(s), "unit": int(u), "score": num(sc), "effect": num(e)}
                        for s, u, sc, e in zip(rk.stream[:top], rk.unit[:top], rk.score[:top], rk.effect[:top])],
                "probe": probe}

    def run(ctx) -> list[dict]:
        out = []
        for i, nm in enumerate(names):
            ctx.progress(i / len(names), f"ranking units against {nm}")
            out.append(one(nm))
        return out

    cells = n * sum(units.values()) * len(names)
    out = ex.cached_job("discovery", ref, {"annotations": names, "top": top, "tokens": n}, run,
                        title=f"unit discovery ({len(names)} annotations)", inline=cells <= INLINE_CELLS)
    return {"annotations": out, "available": avail}

