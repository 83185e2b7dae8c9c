"""On-disk recording store: Zarr v3 groups of flat, token-chunked, compressed arrays.

A recording is a group holding the merged statistics and a manifest of its shards; each shard
(`shards/00000`, ...) is a group of the columns of a run of consecutive windows. Shard layout
(all in corpus order, batch padding removed):

    streams/<name>      (tokens, units) float16 or float32, chunks (chunk_tokens, units);
                        by default only the h streams (the rest is recomputed, see recompute.py)
    token_ids           (tokens,) int32
    doc_ids             (tokens,) int64
    positions           (tokens,) int32   position of the token within its document
    window_lengths      (windows,) int32  tokens of each window; a window starts from the zero state
    window_widths       (windows,) int32  padded width of the window's batch (meta pad_id: the padding)
    keyframe_index      (keyframes,) int64 shard-local token a keyframe restarts at
    keyframes/<name>    (keyframes, units) float32 state (h, c of every layer) before that token
    loss, rank          (tokens,)         language models: -log p(target), rank of the target (0 = top)
    topk_ids/topk_probs (tokens, k)       language models: the k most probable next tokens
    doc_probs           (rows, classes)   classifiers: class probabilities per window, with doc_probs_doc_ids
    stats/...           the shard's statistics, see `save_stats`
    attrs['rnnvis']     the shard's meta and complete flag

The recording's own group holds `stats/...` merged over the shards (Chan) and attrs['rnnvis']:
meta (streams, units, dtype, model id, options), the shard manifest and the complete flag.

`StoreWriter` buffers whole chunks in memory and hands them to one background thread, so
compression and disk writes overlap the model's computation. `Store` opens a finished store
read-only.

Damage (see integrity.py): every chunk is written and checked to exist when read; a chunk that is
missing or does not decode raises `StoreDamaged`. A store's `on_damaged` callback (set by the
explorer) hears of it first, to move the store aside and record it again.
"""
from __future__ import annotations

import hashlib
import json
import os
import queue
import threading
from pathlib import Path
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from rnnvis.errors import NotFound, RnnvisError
from rnnvis.recording.integrity import (ARRAY_CONFIG, DECODE_ERRORS, StoreDamaged, arrays_under, chunk_layout,
                                        missing_chunk)
from rnnvis.recording.stats import StreamStats
from rnnvis.recording.statsio import (UNIT_ROWS, _LazyStats, load_stats, save_stats,  # noqa: F401 - re-exported
                                      write_array)

FORMAT = "rnnvis.recording/2"
SHARD_FORMAT = "rnnvis.recording-shard/2"


class _Column:
    """One appendable array with a one-chunk write buffer."""

    def __init__(self, group, name: str, tail: tuple[int, ...], dtype, chunk: int):
        self.arr = group.create_array(name, shape=(0, *tail), chunks=(chunk, *tail), dtype=dtype,
                                      compressors=ZstdCodec(level=1), fill_value=0, config=ARRAY_CONFIG)
        self.buf = np.empty((chunk, *tail), dtype=dtype)
        self.chunk = chunk
        self.fill = 0  # rows in buf
        self.written = 0  # rows already handed to the writer


class StoreWriter:
    """Append rows to several columns; full chunks are written by a background thread."""

    def __init__(self, path: Path, chunk_tokens: int = 16384):
        self.root = zarr.open_group(str(path), mode="w", zarr_format=3)
        self.chunk = chunk_tokens
        self.cols: dict[str, _Column] = {}
        n = max(1, min(4, (os.cpu_count() or 2) - 1))  # compression runs in these threads (GIL released)
        self._q: queue.Queue = queue.Queue(maxsize=2 * n)
        self._error: BaseException | None = None
        self._threads = [threading.Thread(target=self._worker, name=f"rnnvis-store-writer-{i}", daemon=True)
                         for i in range(n)]
        for t in self._threads:
            t.start()

    def add_column(self, name: str, tail: tuple[int, ...], dtype, chunk: int | None = None) -> None:
        """A column of rows shaped `tail`, written in chunks of `chunk` rows (default chunk_tokens)."""
        self.cols[name] = _Column(self.root, name, tail, np.dtype(dtype), chunk or self.chunk)

    def _worker(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            if self._error is None:
                try:
                    self._write_chunk(*item)
                except Exception as e:  # noqa: BLE001 - re-raised in the main thread
                    self._error = e

    def _write_chunk(self, arr, start: int, data: np.ndarray) -> None:
        """Write rows [start, start+len) of `arr` (already grown). Tests patch this to fail."""
        arr[start:start + len(data)] = data

    @property
    def alive(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def _raise(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def _submit(self, col: _Column, rows: int) -> None:
        self._raise()
        need = col.written + rows
        if col.arr.shape[0] < need:  # grow geometrically (metadata only), here in the main thread
            col.arr.resize((max(need, 2 * col.arr.shape[0]), *col.arr.shape[1:]))
        self._q.put((col.arr, col.written, col.buf[:rows].copy() if rows < col.chunk else col.buf))
        col.buf = np.empty_like(col.buf) if rows == col.chunk else col.buf
        col.written += rows
        col.fill = 0

    def append(self, rows: dict[str, np.ndarray]) -> None:
        """Append the same number of rows to the named columns."""
        for name, data in rows.items():
            col = self.cols[name]
            i = 0
            while i < len(data):
                take = min(len(data) - i, col.chunk - col.fill)
                col.buf[col.fill:col.fill + take] = data[i:i + take]
                col.fill += take
                i += take
                if col.fill == col.chunk:
                    self._submit(col, col.chunk)

    def write_array(self, name: str, data: np.ndarray, chunks=None) -> None:
        """Write a whole small array synchronously (statistics, meta arrays)."""
        write_array(self.root, name, data, chunks)

    def close(self, attrs: dict[str, Any]) -> None:
        """Flush buffers, wait for the writer thread, then mark the store complete."""
        try:
            for col in self.cols.values():
                if col.fill:
                    self._submit(col, col.fill)
        finally:
            self._stop()
        self._raise()
        for col in self.cols.values():  # trim the geometric growth
            if col.arr.shape[0] != col.written:
                col.arr.resize((col.written, *col.arr.shape[1:]))
        self.root.attrs["rnnvis"] = {**attrs, "format": SHARD_FORMAT, "complete": True, "every_chunk": True}

    def _stop(self) -> None:
        for _ in self._threads:
            self._q.put(None)
        for t in self._threads:
            t.join()

    def abort(self) -> None:
        """Stop the writer thread without writing more (the caller deletes the directory)."""
        while True:
            try:
                self._q.get_nowait()
            except queue.Empty:
                break
        self._stop()


# per-token columns are indexed by token; these by their own row counts (see Store._rows)
_ROW_AXES = {"window_lengths": "windows", "window_widths": "windows", "keyframe_index": "keyframes", "doc_probs": "doc_rows",
             "doc_probs_doc_ids": "doc_rows"}


class Store:
    """A finished recording, opened read-only. Reads cross shard boundaries transparently."""

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_dir():
            raise NotFound(f"no recording at {self.path}", "run record_corpus first or check the path")
        try:
            self.root = zarr.open_group(str(self.path), mode="r", zarr_format=3)
            meta = dict(self.root.attrs.get("rnnvis", {}))
        except DECODE_ERRORS as e:
            raise StoreDamaged(self.path, f"its metadata (zarr.json) does not read ({type(e).__name__}: {e})") from e
        if meta.get("format") != FORMAT or not meta.get("complete"):
            raise RnnvisError(f"{self.path} is not a complete rnnvis recording of this version",
                              "it was interrupted, written by an older rnnvis or by another tool; record it again")
        self.meta: dict[str, Any] = meta
        self._stats: _LazyStats | None = None
        # called with the StoreDamaged error before it is raised (the explorer moves the store aside)
        self.on_damaged: "Callable[[StoreDamaged], None] | None" = None
        try:
            self._shards = [zarr.open_group(str(self.path / s["path"]), mode="r", zarr_format=3)
                            for s in meta["shards"]]
            # stores written before every chunk was kept may lack all-zero chunks: not checked
            self._every_chunk = [bool(g.attrs.get("rnnvis", {}).get("every_chunk")) for g in self._shards]
        except DECODE_ERRORS as e:
            raise StoreDamaged(self.path, f"a shard's metadata does not read ({type(e).__name__}: {e})") from e
        self._arrays: dict[tuple[int, str], Any] = {}  # (shard, key) -> zarr array, opened once
        self._layouts: dict[tuple[int, str], tuple] = {}  # (shard, key) -> its chunk_layout
        self._offsets = {axis: np.concatenate([[0], np.cumsum([int(s[axis]) for s in meta["shards"]])]).astype(np.int64)
                         for axis in ("tokens", "windows", "keyframes", "doc_rows")}
        self._kf_index: np.ndarray | None = None

    # -- damage ----------------------------------------------------------------------------
    def _damaged(self, what: str, cause: BaseException | None = None) -> StoreDamaged:
        """The error to raise for damage found while reading; tells `on_damaged` first."""
        err = StoreDamaged(self.path, what)
        err.__cause__ = cause
        if self.on_damaged is not None:
            try:
                self.on_damaged(err)
            except (RnnvisError, OSError):  # setting it aside is best effort: the damage is reported anyway
                pass
        return err

    def _array(self, i: int, key: str):
        """Array `key` of shard `i` (its metadata read once)."""
        arr = self._arrays.get((i, key))
        if arr is None:
            try:
                arr = self._shards[i][key]
            except DECODE_ERRORS as e:  # KeyError: the array is gone (callers ask only for recorded ones)
                raise self._damaged(f"the metadata of {self.meta['shards'][i]['path']}/{key} does not read "
                                    f"({type(e).__name__}: {e})", e) from e
            self._layouts[(i, key)] = chunk_layout(arr)
            self._arrays[(i, key)] = arr
        return arr

    def _check_chunks(self, base: Path, name: str, arr, lo: int, hi: int, layout: tuple | None = None) -> None:
        """Raise StoreDamaged when a chunk file holding rows [lo, hi) of `arr` (at `base`) is missing."""
        key = missing_chunk(base, name, arr, lo, hi, layout)
        if key is not None:
            raise self._damaged(f"chunk {key} of {name} is missing")

    def _read(self, i: int, name: str, lo: int, hi: int, select=None) -> np.ndarray:
        """Rows [lo, hi) of array `name` of shard `i` (optionally columns `select`), checked for missing
        and undecodable chunks."""
        arr = self._array(i, name)
        if self._every_chunk[i]:
            self._check_chunks(self._shard_path(i), name, arr, lo, hi, self._layouts[(i, name)])
        try:
            return np.asarray(arr[lo:hi] if select is None else arr.get_orthogonal_selection((slice(lo, hi), select)))
        except DECODE_ERRORS as e:
            raise self._damaged(f"a chunk of {name} (rows {lo}..{hi}) does not decode ({type(e).__name__}: {e})",
                                e) from e

    def _shard_path(self, i: int) -> Path:
        return self.path / self.meta["shards"][i]["path"]

    def verify(self) -> None:
        """Raise StoreDamaged when a chunk file of any array is missing (reads metadata, no chunk:
        one stat a chunk, a few ms for a million tokens). Chunks that do not decode are found when read."""
        try:
            groups = [(self._shard_path(i), g) for i, g in enumerate(self._shards) if self._every_chunk[i]]
            if groups and all(self._every_chunk) and not self.meta.get("stats_at"):  # merged statistics
                groups.append((self.path / "stats", self.root["stats"]))
            arrays = arrays_under(groups)
        except DECODE_ERRORS as e:
            raise self._damaged(f"its metadata does not read ({type(e).__name__}: {e})", e) from e
        for base, k, a in arrays:
            self._check_chunks(base, k, a, 0, a.shape[0] if a.ndim else 0)

    # -- what is recorded ---------------------------------------------------------------
    @property
    def streams(self) -> list[str]:
        """Streams stored per token (by default the h streams)."""
        return list(self.meta["stored_streams"])

    @property
    def all_streams(self) -> list[str]:
        """Every stream of the model (stored or recomputable)."""
        return list(self.meta["all_streams"])

    @property
    def units(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.meta["units"].items()}

    @property
    def n_tokens(self) -> int:
        return int(self.meta["n_tokens"])

    def has_word_stats(self, name: str) -> bool:
        """Whether per-word statistics (expected response) of `name` were folded."""
        return name in self.meta.get("word_stats", ())

    def fingerprint(self) -> str:
        """A content key of this recording (its meta holds the options, counts and shard sizes)."""
        return hashlib.sha256(json.dumps(self.meta, sort_keys=True, default=str).encode()).hexdigest()[:24]

    # -- reading -------------------------------------------------------------------------
    def _rows(self, key: str, axis: str, start: int, stop: int | None, select=None) -> np.ndarray:
        """Rows [start, stop) of array `key` concatenated over the shards (axis: which row count)."""
        off = self._offsets[axis]
        stop = int(off[-1]) if stop is None else min(int(stop), int(off[-1]))
        start = max(0, int(start))
        parts = []
        first = int(np.searchsorted(off, start, side="right")) - 1
        for i in range(max(first, 0), len(self._shards)):
            a, b = int(off[i]), int(off[i + 1])
            if a >= stop:
                break
            lo, hi = max(start, a) - a, min(stop, b) - a
            if hi <= lo:
                continue
            parts.append(self._read(i, key, lo, hi, select))
        if parts:
            return np.concatenate(parts) if len(parts) > 1 else np.asarray(parts[0])
        arr = self._array(0, key) if self._shards else None
        tail = arr.shape[1:] if arr is not None else ()
        if select is not None:
            tail = (len(select), *tail[1:])
        return np.zeros((0, *tail), dtype=arr.dtype if arr is not None else np.float32)

    def read(self, name: str, start: int = 0, stop: int | None = None, units=None) -> np.ndarray:
        """(stop-start, units) float32 values of stored stream `name` for a token range and unit subset."""
        if name not in self.meta["stored_streams"]:
            raise NotFound(f"stream {name!r} is not stored per token",
                           f"stored: {', '.join(self.streams) or 'none'}; recompute it for a window "
                           "(rnnvis.recording.recompute) or record with store_streams / --streams")
        sel = None if units is None else np.asarray(units)
        return np.asarray(self._rows(f"streams/{name}", "tokens", start, stop, sel), dtype=np.float32)

    def column(self, name: str, start: int = 0, stop: int | None = None) -> np.ndarray | None:
        """Rows [start, stop) of a per-token column (token_ids, doc_ids, positions, loss, rank,
        topk_ids, topk_probs) or of doc_probs / doc_probs_doc_ids; None when not recorded."""
        if not self._shards or name not in self._shards[0]:
            return None
        return self._rows(name, _ROW_AXES.get(name, "tokens"), start, stop)

    @property
    def token_ids(self) -> np.ndarray:
        return self.column("token_ids")

    @property
    def doc_ids(self) -> np.ndarray:
        return self.column("doc_ids")

    @property
    def positions(self) -> np.ndarray:
        return self.column("positions")

    def output(self, name: str) -> np.ndarray | None:
        """Model outputs: 'loss', 'rank', 'topk_ids', 'topk_probs', 'doc_probs',
        'doc_probs_doc_ids'; None when the model did not produce them."""
        return self.column(name)

    @property
    def windows(self) -> np.ndarray:
        """(windows, 2) int64 [start, stop) token ranges; each window starts from the zero state."""
        lengths = self.column("window_lengths").astype(np.int64)
        stops = np.cumsum(lengths)
        return np.stack([stops - lengths, stops], axis=1)

    def keyframe(self, i: int, floor: int = 0) -> tuple[int, dict[str, np.ndarray]] | None:
        """The latest keyframe restarting at a token in [floor, i]: (its token, {state stream:
        (units,) float32}); None when there is none (restart at the window start instead)."""
        if not self.meta.get("keyframe_every"):
            return None
        if self._kf_index is None:
            parts = [self._read(k, "keyframe_index", 0, self._array(k, "keyframe_index").shape[0]).astype(np.int64)
                     + self._offsets["tokens"][k] for k in range(len(self._shards))]
            self._kf_index = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        j = int(np.searchsorted(self._kf_index, i, side="right")) - 1
        if j < 0 or self._kf_index[j] < floor:
            return None
        return int(self._kf_index[j]), {n: self._rows(f"keyframes/{n}", "keyframes", j, j + 1)[0]
                                        for n in self.meta["keyframe_streams"]}

    def dask(self, name: str):
        """A `dask.array` of a stored stream (`layer0.fwd.h`) or a column (`loss`, `token_ids`, ...)
        over the whole recording, one block per stored chunk, for your own out-of-core analysis."""
        import dask.array as da

        key = f"streams/{name}" if name in self.meta["stored_streams"] else name
        if not self._shards or key not in self._shards[0]:
            raise NotFound(f"{name!r} is not stored in this recording",
                           f"stored streams: {', '.join(self.streams)}; columns: token_ids, doc_ids, positions, ...")
        for i in range(len(self._shards)):  # missing chunks here; a chunk that does not decode fails in compute
            if self._every_chunk[i]:
                arr = self._array(i, key)
                self._check_chunks(self._shard_path(i), key, arr, 0, arr.shape[0])
        return da.concatenate([da.from_zarr(self._array(i, key)) for i in range(len(self._shards))], axis=0)

    @property
    def stats(self) -> "Mapping[str, StreamStats]":
        """Statistics of every stream (stored per token or not), as CPU tensors.

        A read-only mapping that reads a stream's statistics from disk the first time it is asked
        for: a view of one stream does not pay for the word x unit tables of all the others.
        `words`/`deltas` are None for streams recorded without per-word statistics (gates by default).
        """
        if self._stats is None:
            at = self.meta.get("stats_at")  # a one-shard recording keeps its statistics in the shard
            base = self.path / at if at else self.path
            try:
                group = zarr.open_group(str(base), mode="r", zarr_format=3) if at else self.root
            except DECODE_ERRORS as e:
                raise self._damaged(f"the metadata of {at} does not read ({type(e).__name__}: {e})", e) from e
            check = all(self._every_chunk)

            def guard(fn, keys):
                try:
                    if check:
                        for k in keys:
                            arr = group[k]
                            self._check_chunks(base, k, arr, 0, arr.shape[0])
                    return fn()
                except DECODE_ERRORS as e:
                    raise self._damaged(f"the statistics {', '.join(keys)} do not read ({type(e).__name__}: {e})",
                                        e) from e
            self._stats = _LazyStats(group, self.all_streams, list(self.meta.get("word_stats", ())), guard)
        return self._stats

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r}, {self.n_tokens} tokens, {len(self.streams)} streams)"
