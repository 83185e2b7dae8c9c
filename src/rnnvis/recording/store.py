"""On-disk recording store: a Zarr v3 group of flat, token-chunked, compressed arrays.

Layout (all in corpus order, batch padding removed):

    streams/<name>      (tokens, units) float16 or float32, chunks (chunk_tokens, units)
    token_ids           (tokens,) int32
    doc_ids             (tokens,) int64
    positions           (tokens,) int32   position of the token within its document
    loss, rank          (tokens,)         language models: -log p(target), rank of the target (0 = top)
    topk_ids/topk_probs (tokens, k)       language models: the k most probable next tokens
    doc_probs           (rows, classes)   classifiers: class probabilities per window, with doc_probs_doc_ids
    stats/...           see `save_stats`
    attrs['rnnvis']     meta: streams, units, dtype, model id, options, complete flag

`StoreWriter` buffers whole chunks in memory and hands them to one background thread, so
compression and disk writes overlap the model's computation. `Store` opens a finished store
read-only.
"""
from __future__ import annotations

import os
import queue
import threading
from pathlib import Path
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import zarr
from zarr.codecs import ZstdCodec

from rnnvis.errors import NotFound, RnnvisError
from rnnvis.recording.stats import StreamStats, UnitStats, WordUnitStats

FORMAT = "rnnvis.recording/1"


class _Column:
    """One appendable array with a one-chunk write buffer."""

    def __init__(self, group, name: str, tail: tuple[int, ...], dtype, chunk: int):
        self.arr = group.create_array(name, shape=(0, *tail), chunks=(chunk, *tail), dtype=dtype,
                                      compressors=ZstdCodec(level=1), fill_value=0)
        self.buf = np.empty((chunk, *tail), dtype=dtype)
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

    def add_column(self, name: str, tail: tuple[int, ...], dtype) -> None:
        self.cols[name] = _Column(self.root, name, tail, np.dtype(dtype), self.chunk)

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
        self._q.put((col.arr, col.written, col.buf[:rows].copy() if rows < self.chunk else col.buf))
        col.buf = np.empty_like(col.buf) if rows == self.chunk else col.buf
        col.written += rows
        col.fill = 0

    def append(self, rows: dict[str, np.ndarray]) -> None:
        """Append the same number of rows to the named columns."""
        for name, data in rows.items():
            col = self.cols[name]
            i = 0
            while i < len(data):
                take = min(len(data) - i, self.chunk - col.fill)
                col.buf[col.fill:col.fill + take] = data[i:i + take]
                col.fill += take
                i += take
                if col.fill == self.chunk:
                    self._submit(col, self.chunk)

    def write_array(self, name: str, data: np.ndarray, chunks=None) -> None:
        """Write a whole small array synchronously (statistics, meta arrays)."""
        self.root.create_array(name, data=data, chunks=chunks or data.shape or (1,),
                               compressors=ZstdCodec(level=1))

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
        self.root.attrs["rnnvis"] = {**attrs, "format": FORMAT, "complete": True}

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


def save_stats(w: StoreWriter, stats: dict[str, StreamStats]) -> None:
    """stats/count (vocab,), and per stream stats/<name>/{mean,m2,dmean,dm2} (vocab, units),
    unit_{count,mean,m2,min,max,below,above,lo,hi} (units,) and hist (units, bins+2)."""
    first = next(iter(stats.values()), None)
    if first is None:
        return
    np_ = lambda t: t.detach().cpu().contiguous().numpy()  # noqa: E731
    w.write_array("stats/count", np_(first.words.count))
    for name, s in stats.items():
        p = f"stats/{name}/"
        vocab, units = s.words.mean.shape
        ch = (min(vocab, max(1, (1 << 22) // max(units, 1))), units)
        for key, t in (("mean", s.words.mean), ("m2", s.words.m2), ("dmean", s.deltas.mean), ("dm2", s.deltas.m2)):
            w.write_array(p + key, np_(t), chunks=ch)
        u = s.units
        for key in ("mean", "m2", "min", "max", "below", "above", "lo", "hi", "hist"):
            w.write_array(p + "unit_" + key, np_(getattr(u, key)))
        w.write_array(p + "unit_count", np_(u.count.reshape(1)))


class _LazyStats(Mapping):
    """stream name -> StreamStats, each read from the store on first access (thread-safe)."""

    def __init__(self, root, names: list[str]):
        self._root, self._names = root, names
        self._loaded: dict[str, StreamStats] = {}
        self._count = None
        self._lock = threading.Lock()

    def _t(self, key: str):
        return torch.from_numpy(np.asarray(self._root[key][...]))

    def __getitem__(self, name: str) -> StreamStats:
        if name not in self._names:
            raise KeyError(name)
        with self._lock:
            if name not in self._loaded:
                if self._count is None:
                    self._count = self._t("stats/count")
                p = f"stats/{name}/"
                u = UnitStats(**{k: self._t(p + "unit_" + k) for k in
                                 ("mean", "m2", "min", "max", "below", "above", "lo", "hi", "hist")},
                              count=self._t(p + "unit_count")[0])
                self._loaded[name] = StreamStats(WordUnitStats(self._count, self._t(p + "mean"), self._t(p + "m2")),
                                                 WordUnitStats(self._count, self._t(p + "dmean"),
                                                               self._t(p + "dm2")), u)
            return self._loaded[name]

    def __iter__(self):
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


class Store:
    """A finished recording, opened read-only."""

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_dir():
            raise NotFound(f"no recording at {self.path}", "run record_corpus first or check the path")
        try:
            self.root = zarr.open_group(str(self.path), mode="r", zarr_format=3)
            meta = dict(self.root.attrs.get("rnnvis", {}))
        except (FileNotFoundError, ValueError, KeyError) as e:
            raise RnnvisError(f"{self.path} is not a readable rnnvis recording ({e})",
                              "record it again with record_corpus") from e
        if meta.get("format") != FORMAT or not meta.get("complete"):
            raise RnnvisError(f"{self.path} is not a complete rnnvis recording",
                              "it was interrupted or written by another tool; record it again")
        self.meta: dict[str, Any] = meta
        self._stats: _LazyStats | None = None

    @property
    def streams(self) -> list[str]:
        """Streams stored per token."""
        return list(self.meta["stored_streams"])

    @property
    def n_tokens(self) -> int:
        return int(self.meta["n_tokens"])

    def read(self, name: str, start: int = 0, stop: int | None = None, units=None) -> np.ndarray:
        """(stop-start, units) float32 values of stream `name` for a token range and unit subset."""
        if name not in self.meta["stored_streams"]:
            raise NotFound(f"stream {name!r} is not stored per token",
                           f"stored: {', '.join(self.streams) or 'none'}; record with store_streams")
        arr = self.root[f"streams/{name}"]
        stop = arr.shape[0] if stop is None else stop
        if units is None:
            out = arr[start:stop]
        else:
            out = arr.get_orthogonal_selection((slice(start, stop), np.asarray(units)))
        return np.asarray(out, dtype=np.float32)

    def _full(self, name: str) -> np.ndarray | None:
        return np.asarray(self.root[name][...]) if name in self.root else None

    @property
    def token_ids(self) -> np.ndarray:
        return self._full("token_ids")

    @property
    def doc_ids(self) -> np.ndarray:
        return self._full("doc_ids")

    @property
    def positions(self) -> np.ndarray:
        return self._full("positions")

    def output(self, name: str) -> np.ndarray | None:
        """Model outputs: 'loss', 'rank', 'topk_ids', 'topk_probs', 'doc_probs',
        'doc_probs_doc_ids'; None when the model did not produce them."""
        return self._full(name)

    @property
    def stats(self) -> "Mapping[str, StreamStats]":
        """Statistics of every stream (stored per token or not), as CPU tensors.

        A read-only mapping that reads a stream's statistics from disk the first time it is asked
        for: a view of one stream does not pay for the word x unit tables of all the others.
        """
        if self._stats is None:
            self._stats = _LazyStats(self.root, list(self.meta["all_streams"]))
        return self._stats

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r}, {self.n_tokens} tokens, {len(self.streams)} streams)"
