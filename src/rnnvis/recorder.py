"""Record a catalogued model on a corpus split: the glue between models, data and recording.

`record_model("brown-lstm", ws, catalog, split="test")` loads the checkpoint
(verified against its catalog id), rebuilds the exact split the model was
trained with (or the whole corpus, split="all"), streams the documents through
the recording engine into `<workspace>/recordings/<key>` and registers the store
in the catalog. The key is a content hash of the weights, the corpus, the split
and the options, so a repeated request is served from the store and a stale one
is impossible. With `workers=N` (a local Dask cluster) or `scheduler=ADDRESS`
the shards are recorded by Dask workers, each loading the checkpoint itself.

A store found damaged (it does not open, or misses chunk files) is moved to
`<home>/quarantine/<key>-<UTC time>` (kept for inspection, never deleted by rnnvis), its
catalog row is removed, and it is recorded again (`quarantine_recording`).

`max_tokens` is exact for language models: the window that passes the cap is cut, so
min(max_tokens, tokens of the split) tokens are recorded. A classifier's document is kept
whole (its first max_len tokens; a cut text would get another class output): the recording
stops before the document that would pass the cap, and holds at least one document.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Callable, Iterator

import torch

from .catalog import Catalog
from .errors import NotFound, RnnvisError
from .workspace import Workspace

QUARANTINE = "quarantine"  # <home>/quarantine: damaged stores moved out of the way


def row_path(catalog: Catalog, ref: str) -> str:
    """The checkpoint folder of a catalogued model."""
    return catalog.find_model(ref)["path"]


def load_model(ref: str, ws: Workspace, catalog: Catalog, device: str = "cpu"):
    """The checkpoint of a catalogued model (name or id), checked against its recorded id."""
    from .models import load_checkpoint, resolve_device

    row = catalog.find_model(ref)
    ckpt = load_checkpoint(row["path"], device=resolve_device(device), expected_id=row["id"])
    ckpt.model.eval()
    return ckpt


def _load_module(path: str, model_id: str, device: str) -> torch.nn.Module:
    """The checkpoint's module (run on a Dask worker: it reads the checkpoint itself)."""
    from .models import load_checkpoint, resolve_device

    return load_checkpoint(path, device=resolve_device(device), expected_id=model_id).model.eval()


SPLITS = ("train", "valid", "test", "all")


def recording_options(config: dict, store_streams, word_stats, dtype: str, window: int,
                      max_tokens: int | None) -> dict:
    """The options a recording of a catalogued model (checkpoint `config`) is keyed by. A capped one
    also says how the cap cuts (`cut`: "tokens" or whole "documents"), so that a store recorded when
    the cap was applied per batch (more tokens) is never taken for an exact one."""
    classifier = config["model"]["kind"] == "classifier"
    out = {"streams": list(store_streams), "word_stats": list(word_stats), "dtype": dtype, "window": window,
           "max_tokens": max_tokens, "max_len": config["train"].get("max_len", 200) if classifier else None}
    if max_tokens is not None:
        out["cut"] = cap_rule(classifier)
    return out


def cap_rule(classifier: bool) -> str:
    """How `max_tokens` cuts: exactly at a token (LM), or before a whole document (classifier)."""
    return "documents" if classifier else "tokens"


def recording_key(model_id: str, corpus_fp: str, split: str, split_cfg: dict, options: dict) -> str:
    blob = json.dumps([model_id, corpus_fp, split, split_cfg, options], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _prepare(batches: Iterator[dict], max_tokens: int | None, whole_docs: bool = False) -> Iterator[dict]:
    """Batches as the recording engine takes them (tensors), holding exactly `max_tokens` tokens: the
    batch that passes the cap is cut (its windows shortened, later rows dropped). `whole_docs`
    (classifiers): rows are never shortened; the rows that fit are kept, at least one in all."""
    seen = 0
    for b in batches:
        if max_tokens is not None and seen >= max_tokens:
            return
        b = {**b, **{k: torch.as_tensor(b[k], dtype=torch.long) for k in ("doc_ids", "start_pos")}}
        n = int(b["lengths"].sum())
        if max_tokens is not None and seen + n > max_tokens:
            b = _cut(b, max_tokens - seen, whole_docs, first=seen == 0)
            if b is None:
                return
            n = int(b["lengths"].sum())
        seen += n
        yield b


def _cut(b: dict, left: int, whole_docs: bool, first: bool) -> dict | None:
    """Batch `b` holding at most `left` tokens (rows in order; see `_prepare`); None when no row fits."""
    lengths = torch.as_tensor(b["lengths"], dtype=torch.long)
    before = torch.cumsum(lengths, 0) - lengths  # tokens of the rows before each row
    if whole_docs:
        rows = int((before + lengths <= left).sum())  # classifier batches are sorted by length
        rows = max(rows, 1) if first else rows
        if rows == 0:
            return None
        new = lengths[:rows].clone()
    else:
        rows = int((before < left).sum())
        new = torch.minimum(lengths[:rows], left - before[:rows])
    width = int(new.max())
    out = dict(b)
    for k, v in b.items():
        if isinstance(v, torch.Tensor) and v.dim() >= 1 and v.shape[0] == lengths.shape[0]:
            out[k] = v[:rows, :width] if v.dim() >= 2 and k in ("ids", "targets") else v[:rows]
        elif isinstance(v, list) and len(v) == lengths.shape[0]:
            out[k] = v[:rows]
    out["lengths"] = new
    return out


def quarantine_recording(ws: Workspace, catalog: Catalog, path, key: str | None = None) -> Path | None:
    """Move the damaged store at `path` to `<home>/quarantine/<name>-<UTC time>` and remove its catalog
    row (`key`), so that it is recorded again; its files are kept for inspection. Returns where it went:
    None when it was already gone (another thread moved it) or lies outside the workspace (the user's
    own folder is left alone; only the row goes)."""
    path = Path(path)
    if key is not None:
        catalog.remove_recording(key)
    if not path.exists() or not ws.contains(path):
        return None
    qdir = ws.home / QUARANTINE
    qdir.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    dest, i = qdir / f"{path.name}-{stamp}", 1
    while dest.exists():
        dest, i = qdir / f"{path.name}-{stamp}-{i}", i + 1
    try:
        os.replace(path, dest)  # a rename: no copy, and never half-moved
    except FileNotFoundError:
        return None
    return dest


def open_cached(ws: Workspace, catalog: Catalog, key: str, log: Callable[[str], None] | None = None):
    """The complete store of recording `key` if the catalog has one that opens and has every chunk
    file; a damaged one is quarantined (and `log` told), and None returned so that it is recorded again."""
    from .recording import Store

    row = catalog.get_recording(key)
    if row is None:
        return None
    try:
        store = Store(row["path"])
        store.verify()
        return store
    except NotFound:
        return None
    except RnnvisError as e:
        dest = quarantine_recording(ws, catalog, row["path"], key)
        if log is not None:
            where = f"moved to {dest}" if dest is not None else "left in place"
            log(f"the recording {row['path']} is damaged ({e.what}); {where} (quarantine), recording it again")
        return None


def _classifier_batches(tok, docs, doc_ids, batch_size: int, max_len: int) -> Iterator[dict]:
    from .models import classify_batches

    for b in classify_batches(tok, docs, batch_size=batch_size, max_len=max_len, doc_ids=doc_ids,
                              with_labels=False):
        yield {**b, "start_pos": [0] * b["ids"].shape[0]}


def record_model(ref: str, ws: Workspace, catalog: Catalog, *, data: str | None = None, split: str = "test",
                 store_streams: tuple[str, ...] | None = None, word_stats: tuple[str, ...] | None = None,
                 dtype: str = "float16", window: int = 200,
                 batch_size: int = 32, device: str = "cpu", max_tokens: int | None = None,
                 data_options: dict | None = None, progress: bool = True,
                 on_progress: Callable[[int, int | None], None] | None = None,
                 workers: int | None = None, scheduler: str | None = None, shard_tokens: int | None = None,
                 replace: bool = False, log: Callable[[str], None] | None = None):
    """Record model `ref` on `split` of its data (or of `data`; "all": every document); returns the Store.

    A complete recording with the same key is returned as it is, unless `replace` (then it is recorded
    again and replaced when the new one is complete) or damaged (then it is quarantined, `log` is told,
    and it is recorded again). max_tokens: see the module docstring (exact for LMs, whole documents
    for classifiers).

    store_streams / word_stats: glob patterns of the streams stored per token and of those with
    per-word statistics (defaults of `record_corpus`: h; h and c). workers / scheduler: record
    on a local Dask cluster of that many processes, or on the cluster at that address; shards
    of `shard_tokens` tokens (default `record_corpus`'s) are the unit of work and of resuming.
    on_progress(done_tokens, total_tokens) is called as tokens are recorded (see `record_corpus`);
    an exception it raises stops the recording, which is then not registered (complete shards
    stay for a rerun)."""
    from .data import load_corpus
    from .models import lm_windows
    from .recording import record_corpus
    from .recording.corpus import STORE_STREAMS, WORD_STATS

    if max_tokens is not None and max_tokens < 1:
        raise RnnvisError(f"--max-tokens {max_tokens} must be positive", "leave it out to record the whole split")
    if split not in SPLITS:
        raise RnnvisError(f"unknown split {split!r}", f"use one of {', '.join(SPLITS)}")
    if workers is not None and workers < 1:
        raise RnnvisError(f"--workers {workers} must be at least 1", "e.g. --workers 2, or leave it out")
    store_streams = tuple(store_streams or STORE_STREAMS)
    word_stats = tuple(word_stats or WORD_STATS)
    ckpt = load_model(ref, ws, catalog, device)
    cfg = ckpt.config
    corpus = load_corpus(data or cfg["dataset"], ws, catalog=catalog, **(data_options or {}))
    splits = corpus.split(seed=cfg["split"]["seed"], fractions=tuple(cfg["split"]["fractions"]))
    doc_idx = sorted(i for s in ("train", "valid", "test") for i in splits[s]) if split == "all" else splits[split]
    if not doc_idx:
        raise RnnvisError(f"the {split} split of {corpus.name!r} is empty", "record another split")
    kind = ckpt.model.config["kind"]
    options = recording_options(cfg, store_streams, word_stats, dtype, window, max_tokens)
    key = recording_key(ckpt.model_id, corpus.fingerprint(), split, cfg["split"], options)
    cached = None if replace else open_cached(ws, catalog, key, log)
    if cached is not None:
        return cached
    docs = corpus.subset(doc_idx)
    tok = ckpt.tokenizer
    if kind == "classifier":
        batches = _classifier_batches(tok, docs, doc_idx, batch_size, options["max_len"])
        forward = lambda m, b: m(b["ids"], b["lengths"])  # noqa: E731
    else:
        batches = lm_windows(tok, docs, window=window, batch_size=batch_size, doc_ids=doc_idx)
        forward = lambda m, b: m(b["ids"])[0]  # noqa: E731
    # Only token ids are held (a few bytes a token); the states are streamed to disk.
    batches = list(_prepare(batches, max_tokens, whole_docs=kind == "classifier"))
    total = sum(int(b["lengths"].sum()) for b in batches)
    path = ws.recordings_dir / key
    meta = {"model_id": ckpt.model_id, "model": ref, "dataset": corpus.name, "split": split,
            "level": cfg.get("level"), "task": cfg.get("task"), "options": options, "key": key}
    store = record_corpus(ckpt.model, batches, path, forward=forward, vocab_size=len(tok.vocab),
                          store_streams=store_streams, word_stats=word_stats, dtype=dtype, progress=progress,
                          meta=meta, total_tokens=total, on_progress=on_progress, workers=workers,
                          scheduler=scheduler, **({"shard_tokens": shard_tokens} if shard_tokens else {}),
                          module_loader=functools.partial(_load_module, str(Path(row_path(catalog, ref)).resolve()),
                                                          ckpt.model_id, device))
    catalog.put_recording(key, ckpt.model_id, corpus.name, split, options, path,
                          info={"tokens": store.n_tokens, "streams": store.streams})
    return store
