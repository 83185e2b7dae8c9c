"""Hypothesis discovery: which units track which token annotation (AUC / correlation), and how
well a linear probe reads it from one stream, over the whole view recording.

One scan (`rnnvis.analysis.scan_units`) reads the recording in chunks cut at document starts,
annotates each chunk's tokens and folds it into per-unit histograms (AUC, with its error bound)
and sums (Pearson r); the probe trains on a seeded sample of `PROBE_SAMPLE` tokens. Memory does
not grow with the recording.
"""
from __future__ import annotations

import numpy as np

from ..analysis.chunks import CHUNK_TOKENS
from .common import bad, check_int, default_stream, num, token_pos
from .scan import chunks, value_range
from .session import Explorer, ModelHandle

CHAR_ANNOTATIONS = ("c_string", "c_comment", "bracket_depth", "position_in_line", "inside_quotes")
WORD_ANNOTATIONS = ("inside_quotes", "negation_scope", "position_in_sentence")
PROBE_SAMPLE = 20_000  # tokens the linear probe is trained and tested on (seeded uniform sample)
INLINE_CELLS = 2_000_000  # tokens x units x annotations computed within the request (about 0.3 s)
MAX_POS = 8  # most frequent POS classes offered
SCAN = "scan/1"  # how the rankings are computed (part of the cache key)
MAX_TOP = 100  # units kept per annotation in the cached result; `top` only truncates it


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


def annotator(decode, names: list[str], tags: np.ndarray | None = None):
    """extra(a, b, columns) -> {name: (rows,) annotation} of a document-aligned chunk, for `scan.chunks`:
    bool for binary annotations (and POS classes, from `tags`, the (tokens,) tag of every token), float
    for scalar ones. decode(ids) -> token strings."""
    from ..analysis import annotate

    plain = [n for n in names if not n.startswith("pos=")]

    def extra(a: int, b: int, cols: dict) -> dict:
        out = annotate(decode(cols["token_ids"]), plain, doc_ids=cols["doc_ids"]) if plain else {}
        out = {k: v if v.dtype == bool else v.astype(np.float64) for k, v in out.items()}
        for n in names:
            if n.startswith("pos="):
                out[n] = tags[a:b].astype(str) == n[4:]
        return out
    return extra


def rank_store(store, decode, names: list[str], tags: np.ndarray | None = None, progress=None,
               chunk: int = CHUNK_TOKENS, probe_sample: int = PROBE_SAMPLE):
    """UnitDiscovery of every stored stream of a recording against the named annotations, in one chunked
    pass (`scan_units`), with a probe of the default stream on `PROBE_SAMPLE` tokens."""
    from ..analysis import scan_units

    units = {s: store.meta["units"][s] for s in store.streams}
    probe_stream = default_stream(units)
    found = scan_units(
        chunks(store, list(units), ("token_ids", "doc_ids"), chunk, by_document=True,
               extra=annotator(decode, names, tags)),
        names, {s: value_range(store, s) for s in units}, probe_stream=probe_stream, probe_sample=probe_sample,
        progress=progress)
    return found, probe_stream


def discovery(ex: Explorer, ref: str, annotations: list[str] | None = None, top: int = 10) -> dict:
    """{annotations: [{name, kind, metric, error, top: [{stream, unit, score, effect}], probe}], available}."""
    store = ex.store(ref)
    top = check_int("top", top, 1, MAX_TOP)
    avail = available(ex, ref)
    names = list(annotations) if annotations else avail
    unknown = [n for n in names if n not in avail]
    if unknown:
        raise bad(f"unknown annotations {unknown}", f"choose from {', '.join(avail)}")
    n = store.n_tokens
    units = {s: store.meta["units"][s] for s in store.streams}
    # the job is keyed by what it computes (the set of annotations, the recording), not by how the answer
    # is shaped: every `top` and order of annotations reads the one result of MAX_TOP units each
    names = list(dict.fromkeys(names))
    computed = sorted(names)

    def run(ctx) -> list[dict]:
        ctx.progress(0.0, f"ranking units against {len(names)} annotations")
        tags = token_pos(ex, ref) if any(nm.startswith("pos=") for nm in computed) else None
        found, probe_stream = rank_store(
            store, ex.model(ref).decode, computed, tags,
            progress=lambda stop: ctx.progress(stop / max(n, 1), f"ranking units: {stop:,} of {n:,} tokens"))
        out = []
        for name in computed:
            rk = found.rankings[name]
            p = found.probes.get((name, probe_stream))
            probe = None if p is None else {"stream": probe_stream, "metric": p.metric,
                                            "test_score": num(p.test_score), "baseline": num(p.baseline)}
            out.append({"name": name, "kind": rk.kind, "metric": rk.metric, "error": num(rk.error),
                        "top": [{"stream": str(s), "unit": int(u), "score": num(sc), "effect": num(e)}
                                for s, u, sc, e in zip(rk.stream[:MAX_TOP], rk.unit[:MAX_TOP],
                                                       rk.score[:MAX_TOP], rk.effect[:MAX_TOP])],
                        "probe": probe})
        return out

    cells = n * sum(units.values()) * len(names)
    out = ex.cached_job("discovery", ref, {"annotations": computed, "tokens": n, "method": SCAN}, run,
                        title=f"unit discovery ({len(names)} annotations)", inline=cells <= INLINE_CELLS)
    by_name = {a["name"]: a for a in out}
    return {"annotations": [{**by_name[nm], "top": by_name[nm]["top"][:top]} for nm in names], "available": avail}
