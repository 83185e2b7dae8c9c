"""Compare mode (docs/api.md, "Compare"): two models on the same data set, over their view recordings.

- loss: per-token loss difference a − b aggregated by the predicted word, by its part of speech
  (Brown tags) and by the error category of model a (Karpathy et al. 2015; "correct" where a is
  right), on the tokens both recordings share (same document and position);
- similarity: linear CKA and SVCCA between every h stream of a and of b, on every shared token;
- matching: Hungarian matching of the units of the chosen stream by |correlation| on every shared token;
- clusters: the word clusters of the two co-clusterings of that stream compared over their shared
  words (adjusted Rand index and contingency table).

Classifiers are compared on their documents: the loss is −log p(gold class) per document and is
grouped by gold class (`by_category`); `by_word` is empty.

The shared tokens are segments of equal (document, position) runs of the two recordings (one
segment when they hold the same tokens); one pass over them in token chunks folds the loss sums per
group and the moments (`moments_scan`) that CKA, SVCCA and the matching need, so memory does not
grow with the recordings. A large pass runs as an analysis job (409 until done).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ..analysis.chunks import CHUNK_TOKENS, TokenChunk
from ..errors import NotFound, RnnvisError
from .common import num, stream_of, tolist
from .perf import doc_predictions, gold_labels
from .taxonomy import start_taxonomy, token_categories
from .scan import doc_table, read_column, read_stream
from .session import Explorer, ModelHandle

INLINE_CELLS = 20_000_000  # shared tokens x scanned units compared within the request
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


@dataclass(frozen=True)
class Alignment:
    """The tokens two recordings share as segments: rows [a[i], a[i] + length[i]) of recording a hold the
    same (document, position) as rows [b[i], b[i] + length[i]) of b."""

    a: np.ndarray  # (segments,) first row in a
    b: np.ndarray  # (segments,) first row in b
    length: np.ndarray  # (segments,)
    same: bool  # the token ids agree on every shared token

    @property
    def shared(self) -> int:
        return int(self.length.sum())

    def pieces(self, chunk: int = CHUNK_TOKENS) -> Iterator[tuple[int, int, int]]:
        """(row in a, row in b, length ≤ chunk) pieces of the segments, in order."""
        for a0, b0, n in zip(self.a.tolist(), self.b.tolist(), self.length.tolist()):
            for k in range(0, n, chunk):
                yield a0 + k, b0 + k, min(chunk, n - k)


def _segments(ta: dict, tb: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Segments of the documents both tables hold, over the positions both recorded (a document's rows
    hold consecutive positions; one whose do not is left out)."""
    ok_a = ta["last"] - ta["first"] == ta["stop"] - ta["start"] - 1
    ok_b = tb["last"] - tb["first"] == tb["stop"] - tb["start"] - 1
    where_b = {d: i for i, d in enumerate(tb["doc"].tolist()) if ok_b[i]}
    ia = np.array([i for i, d in enumerate(ta["doc"].tolist()) if ok_a[i] and d in where_b], np.int64)
    ib = np.array([where_b[d] for d in ta["doc"][ia].tolist()], np.int64)
    lo = np.maximum(ta["first"][ia], tb["first"][ib])
    hi = np.minimum(ta["last"][ia], tb["last"][ib]) + 1
    keep = hi > lo
    ia, ib, lo, hi = ia[keep], ib[keep], lo[keep], hi[keep]
    sa, sb, n = ta["start"][ia] + lo - ta["first"][ia], tb["start"][ib] + lo - tb["first"][ib], hi - lo
    if n.size > 1:  # join segments that continue each other on both sides
        new = np.r_[True, (sa[1:] != sa[:-1] + n[:-1]) | (sb[1:] != sb[:-1] + n[:-1])]
        group = np.cumsum(new) - 1
        sa, sb, n = sa[new], sb[new], np.bincount(group, weights=n).astype(np.int64)
    return sa.astype(np.int64), sb.astype(np.int64), n.astype(np.int64)


def aligned(ex: Explorer, a: str, b: str) -> Alignment:
    """The tokens both view recordings hold (same document and position), as segments, and whether their
    token ids agree there; read chunk by chunk."""
    sa, sb = ex.store(a), ex.store(b)

    def build():
        sga, sgb, n = _segments(doc_table(sa), doc_table(sb))
        al = Alignment(sga, sgb, n, True)
        same = al.shared > 0 and all(np.array_equal(read_column(sa, "token_ids", x, x + k),
                                                    read_column(sb, "token_ids", y, y + k)) for x, y, k in al.pieces())
        return Alignment(sga, sgb, n, bool(same))

    hb = ex.model(b)
    return ex.cached("aligned", a, {"with": hb.id, "with_recording": ex.recording_key(hb)}, build)


def _by_labels(labels, la: np.ndarray, lb: np.ndarray) -> list[dict]:
    g = _Groups()
    g.add_labels(labels, la, lb)
    return g.rows()


class _Groups:
    """Per group sums of the losses of a and b: n, Σ loss_a, Σ loss_b, a wins; folded chunk by chunk."""

    def __init__(self, k: int = 0):
        self.names: list[str] = []
        self.index: dict[str, int] = {}
        self.sums = np.zeros((4, k))

    def add(self, codes: np.ndarray, la: np.ndarray, lb: np.ndarray, k: int | None = None) -> None:
        k = max(k or 0, int(codes.max(initial=-1)) + 1, self.sums.shape[1])
        if k > self.sums.shape[1]:
            self.sums = np.pad(self.sums, ((0, 0), (0, k - self.sums.shape[1])))
        for i, w in enumerate((None, la, lb, (la < lb).astype(np.float64))):
            self.sums[i] += np.bincount(codes, weights=w, minlength=k)

    def add_labels(self, labels, la: np.ndarray, lb: np.ndarray) -> None:
        codes = np.fromiter((self.index.setdefault(str(x), len(self.index)) for x in labels), np.int64,
                            count=len(labels))
        self.names = list(self.index)
        self.add(codes, la, lb)

    def rows(self, names: list[str] | None = None, limit: int | None = None, min_count: int = 1) -> list[dict]:
        """Per group (most tokens first): n, mean loss of a and of b, mean difference a − b, share where a
        wins (as `rnnvis.analysis.loss_difference`)."""
        names = self.names if names is None else names
        n, sa, sb, w = self.sums
        m = np.maximum(n, 1)
        order = sorted((i for i in range(min(len(names), n.size)) if n[i] >= min_count and n[i] > 0),
                       key=lambda i: (-n[i], names[i]))
        rows = [{"group": names[i], "n": int(n[i]), "mean_a": num(sa[i] / m[i]), "mean_b": num(sb[i] / m[i]),
                 "diff": num((sa[i] - sb[i]) / m[i]), "a_wins": num(w[i] / m[i])} for i in order]
        return rows[:limit] if limit else rows


class _LossFold:
    """The loss block of two language models, folded over aligned pieces."""

    def __init__(self, ex: Explorer, a: str, b: str, ha: ModelHandle):
        from .common import token_pos

        self.sa, self.sb, self.itos = ex.store(a), ex.store(b), ha.itos
        self.total, self.words = _Groups(1), _Groups(len(self.itos))
        self.pos, self.tags = _Groups(), token_pos(ex, a)
        cats = token_categories(ex, a)
        self.codes, self.cnames = cats if cats is not None else (None, [])
        self.cats = _Groups(len(self.cnames) + 1)

    def add(self, a0: int, b0: int, n: int) -> None:
        """Scored tokens of rows [a0, a0 + n) of a: loss known on both sides and the next token (the one
        predicted) following in the same document of a."""
        stop = min(self.sa.n_tokens, a0 + n + 1)
        ids, d, p = (read_column(self.sa, k, a0, stop) for k in ("token_ids", "doc_ids", "positions"))
        la = read_column(self.sa, "loss", a0, a0 + n).astype(np.float64)
        lb = read_column(self.sb, "loss", b0, b0 + n).astype(np.float64)
        nxt = np.zeros(n, bool)
        m = min(n, stop - a0 - 1)
        nxt[:m] = (d[1:m + 1] == d[:m]) & (p[1:m + 1] == p[:m] + 1)
        r = np.flatnonzero(nxt & np.isfinite(la) & np.isfinite(lb))
        la, lb, tgt = la[r], lb[r], ids[r + 1].astype(np.int64)
        self.total.add(np.zeros(r.size, np.int64), la, lb)
        ok = (tgt >= 0) & (tgt < len(self.itos))
        self.words.add(tgt[ok], la[ok], lb[ok])
        if self.tags is not None:
            t = self.tags[a0 + r + 1]
            has = t != ""
            self.pos.add_labels(t[has], la[has], lb[has])
        if self.codes is not None:
            c = np.asarray(self.codes[a0 + r]).astype(np.int64)  # 0 not scored, 1 correct, 2 + k category k
            has = c >= 1
            self.cats.add(np.where(c == 1, len(self.cnames), c - 2)[has], la[has], lb[has])

    def block(self) -> tuple[dict, bool]:
        n, sa, sb, w = self.total.sums[:, 0]
        if n == 0:
            raise RnnvisError("the two view recordings share no scored token", "record both models on the same data")
        out = {"tokens": int(n), "mean_a": num(sa / n), "mean_b": num(sb / n), "a_wins": num(w / n),
               "by_word": self.words.rows(self.itos, MAX_WORD_GROUPS, MIN_GROUP),
               "by_pos": self.pos.rows() or None if self.tags is not None else None,
               "by_category": self.cats.rows(self.cnames + ["correct"]) or None if self.codes is not None else None}
        return out, self.codes is not None


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
               by_category=_by_labels(gold, la, lb))
    return out


def h_streams(store) -> list[str]:
    """The stored h streams of every layer and direction, in layer order."""
    from .session import parse_stream

    hs = [n for n in store.streams if parse_stream(n)["type"] == "h"]
    return sorted(hs, key=lambda n: (parse_stream(n)["layer"], parse_stream(n)["direction"]))


def _scan(ex: Explorer, a: str, b: str, ha: ModelHandle, stream: str, al: Alignment, ctx=None) -> dict:
    """{loss (LMs), complete, similarity, matching}: one pass over the shared tokens in chunks."""
    from ..analysis import layer_similarity_moments, match_units_moments, moments_scan

    sa, sb = ex.store(a), ex.store(b)
    ha_s, hb_s = h_streams(sa), h_streams(sb)
    if not ha_s or not hb_s:
        raise RnnvisError("a view recording stores no h stream", "record the models again with every stream")
    names_a, names_b = list(dict.fromkeys(ha_s + [stream])), list(dict.fromkeys(hb_s + [stream]))
    fold = _LossFold(ex, a, b, ha) if ha.kind == "lm" else None

    def pieces() -> Iterator[TokenChunk]:
        done = 0
        for a0, b0, n in al.pieces():
            if fold is not None:
                fold.add(a0, b0, n)
            yield TokenChunk(done, done + n, {**{"a:" + s: read_stream(sa, s, a0, a0 + n) for s in names_a},
                                              **{"b:" + s: read_stream(sb, s, b0, b0 + n) for s in names_b}})
            done += n
            if ctx is not None:
                ctx.progress(done / max(al.shared, 1), f"comparing {done:,} of {al.shared:,} shared tokens")

    m = moments_scan(pieces())
    pa, pb = ["a:" + s for s in ha_s], ["b:" + s for s in hb_s]
    cka, sv = layer_similarity_moments(m, pa, pb, "cka"), layer_similarity_moments(m, pa, pb, "svcca")
    mt = match_units_moments(m, "a:" + stream, "b:" + stream, absolute=True)
    out = {"similarity": {"layers_a": ha_s, "layers_b": hb_s, "cka": tolist(cka.matrix), "svcca": tolist(sv.matrix),
                          "tokens": int(m.n)},
           "matching": {"stream": stream, "absolute": True, "tokens": int(m.n),
                        "pairs": [{"a": int(i), "b": int(j), "r": num(r)}
                                  for i, j, r in zip(mt.rows, mt.cols, mt.matched)],
                        "mean_r": num(mt.mean), "unmatched_a": mt.unmatched_a.astype(int).tolist(),
                        "unmatched_b": mt.unmatched_b.astype(int).tolist()},
           "loss": None, "complete": True}
    if fold is not None:
        out["loss"], out["complete"] = fold.block()
    return out


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
    al = aligned(ex, a, b)
    if al.shared < 2:
        raise RnnvisError(f"the view recordings of {ha.name!r} and {hb.name!r} share fewer than two tokens",
                          "compare models recorded on the same documents")
    units = sum(int(sa.meta["units"][s]) for s in set(h_streams(sa) + [stream_a])) + \
        sum(int(sb.meta["units"][s]) for s in set(h_streams(sb) + [stream_a]))
    has_cats = ha.kind == "lm" and token_categories(ex, a) is not None
    scan = ex.cached_job("compare_scan", a, {**key, "categories": has_cats},
                         lambda ctx: _scan(ex, a, b, ha, stream_a, al, ctx), title=f"comparison with {hb.name}",
                         persist=False, inline=al.shared * units <= INLINE_CELLS)
    complete = scan["complete"]
    if ha.kind == "lm":
        loss = scan["loss"]
        if not complete:
            start_taxonomy(ex, a)
    else:
        loss = _loss_classifier(ex, a, b, ha)
    out = {"a": ha.name, "b": hb.name, "same_tokens": al.same, "shared_tokens": al.shared, "loss": loss,
           "similarity": scan["similarity"], "matching": scan["matching"],
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
    pa = read_column(sa, "positions", s0, s1).astype(np.int64)
    pb = read_column(sb, "positions", t0, t1).astype(np.int64)
    lb_doc = read_column(sb, "loss", t0, t1)
    where = {int(p): i for i, p in enumerate(pb.tolist())}
    la = read_column(sa, "loss", s0, s1).astype(np.float64)
    lb = np.array([lb_doc[where[p]] if p in where else np.nan for p in pa.tolist()], dtype=np.float64)
    tokens = ha.decode(read_column(sa, "token_ids", s0, s1))
    return {"doc": int(doc), "tokens": tokens, "loss_a": tolist(la), "loss_b": tolist(lb), "diff": tolist(la - lb),
            "truncated": bool(s1 - s0 < doc_range(ex, a, int(doc))[1] - doc_range(ex, a, int(doc))[0])}


__all__ = ["aligned", "compare", "compare_tokens", "h_streams"]
