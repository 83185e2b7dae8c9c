"""One model as the views see it: `ModelHandle` (module, tokenizer, the split its views read, how it
runs on a recording batch), the `ViewRef` that carries a split with a model reference, and the
parsing of stream names."""
from __future__ import annotations

import copy
import hashlib
import threading
from types import SimpleNamespace
from typing import Callable, Sequence

import torch

from ..errors import RnnvisError


class ViewRef(str):
    """A model reference (name, id or prefix) together with the split whose recording the views read
    (`.data_split`; not `.split`, which stays str.split)."""

    data_split: str | None

    def __new__(cls, ref: str, split: str | None = None):
        self = super().__new__(cls, ref)
        self.data_split = split
        return self

    def __repr__(self) -> str:
        return f"ViewRef({str(self)!r}, split={self.data_split!r})"


def split_of(ref: str) -> str | None:
    """The split a (view) reference asks for; None: the model's default split."""
    return ref.data_split if isinstance(ref, ViewRef) else None


class EncodeTokenizer:
    """Adapter for own models tokenized by `encode(text) -> ids` and `itos` (id -> token string)."""

    def __init__(self, encode: Callable[[str], Sequence[int]], itos: Sequence[str], level: str = "word"):
        self._encode = encode
        self.vocab = SimpleNamespace(itos=list(itos))
        self.level = level

    def encode_text(self, text: str) -> list[int]:
        return [int(i) for i in self._encode(text)]

    def split_text(self, text: str) -> list[str]:
        itos = self.vocab.itos
        return [itos[i] if 0 <= i < len(itos) else "<unk>" for i in self.encode_text(text)]

    def encode_doc(self, doc, add_eos: bool = False) -> list[int]:
        text = doc.text if doc.text is not None else " ".join(doc.tokens or [])
        return self.encode_text(text)


def _tokenizer_adapter(tokenizer, encode, itos, level: str | None):
    """An rnnvis tokenizer as it is, or an adapter around `encode`/`itos` or an object with `.encode`."""
    if tokenizer is not None and hasattr(tokenizer, "encode_text") and hasattr(tokenizer, "split_text"):
        return tokenizer
    if tokenizer is not None:
        enc = getattr(tokenizer, "encode", None)
        if not callable(enc):
            raise RnnvisError("the tokenizer has neither encode_text/split_text nor encode",
                              "pass an rnnvis tokenizer, an object with .encode(text) -> ids, or encode= and itos=")
        encode = encode or enc
        if itos is None:
            itos = getattr(tokenizer, "itos", None) or getattr(getattr(tokenizer, "vocab", None), "itos", None)
    if encode is None or itos is None:
        raise RnnvisError("an own model needs a tokenizer, or encode= together with itos=",
                          "e.g. add_model('m', module, encode=my_encode, itos=my_vocab_list)")
    itos = list(itos)
    if level is None:
        level = "char" if all(len(s) <= 1 for s in itos if not (s.startswith("<") and s.endswith(">"))) else "word"
    return EncodeTokenizer(encode, itos, level)


def weights_id(module: torch.nn.Module) -> str:
    """Content hash of a module's weights (the id of an own model)."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def parse_stream(name: str) -> dict:
    """{layer, direction, type, gate} of a stream name such as 'layer1.fwd.gate.f' or 'layer0.bwd.h'."""
    parts = name.split(".")
    layer, direction = 0, "fwd"
    for i, p in enumerate(parts):
        if p.startswith("layer") and p[5:].isdigit():
            layer = int(p[5:])
            if i + 1 < len(parts) and parts[i + 1] in ("fwd", "bwd"):
                direction = parts[i + 1]
    if len(parts) >= 2 and parts[-2] == "gate":
        return {"layer": layer, "direction": direction, "type": "gate", "gate": parts[-1]}
    return {"layer": layer, "direction": direction, "type": "c" if parts[-1] == "c" else "h", "gate": None}


class ModelHandle:
    """One loaded model: its module (eval, CPU), tokenizer and what the views need to know."""

    def __init__(self, *, ref: str, name: str, id: str, kind: str, level: str, module: torch.nn.Module,
                 tokenizer, dataset: str | None, split: str, own: bool, labels: list[str] | None = None,
                 run_id: int | None = None, config: dict | None = None):
        from ..recording import find_recurrent

        self.ref, self.name, self.id = ref, name, id
        self.kind, self.level = kind, level
        self.module = module.eval()
        self.tokenizer = tokenizer
        self.dataset, self.split, self.own = dataset, split, own
        self.labels = labels
        self.run_id = run_id
        self.config = config or {}
        targets = find_recurrent(module)
        first = targets[0].module
        self.cell = type(first).__name__.lower().replace("cell", "")
        self.layers = sum(getattr(t.module, "num_layers", 1) for t in targets)
        self.hidden = int(getattr(first, "hidden_size", 0))
        self.lock = threading.RLock()  # the module is hooked while it runs: one caller at a time
        self._streams: dict[str, dict[str, int]] = {}  # shared with the handles of other splits
        self.default_split = split

    @property
    def view_ref(self) -> ViewRef:
        """The reference of this model on this split, for the view functions."""
        return ViewRef(self.ref, self.split)

    def on_split(self, split: str) -> "ModelHandle":
        """The same model (module, lock, tokenizer shared) as seen on another split of its data."""
        if split == self.split:
            return self
        other = copy.copy(self)
        other.split = split
        return other

    def forward(self, module: torch.nn.Module, batch: dict):
        """Run `module` (this model's module or a copy) on a recording batch, as `record_corpus` and
        `recompute` call it: a catalog LM returns (logits, state), a catalog classifier takes the
        lengths too, an own model takes the ids alone."""
        if self.own:
            return module(batch["ids"])
        if self.kind == "classifier":
            return module(batch["ids"], batch["lengths"])
        return module(batch["ids"])[0]

    @property
    def itos(self) -> list[str]:
        return list(self.tokenizer.vocab.itos)

    def decode(self, ids) -> list[str]:
        itos = self.tokenizer.vocab.itos
        return [itos[int(i)] if 0 <= int(i) < len(itos) else "<unk>" for i in ids]

    def encode(self, text: str) -> tuple[list[str], list[int]]:
        """(tokens as shown, ids) of a typed text."""
        ids = [int(i) for i in self.tokenizer.encode_text(text)]
        if not ids:
            raise RnnvisError("the text has no tokens", "type at least one word or character")
        try:
            shown = list(self.tokenizer.split_text(text))
        except Exception:  # noqa: BLE001 - an adapter without split_text: show the vocabulary's symbols
            shown = []
        if len(shown) != len(ids):
            shown = self.decode(ids)
        return shown, ids

    def forward_logits(self, ids: torch.Tensor):
        out = self.module(ids)
        return out[0] if isinstance(out, (tuple, list)) else out

    def run_text(self, text: str):
        """tokens, `rnnvis.record` Recording of every stream (batch 1), outputs {loss: [t]|None, logits}."""
        from ..recording import record

        tokens, ids = self.encode(text)
        x = torch.tensor([ids], dtype=torch.long)
        with self.lock, torch.no_grad():
            out, rec = record(self.module, x)
        logits = out[0] if isinstance(out, (tuple, list)) else out
        logits = logits.detach().float()
        loss = None
        if logits.dim() == 3:
            logp = torch.log_softmax(logits[0], -1)  # (T, V)
            nxt = torch.tensor(ids[1:], dtype=torch.long)
            lt = -logp[:-1].gather(1, nxt[:, None])[:, 0] if len(ids) > 1 else torch.zeros(0)
            loss = [float(v) for v in lt] + [None]
        return tokens, rec, {"loss": loss, "logits": logits.numpy()}

    def streams(self) -> dict[str, int]:
        """{stream name: units} of every stream (from a one-token run)."""
        if "all" not in self._streams:
            from ..recording import record

            with self.lock, torch.no_grad():
                _, rec = record(self.module, torch.zeros((1, 2), dtype=torch.long) + min(4, len(self.itos) - 1))
            self._streams["all"] = {n: int(rec[n].shape[-1]) for n in rec.streams}
        return self._streams["all"]
