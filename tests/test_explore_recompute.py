"""Views over a view recording that stores only the h streams per token: windows of c and the
gates are recomputed exactly (`explore.common.read_streams`), corpus-wide scans of a stream that
is not stored and memory views of a stream without per-word statistics answer {error, fix}."""
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from explore_support import make_explorer
from rnnvis.server import create_app


@pytest.fixture(scope="module")
def client(tmp_path_factory, one_thread):
    ex = make_explorer(tmp_path_factory.mktemp("recompute") / "home", planted_n=10)
    with TestClient(create_app(ex.ws, explorer=ex), base_url="http://127.0.0.1:8000") as c:
        c.ex = ex
        job = ex.start_recording("wlm")
        assert ex.jobs.wait(job.id, 60).status == "done"
        yield c
    ex.jobs.shutdown()


def _truth(ex, ref, a, b):
    """Every stream of the store's tokens [a, b), from a plain `rnnvis.record` of the whole window
    around them, started from the zero state as the recording's windows are."""
    import rnnvis

    store = ex.store(ref)
    w = store.windows
    j = int(np.searchsorted(w[:, 1], a, side="right"))
    w0, w1 = int(w[j, 0]), int(w[j, 1])
    assert w0 <= a < b <= w1, "the document spans two windows"
    ids = torch.as_tensor(np.asarray(store.token_ids[w0:w1], dtype=np.int64))[None]
    h = ex.model(ref)
    args = (ids, torch.tensor([w1 - w0])) if h.kind == "classifier" and not h.own else (ids,)
    with h.lock, torch.no_grad():
        _, rec = rnnvis.record(h.module, *args)
    return {n: rec[n][0, a - w0:b - w0] for n in rec.streams}


def test_info_says_what_is_stored_and_what_has_word_statistics(client):
    streams = {s["name"]: s for s in client.get("/api/models/wlm/info").json()["streams"]}
    assert streams["layer0.fwd.h"]["stored"] and streams["layer0.fwd.h"]["word_stats"]
    assert not streams["layer0.fwd.c"]["stored"] and streams["layer0.fwd.c"]["word_stats"]
    assert not streams["layer0.fwd.gate.f"]["stored"] and not streams["layer0.fwd.gate.f"]["word_stats"]


def test_sentence_of_a_document_recomputes_c_and_gates_exactly(client):
    ex = client.ex
    doc = client.get("/api/models/wlm/documents").json()["documents"][1]["doc"]
    names = ["layer0.fwd.h", "layer0.fwd.c", "layer0.fwd.gate.f", "layer0.fwd.gate.o"]
    r = client.post("/api/models/wlm/sentence", json={"doc": doc, "streams": names})
    assert r.status_code == 200, r.text
    out = r.json()
    from rnnvis.explore.common import doc_range

    a, b = doc_range(ex, "wlm", doc)
    truth = _truth(ex, "wlm", a, b)
    for n in names[1:]:  # recomputed: float32, exact up to rounding in the JSON
        np.testing.assert_allclose(np.asarray(out["streams"][n], dtype=np.float64), truth[n], atol=2e-5)
    np.testing.assert_allclose(np.asarray(out["streams"]["layer0.fwd.h"]), truth["layer0.fwd.h"], atol=2e-3)  # f16
    # the glyphs' "memory kept" reads the (recomputed) forget gate
    kept = np.asarray(out["glyphs"]["kept"], dtype=float)
    assert kept.shape[0] == b - a and np.isfinite(kept).any()


@pytest.mark.parametrize("ref, names", [("clf", ["layer0.fwd.gate.z", "layer0.fwd.gate.n"]),
                                        ("own", ["layer0.fwd.c", "layer0.fwd.gate.f"])])
def test_recomputation_runs_each_model_as_it_was_recorded(client, ref, names):
    """A catalog classifier takes (ids, lengths), an own model its ids: `ModelHandle.forward` records and
    recomputes both the same way."""
    ex = client.ex
    assert ex.jobs.wait(ex.start_recording(ref).id, 60).status == "done"
    doc = client.get(f"/api/models/{ref}/documents").json()["documents"][0]["doc"]
    r = client.post(f"/api/models/{ref}/sentence", json={"doc": doc, "streams": names})
    assert r.status_code == 200, r.text
    from rnnvis.explore.common import doc_range

    a, b = doc_range(ex, ref, doc)
    truth = _truth(ex, ref, a, b)
    for n in names:
        np.testing.assert_allclose(np.asarray(r.json()["streams"][n], dtype=np.float64), truth[n], atol=2e-5)


def test_sentence_glyphs_of_a_gate_stream_are_absent_not_an_error(client):
    doc = client.get("/api/models/wlm/documents").json()["documents"][0]["doc"]
    r = client.post("/api/models/wlm/sentence", json={"doc": doc, "stream": "layer0.fwd.gate.i"})
    assert r.status_code == 200, r.text
    assert r.json()["glyphs"] is None and len(r.json()["streams"]["layer0.fwd.gate.i"][0]) == 12


def test_trajectory_of_a_stream_not_stored(client):
    doc = client.get("/api/models/wlm/documents").json()["documents"][0]["doc"]
    r = client.get("/api/models/wlm/projection", params={"what": "trajectory", "doc": doc, "stream": "layer0.fwd.c"})
    assert r.status_code == 200, r.text
    assert len(r.json()["points"]) > 1


@pytest.mark.parametrize("path,body", [
    ("/api/models/wlm/pattern/select", {"stream": "layer0.fwd.c", "doc": None, "start": 0, "stop": 2}),
    ("/api/models/wlm/pattern/match", {"stream": "layer0.fwd.c", "units": [0, 1]}),
])
def test_corpus_scans_of_a_stream_not_stored_say_how_to_store_it(client, path, body):
    if body.get("doc", 0) is None:
        body = {**body, "doc": client.get("/api/models/wlm/documents").json()["documents"][0]["doc"]}
    r = client.post(path, json=body)
    assert r.status_code == 400
    e = r.json()
    assert "not stored per token" in e["error"] and "rnnvis record wlm --streams '*'" in e["fix"]


def test_memory_views_need_per_word_statistics(client):
    r = client.get("/api/models/wlm/cocluster", params={"stream": "layer0.fwd.gate.f", "min_count": 1})
    assert r.status_code == 400
    e = r.json()
    assert "per-word statistics" in e["error"] and "rnnvis record wlm --word-stats '*'" in e["fix"]
    assert "layer0.fwd.c" in e["fix"]  # the streams that have them
    for path, params in [("word", {"word": "the"}), ("unit", {"unit": 0}), ("radar", {"words": "the,cat"}),
                         ("projection", {"what": "units"})]:
        r = client.get(f"/api/models/wlm/{path}", params={**params, "stream": "layer0.fwd.gate.i"})
        assert r.status_code == 400 and "--word-stats" in r.json()["fix"], (path, r.text)
    assert client.get("/api/models/wlm/cocluster", params={"stream": "layer0.fwd.c", "min_count": 1}).status_code == 200


def test_unit_of_a_stream_not_stored_has_its_distribution_from_the_statistics(client):
    r = client.get("/api/models/wlm/unit", params={"stream": "layer0.fwd.c", "unit": 3})
    assert r.status_code == 200, r.text
    out = r.json()
    hist = out["histogram"]
    assert 0 < sum(hist["counts"]) <= client.ex.store("wlm").n_tokens  # the recorder's (sampled) histogram
    assert len(hist["edges"]) == len(hist["counts"]) + 1 and hist["edges"] == sorted(hist["edges"])
    assert hist["edges"][0] <= out["mean"] <= hist["edges"][-1]


def test_a_recording_of_every_stream_is_found_and_read(ws, catalog, tmp_path, one_thread):
    """The fix works: after `rnnvis record MODEL --streams '*' --word-stats '*'` (here its Python call), the
    server reads that recording (no job): every stream is stored and has per-word statistics."""
    from rnnvis.data import load_user_data
    from rnnvis.explore.common import stream_of
    from rnnvis.explore.session import Explorer
    from rnnvis.models import TrainConfig, train
    from rnnvis.recorder import record_model

    text = tmp_path / "lines.txt"
    text.write_text("\n".join(["the cat sat on the mat .", "a dog ran in the park ."] * 12))
    train(load_user_data(text, per_line=True, name="lines"),
          TrainConfig(name="tiny", emb=4, hidden=6, epochs=1, batch_size=2, bptt=4, device="cpu"), ws, catalog,
          progress=False)
    record_model("tiny", ws, catalog, data=str(text), data_options={"per_line": True, "name": "lines"},
                 store_streams=("*",), word_stats=("*",), progress=False)
    ex = Explorer(ws, catalog, warm=False)
    try:
        store = ex.store("tiny")  # found at once: no 409, no job
        assert set(store.streams) == set(store.all_streams) and ex.jobs.list() == []
        assert stream_of(store, "layer0.fwd.gate.f", stored=True, words=True) == "layer0.fwd.gate.f"
    finally:
        ex.jobs.shutdown()


def test_the_fix_names_the_split_and_knows_own_models(client):
    ex = client.ex
    assert ex.jobs.wait(ex.start_recording(ex.view("wlm", "valid")).id, 60).status == "done"
    r = client.get("/api/models/wlm/cocluster", params={"stream": "layer0.fwd.gate.f", "split": "valid"})
    assert r.status_code == 400 and "rnnvis record wlm --split valid --word-stats '*'" in r.json()["fix"]
    assert ex.jobs.wait(ex.start_recording("own").id, 60).status == "done"
    r = client.post("/api/models/own/pattern/match", json={"stream": "layer0.fwd.c", "units": [0]})
    assert r.status_code == 400 and "own model" in r.json()["fix"] and "rnnvis record" not in r.json()["fix"]
