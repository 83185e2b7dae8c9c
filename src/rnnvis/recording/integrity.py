"""Damaged stores: found, named, never read as data.

Zarr reads a missing chunk as the array's fill value, so a deleted chunk file would show as
zeros. The writer therefore writes every chunk (`ARRAY_CONFIG`: all-zero ones too) and a shard
says so in its meta (`every_chunk`); a reader then checks that the chunk files of the region it
reads exist (`missing_chunk`: one stat a chunk, about 1 % of decoding it) and turns a chunk or a
metadata file that does not decode (`DECODE_ERRORS`) into the same `StoreDamaged` error, which
names the store, the array and the chunk. Stores written before `every_chunk` are not checked
for missing chunks (an all-zero chunk was legitimately left out then).
"""
from __future__ import annotations

import os
from itertools import product
from pathlib import Path

import zarr

from rnnvis.errors import RnnvisError

# every chunk is written, all-zero ones too: a missing chunk file is then damage, never zeros
ARRAY_CONFIG = {"write_empty_chunks": True}
# what Zarr and its codecs raise on a chunk or metadata file that does not decode (zstd: RuntimeError,
# JSON: ValueError), that vanished (OSError) or an array that is gone (KeyError)
DECODE_ERRORS = (RuntimeError, ValueError, OSError, KeyError, zarr.errors.BaseZarrError)


class StoreDamaged(RnnvisError):
    """A recording whose files are missing or do not decode; `.path` is the store."""

    def __init__(self, path, what: str, fix: str | None = None):
        super().__init__(f"the recording {path} is damaged: {what}",
                         fix or "record it again with `rnnvis record MODEL ... --replace` "
                                "(the web app records a damaged view recording again by itself)")
        self.path = Path(path)


def chunk_layout(arr) -> tuple:
    """What `missing_chunk` needs of an array (Zarr's properties cost ~30 us a read: keep it)."""
    return arr.chunks[0], arr.metadata.chunk_key_encoding.encode_chunk_key, \
        list(product(*(range(n) for n in arr.cdata_shape[1:]))), arr.size


def missing_chunk(base: Path, name: str, arr, lo: int, hi: int, layout: tuple | None = None) -> str | None:
    """The key of the first missing chunk file holding rows [lo, hi) of array `name` (stored under
    `base`; `layout`: its `chunk_layout`), or None when all are there."""
    c, encode, tails, size = layout or chunk_layout(arr)
    if hi <= lo or size == 0:
        return None
    for j in range(lo // c, (hi - 1) // c + 1):
        for t in tails:
            key = encode((j, *t))
            if not os.path.isfile(f"{base}/{name}/{key}"):
                return key
    return None


def arrays_under(groups: list[tuple[Path, object]]) -> list[tuple[Path, str, object]]:
    """(base, name, array) of every array below each (base path, zarr group); reads metadata only."""
    return [(base, k, a) for base, g in groups for k, a in g.members(max_depth=None) if isinstance(a, zarr.Array)]
