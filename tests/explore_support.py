"""Tiny seeded models and data for the exploration tests (imported by tests/test_*explore*.py)."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

WORDS = [
    "the cat sat on the mat .", "a dog ran in the park .", "the bird sang a song .",
    "my friend read the book .", "the sun is not hot today .", "we ate the cake at noon .",
    "she said \" hello there \" to me .", "he did not like the long film .",
]
REVIEWS = [("a great and lovely film", 1), ("a bad and boring film", 0), ("i loved it , great fun", 1),
           ("awful , i hated it", 0), ("great acting and a lovely story", 1), ("boring plot and bad acting", 0)]
CODE = ["int main(void) { return f(a[1]); } /* done */", "char *s = \"hi\"; // note\nx = (y + 2);"]


def build_models(ws, catalog):
    """Train a word LM, a classifier and a char LM (a second or so each); return their corpora by name."""
    from rnnvis.data import Corpus, Document
    from rnnvis.models import TrainConfig, train

    torch.manual_seed(0)
    lines = Corpus("lines", [Document(id=str(i), text=t) for i, t in enumerate(WORDS * 5)])
    reviews = Corpus("reviews", [Document(id=str(i), text=t, label=y) for i, (t, y) in enumerate(REVIEWS * 4)],
                     task="classify", label_names=["neg", "pos"])
    code = Corpus("code", [Document(id=str(i), text=t) for i, t in enumerate(CODE * 6)], level="char")
    common = dict(emb=8, hidden=12, epochs=1, batch_size=4, bptt=8, device="cpu", log_every=50)
    train(lines, TrainConfig(name="wlm", task="lm", level="word", cell="lstm", **common), ws, catalog, progress=False)
    train(reviews, TrainConfig(name="clf", task="classify", level="word", cell="gru", **common), ws, catalog,
          progress=False)
    train(code, TrainConfig(name="clm", task="lm", level="char", cell="lstm", **common), ws, catalog, progress=False)
    return {"lines": lines, "reviews": reviews, "code": code}


class PlantedLSTM(nn.Module):
    """An own LM whose LSTM units 0..2 are on (h > 0.5) exactly at the token 'zz' (no memory)."""

    def __init__(self, itos: list[str], hidden: int = 6):
        super().__init__()
        V = len(itos)
        self.embedding = nn.Embedding(V, 2)
        self.rnn = nn.LSTM(2, hidden, batch_first=True)
        self.out = nn.Linear(hidden, V)
        with torch.no_grad():
            self.embedding.weight.zero_()
            self.embedding.weight[:, 1] = 1.0  # a constant input
            self.embedding.weight[itos.index("zz"), 0] = 1.0  # the planted token
            self.rnn.weight_hh_l0.zero_()
            self.rnn.weight_ih_l0.zero_()
            self.rnn.bias_hh_l0.zero_()
            H = hidden
            b = torch.zeros(4 * H)
            b[0:H] = 10.0  # input gate open
            b[H:2 * H] = -10.0  # forget gate shut: no memory
            b[3 * H:4 * H] = 10.0  # output gate open
            self.rnn.bias_ih_l0.copy_(b)
            g = self.rnn.weight_ih_l0[2 * H:3 * H]
            g[:3, 0] = 8.0  # 'zz' pushes units 0..2 up
            g[:3, 1] = -4.0  # everything else pulls them down
            g[3:, 1] = 0.3
        self.eval()

    def forward(self, ids):
        h, _ = self.rnn(self.embedding(ids))
        return self.out(h)


def planted_data(n: int = 30, seed: int = 0):
    """Texts over a small vocabulary with 'zz' planted at known places; (texts, itos, planted count)."""
    rng = np.random.default_rng(seed)
    vocab = ["a", "b", "c", "d", "e"]
    texts, count = [], 0
    for _ in range(n):
        words = list(rng.choice(vocab, size=12))
        for p in sorted(rng.choice(np.arange(1, 11, 3), size=2, replace=False)):
            words[p] = "zz"
            count += 1
        texts.append(" ".join(words))
    return texts, ["<unk>"] + vocab + ["zz"], count


def make_explorer(home, planted_n: int = 30):
    """An Explorer (no warm-up) over the tiny trained models, their corpora as own data, and the
    hand-built `own` model on texts with 'zz' planted; `ex.planted` is the planted count."""
    from rnnvis.catalog import Catalog
    from rnnvis.explore.jobs import JobManager
    from rnnvis.explore.session import Explorer
    from rnnvis.workspace import Workspace

    ws = Workspace.open(home)
    catalog = Catalog(ws.catalog_path)
    corpora = build_models(ws, catalog)
    ex = Explorer(ws, catalog, JobManager(), max_tokens=5000, warm=False)
    for name, c in corpora.items():
        ex.add_data(name, c)
    texts, itos, planted = planted_data(planted_n)
    stoi = {w: i for i, w in enumerate(itos)}
    ex.add_data("planted", texts)
    ex.add_model("own", PlantedLSTM(itos), encode=lambda t: [stoi.get(w, 0) for w in t.split()], itos=itos,
                 data="planted")
    ex.planted = planted
    return ex
