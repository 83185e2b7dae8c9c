"""Bad input at the edges (issue 17): every case answers one clear error — `RnnvisError` from Python,
one `rnnvis: error:` line from the CLI, `{error, fix}` JSON over HTTP — and nothing is half-done."""
import json
import math

import pytest
from fastapi.testclient import TestClient

from cli_support import cli_error
from rnnvis.errors import RnnvisError

TEXTS = ["the cat sat on the mat", "a dog ran in the park", "the bird sang a song"] * 4


def is_error(body) -> bool:
    return isinstance(body, dict) and set(body) >= {"error", "fix"} and bool(body["error"]) and bool(body["fix"])


# -- 1. training parameters: declared once, checked by rnnvis.train, the CLI and POST /api/train ------------
BAD_TRAIN = [
    ("clip", -1.0, "clip=-1.0"), ("lr", math.inf, "lr=inf"), ("lr", 1e308, "lr=1e+308"), ("lr", 0.0, "lr=0.0"),
    ("lr", math.nan, "lr=nan"), ("dropout", 5.0, "dropout=5.0"), ("dropout", 1.0, "dropout=1.0"),
    ("layers", 4, "layers=4"), ("split_fractions", (math.nan, 0.5, 0.5), "split_fractions"),
    ("split_fractions", (0.8, 0.8, 0.1), "split_fractions"), ("name", "", "model name ''"),
    ("time_budget_s", math.nan, "time_budget_s=nan"),
]


@pytest.mark.parametrize("key, value, shown", BAD_TRAIN)
def test_train_refuses_out_of_range_options_before_anything_runs(ws, catalog, key, value, shown):
    from rnnvis.data import Corpus, Document
    from rnnvis.models import TrainConfig, train

    corpus = Corpus("t", [Document(str(i), t) for i, t in enumerate(TEXTS)])
    cfg = TrainConfig(**{"name": "m", "emb": 4, "hidden": 4, "epochs": 1, "device": "cpu", key: value})
    with pytest.raises(RnnvisError) as exc:
        train(corpus, cfg, ws, catalog, progress=False)
    assert shown in exc.value.what and exc.value.fix
    if key not in ("name", "split_fractions"):
        assert "must be" in exc.value.what  # names the range
    assert catalog.runs() == []


@pytest.mark.parametrize("args, shown", [
    (["--clip", "-1"], "clip=-1.0"), (["--lr", "inf"], "lr=inf"), (["--lr", "1e308"], "lr=1e+308"),
    (["--dropout", "5"], "dropout=5.0"), (["--layers", "4"], "layers=4"), (["--name", ""], "model name ''"),
])
def test_cli_train_refuses_bad_options(tmp_path, capsys, args, shown):
    data = tmp_path / "t.txt"
    data.write_text("\n".join(TEXTS))
    line = cli_error(capsys, "train", "--data", str(data), "--per-line", "--epochs", "1", "--emb", "4",
                     "--hidden", "4", "--home", str(tmp_path / "home"), *args)
    assert shown in line
    assert not any((tmp_path / "home" / "checkpoints").glob("*"))


@pytest.fixture
def train_client(ws, catalog):
    from rnnvis.explore.session import Explorer
    from rnnvis.server import create_app

    ex = Explorer(ws, catalog, warm=False)
    ex.add_data("texts", TEXTS)
    with TestClient(create_app(ws, explorer=ex), base_url="http://127.0.0.1:8000",
                    raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize("extra, shown", [
    ({"dropout": 5}, "dropout=5"), ({"layers": 4}, "layers=4"), ({"lr": 1e308}, "lr=1e+308"),
    ({"clip": -1}, "clip=-1"), ({"split_fractions": "NaN"}, "split_fractions"),
])
def test_http_train_refuses_bad_options(train_client, extra, shown):
    body = {"dataset": "texts", "emb": 4, "hidden": 4, "epochs": 1, **extra}
    raw = json.dumps(body).replace('"NaN"', "[NaN, 0.5, 0.5]")  # JSON with NaN, as a client may send it
    r = train_client.post("/api/train", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 400 and is_error(r.json()), r.text
    assert shown in r.json()["error"]
    assert train_client.get("/api/jobs").json() == []


# -- 2. user data: NaN labels, CSV fields over the csv module's limit, huge integer labels -----------------
def test_jsonl_nan_label_is_refused(tmp_path):
    from rnnvis.data import load_user_data

    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a good film", "label": 1}\n{"text": "a bad film", "label": NaN}\n')
    with pytest.raises(RnnvisError, match=r"line2: the label is nan") as exc:
        load_user_data(path, label_column="label")
    assert "NaN" in exc.value.fix


def test_cli_train_on_jsonl_with_nan_labels_fails_clearly(tmp_path, capsys):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(f'{{"text": "{t}", "label": {"NaN" if i % 2 else 1}}}\n' for i, t in enumerate(TEXTS)))
    line = cli_error(capsys, "train", "--data", str(path), "--label-column", "label", "--epochs", "1",
                     "--home", str(tmp_path / "home"))
    assert "nan" in line


@pytest.mark.parametrize("header", [True, False])
def test_csv_field_over_the_field_limit_is_a_clear_error(tmp_path, header):
    import csv

    from rnnvis.data import load_user_data

    big = "x" * (csv.field_size_limit() + 10)
    path = tmp_path / "d.csv"
    path.write_text(f"text,{big}\na b,1\n" if header else f"text,label\n\"{big}\",1\n")
    with pytest.raises(RnnvisError, match="longer than") as exc:
        load_user_data(path)
    assert "line" in exc.value.what and "jsonl" in exc.value.fix


@pytest.mark.parametrize("big", [20_000, 10 ** 12])
def test_csv_large_integer_labels_map_to_their_distinct_values(tmp_path, big):
    from rnnvis.data import load_user_data

    path = tmp_path / "d.csv"
    path.write_text(f"text,label\na good film,{big}\na bad film,7\nan ok film,{big}\n")
    corpus = load_user_data(path, label_column="label")
    assert corpus.task == "classify" and corpus.label_names == ["7", str(big)]
    assert [d.label for d in corpus.documents] == [1, 0, 1]


def test_small_integer_labels_stay_class_indices(tmp_path):
    from rnnvis.data import load_user_data

    path = tmp_path / "d.csv"
    path.write_text("text,label\na good film,2\na bad film,0\n")
    corpus = load_user_data(path, label_column="label")
    assert corpus.label_names == ["0", "1", "2"] and [d.label for d in corpus.documents] == [2, 0]


# -- 4. FIFOs and devices are refused, never read -------------------------------------------------------
def _unblock_after(path, seconds):
    """Open `path` (a FIFO) for writing after `seconds`, so that a reader stuck on it comes back."""
    import os
    import threading

    def go():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)
        except OSError:  # nobody is reading: the FIFO was refused, as it should be
            pass

    t = threading.Timer(seconds, go)
    t.daemon = True
    t.start()
    return t


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_data_show_refuses_fifos_and_devices(tmp_path, capsys, kind):
    import os
    import time

    if kind == "fifo":
        path = tmp_path / "pipe.txt"
        os.mkfifo(path)
        timer = _unblock_after(path, 15)
    else:
        path, timer = "/dev/null", None
    t0 = time.monotonic()
    line = cli_error(capsys, "data", "show", str(path), "--home", str(tmp_path / "home"))
    assert time.monotonic() - t0 < 10
    assert "not a regular file" in line and ("FIFO" in line if kind == "fifo" else "device" in line)
    if timer:
        timer.cancel()


def test_import_run_refuses_a_fifo(tmp_path, capsys):
    import os

    path = tmp_path / "m.csv"
    os.mkfifo(path)
    timer = _unblock_after(path, 15)
    line = cli_error(capsys, "import-run", str(path), "--home", str(tmp_path / "home"))
    assert "m.csv" in line
    timer.cancel()


# -- 3. import-run: Latin-1, binary and out-of-range CSVs -------------------------------------------------
@pytest.mark.parametrize("content, needle", [
    ("step,loss,note\n1,2.5,caf\xe9\n".encode("latin-1"), "not UTF-8"),
    (b"\x00\x01\x02\xffPK\x03\x04" * 50, "binary"),
    (b"step,loss\n1e300,2.5\n", "out of range"),
    (b"step,loss\n99999999999999999999,2.5\n", "out of range"),
    (b"step,epoch,loss\n1,inf,2.5\n", "epoch"),
])
def test_import_run_bad_csv_is_one_line(tmp_path, capsys, content, needle):
    from rnnvis.catalog import Catalog

    path = tmp_path / "m.csv"
    path.write_bytes(content)
    line = cli_error(capsys, "import-run", str(path), "--home", str(tmp_path / "home"))
    assert needle in line and "m.csv" in line
    assert Catalog(tmp_path / "home" / "catalog.sqlite").runs() == []


# -- 5, 6, 8. HTTP: no 500s on odd input, framework errors as {error, fix}, exact model references ---------
@pytest.fixture(scope="module")
def lm_app(tmp_path_factory):
    """An app over a workspace with one tiny trained word LM ("wlm"), and its catalog."""
    import torch

    from rnnvis.catalog import Catalog
    from rnnvis.data import Corpus, Document
    from rnnvis.models import TrainConfig, train
    from rnnvis.server import create_app
    from rnnvis.workspace import Workspace

    ws = Workspace.open(tmp_path_factory.mktemp("edges") / "home")
    catalog = Catalog(ws.catalog_path)
    torch.manual_seed(0)
    corpus = Corpus("lines", [Document(str(i), t) for i, t in enumerate(TEXTS)])
    train(corpus, TrainConfig(name="wlm", emb=4, hidden=6, epochs=1, batch_size=4, bptt=8, device="cpu"),
          ws, catalog, progress=False)
    with TestClient(create_app(ws), base_url="http://127.0.0.1:8000", raise_server_exceptions=False) as client:
        yield client, catalog


def post_json(client, path, raw: bytes, tries=60):
    """POST a raw JSON body; a 409 (the view recording is being made) is retried."""
    import time

    for _ in range(tries):
        r = client.post(path, content=raw, headers={"content-type": "application/json"})
        if r.status_code != 409:
            return r
        time.sleep(0.5)
    return r


def test_saliency_steps_nan_is_a_422_not_a_500(lm_app):
    client, _ = lm_app
    r = post_json(client, "/api/models/wlm/saliency", b'{"text": "the cat", "steps": NaN}')
    assert r.status_code == 422 and is_error(r.json()) and "steps" in r.json()["error"], r.text


def test_huge_run_id_is_a_404_not_a_500(lm_app):
    client, _ = lm_app
    r = client.get("/api/runs/99999999999999999999/metrics")
    assert r.status_code == 404 and is_error(r.json()), r.text
    assert client.get("/api/runs/-1/metrics").status_code == 404


@pytest.mark.parametrize("endpoint", ["sentence", "saliency"])
def test_lone_surrogate_in_typed_text_is_refused(lm_app, endpoint):
    client, _ = lm_app
    r = post_json(client, f"/api/models/wlm/{endpoint}", b'{"text": "\\ud800 the cat"}')
    assert r.status_code == 422 and is_error(r.json()), r.text
    assert "surrogate" in r.json()["error"]


@pytest.mark.parametrize("method, path, body", [
    ("GET", "/api/models/wlm%2F..%2Fx/info", None),
    ("GET", "/api/models/..%2F..%2Fetc/metrics", None),
    ("GET", "/api/jobs/a%2Fb", None),
    ("POST", "/api/jobs/a%2F..%2Fb/cancel", None),
    ("GET", "/api/no-such-endpoint", None),
    ("POST", "/api/models/wlm/sentence", b'{"text": "\xff\xfe the cat"}'),
    ("POST", "/api/models/wlm/sentence", b"[" * 100_000 + b"]" * 100_000),
])
def test_framework_errors_answer_error_and_fix(lm_app, method, path, body):
    client, _ = lm_app
    r = client.request(method, path, content=body, headers={"content-type": "application/json"})
    assert r.status_code in (400, 404) and is_error(r.json()) and "detail" not in r.json(), r.text


def test_405_lists_the_methods_the_path_allows(ws, monkeypatch, tmp_path):
    import rnnvis.server.app as app_module
    from rnnvis.server import create_app

    web = tmp_path / "web"
    web.mkdir()
    (web / "index.html").write_text("<!doctype html><title>app</title>")
    for web_dir in (tmp_path / "no-web", web):  # without and with the built web app mounted at /
        monkeypatch.setattr(app_module, "WEB_DIR", web_dir)
        client = TestClient(create_app(ws), base_url="http://127.0.0.1:8000")
        for method, path, allow in (("POST", "/api/models", "GET"), ("GET", "/api/models/x/record", "POST"),
                                    ("DELETE", "/api/jobs", "GET"), ("PUT", "/api/train", "POST")):
            r = client.request(method, path)
            assert r.status_code == 405 and r.headers.get("allow") == allow, (web_dir, path, r.headers, r.text)
            assert is_error(r.json()) and allow in r.json()["fix"]
        r = client.post("/api/nothing-here")
        assert r.status_code == 404 and is_error(r.json())
        if web_dir == web:
            assert client.get("/").status_code == 200


def test_model_reference_is_never_a_like_pattern(lm_app):
    client, catalog = lm_app
    model_id = catalog.find_model("wlm")["id"]
    assert catalog.find_model(model_id[:8])["id"] == model_id  # an id prefix of letters and digits
    for ref in ("%" + model_id[20:28], "_" * 8 + model_id[8:16], model_id[:6] + "%", "%%%%%%"):
        with pytest.raises(RnnvisError, match="unknown model"):
            catalog.find_model(ref)
    assert client.get("/api/models/%25" + model_id[20:28]).status_code == 404


# -- 9. only the server's own origin is same-site; host names are case-insensitive; 401 before 413 ----------
def test_other_origins_on_this_machine_cannot_post(ws):
    from rnnvis.server import create_app

    client = TestClient(create_app(ws), base_url="http://127.0.0.1:8000")
    for origin in ("http://localhost:3000", "http://127.0.0.1:9999", "https://localhost", "https://127.0.0.1:8000",
                   "http://localhost", "http://127.0.0.1:80"):
        r = client.post("/api/models/x/record", headers={"origin": origin})
        assert r.status_code == 403 and is_error(r.json()), (origin, r.text)
    for origin in ("http://127.0.0.1:8000", "http://localhost:8000", "http://LOCALHOST:8000"):
        r = client.post("/api/models/x/record", headers={"origin": origin})
        assert r.status_code == 404 and "unknown model" in r.json()["error"], (origin, r.text)  # past the guard


def test_origin_parts():
    from rnnvis.server.security import origin_parts

    assert origin_parts("http://[::1]:8000") == ("http", "[::1]", 8000)
    assert origin_parts("https://LOCALHOST") == ("https", "localhost", 443)
    assert origin_parts("http://127.0.0.1:99999999") == ("http", "127.0.0.1", None)
    assert origin_parts("null") == ("", "null", None)


def test_host_names_are_case_insensitive(ws):
    from rnnvis.server import create_app

    client = TestClient(create_app(ws), base_url="http://127.0.0.1:8000")
    for host in ("LOCALHOST:8000", "LocalHost", "127.0.0.1:8000"):
        assert client.get("/api/health", headers={"host": host}).status_code == 200, host
    assert client.get("/api/health", headers={"host": "EVIL.example"}).status_code == 403


def test_token_is_checked_before_the_body_size(ws):
    from rnnvis.server import create_app

    client = TestClient(create_app(ws, host="0.0.0.0", token="sekrit"), base_url="http://10.1.2.3:8000")
    body = b'{"text": "' + b"a " * 600_000 + b'"}'  # 1.2 MB
    r = client.post("/api/models/x/sentence", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 401 and is_error(r.json())
    r = client.post("/api/models/x/sentence", content=body,
                    headers={"content-type": "application/json", "authorization": "token sekrit"})
    assert r.status_code == 413 and is_error(r.json())


# -- 10. serve: a bad host or a port in use is one error line, before "serving ... at ..." --------------------
def test_serve_on_an_impossible_host_is_one_error_line(tmp_path, capsys):
    line = cli_error(capsys, "serve", "--host", "999.1.1.1", "--port", "8765", "--home", str(tmp_path / "home"))
    assert "999.1.1.1" in line and "--host" in line


def test_serve_on_a_port_in_use_is_one_error_line(tmp_path, capsys):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        line = cli_error(capsys, "serve", "--port", str(port), "--home", str(tmp_path / "home"))
    assert f"port {port}" in line and "in use" in line and "--port" in line


def test_python_serve_on_a_port_in_use_is_a_clear_error(tmp_path):
    import socket

    import rnnvis

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        with pytest.raises(RnnvisError, match="already in use"):
            rnnvis.serve(home=tmp_path / "home", port=port, block=True, quiet=True)


# -- 7. the "not fetched" fix names a real command ---------------------------------------------------------
def test_not_fetched_fix_names_rnnvis_data_get(train_client):
    r = train_client.post("/api/train", json={"dataset": "shakespeare"})
    assert r.status_code == 400 and is_error(r.json())
    assert "rnnvis data get shakespeare" in r.json()["fix"]
