"""Import a training run made outside rnnvis into the catalog, from a CSV or TensorBoard event files.

CSV: a header row, then one row per logged step. Columns: ``step`` (required, integer), ``epoch``
(optional, number), ``split`` (optional, e.g. train / valid / test; else the `split` argument),
then one column per metric (split names validation / val / dev / eval are stored as ``valid``,
training as ``train``). Empty and ``nan`` cells are missing values and are skipped. The whole
file is checked before anything is written, so a bad file leaves the catalog untouched.

TensorBoard: scalar summaries (``simple_value``) of every ``events.out.tfevents.*`` file under a
directory (or one file). When the `tensorboard` package is importable its record reader is used;
otherwise a minimal reader in this module parses the TFRecord framing
([uint64 length][uint32 masked crc32c of length][data][uint32 masked crc32c of data]) and the
Event / Summary protobuf fields it needs (Event: 1 wall_time, 2 step, 5 summary; Summary: 1 value;
Value: 1 tag, 2 simple_value). It verifies the length crc of every record (cheap, catches a
broken file) and the data crc only with ``verify_data=True`` (pure Python crc32c is slow unless
the optional `google_crc32c` module is present). A truncated last record (a file still being
written) ends the file quietly. Other summaries (images, histograms, tensors) are skipped.
The split of a scalar is taken from its directory (``logs/valid/events...``) or its tag
(``valid/loss``, ``loss/valid``) when either names a split, else the `split` argument.
"""
from __future__ import annotations

import csv
import io
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from rnnvis.catalog import Catalog
from rnnvis.errors import RnnvisError
from rnnvis.fsutil import read_user_file

MAX_STEP = 2 ** 63 - 1  # steps are SQLite integers
SPLITS = {"train": "train", "training": "train", "valid": "valid", "validation": "valid", "val": "valid",
          "dev": "valid", "eval": "valid", "test": "test"}


@dataclass(frozen=True)
class ImportedRun:
    """What an import wrote to the catalog."""

    run_id: int
    source: str  # csv | tensorboard
    points: int  # (step, split, key) values written
    skipped: int  # empty / nan cells or non-scalar summaries skipped
    splits: tuple[str, ...]
    keys: tuple[str, ...]


def _number(text: str, what: str) -> float | None:
    t = text.strip()
    if t == "" or t.lower() == "nan":
        return None
    try:
        return float(t)
    except ValueError:
        raise RnnvisError(f"{what}: {text!r} is not a number", "metric columns must hold numbers") from None


def read_csv_metrics(path: str | Path, split: str = "train") -> tuple[list[tuple[int, float | None, str, dict]], int]:
    """([(step, epoch, split, {key: value})], skipped cells) of a metrics CSV, all checked."""
    p = Path(path)
    if not p.exists():
        raise RnnvisError(f"no CSV file at {p}", "check the path")
    try:
        with io.StringIO(_csv_text(p), newline="") as f:
            return _read_csv_rows(p, csv.reader(f), split)
    except csv.Error as exc:  # a NUL byte, a field over the csv module's limit, bad quoting
        raise RnnvisError(f"{p.name} is not a readable CSV file: {exc}",
                          "export the metrics as a plain-text CSV (one row per step)") from exc


def _csv_text(p: Path) -> str:
    """The text of a metrics CSV: a regular file (never a FIFO or a device) of UTF-8 text."""
    data = read_user_file(p)
    if b"\0" in data:
        raise RnnvisError(f"{p.name} is a binary file, not a CSV text file",
                          "export the metrics as a CSV, or give a TensorBoard log with --format tensorboard")
    try:
        return data.decode("utf-8-sig")  # -sig: spreadsheet exports start with a BOM
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise RnnvisError(f"{p.name} is not UTF-8 text (undecodable byte 0x{data[exc.start]:02x} on line {line})",
                          "re-save it as UTF-8, e.g. `iconv -f latin1 -t utf-8 IN > OUT`") from exc


def _read_csv_rows(p: Path, reader, split: str) -> tuple[list[tuple[int, float | None, str, dict]], int]:
    """([(step, epoch, split, {key: value})], skipped cells) of the rows of a metrics CSV, all checked."""
    header = [h.strip() for h in next(reader, [])]
    cols = {h.lower(): i for i, h in enumerate(header)}
    if "step" not in cols:
        raise RnnvisError(f"{p.name} has no 'step' column (columns: {header})",
                          "name the column of training steps 'step'")
    special = {cols["step"], cols.get("epoch", -1), cols.get("split", -1)}
    metrics = [(i, h) for i, h in enumerate(header) if i not in special and h]
    if not metrics:
        raise RnnvisError(f"{p.name} has no metric columns (columns: {header})",
                          "add one column per metric after step / epoch / split")
    rows, skipped = [], 0
    for line, row in enumerate(reader, start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise RnnvisError(f"{p.name} line {line} has {len(row)} cells for {len(header)} columns {header}",
                              "give every row one cell per column")
        step = _number(row[cols["step"]], f"{p.name} line {line}, column 'step'")
        if step is None or not math.isfinite(step) or step != int(step):
            raise RnnvisError(f"{p.name} line {line}: step {row[cols['step']]!r} is not an integer",
                              f"every row needs an integer step (columns: {header})")
        if not -MAX_STEP - 1 <= step <= MAX_STEP:
            raise RnnvisError(f"{p.name} line {line}: step {row[cols['step']].strip()} is out of range",
                              f"steps must be whole numbers between -2^63 and 2^63-1 ({MAX_STEP:,})")
        epoch = _number(row[cols["epoch"]], f"{p.name} line {line}, column 'epoch'") if "epoch" in cols else None
        if epoch is not None and not math.isfinite(epoch):
            raise RnnvisError(f"{p.name} line {line}: epoch {row[cols['epoch']].strip()} is not a finite number",
                              "give a finite epoch, or leave the cell empty")
        sp = row[cols["split"]].strip() if "split" in cols else split
        values = {}
        for i, h in metrics:
            v = _number(row[i], f"{p.name} line {line}, column {h!r} (columns: {header})")
            if v is None or not math.isfinite(v):
                skipped += 1
            else:
                values[h] = v
        rows.append((int(step), epoch, SPLITS.get(sp.lower(), sp) or split, values))
    if not rows:
        raise RnnvisError(f"{p.name} has no data rows", "export the metrics with one row per step")
    return rows, skipped


def _write(catalog: Catalog, name: str, config: dict, source: str, rows, skipped: int) -> ImportedRun:
    run_id = catalog.start_run(name, config, source=source)
    points, splits, keys = 0, set(), set()
    try:
        for step, epoch, split, values in rows:
            if values:
                catalog.log_metrics(run_id, step, split, values, epoch)
                points += len(values)
                splits.add(split)
                keys.update(values)
    except Exception:
        catalog.end_run(run_id, "failed")
        raise
    catalog.end_run(run_id, "finished")
    return ImportedRun(run_id, source, points, skipped, tuple(sorted(splits)), tuple(sorted(keys)))


def import_csv(catalog: Catalog, path: str | Path, name: str | None = None, split: str = "train",
               config: dict | None = None) -> ImportedRun:
    """Import a metrics CSV as a finished run (source 'csv'); the run is named after the file by default."""
    rows, skipped = read_csv_metrics(path, split)
    cfg = {"imported_from": str(Path(path).resolve()), **(config or {})}
    return _write(catalog, name or Path(path).stem, cfg, "csv", rows, skipped)


# -- TensorBoard ----------------------------------------------------------------------------
try:  # optional, fast; pulled in by zarr's codecs
    import google_crc32c as _fast_crc
except ImportError:
    _fast_crc = None
_CRC_TABLE: list[int] = []


def crc32c_py(data: bytes) -> int:
    """CRC-32C (Castagnoli) of `data` in pure Python (table driven)."""
    if not _CRC_TABLE:
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
            _CRC_TABLE.append(c)
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of `data`, with google_crc32c when it is installed."""
    return int(_fast_crc.value(bytes(data))) if _fast_crc is not None else crc32c_py(data)


def masked_crc(data: bytes) -> int:
    """TFRecord's masked crc: rotate right by 15 and add a constant."""
    c = crc32c(data)
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def read_records(path: str | Path, verify_data: bool = False) -> Iterator[bytes]:
    """The data of every TFRecord in a file, in order."""
    p = Path(path)
    with p.open("rb") as f:
        while True:
            head = f.read(12)
            if len(head) < 12:
                return  # end of file (or a truncated record being written)
            (length,), (crc,) = struct.unpack("<Q", head[:8]), struct.unpack("<I", head[8:])
            if masked_crc(head[:8]) != crc:
                raise RnnvisError(f"{p.name} is not a TFRecord file or is corrupt (bad length checksum)",
                                  "point the import at TensorBoard 'events.out.tfevents.*' files")
            data, tail = f.read(length), f.read(4)
            if len(data) < length or len(tail) < 4:
                return
            if verify_data and masked_crc(data) != struct.unpack("<I", tail)[0]:
                raise RnnvisError(f"{p.name} has a corrupt record (bad data checksum)", "re-export the event file")
            yield data


def _fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of a protobuf message; varints as int, fixed as raw bytes."""
    i, n = 0, len(buf)

    def varint() -> int:
        nonlocal i
        shift = result = 0
        while True:
            if i >= n:
                raise RnnvisError("truncated protobuf varint in an event record", "re-export the event file")
            b = buf[i]
            i += 1
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return result

    while i < n:
        key = varint()
        field, wire = key >> 3, key & 7
        if wire == 0:
            yield field, wire, varint()
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            yield field, wire, buf[i:i + size]
            i += size
        elif wire == 2:
            size = varint()
            yield field, wire, buf[i:i + size]
            i += size
        else:
            raise RnnvisError(f"unsupported protobuf wire type {wire} in an event record",
                              "only TensorBoard event files are supported")


def parse_event(data: bytes) -> tuple[int, list[tuple[str, float]]]:
    """(step, [(tag, simple_value)]) of one serialized Event; other summary values are left out."""
    step, scalars = 0, []
    for field, wire, value in _fields(data):
        if field == 2 and wire == 0:
            step = value - (1 << 64) if value >= 1 << 63 else value
        elif field == 5 and wire == 2:
            for vf, vw, vval in _fields(value):
                if vf != 1 or vw != 2:
                    continue
                tag, simple = None, None
                for f2, w2, v2 in _fields(vval):
                    if f2 == 1 and w2 == 2:
                        tag = v2.decode("utf-8", "replace")
                    elif f2 == 2 and w2 == 5:
                        simple = struct.unpack("<f", v2)[0]
                if tag is not None and simple is not None:
                    scalars.append((tag, float(simple)))
    return step, scalars


def _tb_events(path: Path, verify_data: bool) -> Iterator[tuple[int, list[tuple[str, float]]]]:
    try:
        from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    except ImportError:
        RawEventFileLoader = None
    records = RawEventFileLoader(str(path)).Load() if RawEventFileLoader else read_records(path, verify_data)
    for data in records:
        yield parse_event(data)


def _split_of(tag: str, directory: str, default: str) -> tuple[str, str]:
    parts = tag.split("/")
    if SPLITS.get(directory.lower()):
        return SPLITS[directory.lower()], tag
    if len(parts) > 1 and parts[0].lower() in SPLITS:
        return SPLITS[parts[0].lower()], "/".join(parts[1:])
    if len(parts) > 1 and parts[-1].lower() in SPLITS:
        return SPLITS[parts[-1].lower()], "/".join(parts[:-1])
    return default, tag


def import_tensorboard(catalog: Catalog, path: str | Path, name: str | None = None, split: str = "train",
                       config: dict | None = None, verify_data: bool = False) -> ImportedRun:
    """Import the scalar summaries of a TensorBoard log directory (or one event file) as a finished run."""
    root = Path(path)
    files = [root] if root.is_file() else sorted(f for f in root.rglob("events.out.tfevents*") if f.is_file()) \
        if root.is_dir() else []  # regular files only: a FIFO among them would block the import forever
    if not files:
        raise RnnvisError(f"no TensorBoard event files at {root}",
                          "point at a log directory holding 'events.out.tfevents.*' files")
    merged: dict[tuple[int, str], dict[str, float]] = {}
    skipped = 0
    for f in files:
        directory = f.parent.name if f != root else ""
        for step, scalars in _tb_events(f, verify_data):
            for tag, value in scalars:
                sp, key = _split_of(tag, directory, split)
                if math.isfinite(value):
                    merged.setdefault((step, sp), {})[key] = value
                else:
                    skipped += 1
    if not merged:
        raise RnnvisError(f"the event files at {root} hold no scalar summaries",
                          "log scalars with SummaryWriter.add_scalar (simple_value)")
    rows = [(step, None, sp, values) for (step, sp), values in sorted(merged.items())]
    cfg = {"imported_from": str(root.resolve()), **(config or {})}
    run_name = name or (root.name if root.is_dir() else root.parent.name)
    return _write(catalog, run_name, cfg, "tensorboard", rows, skipped)


__all__ = ["ImportedRun", "crc32c", "crc32c_py", "import_csv", "import_tensorboard", "masked_crc", "parse_event",
           "read_csv_metrics", "read_records"]
