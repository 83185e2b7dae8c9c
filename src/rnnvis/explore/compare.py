"""Compare mode (docs/api.md, "Compare"): two models on the same data set, over their view recordings.

- loss: per-token loss difference a − b aggregated by the predicted word, by its part of speech
  (Brown tags) and by the error category of model a (Karpathy et al. 2015; "correct" where a is
  right), on the tokens both recordings share (same document and position);
- similarity: linear CKA and SVCCA between every h stream of a and of b, on at most 20,000 shared
  tokens (evenly spaced);
- matching: Hungarian matching of the units of the chosen stream by |correlation|;
- clusters: the word clusters of the two co-clusterings of that stream compared over their shared
  words (adjusted Rand index and contingency table).

Classifiers are compared on their documents: the loss is −log p(gold class) per document and is
grouped by gold class (`by_category`); `by_word` is empty.
"""
from __future__ import annotations

import numpy as np

from ..errors import NotFound, RnnvisError
from .common import num, stream_of, tolist
from .perf import doc_predictions, gold_labels, lm_targets, start_taxonomy, token_categories
from .session import Explorer, ModelHandle

MAX_SIM_TOKENS = 20_000
MAX_WORD_GROUPS = 300
MIN_GROUP = 5
MAX_DOC_TOKENS = 5000


def _pair(ex: Explorer, a: str, b: str) -> tuple[ModelHandle, ModelHandle]:
    if not a or not b:
        raise RnnvisError("compare needs two models", "pass ?a=<model>&b=<model>")
    ha, hb = ex.model(a), ex.model(b)
    if ha.dataset != hb.dataset or ha.split != hb.split:
        raise RnnvisError(
            f"{ha.name!r} was trained on {ha.dataset!r} ({ha.split}) and {hb.name!r} on {hb.dataset!r} ({hb.split}): "
            "their recordings cover different tokens",
            "compare two models of the same data set (e.g. brown-lstm with brown-gru)")
    if ha.kind != hb.kind:
        raise RnnvisError(f"{ha.name!r} is a {ha.kind} and {hb.name!r} a {hb.kind}",
                          "compare two language models or two classifiers")
    if ha.level != hb.level:
        raise RnnvisError(f"{ha.name!r} reads {ha.level}s and {hb.name!r} {hb.level}s: their tokens differ",
                          "compare two models of the same level (word or char)")
    return ha, hb


def aligned(ex: Explorer, a: str, b: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """(rows of a, rows of b) of the tokens both view recordings hold (same document and position), and
    whether their token ids agree there."""
    sa, sb = ex.store(a), ex.store(b)

    def build():
        da, pa, db, pb = sa.doc_ids, sa.positions.astype(np.int64), sb.doc_ids, sb.positions.astype(np.int64)
        if da.shape == db.shape and np.array_equal(da, db) and np.array_equal(pa, pb):
            ra = rb = np.arange(da.shape[0])
        else:
            shift = int(max(pa.max(initial=0), pb.max(initial=0))) + 1
            ka, kb = da.astype(np.int64) * shift + pa, db.astype(np.int64) * shift + pb
            _, ra, rb = np.intersect1d(ka, kb, assume_unique=False, return_indices=True)
            o = np.argsort(ra, kind="stable")
            ra, rb = ra[o], rb[o]
        same = bool(np.array_equal(sa.token_ids[ra], sb.token_ids[rb])) if ra.size else False
        return ra, rb, same

    hb = ex.model(b)
    return ex.cached("aligned", a, {"with": hb.id, "with_recording": ex.recording_key(hb)}, build)


def _codes(labels) -> tuple[np.ndarray, list[str]]:
    """(integer code per item, names) of a sequence of group labels."""
    index: dict[str, int] = {}
    codes = np.fromiter((index.setdefault(str(x), len(index)) for x in labels), dtype=np.int64, count=len(labels))
    return codes, list(index)


def _groups(codes: np.ndarray, names: list[str], loss_a: np.ndarray, loss_b: np.ndarray, limit: int | None,
            min_count: int = 1) -> list[dict]:
    """Per group (most tokens first): n, mean loss of a and of b, mean difference a − b, share where a wins
    (as `rnnvis.analysis.loss_difference`, on integer group codes)."""
    k = len(names)
    n = np.bincount(codes, minlength=k)
    ma = np.bincount(codes, weights=loss_a, minlength=k) / np.maximum(n, 1)
    mb = np.bincount(codes, weights=loss_b, minlength=k) / np.maximum(n, 1)
    wins = np.bincount(codes, weights=(loss_a < loss_b).astype(np.float64), minlength=k) / np.maximum(n, 1)
    diff = np.bincount(codes, weights=loss_a - loss_b, minlength=k) / np.maximum(n, 1)
    order = sorted((i for i in range(k) if n[i] >= min_count and n[i] > 0), key=lambda i: (-n[i], names[i]))
    rows = [{"group": names[i], "n": int(n[i]), "mean_a": num(ma[i]), "mean_b": num(mb[i]), "diff": num(diff[i]),
             "a_wins": num(wins[i])} for i in order]
    return rows[:limit] if limit else rows


def _loss_lm(ex: Explorer, a: str, b: str, ha: ModelHandle, ra: np.ndarray, rb: np.ndarray) -> tuple[dict, bool]:
    """(loss block, complete): complete is False while model a's error taxonomy is still being computed."""
    sa, sb = ex.store(a), ex.store(b)
    rows_a, tgt_a = lm_targets(sa)
    la_all, lb_all = sa.output("loss"), sb.output("loss")
    # scored tokens of a whose row is shared with b
    pos_b = np.full(sa.doc_ids.shape[0], -1, dtype=np.int64)
    pos_b[ra] = rb
    keep = pos_b[rows_a] >= 0
    rows_a, tgt_a = rows_a[keep], tgt_a[keep]
    rows_b = pos_b[rows_a]
    la, lb = la_all[rows_a].astype(np.float64), lb_all[rows_b].astype(np.float64)
    ok = np.isfinite(la) & np.isfinite(lb)
    rows_a, tgt_a, la, lb = rows_a[ok], tgt_a[ok], la[ok], lb[ok]
    if la.size == 0:
        raise RnnvisError("the two view recordings share no scored token", "record both models on the same data")
    itos = ha.itos
    ids = sa.token_ids[tgt_a].astype(np.int64)
    vocab, codes = np.unique(ids, return_inverse=True)
    words = [itos[i] if 0 <= i < len(itos) else "<unk>" for i in vocab.tolist()]
    out = {"tokens": int(la.size), "mean_a": num(la.mean()), "mean_b": num(lb.mean()),
           "a_wins": num((la < lb).mean()),
           "by_word": _groups(codes.reshape(-1), words, la, lb, MAX_WORD_GROUPS, MIN_GROUP), "by_pos": None,
           "by_category": None}
    from .common import token_pos

    pos = token_pos(ex, a)
    if pos is not None:
        tags = pos[tgt_a]
        has = tags != ""
        if has.any():
            out["by_pos"] = _groups(*_codes(tags[has]), la[has], lb[has], None)
    complete = True
    cats = token_categories(ex, a)
    if cats is None:
        start_taxonomy(ex, a)
        complete = False
    else:
        codes, cnames = cats
        c = np.asarray(codes[rows_a]).astype(np.int64)  # 0 not scored, 1 correct, 2 + k category k
        has = c >= 1
        if has.any():
            label = np.where(c == 1, len(cnames), c - 2)
            out["by_category"] = _groups(label[has], list(cnames) + ["correct"], la[has], lb[has], None)
    return out, complete


def _loss_classifier(ex: Explorer, a: str, b: str, ha: ModelHandle) -> dict:
    da, pa = doc_predictions(ex, a)
    db, pb = doc_predictions(ex, b)
    common, ia, ib = np.intersect1d(da, db, return_indices=True)
    if common.size == 0:
        raise RnnvisError("the two view recordings share no document", "record both models on the same data")
    y = gold_labels(ex, ha, common)
    out = {"tokens": int(common.size), "mean_a": None, "mean_b": None, "a_wins": None, "by_word": [],
           "by_pos": None, "by_category": None, "unit": "document"}
    if y is None or (y >= pa.shape[1]).any() or (y >= pb.shape[1]).any():
        out["note"] = "the data has no gold labels: no loss to compare"
        return out
    la = -np.log(np.clip(pa[ia, y], 1e-12, 1.0))
    lb = -np.log(np.clip(pb[ib, y], 1e-12, 1.0))
    names = ha.labels or [str(i) for i in range(pa.shape[1])]
    gold = np.array([names[i] if i < len(names) else str(i) for i in y], dtype=object)
    out.update(mean_a=num(la.mean()), mean_b=num(lb.mean()), a_wins=num((la < lb).mean()),
               by_category=_groups(*_codes(gold), la, lb, None))
    return out


def h_streams(store) -> list[str]:
    """The stored h streams of every layer and direction, in layer order."""
    from .session import parse_stream

    hs = [n for n in store.streams if parse_stream(n)["type"] == "h"]
    return sorted(hs, key=lambda n: (parse_stream(n)["layer"], parse_stream(n)["direction"]))


def _sample(n: int, cap: int = MAX_SIM_TOKENS) -> np.ndarray:
    return np.arange(n) if n <= cap else np.unique(np.linspace(0, n - 1, cap).astype(np.int64))


def _read_rows(store, name: str, rows: np.ndarray) -> np.ndarray:
    arr = store.root[f"streams/{name}"]
    return np.asarray(arr.get_orthogonal_selection((rows, slice(None))), dtype=np.float64)


def _similarity(ex: Explorer, a: str, b: str, ra: np.ndarray, rb: np.ndarray) -> dict:
    from ..analysis import layer_similarity

    sa, sb = ex.store(a), ex.store(b)
    pick = _sample(ra.size)
    xa = {n: _read_rows(sa, n, ra[pick]) for n in h_streams(sa)}
    xb = {n: _read_rows(sb, n, rb[pick]) for n in h_streams(sb)}
    if not xa or not xb:
        raise RnnvisError("a view recording stores no h stream", "record the models again with every stream")
    cka = layer_similarity(xa, xb, "cka")
    sv = layer_similarity(xa, xb, "svcca")
    return {"layers_a": list(cka.names_a), "layers_b": list(cka.names_b), "cka": tolist(cka.matrix),
            "svcca": tolist(sv.matrix), "tokens": int(pick.size)}


def _matching(ex: Explorer, a: str, b: str, stream: str, ra: np.ndarray, rb: np.ndarray) -> dict:
    from ..analysis import match_units

    sa, sb = ex.store(a), ex.store(b)
    pick = _sample(ra.size)
    m = match_units(_read_rows(sa, stream, ra[pick]), _read_rows(sb, stream, rb[pick]), absolute=True)
    return {"stream": stream, "absolute": True, "tokens": int(pick.size),
            "pairs": [{"a": int(i), "b": int(j), "r": num(r)} for i, j, r in zip(m.rows, m.cols, m.matched)],
            "mean_r": num(m.mean), "unmatched_a": m.unmatched_a.astype(int).tolist(),
            "unmatched_b": m.unmatched_b.astype(int).tolist()}


def _clusters(ex: Explorer, a: str, b: str, stream: str) -> dict | None:
    from ..analysis import cluster_correspondence
    from .memory import cocluster

    try:
        ca, cb = cocluster(ex, a, stream), cocluster(ex, b, stream)
    except RnnvisError:
        return None
    wa = {w["word"]: c["id"] for c in ca["word_clusters"] for w in c["words"]}
    wb = {w["word"]: c["id"] for c in cb["word_clusters"] for w in c["words"]}
    shared = sorted(set(wa) & set(wb))
    if len(shared) < 2:
        return None
    cc = cluster_correspondence(np.array([wa[w] for w in shared]), np.array([wb[w] for w in shared]))
    return {"ari": num(cc.ari), "table": cc.contingency.astype(int).tolist(),
            "clusters_a": cc.clusters_a.astype(int).tolist(), "clusters_b": cc.clusters_b.astype(int).tolist(),
            "pairs": [{"a": int(x), "b": int(y), "shared": int(n)} for x, y, n in cc.pairs],
            "words": len(shared), "k_a": int(ca["k"]), "k_b": int(cb["k"])}


def compare(ex: Explorer, a: str, b: str, stream: str | None = None) -> dict:
    """The Compare schema of docs/api.md for models a and b."""
    ha, hb = _pair(ex, a, b)
    sa, sb = ex.store(a), ex.store(b)
    stream_a = stream_of(sa, stream, stored=True)
    if stream_a not in sb.streams:
        raise NotFound(f"stream {stream_a!r} is not recorded for {hb.name!r}",
                       f"choose a stream both models have: {', '.join(s for s in sa.streams if s in sb.streams)}")
    if int(sa.meta["units"][stream_a]) < 1:
        raise RnnvisError(f"stream {stream_a!r} has no units", "choose another stream")
    key = {"b": hb.id, "b_recording": ex.recording_key(hb), "stream": stream_a}
    done = ex.peek("compare", a, key)
    if done is not None:
        return done
    ra, rb, same = aligned(ex, a, b)
    if ra.size < 2:
        raise RnnvisError(f"the view recordings of {ha.name!r} and {hb.name!r} share fewer than two tokens",
                          "compare models recorded on the same documents")
    complete = True
    if ha.kind == "lm":
        loss, complete = _loss_lm(ex, a, b, ha, ra, rb)
    else:
        loss = _loss_classifier(ex, a, b, ha)
    out = {"a": ha.name, "b": hb.name, "same_tokens": same, "shared_tokens": int(ra.size), "loss": loss,
           "similarity": _similarity(ex, a, b, ra, rb), "matching": _matching(ex, a, b, stream_a, ra, rb),
           "clusters": _clusters(ex, a, b, stream_a), "stream": stream_a}
    if complete:  # kept in the catalog: a pure function of the two recordings
        ex.cached("compare", a, key, lambda: out, persist=True)
    return out


def compare_tokens(ex: Explorer, a: str, b: str, doc: int) -> dict:
    """{tokens, loss_a, loss_b, diff} of one document of the view recordings (token i's loss is that of
    predicting the token after it)."""
    from .common import doc_range

    ha, hb = _pair(ex, a, b)
    if ha.kind != "lm":
        raise RnnvisError("per-token losses exist for language models only",
                          "compare classifiers with GET /api/compare")
    if doc is None or isinstance(doc, bool) or int(doc) != doc or doc < 0:
        raise RnnvisError(f"doc={doc!r} is not a document number", "pass ?doc= from /api/models/{ref}/documents")
    sa, sb = ex.store(a), ex.store(b)
    s0, s1 = doc_range(ex, a, int(doc))
    t0, t1 = doc_range(ex, b, int(doc))
    s1 = min(s1, s0 + MAX_DOC_TOKENS)
    pa = sa.positions[s0:s1].astype(np.int64)
    pb = sb.positions[t0:t1].astype(np.int64)
    lb_doc = sb.output("loss")[t0:t1]
    where = {int(p): i for i, p in enumerate(pb.tolist())}
    la = sa.output("loss")[s0:s1].astype(np.float64)
    lb = np.array([lb_doc[where[p]] if p in where else np.nan for p in pa.tolist()], dtype=np.float64)
    tokens = ha.decode(sa.token_ids[s0:s1])
    return {"doc": int(doc), "tokens": tokens, "loss_a": tolist(la), "loss_b": tolist(lb), "diff": tolist(la - lb),
            "truncated": bool(s1 - s0 < doc_range(ex, a, int(doc))[1] - doc_range(ex, a, int(doc))[0])}


__all__ = ["aligned", "compare", "compare_tokens", "h_streams"]
