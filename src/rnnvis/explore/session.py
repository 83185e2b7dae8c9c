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

import hashlib
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..catalog import Catalog
from ..errors import NotFound, RnnvisError
from ..workspace import Workspace
from .cache import CACHE_BYTES, ByteLRU, CachedResults, one_blas_thread  # noqa: F401 - re-exported
from .handle import (EncodeTokenizer, ModelHandle, ViewRef, _tokenizer_adapter, parse_stream,  # noqa: F401
                     split_of, weights_id)  # re-exported: the views import them from here
from .jobs import JobContext, JobManager  # noqa: F401 - re-exported
from .viewrec import (CLASSIFY_MAX_LEN, VIEW_BATCH, VIEW_WINDOW, NotReady, ViewRecordings,  # noqa: F401
                      own_batches)


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


class Explorer(ViewRecordings, CachedResults):
    """Models, view recordings, jobs and caches behind the exploration views."""

    def __init__(self, ws: Workspace, catalog: Catalog, jobs: JobManager | None = None,
                 max_tokens: int | None = None, device: str = "cpu", warm: bool = True,
                 cache_bytes: int = CACHE_BYTES):
        """`max_tokens`: cap of a view recording (None: the whole split); `cache_bytes`: budget of the
        in-memory result cache."""
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
        self._cache = ByteLRU(cache_bytes)
        self._key_locks: dict[str, threading.Lock] = {}
        self._load_locks: dict[str, threading.Lock] = {}  # model id -> lock held while its checkpoint loads
        self._view_keys: dict[tuple[str, str], tuple[Any, list[str]]] = {}  # (id, split) -> (corpus, keys)
        self.warm = warm  # precompute the default views once a view recording is ready

    # -- own models and data --------------------------------------------------------------
    def add_model(self, name: str, module: torch.nn.Module, *, tokenizer=None, encode=None, itos=None,
                  kind: str = "lm", labels=None, data: str | None = None, level: str | None = None,
                  spec=None, split_by=None) -> None:
        """Serve an own torch module, a language model ("lm": logits over the vocabulary per token) or
        a classifier ("classifier": (B, C)), called as it is: `spec` (models/spec.py) says what one
        tiny probe call cannot show, e.g. {"layout": "time", "extra": {"hidden": "init_hidden"}}.
        `tokenizer`: an rnnvis tokenizer, a vocabulary (list or dict token -> id, split by `split_by`:
        "whitespace", "chars" or a function), or an object with .encode/__call__ returning ids."""
        from ..models.spec import bind

        if kind not in ("lm", "classifier"):
            raise RnnvisError(f"kind {kind!r} of own model {name!r}", "use 'lm' or 'classifier'")
        if not isinstance(module, torch.nn.Module):
            raise RnnvisError(f"own model {name!r} is a {type(module).__name__}, not a torch.nn.Module",
                              "pass the model object itself")
        tok = _tokenizer_adapter(tokenizer, encode, itos, level, split_by)
        module = module.to("cpu").eval()
        call = bind(module, spec, kind, len(tok.vocab.itos))  # checked now: a wrong call fails here, clearly
        # The id covers the name as well as the weights: an own model is its module *and* its
        # tokenizer, and must never share a handle or a view recording with a catalog model (or
        # another own model) built from the same weights.
        mid = hashlib.sha256(f"own:{name}:{weights_id(module)}".encode()).hexdigest()
        with self._lock:
            self._own_models[name] = {"module": module, "tokenizer": tok, "kind": kind, "id": mid, "call": call,
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
            bound = self._split_handles.get((h.id, split))
            if bound is None:
                bound = self._split_handles[(h.id, split)] = h.on_split(split)
            return bound

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
                           labels=labels, run_id=None, config={"kind": spec["kind"], "data": data},
                           call=spec.get("call"))

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
