"""The exploration session: models (catalog and own), their view recordings, and result caches.

`Explorer` is what the server holds. `Explorer.model(ref)` gives a `ModelHandle` (the module in
eval mode on the CPU, its tokenizer and what the views need to know about it); `Explorer.store(ref)`
the model's **view recording**: one split of its data set (the test split unless another is
chosen; the own data given to `rnnvis.serve` is one split, "own"), the whole split unless
`max_tokens` caps it, made once by a background job: until it is ready, `store` raises `NotReady`
carrying that job (HTTP 409). `Explorer.cached` memoises results in an in-memory LRU and, with
`persist=True`, in the catalog's analyses table, keyed by the recording they read.

The split a view reads travels with the model reference: `Explorer.view(ref, split)` checks the
split and returns a `ViewRef` (a str: the ref itself, carrying `.data_split`), which every view
function passes on unchanged, so `model`, `store`, `cached` and `doc_index` of that ref all
answer for that split; `model(view_ref).split` is the split.
"""
from __future__ import annotations

import copy
import hashlib
import json
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..catalog import Catalog
from ..errors import NotFound, RnnvisError
from ..workspace import Workspace
from .handle import (EncodeTokenizer, ModelHandle, ViewRef, _tokenizer_adapter, parse_stream,  # noqa: F401
                     split_of, weights_id)
from .jobs import Job, JobContext, JobManager

VIEW_WINDOW = 200  # tokens per recording window (the state restarts from zero at each window)
VIEW_BATCH = 32
CLASSIFY_MAX_LEN = 200
CACHE_ENTRIES = 256


class NotReady(RnnvisError):
    """The view recording of a model is being made; `.job` is its Job (HTTP 409)."""

    def __init__(self, job: Job, name: str, what: str = "the view recording"):
        super().__init__(f"{what} of {name!r} is being made ({job.status}, {job.progress:.0%})",
                         f"wait for job {job.id} (GET /api/jobs/{job.id}) to finish, then retry")
        self.job = job


def _as_corpus(name: str, texts, ws: Workspace):
    from ..data import Corpus, Document, load_user_data

    if isinstance(texts, Corpus):
        return texts
    if isinstance(texts, (str, Path)):
        return load_user_data(texts, name=name)
    texts = list(texts)
    if not texts or not all(isinstance(t, str) for t in texts):
        raise RnnvisError(f"own data {name!r} must be a non-empty list of strings, a path or a Corpus",
                          "e.g. add_data('notes', ['first text', 'second text'])")
    return Corpus(name, [Document(id=str(i), text=t) for i, t in enumerate(texts)], info={"own": True})


class Explorer:
    """Models, view recordings, jobs and caches behind the exploration views."""

    def __init__(self, ws: Workspace, catalog: Catalog, jobs: JobManager | None = None,
                 max_tokens: int | None = None, device: str = "cpu", warm: bool = True):
        """`max_tokens`: cap of a view recording (None: the whole split)."""
        if max_tokens is not None and (isinstance(max_tokens, bool) or int(max_tokens) != max_tokens
                                       or max_tokens < 1):
            raise RnnvisError(f"max_tokens={max_tokens!r} must be a positive whole number",
                              "use e.g. 200000, or None for the whole split")
        self.ws, self.catalog = ws, catalog
        self.jobs = jobs or JobManager()
        self.max_tokens = None if max_tokens is None else int(max_tokens)
        self.device = device
        self._lock = threading.RLock()
        self._own_models: dict[str, dict] = {}
        self._own_data: dict[str, Any] = {}
        self._handles: dict[str, ModelHandle] = {}  # by model id (on the model's default split)
        self._split_handles: dict[tuple[str, str], ModelHandle] = {}  # (model id, split) -> handle
        self._stores: dict[tuple[str, str], Any] = {}  # (model id, split) -> Store
        self._corpora: dict[str, Any] = {}
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._key_locks: dict[str, threading.Lock] = {}
        self._load_locks: dict[str, threading.Lock] = {}  # model id -> lock held while its checkpoint loads
        self._view_keys: dict[tuple[str, str], tuple[Any, list[str]]] = {}  # (id, split) -> (corpus, keys)
        self.warm = warm  # precompute the default views once a view recording is ready

    # -- own models and data --------------------------------------------------------------
    def add_model(self, name: str, module: torch.nn.Module, *, tokenizer=None, encode=None, itos=None,
                  kind: str = "lm", labels=None, data: str | None = None, level: str | None = None) -> None:
        """Serve an own torch module: forward((B, T) ids) -> logits (B, T, V) ("lm") or (B, C) ("classifier")."""
        if kind not in ("lm", "classifier"):
            raise RnnvisError(f"kind {kind!r} of own model {name!r}", "use 'lm' or 'classifier'")
        if not isinstance(module, torch.nn.Module):
            raise RnnvisError(f"own model {name!r} is a {type(module).__name__}, not a torch.nn.Module",
                              "pass the model object itself")
        tok = _tokenizer_adapter(tokenizer, encode, itos, level)
        module = module.to("cpu").eval()
        # The id covers the name as well as the weights: an own model is its module *and* its
        # tokenizer, and must never share a handle or a view recording with a catalog model (or
        # another own model) built from the same weights.
        mid = hashlib.sha256(f"own:{name}:{weights_id(module)}".encode()).hexdigest()
        with self._lock:
            self._own_models[name] = {"module": module, "tokenizer": tok, "kind": kind, "id": mid,
                                      "labels": list(labels) if labels is not None else None, "data": data,
                                      "level": level or getattr(tok, "level", "word")}
            self._handles.pop(mid, None)
            for d in (self._stores, self._split_handles, self._view_keys):
                for k in [k for k in d if k[0] == mid]:
                    del d[k]

    def add_data(self, name: str, texts) -> None:
        """Own texts for own models: a list of strings, a path to user data, or an rnnvis Corpus."""
        with self._lock:
            self._own_data[name] = _as_corpus(name, texts, self.ws)

    # -- models ---------------------------------------------------------------------------
    def models(self) -> list[dict]:
        out = list(self.catalog.models())
        for name, spec in self._own_models.items():
            out.append({"id": spec["id"], "name": name, "kind": "own", "tag": None, "epoch": None, "run_id": None,
                        "config": {"kind": spec["kind"], "level": spec["level"], "data": spec["data"]},
                        "metrics": {}})
        return out

    def _own_name(self, ref: str) -> str | None:
        if ref in self._own_models:
            return ref
        if len(ref) >= 6:
            hits = [n for n, s in self._own_models.items() if s["id"].startswith(ref)]
            if len(hits) == 1:
                return hits[0]
        return None

    def model(self, ref: str) -> ModelHandle:
        """The handle of a model (catalog name, id or prefix, or own model name) on the split `ref`
        asks for (a `ViewRef`; a plain ref: the model's default split); cached."""
        h = self._base_model(ref)
        split = split_of(ref)
        if split is None or split == h.split:
            return h
        with self._lock:
            return self._split_handles.setdefault((h.id, split), h.on_split(split))

    def splits(self, ref: str) -> list[str]:
        """The splits whose recording the views can read: the data set's train/valid/test, or "own"
        for the own data given to an own model."""
        from ..data.corpus import SPLITS

        h = self._base_model(ref)
        return ["own"] if h.split == "own" else list(SPLITS)

    def view(self, ref: str, split: str | None = None) -> str:
        """`ref` reading the recording of `split` (None: the model's default split); 404 for a split
        the model's data does not have."""
        if split is None or split == "":
            return ViewRef(str(ref), None)
        names = self.splits(ref)
        if split not in names:
            h = self._base_model(ref)
            raise NotFound(f"unknown split {split!r} of {h.name}", f"choose split={' or '.join(names)}")
        return ViewRef(str(ref), split)

    def _base_model(self, ref: str) -> ModelHandle:
        """The handle of a model on its default split; loaded once.

        A checkpoint is loaded outside the shared lock (other requests go on meanwhile), once: concurrent
        callers of the same model wait on its load lock."""
        ref = str(ref)
        with self._lock:
            own = self._own_name(ref)
            if own is not None:
                spec = self._own_models[own]
                h = self._handles.get(spec["id"])
                if h is None:
                    h = self._handles[spec["id"]] = self._own_handle(own, spec)
                return h
        try:
            row = self.catalog.find_model(ref)
        except NotFound as e:
            names = sorted({m["name"] for m in self.catalog.models()} | set(self._own_models))
            raise NotFound(f"unknown model {ref!r}",
                           f"known models: {', '.join(names)}" if names else
                           "train one with `rnnvis train` or run `rnnvis demo`") from e
        mid = row["id"]
        with self._lock:
            h = self._handles.get(mid)
            if h is not None:
                return h
            lk = self._load_locks.setdefault(mid, threading.Lock())
        try:
            with lk:
                with self._lock:
                    h = self._handles.get(mid)
                if h is None:
                    loaded = self._catalog_handle(ref, row)
                    with self._lock:
                        h = self._handles.setdefault(mid, loaded)
        finally:
            with self._lock:
                if self._load_locks.get(mid) is lk:
                    del self._load_locks[mid]
        return h

    def _catalog_handle(self, ref: str, row: dict) -> ModelHandle:
        from ..recorder import load_model

        ckpt = load_model(row["id"], self.ws, self.catalog, "cpu")
        cfg = ckpt.config
        kind = ckpt.model.config["kind"]
        labels = None
        if kind == "classifier":
            try:
                labels = self.model_corpus(cfg.get("dataset"), cfg).label_names
            except RnnvisError:  # user data not given to this explorer: class numbers
                labels = None
            n = ckpt.model.config.get("num_classes")
            if labels is None and n:
                labels = [str(i) for i in range(n)]
        return ModelHandle(ref=ref, name=row["name"], id=row["id"], kind=kind, level=cfg.get("level", "word"),
                           module=ckpt.model, tokenizer=ckpt.tokenizer, dataset=cfg.get("dataset"), split="test",
                           own=False, labels=labels, run_id=row.get("run_id"), config=cfg)

    def _own_handle(self, name: str, spec: dict) -> ModelHandle:
        labels = spec["labels"]
        data = spec["data"]
        return ModelHandle(ref=name, name=name, id=spec["id"], kind=spec["kind"], level=spec["level"],
                           module=spec["module"], tokenizer=spec["tokenizer"], dataset=data,
                           split="own" if data in self._own_data or data is None else "test", own=True,
                           labels=labels, run_id=None, config={"kind": spec["kind"], "data": data})

    def corpus(self, name: str):
        """A data set (own data first, then the workspace's), cached."""
        with self._lock:
            if name in self._own_data:
                return self._own_data[name]
            c = self._corpora.get(name)
        if c is None:
            from ..data import load_corpus
            from ..data.registry import DATASETS

            if name not in DATASETS:  # the user data of a loaded catalog model (see model_corpus)
                with self._lock:
                    cfgs = [h.config for h in self._handles.values() if not h.own and h.dataset == name]
                if cfgs:
                    return self.model_corpus(name, cfgs[0])
            c = load_corpus(name, self.ws, catalog=self.catalog)
            with self._lock:
                self._corpora[name] = c
        return c

    def model_corpus(self, dataset: str | None, cfg: dict):
        """The data set a catalog model was trained on: own data of that name, a built-in data set, or
        the user's file recorded in the checkpoint (checked against the training fingerprint)."""
        from ..data.registry import DATASETS

        if dataset in self._own_data or dataset in DATASETS:
            return self.corpus(dataset)
        info = cfg.get("corpus_info") or {}
        if info.get("source") != "user" or not info.get("path"):
            raise NotFound(f"the data set {dataset!r} of this model is not known here",
                           "give it to the server: rnnvis.serve(data={name: texts or path})")
        key = f"user:{info['path']}"
        with self._lock:
            c = self._corpora.get(key)
        if c is None:
            from ..data import load_user_data

            if not Path(info["path"]).exists():
                raise NotFound(f"the data {info['path']} this model was trained on is gone",
                               "put the file back, or give the data to rnnvis.serve(data=...)")
            c = load_user_data(info["path"], **(info.get("options") or {}))
            want = cfg.get("corpus_fingerprint")
            if want and c.fingerprint() != want:
                raise RnnvisError(f"the data {info['path']} changed since the model was trained",
                                  "restore the file, or retrain the model on the new data")
            with self._lock:
                self._corpora[key] = c
        return c

    def view_docs(self, h: ModelHandle) -> tuple[Any, list[int]]:
        """(corpus, document indices) the view recording covers."""
        if h.own:
            data = h.dataset
            if data is None:
                if len(self._own_data) != 1:
                    raise RnnvisError(f"own model {h.name!r} has no data to record",
                                      "pass data= to add_model (or serve(data=...)) naming own data or a data set")
                data = next(iter(self._own_data))
            corpus = self.corpus(data)
            if data in self._own_data:
                return corpus, list(range(len(corpus)))
            return corpus, corpus.split()[h.split]
        corpus = self.model_corpus(h.dataset, h.config)
        s = h.config["split"]
        return corpus, corpus.split(seed=s["seed"], fractions=tuple(s["fractions"]))[h.split]

    def has_pos(self, h: ModelHandle) -> bool:
        try:
            corpus, idx = self.view_docs(h)
        except RnnvisError:
            return False
        return bool(idx) and "pos" in corpus.documents[idx[0]].meta and h.level == "word"

    # -- view recordings --------------------------------------------------------------------
    def _own_options(self, h: ModelHandle, kept: tuple[list, list] | None = None) -> dict:
        streams, words = kept or _view_kept()[-1]
        return {"streams": streams, "word_stats": words, "dtype": "float16", "window": VIEW_WINDOW,
                "max_tokens": self.max_tokens, "max_len": CLASSIFY_MAX_LEN if h.kind == "classifier" else None,
                "own": True}

    def _catalog_options(self, h: ModelHandle, max_tokens: int | None, kept: tuple[list, list] | None = None) -> dict:
        """The options `record_model` (and `_record_catalog_on`) key a view recording by (`kept`: the
        streams stored per token and with per-word statistics; default the recording defaults)."""
        streams, words = kept or _view_kept()[-1]
        return {"streams": streams, "word_stats": words, "dtype": "float16", "window": VIEW_WINDOW,
                "max_tokens": max_tokens,
                "max_len": h.config["train"].get("max_len", 200) if h.kind == "classifier" else None}

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
        at least what the views need (`_view_kept`), the fullest first, or None."""
        from ..recording import Store

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
                try:
                    return Store(r["path"])
                except RnnvisError:
                    continue
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
        if self.warm:
            self.jobs.submit("analysis", f"prepare the views of {h.name} ({h.split} split)",
                             lambda ctx: self._warm_up(h, ctx), key=f"warm:{h.id}:{h.split}",
                             meta={"model": h.name, "split": h.split})

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
        """The job making the view recording (the running one if any; a done job when cached)."""
        h = self.model(ref)
        key = self._job_key(h)
        store = self._ready_store(h)
        size = "whole split" if self.max_tokens is None else f"up to {self.max_tokens:,} tokens"
        title = f"record {h.name} ({h.split} split, {size})"
        if store is not None:
            return self.jobs.add_done("record", title, _store_result(store), key=key)
        fn = self._record_own if h.own else self._record_catalog
        return self.jobs.submit("record", title, lambda ctx: fn(h, ctx), key=key,
                                meta={"model": h.name, "split": h.split})

    def store(self, ref: str, split: str | None = None):
        """The ready view recording of `split` (default: the split `ref` carries, else the model's
        default), else start (or find) its job and raise NotReady."""
        if split is not None:
            ref = self.view(ref, split)
        h = self.model(ref)
        store = self._ready_store(h)
        if store is not None:
            return store
        job = self.start_recording(ref)
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
        from ..recorder import _classifier_batches, _prepare, recording_key
        from ..recording import Store, record_corpus

        cfg = h.config
        idx = corpus.split(seed=cfg["split"]["seed"], fractions=tuple(cfg["split"]["fractions"]))[h.split]
        if not idx:
            raise RnnvisError(f"the {h.split} split of {corpus.name!r} is empty", "give more documents")
        options = self._catalog_options(h, self.max_tokens)
        key = recording_key(h.id, corpus.fingerprint(), h.split, cfg["split"], options)
        cached = self.catalog.get_recording(key)
        if cached is not None and Path(cached["path"]).is_dir():
            return Store(cached["path"])
        docs, tok = corpus.subset(idx), h.tokenizer
        if h.kind == "classifier":
            batches = _classifier_batches(tok, docs, idx, VIEW_BATCH, options["max_len"])
        else:
            batches = lm_windows(tok, docs, window=VIEW_WINDOW, batch_size=VIEW_BATCH, doc_ids=idx)
        batches = list(_prepare(batches, self.max_tokens))
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
        from ..recorder import recording_key
        from ..recording import Store, record_corpus

        ctx.progress(0.0, "preparing the batches")
        corpus, idx = self.view_docs(h)
        options = self._own_options(h)
        key = recording_key(h.id, corpus.fingerprint(), h.split, {"docs": len(idx)}, options)
        cached = self.catalog.get_recording(key)
        if cached is not None and Path(cached["path"]).is_dir():
            store = Store(cached["path"])
        else:
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

    # -- per-recording helpers ------------------------------------------------------------
    def doc_index(self, ref: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(document ids, first token, stop token) of every document in the view recording, in order."""
        store = self.store(ref)

        def build():
            d = store.doc_ids
            if d.size == 0:
                return [], [], []
            cut = np.flatnonzero(d[1:] != d[:-1]) + 1
            starts = np.concatenate([[0], cut])
            stops = np.concatenate([cut, [d.size]])
            order = np.argsort(d[starts], kind="stable")  # by document id (classifiers record by length)
            return d[starts][order].tolist(), starts[order].tolist(), stops[order].tolist()

        docs, starts, stops = self.cached("doc_index", ref, {}, build)
        return np.asarray(docs, np.int64), np.asarray(starts, np.int64), np.asarray(stops, np.int64)

    # -- caches ---------------------------------------------------------------------------
    def recording_key(self, h: ModelHandle) -> str:
        """The key of the view recording `h` (on its split) reads; "" while none is ready."""
        with self._lock:
            store = self._stores.get((h.id, h.split))
        if store is None:
            return ""
        return str(store.meta.get("user", {}).get("key") or store.path.name)

    def _cache_key(self, kind: str, h: ModelHandle, params: dict) -> str:
        rk = self.recording_key(h) or f"split:{h.split}"  # the recording, or its split while none is ready
        blob = json.dumps([kind, h.id, rk, params], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:32]

    def _lookup(self, key: str, persist: bool) -> Any:
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        if persist:
            value = self.catalog.get_analysis(key)
            if value is not None:
                self._remember(key, value)
            return value
        return None

    def _remember(self, key: str, value: Any) -> None:
        with self._lock:
            self._cache[key] = value
            while len(self._cache) > CACHE_ENTRIES:
                self._cache.popitem(last=False)

    def _store_value(self, key: str, kind: str, h: ModelHandle, rk: str, params: dict, value: Any,
                     persist: bool) -> None:
        if persist:
            self.catalog.put_analysis(key, kind, {"model": h.id, "recording": rk, **params}, value)
        self._remember(key, value)

    def peek(self, kind: str, ref: str, params: dict, persist: bool = True) -> Any | None:
        """The cached result of (kind, ref, params) in memory (and the catalog when persist), or None.
        Computes nothing and takes no per-key lock: it never waits for a running computation."""
        h = self.model(ref)
        return self._lookup(self._cache_key(kind, h, params), persist)

    def cached(self, kind: str, ref: str, params: dict, fn: Callable[[], Any], persist: bool = False) -> Any:
        """fn() memoised by (kind, model id, recording key, params): in memory, and in the catalog when persist.

        Concurrent callers of the same key wait for one computation."""
        h = self.model(ref)
        key = self._cache_key(kind, h, params)
        value = self._lookup(key, persist)
        if value is not None:
            return value
        with self._lock:
            lk = self._key_locks.setdefault(key, threading.Lock())
        try:
            with lk:
                value = self._lookup(key, persist)
                if value is None:
                    with one_blas_thread():
                        value = fn()
                    self._store_value(key, kind, h, self.recording_key(h), params, value, persist)
        finally:  # also when fn fails: no lock is left behind
            with self._lock:
                if self._key_locks.get(key) is lk:
                    del self._key_locks[key]
        return value

    def forget(self, kind: str, ref: str, params: dict) -> None:
        """Drop one in-memory cache entry."""
        key = self._cache_key(kind, self.model(ref), params)
        with self._lock:
            self._cache.pop(key, None)

    def cached_job(self, kind: str, ref: str, params: dict, fn: Callable[[JobContext], Any], title: str,
                   persist: bool = True, inline: bool = False, wait_s: float = 0.0) -> Any:
        """Like `cached`, but a slow fn(ctx) runs as an analysis job: the result when cached or done within
        `wait_s` seconds, else NotReady(job) (409). A job that failed while this call waited raises its
        error; a later call starts it again. The job computes outside the per-key lock (`peek` never
        waits for it) and stores the result when done. `inline=True` (a small input) computes it in the
        caller's thread instead."""
        if inline:
            return self.cached(kind, ref, params, lambda: fn(_InlineContext()), persist=persist)
        h = self.model(ref)
        key = self._cache_key(kind, h, params)
        value = self._lookup(key, persist)
        if value is not None:
            return value
        rk = self.recording_key(h)

        def run(ctx: JobContext):
            if self._lookup(key, persist) is None:
                with one_blas_thread():
                    value = fn(ctx)
                self._store_value(key, kind, h, rk, params, value, persist)
            return {"analysis": kind, "model": h.name}

        # a running job of the key is shared; a finished (failed, cancelled) one is started again
        job = self.jobs.submit("analysis", f"{title} of {h.name}", run, key=f"analysis:{key}",
                               meta={"model": h.name, "split": h.split})
        if wait_s > 0:
            job = self.jobs.wait(job.id, wait_s)
        if job.status == "done":
            value = self._lookup(key, persist)
            if value is not None:
                return value
        if job.status == "failed" and job.error:
            raise RnnvisError(job.error.get("error") or f"the {title} failed", job.error.get("fix"))
        raise NotReady(job, h.name, what=title)

    # -- ModelInfo ------------------------------------------------------------------------
    def info(self, ref: str) -> dict:
        h = self.model(ref)
        store = self._ready_store(h)
        units = store.units if store is not None else h.streams()
        from .common import default_stream

        # stored: per-token values (corpus-wide scans: pattern match); word_stats: expected responses
        # (memory, radar, projection of units); None until the recording is made
        streams = [{"name": n, **parse_stream(n), "units": int(u),
                    "stored": None if store is None else n in store.streams,
                    "word_stats": None if store is None else store.has_word_stats(n)} for n, u in units.items()]
        default = default_stream(units) if units else None
        return {"ref": ref, "id": h.id, "name": h.name, "kind": h.kind, "level": h.level, "cell": h.cell,
                "layers": h.layers, "hidden": h.hidden, "dataset": h.dataset, "split": h.split,
                "splits": self.splits(ref), "default_split": h.default_split, "own": h.own,
                "labels": h.labels, "streams": streams, "default_stream": default,
                "recording": self.recording_status(ref), "has_pos": self.has_pos(h), "run_id": h.run_id}


class _InlineContext:
    """The JobContext of work run in the caller's thread: progress is dropped, nothing cancels it."""

    cancelled = False

    def progress(self, fraction: float, message: str | None = None, eta_s: float | None = None) -> None:
        pass

    def check(self) -> None:
        pass


def one_blas_thread():
    """BLAS/OpenMP pools limited to one thread: on a shared small CPU, scikit-learn's k-means and
    friends run up to 8x faster without oversubscription (measured: co-clustering 3.3 s -> 0.4 s)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn depends on it
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(1)


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
        else:
            windows = [(s, ids[s:s + VIEW_WINDOW]) for s in range(0, len(ids), VIEW_WINDOW)]
        for s, w in windows:
            if max_tokens is not None and seen >= max_tokens:
                break
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
