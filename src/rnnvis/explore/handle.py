"""One model as the views see it: `ModelHandle` (module, tokenizer, the split its views read, how it
runs on a recording batch), the `ViewRef` that carries a split with a model reference, and the
parsing of stream names."""
from __future__ import annotations

import copy
import hashlib
import inspect
import threading
from types import SimpleNamespace
from typing import Callable, Mapping, Sequence

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

    def __init__(self, encode: Callable[[str], Sequence[int]], itos: Sequence[str], level: str = "word",
                 split: Callable[[str], list[str]] | None = None):
        self._encode = encode
        self._split = split  # a vocabulary's split rule: typed tokens shown as typed, not as <unk>
        self.vocab = SimpleNamespace(itos=list(itos))
        self.level = level

    def encode_text(self, text: str) -> list[int]:
        return [int(i) for i in self._encode(text)]

    def split_text(self, text: str) -> list[str]:
        if self._split is not None:
            return list(self._split(text))
        itos = self.vocab.itos
        return [itos[i] if 0 <= i < len(itos) else "<unk>" for i in self.encode_text(text)]

    def encode_doc(self, doc, add_eos: bool = False) -> list[int]:
        text = doc.text if doc.text is not None else " ".join(doc.tokens or [])
        return self.encode_text(text)


UNK = ("<unk>", "<UNK>", "[UNK]", "<oov>")
SPLITS = {"whitespace": str.split, "chars": list}


def _split_rule(split_by) -> Callable[[str], list[str]]:
    if callable(split_by):
        return split_by
    if split_by in SPLITS:
        return SPLITS[split_by]
    raise RnnvisError(f"unknown split rule {split_by!r}",
                      "use split_by='whitespace', 'chars', or a function text -> list of tokens")


def _vocab_encoder(itos: list[str], split_by) -> Callable[[str], list[int]]:
    """encode(text) for a plain vocabulary: split by the rule, unknown tokens -> the vocabulary's unk."""
    stoi = {w: i for i, w in enumerate(itos)}
    unk = next((stoi[u] for u in UNK if u in stoi), None)
    split = _split_rule(split_by)

    def encode(text: str) -> list[int]:
        ids = []
        for w in split(text):
            i = stoi.get(w, unk)
            if i is None:
                raise RnnvisError(f"the token {w!r} is not in the vocabulary, which has no <unk>",
                                  "type tokens the model knows, or add '<unk>' to the vocabulary")
            ids.append(i)
        return ids
    return encode


def _as_itos(vocab) -> list[str] | None:
    """A list of tokens by id from a list, or a dict token -> id."""
    if isinstance(vocab, Mapping):
        if not vocab:
            return None
        n = max(int(i) for i in vocab.values()) + 1
        itos = [f"<{i}>" for i in range(n)]  # ids the dict does not name stay visible, not shifted
        for w, i in vocab.items():
            itos[int(i)] = str(w)
        return itos
    if isinstance(vocab, (list, tuple)) and all(isinstance(w, str) for w in vocab):
        return list(vocab)
    return None


def _ids_of(result) -> list[int]:
    """The ids of what a tokenizer returned: a list, a tensor, {"input_ids": ...} or an object with .ids."""
    if isinstance(result, Mapping) and "input_ids" in result:
        result = result["input_ids"]
    elif hasattr(result, "input_ids"):
        result = result.input_ids
    elif hasattr(result, "ids") and not isinstance(result, (list, tuple)):
        result = result.ids
    if isinstance(result, torch.Tensor):
        result = result.reshape(-1).tolist()
    if result and isinstance(result[0], (list, tuple)):  # a batch of one
        result = result[0]
    return [int(i) for i in result]


def _object_encoder(tokenizer) -> Callable[[str], list[int]]:
    """encode(text) of a tokenizer object: .encode(text) or tokenizer(text); no special tokens added
    when it takes add_special_tokens (HuggingFace), so that the tokens are the text's own."""
    fn = getattr(tokenizer, "encode", None)
    fn = fn if callable(fn) else tokenizer
    try:
        special = "add_special_tokens" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        special = False
    return (lambda text: _ids_of(fn(text, add_special_tokens=False))) if special else (lambda text: _ids_of(fn(text)))


def _object_itos(tokenizer) -> list[str] | None:
    """A tokenizer object's tokens by id: .itos, .vocab.itos, .get_vocab(), .vocab, or decode of each id."""
    for get in (lambda: tokenizer.itos, lambda: tokenizer.vocab.itos, lambda: tokenizer.get_vocab(),
                lambda: tokenizer.vocab):
        try:
            itos = _as_itos(get())
        except (AttributeError, TypeError, ValueError):
            continue
        if itos:
            return itos
    n = getattr(tokenizer, "vocab_size", None)
    decode = getattr(tokenizer, "decode", None)
    if isinstance(n, int) and callable(decode):
        return [str(decode([i])) for i in range(n)]
    return None


def _tokenizer_adapter(tokenizer, encode, itos, level: str | None, split_by=None):
    """An rnnvis tokenizer as it is, or an adapter (`EncodeTokenizer`) around one of: a plain
    vocabulary (a list of tokens or a dict token -> id) with a split rule (`split_by`: "whitespace",
    the default, "chars" or a function); an object with `.encode(text)` or `__call__(text)` returning
    ids (a list, a tensor, {"input_ids": ...}: HuggingFace-style), its tokens from `.itos`,
    `.get_vocab()`, `.vocab` or `.decode`; or `encode=` with `itos=`."""
    if tokenizer is not None and hasattr(tokenizer, "encode_text") and hasattr(tokenizer, "split_text"):
        return tokenizer
    vocab = _as_itos(tokenizer) if isinstance(tokenizer, (list, tuple, Mapping)) else None
    split = None
    if vocab is not None:
        split = _split_rule(split_by or "whitespace") if encode is None else None
        itos = itos if itos is not None else vocab
        encode = encode or _vocab_encoder(vocab, split_by or "whitespace")
        if level is None and split_by == "chars":
            level = "char"
    elif tokenizer is not None:
        if not (callable(getattr(tokenizer, "encode", None)) or callable(tokenizer)):
            raise RnnvisError(f"the tokenizer (a {type(tokenizer).__name__}) has neither encode nor __call__",
                              "pass a vocabulary (list of tokens or dict token -> id), an object with "
                              ".encode(text) -> ids, or encode= and itos=")
        encode = encode or _object_encoder(tokenizer)
        if itos is None:
            itos = _object_itos(tokenizer)
        if itos is None:
            raise RnnvisError(f"rnnvis cannot read the tokens of the tokenizer (a {type(tokenizer).__name__})",
                              "give them as itos= (a list of tokens by id), or give the tokenizer .itos, "
                              ".get_vocab() or .vocab_size with .decode")
    elif split_by is not None and itos is not None and encode is None:
        encode, split = _vocab_encoder(list(itos), split_by), _split_rule(split_by)
    if encode is None or itos is None:
        raise RnnvisError("an own model needs a tokenizer, or encode= together with itos=",
                          "e.g. add_model('m', module, tokenizer=my_vocab_list), or encode=my_encode, itos=my_vocab")
    itos = list(itos)
    if level is None:
        level = "char" if all(len(s) <= 1 for s in itos if not (s.startswith("<") and s.endswith(">"))) else "word"
    return EncodeTokenizer(encode, itos, level, split)


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
                 run_id: int | None = None, config: dict | None = None, call=None):
        from ..recording import find_recurrent

        self.ref, self.name, self.id = ref, name, id
        self.kind, self.level = kind, level
        self.module = module.eval()
        self.tokenizer = tokenizer
        self.dataset, self.split, self.own = dataset, split, own
        self.labels = labels
        self.run_id = run_id
        self.config = config or {}
        self.call = call  # an own model's bound spec (models/spec.py): how to call it, where its logits are
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
        lengths too, an own model is called as its spec says (its logits batch-major)."""
        if self.call is not None:
            return self.call(module, batch["ids"], batch.get("lengths"))
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
        """Logits of ids (B, T), batch-major: (B, T, V) or (B, C)."""
        if self.call is not None:
            return self.call(self.module, ids)
        out = self.module(ids)
        return out[0] if isinstance(out, (tuple, list)) else out

    def _record(self, x: torch.Tensor):
        """`rnnvis.record` of ids (B, T) called as the spec says: (batch-major logits, Recording)."""
        from ..recording import record

        if self.call is None:
            out, rec = record(self.module, x)
            return (out[0] if isinstance(out, (tuple, list)) else out), rec
        args, kwargs = self.call.args(self.module, x)
        try:
            out, rec = record(self.module, *args, **kwargs)
        except RnnvisError as e:  # the model's own exception, wrapped by record: say which call
            if e.__cause__ is not None and not isinstance(e.__cause__, RnnvisError):
                raise self.call.user_error(e.__cause__, args, kwargs) from e.__cause__
            raise
        return self.call.logits(out, *x.shape), rec

    def run_text(self, text: str):
        """tokens, `rnnvis.record` Recording of every stream (batch 1), outputs {loss: [t]|None, logits}."""
        tokens, ids = self.encode(text)
        x = torch.tensor([ids], dtype=torch.long)
        with self.lock, torch.no_grad():
            logits, rec = self._record(x)
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
            with self.lock, torch.no_grad():
                _, rec = self._record(torch.zeros((1, 2), dtype=torch.long) + min(4, len(self.itos) - 1))
            self._streams["all"] = {n: int(rec[n].shape[-1]) for n in rec.streams}
        return self._streams["all"]
