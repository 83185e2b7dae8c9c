"""Hand-written reference loops and a planted bracket counter for tests/test_interventions.py."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


def set_units(x, units, value, on=True):
    """x (B, U) with `units` set to value (a number or (B, len(units)) tensor) where on."""
    if not on:
        return x
    x = x.clone()
    x[:, list(units)] = value if not isinstance(value, torch.Tensor) else value.to(x.dtype)
    return x


def lstm_cell_step(cell: nn.LSTMCell, x, h, c, gate_fn=None, c_fn=None, h_fn=None):
    """One LSTM step from the cell's weights, by hand, with optional edits of the gates, c and h.
    Without edits it equals `cell(x, (h, c))` (checked in the tests)."""
    pre = x @ cell.weight_ih.t() + cell.bias_ih + h @ cell.weight_hh.t() + cell.bias_hh
    i, f, g, o = pre.chunk(4, dim=1)
    gates = {"i": torch.sigmoid(i), "f": torch.sigmoid(f), "g": torch.tanh(g), "o": torch.sigmoid(o)}
    if gate_fn is not None:
        gates = gate_fn(gates)
    c = gates["f"] * c + gates["i"] * gates["g"]
    if c_fn is not None:
        c = c_fn(c)
    h = gates["o"] * torch.tanh(c)
    if h_fn is not None:
        h = h_fn(h)
    return h, c


def gru_cell_step(cell: nn.GRUCell, x, h, gate_fn=None, h_fn=None):
    gi = x @ cell.weight_ih.t() + cell.bias_ih
    gh = h @ cell.weight_hh.t() + cell.bias_hh
    ir, iz, inn = gi.chunk(3, dim=1)
    hr, hz, hn = gh.chunk(3, dim=1)
    r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
    gates = {"r": r, "z": z}
    if gate_fn is not None:
        gates = gate_fn(gates)
    n = torch.tanh(inn + gates["r"] * hn)
    gates["n"] = n
    if gate_fn is not None:
        gates = gate_fn(gates)
    h = (1 - gates["z"]) * gates["n"] + gates["z"] * h
    return h_fn(h) if h_fn is not None else h


def cells_of(module, layer: int, reverse: bool = False, cls=nn.LSTMCell):
    """An nn.*Cell carrying the weights of one layer and direction of a fused module."""
    sfx = f"_l{layer}" + ("_reverse" if reverse else "")
    w_ih = getattr(module, "weight_ih" + sfx)
    cell = cls(w_ih.shape[1], module.hidden_size)
    with torch.no_grad():
        for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, n).copy_(getattr(module, n + sfx))
    return cell


# -- a hand-built bracket counter -----------------------------------------------------------------
BRACKET_VOCAB = ["a", "b", "(", ")", "."]  # "." never occurs (a view recording keeps a top-5)
COUNTER, DISTRACTOR = 0, 1


class BracketLM(nn.Module):
    """An LSTM LM over a, b, ( and ), weights set by hand: unit 0 counts open brackets in its cell
    state (input gate on at '(', a negative write at ')', forget gate open), unit 1 tracks whether the
    last token was 'a' (a distractor that the output barely reads), units 2..5 are idle.
    The decoder predicts ')' when the counter is above zero, else 'a' / 'b' / '('."""

    def __init__(self, hidden: int = 6):
        super().__init__()
        V = len(BRACKET_VOCAB)
        self.embedding = nn.Embedding(V, V)
        self.rnn = nn.LSTM(V, hidden, batch_first=True)
        self.out = nn.Linear(hidden, V)
        H = hidden
        with torch.no_grad():
            self.embedding.weight.copy_(torch.eye(V))  # one-hot tokens
            for p in self.rnn.parameters():
                p.zero_()
            w, b = self.rnn.weight_ih_l0, self.rnn.bias_ih_l0
            b[0:H] = -10.0  # input gates shut ...
            w[COUNTER, 2] = 20.0  # ... but open for the counter at '(' and ')'
            w[COUNTER, 3] = 20.0
            w[DISTRACTOR, 0] = 20.0  # the distractor's input gate opens at 'a'
            w[DISTRACTOR, 1] = 20.0  # and at 'b'
            b[H:2 * H] = 10.0  # forget gates open: memory
            w[H + DISTRACTOR, 0:2] = -20.0  # the distractor forgets at every a / b
            # g (cell input): +1 at '(' and -1 at ')' for the counter; 'a' +1 / 'b' -1 for the distractor
            w[2 * H + COUNTER, 2] = 5.0
            w[2 * H + COUNTER, 3] = -5.0
            w[2 * H + DISTRACTOR, 0] = 5.0
            w[2 * H + DISTRACTOR, 1] = -5.0
            b[3 * H:4 * H] = 10.0  # output gates open
            self.out.weight.zero_()
            self.out.bias.copy_(torch.tensor([1.0, 1.0, 1.0, -4.0, -8.0]))
            self.out.weight[3, COUNTER] = 12.0  # open bracket pending: ')' likely
            self.out.weight[2, COUNTER] = -3.0
            self.out.weight[0, DISTRACTOR] = 0.2  # read, but barely
        self.eval()

    def forward(self, ids):
        h, _ = self.rnn(self.embedding(ids))
        return self.out(h)


def bracket_texts(n: int = 40, seed: int = 0) -> list[str]:
    """Space-separated strings with balanced brackets of depth at most one, e.g. 'a ( b a ) b'."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        toks = []
        for _ in range(4):
            toks += list(rng.choice(["a", "b"], size=int(rng.integers(1, 3))))
            toks += ["("] + list(rng.choice(["a", "b"], size=int(rng.integers(1, 3)))) + [")"]
        out.append(" ".join(toks))
    return out


# -- a hand-built classifier ----------------------------------------------------------------------
CLF_VOCAB = ["<pad>", "good", "film", "plot", "the"]


class LatchClassifier(nn.Module):
    """An RNN classifier whose unit 0 latches to +1 at 'good' (else stays at -1); the head reads it
    at the last step: 'pos' when 'good' occurred. Units 1 and 2 are idle."""

    def __init__(self):
        super().__init__()
        V = len(CLF_VOCAB)
        self.embedding = nn.Embedding(V, V)
        self.rnn = nn.RNN(V, 3, batch_first=True)
        self.head = nn.Linear(3, 2)
        with torch.no_grad():
            self.embedding.weight.copy_(torch.eye(V))
            for p in self.rnn.parameters():
                p.zero_()
            self.rnn.weight_hh_l0[0, 0] = 10.0
            self.rnn.weight_ih_l0[0, 1] = 20.0
            self.rnn.bias_ih_l0[0] = -5.0
            self.head.weight.zero_()
            self.head.bias.zero_()
            self.head.weight[1, 0] = 5.0
            self.head.weight[0, 0] = -5.0
        self.eval()

    def forward(self, ids):
        h, _ = self.rnn(self.embedding(ids))
        return self.head(h[:, -1])


def latch_corpus(n: int = 24, seed: int = 0):
    from rnnvis.data import Corpus, Document

    rng = np.random.default_rng(seed)
    docs = []
    for i in range(n):
        words = list(rng.choice(["film", "plot", "the"], size=5))
        pos = i % 2 == 0
        if pos:
            words[int(rng.integers(0, 5))] = "good"
        docs.append(Document(id=str(i), text=" ".join(words), label=int(pos)))
    return Corpus("latch", docs, task="classify", label_names=["neg", "pos"])
