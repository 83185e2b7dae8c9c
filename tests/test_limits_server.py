"""Server guards: other sites cannot drive the API, odd tokens are a 401, a chunked body over the
limit is a 413 JSON error, and startup imports what the first views need."""
import subprocess
import sys

from fastapi.testclient import TestClient

from rnnvis.server import create_app
from rnnvis.server.security import origin_host


def test_origin_host_parsing():
    assert origin_host("http://127.0.0.1:8000") == "127.0.0.1"
    assert origin_host("http://[::1]:8000") == "[::1]"
    assert origin_host("https://evil.example") == "evil.example"
    assert origin_host("null") == "null"


def test_cross_site_api_requests_are_refused(ws):
    client = TestClient(create_app(ws), base_url="http://127.0.0.1:8000")
    for headers in ({"origin": "http://evil.example"}, {"origin": "null"},
                    {"origin": "http://127.0.0.1.evil.example:8000"}, {"sec-fetch-site": "cross-site"},
                    {"origin": "http://127.0.0.1:8000", "sec-fetch-site": "cross-site"}):
        for method, path in (("post", "/api/models/x/record"), ("get", "/api/models"), ("get", "/api/jobs")):
            r = client.request(method, path, headers=headers)
            assert r.status_code == 403, (headers, path, r.text)
            assert set(r.json()) == {"error", "fix"} and "access-control-allow-origin" not in r.headers
    # the app itself (same origin), and clients that send neither header (curl, Python), still work
    for headers in ({}, {"origin": "http://127.0.0.1:8000", "sec-fetch-site": "same-origin"},
                    {"origin": "http://localhost:8000"}, {"sec-fetch-site": "none"}):
        assert client.get("/api/models", headers=headers).status_code == 200, headers
    assert client.get("/", headers={"sec-fetch-site": "cross-site"}).status_code == 200  # a link to the app


def test_cross_site_refused_when_bound_to_all_interfaces(ws):
    client = TestClient(create_app(ws, host="0.0.0.0", token="sekrit"), base_url="http://10.1.2.3:8000")
    auth = {"authorization": "token sekrit"}
    assert client.get("/api/models", headers={**auth, "origin": "http://10.1.2.3:8000"}).status_code == 200
    assert client.get("/api/models", headers={**auth, "origin": "http://evil.example"}).status_code == 403


def test_non_ascii_token_is_401_not_500(ws):
    client = TestClient(create_app(ws, host="0.0.0.0", token="sekrit"), base_url="http://10.1.2.3:8000",
                        raise_server_exceptions=False)
    r = client.get("/api/health?token=%C3%A9")
    assert r.status_code == 401 and set(r.json()) == {"error", "fix"}
    assert client.get("/api/health", headers={"authorization": "token ünïcode".encode()}).status_code == 401


def test_chunked_body_over_limit_is_413_json(ws):
    client = TestClient(create_app(ws), base_url="http://127.0.0.1:8000")

    def chunks():
        yield b'{"text": "'
        for _ in range(40):
            yield b"a" * 65536  # 2.5 MiB in all, no Content-Length
        yield b'"}'

    r = client.post("/api/models/x/sentence", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in r.request.headers
    assert r.status_code == 413 and set(r.json()) == {"error", "fix"}

    def small():
        yield b'{"text": "the cat"}'
    r = client.post("/api/models/x/sentence", content=small(), headers={"content-type": "application/json"})
    assert r.status_code == 404 and "x" in r.json()["error"]  # a small chunked body reaches the route


def test_warm_imports_load_scikit_learn_clustering():
    code = ("import sys; from rnnvis.server.app import _warm_imports; assert 'sklearn.cluster' not in sys.modules;"
            " _warm_imports(); assert 'sklearn.cluster' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
