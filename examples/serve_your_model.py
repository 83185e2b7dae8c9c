"""Explore your own language model in the rnnvis web app.

A small word-level LSTM language model is trained for a few seconds on a text that ships with
Python (the docstrings of some standard-library modules) and served with `rnnvis.serve`, next to
the models of your rnnvis workspace. Open the printed URL; Ctrl-C stops.

    python examples/serve_your_model.py            # serve at http://127.0.0.1:8000/
    python examples/serve_your_model.py --check    # start, query the API once, stop (for tests)
"""
import argparse
import collections
import importlib
import json
import re
import sys
import time
import urllib.error
import urllib.request

import torch
from torch import nn

import rnnvis

MODULES = ["argparse", "collections", "json", "textwrap", "string", "functools", "itertools", "pathlib",
           "logging", "unittest", "datetime", "subprocess", "threading", "inspect", "re", "csv", "shutil"]


def stdlib_texts() -> list[str]:
    """Paragraphs of the docstrings of a few standard-library modules and their public members."""
    texts = []
    for name in MODULES:
        mod = importlib.import_module(name)
        docs = [mod.__doc__] + [getattr(getattr(mod, a), "__doc__", None) for a in sorted(dir(mod))
                                if not a.startswith("_")]
        for doc in (d for d in docs if isinstance(d, str)):
            texts += [" ".join(p.split()) for p in doc.split("\n\n") if len(p.split()) >= 8]
    return list(dict.fromkeys(texts))  # unique, in order


class Tokenizer:
    """Lower-cased words and punctuation; anything outside the vocabulary is <unk>."""

    def __init__(self, texts, size=2000):
        counts = collections.Counter(w for t in texts for w in self.split(t))
        self.itos = ["<pad>", "<unk>", "<eos>"] + [w for w, _ in counts.most_common(size)]
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    @staticmethod
    def split(text):
        return re.findall(r"\w+|[^\w\s]", text.lower())

    def encode(self, text):
        return [self.stoi.get(w, 1) for w in self.split(text)]


class WordLM(nn.Module):
    """Embedding, one LSTM layer, a linear decoder: forward(ids (batch, time)) -> logits (batch, time, vocab)."""

    def __init__(self, vocab, emb=48, hidden=96):
        super().__init__()
        self.embedding = nn.Embedding(vocab, emb)
        self.lstm = nn.LSTM(emb, hidden, batch_first=True)
        self.decoder = nn.Linear(hidden, vocab)

    def forward(self, ids):
        out, _ = self.lstm(self.embedding(ids))
        return self.decoder(out)


def train(model, stream, steps=300, batch=16, bptt=32):
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    data = torch.tensor(stream[: len(stream) // batch * batch]).view(batch, -1)  # (batch, tokens)
    t0 = time.time()
    for step in range(steps):
        i = (step * bptt) % (data.shape[1] - bptt - 1)
        x, y = data[:, i:i + bptt], data[:, i + 1:i + bptt + 1]
        loss = nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    print(f"trained {steps} steps in {time.time() - t0:.1f}s, last loss {loss.item():.2f}", file=sys.stderr)
    return model.eval()


def get(url, method="GET"):
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def check(server, name):
    """Query the model's info and a co-clustering (waiting for the view recording), then stop."""
    api = server.url.split("?")[0] + "api/models/" + name
    status, info = get(api + "/info")
    assert status == 200 and info["name"] == name, (status, info)
    print("info:", info["kind"], info["cell"], info["hidden"], "units,", len(info["streams"]), "streams")
    deadline = time.time() + 120
    while True:
        status, cc = get(api + "/cocluster")
        if status != 409:
            break
        job = cc["job"]
        if job["status"] in ("failed", "cancelled") or time.time() > deadline:
            raise SystemExit(f"the view recording did not finish: {job}")
        time.sleep(0.3)
    assert status == 200, (status, cc)
    print(f"cocluster: k={cc['k']} over {cc['n_words']} words; first word cluster:",
          [w["word"] for w in cc["word_clusters"][0]["words"][:8]])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="start, query the API once and exit")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--home", help="rnnvis workspace (default: ~/.rnnvis)")
    args = ap.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(1 if args.check else min(2, torch.get_num_threads()))
    texts = stdlib_texts()[: 250 if args.check else None]  # a quick check needs less
    tok = Tokenizer(texts)
    stream = [i for t in texts for i in tok.encode(t) + [2]]
    model = train(WordLM(len(tok.itos)), stream, steps=60 if args.check else 600)
    models = {"stdlib-lstm": (model, tok)}
    data = {"stdlib-docstrings": texts}
    if not args.check:
        rnnvis.serve(models=models, data=data, home=args.home, port=args.port)
        return
    with rnnvis.serve(models=models, data=data, home=args.home, port=0, block=False) as server:
        check(server, "stdlib-lstm")
    print("ok")


if __name__ == "__main__":
    main()
