"""Interventions as views (docs/api.md, "Interventions"): ablate, clamp or scale units of one
stream and measure the effect over the view recording's corpus, next to random-unit controls
(`corpus_effects`, a cached analysis job), or on one document or typed text (`text_effects`);
`intervene` is the same from Python (`rnnvis.intervene`) and the CLI (`rnnvis intervene`).

The corpus pass runs the recording's own windows again, the original, the edit and every control
draw stacked as rows of ONE batch (`Edit.rows`), so the three share every step's product and Δ is
exactly 0 where an edit changes nothing. Per-token losses live for one batch; the groups keep sums
(`analysis.effects.EffectSums`), so memory does not grow with the corpus.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..analysis.chunks import CHUNK_TOKENS
from ..analysis.effects import CorrelationSums, EffectSums, Effects, GroupEffect, classifier_effects, random_units
from ..errors import NotFound, RnnvisError
from .common import bad, check_int, doc_range, num, token_pos
from .session import Explorer, ModelHandle, parse_stream

CONTROL_DRAWS = 5  # random-unit control draws by default
MAX_DRAWS = 20
MAX_UNITS = 512  # units of one edit
LOGIT_BUDGET = 64_000_000  # logits (floats, 256 MB) of one batch, all variants together: a recording's
# batch at 10k words (32 windows x 200 tokens); fewer rows would leave each step's product tiny
MAX_ROWS = 64  # windows of one batch
TOP_GROUPS = 30  # groups per family in the answer
MIN_WORD_TOKENS = 3  # a word group needs this many predicted tokens
MAX_TEXT_TOKENS = 2000
TOP_NEXT = 5
SCAN = "effects/1"  # how the effects are computed (part of the cache key)
SET_MODES = ("zero", "mean", "value", "scale")


# -- the request ----------------------------------------------------------------------
def resolve_stream(names, stream: str | None, layer: int = 0, what: str = "h", direction: str = "fwd") -> str:
    """The stream an edit names: `stream` itself, else the one at layer/direction of kind `what`
    ('h', 'c' or 'gate.f'); 404 with the choices otherwise."""
    names = list(names)
    if stream:
        if stream not in names:
            raise NotFound(f"unknown stream {stream!r}", f"choose one of {', '.join(names)}")
        return stream
    for n in names:
        p = parse_stream(n)
        kind = f"gate.{p['gate']}" if p["type"] == "gate" else p["type"]
        if p["layer"] == layer and p["direction"] == direction and kind == what:
            return n
    raise NotFound(f"the model has no stream {what} at layer {layer} ({direction})", f"choose one of {', '.join(names)}")


def parse_units(units) -> tuple[int, ...]:
    """Units as a tuple of distinct ints, from a list or '3,17'."""
    if isinstance(units, str):
        try:
            units = [int(u) for u in units.replace(" ", "").split(",") if u]
        except ValueError:
            raise bad(f"units {units!r} are not whole numbers", "e.g. --units 3,17") from None
    out = tuple(dict.fromkeys(int(u) for u in (units or ())))
    if not out:
        raise bad("no units to intervene on", "name at least one unit, e.g. --units 3,17")
    if len(out) > MAX_UNITS:
        raise bad(f"{len(out)} units in one edit", f"name at most {MAX_UNITS}")
    return out


class Spec:
    """A checked intervention: stream, units, mode, value, control draws; `edit(units, rows)` builds it."""

    def __init__(self, store, stream, units, mode="zero", value=None, controls=CONTROL_DRAWS, seed=0,
                 steps=None):
        self.stream = stream
        self.units = parse_units(units)
        width = int(store.units[stream])
        out = [u for u in self.units if not 0 <= u < width]
        if out:
            raise NotFound(f"units {out} do not exist in {stream}", f"choose units in 0..{width - 1}")
        if mode not in SET_MODES:
            raise bad(f"unknown mode {mode!r}", f"use one of {', '.join(SET_MODES)} (patch: a per-text source)")
        if mode in ("value", "scale"):
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise bad(f"mode {mode!r} needs a number, got {value!r}", "e.g. --set 0.5 or value=1.0") from None
            if not np.isfinite(value):
                raise bad(f"value {value} is not finite", "pass a finite number")
        else:
            value = None
        self.mode, self.value = mode, value
        self.draws = check_int("controls", controls, 0, MAX_DRAWS)
        self.seed = int(seed)
        self.steps = None if steps is None else tuple(int(s) for s in steps)
        self.means = None
        if mode == "mean":  # the recording's per-unit means over the corpus
            self.means = store.stats[stream].units.mean.double().numpy()
        self.control_units = random_units(width, len(self.units), self.units, self.draws, self.seed)

    def edit(self, units, rows=None):
        from ..recording.intervene import Edit

        value = self.value if self.mode != "mean" else tuple(float(self.means[u]) for u in units)
        mode = "value" if self.mode == "mean" else self.mode
        return Edit(self.stream, tuple(units), mode, value, steps=self.steps, rows=rows)

    def variants(self, rows: int) -> list:
        """Edits of a batch stacked as [original, edit, control 1..K] blocks of `rows` rows."""
        out = [self.edit(self.units, tuple(range(rows, 2 * rows)))]
        for k, u in enumerate(self.control_units):
            out.append(self.edit(u, tuple(range((2 + k) * rows, (3 + k) * rows))))
        return out

    def params(self) -> dict:
        return {"stream": self.stream, "units": list(self.units), "mode": self.mode, "value": self.value,
                "controls": self.draws, "seed": self.seed, "steps": None if self.steps is None else list(self.steps)}


# -- running ---------------------------------------------------------------------------
def token_loss(logits: torch.Tensor, targets: torch.Tensor, rows: int = 256) -> torch.Tensor:
    """(N, T) -log p(target) from logits (N, T, V); NaN where the target is -1. In pieces of `rows`
    tokens (torch's fused log-sum-exp), as `recording.engine.lm_outputs`."""
    N, T, V = logits.shape
    lg, tg = logits.reshape(-1, V), targets.reshape(-1)
    out = torch.empty(lg.shape[0])
    for a in range(0, lg.shape[0], rows):
        x = lg[a:a + rows].float()
        t = tg[a:a + rows]
        out[a:a + rows] = torch.logsumexp(x, 1) - x.gather(1, t.clamp(min=0)[:, None])[:, 0]
    return out.masked_fill_(tg < 0, float("nan")).reshape(N, T)


def _run_variants(h: ModelHandle, spec: Spec, ids: torch.Tensor, lengths: torch.Tensor):
    """Model output for [original, edit, controls] stacked along the batch; ids (R, T)."""
    from ..recording.intervene import run_edited

    V = 2 + spec.draws
    batch = {"ids": ids.repeat(V, 1), "lengths": lengths.repeat(V)}
    with h.lock:
        out = run_edited(h.module, batch, spec.variants(ids.shape[0]), forward=h.forward)
    return out[0] if isinstance(out, (tuple, list)) else out


def _window_batches(W: np.ndarray, per_row: int):
    """Groups of consecutive windows (rows of W) holding at most `per_row`-bounded rows."""
    lengths = W[:, 1] - W[:, 0]
    i = 0
    while i < W.shape[0]:
        T = int(lengths[i:i + MAX_ROWS].max())
        R = max(1, min(MAX_ROWS, per_row // max(T, 1)))
        yield W[i:i + R]
        i += R


def _bucket(name: str, v: np.ndarray) -> np.ndarray:
    """Group names of an annotation's values: bool -> name where true; numbers -> 'name=k' buckets."""
    if v.dtype == bool:
        return np.where(v, name, "").astype(object)
    k = np.nan_to_num(np.asarray(v, np.float64), nan=-1).astype(np.int64)
    lab = np.where(k < 0, "", np.where(k <= 3, k.astype(str), np.where(k < 10, "4-9", np.where(k < 20, "10-19", "20+"))))
    return np.array([f"{name}={x}" if x else "" for x in lab.tolist()], dtype=object)


def lm_corpus_effects(ex: Explorer, ref: str, spec: Spec, ctx) -> Effects:
    """Δ loss over every token of the view recording of an LM, grouped, with controls."""
    from ..recording.engine import next_token_targets
    from .discovery import annotator, level_annotations
    from .scan import chunks
    from .taxonomy import token_categories

    h = ex.model(ref)
    store = ex.store(ref)
    itos = h.itos
    V = len(itos)
    variants = 2 + spec.draws
    per_row = max(1, LOGIT_BUDGET // (variants * max(V, 1)))  # tokens of one variant per batch
    names = level_annotations(h)
    tags = token_pos(ex, ref)
    cats = token_categories(ex, ref)
    W = store.windows
    n = store.n_tokens
    sums = EffectSums(spec.draws)
    corr = CorrelationSums() if spec.stream in store.streams else None  # stored per token: h by default
    done = 0
    for ch in chunks(store, (), ("token_ids", "doc_ids"), CHUNK_TOKENS, by_document=True,
                     extra=annotator(h.decode, names, None)):
        a, b = ch.start, ch.stop
        ids_c = ch.columns["token_ids"].astype(np.int64)
        loss = np.full((variants, b - a), np.nan)  # loss of predicting the next token, at each row
        wins = W[(W[:, 0] >= a) & (W[:, 0] < b)]
        for group in _window_batches(wins, per_row):
            ctx.check()
            L = [int(min(w1, b) - w0) for w0, w1 in group]
            T = max(L)
            ids = torch.zeros(len(L), T, dtype=torch.long)
            for r, (w0, _) in enumerate(group):
                ids[r, :L[r]] = torch.from_numpy(ids_c[w0 - a:w0 - a + L[r]])
            lengths = torch.tensor(L)
            with torch.no_grad():
                logits = _run_variants(h, spec, ids, lengths)  # (variants*R, T, V)
                tg = next_token_targets(ids, lengths).repeat(variants, 1)
                lv = token_loss(logits, tg).numpy().reshape(variants, len(L), T)
            for r, (w0, _) in enumerate(group):
                loss[:, w0 - a:w0 - a + L[r]] = lv[:, r, :L[r]]
        before, delta = loss[0], loss[1] - loss[0]
        ctrl = loss[2:] - loss[0][None]
        nxt = np.concatenate([ids_c[1:], [0]])  # the predicted token of each row
        sums.add("all", "all", before, delta, ctrl)
        sums.add("word", np.array([itos[i] if 0 <= i < V else "<unk>" for i in nxt.tolist()], dtype=object),
                 before, delta, ctrl)
        if tags is not None:
            sums.add("pos", np.concatenate([tags[a + 1:b], [""]]).astype(object), before, delta, ctrl)
        xs = store.read(spec.stream, a, b, units=list(spec.units)) if corr is not None else None
        for nm in names:
            v = ch.columns.get(nm)
            if v is not None:
                sums.add("annotation", _bucket(nm, np.concatenate([v[1:], v[-1:]])), before, delta, ctrl)
                if xs is not None:
                    corr.add(nm, xs, v)
        if cats is not None:
            codes, cnames = cats
            c = np.asarray(codes[a:b]).astype(np.int64)
            lab = np.array(["" if k == 0 else "correct" if k == 1 else cnames[k - 2] if k - 2 < len(cnames) else ""
                            for k in c.tolist()], dtype=object)
            sums.add("error", lab, before, delta, ctrl)
        done = b
        ctx.progress(done / max(n, 1), f"intervening: {done:,} of {n:,} tokens")
    return dataclasses.replace(sums.result("lm"), correlation=None if corr is None else corr.result())


def classifier_corpus_effects(ex: Explorer, ref: str, spec: Spec, ctx) -> Effects:
    """Δ p(gold class) and accuracy per slice over every document of a classifier's view recording."""
    from .perf import class_names, gold_labels

    h = ex.model(ref)
    store = ex.store(ref)
    docs, starts, stops = ex.doc_index(ref)
    y = gold_labels(ex, h, docs)
    if y is None:
        raise RnnvisError(f"the view data of {h.name!r} has no gold class labels",
                          "serve labelled data to measure an intervention on a classifier")
    tok_ids = store.token_ids
    variants = 2 + spec.draws
    probs = []
    for i in range(0, docs.size, MAX_ROWS):
        ctx.check()
        rows = [np.asarray(tok_ids[a:b], np.int64) for a, b in zip(starts[i:i + MAX_ROWS], stops[i:i + MAX_ROWS])]
        T = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), T, dtype=torch.long)
        for r, seq in enumerate(rows):
            ids[r, :len(seq)] = torch.from_numpy(seq)
        with torch.no_grad():
            logits = _run_variants(h, spec, ids, torch.tensor([len(r) for r in rows]))  # (variants*R, classes)
        probs.append(torch.softmax(logits.float(), -1).numpy().reshape(variants, len(rows), -1))
        done = min(docs.size, i + MAX_ROWS)
        ctx.progress(done / docs.size, f"intervening: {done:,} of {docs.size:,} documents")
    p = np.concatenate(probs, 1)  # (variants, docs, classes)
    tokens = [h.decode(tok_ids[a:b]) for a, b in zip(starts, stops)]
    return classifier_effects(tokens, p[0], p[1], p[2:], y, class_names(h, p.shape[-1]))


def group_json(g: GroupEffect) -> dict:
    return {"family": g.family, "name": g.name, "tokens": g.tokens, "before": num(g.before), "after": num(g.after),
            "delta": num(g.delta), "control_mean": num(g.control_mean), "control_std": num(g.control_std),
            "excess": num(g.excess), "z": num(g.z) if np.isfinite(g.z) else None}


def effects_json(eff: Effects, h: ModelHandle, spec: Spec) -> dict:
    fams = {}
    for fam in sorted({g.family for g in eff.groups} - {"all"}):
        rows = eff.family(fam)
        if fam == "word":
            rows = [g for g in rows if g.tokens >= MIN_WORD_TOKENS]
        fams[fam] = [group_json(g) for g in rows[:TOP_GROUPS]]
    overall = next((g for g in eff.groups if g.family == "all"), None)
    return {"model": h.name, "split": h.split, "kind": eff.kind, **spec.params(),
            "control_units": [list(u) for u in spec.control_units],
            "measure": "loss" if eff.kind == "lm" else "p_gold",
            "tokens": int(eff.tokens), "overall": None if overall is None else group_json(overall), "groups": fams,
            # the correlational score beside the causal one: r of each edited unit with each annotation
            "correlation": None if eff.correlation is None else
            {k: [num(r) for r in v] for k, v in eff.correlation.items()}}


def corpus_effects(ex: Explorer, ref: str, units, stream: str | None = None, layer: int = 0, what: str = "h",
              direction: str = "fwd", mode: str = "zero", value=None, controls: int = CONTROL_DRAWS,
              seed: int = 0, wait_s: float = 0.0) -> dict:
    """The effect of an intervention over the view recording (a cached analysis job; 409 while it runs)."""
    h = ex.model(ref)
    store = ex.store(ref)
    stream = resolve_stream(store.all_streams, stream, layer, what, direction)
    spec = Spec(store, stream, units, mode, value, controls, seed)
    run = classifier_corpus_effects if h.kind == "classifier" else lm_corpus_effects

    def job(ctx) -> dict:
        ctx.progress(0.0, f"ablating {len(spec.units)} units of {stream} and {spec.draws} random controls")
        return effects_json(run(ex, ref, spec, ctx), h, spec)

    return ex.cached_job("interventions", ref, {**spec.params(), "tokens": store.n_tokens, "method": SCAN}, job,
                         title=f"intervention on {stream}", wait_s=wait_s)


# -- one text --------------------------------------------------------------------------
def _top(probs: torch.Tensor, itos: list[str]) -> list[list[dict]]:
    p, i = probs.topk(min(TOP_NEXT, probs.shape[-1]), -1)
    return [[{"token": itos[int(k)] if 0 <= int(k) < len(itos) else "<unk>", "p": round(float(q), 5)}
             for q, k in zip(pr, ir)] for pr, ir in zip(p, i)]


def text_effects(ex: Explorer, ref: str, units, stream: str | None = None, layer: int = 0, what: str = "h",
                   direction: str = "fwd", mode: str = "zero", value=None, controls: int = CONTROL_DRAWS,
                   seed: int = 0, doc: int | None = None, text: str | None = None, source: str | None = None,
                   steps=None) -> dict:
    """One document (`doc`, of the view recording) or a typed `text`, before and after the edit: per token
    the loss of that token (predicted at the step before; None for the first), its change, the mean change
    under the controls and the top next tokens before/after; for a classifier the class probabilities.
    mode='patch' copies the units' states from the typed `source` text."""
    from ..recording.intervene import Edit, editing, source_streams

    h = ex.model(ref)
    names = h.streams()
    stream = resolve_stream(names, stream, layer, what, direction)
    if (doc is None) == (text is None):
        raise bad("give exactly one of doc and text", "doc: a document of the view recording; text: your own text")
    if text is not None:
        tokens, ids = h.encode(text)
    else:
        a, b = doc_range(ex, ref, int(doc))
        b = min(b, a + MAX_TEXT_TOKENS)
        ids = [int(i) for i in ex.store(ref).column("token_ids", a, b)]
        tokens = h.decode(ids)
    if len(ids) > MAX_TEXT_TOKENS:
        raise bad(f"the text has {len(ids)} tokens", f"use at most {MAX_TEXT_TOKENS}")
    x = torch.tensor([ids], dtype=torch.long)
    lengths = torch.tensor([len(ids)])
    if mode == "patch":
        if source is None:
            raise bad("mode 'patch' needs a source text", "pass source= (the text whose states are copied)")
        u = parse_units(units)
        _, sids = h.encode(source)
        with h.lock:
            src = source_streams(h.module, {"ids": torch.tensor([sids]), "lengths": torch.tensor([len(sids)])},
                                 h.forward)
            spec = None
            edits = [Edit(stream, u, "patch", steps=steps, rows=(1,))]
            with editing(h.module, edits, src):
                out = h.forward(h.module, {"ids": x.repeat(2, 1), "lengths": lengths.repeat(2)})
        control_units: list = []
        out = out[0] if isinstance(out, (tuple, list)) else out
        params = {"stream": stream, "units": list(u), "mode": "patch", "value": None, "controls": 0, "seed": seed,
                  "steps": steps, "source": source}
    else:
        store = _StreamsOnly(names) if mode != "mean" else ex.store(ref)
        spec = Spec(store, stream, units, mode, value, controls, seed, steps)
        with torch.no_grad():
            out = _run_variants(h, spec, x, lengths)
        control_units = [list(u) for u in spec.control_units]
        params = spec.params()
    base = {"model": h.name, "kind": h.kind, **params, "control_units": control_units,
            "tokens": tokens, "doc": doc}
    out = out.float()
    if out.dim() == 2:  # a classifier: (variants, classes)
        p = torch.softmax(out, -1)
        labels = list(h.labels or [str(i) for i in range(p.shape[-1])])
        return {**base, "classes": labels, "before": [round(float(v), 6) for v in p[0]],
                "after": [round(float(v), 6) for v in p[1]],
                "controls": [[round(float(v), 6) for v in row] for row in p[2:]]}
    tg = torch.full((out.shape[0], out.shape[1]), -1, dtype=torch.long)
    tg[:, :-1] = x[0, 1:]
    loss = token_loss(out, tg).numpy()  # (variants, T): loss of predicting token t+1 at step t
    shift = np.concatenate([np.full((loss.shape[0], 1), np.nan), loss[:, :-1]], 1)  # loss of token t
    before, after = shift[0], shift[1]
    ctrl = shift[2:] - shift[0][None] if shift.shape[0] > 2 else np.zeros((0, shift.shape[1]))
    probs = torch.softmax(out, -1)
    itos = h.itos

    def lst(v):
        return [None if not np.isfinite(x) else round(float(x), 5) for x in v]

    return {**base, "loss_before": lst(before), "loss_after": lst(after), "delta": lst(after - before),
            "control_delta": lst(ctrl.mean(0)) if ctrl.shape[0] else None,
            "control_delta_std": lst(ctrl.std(0, ddof=1)) if ctrl.shape[0] > 1 else None,
            "next_before": _top(probs[0], itos), "next_after": _top(probs[1], itos)}


class _StreamsOnly:
    """What `Spec` reads of a store, for a text run without a recording: the units of each stream."""

    def __init__(self, units: dict[str, int]):
        self.units = units


# -- from Python and the CLI ----------------------------------------------------------------
def _until_ready(ex: Explorer, fn):
    """fn(), waiting for the view recording or analysis job it starts (NotReady) until it is done."""
    from .viewrec import NotReady

    while True:
        try:
            return fn()
        except NotReady as e:
            job = ex.jobs.wait(e.job.id)
            if job.status != "done":
                err = job.error or {}
                raise RnnvisError(err.get("error") or f"{job.title} {job.status}",
                                  err.get("fix") or "run it again") from None


def intervene(model: str, units, *, split: str | None = None, stream: str | None = None, layer: int = 0,
              what: str = "h", direction: str = "fwd", mode: str = "zero", value=None,
              controls: int = CONTROL_DRAWS, seed: int = 0, text: str | None = None, doc: int | None = None,
              source: str | None = None, explorer: Explorer | None = None, home=None) -> dict:
    """Ablate (mode 'zero' / 'mean'), clamp ('value') or scale ('scale') `units` of one stream of `model`
    (a catalog model name or id; an own model with `explorer=`, e.g. `rnnvis.serve(...).explorer`) and
    measure the effect, next to `controls` draws of as many random units.

    Over the view recording of `split` (made first when missing; cached): the JSON of
    POST /api/models/{ref}/intervene. With `text=` or `doc=`: that one text, per token (the JSON of
    POST /api/models/{ref}/intervene/text); mode 'patch' copies the units' states from `source`."""
    own = explorer is None
    if own:
        from ..catalog import Catalog
        from ..workspace import Workspace

        ws = Workspace.open(home)
        explorer = Explorer(ws, Catalog(ws.catalog_path), warm=False)
    ex = explorer
    try:
        ref = ex.view(model, split) if split else model
        kw = dict(stream=stream, layer=layer, what=what, direction=direction, mode=mode, value=value,
                  controls=controls, seed=seed)
        if text is not None or doc is not None:
            if doc is not None:
                _until_ready(ex, lambda: ex.store(ref))
            return text_effects(ex, ref, units, doc=doc, text=text, source=source, **kw)
        _until_ready(ex, lambda: ex.store(ref))
        return _until_ready(ex, lambda: corpus_effects(ex, ref, units, **kw))
    finally:
        if own:
            ex.jobs.shutdown()


__all__ = ["CONTROL_DRAWS", "Spec", "corpus_effects", "intervene", "lm_corpus_effects", "resolve_stream", "text_effects",
           "token_loss"]
