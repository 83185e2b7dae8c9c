"""The model zoo: word/char language models and sequence classifiers on fused torch RNNs.

Every model keeps its recurrent layer in the attribute `rnn` (a fused `nn.RNN`,
`nn.GRU` or `nn.LSTM`, batch_first) so the recording engine finds it by type, and
every model carries its JSON-able `config` so a checkpoint can rebuild it.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..errors import RnnvisError

CELLS = ("rnn", "gru", "lstm")
KINDS = ("lm", "classifier")
POOLINGS = ("last", "mean", "max")
MAX_LAYERS = 3  # stacked recurrent layers a model may have

DEFAULTS: dict[str, Any] = {
    "kind": "lm", "cell": "lstm", "vocab_size": None, "emb": 128, "hidden": 256, "layers": 1,
    "dropout": 0.0, "bidirectional": False, "pooling": "last", "num_classes": None, "tie_weights": False,
}


def _make_rnn(cell: str, input_size: int, hidden: int, layers: int, dropout: float,
              bidirectional: bool) -> nn.Module:
    """A fused recurrent layer; inter-layer dropout only where torch applies it (layers > 1)."""
    kwargs = dict(input_size=input_size, hidden_size=hidden, num_layers=layers, batch_first=True,
                  dropout=dropout if layers > 1 else 0.0, bidirectional=bidirectional)
    if cell == "rnn":
        return nn.RNN(nonlinearity="tanh", **kwargs)
    if cell == "gru":
        return nn.GRU(**kwargs)
    return nn.LSTM(**kwargs)


def _pack(x: torch.Tensor, lengths: torch.Tensor):
    # pack_padded_sequence needs lengths as int64 on the CPU, whatever the device of x.
    return pack_padded_sequence(x, lengths.detach().to("cpu", torch.int64), batch_first=True,
                                enforce_sorted=False)


class LanguageModel(nn.Module):
    """Embedding → fused RNN/GRU/LSTM → dropout → linear decoder over the vocabulary."""

    def __init__(self, vocab_size: int, cell: str = "lstm", emb: int = 128, hidden: int = 256,
                 layers: int = 1, dropout: float = 0.0, tie_weights: bool = False):
        super().__init__()
        self.config = validate_config(dict(kind="lm", cell=cell, vocab_size=vocab_size, emb=emb, hidden=hidden,
                                           layers=layers, dropout=dropout, tie_weights=tie_weights))
        self.embedding = nn.Embedding(vocab_size, emb)
        self.rnn = _make_rnn(cell, emb, hidden, layers, dropout, False)
        self.drop = nn.Dropout(dropout)
        self.decoder = nn.Linear(hidden, vocab_size)
        if tie_weights:
            self.decoder.weight = self.embedding.weight  # (vocab, emb) shared, emb == hidden

    @property
    def tied(self) -> bool:
        return self.decoder.weight is self.embedding.weight

    def forward(self, ids: torch.Tensor, state=None, lengths: torch.Tensor | None = None):
        """ids (batch, time) → logits (batch, time, vocab), final state.

        With `lengths`, the sequences are packed so the returned state is the one
        after each sequence's true last token (padding never enters it).
        """
        x = self.drop(self.embedding(ids))  # (batch, time, emb)
        if lengths is not None:
            packed, state = self.rnn(_pack(x, lengths), state)
            out, _ = pad_packed_sequence(packed, batch_first=True, total_length=ids.shape[1])
        else:
            out, state = self.rnn(x, state)  # (batch, time, hidden)
        logits = self.decoder(self.drop(out))  # (batch, time, vocab)
        return logits, state


class Classifier(nn.Module):
    """Embedding → (bi)directional fused RNN over packed sequences → pooling → linear head."""

    def __init__(self, vocab_size: int, num_classes: int, cell: str = "lstm", emb: int = 128, hidden: int = 256,
                 layers: int = 1, dropout: float = 0.0, bidirectional: bool = False, pooling: str = "last"):
        super().__init__()
        self.config = validate_config(dict(kind="classifier", cell=cell, vocab_size=vocab_size, emb=emb,
                                           hidden=hidden, layers=layers, dropout=dropout,
                                           bidirectional=bidirectional, pooling=pooling, num_classes=num_classes))
        self.pooling = pooling
        self.directions = 2 if bidirectional else 1
        self.embedding = nn.Embedding(vocab_size, emb)
        self.rnn = _make_rnn(cell, emb, hidden, layers, dropout, bidirectional)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden * self.directions, num_classes)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """ids (batch, time), lengths (batch,) → logits (batch, classes)."""
        batch, time = ids.shape
        if lengths is None:
            lengths = torch.full((batch,), time, dtype=torch.int64)
        x = self.drop(self.embedding(ids))  # (batch, time, emb)
        packed, h_n = self.rnn(_pack(x, lengths), None)
        if isinstance(h_n, tuple):  # LSTM: (h, c)
            h_n = h_n[0]
        if self.pooling == "last":
            # h_n (layers*dirs, batch, hidden): forward state at the true last token and,
            # for bidirectional models, the backward state at position 0.
            pooled = torch.cat([h_n[-self.directions + d] for d in range(self.directions)], dim=-1)
        else:
            out, _ = pad_packed_sequence(packed, batch_first=True, total_length=time)  # (batch, time, dirs*hidden)
            mask = (torch.arange(time, device=ids.device)[None, :]
                    < lengths.to(ids.device)[:, None]).unsqueeze(-1)  # (batch, time, 1)
            if self.pooling == "mean":
                pooled = (out * mask).sum(1) / mask.sum(1).clamp(min=1)
            else:
                pooled = out.masked_fill(~mask, float("-inf")).max(1).values
        return self.head(self.drop(pooled))  # (batch, classes)


def _int(cfg: dict, key: str, lo: int, hi: int | None = None) -> int:
    v = cfg.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi):
        rng = f"{lo}..{hi}" if hi is not None else f"at least {lo}"
        raise RnnvisError(f"model option {key}={v!r} is invalid: it must be a whole number {rng}",
                          f"set {key} to a value in {rng}")
    return v


def validate_config(config: dict) -> dict:
    """Fill defaults and check every field; returns the normalised JSON-able config."""
    unknown = set(config) - set(DEFAULTS)
    if unknown:
        raise RnnvisError(f"unknown model option(s) {', '.join(sorted(unknown))}",
                          f"known options: {', '.join(DEFAULTS)}")
    cfg = {**DEFAULTS, **{k: v for k, v in config.items() if v is not None}}
    if cfg["kind"] not in KINDS:
        raise RnnvisError(f"unknown model kind {cfg['kind']!r}", "use lm or classifier")
    if cfg["cell"] not in CELLS:
        raise RnnvisError(f"unknown cell type {cfg['cell']!r}", "use rnn, gru or lstm")
    _int(cfg, "vocab_size", 4)
    _int(cfg, "emb", 1)
    _int(cfg, "hidden", 1)
    _int(cfg, "layers", 1, MAX_LAYERS)
    if not isinstance(cfg["dropout"], (int, float)) or not 0 <= cfg["dropout"] < 1:
        raise RnnvisError(f"dropout {cfg['dropout']!r} must be in [0, 1)", "use e.g. 0.2")
    cfg["dropout"] = float(cfg["dropout"])
    cfg["bidirectional"] = bool(cfg["bidirectional"])
    cfg["tie_weights"] = bool(cfg["tie_weights"])
    if cfg["kind"] == "lm":
        if cfg["bidirectional"]:
            raise RnnvisError("a language model cannot be bidirectional (it would see the word it predicts)",
                              "drop --bidirectional or train a classifier")
        if cfg["tie_weights"] and cfg["emb"] != cfg["hidden"]:
            raise RnnvisError(f"tied weights need emb == hidden (got emb={cfg['emb']}, hidden={cfg['hidden']})",
                              "set emb and hidden to the same size or turn tie_weights off")
        cfg["num_classes"] = None
    else:
        if cfg["pooling"] not in POOLINGS:
            raise RnnvisError(f"unknown pooling {cfg['pooling']!r}", "use last, mean or max")
        _int(cfg, "num_classes", 2)
        if cfg["tie_weights"]:
            raise RnnvisError("tie_weights applies to language models only", "turn tie_weights off")
    return cfg


def build_model(config: dict) -> nn.Module:
    """A fresh model from a JSON-able config (see `DEFAULTS` for the fields)."""
    cfg = validate_config(config)
    if cfg["kind"] == "lm":
        return LanguageModel(cfg["vocab_size"], cfg["cell"], cfg["emb"], cfg["hidden"], cfg["layers"],
                             cfg["dropout"], cfg["tie_weights"])
    return Classifier(cfg["vocab_size"], cfg["num_classes"], cfg["cell"], cfg["emb"], cfg["hidden"], cfg["layers"],
                      cfg["dropout"], cfg["bidirectional"], cfg["pooling"])


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """'auto' → cuda when available else cpu; a clear error when cuda is asked for but absent."""
    name = str(device or "auto")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RnnvisError("device 'cuda' was requested but no CUDA GPU is available to torch",
                          "use --device cpu (or auto), or install a CUDA build of torch")
    if name != "cpu" and not name.startswith("cuda"):
        raise RnnvisError(f"unknown device {name!r}", "use cpu, cuda or auto")
    return torch.device(name)
