"""The memory views over the view recording: co-clusters of units × words, one word, one unit,
gate saturation, radar of words over units, and 2-D projections (docs/api.md, Exploration)."""
from __future__ import annotations

import numpy as np

from ..errors import NotFound, RnnvisError
from .common import (bad, check_int, check_unit, num, read_streams, span, store_tokens, tolist, view_stream,
                     window_starts, word_pos)
from .session import Explorer, parse_stream

K_RANGE = range(2, 11)
MAX_WORDS = 5000
HIST_BINS = 40


# ---- expected response ------------------------------------------------------------------
def response(ex: Explorer, ref: str, stream: str, min_count: int = 5, max_words: int | None = None):
    """ExpectedResponse of `stream` from the recording's Δ statistics, the `max_words` most frequent words."""
    from ..analysis import expected_response

    store = ex.store(ref)
    h = ex.model(ref)

    def build():
        st = store.stats[stream].deltas
        r = expected_response(st.mean.numpy(), st.var.numpy(), st.count.numpy(), h.itos, min_count=min_count)
        if max_words is not None and len(r.words) > max_words:
            keep = np.sort(np.argsort(-r.counts, kind="stable")[:max_words])
            r = type(r)([r.words[i] for i in keep], r.word_ids[keep], r.counts[keep], r.mean[keep], r.std[keep],
                        r.min_count)
        return r
    return ex.cached("response", ref, {"stream": stream, "min_count": min_count, "max_words": max_words}, build)


def _check_cocluster_args(min_count, max_words, k):
    check_int("min_count", min_count, 1)
    check_int("max_words", max_words, 2, MAX_WORDS)
    if k is not None:
        check_int("k", k, 1, 64)


def cocluster(ex: Explorer, ref: str, stream: str | None = None, k: int | None = None, min_count: int = 5,
              max_words: int = 400) -> dict:
    """Cocluster: units × words co-clustered on |expected response|; k by the spectral gap (else bipartite
    modularity) unless given; `k_rule` says which."""
    from ..analysis import cocluster as run_cocluster
    from ..analysis.cocluster import GAP

    stream = view_stream(ex, ref, stream, words=True)
    _check_cocluster_args(min_count, max_words, k)

    def build():
        r = response(ex, ref, stream, min_count, max_words)
        if len(r.words) < 2:
            raise RnnvisError(f"only {len(r.words)} word(s) occur at least {min_count} times",
                              "lower min_count")
        cc = run_cocluster(r.mean.T, k=k, k_range=K_RANGE, seed=0, words=r.words)
        pos = word_pos(ex, ref)
        return {
            "stream": stream, "k": int(cc.n_clusters),
            "k_scores": [{"k": int(a), "score": num(b), "gap": num(g)}
                         for a, b, g in zip(cc.k_values, cc.k_scores, cc.k_gaps)],
            "score_name": "bipartite modularity", "gap_name": "spectral gap σk/σk+1", "gap_threshold": GAP,
            "k_rule": cc.k_rule,
            "units": [{"unit": u, "cluster": int(c)} for u, c in enumerate(cc.unit_labels)],
            "unit_clusters": [{"id": i, "units": [int(u) for u in us]} for i, us in enumerate(cc.unit_clusters)],
            "word_clusters": [{"id": i, "words": [
                {"word": r.words[w], "weight": num(cc.word_weights[w]), "count": int(r.counts[w]),
                 "pos": pos.get(r.words[w])} for w in ws]} for i, ws in enumerate(cc.word_clusters)],
            "links": tolist(cc.link, 6), "n_words": len(r.words), "min_count": int(min_count),
        }
    # "cocluster/2": k by the spectral gap, k-1 singular vectors (results kept by earlier versions are not reused)
    return ex.cached("cocluster/2", ref, {"stream": stream, "k": k, "min_count": min_count, "max_words": max_words},
                     build, persist=True)


def default_cocluster(ex: Explorer, ref: str, stream: str, k: int | None = None) -> dict:
    """The default co-clustering of `stream` (with every word, min_count 1, on a tiny recording)."""
    try:
        return cocluster(ex, ref, stream, k)
    except RnnvisError as e:
        if "lower min_count" not in (e.fix or ""):
            raise
        return cocluster(ex, ref, stream, k, min_count=1)


def unit_labels(ex: Explorer, ref: str, stream: str, k: int | None = None) -> tuple[np.ndarray, int]:
    """(cluster of every unit, k) of the default co-clustering of `stream`."""
    cc = default_cocluster(ex, ref, stream, k)
    return np.array([u["cluster"] for u in cc["units"]], dtype=np.int64), int(cc["k"])


# ---- one word, one unit --------------------------------------------------------------------
def _word_id(ex: Explorer, ref: str, word: str) -> int:
    h = ex.model(ref)
    stoi = ex.cached("stoi", ref, {}, lambda: {w: i for i, w in enumerate(h.itos)})
    for w in (word, word.lower()):
        if w in stoi:
            return stoi[w]
    raise NotFound(f"word {word!r} is not in the vocabulary of {h.name}", "check the spelling")


def word(ex: Explorer, ref: str, stream: str | None, word: str) -> dict:
    """{word, count, response: [units], std: [units], pos} of one word."""
    store = ex.store(ref)
    stream = view_stream(ex, ref, stream, words=True)
    if not word:
        raise bad("no word given", "pass ?word=...")
    wid = _word_id(ex, ref, word)
    st = store.stats[stream].deltas
    count = int(st.count[wid])
    if count == 0:
        raise NotFound(f"word {word!r} does not occur in the view recording", "choose a word of the cocluster view")
    w = ex.model(ref).itos[wid]
    return {"word": w, "count": count, "response": tolist(st.mean[wid].numpy()),
            "std": tolist(np.sqrt(np.maximum(st.var[wid].numpy(), 0))), "pos": word_pos(ex, ref).get(w)}


def _unit_deltas(ex: Explorer, ref: str, stream: str, unit: int) -> tuple[np.ndarray, np.ndarray]:
    """(values (tokens,), Δ (tokens,)) of one unit over the view recording, Δ as the recorder takes it."""
    store = ex.store(ref)

    def build():
        v = store.read(stream, units=[unit])[:, 0].astype(np.float64)
        prev = np.r_[0.0, v[:-1]]
        prev[window_starts(ex, ref)] = 0.0
        return v, v - prev
    return ex.cached("unit_values", ref, {"stream": stream, "unit": unit}, build)


def unit(ex: Explorer, ref: str, stream: str | None, unit: int, k: int = 12, min_count: int = 5) -> dict:
    """{unit, stream, positive, negative: [WordStat], histogram, mean, std, cluster} of one unit."""
    from ..analysis import QUANTILE_LEVELS, grouped_quantiles, top_k_words

    store = ex.store(ref)
    stream = view_stream(ex, ref, stream, words=True)
    unit = check_unit(store, stream, unit)
    k = check_int("k", k, 1, 200)

    def build():
        r = response(ex, ref, stream, min_count)
        col = r.mean[:, unit:unit + 1]
        pos_i, neg_i = top_k_words(col, k)
        pos_i = [i for i in pos_i[0] if col[i, 0] > 0]
        neg_i = [i for i in neg_i[0] if col[i, 0] < 0]
        q = {}
        if store.streams and stream in store.streams:
            values, delta = _unit_deltas(ex, ref, stream, unit)
            ids = np.asarray(store.token_ids, dtype=np.int64)
            chosen = r.word_ids[pos_i + neg_i]
            sel = np.isin(ids, chosen)
            if sel.any():
                gids, gq = grouped_quantiles(delta[sel][:, None], ids[sel], QUANTILE_LEVELS)
                q = {int(g): gq[:, j, 0] for j, g in enumerate(gids)}
            counts, edges = np.histogram(values, bins=HIST_BINS)
            hist = {"edges": tolist(edges, 6), "counts": counts.astype(int).tolist()}
            mean, std = num(values.mean()), num(values.std())
        else:  # not stored per token: moments and histogram of the unit statistics (no word quantiles)
            u = store.stats[stream].units
            hist = stats_histogram(u, unit)
            mean, std = num(u.mean[unit]), num(np.sqrt(max(float(u.var[unit]), 0.0)))

        def stat(i):
            wid = int(r.word_ids[i])
            return {"word": r.words[i], "mean": num(r.mean[i, unit]), "std": num(r.std[i, unit]),
                    "count": int(r.counts[i]), "q": tolist(q[wid]) if wid in q else None}
        try:
            labels, _ = unit_labels(ex, ref, stream)
            cluster = int(labels[unit])
        except RnnvisError:
            cluster = None
        return {"unit": unit, "stream": stream, "positive": [stat(i) for i in pos_i],
                "negative": [stat(i) for i in neg_i], "histogram": hist, "mean": mean, "std": std,
                "cluster": cluster}
    return ex.cached("unit", ref, {"stream": stream, "unit": unit, "k": k, "min_count": min_count}, build)


def stats_histogram(u, unit: int) -> dict:
    """{edges, counts} of one unit's values from the recording's unit statistics (a histogram of
    every token folded while recording; under/overflow counted in the end bins), in at most
    HIST_BINS bins: the distribution of a stream that is not stored per token."""
    h = u.hist[unit].numpy().astype(np.int64)  # (bins + 2,) [underflow, bins..., overflow]
    lo, hi = float(u.lo[unit]), float(u.hi[unit])
    counts = h[1:-1].copy()
    counts[0] += h[0]
    counts[-1] += h[-1]
    bins = counts.size
    g = -(-bins // HIST_BINS)  # source bins per shown bin
    n = -(-bins // g)
    counts = np.pad(counts, (0, n * g - bins)).reshape(n, g).sum(1)
    edges = lo + (hi - lo) * np.minimum(np.arange(n + 1) * g, bins) / bins
    return {"edges": tolist(edges, 6), "counts": counts.astype(int).tolist()}


# ---- saturation ------------------------------------------------------------------------------
def saturation(ex: Explorer, ref: str) -> dict:
    """Per gate unit the share of steps below/above the saturation thresholds, and a summary."""
    from ..analysis import gate_saturation_from_counts

    store = ex.store(ref)

    def build():
        stats = store.stats
        counts = {n: (s.units.below.numpy(), s.units.above.numpy(), int(s.units.count)) for n, s in stats.items()}
        try:
            sat = gate_saturation_from_counts(counts)
        except RnnvisError:  # no gates (a plain RNN)
            return {"gates": [], "summary": []}
        gates = []
        for s in sat.streams:
            p = parse_stream(s.name)
            gates.append({"stream": s.name, "layer": p["layer"], "direction": p["direction"], "gate": s.gate,
                          "units": [{"unit": u, "low": num(lo), "high": num(hi)}
                                    for u, (lo, hi) in enumerate(zip(s.left, s.right))]})
        summary = [{"layer": s.layer if s.layer == "*" else parse_stream(s.layer + ".x")["layer"], "gate": s.gate,
                    "mean_low": num(s.left), "mean_high": num(s.right), "share_saturated": num(s.saturated)}
                   for s in sat.summary]
        return {"gates": gates, "summary": summary}
    return ex.cached("saturation", ref, {}, build)


# ---- radar ---------------------------------------------------------------------------------------
def radar(ex: Explorer, ref: str, stream: str | None, words: list[str], dims: list[int] | None = None,
          n: int = 8) -> dict:
    """Response of chosen units (dims) to a few words; default dims vary most across the words."""
    store = ex.store(ref)
    stream = view_stream(ex, ref, stream, words=True)
    words = [w for w in (words or []) if w]
    if not words:
        raise bad("no words given", "pass ?words=a,b,c")
    if len(words) > 32:
        raise bad(f"{len(words)} words", "compare at most 32 words")
    n = check_int("n", n, 1, 64)
    st = store.stats[stream].deltas
    ids = [_word_id(ex, ref, w) for w in words]
    itos = ex.model(ref).itos
    for w, i in zip(words, ids):
        if int(st.count[i]) == 0:
            raise NotFound(f"word {w!r} does not occur in the view recording", "choose words of the cocluster view")
    values = st.mean[ids].numpy().astype(np.float64)  # (words, units)
    if dims:
        for d in dims:
            check_unit(store, stream, d)
        chosen, how = [int(d) for d in dims], "given"
    else:
        var = values.var(0) if len(ids) > 1 else np.abs(values[0])
        chosen, how = [int(u) for u in np.argsort(-var, kind="stable")[:n]], "variance across words"
    return {"stream": stream, "words": [itos[i] for i in ids], "dims": [{"unit": u, "label": f"unit {u}"} for u in chosen],
            "values": tolist(values[:, chosen]), "chosen_by": how}


# ---- projection --------------------------------------------------------------------------------
def projection(ex: Explorer, ref: str, what: str = "units", stream: str | None = None, method: str = "pca",
               text: str | None = None, doc: int | None = None, start: int | None = None,
               stop: int | None = None) -> dict:
    """2-D map of the units (by response profile over the cocluster words) or of a state trajectory."""
    from ..analysis import project_trajectory, project_units

    if what not in ("units", "trajectory"):
        raise bad(f"what={what!r}", "use 'units' or 'trajectory'")
    if method not in ("pca", "tsne", "umap"):
        raise bad(f"method={method!r}", "use pca, tsne or umap")
    if what == "units":
        stream = view_stream(ex, ref, stream, words=True)

        def build():
            cc = default_cocluster(ex, ref, stream)
            r = response(ex, ref, stream, cc["min_count"], 400)
            p = project_units(r.mean.T, method, seed=0)
            groups = [u["cluster"] for u in cc["units"]]
            return {"what": what, "method": method,
                    "points": [{"x": num(x), "y": num(y), "label": f"unit {i}", "group": groups[i]}
                               for i, (x, y) in enumerate(p.coords)],
                    "explained": None if p.explained_variance is None else tolist(p.explained_variance)}
        return ex.cached("projection", ref, {"what": what, "stream": stream, "method": method}, build)
    if (text is None) == (doc is None):
        raise bad("a trajectory needs exactly one of text= or doc=", "type a text or pick a document")
    params = {"what": what, "stream": stream, "method": method, "text": text, "doc": doc, "start": start,
              "stop": stop}
    t = ex.cached("projection", ref, params, lambda: _trajectory(ex, ref, stream, method, text, doc, start, stop))
    return {"what": "trajectory", "method": method,  # rendered per answer from the compact cached form
            "points": [{"x": num(x), "y": num(y), "label": tok, "group": None}
                       for (x, y), tok in zip(t["coords"].tolist(), t["tokens"])], "explained": t["explained"]}


def _trajectory(ex: Explorer, ref: str, stream, method, text, doc, start, stop) -> dict:
    from ..analysis import project_trajectory

    h = ex.model(ref)
    if text is not None:
        from .sentence import encode_typed

        encode_typed(h, text)  # 413 above MAX_TEXT characters or MAX_TOKENS tokens
        tokens, rec, _ = h.run_text(text)
        names = {n: rec[n].shape[-1] for n in rec.streams}
        from .common import default_stream

        stream = stream or default_stream(names)
        if stream not in rec:
            raise NotFound(f"unknown stream {stream!r}", f"choose one of {', '.join(rec.streams)}")
        states = rec[stream][0]
    else:
        stream = view_stream(ex, ref, stream)
        a, s0, s1 = span(ex, ref, doc, start, stop)
        states = read_streams(ex, ref, [stream], a + s0, a + s1)[stream]
        tokens = store_tokens(ex, ref)[a + s0:a + s1]
    p = project_trajectory(states, method, tokens=tokens, seed=0)
    return {"coords": np.asarray(p.coords, dtype=np.float64), "tokens": list(tokens),  # (tokens, 2)
            "explained": None if p.explained_variance is None else tolist(p.explained_variance)}
