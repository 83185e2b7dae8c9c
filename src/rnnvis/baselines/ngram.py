"""An interpolated modified Kneser–Ney n-gram language model over token ids, counted with numpy.

Why: a user judging an RNN language model needs to know what a count-based model
gets on the same split, with the same vocabulary (<unk> and <eos> included) and
the same document boundaries (the context is reset at each document start).

How: every document is preceded by N-1 copies of a start symbol (id 0, <pad>,
which is never predicted). An n-gram ending at position i gets a dense rank:
rank_k[i] = index of (rank_{k-1}[i-1] * V + token[i]) among the unique keys of
order k, so keys stay below (#unique (k-1)-grams) * V and never overflow int64,
whatever the order. Counting is `np.unique` and `np.bincount`; look-ups are
`np.searchsorted`. There is no Python loop over tokens.

Smoothing (Chen & Goodman 1999, KenLM's adjusted counts): the highest order uses
raw counts, lower orders use continuation counts (number of distinct left
extensions) except for n-grams starting with the start symbol, which keep raw
counts; three discounts D1, D2, D3+ per order from counts-of-counts (or one fixed
discount: plain interpolated KN); the unigram level interpolates with the uniform
distribution over the V-1 predictable symbols.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from ..errors import RnnvisError

BOS = 0  # the <pad> id doubles as the start-of-document context symbol


@dataclass
class _Order:
    keys: np.ndarray       # (U_k,) sorted unique keys (prefix_rank * V + token); order 1: arange(V)
    adjusted: np.ndarray   # (U_k,) adjusted counts a_k (0 for n-grams seen only inside the padding)
    total: np.ndarray      # (U_{k-1},) sum of a_k per context
    gamma: np.ndarray      # (U_{k-1},) D1*N1 + D2*N2 + D3*N3+ per context (the back-off mass, unnormalised)
    discounts: np.ndarray  # (4,) discount for adjusted count 0, 1, 2, 3+


def _stream(seqs: Iterable[Sequence[int]], order: int) -> tuple[np.ndarray, np.ndarray]:
    """Documents joined with N-1 start symbols before each. → (tokens,), (predicted mask,)"""
    arrays = [np.asarray(s, dtype=np.int64) for s in seqs]
    pad = order - 1
    lengths = np.array([len(a) + pad for a in arrays], dtype=np.int64)
    tokens = np.zeros(int(lengths.sum()), dtype=np.int64)
    mask = np.ones(len(tokens), dtype=bool)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(arrays) else np.zeros(0, dtype=np.int64)
    for s, a in zip(starts, arrays):
        tokens[s + pad: s + pad + len(a)] = a
        mask[s: s + pad] = False
    return tokens, mask


def _shift(x: np.ndarray, fill: int) -> np.ndarray:
    """x shifted one step right along the last axis: out[..., i] = x[..., i-1]."""
    out = np.empty_like(x)
    out[..., 1:] = x[..., :-1]
    out[..., 0] = fill
    return out


def _discounts(adjusted: np.ndarray, fixed: float | None) -> np.ndarray:
    if fixed is not None:
        return np.array([0.0, fixed, fixed, fixed])
    n = [int(np.count_nonzero(adjusted == c)) for c in (1, 2, 3, 4)]
    if min(n) == 0:  # too few counts to estimate three discounts: plain KN with the usual Y
        y = n[0] / (n[0] + 2 * n[1]) if n[0] + n[1] > 0 else 0.5
        d = min(max(y, 0.1), 0.9)
        return np.array([0.0, d, d, d])
    y = n[0] / (n[0] + 2 * n[1])
    d = [1 - 2 * y * n[1] / n[0], 2 - 3 * y * n[2] / n[1], 3 - 4 * y * n[3] / n[2]]
    d = [min(max(v, 0.0), float(c)) for v, c in zip(d, (1, 2, 3))]
    return np.array([0.0, *d])


class KneserNeyLM:
    """Interpolated (modified) Kneser–Ney LM of order N over ids 0..V-1 (id 0 is never predicted)."""

    def __init__(self, vocab_size: int, order: int = 3, discount: float | None = None):
        if order < 1 or order > 12:
            raise RnnvisError(f"n-gram order {order} is out of range", "use an order from 1 to 12")
        if vocab_size < 2:
            raise RnnvisError(f"vocabulary size {vocab_size} is too small for an n-gram model", "use a real vocabulary")
        if discount is not None and not 0 < discount < 1:
            raise RnnvisError(f"discount {discount} must be in (0, 1)", "use e.g. 0.75 or None (modified KN)")
        self.V, self.order, self.fixed_discount = int(vocab_size), int(order), discount
        self.orders: list[_Order] = []

    # -- fitting ----------------------------------------------------------------------
    def fit(self, seqs: Iterable[Sequence[int]]) -> "KneserNeyLM":
        """Count n-grams of the documents `seqs` (lists of ids, each ending with <eos>)."""
        V, N = self.V, self.order
        tokens, mask = _stream(seqs, N)
        if not mask.any():
            raise RnnvisError("cannot fit an n-gram model on an empty training split", "add training documents")
        if tokens.max() >= V or tokens.min() < 0:
            raise RnnvisError("token ids fall outside the vocabulary", "encode with the tokenizer the model was built for")
        # ranks[k] for k = 1..N, kept two at a time; order 1 rank = token id
        keys = [np.arange(V, dtype=np.int64)]
        rank = tokens
        ranks = [rank]
        for k in range(2, N + 1):
            key = _shift(ranks[-1], 0) * V + tokens
            uniq, inv = np.unique(key, return_inverse=True)
            keys.append(uniq)
            ranks.append(inv.reshape(-1).astype(np.int64))
        self.orders = []
        sizes = [1] + [len(k) for k in keys]  # U_0 = 1 (the empty context)
        for k in range(1, N + 1):
            r = ranks[k - 1][mask]
            raw = np.bincount(r, minlength=sizes[k]).astype(np.float64)
            if k == N:
                adjusted = raw
            else:
                up = ranks[k][mask]                            # (k+1)-grams at predicted positions
                suffix = np.zeros(sizes[k + 1], dtype=np.int64)
                suffix[up] = r                                 # each (k+1)-gram's suffix k-gram
                present = np.bincount(up, minlength=sizes[k + 1]) > 0
                cont = np.bincount(suffix[present], minlength=sizes[k]).astype(np.float64)
                first = tokens[np.flatnonzero(mask) - (k - 1)]  # first token of each k-gram
                starts_bos = np.zeros(sizes[k], dtype=bool)
                starts_bos[r] = first == BOS
                adjusted = np.where(starts_bos, raw, cont)
            disc = _discounts(adjusted[adjusted > 0], self.fixed_discount)
            ctx = keys[k - 1] // V if k > 1 else np.zeros(V, dtype=np.int64)
            seen = adjusted > 0
            d_of = disc[np.minimum(adjusted, 3).astype(np.int64)]
            total = np.bincount(ctx[seen], weights=adjusted[seen], minlength=sizes[k - 1])
            gamma = np.bincount(ctx[seen], weights=d_of[seen], minlength=sizes[k - 1])
            self.orders.append(_Order(keys[k - 1], adjusted, total, gamma, disc))
        return self

    # -- scoring ----------------------------------------------------------------------
    def _ranks(self, tokens: np.ndarray) -> list[np.ndarray]:
        """Training ranks of the k-grams ending at each position (-1 when unseen). tokens (..., time)."""
        out = [tokens]
        for k in range(2, self.order + 1):
            prev = _shift(out[-1], -1)
            keys = self.orders[k - 1].keys
            key = np.where(prev >= 0, prev * self.V + tokens, -1)
            pos = np.minimum(np.searchsorted(keys, key), len(keys) - 1)
            out.append(np.where((prev >= 0) & (keys[pos] == key), pos, -1))
        return out

    def _probs(self, tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """P(token | its n-1 predecessors) at the masked positions."""
        if not self.orders:
            raise RnnvisError("the n-gram model is not fitted", "call fit() on the training documents")
        ranks = self._ranks(tokens)
        p = np.full(int(mask.sum()), 1.0 / (self.V - 1))
        for k in range(1, self.order + 1):
            o = self.orders[k - 1]
            g = ranks[k - 1][mask]
            h = _shift(ranks[k - 2], -1)[mask] if k > 1 else np.zeros_like(g)
            a = np.where(g >= 0, o.adjusted[np.maximum(g, 0)], 0.0)
            d = o.discounts[np.minimum(a, 3).astype(np.int64)]
            hs = np.maximum(h, 0)
            total = np.where(h >= 0, o.total[hs], 0.0)
            gamma = o.gamma[hs]
            has = total > 0
            p = np.where(has, (np.maximum(a - d, 0.0) + gamma * p) / np.where(has, total, 1.0), p)
        return p

    def log_probs(self, seqs: Iterable[Sequence[int]]) -> np.ndarray:
        """Natural-log probability of every token (and <eos>) of every document, in order."""
        tokens, mask = _stream(seqs, self.order)
        tokens = np.where(tokens < self.V, tokens, 1)  # ids outside the vocabulary → <unk>
        return np.log(self._probs(tokens, mask))

    def distribution(self, context: Sequence[int]) -> np.ndarray:
        """P(w | context) for every id w (context: the ids since the document start). → (V,)"""
        ctx = [BOS] * (self.order - 1) + list(context)
        ctx = ctx[len(ctx) - (self.order - 1):] if self.order > 1 else []
        rows = np.tile(np.asarray(ctx + [0], dtype=np.int64), (self.V, 1))  # (V, order)
        rows[:, -1] = np.arange(self.V)
        mask = np.zeros_like(rows, dtype=bool)
        mask[1:, -1] = True  # id 0 is never predicted
        out = np.zeros(self.V)
        out[1:] = self._probs(rows, mask)
        return out

    def evaluate(self, seqs: Iterable[Sequence[int]], level: str = "word") -> dict:
        """loss (nats per token), ppl, tokens and — for characters — bpc on the documents `seqs`."""
        lp = self.log_probs(list(seqs))
        loss = float(-lp.mean()) if len(lp) else float("nan")
        out = {"loss": loss, "ppl": math.exp(min(loss, 700.0)) if len(lp) else float("nan"), "tokens": int(len(lp))}
        if level == "char":
            out["bpc"] = loss / math.log(2)
        return out


__all__ = ["KneserNeyLM"]
