"""The server is safe to leave running: Host check, token off loopback, no CORS, JSON errors."""
from fastapi.testclient import TestClient

from rnnvis.server import create_app
from rnnvis.server.security import host_name


def test_host_header_parsing():
    assert host_name("localhost:8000") == "localhost"
    assert host_name("[::1]:8000") == "[::1]"
    assert host_name("127.0.0.1") == "127.0.0.1"


def test_rejects_foreign_host_header(ws):
    client = TestClient(create_app(ws), base_url="http://127.0.0.1:8000")
    assert client.get("/api/health").status_code == 200
    r = client.get("/api/health", headers={"host": "evil.example:8000"})
    assert r.status_code == 403 and "not allowed" in r.json()["error"]


def test_no_permissive_cors(ws):
    client = TestClient(create_app(ws), base_url="http://127.0.0.1:8000")
    r = client.get("/api/models", headers={"origin": "http://evil.example"})
    assert "access-control-allow-origin" not in r.headers


def test_token_required_when_not_loopback(ws):
    app = create_app(ws, host="0.0.0.0", token="sekrit")
    client = TestClient(app, base_url="http://10.1.2.3:8000")
    assert client.get("/api/health").status_code == 401
    assert client.get("/api/health?token=wrong").status_code == 401
    assert client.get("/api/health", headers={"authorization": "token sekrit"}).status_code == 200
    r = client.get("/api/health?token=sekrit")
    assert r.status_code == 200 and "rnnvis_token" in r.cookies
    assert client.get("/api/health").status_code == 200  # the cookie carries on


def test_unknown_things_are_json_404(ws):
    client = TestClient(create_app(ws), base_url="http://127.0.0.1:8000")
    r = client.get("/api/models/nope")
    assert r.status_code == 404 and "unknown model" in r.json()["error"]
    assert client.get("/api/runs/99/metrics").status_code == 404
    assert client.get("/openapi.json").json()["info"]["title"] == "rnnvis"
