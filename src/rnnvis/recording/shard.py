"""Record one shard: a run of consecutive batches into one self-contained Zarr group.

A shard is the unit of work of a corpus recording: a process (or a Dask worker) runs the model
over its batches, folds the shard's statistics and writes its columns. A shard is written to a
temporary directory and renamed into place when complete, so a killed recording leaves only
complete shards behind (and a rerun records just the missing ones).

Per token a shard keeps what corpus-wide views scan: the stored streams (by default h of every
layer and direction, float16), token ids, document ids, positions and the model's outputs. Per
window it keeps its length (`window_lengths`: every window starts from the zero state) and the
padded width of its batch (`window_widths`: a backward pass over padding saw it). Every
`keyframe_every` tokens inside a window it keeps the full float32 state (h and c of every layer)
from which `recompute` restarts; `keyframe_index` holds the shard-local index of the token the
restart begins at.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import Tensor

from rnnvis.errors import RnnvisError
from rnnvis.fsutil import atomic_path
from rnnvis.recording.engine import TOPK, Engine, Folder, lm_outputs, logits_of, match, next_token_targets
from rnnvis.recording.stats import StreamStats
from rnnvis.recording.store import StoreWriter, save_stats


@dataclass
class ShardSpec:
    """What every shard of one recording shares (picklable: it travels to Dask workers)."""

    vocab_size: int
    store_streams: tuple[str, ...]
    word_stats: tuple[str, ...]
    dtype: str
    method: str
    chunk_tokens: int
    keyframe_every: int  # 0: no keyframes (windows restart from their start)
    edges: dict[str, tuple[Tensor, Tensor]] = field(default_factory=dict)


def run_shard(module: torch.nn.Module, batches: Iterable[dict], spec: ShardSpec, forward: Callable,
              path: Path | None, on_batch: Callable[[int], None] | None = None,
              extra: dict | None = None) -> dict[str, StreamStats]:
    """Record `batches` into a complete shard at `path` (None: fold the statistics only);
    `extra` is added to the shard's meta.

    on_batch(tokens) is called after every batch; an exception it raises stops the shard and
    nothing is left at `path`."""
    engine = Engine(module, spec.method)
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(atomic_path(path)) if path is not None else None
        return _run(engine, batches, spec, forward, tmp, stack, on_batch, extra or {})


def _run(engine: Engine, batches, spec: ShardSpec, forward, tmp, stack, on_batch, extra) -> dict[str, StreamStats]:
    from rnnvis.recording.record import module_device

    device = module_device(engine.module)
    writer: StoreWriter | None = None
    folder: Folder | None = None
    stored: list[str] = []
    kf_names: list[str] = []
    kf_every = spec.keyframe_every if engine.restartable else 0
    n_tokens, n_windows, n_keyframes, n_doc_rows, kind, t0 = 0, 0, 0, 0, None, time.perf_counter()
    pad_id: int | None = None
    scratch: dict[str, Tensor] = {}  # work buffers reused across batches
    keep_dtype = torch.float16 if spec.dtype == "float16" else torch.float32
    np_dtype = np.float16 if spec.dtype == "float16" else np.float32
    with torch.no_grad(), engine.active():
        for batch in batches:
            batch = {k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in batch.items()}
            ids, lengths = batch["ids"], batch["lengths"]
            out, streams = engine.run(forward, batch)
            B, T = ids.shape
            for name, v in streams.items():
                if v.shape[:2] != (B, T):
                    raise RnnvisError(f"stream {name} has shape {tuple(v.shape)} but the batch ids are {(B, T)}",
                                      "record_corpus needs one recurrent step per input token")
            tpos = torch.arange(T, device=device)[None, :]
            mask = tpos < lengths[:, None]  # (B, T)
            tok = ids[mask]  # (n,)
            if folder is None:
                units = {n: v.shape[-1] for n, v in streams.items()}
                missing = [n for n in units if n not in spec.edges]
                if missing:
                    raise RnnvisError(f"no histogram range for streams {missing}", "pass ShardSpec.edges for every stream")
                folder = Folder(units, match(units, spec.word_stats), spec.vocab_size, device, spec.edges)
                stored = match(folder.names, spec.store_streams)
                kf_names = engine.state_streams() if kf_every else []
                if tmp is not None:
                    writer = StoreWriter(tmp, spec.chunk_tokens)
                    stack.callback(lambda: writer.alive and writer.abort())
                    for n in stored:
                        writer.add_column(f"streams/{n}", (units[n],), np_dtype)
                    for n, dt in (("token_ids", np.int32), ("doc_ids", np.int64), ("positions", np.int32)):
                        writer.add_column(n, (), dt)
                    small = max(64, spec.chunk_tokens // 64)  # a window or keyframe per ~64 tokens
                    writer.add_column("window_lengths", (), np.int32, small)
                    writer.add_column("window_widths", (), np.int32, small)
                    writer.add_column("keyframe_index", (), np.int64, small)
                    for n in kf_names:
                        writer.add_column(f"keyframes/{n}", (units[n],), np.float32, small)
            if tok.numel() and (tok.max() >= spec.vocab_size or tok.min() < 0):
                raise RnnvisError(f"token id {int(tok.max())} outside the vocabulary of {spec.vocab_size}",
                                  "pass the model's vocab_size")
            vals = folder.fold(streams, mask, ids, keep=stored if writer else (), keep_dtype=keep_dtype)
            rows: dict[str, np.ndarray] = {}
            kind = _model_outputs(writer, logits_of(out), batch, mask, kind, rows, scratch)
            if writer is not None:
                rows.update({f"streams/{n}": v.cpu().numpy() for n, v in vals.items()})
                rows["token_ids"] = tok.to(torch.int32).cpu().numpy()
                rows["doc_ids"] = batch["doc_ids"][:, None].expand(B, T)[mask].cpu().numpy()
                rows["positions"] = (batch["start_pos"][:, None] + tpos).expand(B, T)[mask].to(torch.int32).cpu().numpy()
                writer.append(rows)
                writer.append({"window_lengths": lengths.to(torch.int32).cpu().numpy(),
                               "window_widths": np.full(B, T, dtype=np.int32)})
                if pad_id is None and not bool(mask.all()):
                    pad_id = int(ids[~mask][0])  # what padding the model saw (a bwd pass reads it)
                n_windows += B
                n_doc_rows += B if kind == "classifier" else 0
                if kf_every:
                    # state after token t, kept where the next token t+1 is inside the window
                    kf = ((tpos + 1) % kf_every == 0) & (tpos + 1 < lengths[:, None])  # (B, T)
                    if bool(kf.any()):
                        index = torch.cumsum(mask.reshape(-1), 0).reshape(B, T) + n_tokens  # store index + 1
                        kfr = {f"keyframes/{n}": streams[n][kf].float().cpu().numpy() for n in kf_names}
                        writer.append({"keyframe_index": index[kf].cpu().numpy(), **kfr})
                        n_keyframes += int(kf.sum())
            n_tokens += int(tok.numel())
            if on_batch is not None:
                on_batch(int(tok.numel()))
        if folder is None:
            raise RnnvisError("the corpus had no batches", "pass a non-empty iterable of batches")
    stats = folder.result()
    if writer is not None:
        save_stats(writer, stats)
        writer.close({
            "method": engine.method, "dtype": spec.dtype, "vocab_size": spec.vocab_size, "n_tokens": n_tokens,
            "all_streams": list(stats), "stored_streams": stored, "word_stats": folder.word_names,
            "units": dict(folder.sizes), "outputs": kind,
            "keyframe_every": kf_every, "keyframe_streams": kf_names, "seconds": time.perf_counter() - t0,
            "n_windows": n_windows, "n_keyframes": n_keyframes, "n_doc_rows": n_doc_rows, "pad_id": pad_id,
            **extra,
        })
    return stats


def _model_outputs(writer: StoreWriter | None, logits, batch, mask, kind, rows, scratch: dict) -> str | None:
    """Add LM per-token outputs to `rows`, or append classifier per-window probabilities.

    Computed also without a writer (statistics-only runs) so that timings include them."""
    if not isinstance(logits, Tensor):
        return kind
    if logits.dim() == 3 and logits.shape[:2] == mask.shape:
        if kind is None and writer is not None:
            writer.add_column("loss", (), np.float32)
            writer.add_column("rank", (), np.int32)
            writer.add_column("topk_ids", (TOPK,), np.int32)
            writer.add_column("topk_probs", (TOPK,), np.float32)
        targets = batch.get("targets")
        if targets is None:
            targets = next_token_targets(batch["ids"], batch["lengths"])
        rows.update({k: v.cpu().numpy() for k, v in lm_outputs(logits, mask, targets, scratch=scratch).items()})
        return "lm"
    if logits.dim() == 2 and logits.shape[0] == mask.shape[0]:
        probs = torch.softmax(logits.float(), -1).cpu().numpy()
        if writer is not None:
            if kind is None:
                writer.add_column("doc_probs", (logits.shape[1],), np.float32)
                writer.add_column("doc_probs_doc_ids", (), np.int64)
            writer.append({"doc_probs": probs, "doc_probs_doc_ids": batch["doc_ids"].cpu().numpy()})
        return "classifier"
    return kind


def shard_info(path: Path) -> dict[str, Any]:
    """The meta of a complete shard (raises when it is not complete)."""
    import zarr

    root = zarr.open_group(str(path), mode="r", zarr_format=3)
    meta = dict(root.attrs.get("rnnvis", {}))
    if not meta.get("complete"):
        raise RnnvisError(f"shard {path} is not complete", "record it again")
    return meta
