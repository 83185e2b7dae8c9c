"""The run index of `pattern_index`: its layout, its file, and its builder, all in bounded memory.

The index file is an uncompressed npz (numpy's zip of .npy members). It is written as a stream —
the packed on-bits token chunk by token chunk as they are computed, then the run lists unit by unit
— and opened with its large members memory-mapped (an uncompressed zip member is a plain byte
range of the file), so neither building nor opening it holds the index in memory.

Building spools each chunk's run starts and ends, already in unit-major order (np.nonzero of the
transposed flags), to temporary files and keeps only a (chunks, units) table of counts; the CSR
layout is then assembled unit by unit with positioned reads (a counting sort on disk). Memory: one
chunk of values, its flags, and one unit's runs.
"""
from __future__ import annotations

import json
import struct
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from rnnvis.analysis.pattern import on_mask, unit_thresholds
from rnnvis.errors import RnnvisError
from rnnvis.fsutil import atomic_path

INDEX_FORMAT = "rnnvis.pattern-index/1"
MMAP_BYTES = 1 << 20  # members larger than this are memory-mapped when an index is opened
_KEYS = ("threshold", "doc_starts", "doc_ids", "offsets", "starts", "ends", "bits")


@dataclass(frozen=True)
class RunIndex:
    """On-runs of every unit of one stream at one threshold."""

    threshold: np.ndarray  # (units,) float32 θ
    n_tokens: int
    doc_starts: np.ndarray  # (docs,) int64 first token of each document, ascending
    doc_ids: np.ndarray  # (docs,) int64 id of each document
    offsets: np.ndarray  # (units + 1,) int64 runs of unit u: [offsets[u], offsets[u+1])
    starts: np.ndarray  # (runs,) int32/int64 first token of each run
    ends: np.ndarray  # (runs,) one past the last token of each run
    bits: np.ndarray  # (tokens, ceil(units / 8)) uint8 on-state per token, np.packbits along units
    key: str = ""  # identity of (recording, stream, θ) for the cache

    @property
    def n_units(self) -> int:
        return int(self.threshold.size)

    def runs(self, unit: int) -> tuple[np.ndarray, np.ndarray]:
        """(starts (r,), ends (r,)) of one unit's on-runs."""
        a, b = int(self.offsets[unit]), int(self.offsets[unit + 1])
        return self.starts[a:b], self.ends[a:b]

    def save(self, path) -> Path:
        """Write the index as an uncompressed npz file, atomically."""
        path = Path(path)
        with atomic_path(path) as tmp, _NpzWriter(tmp) as w:
            w.small("meta", np.array(_meta(self.n_tokens, self.key)))
            for k in _KEYS:
                w.small(k, np.ascontiguousarray(getattr(self, k)))
        return path


def _meta(n: int, key: str) -> str:
    return json.dumps({"format": INDEX_FORMAT, "n_tokens": int(n), "key": key})


class _NpzWriter:
    """An uncompressed npz written member by member; a member's rows may be streamed."""

    def __init__(self, path):
        self.zf = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True)

    def __enter__(self) -> "_NpzWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.zf.close()

    def open(self, name: str, shape: tuple[int, ...], dtype):
        """A writable member with its .npy header written: write its C-order bytes next."""
        f = self.zf.open(name + ".npy", "w", force_zip64=True)
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
                  "shape": tuple(int(s) for s in shape)}
        np.lib.format.write_array_header_2_0(f, header)
        return f

    def small(self, name: str, arr: np.ndarray) -> None:
        with self.open(name, arr.shape, arr.dtype) as f:
            f.write(np.ascontiguousarray(arr).tobytes())


def _member(path: Path, fh, info: zipfile.ZipInfo) -> np.ndarray:
    """One .npy member: read whole when small, memory-mapped (read-only) when large."""
    if info.compress_type != zipfile.ZIP_STORED or info.file_size <= MMAP_BYTES:
        with zipfile.ZipFile(path) as zf:
            return np.lib.format.read_array(zf.open(info), allow_pickle=False)
    fh.seek(info.header_offset)
    local = struct.unpack("<4s5H3L2H", fh.read(30))
    fh.seek(info.header_offset + 30 + local[9] + local[10])
    version = np.lib.format.read_magic(fh)
    reader = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(version)
    if reader is None:
        raise RnnvisError(f"{path} uses .npy format {version}", "delete it; it is rebuilt on demand")
    shape, fortran, dtype = reader(fh)
    if fortran or dtype.hasobject:
        raise RnnvisError(f"{path} holds an array this index cannot map", "delete it; it is rebuilt on demand")
    return np.memmap(path, dtype=dtype, mode="r", offset=fh.tell(), shape=shape)


def load_run_index(path) -> RunIndex:
    """Open an index file (no pickle); its large arrays are memory-mapped, not read."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf, open(path, "rb") as fh:
            infos = {i.filename[:-4]: i for i in zf.infolist() if i.filename.endswith(".npy")}
            meta = json.loads(str(np.lib.format.read_array(zf.open(infos["meta"]), allow_pickle=False)))
            arrays = {k: _member(path, fh, infos[k]) for k in _KEYS}
    except (OSError, ValueError, KeyError, EOFError, struct.error, zipfile.BadZipFile) as e:
        raise RnnvisError(f"{path} is not a readable pattern index ({e})", "delete it; it is rebuilt on demand") from e
    if meta.get("format") != INDEX_FORMAT:
        raise RnnvisError(f"{path} has format {meta.get('format')!r}", "delete it; it is rebuilt on demand")
    return RunIndex(n_tokens=int(meta["n_tokens"]), key=str(meta["key"]), **arrays)


class _Spool:
    """Run positions of one kind (starts or ends) per chunk, unit-major, in a temporary file."""

    def __init__(self, folder: Path, name: str, dtype, units: int):
        self.path, self.dtype, self.units = folder / name, np.dtype(dtype), units
        self.f = open(self.path, "wb")
        self.counts: list[np.ndarray] = []  # per chunk (units,)
        self.written = 0

    def add(self, flags: np.ndarray, offset: int) -> None:
        """flags (rows, units): runs begin (or end) at token offset + row."""
        u, r = np.nonzero(flags.T)  # unit-major, tokens ascending within a unit
        self.f.write((r + offset).astype(self.dtype).tobytes())
        self.counts.append(np.bincount(u, minlength=self.units))

    def add_units(self, units: np.ndarray, token: int) -> None:
        self.f.write(np.full(units.size, token, self.dtype).tobytes())
        c = np.zeros(self.units, np.int64)
        c[units] = 1
        self.counts.append(c)

    def per_unit(self) -> np.ndarray:
        return np.sum(self.counts, axis=0) if self.counts else np.zeros(self.units, np.int64)

    def write_csr(self, w: _NpzWriter, name: str) -> None:
        """The member `name` (runs,): every unit's positions, unit by unit (positioned reads of the spool)."""
        self.f.close()
        table = np.array(self.counts, np.int64).reshape(-1, self.units)  # (chunks, units)
        base = np.r_[0, np.cumsum(table.sum(1))[:-1]]  # first entry of each chunk in the spool
        within = np.cumsum(table, axis=1) - table  # (chunks, units) first entry of each unit in its chunk
        size = self.dtype.itemsize
        with open(self.path, "rb") as src, w.open(name, (int(table.sum()),), self.dtype) as out:
            for u in range(self.units):
                for c in np.flatnonzero(table[:, u]):
                    src.seek(int(base[c] + within[c, u]) * size)
                    out.write(src.read(int(table[c, u]) * size))


def build_run_index(values, doc_ids: np.ndarray | None, threshold: np.ndarray, chunk_tokens: int = 16384,
                    key: str = "", read: Callable[[int, int], np.ndarray] | None = None,
                    shape: tuple[int, int] | None = None, path=None,
                    read_docs: Callable[[int, int], np.ndarray] | None = None) -> RunIndex:
    """Index the on-runs of values (tokens, units), reading `chunk_tokens` rows at a time.

    values: an array, memmap or zarr array; or None with read(start, stop) -> rows and shape.
    doc_ids (tokens,), or None with read_docs(start, stop) -> the rows' document ids.
    path: write the index there (atomically) and return it opened memory-mapped; without a path the
    index is built the same way in a temporary folder and returned in memory.
    Memory: one chunk of values and its flags, and one unit's runs; never the (tokens, units) array.
    """
    if read is None:
        values = values if hasattr(values, "shape") else np.asarray(values)
        n, units = values.shape
        read = lambda a, b: values[a:b]  # noqa: E731
    else:
        n, units = shape
    if n == 0:
        raise RnnvisError("the recording holds no tokens", "record at least one document")
    if read_docs is None:
        doc_ids = np.asarray(doc_ids)
        if doc_ids.shape != (n,):
            raise RnnvisError(f"doc_ids has shape {doc_ids.shape}, values have {n} tokens", "pass one id per token")
        read_docs = lambda a, b: doc_ids[a:b]  # noqa: E731
    theta = unit_thresholds(threshold, units)
    pos_t = np.int32 if n < np.iinfo(np.int32).max else np.int64
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rnnvis-index-", dir=Path(path).parent if path else None) as tmp:
        tmp = Path(tmp)
        target = Path(path) if path else tmp / "index.npz"
        begins, ends = _Spool(tmp, "starts", pos_t, units), _Spool(tmp, "ends", pos_t, units)
        carry = np.zeros(units, bool)  # on-state of the token before the chunk
        doc_starts, doc_names, last = [], [], None
        with atomic_path(target) as out, _NpzWriter(out) as w:
            with w.open("bits", (n, (units + 7) // 8), np.uint8) as bits:  # (tokens, ceil(units / 8))
                for a in range(0, n, chunk_tokens):
                    b = min(n, a + chunk_tokens)
                    on = on_mask(read(a, b), theta)  # (rows, units)
                    d = np.asarray(read_docs(a, b))
                    newdoc = np.r_[last is None or d[0] != last, d[1:] != d[:-1]]
                    last = d[-1]
                    bits.write(np.packbits(on, axis=1).tobytes())
                    prev = np.concatenate([carry[None], on[:-1]])  # (rows, units) state one token earlier
                    begin, end = on & ~prev, prev & ~on  # a run ended just before this token
                    cut = np.flatnonzero(newdoc)  # document start: runs are cut here
                    begin[cut], end[cut] = on[cut], prev[cut]
                    begins.add(begin, a)
                    ends.add(end, a)
                    doc_starts.append(cut + a)
                    doc_names.append(d[cut])
                    carry = on[-1]
            ends.add_units(np.flatnonzero(carry), n)  # runs still open at the end of the recording
            starts_doc = np.concatenate(doc_starts).astype(np.int64)
            w.small("meta", np.array(_meta(n, key)))
            for k, v in (("threshold", theta), ("doc_starts", starts_doc),
                         ("doc_ids", np.concatenate(doc_names).astype(np.int64)),
                         ("offsets", np.r_[0, np.cumsum(begins.per_unit())].astype(np.int64))):
                w.small(k, v)
            begins.write_csr(w, "starts")
            ends.write_csr(w, "ends")
        index = load_run_index(target)
        if path is None:  # in memory: the temporary folder goes away
            index = RunIndex(**{k: np.array(getattr(index, k)) for k in _KEYS}, n_tokens=index.n_tokens, key=key)
    return index


__all__ = ["INDEX_FORMAT", "RunIndex", "build_run_index", "load_run_index"]
