"""Damaged or missing recordings (issue 17): a deleted or garbage chunk is a clear "damaged recording" error,
never zeros or a 500; a store that does not open is moved to `<home>/quarantine/` and recorded again once;
a view recording that keeps failing answers its error instead of 409 forever; `--max-tokens` is exact."""
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from rnnvis.cli import main
from rnnvis.errors import RnnvisError
from rnnvis.explore.session import Explorer, NotReady
from rnnvis.recording.store import Store

TEXT = ["the cat sat on the mat .", "a dog ran in the park .", "the bird sang a song .",
        "my friend read the book .", "the sun is hot today .", "we ate the cake at noon ."]
REVIEWS = [("a great and lovely film", 1), ("a bad and boring film", 0), ("i loved it , great fun", 1),
           ("awful , i hated it", 0), ("great acting and a lovely story", 1), ("boring plot and bad acting", 0)]


@pytest.fixture
def lines(tmp_path):
    path = tmp_path / "lines.txt"
    path.write_text("\n".join(TEXT * 8))
    return path


@pytest.fixture
def tiny(ws, catalog, lines, one_thread):
    """A catalogued word LM trained on a user file (its view recording is made by `record_model`)."""
    from rnnvis.data import load_user_data
    from rnnvis.models import TrainConfig, train

    train(load_user_data(lines, per_line=True, name="lines"),
          TrainConfig(name="tiny", emb=4, hidden=6, epochs=1, batch_size=2, bptt=4, device="cpu"), ws, catalog,
          progress=False)
    return "tiny"


@pytest.fixture
def ex(ws, catalog, tiny):
    e = Explorer(ws, catalog, warm=False)
    yield e
    e.jobs.shutdown()


def ready(ex, ref="tiny"):
    try:
        return ex.store(ref)
    except NotReady as e:
        job = ex.jobs.wait(e.job.id, 60)
        assert job.status == "done", job.error
        return ex.store(ref)


def client(ws, ex):
    from rnnvis.server.app import create_app

    return TestClient(create_app(ws, explorer=ex), base_url="http://127.0.0.1:8000", raise_server_exceptions=False)


def chunk_file(store, array="streams/layer0.fwd.h", chunk="c/0/0"):
    return store.path / store.meta["shards"][0]["path"] / array / chunk


def sentence(c, ref="tiny"):
    r = c.post(f"/api/models/{ref}/sentence", json={"doc": int(ready_doc(c, ref))})
    return r.status_code, r.json()


def ready_doc(c, ref):
    return c.get(f"/api/models/{ref}/documents").json()["documents"][0]["doc"]


def damaged_answer(status, body, store_path, array):
    assert status in (400, 500, 503), (status, body)
    assert set(body) >= {"error", "fix"}, body
    assert "damaged" in body["error"] and str(store_path) in body["error"] and array in body["error"], body


# -- 1. a deleted chunk is an error that names the store and the array, never zeros -------------------------------
def test_deleted_chunk_is_a_damaged_recording_error_not_zeros(ex, ws):
    store = ready(ex)
    whole = store.read("layer0.fwd.h")
    assert np.abs(whole).sum() > 0
    chunk_file(store).unlink()
    with pytest.raises(RnnvisError, match="damaged.*layer0.fwd.h") as e:
        Store(store.path).read("layer0.fwd.h")
    assert str(store.path) in e.value.what and "missing" in e.value.what and e.value.fix
    with client(ws, ex) as c:
        docs = c.get("/api/models/tiny/documents").json()["documents"]
        r = c.post("/api/models/tiny/sentence", json={"doc": docs[0]["doc"]})
        damaged_answer(r.status_code, r.json(), store.path, "layer0.fwd.h")


def test_deleted_chunk_of_a_column_is_damage_too(ex):
    store = ready(ex)
    chunk_file(store, "token_ids", "c/0").unlink()
    with pytest.raises(RnnvisError, match="damaged.*token_ids"):
        Store(store.path).column("token_ids")


# -- 2. a chunk that does not decode is the same error, not a 500 ---------------------------------------------------
def test_garbage_chunk_is_a_damaged_recording_error(ex, ws):
    store = ready(ex)
    chunk_file(store).write_bytes(b"not zstd at all" * 20)
    with pytest.raises(RnnvisError, match="damaged.*layer0.fwd.h"):
        Store(store.path).read("layer0.fwd.h", 0, 10)
    with client(ws, ex) as c:
        docs = c.get("/api/models/tiny/documents").json()["documents"]
        r = c.post("/api/models/tiny/sentence", json={"doc": docs[0]["doc"]})
        damaged_answer(r.status_code, r.json(), store.path, "layer0.fwd.h")
        store = ready(ex)  # the damaged store was set aside and recorded again
        chunk_file(store).write_bytes(b"\x28\xb5\x2f\xfd garbage" * 20)  # a zstd magic, then garbage
        r = c.get("/api/models/tiny/unit", params={"stream": "layer0.fwd.h", "unit": 0})
        damaged_answer(r.status_code, r.json(), store.path, "layer0.fwd.h")


def test_garbage_statistics_are_a_damaged_recording_error(ex):
    store = ready(ex)
    at = store.path / store.meta["stats_at"] / "stats/layer0.fwd.h/units/c/0/0"
    at.write_bytes(b"\x00garbage" * 8)
    with pytest.raises(RnnvisError, match="damaged.*stats/layer0.fwd.h"):
        Store(store.path).stats["layer0.fwd.h"]


# -- 3. a damaged store is moved to quarantine and recorded again, once; failures do not loop ------------------------
def quarantined(ws):
    q = ws.home / "quarantine"
    return sorted(p.name for p in q.iterdir()) if q.is_dir() else []


def test_damage_found_by_a_view_quarantines_the_store_and_records_it_again(ex, ws, catalog):
    store = ready(ex)
    key = store.path.name
    chunk_file(store).unlink()
    with client(ws, ex) as c:
        docs = c.get("/api/models/tiny/documents").json()["documents"]
        r = c.post("/api/models/tiny/sentence", json={"doc": docs[0]["doc"]})
        damaged_answer(r.status_code, r.json(), store.path, "layer0.fwd.h")
        assert "recorded again" in r.json()["fix"]
        assert [n.startswith(key) for n in quarantined(ws)] == [True]
        assert catalog.get_recording(key) is None  # the row went with the store
        r = c.post("/api/models/tiny/sentence", json={"doc": docs[0]["doc"]})
        assert r.status_code == 409  # being recorded again
        assert ex.jobs.wait(r.json()["job"]["id"], 60).status == "done"
        r = c.post("/api/models/tiny/sentence", json={"doc": docs[0]["doc"]})
        assert r.status_code == 200, r.json()
    assert catalog.get_recording(key) is not None and Store(store.path).read("layer0.fwd.h").any()


def test_a_store_damaged_again_after_it_was_recorded_again_is_not_recorded_in_a_loop(ex, ws):
    store = ready(ex)
    with client(ws, ex) as c:
        doc = c.get("/api/models/tiny/documents").json()["documents"][0]["doc"]
        for _ in range(2):  # damaged, recorded again, damaged again
            chunk_file(ready(ex)).unlink()
            r = c.post("/api/models/tiny/sentence", json={"doc": doc})
            damaged_answer(r.status_code, r.json(), store.path, "layer0.fwd.h")
        assert "POST /api/models/tiny/record" in r.json()["fix"]
        jobs = len(ex.jobs.list())
        for _ in range(3):  # the views answer the damage; nothing is recorded by itself any more
            r = c.post("/api/models/tiny/sentence", json={"doc": doc})
            assert r.status_code != 409 and "damaged" in r.json()["error"], r.json()
        assert len(ex.jobs.list()) == jobs
        job = c.post("/api/models/tiny/record").json()  # until the user asks again
        assert ex.jobs.wait(job["id"], 60).status == "done"
        assert c.post("/api/models/tiny/sentence", json={"doc": doc}).status_code == 200
    assert len(quarantined(ws)) == 2


@pytest.mark.parametrize("damage", ["garbage", "deleted"])
def test_broken_root_metadata_is_recorded_again_once_not_in_a_loop(ex, ws, catalog, damage):
    store = ready(ex)
    path, key = store.path, store.path.name
    ex2 = Explorer(ws, catalog, warm=False)  # a server started on the broken store
    try:
        if damage == "garbage":
            (path / "zarr.json").write_text("{ not json")
        else:
            (path / "zarr.json").unlink()
        with client(ws, ex2) as c:
            codes = []
            for _ in range(6):
                r = c.get("/api/models/tiny/documents")
                codes.append(r.status_code)
                if r.status_code == 409:
                    ex2.jobs.wait(r.json()["job"]["id"], 60)
            assert codes[0] == 409 and codes[-1] == 200, codes
        assert len([j for j in ex2.jobs.list() if j.kind == "record"]) == 1
        assert [n.startswith(key) for n in quarantined(ws)] == [True]
        assert Store(path).n_tokens == store.n_tokens
    finally:
        ex2.jobs.shutdown()


def test_a_failing_view_recording_is_retried_once_then_answers_its_error(ws, catalog, tiny):
    rec = ws.recordings_dir
    rec.rmdir()
    rec.write_text("not a folder")  # every recording job fails
    ex = Explorer(ws, catalog, warm=False)
    try:
        with client(ws, ex) as c:
            codes, bodies = [], []
            for _ in range(8):
                r = c.get("/api/models/tiny/documents")
                codes.append(r.status_code)
                bodies.append(r.json())
                if r.status_code == 409:
                    assert ex.jobs.wait(r.json()["job"]["id"], 60).status == "failed"
            assert codes[:2] == [409, 409] and 409 not in codes[2:], codes
            assert all(set(b) >= {"error", "fix"} and "/record" in b["fix"] for b in bodies[2:]), bodies[2]
            jobs = [j for j in ex.jobs.list() if j.kind == "record"]
            assert len(jobs) == 2
            r = c.post("/api/models/tiny/record")  # the user asks again: one more job
            assert r.status_code == 200 and r.json()["status"] in ("queued", "running", "failed")
            assert len([j for j in ex.jobs.list() if j.kind == "record"]) == 3
    finally:
        ex.jobs.shutdown()


@pytest.mark.parametrize("damage", ["root metadata", "missing chunk"])
def test_cli_record_replaces_a_broken_store_and_says_so(ws, catalog, tiny, lines, capsys, damage):
    args = ["record", "tiny", "--home", str(ws.home), "--data", str(lines), "--per-line"]
    assert main(args) == 0
    path = json.loads(capsys.readouterr().out)["path"]
    if damage == "root metadata":
        (ws.home / "recordings" / path.rsplit("/", 1)[-1] / "zarr.json").write_text("garbage")
    else:
        chunk_file(Store(path), "positions", "c/0").unlink()
    assert main(args) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["path"] == path and Store(path).positions.size > 0
    assert "damaged" in out.err and "quarantine" in out.err, out.err
    assert len(quarantined(ws)) == 1 and catalog.get_recording(path.rsplit("/", 1)[-1]) is not None


def test_cli_record_replace_records_again(ws, catalog, tiny, lines, capsys):
    args = ["record", "tiny", "--home", str(ws.home), "--data", str(lines), "--per-line"]
    assert main(args) == 0
    store = Store(json.loads(capsys.readouterr().out)["path"])
    chunk_file(store).write_bytes(b"garbage" * 10)  # found only when read: the fix names --replace
    with pytest.raises(RnnvisError, match="damaged") as e:
        Store(store.path).read("layer0.fwd.h")
    assert "--replace" in e.value.fix
    assert main(args + ["--replace"]) == 0
    assert json.loads(capsys.readouterr().out)["path"] == str(store.path)
    assert Store(store.path).read("layer0.fwd.h").any()


# -- 4. --max-tokens is exact (LMs) or stops at whole documents (classifiers) ------------------------------------------
@pytest.mark.parametrize("cap", [1, 37, 61])
def test_max_tokens_records_exactly_that_many_tokens(ws, catalog, tiny, lines, capsys, cap):
    from rnnvis.recorder import record_model

    store = record_model("tiny", ws, catalog, data=str(lines), data_options={"per_line": True}, max_tokens=cap,
                         split="all", batch_size=4, window=5, progress=False)
    assert store.n_tokens == cap == len(store.token_ids) == int(np.diff(store.windows, axis=1).sum())
    assert main(["record", "tiny", "--home", str(ws.home), "--data", str(lines), "--per-line", "--max-tokens",
                 str(cap + 2), "--window", "7", "--split", "all"]) == 0
    assert json.loads(capsys.readouterr().out)["tokens"] == cap + 2


def test_max_tokens_above_the_split_records_the_whole_split(ws, catalog, tiny, lines):
    from rnnvis.recorder import record_model

    whole = record_model("tiny", ws, catalog, data=str(lines), data_options={"per_line": True}, progress=False)
    capped = record_model("tiny", ws, catalog, data=str(lines), data_options={"per_line": True},
                          max_tokens=whole.n_tokens + 1000, progress=False)
    assert capped.n_tokens == whole.n_tokens
    assert capped.path != whole.path  # keyed by its options, as before


def test_view_recording_of_an_own_lm_is_exact_too(ws, catalog):
    import torch

    from rnnvis.explore.jobs import JobManager

    vocab = ["<unk>"] + sorted({w for t in TEXT for w in t.split()})
    stoi = {w: i for i, w in enumerate(vocab)}
    torch.manual_seed(0)

    class LM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.rnn, self.out = torch.nn.Embedding(len(vocab), 4), torch.nn.GRU(4, 5, batch_first=True), \
                torch.nn.Linear(5, len(vocab))

        def forward(self, ids):
            return self.out(self.rnn(self.emb(ids))[0])

    e = Explorer(ws, catalog, JobManager(), max_tokens=23, warm=False)
    try:
        e.add_data("texts", TEXT * 3)
        e.add_model("mine", LM(), encode=lambda t: [stoi.get(w, 0) for w in t.split()], itos=vocab, data="texts")
        assert ready(e, "mine").n_tokens == 23
    finally:
        e.jobs.shutdown()


def test_classifier_cap_keeps_whole_documents(ws, catalog, one_thread):
    from rnnvis.data import Corpus, Document
    from rnnvis.models import TrainConfig, train

    reviews = Corpus("reviews", [Document(id=str(i), text=t, label=y) for i, (t, y) in enumerate(REVIEWS * 6)],
                     task="classify", label_names=["neg", "pos"])
    train(reviews, TrainConfig(name="clf", task="classify", level="word", cell="gru", emb=4, hidden=6, epochs=1,
                               batch_size=4, device="cpu"), ws, catalog, progress=False)
    for cap in (3, 13, 14):
        e = Explorer(ws, catalog, max_tokens=cap, warm=False)
        try:
            e.add_data("reviews", reviews)
            store = ready(e, "clf")
            h = e.model("clf")
            corpus, idx = e.view_docs(h)
            full = {i: len(h.tokenizer.encode_doc(corpus.documents[i], add_eos=False)[:200]) for i in idx}
            starts = store.windows[:, 0]
            recorded = [int(d) for d in store.doc_ids[starts]]
            lengths = np.diff(store.windows, axis=1).ravel().tolist()
            assert len(recorded) >= 1 and lengths == [full[d] for d in recorded]  # whole documents
            assert store.n_tokens <= cap or len(recorded) == 1  # within the cap, or the one first document
            rest = [full[i] for i in idx if i not in recorded]
            assert not rest or store.n_tokens + min(rest) > cap  # it stopped at the document that passed it
            assert store.meta["user"]["options"]["cut"] == "documents"
        finally:
            e.jobs.shutdown()
