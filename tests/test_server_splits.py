"""Choosing the split the views read: `?split=` on every view route, `Explorer.view/store(split=)`,
one view recording (and one cache) per split, whole splits by default."""
import pytest
from fastapi.testclient import TestClient

from explore_support import make_explorer
from rnnvis.server import create_app


@pytest.fixture(scope="module")
def client(tmp_path_factory, one_thread):
    ex = make_explorer(tmp_path_factory.mktemp("splits") / "home", planted_n=10)
    with TestClient(create_app(ex.ws, explorer=ex), base_url="http://127.0.0.1:8000") as c:
        c.ex = ex
        yield c
    ex.jobs.shutdown()


def ready(client, ref, split=None):
    """GET documents of `ref` on `split`, waiting out the recording job; (answer, the job's JSON or None)."""
    params = {"limit": 1000, **({"split": split} if split else {})}
    r = client.get(f"/api/models/{ref}/documents", params=params)
    job = None
    if r.status_code == 409:
        job = r.json()["job"]
        assert client.ex.jobs.wait(job["id"], 60).status == "done"
        r = client.get(f"/api/models/{ref}/documents", params=params)
    assert r.status_code == 200, r.text
    return r.json(), job


def test_info_names_the_split_and_the_splits_to_choose_from(client):
    info = client.get("/api/models/wlm/info").json()
    assert (info["split"], info["default_split"], info["splits"]) == ("test", "test", ["train", "valid", "test"])
    info = client.get("/api/models/wlm/info", params={"split": "valid"}).json()
    assert (info["split"], info["default_split"]) == ("valid", "test")
    own = client.get("/api/models/own/info").json()
    assert (own["split"], own["splits"]) == ("own", ["own"])


@pytest.mark.parametrize("path", ["/api/models/wlm/info", "/api/models/wlm/cocluster", "/api/models/wlm/metrics",
                                  "/api/models/wlm/documents"])
def test_an_unknown_split_is_404_naming_the_splits(client, path):
    r = client.get(path, params={"split": "dev"})
    assert r.status_code == 404
    assert "dev" in r.json()["error"] and r.json()["fix"] == "choose split=train or valid or test"
    r = client.post("/api/models/own/record", params={"split": "test"})  # own data is one split
    assert r.status_code == 404 and r.json()["fix"] == "choose split=own"
    r = client.get("/api/compare", params={"a": "wlm", "b": "wlm", "split": "dev"})
    assert r.status_code == 404


def test_each_split_has_its_own_recording_job_and_documents(client):
    test_docs, _ = ready(client, "wlm")
    valid_docs, job = ready(client, "wlm", "valid")
    assert job is not None and job["kind"] == "record"  # the valid split is recorded on first use
    assert job["meta"]["split"] == "valid" and "valid split" in job["title"]
    listed = client.get(f"/api/jobs/{job['id']}").json()
    assert listed["meta"] == {"model": "wlm", "split": "valid"}
    a = {d["doc"] for d in test_docs["documents"]}
    b = {d["doc"] for d in valid_docs["documents"]}
    assert a and b and not a & b  # other documents: the cached document list is not shared
    assert client.get("/api/models/wlm/info", params={"split": "valid"}).json()["recording"]["status"] == "ready"
    # a document of the other split is not in this one
    doc = sorted(b)[0]
    r = client.post("/api/models/wlm/sentence", json={"doc": doc})
    assert r.status_code == 404
    r = client.post("/api/models/wlm/sentence", params={"split": "valid"}, json={"doc": doc})
    assert r.status_code == 200 and r.json()["doc"] == doc


def test_views_of_two_splits_are_cached_apart(client):
    ready(client, "wlm")
    ready(client, "wlm", "valid")
    a = client.get("/api/models/wlm/metrics").json()
    b = client.get("/api/models/wlm/metrics", params={"split": "valid"}).json()
    assert (a["split"], b["split"]) == ("test", "valid")
    assert a["metrics"] != b["metrics"]


def test_python_api_store_of_a_split(client):
    ex = client.ex
    ready(client, "wlm", "train")
    view = ex.view("wlm", "train")
    assert view == "wlm" and ex.model(view).split == "train" and ex.model("wlm").split == "test"
    train, test = ex.store("wlm", split="train"), ex.store("wlm")
    assert train.n_tokens > test.n_tokens  # 80 % of the documents against 10 %
    assert ex.store(view) is train
    assert ex.model(view).module is ex.model("wlm").module  # one module (and lock) for every split


def test_a_view_recording_covers_the_whole_split_unless_capped(client):
    from rnnvis.explore.jobs import JobManager
    from rnnvis.explore.session import Explorer

    ex = client.ex
    corpus = ex.corpus("lines")
    n_test = len(corpus.split(**_split_args(ex.model("wlm").config))["test"])
    whole = Explorer(ex.ws, ex.catalog, JobManager(), warm=False)
    capped = Explorer(ex.ws, ex.catalog, JobManager(), max_tokens=10, warm=False)
    try:
        for e in (whole, capped):
            e.add_data("lines", corpus)
            e.jobs.wait(e.start_recording("wlm").id, 60)
        assert whole.max_tokens is None
        assert len(whole.doc_index("wlm")[0]) == n_test
        assert whole.store("wlm").meta["user"]["options"]["max_tokens"] is None
        assert capped.store("wlm").meta["user"]["options"]["max_tokens"] == 10  # another recording
        assert whole.store("wlm").path != capped.store("wlm").path
    finally:
        whole.jobs.shutdown()
        capped.jobs.shutdown()


def _split_args(cfg):
    return {"seed": cfg["split"]["seed"], "fractions": tuple(cfg["split"]["fractions"])}
