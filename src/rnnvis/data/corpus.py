"""Corpora with explicit document boundaries, labels and token annotations, and their splits."""
from __future__ import annotations

import hashlib
import json
import math
import numbers
import random
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..errors import RnnvisError

SPLITS = ("train", "valid", "test")


@dataclass
class Document:
    """One document: the unit of splitting and the boundary a state never crosses.

    id:     stable within its corpus (file name, line number, CSV row ...)
    text:   raw text; character-level models read this
    tokens: words when the corpus comes tokenized (Brown); word-level models prefer these
    label:  class index or real-valued rating for classification corpora, else None
    meta:   extras, e.g. {"pos": [tag per token], "genre": "news", "rating": 1.7}
    """

    id: str
    text: str | None = None
    tokens: list[str] | None = None
    label: int | float | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def words(self) -> list[str]:
        if self.tokens is not None:
            return self.tokens
        return (self.text or "").split()

    def chars(self) -> str:
        if self.text is not None:
            return self.text
        return " ".join(self.tokens or [])


@dataclass
class Corpus:
    """A named list of documents plus what a user needs to judge it.

    level: the natural tokenization, "word" or "char"
    task:  "lm" (language modelling) or "classify"
    label_names: class names when task == "classify"
    info:  provenance, licence, source package, sha256 of the fetched archive
    """

    name: str
    documents: list[Document]
    level: str = "word"
    task: str = "lm"
    label_names: list[str] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.documents:
            raise RnnvisError(
                f"the corpus {self.name!r} has no documents",
                "check the file is not empty and the right column / format was chosen",
            )
        if self.task == "classify" and any(d.label is None for d in self.documents):
            raise RnnvisError(
                f"the corpus {self.name!r} is for classification but some documents have no label",
                "give a label column (--label-column) or drop unlabelled rows",
            )

    def __len__(self) -> int:
        return len(self.documents)

    def fingerprint(self) -> str:
        """Content hash of the documents and labels: part of every cache key."""
        h = hashlib.sha256()
        for d in self.documents:
            h.update(json.dumps([d.id, d.text, d.tokens, d.label], ensure_ascii=False).encode())
        return h.hexdigest()[:16]

    def split(self, seed: int = 0, fractions: Sequence[float] = (0.8, 0.1, 0.1)) -> "Splits":
        return make_splits(self, seed=seed, fractions=fractions)

    def subset(self, indices: Sequence[int]) -> list[Document]:
        return [self.documents[i] for i in indices]


@dataclass(frozen=True)
class Splits:
    """Document indices per split; deterministic in (corpus fingerprint, seed, fractions)."""

    seed: int
    fractions: tuple[float, float, float]
    indices: dict[str, list[int]]

    def __getitem__(self, split: str) -> list[int]:
        if split not in self.indices:
            raise RnnvisError(f"unknown split {split!r}", f"choose one of {', '.join(SPLITS)}")
        return self.indices[split]

    def to_json(self) -> dict:
        return {"seed": self.seed, "fractions": list(self.fractions), "indices": self.indices}

    @classmethod
    def from_json(cls, obj: dict) -> "Splits":
        return cls(int(obj["seed"]), tuple(obj["fractions"]), {k: list(v) for k, v in obj["indices"].items()})


def check_split_fractions(fractions: Any) -> tuple[float, float, float]:
    """The (train, valid, test) fractions as floats, or a RnnvisError: three finite numbers in [0, 1] that
    sum to 1 (NaN would pass a plain `< 0` test and split on nonsense)."""
    ok = (isinstance(fractions, (list, tuple)) and len(fractions) == 3
          and all(isinstance(f, numbers.Real) and not isinstance(f, bool) and math.isfinite(f) and 0 <= f <= 1
                  for f in fractions))
    if not ok or abs(sum(fractions) - 1) > 1e-6:
        shown = list(fractions) if isinstance(fractions, (list, tuple)) else fractions
        raise RnnvisError(f"split_fractions={shown!r} is not valid: it must be three finite numbers in [0, 1] "
                          "(train, valid, test) summing to 1", "for example 0.8,0.1,0.1")
    return tuple(float(f) for f in fractions)


def make_splits(corpus: Corpus, seed: int = 0, fractions: Sequence[float] = (0.8, 0.1, 0.1)) -> Splits:
    """Shuffle documents with `seed` and cut into train/valid/test by `fractions`.

    A corpus whose info carries `fixed_splits` ({split: [doc index]}) keeps them.
    Every split gets at least one document when the corpus has three or more.
    """
    check_split_fractions(fractions)
    fixed = corpus.info.get("fixed_splits")
    if fixed:
        return Splits(seed, tuple(fractions), {k: list(fixed[k]) for k in SPLITS})
    n = len(corpus)
    order = list(range(n))
    random.Random(seed).shuffle(order)
    n_valid = int(round(fractions[1] * n))
    n_test = int(round(fractions[2] * n))
    if n >= 3:
        n_valid = max(n_valid, 1 if fractions[1] > 0 else 0)
        n_test = max(n_test, 1 if fractions[2] > 0 else 0)
    n_train = n - n_valid - n_test
    if n_train <= 0:
        raise RnnvisError(f"the corpus {corpus.name!r} has only {n} documents: too few to split",
                          "add documents, or split a text file per line (--per-line)")
    return Splits(seed, tuple(fractions), {
        "train": sorted(order[:n_train]),
        "valid": sorted(order[n_train:n_train + n_valid]),
        "test": sorted(order[n_train + n_valid:]),
    })
