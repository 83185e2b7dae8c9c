"""The exploration routes over HTTP: status codes, error bodies, limits and the 409 → ready flow."""
import json

import pytest
from fastapi.testclient import TestClient

from explore_support import make_explorer
from rnnvis.server import create_app


@pytest.fixture(scope="module")
def client(tmp_path_factory, one_thread):
    ex = make_explorer(tmp_path_factory.mktemp("serve") / "home", planted_n=10)
    with TestClient(create_app(ex.ws, explorer=ex), base_url="http://127.0.0.1:8000") as c:
        c.ex = ex
        yield c
    ex.jobs.shutdown()


def wait_ready(client, ref):
    r = client.get(f"/api/models/{ref}/saturation")
    if r.status_code == 409:
        body = r.json()
        assert set(body) == {"error", "fix", "job"} and body["job"]["kind"] == "record"
        job = client.ex.jobs.wait(body["job"]["id"], 60)
        assert job.status == "done"
        assert client.get(f"/api/jobs/{job.id}").json()["status"] == "done"
        r = client.get(f"/api/models/{ref}/saturation")
    assert r.status_code == 200, r.text
    return r.json()


def test_models_list_includes_own_and_info(client):
    names = {m["name"]: m["kind"] for m in client.get("/api/models").json()}
    assert names["own"] == "own" and names["wlm"] == "lm"
    info = client.get("/api/models/own/info").json()
    assert info["own"] and info["recording"]["status"] in ("missing", "running", "ready")
    assert client.get("/api/models/own").json()["kind"] == "own"


def test_record_409_then_ready(client):
    r = client.get("/api/models/wlm/cocluster")
    assert r.status_code in (200, 409)
    wait_ready(client, "wlm")
    assert client.post("/api/models/wlm/record").json()["status"] == "done"
    assert client.get("/api/models/wlm/info").json()["recording"]["status"] == "ready"
    jobs = client.get("/api/jobs").json()
    assert any(j["kind"] == "record" for j in jobs)


def test_every_view_answers_json(client):
    wait_ready(client, "wlm")
    cc = client.get("/api/models/wlm/cocluster", params={"min_count": 1}).json()
    word = cc["word_clusters"][0]["words"][0]["word"]
    doc = client.get("/api/models/wlm/documents").json()["documents"][0]["doc"]
    calls = [
        ("get", "/api/models/wlm/word", {"params": {"word": word}}),
        ("get", "/api/models/wlm/unit", {"params": {"unit": 2}}),
        ("post", "/api/models/wlm/sentence", {"json": {"text": "the cat sat"}}),
        ("post", "/api/models/wlm/sentence", {"json": {"doc": doc, "start": 0, "stop": 3}}),
        ("get", "/api/models/wlm/radar", {"params": {"words": word}}),
        ("post", "/api/models/wlm/saliency", {"json": {"text": "the cat sat", "steps": 2}}),
        ("get", "/api/models/wlm/projection", {"params": {"what": "units"}}),
        ("get", "/api/models/wlm/projection", {"params": {"what": "trajectory", "text": "the cat sat on"}}),
        ("post", "/api/models/wlm/pattern/select",
         {"json": {"doc": doc, "start": 0, "stop": 1, "threshold": {"kind": "abs", "value": 0.0}}}),
        ("post", "/api/models/wlm/pattern/match", {"json": {"units": [0], "threshold": {"kind": "pct", "value": 80}}}),
    ]
    for method, url, kw in calls:
        r = getattr(client, method)(url, **kw)
        assert r.status_code == 200, (url, r.text)
        json.loads(r.text)  # strict JSON: no NaN
    r = client.get("/api/models/wlm/discovery", params={"annotations": "position_in_sentence", "top": 2})
    assert r.status_code == 200 and r.json()["annotations"][0]["name"] == "position_in_sentence"


def test_slow_analysis_answers_409_with_its_job(client, monkeypatch):
    from rnnvis.explore import discovery

    wait_ready(client, "wlm")
    monkeypatch.setattr(discovery, "INLINE_CELLS", 0)
    r = client.get("/api/models/wlm/discovery", params={"annotations": "inside_quotes", "top": 1})
    assert r.status_code == 409 and r.json()["job"]["kind"] == "analysis"
    client.ex.jobs.wait(r.json()["job"]["id"], 60)
    assert client.get("/api/models/wlm/discovery", params={"annotations": "inside_quotes", "top": 1}).status_code == 200


def test_errors(client):
    wait_ready(client, "wlm")
    for url, params, code in [
        ("/api/models/nobody/info", {}, 404),
        ("/api/models/nobody/cocluster", {}, 404),
        ("/api/models/wlm/cocluster", {"stream": "layer7.fwd.h"}, 404),
        ("/api/models/wlm/word", {"word": "xylophone"}, 404),
        ("/api/models/wlm/cocluster", {"k": 0}, 400),
        ("/api/models/wlm/cocluster", {"k": 1000}, 400),
        ("/api/models/wlm/unit", {"unit": 500}, 404),
        ("/api/models/wlm/discovery", {"annotations": "c_string"}, 400),
        ("/api/jobs/nope", {}, 404),
    ]:
        r = client.get(url, params=params)
        assert r.status_code == code, (url, r.text)
        assert set(r.json()) == {"error", "fix"}
    r = client.post("/api/models/wlm/sentence", json={"doc": 99999})
    assert r.status_code == 404
    r = client.post("/api/models/wlm/sentence", json={})
    assert r.status_code == 400
    r = client.get("/api/models/wlm/unit", params={"unit": "abc"})
    assert r.status_code == 422 and "unit" in r.json()["error"] and r.json()["fix"]


def test_size_limits(client):
    huge = json.dumps({"text": "a " * (5 << 20)})  # 10 MB
    r = client.post("/api/models/wlm/sentence", content=huge, headers={"content-type": "application/json"})
    assert r.status_code == 413 and set(r.json()) == {"error", "fix"}
    r = client.post("/api/models/wlm/sentence", json={"text": "a" * 10_001})
    assert r.status_code == 413 and "10,000" in r.json()["fix"]
    r = client.post("/api/models/wlm/saliency", json={"text": "a" * 10_001})
    assert r.status_code == 413


def test_cancel_over_http(client):
    import threading

    release = threading.Event()

    def waits(ctx):
        while not release.wait(0.01):
            ctx.check()

    job = client.ex.jobs.submit("analysis", "waits", waits)
    r = client.post(f"/api/jobs/{job.id}/cancel")
    assert r.status_code == 200
    assert client.ex.jobs.wait(job.id, 5).status == "cancelled"
    release.set()


def test_an_unexpected_failure_is_a_json_500(client, monkeypatch):
    from rnnvis.explore import memory

    def broken(*args, **kwargs):
        raise ValueError("boom")

    monkeypatch.setattr(memory, "saturation", broken)
    with TestClient(client.app, base_url="http://127.0.0.1:8000", raise_server_exceptions=False) as c:
        r = c.get("/api/models/wlm/saturation")
    assert r.status_code == 500 and r.json()["error"] == "ValueError: boom" and "bug" in r.json()["fix"]
