"""Bad input over real HTTP: JSON errors with the right status, no file read from a request, the
server keeps answering."""
import http.client
import json
import sys
import threading

import pytest
import torch
from torch import nn

import rnnvis

TEXTS = ["the cat sat on the mat", "a dog ran in the park", "the bird sang a song"] * 4
_opened: list[str] = []
_watch: list[str] = []
_lock = threading.Lock()


def _audit(event, args):
    if event == "open" and _watch and args and isinstance(args[0], (str, bytes)):
        path = args[0].decode(errors="replace") if isinstance(args[0], bytes) else args[0]
        if any(w in path for w in _watch):
            with _lock:
                _opened.append(path)


sys.addaudithook(_audit)  # cannot be removed; it only records while _watch is non-empty


class LM(nn.Module):
    def __init__(self, vocab):
        super().__init__()
        self.embedding = nn.Embedding(vocab, 4)
        self.rnn = nn.LSTM(4, 6, batch_first=True)
        self.out = nn.Linear(6, vocab)

    def forward(self, ids):
        return self.out(self.rnn(self.embedding(ids))[0])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    torch.manual_seed(0)
    itos = ["<unk>"] + sorted({w for t in TEXTS for w in t.split()})
    stoi = {w: i for i, w in enumerate(itos)}
    models = {"mine": {"module": LM(len(itos)), "encode": lambda t: [stoi.get(w, 0) for w in t.split()],
                       "itos": itos}}
    home = tmp_path_factory.mktemp("badinput") / "home"
    canary = home.parent / "canary-secret.txt"
    canary.write_text("CANARY")
    srv = rnnvis.serve(models=models, data={"texts": TEXTS}, home=home, port=0, block=False, quiet=True)
    srv.canary = canary
    _watch[:] = ["canary-secret", "passwd", "shadow"]
    yield srv
    _watch.clear()
    srv.stop()


def request(srv, method, path, body=None, headers=None, raw=False):
    """(status, parsed JSON or text) of a raw request: the path is sent as given, not normalised."""
    host, port = srv.url.split("//")[1].split("/")[0].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    h = {"Host": f"127.0.0.1:{port}", **(headers or {})}
    if body is not None and not raw:
        body = json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    conn.request(method, path, body=body, headers=h)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    try:
        return r.status, json.loads(data)
    except ValueError:
        return r.status, data.decode(errors="replace")


def is_error(body):
    return isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"]


def test_unknown_model_is_a_json_404(server):
    for path in ("/api/models/nope/info", "/api/models/nope/metrics", "/api/models/nope/errors",
                 "/api/models/nope/training", "/api/models/nope/cocluster", "/api/compare?a=nope&b=mine",
                 "/api/models/nope/info?split=valid", "/api/models/mine/info?split=dev",
                 "/api/models/mine/documents?split=..%2F..%2Fetc"):
        status, body = request(server, "GET", path)
        assert status == 404 and is_error(body) and body["fix"], (path, body)


@pytest.mark.parametrize("method, path, body", [
    ("GET", "/api/compare?a=mine", None),
    ("GET", "/api/compare/tokens?a=mine&b=mine&doc=abc", None),
    ("GET", "/api/models/mine/unit?unit=abc", None),
    ("GET", "/api/models/mine/cocluster?split=" + "x" * 50, None),
    ("POST", "/api/train", {"dataset": "texts", "hidden": "big"}),
    ("POST", "/api/train", {"dataset": "texts", "epochs": -1}),
    ("POST", "/api/train", {"dataset": "texts", "nonsense": True}),
    ("POST", "/api/train", ["a", "list"]),
    ("POST", "/api/models/mine/saliency", {"text": "the cat", "steps": "many"}),
])
def test_bad_parameters_are_json_400_or_422(server, method, path, body):
    status, out = request(server, method, path, body)
    assert status in (400, 422) and is_error(out), (path, status, out)


def test_malformed_json_body(server):
    status, out = request(server, "POST", "/api/train", b"{not json", headers={"Content-Type": "application/json"},
                          raw=True)
    assert status in (400, 422) and is_error(out), out


def test_too_large_requests_are_413(server):
    big = "word " * (2 * 1024 * 1024)  # 10 MB
    status, out = request(server, "POST", "/api/models/mine/sentence", {"text": big})
    assert status == 413 and is_error(out)
    status, out = request(server, "POST", "/api/models/mine/sentence", {"text": "a " * 10_001})  # 20 kB text
    assert status == 413 and is_error(out)
    status, out = request(server, "POST", "/api/train", {"dataset": "texts", "name": "x" * 2_000_000})
    assert status == 413


def test_chunked_body_over_limit_is_413_json(server):
    host, port = server.url.split("//")[1].split("/")[0].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    parts = [b'{"text": "'] + [b"a " * 32768] * 40 + [b'"}']  # 2.5 MiB, Transfer-Encoding: chunked
    conn.request("POST", "/api/models/mine/sentence", body=iter(parts), encode_chunked=True,
                 headers={"Host": f"127.0.0.1:{port}", "Content-Type": "application/json"})
    r = conn.getresponse()
    out = json.loads(r.read())
    conn.close()
    assert r.status == 413 and set(out) == {"error", "fix"}, out
    assert request(server, "GET", "/api/health")[0] == 200


PATHS = [
    "/api/models/..%2F..%2F..%2Fetc%2Fpasswd/info",
    "/api/models/%2e%2e%2f%2e%2e%2fetc%2fpasswd/info",
    "/api/models/../../etc/passwd",
    "/api/models/%2Fetc%2Fpasswd/metrics",
    "/api/models//etc/passwd/errors",
    "/api/models/mine%00.txt/info",
    "/api/models/..%00/training",
    "/api/compare?a=..%2F..%2Fetc%2Fpasswd&b=mine",
    "/api/compare?a=%2Fetc%2Fpasswd&b=%2Fetc%2Fshadow",
    "/api/compare/tokens?a=mine&b=..%2fcanary-secret.txt&doc=0",
    "/api/models/mine/cocluster?stream=..%2F..%2Fetc%2Fpasswd",
    "/api/models/mine/word?word=..%2F..%2Fetc%2Fpasswd",
    "/api/baselines?dataset=..%2F..%2Fetc%2Fpasswd",
    "/api/runs/..%2F1/metrics",
    "/../../../etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/static/..%2f..%2f..%2fetc%2fpasswd",
]


@pytest.mark.parametrize("path", PATHS)
def test_path_tricks_read_no_file(server, path):
    _opened.clear()
    status, out = request(server, "GET", path)
    assert 400 <= status < 500 or (status == 200 and "root:" not in json.dumps(out)), (path, status, out)
    if status >= 400:
        assert status != 500
    assert not _opened, _opened
    assert "root:x" not in json.dumps(out) and "CANARY" not in json.dumps(out)


@pytest.mark.parametrize("dataset", ["/etc/passwd", "../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "/etc\x00/passwd",
                                     "CANARY-PATH", "~/.ssh/id_rsa"])
def test_train_never_opens_a_named_path(server, dataset):
    _opened.clear()
    if dataset == "CANARY-PATH":
        dataset = str(server.canary)
    status, out = request(server, "POST", "/api/train", {"dataset": dataset})
    assert status == 404 and is_error(out)
    assert not _opened, _opened


def test_foreign_host_header_is_refused(server):
    status, out = request(server, "GET", "/api/health", headers={"Host": "evil.example:80"})
    assert status in (400, 403) and is_error(out)
    status, out = request(server, "GET", "/api/models", headers={"Host": "attacker.test"})
    assert status in (400, 403)


def test_health_answers_after_all_of_it(server):
    status, out = request(server, "GET", "/api/health")
    assert status == 200 and out["status"] == "ok"
    status, out = request(server, "GET", "/api/models/mine/info")
    assert status == 200 and out["name"] == "mine"
