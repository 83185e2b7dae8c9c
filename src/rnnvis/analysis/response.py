"""Expected response of units to words (RNNVis, Ming et al. 2017).

The expected response of unit j of a stream s to word w is s_j(w) = E[Δs_j | x_t = w], the mean
change of the unit when the model reads w, with Δs_t = s_t - s_{t-1} (the first step of a
sequence is taken against the zero initial state, as the recorder does). It works for any
stream (h, c, a gate).

Two sources give the same result:
- the recorder's streaming statistics (count (vocab,), mean and variance (vocab, units) of Δ),
  passed to `expected_response` as plain arrays;
- per-token arrays (tokens, units) with token ids and sequence boundaries, passed to
  `expected_response_from_tokens`, which also computes the spread of the response per word ×
  unit (interquartile and 9-91 % ranges) that streaming means cannot give.

Unlike RNNVis we keep the full vocabulary (filtered by a minimum count) and both signs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from rnnvis.errors import RnnvisError

#: Quantile levels stored by `ExpectedResponse.quantiles` (first axis).
QUANTILE_LEVELS = (0.09, 0.25, 0.75, 0.91)


def sequence_starts(doc_ids: np.ndarray, positions: np.ndarray | None = None) -> np.ndarray:
    """(tokens,) bool: True where a token has no previous step (new document or a gap in positions)."""
    doc_ids = np.asarray(doc_ids)
    starts = np.ones(doc_ids.shape[0], dtype=bool)
    if doc_ids.shape[0] > 1:
        cont = doc_ids[1:] == doc_ids[:-1]
        if positions is not None:
            positions = np.asarray(positions)
            cont &= positions[1:] == positions[:-1] + 1
        starts[1:] = ~cont
    return starts


def token_deltas(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """(tokens, units) Δ_t = s_t - s_{t-1}, with s_{t-1} = 0 where `starts` is True."""
    values = np.asarray(values, dtype=np.float64)
    prev = np.zeros_like(values)
    prev[1:] = values[:-1]
    prev[np.asarray(starts, dtype=bool)] = 0.0
    return values - prev


def word_unit_stats(values: np.ndarray, token_ids: np.ndarray, vocab_size: int | None = None):
    """Per word × unit count (vocab,), mean and population variance (vocab, units) of `values`.

    One stable sort by token id and `np.add.reduceat`; words never seen get count 0 and NaN.
    """
    values = np.asarray(values, dtype=np.float64)  # (tokens, units)
    token_ids = np.asarray(token_ids, dtype=np.int64)  # (tokens,)
    if values.ndim != 2 or token_ids.shape != (values.shape[0],):
        raise RnnvisError(f"values {values.shape} and token_ids {token_ids.shape} do not match",
                          "pass values as (tokens, units) and token_ids as (tokens,)")
    vocab = int(token_ids.max(initial=-1)) + 1 if vocab_size is None else int(vocab_size)
    counts = np.bincount(token_ids, minlength=vocab).astype(np.int64)  # (vocab,)
    mean = np.full((vocab, values.shape[1]), np.nan)
    var = np.full((vocab, values.shape[1]), np.nan)
    if values.shape[0] == 0:
        return counts, mean, var
    order = np.argsort(token_ids, kind="stable")
    sv = values[order]  # (tokens, units) grouped by word
    present = np.flatnonzero(counts)
    starts = np.concatenate([[0], np.cumsum(counts[present])[:-1]])
    n = counts[present][:, None].astype(np.float64)
    m = np.add.reduceat(sv, starts, axis=0) / n
    dev = sv - np.repeat(m, counts[present], axis=0)
    mean[present] = m
    var[present] = np.add.reduceat(dev * dev, starts, axis=0) / n
    return counts, mean, var


def grouped_quantiles(values: np.ndarray, groups: np.ndarray, levels: Sequence[float],
                      block: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Quantiles of each column within each group, all at once (numpy's 'linear' method).

    values (tokens, units), groups (tokens,) ints. Returns (group ids (g,), quantiles (levels, g, units)).
    Rows are sorted by (group, value) with vectorised argsorts, `block` columns at a time to bound
    memory; there is no Python loop over groups.
    """
    values = np.asarray(values, dtype=np.float64)
    groups = np.asarray(groups, dtype=np.int64)
    uniq, inv, counts = np.unique(groups, return_inverse=True, return_counts=True)
    n, units = values.shape
    first = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)  # (g,)
    pos = np.asarray(levels, dtype=np.float64)[:, None] * (counts - 1)  # (levels, g)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, counts - 1)
    frac = (pos - lo)[:, :, None]  # (levels, g, 1)
    out = np.empty((len(levels), uniq.shape[0], units))
    for c0 in range(0, units, block):
        v = values[:, c0:c0 + block]  # (tokens, b)
        rank = np.empty(v.shape, dtype=np.int64)  # rank of each value within its column
        np.put_along_axis(rank, np.argsort(v, axis=0, kind="stable"), np.arange(n)[:, None], axis=0)
        sv = np.take_along_axis(v, np.argsort(inv[:, None] * n + rank, axis=0), axis=0)  # sorted within groups
        a, b = sv[first[None, :] + lo], sv[first[None, :] + hi]  # (levels, g, b)
        out[:, :, c0:c0 + block] = a + frac * (b - a)
    return uniq, out


def top_k_words(mean: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per unit, indices of the k most positive and the k most negative rows of mean (words, units).

    Returns (positive (units, k), negative (units, k)), best first; NaN rows are never chosen first.
    """
    k = min(int(k), mean.shape[0])
    hi = np.where(np.isnan(mean), -np.inf, mean)
    lo = np.where(np.isnan(mean), np.inf, mean)
    pos = np.argsort(-hi, axis=0, kind="stable")[:k].T
    neg = np.argsort(lo, axis=0, kind="stable")[:k].T
    return pos, neg


@dataclass(frozen=True)
class TopWords:
    """The words one unit responds to most, by sign."""

    unit: int
    positive: list[tuple[str, float]]  # up to k (word, mean response > 0), strongest first
    negative: list[tuple[str, float]]  # up to k (word, mean response < 0), strongest first


@dataclass(frozen=True)
class ExpectedResponse:
    """Expected response s_j(w) = E[Δs_j | x_t = w] of every unit to every frequent word."""

    words: list[str]  # (words,) kept words, in vocabulary order
    word_ids: np.ndarray  # (words,) their vocabulary ids
    counts: np.ndarray  # (words,) occurrences
    mean: np.ndarray  # (words, units) expected response
    std: np.ndarray  # (words, units) standard deviation of Δ (population)
    min_count: int = 1
    quantiles: np.ndarray | None = None  # (4, words, units) at QUANTILE_LEVELS; NaN where not computed

    @property
    def units(self) -> int:
        return self.mean.shape[1]

    @property
    def iqr(self) -> np.ndarray | None:
        """(2, words, units) 25 % and 75 % quantiles of Δ, when per-token values were given."""
        return None if self.quantiles is None else self.quantiles[[1, 2]]

    @property
    def range_9_91(self) -> np.ndarray | None:
        """(2, words, units) 9 % and 91 % quantiles of Δ, when per-token values were given."""
        return None if self.quantiles is None else self.quantiles[[0, 3]]

    def index(self, word: str | int) -> int:
        """Row of a word (by string, or by vocabulary id when an int)."""
        if isinstance(word, (int, np.integer)):
            hit = np.flatnonzero(self.word_ids == int(word))
        else:
            hit = [i for i, w in enumerate(self.words) if w == word][:1]
        if len(hit) == 0:
            raise RnnvisError(f"word {word!r} is not in the expected response",
                              f"it is rarer than min_count={self.min_count} or out of the vocabulary; lower min_count")
        return int(hit[0])

    def top_words(self, unit: int, k: int = 10) -> TopWords:
        """The k words with the most positive and the k with the most negative response of `unit`."""
        if not 0 <= unit < self.units:
            raise RnnvisError(f"unit {unit} out of range", f"choose a unit in 0..{self.units - 1}")
        col = self.mean[:, unit:unit + 1]
        pos, neg = top_k_words(col, k)
        return TopWords(unit,
                        [(self.words[i], float(col[i, 0])) for i in pos[0] if col[i, 0] > 0],
                        [(self.words[i], float(col[i, 0])) for i in neg[0] if col[i, 0] < 0])

    def profile(self, word: str | int) -> np.ndarray:
        """(units,) the response of every unit to one word."""
        return self.mean[self.index(word)]


def _filter(counts: np.ndarray, min_count: int, words: Sequence[str] | None, itos: Sequence[str]) -> np.ndarray:
    """Vocabulary ids kept: count ≥ min_count, restricted to `words` when given."""
    keep = counts >= max(int(min_count), 1)
    if words is not None:
        stoi = {w: i for i, w in enumerate(itos)}
        missing = [w for w in words if w not in stoi]
        if missing:
            raise RnnvisError(f"words not in the vocabulary: {missing[:5]}", "check spelling and tokenizer")
        sel = np.zeros_like(keep)
        sel[[stoi[w] for w in words]] = True
        keep &= sel
    return np.flatnonzero(keep)


def expected_response(delta_mean: np.ndarray, delta_var: np.ndarray, counts: np.ndarray,
                      itos: Sequence[str], min_count: int = 5,
                      words: Sequence[str] | None = None) -> ExpectedResponse:
    """Expected response from per-word statistics of Δ (e.g. the recorder's streaming ones).

    delta_mean, delta_var (vocab, units); counts (vocab,); itos (vocab,) id -> word.
    Keeps every word seen at least `min_count` times (optionally only `words`).
    """
    delta_mean = np.asarray(delta_mean, dtype=np.float64)
    delta_var = np.asarray(delta_var, dtype=np.float64)
    counts = np.asarray(counts).astype(np.int64)
    if delta_mean.ndim != 2 or delta_var.shape != delta_mean.shape or counts.shape != (delta_mean.shape[0],):
        raise RnnvisError(f"shapes do not agree: mean {delta_mean.shape}, var {delta_var.shape}, counts {counts.shape}",
                          "pass mean and var as (vocab, units) and counts as (vocab,)")
    if len(itos) != counts.shape[0]:
        raise RnnvisError(f"itos has {len(itos)} words but the statistics have {counts.shape[0]}",
                          "pass the vocabulary the recording was made with")
    ids = _filter(counts, min_count, words, itos)
    return ExpectedResponse(words=[itos[i] for i in ids], word_ids=ids, counts=counts[ids],
                            mean=delta_mean[ids], std=np.sqrt(np.maximum(delta_var[ids], 0.0)),
                            min_count=int(min_count))


def expected_response_from_tokens(values: np.ndarray, token_ids: np.ndarray, doc_ids: np.ndarray,
                                  itos: Sequence[str], positions: np.ndarray | None = None,
                                  min_count: int = 5, words: Sequence[str] | None = None,
                                  quantile_words: Sequence[str] | None = None,
                                  quantile_units: Sequence[int] | None = None,
                                  quantiles: bool = True, starts: np.ndarray | None = None) -> ExpectedResponse:
    """Expected response from per-token values (tokens, units) of one stream, with spreads.

    Δ is taken within each document (and contiguous positions, when given); pass `starts`
    (tokens,) bool to mark where the state restarted instead (e.g. the recorder's window starts,
    where Δ is taken against the zero state although positions continue). Quantiles of Δ per
    word × unit are computed for all kept words and units, or only for `quantile_words` /
    `quantile_units` (NaN elsewhere) to bound the cost on large recordings.
    """
    values = np.asarray(values, dtype=np.float64)
    token_ids = np.asarray(token_ids, dtype=np.int64)
    if values.ndim != 2 or token_ids.shape != (values.shape[0],) or np.shape(doc_ids) != token_ids.shape:
        raise RnnvisError(f"per-token arrays do not agree: values {values.shape}, token_ids {token_ids.shape}, "
                          f"doc_ids {np.shape(doc_ids)}", "pass values (tokens, units), token_ids and doc_ids (tokens,)")
    if token_ids.size and (token_ids.min() < 0 or token_ids.max() >= len(itos)):
        raise RnnvisError("token ids fall outside the vocabulary", "pass the itos the tokens were encoded with")
    if starts is None:
        starts = sequence_starts(doc_ids, positions)
    elif np.shape(starts) != token_ids.shape:
        raise RnnvisError(f"starts has shape {np.shape(starts)} for {token_ids.shape[0]} tokens",
                          "pass one bool per token, True where the state restarts")
    delta = token_deltas(values, starts)  # (tokens, units)
    counts, mean, var = word_unit_stats(delta, token_ids, len(itos))
    res = expected_response(mean, var, counts, itos, min_count, words)
    if not quantiles:
        return res
    q = np.full((len(QUANTILE_LEVELS),) + res.mean.shape, np.nan)  # (4, words, units)
    rows = np.arange(len(res.words)) if quantile_words is None else np.array(
        [res.index(w) for w in quantile_words], dtype=np.int64)
    cols = np.arange(res.units) if quantile_units is None else np.asarray(quantile_units, dtype=np.int64)
    if rows.size and cols.size:
        lookup = np.full(len(itos), -1, dtype=np.int64)
        lookup[res.word_ids[rows]] = rows
        tok_rows = lookup[token_ids]  # (tokens,) row in the result or -1
        sel = tok_rows >= 0
        gids, gq = grouped_quantiles(delta[sel][:, cols], tok_rows[sel], QUANTILE_LEVELS)
        q[:, gids[:, None], cols[None, :]] = gq
    return ExpectedResponse(res.words, res.word_ids, res.counts, res.mean, res.std, res.min_count, q)
