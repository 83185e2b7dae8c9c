"""`record_corpus`: stream a whole corpus through a model into a `Store`, folding statistics.

One pass, never the whole corpus in memory. The batches are cut into shards of about
`shard_tokens` tokens (consecutive batches, so a store keeps corpus order). Each shard is
recorded by `run_shard` into its own complete Zarr group, either here one after the other or on
a Dask cluster (`client=`, `workers=N` for a local cluster, `scheduler=ADDRESS` for a running
one); the shards' statistics are then merged in shard order with Chan's formula and the
recording is made complete by renaming it into place. The shard plan depends only on the
batches, so one process and N workers produce the same store.

Resuming: a recording in progress lives in `<out_path>.part/`. A shard is renamed into place
only when complete and carries a fingerprint of its batches, the model and the options; a
rerun after a kill (or a lost Dask worker) keeps the complete shards that match and records
the rest. `<out_path>` appears only when everything is done, so nothing half-done looks complete.

The first batch is run once beforehand to fix every unit's histogram range (shards merge only
with equal edges) and to check that the model restarts exactly from a keyframe.

Windows: long documents are split into windows by the caller; every window starts from the
zero state (state is not carried across windows). `start_pos` gives the position of the first
token of the window within its document, so `positions` stay document positions.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import cloudpickle
import numpy as np
import torch
import zarr

from rnnvis.errors import RnnvisError
from rnnvis.fsutil import OWNER, write_owner
from rnnvis.progress import progress_bar
from rnnvis.recording.engine import Engine, default_forward, histogram_edges
from rnnvis.recording.record import METHODS, default_method, module_device
from rnnvis.recording.shard import ShardSpec, run_shard, shard_info
from rnnvis.recording.stats import StreamStats
from rnnvis.recording.store import FORMAT, Store, load_stats, save_stats

STORE_STREAMS = ("*.h",)  # per token by default: h of every layer and direction
WORD_STATS = ("*.h", "*.c")  # per word x unit statistics by default
KEYFRAME_EVERY = 64
SHARD_TOKENS = 1 << 20


def record_corpus(module: torch.nn.Module, batches: Iterable[dict], out_path, *,
                  forward: Callable[[torch.nn.Module, dict], Any] | None = None, vocab_size: int,
                  store_streams=STORE_STREAMS, word_stats=WORD_STATS, dtype: str = "float16",
                  progress: bool = True, meta: dict | None = None, method: str | None = None,
                  chunk_tokens: int = 16384, keyframe_every: int = KEYFRAME_EVERY,
                  shard_tokens: int = SHARD_TOKENS, write: bool = True, total_tokens: int | None = None,
                  on_progress: Callable[[int, int | None], None] | None = None,
                  client=None, workers: int | None = None, scheduler: str | None = None,
                  module_loader: Callable[[], torch.nn.Module] | None = None) -> Store | dict[str, StreamStats]:
    """Record `module` over `batches` into a store at `out_path`; return it.

    batches: dicts with ids (B, T) padded, lengths (B,), doc_ids (B,), start_pos (B,), optional
    targets (B, T). forward(module, batch) -> logits (B, T, V) for language models or (B, C) for
    classifiers (a tuple's first element is used); default `module(batch["ids"])`.
    store_streams / word_stats: glob patterns of the streams stored per token (default the h
    streams; "*" for all) and of those with per-word statistics (default h and c); every stream
    gets per-unit statistics and saturation counts. keyframe_every: tokens between full float32
    states kept for exact recomputation (0: none).
    client / workers / scheduler: record the shards on a Dask cluster (an existing
    `distributed.Client`, a local cluster of `workers` processes, or the scheduler at an address);
    the workers get the module pickled, or call `module_loader()` (e.g. load a checkpoint from
    a shared filesystem). The store must then be on a filesystem every worker sees.
    write=False folds the statistics only and returns them (no store; used by benchmarks).
    on_progress(done_tokens, total_tokens) is called as tokens are recorded; an exception it
    raises (e.g. a job's cancel) stops the recording; complete shards stay for a rerun.
    """
    if dtype not in ("float16", "float32"):
        raise RnnvisError(f"unsupported store dtype {dtype!r}", "use 'float16' or 'float32'")
    if keyframe_every < 0 or shard_tokens < 1:
        raise RnnvisError(f"keyframe_every={keyframe_every} and shard_tokens={shard_tokens} are out of range",
                          "use keyframe_every >= 0 (0: none) and shard_tokens >= 1")
    device = module_device(module)
    method = method or default_method(device)
    if method not in METHODS:
        raise RnnvisError(f"unknown recording method {method!r}", f"use one of {METHODS}")
    forward = forward or default_forward
    shards = _shards(batches, shard_tokens)
    first = next(shards, None)
    if first is None:
        raise RnnvisError("the corpus had no batches", "pass a non-empty iterable of batches")
    spec = ShardSpec(vocab_size, _patterns(store_streams), _patterns(word_stats), dtype, method, chunk_tokens,
                     keyframe_every)
    spec.edges, spec.keyframe_every = _first_batch(module, method, forward, first[0], keyframe_every)
    shards = _chain([first], shards)
    t0 = time.perf_counter()
    try:
        with progress_bar(total=total_tokens, unit="tok", unit_scale=True, disable=not progress,
                          desc="recording") as bar:
            def tick(n: int, state=[0]) -> None:  # noqa: B006 - a counter shared by the calls
                state[0] += n
                bar.update(n)
                if on_progress is not None:
                    on_progress(state[0], total_tokens)

            if not write:
                return _stats_only(module, shards, spec, forward, tick)
            part = Path(f"{out_path}.part")
            part.mkdir(parents=True, exist_ok=True)
            write_owner(part)  # who writes it: rnnvis.heal keeps the .part of a live writer, removes a dead one's
            model_key = (meta or {}).get("model_id") or _weights_key(module)
            try:
                with contextlib.ExitStack() as stack:
                    dask_client = _dask_client(client, workers, scheduler, stack)
                    stats = None
                    if dask_client is None:
                        manifest, stats = _record_local(module, shards, spec, forward, part, model_key, tick)
                    else:
                        manifest = _record_dask(dask_client, module_loader or module, list(shards), spec, forward,
                                                part, model_key, tick)
            except BaseException:
                if not any((part / "shards").glob("0*")):  # nothing worth resuming
                    shutil.rmtree(part, ignore_errors=True)
                raise
            return _finish(part, Path(out_path), manifest, spec, meta or {}, module, time.perf_counter() - t0, stats)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise RnnvisError(f"disk full while writing the recording to {out_path}; the shards done so far "
                              f"are kept in {out_path}.part",
                              "free some space or choose another out_path, then record again") from e
        raise


def _patterns(p) -> tuple[str, ...]:
    return (p,) if isinstance(p, str) else tuple(p)


def _chain(*its) -> Iterator:
    for it in its:
        yield from it


def _shards(batches: Iterable[dict], shard_tokens: int) -> Iterator[list[dict]]:
    """Consecutive batches grouped into shards of at least `shard_tokens` tokens (the last smaller)."""
    cur, n = [], 0
    for b in batches:
        cur.append(b)
        n += int(torch.as_tensor(b["lengths"]).sum())
        if n >= shard_tokens:
            yield cur
            cur, n = [], 0
    if cur:
        yield cur


FIRST_ROWS = 16  # windows of the first batch that set the histogram ranges and check restarts


def _first_batch(module, method: str, forward, batch: dict, keyframe_every: int):
    """Histogram edges from the first windows of the first batch; keyframe_every, or 0 when the
    model does not restart exactly from a mid-window state (a layer that sees more than the
    current token). Tensors whose first axis is the batch's are cut to those windows."""
    from rnnvis.recording.recompute import restart_matches

    device = module_device(module)
    B = batch["ids"].shape[0]
    # A few windows do (a whole long batch cost 25% of a 90k-token recording); the longest one is
    # among them, so that a model that packs its input still returns the batch's full width.
    longest = torch.as_tensor(batch["lengths"]).argmax().reshape(1).to(torch.as_tensor(batch["ids"]).device)
    rows = torch.cat([torch.arange(min(B, FIRST_ROWS - 1), device=longest.device), longest]).unique()
    batch = {k: (v[rows.to(v.device)] if isinstance(v, torch.Tensor) and v.dim() and v.shape[0] == B else v)
             for k, v in batch.items()}
    batch = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
    engine = Engine(module, method)
    with torch.no_grad(), engine.active():
        _, streams = engine.run(forward, batch)
    T = batch["ids"].shape[1]
    mask = torch.arange(T, device=device)[None, :] < batch["lengths"][:, None]
    edges = histogram_edges(streams, mask)
    if keyframe_every and engine.restartable and not restart_matches(engine, forward, batch, streams, keyframe_every):
        keyframe_every = 0
    return edges, keyframe_every if engine.restartable else 0


def _fingerprint(batches: list[dict], spec: ShardSpec, model_key: str) -> str:
    h = hashlib.sha256(model_key.encode())
    h.update(json.dumps([spec.vocab_size, spec.store_streams, spec.word_stats, spec.dtype, spec.method,
                         spec.chunk_tokens, spec.keyframe_every]).encode())
    for name in sorted(spec.edges):
        h.update(name.encode())
        for t in spec.edges[name]:
            h.update(t.numpy().tobytes())
    for b in batches:
        for k in ("ids", "lengths", "doc_ids", "start_pos", "targets"):
            if k in b:
                h.update(k.encode())
                h.update(np.ascontiguousarray(torch.as_tensor(b[k]).cpu().numpy()).tobytes())
    return h.hexdigest()[:32]


def _weights_key(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _done(path: Path, fingerprint: str) -> dict | None:
    """The meta of a complete shard at `path` recorded from the same batches, model and options."""
    if not path.is_dir():
        return None
    try:
        info = shard_info(path)
    except (RnnvisError, FileNotFoundError, ValueError, KeyError):
        return None
    return info if info.get("fingerprint") == fingerprint else None


def _shard_entry(i: int, info: dict) -> dict:
    return {"path": f"shards/{i:05d}", "tokens": int(info["n_tokens"]), "windows": int(info["n_windows"]),
            "keyframes": int(info["n_keyframes"]), "doc_rows": int(info["n_doc_rows"])}


def _record_local(module, shards, spec: ShardSpec, forward, part: Path, model_key: str,
                  tick) -> tuple[list[dict], dict[str, StreamStats]]:
    """Record the shards here, one after the other; (manifest, statistics merged as they come: a
    shard recorded now is merged from memory, one kept from a killed run is read from its group)."""
    manifest, merged = [], None
    for i, batches in enumerate(shards):
        path, fp = part / "shards" / f"{i:05d}", _fingerprint(batches, spec, model_key)
        info = _done(path, fp)
        if info is None:
            if path.exists():
                shutil.rmtree(path)
            stats = _on_cpu(run_shard(module, batches, spec, forward, path, tick, extra={"fingerprint": fp}))
            info = shard_info(path)
        else:
            tick(int(info["n_tokens"]))
            stats = _load_shard_stats(path, info)
        merged = stats if merged is None else {n: merged[n].merge(v) for n, v in stats.items()}
        manifest.append(_shard_entry(i, info))
    return manifest, merged


def _on_cpu(stats: dict[str, StreamStats]) -> dict[str, StreamStats]:
    """The statistics as CPU tensors (they are folded on the model's device)."""
    from rnnvis.recording.stats import UnitStats, WordUnitStats

    def words(w):
        return None if w is None else WordUnitStats(w.count.cpu(), w.mean.cpu(), w.m2.cpu())

    return {n: StreamStats(words(s.words), words(s.deltas),
                           UnitStats(**{k: v.cpu() for k, v in vars(s.units).items() if not k.startswith("_")}))
            for n, s in stats.items()}


def _load_shard_stats(path: Path, info: dict) -> dict[str, StreamStats]:
    g = zarr.open_group(str(path), mode="r", zarr_format=3)
    words = set(info["word_stats"])
    return {n: load_stats(g, n, n in words) for n in info["all_streams"]}


# -- Dask ------------------------------------------------------------------------------------
_WORKER_MODULES: dict[str, torch.nn.Module] = {}


class _Pickled:
    """A module pickled by the driver (this process's own object, never a file) for the workers."""

    def __init__(self, data: bytes):
        self.data = data
        self.key = hashlib.sha256(data).hexdigest()

    def __call__(self) -> torch.nn.Module:
        return cloudpickle.loads(self.data)


def _shard_task(source, batches: list[dict], spec: ShardSpec, forward, path: str, fp: str) -> dict:
    """Runs on a Dask worker: record one shard (unless an earlier attempt finished it)."""
    from distributed import get_worker

    path = Path(path)
    info = _done(path, fp)
    if info is not None:
        return info
    torch.set_num_threads(max(1, int(get_worker().state.nthreads)))
    if callable(source) and not isinstance(source, torch.nn.Module):
        key = getattr(source, "key", None) or repr(source)
        if key not in _WORKER_MODULES:  # a loader (e.g. of a checkpoint): once per worker process
            _WORKER_MODULES.clear()
            _WORKER_MODULES[key] = source().eval()
        module = _WORKER_MODULES[key]
    else:
        module = source
    if path.exists():
        shutil.rmtree(path)
    run_shard(module, batches, spec, forward, path, None, extra={"fingerprint": fp})
    return shard_info(path)


def _dask_client(client, workers: int | None, scheduler: str | None, stack: contextlib.ExitStack):
    """The Dask client to record with, or None to record in this process."""
    if client is not None:
        return client
    if workers is None and scheduler is None:
        return None
    from distributed import Client, LocalCluster

    if scheduler is not None:
        return stack.enter_context(Client(scheduler))
    if workers < 1:
        raise RnnvisError(f"--workers {workers} must be at least 1", "e.g. --workers 2")
    cluster = stack.enter_context(LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                               dashboard_address=None))
    return stack.enter_context(Client(cluster))


def _record_dask(client, source, shards: list[list[dict]], spec: ShardSpec, forward, part: Path,
                 model_key: str, tick) -> list[dict]:
    from distributed import as_completed

    infos: dict[int, dict] = {}
    futures = {}
    # a module is sent pickled by us (Dask's torch serializer trips over some modules) inside each
    # task rather than scattered: scattered data is lost with a worker, a task argument is not
    src = _Pickled(cloudpickle.dumps(source)) if isinstance(source, torch.nn.Module) else source
    for i, batches in enumerate(shards):
        path, fp = part / "shards" / f"{i:05d}", _fingerprint(batches, spec, model_key)
        info = _done(path, fp)
        if info is not None:
            infos[i] = info
            tick(int(info["n_tokens"]))
            continue
        fut = client.submit(_shard_task, src, batches, spec, forward, str(path), fp, key=f"rnnvis-shard-{fp}-{i}",
                            pure=False)
        futures[fut] = i
    for fut in as_completed(list(futures)):
        info = fut.result()  # a task that failed on every retry raises here
        infos[futures[fut]] = info
        tick(int(info["n_tokens"]))
    return [_shard_entry(i, infos[i]) for i in range(len(shards))]


# -- merging ---------------------------------------------------------------------------------
def _merged_stats(part: Path, manifest: list[dict]) -> dict[str, StreamStats]:
    """Chan-merge of the shards' statistics, in shard order (one shard's tables in memory at a time)."""
    merged: dict[str, StreamStats] | None = None
    for entry in manifest:
        path = part / entry["path"]
        stats = _load_shard_stats(path, shard_info(path))
        merged = stats if merged is None else {n: merged[n].merge(v) for n, v in stats.items()}
    return merged


def _finish(part: Path, out: Path, manifest: list[dict], spec: ShardSpec, meta: dict, module, seconds: float,
            stats: dict[str, StreamStats] | None = None) -> Store:
    """Write the merged statistics (`stats`, or merged here from the shards' groups) and the
    manifest, then rename the recording into place. A recording of one shard keeps that shard's
    statistics where they are (no second copy)."""
    infos = [shard_info(part / e["path"]) for e in manifest]
    first = infos[0]
    if (part / "stats").exists():
        shutil.rmtree(part / "stats")  # left by a run killed while merging
    root = zarr.open_group(str(part), mode="a", zarr_format=3)
    single = len(manifest) == 1
    if not single:
        save_stats(root, stats if stats is not None else _merged_stats(part, manifest))
    root.attrs["rnnvis"] = {
        "model_id": meta.get("model_id", type(module).__name__), "method": spec.method, "dtype": spec.dtype,
        "vocab_size": spec.vocab_size, "n_tokens": sum(e["tokens"] for e in manifest), "all_streams": first["all_streams"],
        "stored_streams": first["stored_streams"], "word_stats": first["word_stats"], "units": first["units"],
        "outputs": _first_set(infos, "outputs"), "pad_id": _first_set(infos, "pad_id"),
        "chunk_tokens": spec.chunk_tokens,
        "keyframe_every": spec.keyframe_every, "keyframe_streams": first["keyframe_streams"],
        "state_across_windows": "zero (not carried)", "seconds": seconds, "user": meta,
        "shards": manifest, "stats_at": manifest[0]["path"] if single else "", "format": FORMAT, "complete": True,
    }
    for e in manifest if not single else ():  # the shards' statistics served the merge (and a resume)
        shutil.rmtree(part / e["path"] / "stats", ignore_errors=True)
    listed = {Path(e["path"]).name for e in manifest}
    for p in (part / "shards").iterdir():  # half-written shards of a killed run, or an older plan's
        if p.name not in listed:
            shutil.rmtree(p, ignore_errors=True)
    (part / OWNER).unlink(missing_ok=True)  # the writer's mark belongs to the .part only
    if out.exists():  # an older recording at the same key: replaced
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
        shutil.rmtree(old, ignore_errors=True)
    os.replace(part, out)
    return Store(out)


def _first_set(infos: list[dict], key: str):
    """The first shard's value of `key` that is not None."""
    return next((i[key] for i in infos if i.get(key) is not None), None)


def _stats_only(module, shards, spec: ShardSpec, forward, tick) -> dict[str, StreamStats]:
    merged: dict[str, StreamStats] | None = None
    for batches in shards:
        s = run_shard(module, batches, spec, forward, None, tick)
        merged = s if merged is None else {n: merged[n].merge(v) for n, v in s.items()}
    return merged
