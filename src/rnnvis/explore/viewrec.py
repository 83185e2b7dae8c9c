"""The view recordings of the exploration session: which recording of a model's split the views
read (found in the catalog as the recording functions key it, or made once by a background job),
its status, and how it is made (`record_model`, or `record_corpus` on data held in memory).

`ViewRecordings` is a part of `Explorer` (a mixin): it uses the explorer's workspace, catalog,
jobs, `max_tokens`, models (`model`, `view_docs`, `model_corpus`) and its per-split store table.

Damage and failure never loop: a view recording that does not open, misses chunk files, or is
found damaged by a view's read is moved to `<home>/quarantine/` (`quarantine_recording`) and
recorded again by the next view. A recording job that failed is retried once by the views; after
that they answer its error (`RecordingFailed`) until the user asks again (`start_recording`:
POST /api/models/{ref}/record) or the server restarts.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Sequence

import torch

from ..errors import RnnvisError
from .handle import EncodeTokenizer, ModelHandle
from .jobs import Job, JobContext

VIEW_WINDOW = 200  # tokens per recording window (the state restarts from zero at each window)
VIEW_BATCH = 32
CLASSIFY_MAX_LEN = 200


class NotReady(RnnvisError):
    """The view recording of a model is being made; `.job` is its Job (HTTP 409)."""

    def __init__(self, job: Job, name: str, what: str = "the view recording"):
        super().__init__(f"{what} of {name!r} is being made ({job.status}, {job.progress:.0%})",
                         f"wait for job {job.id} (GET /api/jobs/{job.id}) to finish, then retry")
        self.job = job


VIEW_RETRIES = 1  # a failed view recording job is started again once by the views, then its error is shown


class RecordingFailed(RnnvisError):
    """The view recording of a model failed (and was retried); `.job` is the last failed Job."""

    def __init__(self, job: Job, name: str, ref: str):
        err = job.error or {}
        super().__init__(f"the view recording of {name!r} failed: {err.get('error') or job.message or job.status}",
                         f"{err.get('fix') or 'check the model and its data'}; then ask for it again: "
                         f"POST /api/models/{ref}/record (or restart the server)")
        self.job = job


class ViewRecordings:
    """Finding, making and holding the view recordings (one per model and split)."""

    @property
    def _record_tries(self) -> dict[str, int]:
        """job key -> view recording jobs started since the last explicit request (the mixin's own state)."""
        return self.__dict__.setdefault("_view_record_tries", {})

    @property
    def _damages(self) -> dict[str, tuple[int, RnnvisError]]:
        """job key -> (view recordings found damaged since the last explicit request, the last error)."""
        return self.__dict__.setdefault("_view_record_damages", {})

    def _own_options(self, h: ModelHandle, kept: tuple[list, list] | None = None) -> dict:
        from ..recorder import cap_rule

        streams, words = kept or _view_kept()[-1]
        out = {"streams": streams, "word_stats": words, "dtype": "float16", "window": VIEW_WINDOW,
               "max_tokens": self.max_tokens, "max_len": CLASSIFY_MAX_LEN if h.kind == "classifier" else None,
               "own": True}
        if self.max_tokens is not None:  # how the cap cuts, as `recording_options` says
            out["cut"] = cap_rule(h.kind == "classifier")
        return out

    def _catalog_options(self, h: ModelHandle, max_tokens: int | None, kept: tuple[list, list] | None = None) -> dict:
        """The options `record_model` (and `_record_catalog_on`) key a view recording by (`kept`: the
        streams stored per token and with per-word statistics; default the recording defaults)."""
        from ..recorder import recording_options

        streams, words = kept or _view_kept()[-1]
        return recording_options(h.config, streams, words, "float16", VIEW_WINDOW, max_tokens)

    def _view_keys_of(self, h: ModelHandle) -> list[str] | None:
        """The catalog keys a view recording of `h` has, computed as the recording functions compute them
        (model id, corpus fingerprint, split, split config, options), fullest first; None when the view
        data is not known. A recording that keeps more (`rnnvis record MODEL --streams '*' --word-stats '*'`)
        is taken before the default one; catalog models also accept one of the whole split."""
        from ..recorder import recording_key

        try:
            corpus, idx = self.view_docs(h)
        except RnnvisError:
            return None
        with self._lock:
            hit = self._view_keys.get((h.id, h.split))
        if hit is not None and hit[0] is corpus:
            return hit[1]
        fp = corpus.fingerprint()
        if h.own:
            keys = [recording_key(h.id, fp, h.split, {"docs": len(idx)}, self._own_options(h, kept))
                    for kept in _view_kept()]
        else:
            keys = [recording_key(h.id, fp, h.split, h.config["split"], self._catalog_options(h, mt, kept))
                    for kept in _view_kept() for mt in dict.fromkeys((self.max_tokens, None))]
        with self._lock:
            self._view_keys[(h.id, h.split)] = (corpus, keys)
        return keys

    def _find_recording(self, h: ModelHandle):
        """A complete recording of the model's view data (same data set and corpus fingerprint) that keeps
        at least what the views need (`_view_kept`), the fullest first, or None. A damaged one is
        quarantined (and so recorded again)."""
        from ..recorder import open_cached

        keys = self._view_keys_of(h)
        if keys is None:
            if h.own:
                return None
            # the catalog model's data is not available here: a recording of its data set by name
            rows = [r for r in reversed(self.catalog.recordings())
                    if r["model_id"] == h.id and r["split"] == h.split and r["dataset"] == h.dataset]
        else:
            rows = [r for r in map(self.catalog.get_recording, keys) if r is not None]
        for r in rows:
            o = r["options"]
            kept = (o.get("streams"), o.get("word_stats"))
            if kept not in _view_kept() or o.get("dtype") != "float16" or o.get("window") != VIEW_WINDOW:
                continue
            mt = o.get("max_tokens")
            whole = mt is None and (self.max_tokens is None
                                    or int(r["info"].get("tokens", 1 << 62)) <= self.max_tokens)
            if (mt == self.max_tokens or whole) and Path(r["path"]).is_dir():
                store = open_cached(self.ws, self.catalog, r["key"])
                if store is not None:
                    return store
        return None

    def recording_status(self, ref: str) -> dict:
        """{status: ready|missing|running, tokens, documents, job} of the view recording."""
        h = self.model(ref)
        store = self._ready_store(h)
        if store is not None:
            return {"status": "ready", "tokens": store.n_tokens, "documents": len(self.doc_index(ref)[0]),
                    "job": None}
        job = self.jobs.find(self._job_key(h))
        if job is not None and not job.finished:
            return {"status": "running", "tokens": None, "documents": None, "job": job.to_json()}
        return {"status": "missing", "tokens": None, "documents": None,
                "job": job.to_json() if job is not None else None}

    def _job_key(self, h: ModelHandle) -> str:
        return f"record:{h.id}:{h.split}:{self.max_tokens}"

    def _ready_store(self, h: ModelHandle):
        with self._lock:
            store = self._stores.get((h.id, h.split))
        if store is None:
            store = self._find_recording(h)
            if store is not None:
                self._set_store(h, store)
        return store

    def _set_store(self, h: ModelHandle, store) -> None:
        with self._lock:
            if (h.id, h.split) in self._stores:
                return
            self._stores[(h.id, h.split)] = store
            store.on_damaged = lambda err: self._on_damaged(h, store, err)
        if self.warm:
            self.jobs.submit("analysis", f"prepare the views of {h.name} ({h.split} split)",
                             lambda ctx: self._warm_up(h, ctx), key=f"warm:{h.id}:{h.split}",
                             meta={"model": h.name, "split": h.split})

    def _on_damaged(self, h: ModelHandle, store, err) -> None:
        """A view found `store` damaged: forget it and move it to quarantine (once, whichever thread
        saw it first), so that the next view records it again; the error says so."""
        from ..recorder import quarantine_recording

        with self._lock:
            mine = self._stores.get((h.id, h.split)) is store
            if mine:
                del self._stores[(h.id, h.split)]
        jkey = self._job_key(h)
        if mine:
            key = str(store.meta.get("user", {}).get("key") or store.path.name)
            dest = quarantine_recording(self.ws, self.catalog, store.path, key)
            store.quarantined_to = dest
            with self._lock:
                self._damages[jkey] = (self._damages.get(jkey, (0, err))[0] + 1, err)
        dest = getattr(store, "quarantined_to", None)
        moved = f"it was moved to {dest}" if dest is not None else "it was set aside"
        if self._damages.get(jkey, (0, err))[0] > VIEW_RETRIES:  # damaged again after it was recorded again
            err.fix = f"{moved}; check the disk, then ask for it again: POST /api/models/{h.name}/record"
        else:
            err.fix = f"{moved} and will be recorded again: retry in a moment"

    def _warm_up(self, h: ModelHandle, ctx: JobContext) -> None:
        """Compute what the first views need (tokens, documents, the default co-clustering)."""
        from . import memory
        from .common import default_stream, store_tokens, word_pos

        store = self._stores[(h.id, h.split)]
        ref = h.view_ref
        steps = [lambda: self.doc_index(ref), lambda: store_tokens(self, ref), lambda: word_pos(self, ref),
                 lambda: memory.cocluster(self, ref, default_stream(store.units))]
        for i, step in enumerate(steps):
            ctx.progress(i / len(steps))
            try:
                step()
            except RnnvisError:
                pass

    def start_recording(self, ref: str) -> Job:
        """The job making the view recording (the running one if any; a done job when cached). An
        explicit request: a recording that failed is tried again (see `VIEW_RETRIES`)."""
        h = self.model(ref)
        job = self._submit_recording(h)
        if not job.finished:
            with self._lock:
                self._record_tries[self._job_key(h)] = 1
                self._damages.pop(self._job_key(h), None)
        return job

    def _submit_recording(self, h: ModelHandle) -> Job:
        key = self._job_key(h)
        store = self._ready_store(h)
        size = "whole split" if self.max_tokens is None else f"up to {self.max_tokens:,} tokens"
        title = f"record {h.name} ({h.split} split, {size})"
        if store is not None:
            return self.jobs.add_done("record", title, _store_result(store), key=key)
        fn = self._record_own if h.own else self._record_catalog
        return self.jobs.submit("record", title, lambda ctx: fn(h, ctx), key=key,
                                meta={"model": h.name, "split": h.split})

    def _view_job(self, h: ModelHandle, ref: str) -> Job:
        """The recording job a view waits for: the running one, or a new one unless the last
        `VIEW_RETRIES` + 1 jobs failed (then RecordingFailed, with the last job's error)."""
        key = self._job_key(h)
        last = self.jobs.find(key)
        with self._lock:
            tries = self._record_tries.get(key, 0) if last is not None and last.status == "failed" else 0
        if tries > VIEW_RETRIES:
            raise RecordingFailed(last, h.name, ref)
        damaged, err = self._damages.get(key, (0, None))
        if damaged > VIEW_RETRIES:  # recorded again once already, and found damaged again: no loop
            raise RnnvisError(err.what, err.fix)
        job = self._submit_recording(h)  # not under the lock: it may open stores
        if job is not last and not job.finished:
            with self._lock:
                self._record_tries[key] = tries + 1
        return job

    def store(self, ref: str, split: str | None = None):
        """The ready view recording of `split` (default: the split `ref` carries, else the model's
        default), else start (or find) its job and raise NotReady (RecordingFailed when it failed twice)."""
        if split is not None:
            ref = self.view(ref, split)
        h = self.model(ref)
        store = self._ready_store(h)
        if store is not None:
            return store
        job = self._view_job(h, ref)
        if job.status == "done":
            store = self._ready_store(h)
            if store is not None:
                return store
        raise NotReady(job, h.name)

    def _progress(self, ctx: JobContext):
        def cb(done: int, total: int | None) -> None:
            msg = f"{done:,} of {total:,} tokens" if total else f"{done:,} tokens"
            ctx.progress(done / total if total else 0.0, msg)
        return cb

    def _record_catalog(self, h: ModelHandle, ctx: JobContext) -> dict:
        from ..recorder import record_model

        ctx.progress(0.0, "preparing the batches")
        from ..data.registry import DATASETS

        if h.dataset not in DATASETS or h.dataset in self._own_data:  # own data, or the user's file
            store = self._record_catalog_on(h, self.model_corpus(h.dataset, h.config), ctx)
            self._set_store(h, store)
            return _store_result(store)
        store = record_model(h.id, self.ws, self.catalog, split=h.split, max_tokens=self.max_tokens,
                             window=VIEW_WINDOW, batch_size=VIEW_BATCH, device=self.device, progress=False,
                             on_progress=self._progress(ctx))
        self._set_store(h, store)
        return _store_result(store)

    def _record_catalog_on(self, h: ModelHandle, corpus, ctx: JobContext):
        """`record_model` for a corpus held in memory: same batches, options and recording key."""
        from ..models import lm_windows
        from ..recorder import _classifier_batches, _prepare, open_cached, recording_key
        from ..recording import record_corpus

        cfg = h.config
        idx = corpus.split(seed=cfg["split"]["seed"], fractions=tuple(cfg["split"]["fractions"]))[h.split]
        if not idx:
            raise RnnvisError(f"the {h.split} split of {corpus.name!r} is empty", "give more documents")
        options = self._catalog_options(h, self.max_tokens)
        key = recording_key(h.id, corpus.fingerprint(), h.split, cfg["split"], options)
        cached = open_cached(self.ws, self.catalog, key)
        if cached is not None:
            return cached
        docs, tok = corpus.subset(idx), h.tokenizer
        if h.kind == "classifier":
            batches = _classifier_batches(tok, docs, idx, VIEW_BATCH, options["max_len"])
        else:
            batches = lm_windows(tok, docs, window=VIEW_WINDOW, batch_size=VIEW_BATCH, doc_ids=idx)
        batches = list(_prepare(batches, self.max_tokens, whole_docs=h.kind == "classifier"))
        total = sum(int(b["lengths"].sum()) for b in batches)
        path = self.ws.recordings_dir / key
        meta = {"model_id": h.id, "model": h.name, "dataset": corpus.name, "split": h.split,
                "level": h.level, "task": cfg.get("task"), "options": options, "key": key}
        with h.lock:  # not while a typed text runs: the copy would carry its forward hooks
            module = copy.deepcopy(h.module)
        store = record_corpus(module, batches, path, forward=h.forward, vocab_size=len(h.itos),
                              progress=False, meta=meta, total_tokens=total, on_progress=self._progress(ctx))
        self.catalog.put_recording(key, h.id, corpus.name, h.split, options, path,
                                   info={"tokens": store.n_tokens, "streams": store.streams})
        return store

    def _record_own(self, h: ModelHandle, ctx: JobContext) -> dict:
        from ..recorder import open_cached, recording_key
        from ..recording import record_corpus

        ctx.progress(0.0, "preparing the batches")
        corpus, idx = self.view_docs(h)
        options = self._own_options(h)
        key = recording_key(h.id, corpus.fingerprint(), h.split, {"docs": len(idx)}, options)
        store = open_cached(self.ws, self.catalog, key)
        if store is None:
            batches = own_batches(h, corpus.subset(idx), idx, self.max_tokens)
            total = sum(int(b["lengths"].sum()) for b in batches)
            path = self.ws.recordings_dir / key
            meta = {"model_id": h.id, "model": h.name, "dataset": corpus.name, "split": h.split,
                    "level": h.level, "task": h.kind, "options": options, "key": key}
            with h.lock:  # the served module stays free for typed texts; copied while none runs (hooks)
                module = copy.deepcopy(h.module)
            store = record_corpus(module, batches, path, forward=h.forward,
                                  vocab_size=len(h.itos), progress=False, meta=meta, total_tokens=total,
                                  on_progress=self._progress(ctx))
            self.catalog.put_recording(key, h.id, corpus.name, h.split, options, path,
                                       info={"tokens": store.n_tokens, "streams": store.streams})
        self._set_store(h, store)
        return _store_result(store)


def _view_kept() -> list[tuple[list[str], list[str]]]:
    """(streams stored per token, streams with per-word statistics) of the recordings the views read,
    fullest first: every stream, then the recording defaults (h stored; h and c with word statistics)."""
    from ..recording.corpus import STORE_STREAMS, WORD_STATS

    everything, stored, words = ["*"], list(STORE_STREAMS), list(WORD_STATS)
    return [(everything, everything), (everything, words), (stored, everything), (stored, words)]


def _store_result(store) -> dict:
    return {"tokens": store.n_tokens, "streams": store.streams}


def own_batches(h: ModelHandle, docs, doc_ids: Sequence[int], max_tokens: int | None) -> list[dict]:
    """Batches of own documents: the windows the view recording reads.

    LM: windows of VIEW_WINDOW tokens in corpus order, padded at the end like `lm_windows` (the
    states of a forward model at real tokens do not see the padding). Classifier: each document's
    first CLASSIFY_MAX_LEN tokens, grouped by length so that no batch is padded.
    max_tokens is exact for an LM (the last window is cut); a classifier keeps whole documents (it
    stops before the one that would pass the cap, holding at least one), as `record_model` does.
    """
    tok = h.tokenizer
    pieces: list[tuple[int, int, list[int]]] = []  # (doc id, start, ids)
    seen = 0
    for did, doc in zip(doc_ids, docs):
        if max_tokens is not None and seen >= max_tokens:
            break
        if isinstance(tok, EncodeTokenizer):
            ids = tok.encode_doc(doc)
        else:
            ids = list(tok.encode_doc(doc, add_eos=h.kind == "lm"))
        if not ids:
            continue
        if h.kind == "classifier":
            windows = [(0, ids[:CLASSIFY_MAX_LEN])]
            if max_tokens is not None and pieces and seen + len(windows[0][1]) > max_tokens:
                break  # whole documents only
        else:
            windows = [(s, ids[s:s + VIEW_WINDOW]) for s in range(0, len(ids), VIEW_WINDOW)]
        for s, w in windows:
            if max_tokens is not None and seen >= max_tokens:
                break
            if max_tokens is not None and h.kind != "classifier":
                w = w[:max_tokens - seen]
            pieces.append((int(did), s, w))
            seen += len(w)
    if not pieces:
        raise RnnvisError(f"the data of own model {h.name!r} has no tokens", "give texts that the tokenizer encodes")
    if h.kind == "classifier":
        groups: dict[int, list] = {}
        for p in pieces:
            groups.setdefault(len(p[2]), []).append(p)
        chunks = [g[b:b + VIEW_BATCH] for n in sorted(groups) for g in [groups[n]]
                  for b in range(0, len(g), VIEW_BATCH)]
    else:
        chunks = [pieces[b:b + VIEW_BATCH] for b in range(0, len(pieces), VIEW_BATCH)]
    out = []
    for chunk in chunks:
        T = max(len(p[2]) for p in chunk)
        ids = torch.zeros((len(chunk), T), dtype=torch.long)
        for i, p in enumerate(chunk):
            ids[i, :len(p[2])] = torch.tensor(p[2], dtype=torch.long)
        out.append({"ids": ids, "lengths": torch.tensor([len(p[2]) for p in chunk], dtype=torch.long),
                    "doc_ids": torch.tensor([p[0] for p in chunk], dtype=torch.long),
                    "start_pos": torch.tensor([p[1] for p in chunk], dtype=torch.long)})
    return out
