"""Loaders for the user's own data: plain text (file or folder), CSV and JSON lines.

Every problem ends in one RnnvisError that names the file (and line or row) and says
how to fix it. Labels: strings map to class indices in sorted order (label_names keep
the strings); integers in 0..MAX_CLASSES-1 stay as they are (class indices), other integers
(negative or large, e.g. ids or years) map to indices in sorted order, so a label of 10^12 never
makes 10^12 classes; real numbers make a "regress" task. NaN and infinite labels are refused, and so
is a label column with more than MAX_CLASSES distinct values. Files are read only when they are
regular files (a FIFO or a device is refused, never read).
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
from pathlib import Path
from typing import Any

from ..errors import RnnvisError
from ..fsutil import read_user_file
from .corpus import Corpus, Document

FORMATS = ("text", "csv", "jsonl")
_SUFFIX_FORMAT = {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
_INT_RE = re.compile(r"[+-]?\d+")
MAX_CLASSES = 10_000  # distinct labels of a classification corpus


def guess_format(path: Path) -> str:
    """'text' for folders and unknown suffixes, 'csv' for .csv/.tsv, 'jsonl' for .jsonl/.ndjson/.json."""
    if path.is_dir():
        return "text"
    return _SUFFIX_FORMAT.get(path.suffix.lower(), "text")


def _read_text(path: Path) -> str:
    data = read_user_file(path)  # a FIFO or a device is refused, not read
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise RnnvisError(
            f"{path} is not UTF-8 text (undecodable byte 0x{data[exc.start]:02x} on line {line}, offset {exc.start})",
            "re-save it as UTF-8, e.g. `iconv -f latin1 -t utf-8 IN > OUT`",
        ) from exc


def _text_files(folder: Path) -> list[Path]:
    files = [p for p in sorted(folder.rglob("*"), key=lambda p: p.relative_to(folder).as_posix())
             if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)]
    if not files:
        raise RnnvisError(f"the folder {folder} has no files", "put one text file per document in it")
    return files


def _load_text(path: Path, per_line: bool) -> list[Document]:
    files = _text_files(path) if path.is_dir() else [path]
    docs = []
    for f in files:
        rel = f.relative_to(path).as_posix() if path.is_dir() else f.name
        text = _read_text(f).replace("\r\n", "\n")
        if per_line:
            docs += [Document(id=f"{rel}:{n}", text=line) for n, line in enumerate(text.split("\n"), 1)
                     if line.strip()]
        elif text.strip():
            docs.append(Document(id=rel, text=text))
    return docs


def _load_csv(path: Path, text_column: str, label_column: str | None) -> list[tuple[str, str, Any]]:
    text = _read_text(path)
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    reader = csv.DictReader(text.splitlines(), delimiter=delimiter)
    try:
        columns = reader.fieldnames or []
    except csv.Error as exc:
        raise _csv_error(path, reader.line_num, exc) from exc
    if not columns:
        raise RnnvisError(f"{path} is empty: no header row", "the first row must name the columns, e.g. text,label")
    for col, opt in ((text_column, "text_column"), (label_column, "label_column")):
        if col is not None and col not in columns:
            raise RnnvisError(f"{path} has no column {col!r}; its columns are {', '.join(map(repr, columns))}",
                              f"choose one of these with {opt}=...")
    rows = []
    try:
        for n, row in enumerate(reader, 2):  # line 1 is the header
            rows.append((f"row{n}", row.get(text_column) or "", row.get(label_column) if label_column else None))
    except csv.Error as exc:
        raise _csv_error(path, reader.line_num, exc) from exc
    return rows


def _csv_error(path: Path, line: int, exc: csv.Error) -> RnnvisError:
    if "field larger than field limit" in str(exc):
        return RnnvisError(f"{path} line {max(line, 1)} has a field longer than {csv.field_size_limit():,} characters "
                           "(the most a CSV field may hold)",
                           "split the long text into several rows, or use JSON lines (.jsonl) for long documents")
    return RnnvisError(f"{path} is not valid CSV near line {max(line, 1)}: {exc}", "check the quoting on that line")


def _load_jsonl(path: Path, text_column: str, label_column: str | None) -> list[tuple[str, str, Any]]:
    rows = []
    for n, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RnnvisError(f"{path} line {n} is not valid JSON ({exc.msg} at column {exc.colno})",
                              "each line must be one JSON object, e.g. {\"text\": \"...\", \"label\": \"pos\"}"
                              ) from exc
        if not isinstance(obj, dict):
            raise RnnvisError(f"{path} line {n} is a JSON {type(obj).__name__}, not an object",
                              "each line must be one JSON object (JSON lines, not a JSON array)")
        for col, opt in ((text_column, "text_column"), (label_column, "label_column")):
            if col is not None and col not in obj:
                raise RnnvisError(f"{path} line {n} has no key {col!r}; its keys are {', '.join(map(repr, obj))}",
                                  f"choose the right key with {opt}=..., or add it to every line")
        text = obj[text_column]
        if not isinstance(text, str):
            raise RnnvisError(f"{path} line {n}: {text_column!r} is a {type(text).__name__}, not a string",
                              "put the document text in a JSON string")
        rows.append((f"line{n}", text, obj[label_column] if label_column else None))
    return rows


def encode_labels(raw: list[Any], where: list[str], path: Path) -> tuple[list[int | float], list[str] | None, str]:
    """(labels, label_names, task) from raw label values (strings, numbers, booleans)."""
    for value, w in zip(raw, where, strict=True):
        if value is None or (isinstance(value, str) and not value.strip()):
            raise RnnvisError(f"{path} {w} has no label", "give every row a label, or drop unlabelled rows")
        if isinstance(value, (dict, list)):
            raise RnnvisError(f"{path} {w}: the label is a JSON {type(value).__name__}",
                              "labels must be strings or numbers")
        if isinstance(value, float) and not math.isfinite(value):
            raise RnnvisError(f"{path} {w}: the label is {value!r}, not a class or a number",
                              "give every row a real label (NaN and Infinity are not labels), or drop the row")
    labels, names, task = _encode(raw)
    if names is not None and len(names) > MAX_CLASSES:
        raise RnnvisError(f"{path}: the label column has {len(names):,} distinct values, more than the "
                          f"{MAX_CLASSES:,} classes a classifier may have",
                          "check that the label column holds classes (not ids or free text), or choose another one")
    return labels, names, task


def _encode(raw: list[Any]) -> tuple[list[int | float], list[str] | None, str]:
    if all(isinstance(v, bool) for v in raw):
        raw = [str(v).lower() for v in raw]
    ints = [_as_int(v) for v in raw]
    if all(i is not None for i in ints):
        if min(ints) >= 0 and max(ints) < MAX_CLASSES:  # class indices as given; label_names index them
            return ints, [str(i) for i in range(max(ints) + 1)], "classify"
        # negative or large integers (years, ids, 10^12): one class per distinct value, in sorted order
        values = sorted(set(ints))
        index = {v: i for i, v in enumerate(values)}
        return [index[v] for v in ints], [str(v) for v in values], "classify"
    floats = [_as_float(v) for v in raw]
    if all(f is not None for f in floats):
        return floats, None, "regress"
    names = sorted({str(v).strip() for v in raw})
    index = {s: i for i, s in enumerate(names)}
    return [index[str(v).strip()] for v in raw], names, "classify"


def _as_int(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str) and _INT_RE.fullmatch(v.strip()):
        return int(v)
    return None


def _as_float(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _fingerprint_files(path: Path) -> str:
    h = hashlib.sha256()
    for f in (_text_files(path) if path.is_dir() else [path]):
        h.update(f.name.encode() + b"\0" + read_user_file(f) + b"\0")
    return h.hexdigest()


def load_user_data(path: str | os.PathLike, *, fmt: str | None = None, text_column: str = "text",
                   label_column: str | None = None, per_line: bool = False, level: str = "word",
                   name: str | None = None) -> Corpus:
    """The user's text file or folder, CSV or JSONL file as a Corpus.

    text: one document per file (folders: every non-hidden file, sorted by path), or per
          non-empty line with per_line=True. csv/jsonl: one document per row with a non-empty
          `text_column`; `label_column` makes it a classification corpus.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise RnnvisError(f"no such file or folder: {path}",
                          "check the path (relative paths start in the current folder)")
    fmt = fmt or guess_format(path)
    if fmt not in FORMATS:
        raise RnnvisError(f"unknown data format {fmt!r}", f"choose one of {', '.join(FORMATS)}")
    if level not in ("word", "char"):
        raise RnnvisError(f"unknown level {level!r}", "use 'word' or 'char'")
    if path.is_dir() and fmt != "text":
        raise RnnvisError(f"{path} is a folder; only plain text can be read from a folder",
                          "give the CSV or JSONL file itself")
    name = name or path.stem or "data"
    # The path and options let a later session (the web app, `rnnvis record`) reload the same corpus.
    info: dict[str, Any] = {"source": "user", "path": str(path.resolve()), "format": fmt,
                            "options": {"fmt": fmt, "text_column": text_column, "label_column": label_column,
                                        "per_line": per_line, "level": level, "name": name}}
    label_names, task = None, "lm"
    if fmt == "text":
        if label_column is not None:
            raise RnnvisError("plain text has no label column", "use a CSV or JSONL file for labelled data")
        docs = _load_text(path, per_line)
    else:
        rows = (_load_csv if fmt == "csv" else _load_jsonl)(path, text_column, label_column)
        kept = [r for r in rows if r[1].strip()]
        info["skipped_empty_rows"] = len(rows) - len(kept)
        labels: list[Any] = [None] * len(kept)
        if label_column is not None and kept:
            labels, label_names, task = encode_labels([r[2] for r in kept], [r[0] for r in kept], path)
        docs = [Document(id=rid, text=text, label=lab) for (rid, text, _), lab in zip(kept, labels, strict=True)]
    if not docs:
        raise RnnvisError(f"{path} holds no documents (it is empty or has only blank text)",
                          "check the file, or the text column for CSV/JSONL")
    info["sha256"] = _fingerprint_files(path)
    return Corpus(name=name, documents=docs, level=level, task=task, label_names=label_names, info=info)
