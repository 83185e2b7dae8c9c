"""Word- and character-level tokenizers with a frequency-sorted vocabulary.

Special symbols come first and have fixed ids: <pad>=0, <unk>=1, <eos>=2 (word
level and character level alike), so padding is always id 0. The vocabulary is
saved with every model as JSON.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from ..errors import RnnvisError
from .corpus import Document

PAD, UNK, EOS = "<pad>", "<unk>", "<eos>"
SPECIALS = (PAD, UNK, EOS)
PAD_ID, UNK_ID, EOS_ID = 0, 1, 2

# Words, numbers and single punctuation marks; keeps contractions like "don't" whole.
_WORD_RE = re.compile(r"[\w]+(?:['’][\w]+)*|[^\w\s]", re.UNICODE)


@dataclass
class Vocab:
    """itos[i] is the symbol with id i; ids >= 3 are sorted by falling training count."""

    itos: list[str]
    counts: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if tuple(self.itos[:3]) != SPECIALS:
            raise RnnvisError("a vocabulary must start with <pad>, <unk>, <eos>",
                              "rebuild it with rnnvis's tokenizer")
        self.stoi = {s: i for i, s in enumerate(self.itos)}
        if not self.counts:
            self.counts = [0] * len(self.itos)

    def __len__(self) -> int:
        return len(self.itos)

    def id(self, symbol: str) -> int:
        return self.stoi.get(symbol, UNK_ID)

    def to_json(self) -> dict:
        return {"itos": self.itos, "counts": self.counts}

    @classmethod
    def from_json(cls, obj: dict) -> "Vocab":
        return cls(list(obj["itos"]), list(obj.get("counts", [])))

    @classmethod
    def build(cls, counter: Counter, max_size: int | None = None, min_count: int = 1) -> "Vocab":
        items = [(s, c) for s, c in counter.items() if c >= min_count and s not in SPECIALS]
        items.sort(key=lambda sc: (-sc[1], sc[0]))  # by count, ties alphabetical: deterministic
        if max_size is not None:
            items = items[: max(0, max_size - len(SPECIALS))]
        return cls(list(SPECIALS) + [s for s, _ in items], [0, 0, 0] + [c for _, c in items])


class Tokenizer:
    """Base: `fit` on training documents, then `encode` any document or text."""

    level: str = "word"

    def __init__(self, vocab: Vocab | None = None):
        self.vocab = vocab

    # subclasses define split_doc / split_text / join
    def split_doc(self, doc: Document) -> list[str]:
        raise NotImplementedError

    def split_text(self, text: str) -> list[str]:
        raise NotImplementedError

    def fit(self, docs: Iterable[Document]) -> "Tokenizer":
        counter: Counter = Counter()
        for d in docs:
            counter.update(self.split_doc(d))
        if not counter:
            raise RnnvisError("cannot build a vocabulary from an empty training split",
                              "check the corpus has text in its training documents")
        self.vocab = self._build_vocab(counter)
        return self

    def _build_vocab(self, counter: Counter) -> Vocab:
        return Vocab.build(counter)

    def _require_vocab(self) -> Vocab:
        if self.vocab is None:
            raise RnnvisError("the tokenizer has no vocabulary yet", "call fit() on the training documents")
        return self.vocab

    def encode_symbols(self, symbols: Sequence[str]) -> list[int]:
        vocab = self._require_vocab()
        return [vocab.stoi.get(s, UNK_ID) for s in symbols]

    def encode_doc(self, doc: Document, add_eos: bool = True) -> list[int]:
        ids = self.encode_symbols(self.split_doc(doc))
        return ids + [EOS_ID] if add_eos else ids

    def encode_text(self, text: str, add_eos: bool = False) -> list[int]:
        ids = self.encode_symbols(self.split_text(text))
        return ids + [EOS_ID] if add_eos else ids

    def decode(self, ids: Iterable[int]) -> list[str]:
        vocab = self._require_vocab()
        return [vocab.itos[i] if 0 <= i < len(vocab) else UNK for i in ids]

    def to_json(self) -> dict:
        return {"level": self.level, "options": self.options(), "vocab": self._require_vocab().to_json()}

    def options(self) -> dict:
        return {}


class WordTokenizer(Tokenizer):
    """Words: the corpus's own tokens where it has them, else a regex split of the text."""

    level = "word"

    def __init__(self, lower: bool = True, max_size: int | None = 10000, min_count: int = 1,
                 vocab: Vocab | None = None):
        super().__init__(vocab)
        if max_size is not None and max_size < 4:
            raise RnnvisError(f"vocabulary size {max_size} is too small", "use at least 4 (3 special symbols + 1 word)")
        if min_count < 1:
            raise RnnvisError(f"minimum count {min_count} must be at least 1", "use --min-count 1 or more")
        self.lower, self.max_size, self.min_count = lower, max_size, min_count

    def _norm(self, words: Iterable[str]) -> list[str]:
        return [w.lower() for w in words] if self.lower else list(words)

    def split_doc(self, doc: Document) -> list[str]:
        if doc.tokens is not None:
            return self._norm(doc.tokens)
        return self.split_text(doc.text or "")

    def split_text(self, text: str) -> list[str]:
        return self._norm(_WORD_RE.findall(text))

    def _build_vocab(self, counter: Counter) -> Vocab:
        return Vocab.build(counter, self.max_size, self.min_count)

    def options(self) -> dict:
        return {"lower": self.lower, "max_size": self.max_size, "min_count": self.min_count}


class CharTokenizer(Tokenizer):
    """Characters of the raw text; rare characters (below min_count) map to <unk>."""

    level = "char"

    def __init__(self, min_count: int = 1, max_size: int | None = None, vocab: Vocab | None = None):
        super().__init__(vocab)
        self.min_count, self.max_size = min_count, max_size

    def split_doc(self, doc: Document) -> list[str]:
        return list(doc.chars())

    def split_text(self, text: str) -> list[str]:
        return list(text)

    def _build_vocab(self, counter: Counter) -> Vocab:
        return Vocab.build(counter, self.max_size, self.min_count)

    def options(self) -> dict:
        return {"min_count": self.min_count, "max_size": self.max_size}


def make_tokenizer(level: str, **options) -> Tokenizer:
    if level == "word":
        return WordTokenizer(**options)
    if level == "char":
        return CharTokenizer(**{k: v for k, v in options.items() if k in ("min_count", "max_size")})
    raise RnnvisError(f"unknown tokenizer level {level!r}", "use 'word' or 'char'")


def tokenizer_from_json(obj: dict) -> Tokenizer:
    tok = make_tokenizer(obj["level"], **obj.get("options", {}))
    tok.vocab = Vocab.from_json(obj["vocab"])
    return tok


def save_tokenizer(tok: Tokenizer, path) -> None:
    from ..fsutil import atomic_write_text

    atomic_write_text(path, json.dumps(tok.to_json(), ensure_ascii=False))
