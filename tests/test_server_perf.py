"""The performance, compare and training routes over HTTP (FastAPI TestClient)."""
import time

import pytest
from fastapi.testclient import TestClient

from perf_support import build, explorer


@pytest.fixture(scope="module")
def client(tmp_path_factory, one_thread):
    from rnnvis.catalog import Catalog
    from rnnvis.server import create_app
    from rnnvis.workspace import Workspace

    ws = Workspace.open(tmp_path_factory.mktemp("perfhttp") / "home")
    catalog = Catalog(ws.catalog_path)
    ex = explorer(ws, catalog, build(ws, catalog))
    with TestClient(create_app(ws, explorer=ex), base_url="http://127.0.0.1:8000") as c:
        yield c
    ex.jobs.shutdown()


def settled(client, method, url, timeout=60, **kw):
    """The answer once any 409 job (recording, analysis) is done."""
    deadline = time.time() + timeout
    while True:
        r = client.request(method, url, **kw)
        if r.status_code != 409:
            return r
        job = r.json()["job"]
        assert job["status"] not in ("failed", "cancelled"), job
        assert time.time() < deadline, job
        time.sleep(0.05)


def test_metrics_errors_training_over_http(client):
    r = client.get("/api/models/lm-a/metrics")
    assert r.status_code in (200, 409)
    if r.status_code == 409:
        assert r.json()["job"]["kind"] == "record" and "error" in r.json()
    m = settled(client, "GET", "/api/models/lm-a/metrics").json()
    assert m["kind"] == "lm" and m["metrics"]["ppl"] > 1 and m["calibration"] is None
    e = settled(client, "GET", "/api/models/lm-a/errors").json()
    assert e["kind"] == "lm" and e["total"] > 0 and "reference" in e
    t = settled(client, "GET", "/api/models/lm-a/training").json()
    assert t["run_id"] is not None and t["curves"] and len(t["dynamics"]["labels"]) == 2
    c = settled(client, "GET", "/api/models/clf/metrics").json()
    assert c["kind"] == "classifier" and len(c["confusion"]) == 2 and c["labels"] == ["neg", "pos"]
    assert client.get("/api/models/nope/metrics").status_code == 404


def test_compare_over_http(client):
    r = settled(client, "GET", "/api/compare?a=lm-a&b=lm-a")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["similarity"]["cka"][0][0] == pytest.approx(1.0)
    assert all(p["a"] == p["b"] for p in body["matching"]["pairs"])
    settled(client, "GET", "/api/models/lm-b/info")
    r = settled(client, "GET", "/api/compare?a=lm-a&b=lm-b&stream=layer0.fwd.h")
    assert r.status_code == 200 and r.json()["same_tokens"]
    doc = settled(client, "GET", "/api/models/lm-a/documents").json()["documents"][0]["doc"]
    t = settled(client, "GET", f"/api/compare/tokens?a=lm-a&b=lm-b&doc={doc}").json()
    assert len(t["tokens"]) == len(t["diff"])
    r = client.get("/api/compare?a=lm-a&b=lm-other")
    assert r.status_code == 400 and "same data set" in r.json()["fix"]
    assert client.get("/api/compare?a=lm-a&b=nope").status_code == 404
    r = settled(client, "GET", "/api/compare?a=lm-a&b=lm-b&stream=layer9.fwd.h")
    assert r.status_code == 404 and "error" in r.json()
    assert client.get("/api/compare?a=lm-a").status_code == 422
    assert client.get("/api/compare/tokens?a=lm-a&b=lm-b&doc=-1").status_code == 422


def test_train_job_over_http(client):
    r = client.post("/api/train", json={"dataset": "lines", "name": "lm-http", "cell": "lstm", "layers": 1,
                                        "hidden": 8, "emb": 8, "epochs": 1, "batch_size": 4, "bptt": 8})
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["kind"] == "train" and job["status"] in ("queued", "running", "done")
    deadline = time.time() + 60
    while job["status"] not in ("done", "failed", "cancelled"):
        assert time.time() < deadline
        time.sleep(0.05)
        job = client.get(f"/api/jobs/{job['id']}").json()
    assert job["status"] == "done", job["error"]
    assert "lm-http" in {m["name"] for m in client.get("/api/models").json()}
    # cancel a long one
    r = client.post("/api/train", json={"dataset": "lines", "name": "lm-http-long", "hidden": 8, "emb": 8,
                                        "epochs": 100, "batch_size": 2, "bptt": 4, "patience": None})
    jid = r.json()["id"]
    deadline = time.time() + 30
    while client.get(f"/api/jobs/{jid}").json()["progress"] == 0:
        assert time.time() < deadline
        time.sleep(0.02)
    assert client.post(f"/api/jobs/{jid}/cancel").status_code == 200
    while (job := client.get(f"/api/jobs/{jid}").json())["status"] not in ("done", "failed", "cancelled"):
        assert time.time() < deadline
        time.sleep(0.05)
    assert job["status"] == "cancelled"
    for body, status in (({"dataset": "lines", "hidden": "x"}, 400), ({"dataset": "nope"}, 404),
                         ({"dataset": "lines", "name": "../x"}, 400), ({"dataset": "lines", "zzz": 1}, 400)):
        r = client.post("/api/train", json=body)
        assert r.status_code == status and r.json()["error"] and r.json()["fix"], (body, r.text)
