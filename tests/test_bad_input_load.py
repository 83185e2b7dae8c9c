"""Bounded memory, work and requests under load (issue 17): the result cache is bounded in bytes and
holds compact results, analysis jobs are keyed by what they compute, the job queue is capped, and a
request must be sent within a read timeout and answered within a deadline."""
import gc
import json
import socket
import threading
import tracemalloc

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from torch import nn

import rnnvis
from explore_support import PlantedLSTM, planted_data
from perf_support import ready
from rnnvis.catalog import Catalog
from rnnvis.explore import discovery as disc
from rnnvis.explore import sentence as sent
from rnnvis.explore.jobs import MAX_QUEUED, JobManager, QueueFull
from rnnvis.explore.session import Explorer, NotReady
from rnnvis.workspace import Workspace


def _explorer(home, jobs: JobManager | None = None, **kwargs) -> Explorer:
    """An Explorer with the hand-built own LM ("own", 6 LSTM units) on planted texts; nothing warmed."""
    ws = Workspace.open(home)
    ex = Explorer(ws, Catalog(ws.catalog_path), jobs or JobManager(), max_tokens=5000, warm=False, **kwargs)
    texts, itos, _ = planted_data(30)
    stoi = {w: i for i, w in enumerate(itos)}
    ex.add_data("planted", texts)
    ex.add_model("own", PlantedLSTM(itos), encode=lambda t: [stoi.get(w, 0) for w in t.split()], itos=itos,
                 data="planted")
    return ex


# ---- 1. caches sized in bytes, holding compact results ------------------------------------------------
def test_the_cache_charges_an_array_its_bytes_and_keeps_no_value_over_its_budget(tmp_path, one_thread):
    from rnnvis.explore.cache import ENTRY_OVERHEAD

    ex = _explorer(tmp_path / "home", cache_bytes=100_000)
    try:
        assert ex.cache.budget == 100_000
        a = np.zeros((100, 50), np.float32)  # 20,000 bytes
        before = ex.cache.bytes
        assert ex.cached("known", "own", {}, lambda: a) is a
        assert ex.cache.bytes - before == a.nbytes + ENTRY_OVERHEAD
        calls = []

        def big():
            calls.append(1)
            return np.zeros(150_000, np.uint8)  # larger than the whole budget

        assert ex.cached("big", "own", {}, big).nbytes == 150_000  # returned...
        assert ex.cached("big", "own", {}, big).nbytes == 150_000
        assert len(calls) == 2  # ...but not kept
        assert ex.cache.bytes == before + a.nbytes + ENTRY_OVERHEAD  # nor did it evict the small one
        assert ex.cached("known", "own", {}, lambda: None) is a
    finally:
        ex.jobs.shutdown()


def test_many_distinct_typed_sentences_stay_within_the_cache_budget(tmp_path, one_thread):
    budget = 400_000
    ex = _explorer(tmp_path / "home", cache_bytes=budget)
    try:
        ready(ex, "own")  # glyphs need the view recording; typed sentences are kept once it exists
        streams = list(ex.model("own").streams())  # every stream: h, c and four gates, 6 units each
        sent.sentence(ex, "own", text="a zz b")  # the co-clustering behind the glyphs, computed once
        rng = np.random.default_rng(0)
        words = np.array(["a", "b", "c", "d", "e", "zz"])
        n_tok = 400
        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            charged = ex.cache.bytes
            out = sent.sentence(ex, "own", text=" ".join(rng.choice(words, n_tok)), streams=streams)
            assert len(out["tokens"]) == n_tok and set(out["streams"]) == set(streams)
            assert len(out["streams"][streams[0]]) == n_tok and isinstance(out["streams"][streams[0]][0], list)
            del out
            gc.collect()
            one = tracemalloc.get_traced_memory()[0] - base  # what the cache holds for one typed sentence
            entry = ex.cache.bytes - charged
            raw = n_tok * 6 * len(streams) * 4  # float32 states of the requested streams
            # states, tokens, top-5 outputs and glyphs as arrays (JSON-ready lists were ~20x the states)
            assert one <= 3 * raw, f"a typed sentence holds {one:,} bytes, its float32 states {raw:,}"
            assert 0.7 * one <= entry <= 1.5 * one  # the cache's accounting is close to what it holds
            for _ in range(40):
                text = " ".join(rng.choice(words, n_tok))
                assert len(sent.sentence(ex, "own", text=text, streams=streams)["tokens"]) == n_tok
            gc.collect()
            held = tracemalloc.get_traced_memory()[0] - base
        finally:
            tracemalloc.stop()
        assert ex.cache.bytes <= budget
        assert held <= budget + 100_000, f"the explorer holds {held:,} bytes over a {budget:,}-byte budget"
    finally:
        ex.jobs.shutdown()


# ---- 2. jobs keyed by what they compute ------------------------------------------------------------------
def test_discovery_with_any_top_runs_one_job(tmp_path, one_thread, monkeypatch):
    ex = _explorer(tmp_path / "home")
    try:
        ready(ex, "own")
        monkeypatch.setattr(disc, "INLINE_CELLS", 0)  # a job, as on a large recording
        before = {j.id for j in ex.jobs.list()}

        def ask(**kw):
            try:
                return disc.discovery(ex, "own", **kw)
            except NotReady as e:
                assert ex.jobs.wait(e.job.id, 60).status == "done"
                return disc.discovery(ex, "own", **kw)

        answers = {top: ask(top=top) for top in (5, 10, 1, 3, 100, 7)}
        names = [a["name"] for a in answers[100]["annotations"]]
        reordered = ask(annotations=",".join(reversed(names)).split(","), top=2)
        jobs = [j for j in ex.jobs.list() if j.id not in before]
        assert len(jobs) == 1, [j.title for j in jobs]
        full = {a["name"]: a["top"] for a in answers[100]["annotations"]}
        for top, ans in answers.items():
            for a in ans["annotations"]:
                assert a["top"] == full[a["name"]][:top]
        assert [a["name"] for a in reordered["annotations"]] == list(reversed(names))
        assert all(len(a["top"]) == min(2, len(full[a["name"]])) for a in reordered["annotations"])
    finally:
        ex.jobs.shutdown()


# ---- 3. the job queue is capped ----------------------------------------------------------------------------
def test_a_full_job_queue_refuses_more_but_shares_a_queued_key():
    m = JobManager(max_queued=3)
    started, release = threading.Event(), threading.Event()

    def block(ctx):
        started.set()
        assert release.wait(30)

    try:
        m.submit("analysis", "blocker", block)
        assert started.wait(10)
        queued = [m.submit("analysis", f"q{i}", lambda ctx, i=i: i, key=f"k{i}") for i in range(3)]
        assert all(j.status == "queued" for j in queued)
        with pytest.raises(QueueFull) as e:
            m.submit("record", "one more", lambda ctx: 0)
        assert "busy" in e.value.what and "retry" in e.value.fix
        assert m.submit("analysis", "the same again", lambda ctx: 0, key="k1") is queued[1]
        assert len(m.list()) == 4  # nothing more was queued
        release.set()
        assert [m.wait(j.id, 10).result for j in queued] == [0, 1, 2]
        assert m.wait(m.submit("analysis", "after", lambda ctx: "ok").id, 10).result == "ok"  # room again
    finally:
        release.set()
        m.shutdown()


def test_the_default_queue_holds_max_queued_jobs():
    m = JobManager()
    started, release = threading.Event(), threading.Event()
    try:
        m.submit("analysis", "blocker", lambda ctx: (started.set(), release.wait(30)))
        assert started.wait(10)
        for i in range(MAX_QUEUED):
            m.submit("analysis", f"q{i}", lambda ctx: None)
        with pytest.raises(QueueFull):
            m.submit("analysis", "one too many", lambda ctx: None)
    finally:
        release.set()
        m.shutdown()


def test_a_full_queue_answers_503_with_retry_after(tmp_path, one_thread):
    from rnnvis.server.app import create_app

    jobs = JobManager(max_queued=1)
    ex = _explorer(tmp_path / "home", jobs=jobs)
    started, release = threading.Event(), threading.Event()
    try:
        jobs.submit("analysis", "blocker", lambda ctx: (started.set(), release.wait(30)))
        assert started.wait(10)
        jobs.submit("analysis", "waiting", lambda ctx: None)
        with TestClient(create_app(ex.ws, explorer=ex), base_url="http://127.0.0.1:8000") as c:
            r = c.post("/api/models/own/record")  # would queue the view recording
            assert r.status_code == 503, r.text
            assert int(r.headers["retry-after"]) > 0
            body = r.json()
            assert "busy" in body["error"] and "retry" in body["fix"]
            release.set()
            assert jobs.wait(jobs.list()[0].id, 10).finished
            assert c.post("/api/models/own/record").status_code == 200  # room again
    finally:
        release.set()
        ex.jobs.shutdown()


# ---- 4. read timeouts and a deadline, over real sockets --------------------------------------------------
TEXTS = ["the cat sat on the mat", "a dog ran in the park", "the bird sang a song"] * 4
READ_TIMEOUT = 0.5
DEADLINE = 1.0


class GatedLM(nn.Module):
    """A tiny LM whose forward waits on `release` while `armed` is set (a slow view, without sleeping)."""

    def __init__(self, vocab):
        super().__init__()
        self.embedding = nn.Embedding(vocab, 4)
        self.rnn = nn.LSTM(4, 6, batch_first=True)
        self.out = nn.Linear(6, vocab)
        self.armed, self.entered, self.release = threading.Event(), threading.Event(), threading.Event()

    def forward(self, ids):
        if self.armed.is_set():
            self.entered.set()
            assert self.release.wait(30)
        return self.out(self.rnn(self.embedding(ids))[0])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    torch.manual_seed(0)
    itos = ["<unk>"] + sorted({w for t in TEXTS for w in t.split()})
    stoi = {w: i for i, w in enumerate(itos)}
    model = GatedLM(len(itos))
    srv = rnnvis.serve(models={"mine": {"module": model, "encode": lambda t: [stoi.get(w, 0) for w in t.split()],
                                        "itos": itos}},
                       data={"texts": TEXTS}, home=tmp_path_factory.mktemp("load") / "home", port=0, block=False,
                       quiet=True, read_timeout=READ_TIMEOUT, deadline=DEADLINE)
    srv.model = model
    yield srv
    model.release.set()
    srv.stop()


def _port(srv) -> int:
    return int(srv.url.rsplit(":", 1)[1].split("/")[0])


def _connect(srv) -> socket.socket:
    return socket.create_connection(("127.0.0.1", _port(srv)), timeout=10)


def _read_all(s: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (socket.timeout if it never does)."""
    chunks = []
    while True:
        data = s.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def _status_and_json(raw: bytes) -> tuple[int, dict, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    return int(lines[0].split()[1]), headers, json.loads(body)


def test_half_sent_headers_get_408_and_the_connection_closes(server):
    socks = [_connect(server) for _ in range(20)]
    try:
        for s in socks:
            s.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # never finished
        for s in socks:
            status, headers, body = _status_and_json(_read_all(s))  # closed by the server, not by the timeout
            assert status == 408 and body["error"] and body["fix"]
            assert headers.get("connection") == "close"
    finally:
        for s in socks:
            s.close()


def test_a_stalled_body_gets_408_and_the_connection_closes(server):
    s = _connect(server)
    try:
        s.sendall(b"POST /api/models/mine/sentence HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                  b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"text\": " % _port(server))
        status, headers, body = _status_and_json(_read_all(s))
        assert status == 408 and "not sent in full" in body["error"] and body["fix"]
    finally:
        s.close()
    s = _connect(server)  # the server goes on answering
    try:
        s.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n" % _port(server))
        assert _status_and_json(_read_all(s))[0] == 200
    finally:
        s.close()


def test_a_view_past_the_deadline_answers_503_and_the_retry_gets_the_answer(server):
    model = server.model
    body = json.dumps({"text": "the cat sat on the mat"}).encode()
    request = (b"POST /api/models/mine/sentence HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json"
               b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s")
    model.armed.set()
    try:
        s = _connect(server)
        try:
            s.sendall(request % (_port(server), len(body), body))
            status, headers, answer = _status_and_json(_read_all(s))
        finally:
            s.close()
        assert model.entered.is_set()  # the view was computing...
        assert status == 503, answer  # ...and the client was told to come back
        assert int(headers["retry-after"]) > 0 and "retry" in answer["fix"]
    finally:
        model.armed.clear()
        model.release.set()
    s = _connect(server)
    try:
        s.sendall(request % (_port(server), len(body), body))
        status, _, answer = _status_and_json(_read_all(s))
    finally:
        s.close()
    assert status == 200 and answer["tokens"] == ["the", "cat", "sat", "on", "the", "mat"]


# -- the limits are options of `rnnvis serve` too ------------------------------------------------------------
@pytest.mark.parametrize("args, shown", [(("--deadline", "-1"), "--deadline -1.0"), (("--read-timeout", "nan"), "--read-timeout nan"),
                                         (("--cache-mb", "-5"), "--cache-mb -5")])
def test_serve_refuses_impossible_limits_in_one_line(tmp_path, capsys, args, shown):
    from rnnvis.cli import main

    code = main(["serve", *args, "--port", "0", "--home", str(tmp_path / "home")])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert code == 2 and len(err) == 1 and err[0].startswith("rnnvis: error: ") and shown in err[0], err


def test_serve_passes_its_limits_to_the_server(tmp_path, monkeypatch):
    import rnnvis.server as server
    from rnnvis.cli import main

    got = {}
    monkeypatch.setattr(server, "serve", lambda ws, **kw: got.update(kw))
    assert main(["serve", "--read-timeout", "3", "--deadline", "20", "--cache-mb", "64", "--port", "0",
                 "--home", str(tmp_path / "home")]) == 0
    assert (got["read_timeout"], got["deadline"], got["cache_bytes"]) == (3.0, 20.0, 64 << 20)
