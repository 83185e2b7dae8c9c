"""rnnvis.serve / rnnvis.show with own models, and the serve_your_model example."""
import subprocess
import sys
import types
from pathlib import Path

import httpx
import pytest
import torch
from torch import nn

import rnnvis
from rnnvis.errors import RnnvisError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TEXTS = ["the cat sat on the mat", "a dog ran in the park", "the bird sang a song", "the dog sat on the cat"] * 3


class Tok:
    def __init__(self):
        self.itos = ["<unk>"] + sorted({w for t in TEXTS for w in t.split()})
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    def encode(self, text):
        return [self.stoi.get(w, 0) for w in text.split()]


class LM(nn.Module):
    def __init__(self, vocab):
        super().__init__()
        self.embedding = nn.Embedding(vocab, 6)
        self.rnn = nn.GRU(6, 10, batch_first=True)
        self.out = nn.Linear(10, vocab)

    def forward(self, ids):
        return self.out(self.rnn(self.embedding(ids))[0])


@pytest.fixture
def own():
    torch.manual_seed(0)
    tok = Tok()
    return LM(len(tok.itos)).eval(), tok


def test_serve_in_the_background_answers(tmp_path, own):
    server = rnnvis.serve(models={"mine": own}, data={"texts": TEXTS}, home=tmp_path / "home", port=0, block=False,
                          quiet=True)
    try:
        assert server.running and server.url.startswith("http://127.0.0.1:")
        base = server.url.rstrip("/")
        models = httpx.get(base + "/api/models", timeout=30).json()
        assert [m for m in models if m["name"] == "mine" and m["kind"] == "own"]
        info = httpx.get(base + "/api/models/mine/info", timeout=30).json()
        assert info["own"] and info["kind"] == "lm" and info["cell"] == "gru" and info["hidden"] == 10
        assert (info["split"], info["splits"]) == ("own", ["own"])  # own data: one split, all of it
        assert server.explorer.max_tokens is None
        assert httpx.get(base + "/api/health", timeout=30).json()["status"] == "ok"
    finally:
        server.stop()
    assert not server.running
    with pytest.raises(httpx.HTTPError):
        httpx.get(base + "/api/health", timeout=2)


def test_serve_checks_its_arguments(tmp_path, own):
    with pytest.raises(RnnvisError, match="port"):
        rnnvis.serve(home=tmp_path / "h", port=70000, block=False)
    with pytest.raises(RnnvisError, match="own model"):
        rnnvis.serve(models={"x": "not a model"}, home=tmp_path / "h", block=False)
    with pytest.raises(RnnvisError, match="tokenizer"):
        rnnvis.serve(models={"x": own[0]}, home=tmp_path / "h", block=False)
    with pytest.raises(RnnvisError, match="max_tokens"):
        rnnvis.serve(home=tmp_path / "h", max_tokens=0, block=False)


def test_serve_caps_the_view_recordings_when_asked(tmp_path, own):
    server = rnnvis.serve(models={"mine": own}, data={"texts": TEXTS}, home=tmp_path / "home", port=0, block=False,
                          quiet=True, max_tokens=5)
    try:
        job = httpx.post(server.url.rstrip("/") + "/api/models/mine/record", timeout=30).json()
        assert "up to 5 tokens" in job["title"]
        done = server.explorer.jobs.wait(job["id"], 60)
        assert done.status == "done" and done.result["tokens"] < sum(len(t.split()) for t in TEXTS)
    finally:
        server.stop()


def test_show_needs_ipython_and_returns_an_iframe(tmp_path, own, monkeypatch):
    monkeypatch.setitem(sys.modules, "IPython", None)
    monkeypatch.setitem(sys.modules, "IPython.display", None)
    with pytest.raises(RnnvisError, match="IPython") as e:
        rnnvis.show(models={"mine": own}, home=tmp_path / "home")
    assert "pip install ipython" in e.value.fix

    class IFrame:
        def __init__(self, src, width, height):
            self.src, self.width, self.height = src, width, height

    display = types.ModuleType("IPython.display")
    display.IFrame = IFrame
    monkeypatch.setitem(sys.modules, "IPython", types.ModuleType("IPython"))
    monkeypatch.setitem(sys.modules, "IPython.display", display)
    frame = rnnvis.show(models={"mine": own}, data={"texts": TEXTS}, home=tmp_path / "home", height=500)
    try:
        assert frame.height == 500 and frame.src == frame.server.url
        assert httpx.get(frame.src.rstrip("/") + "/api/models/mine/info", timeout=30).status_code == 200
    finally:
        frame.server.stop()


def test_serve_your_model_example_checks(tmp_path):
    r = subprocess.run([sys.executable, str(EXAMPLES / "serve_your_model.py"), "--check", "--home",
                        str(tmp_path / "home")], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "cocluster: k=" in r.stdout and r.stdout.strip().endswith("ok")
