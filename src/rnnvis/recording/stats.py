"""Streaming, mergeable statistics folded while recording (no second pass over the corpus).

- `WordUnitStats`: per word (token id, full vocabulary) x unit: count, mean and M2 (sum of
  squared deviations), updated batch by batch and merged with Chan et al.'s parallel formula.
  Used for a stream's value and for its change Δ_t = s_t - s_{t-1}.
- `UnitStats`: per unit: count, mean, M2, min, max, saturation counts (values below the low
  threshold and > 0.9; the low threshold is 0.1, or -0.9 for tanh-ranged gates g and n, see
  `saturation_low`) and a fixed-edge histogram used as a quantile sketch. Corpus recording
  counts saturation exactly for gates and reads it off the histogram for other streams
  (engine.Folder).

Everything is a torch tensor on the recording device (statistics stay on the GPU), updated with
vectorised scatters (`index_add_`, `bincount`), never `np.add.at`. Variances are population
variances (M2 / count), NaN where a word never occurred.

Quantile sketch accuracy: each unit has `bins` equal bins over [lo, hi] plus an underflow and an
overflow bin. Gates use their known range ([0, 1] for sigmoid gates, [-1, 1] for tanh
candidates); other streams learn [lo, hi] from the first batch widened by half its span on each
side. A quantile whose rank falls inside [lo, hi] is exact to within one bin width
(hi - lo) / bins (linear interpolation inside the bin); one in the underflow/overflow tail is
reported as the unit's min / max. Shards can only be merged when their edges agree: pass the
same `lo`/`hi` (e.g. from the first shard) to every shard.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

SAT_LOW, SAT_HIGH = 0.1, 0.9


def _chan(na: Tensor, mean_a: Tensor, m2_a: Tensor, nb: Tensor, mean_b: Tensor, m2_b: Tensor):
    """Chan's parallel merge of (count, mean, M2); counts broadcast against the means."""
    n = na + nb
    safe = torch.where(n > 0, n, torch.ones_like(n))
    delta = mean_b - mean_a
    mean = mean_a + delta * (nb / safe)
    m2 = m2_a + m2_b + delta * delta * (na * nb / safe)
    return mean, m2


class WordUnitStats:
    """Per word x unit count, mean, M2 of one quantity. count: (vocab,); mean, m2: (vocab, units).

    Updates are cheap scatters: each batch adds the shifted values x - K and their squares
    (K: per-unit shift, the first batch's unit means, against cancellation) into block sums
    with `index_add_` (float32, or float64 for float64 statistics). Every `flush_tokens` tokens
    (and before any read) the block is folded into (count, mean, M2) with Chan's merge; the
    first flush simply turns the block into the state. Block sums hold at most `flush_tokens`
    values per word; float32 recursive summation then keeps about 1e-5 relative accuracy
    (sqrt(n) * eps typical), plenty for visual analysis; use float64 for more.
    """

    def __init__(self, count: Tensor, mean: Tensor | None, m2: Tensor | None, flush_tokens: int = 1 << 20,
                 units: int | None = None, dtype=None):
        self._count = count  # (vocab,) int64
        self._mean, self._m2 = mean, m2  # (vocab, units) each; None while nothing was flushed
        self._units = mean.shape[1] if mean is not None else units
        self._dtype = mean.dtype if mean is not None else dtype
        self.flush_tokens = flush_tokens
        self._shift: Tensor | None = None  # (units,)
        self._bn: Tensor | None = None  # (vocab,) block counts
        self._b1: Tensor | None = None  # (vocab, units) block sums of x - K
        self._b2: Tensor | None = None  # (vocab, units) block sums of (x - K)^2
        self._btok = 0

    @classmethod
    def zeros(cls, vocab: int, units: int, device=None, dtype=torch.float32, flush_tokens: int = 1 << 20):
        """Empty statistics (the (vocab, units) arrays are allocated at the first batch)."""
        return cls(torch.zeros(vocab, dtype=torch.long, device=device), None, None, flush_tokens, units, dtype)

    def update(self, values: Tensor, token_ids: Tensor, inplace: bool = False, scratch: Tensor | None = None,
               counts: Tensor | None = None) -> None:
        """Fold a batch: values (n, units), token_ids (n,). inplace=True lets the update reuse
        (and overwrite) `values` as scratch space; `scratch` (n, units) is used instead when
        given; either saves an (n, units) temporary. `counts` (vocab,): the batch's occurrences
        of each id when the caller has them (shared by the streams of one batch)."""
        if values.shape[0] == 0:
            return
        if self._b1 is None:
            bdt = torch.promote_types(torch.float32, self._dtype)  # float64 stats: float64 blocks
            self._shift = values.to(bdt).mean(0)
            self._bn = torch.zeros_like(self._count)
            self._b1 = torch.zeros(self._count.shape[0], self._units, dtype=bdt, device=self._count.device)
            self._b2 = torch.zeros_like(self._b1)
        if scratch is not None and scratch.dtype == self._b1.dtype:
            xs = torch.sub(values, self._shift, out=scratch)  # (n, units)
        elif inplace and values.dtype == self._b1.dtype:
            xs = values.sub_(self._shift)
        else:
            xs = values.to(self._b1.dtype) - self._shift
        self._b1.index_add_(0, token_ids, xs)
        self._b2.index_add_(0, token_ids, xs.square_())
        if counts is None:
            self._bn.index_add_(0, token_ids, torch.ones_like(token_ids))
        else:
            self._bn += counts
        self._btok += values.shape[0]
        if self._btok >= self.flush_tokens:
            self._flush()

    def _flush(self) -> None:
        """Fold the block sums into (count, mean, M2) and drop the block."""
        if not self._btok:
            return
        nb = self._bn
        nbf = nb.to(self._b1.dtype)[:, None].clamp(min=1)
        bmean = self._b1.div_(nbf)  # in place: shifted block mean
        bm2 = self._b2.addcmul_(bmean, bmean * nbf, value=-1).clamp_(min=0)  # b2 - n * mean^2
        bmean += self._shift
        bmean.masked_fill_((nb == 0)[:, None], 0.0)
        bmean, bm2 = bmean.to(self._dtype), bm2.to(self._dtype)
        if self._mean is None:  # first flush: the block is the state
            self._mean, self._m2, self._count = bmean, bm2, self._count + nb
        else:
            dt = self._dtype
            mean, m2 = _chan(self._count.to(dt)[:, None], self._mean, self._m2, nb.to(dt)[:, None], bmean, bm2)
            self._mean, self._m2, self._count = mean, m2, self._count + nb
        self._b1 = self._b2 = self._bn = None
        self._btok = 0

    def _state(self) -> tuple[Tensor, Tensor, Tensor]:
        self._flush()
        if self._mean is None:
            z = torch.zeros(self._count.shape[0], self._units, dtype=self._dtype, device=self._count.device)
            self._mean, self._m2 = z, z.clone()
        return self._count, self._mean, self._m2

    @property
    def count(self) -> Tensor:
        return self._state()[0]

    @property
    def mean(self) -> Tensor:
        return self._state()[1]

    @property
    def m2(self) -> Tensor:
        return self._state()[2]

    def merge(self, other: "WordUnitStats") -> "WordUnitStats":
        """Statistics of the union of both shards (a new object)."""
        dt = self.mean.dtype
        na = self.count.to(dt)[:, None]
        nb = other.count.to(dt)[:, None]
        mean, m2 = _chan(na, self.mean, self.m2, nb, other.mean.to(dt), other.m2.to(dt))
        return WordUnitStats(self.count + other.count, mean, m2)

    @property
    def var(self) -> Tensor:
        """(vocab, units) population variance; NaN for words never seen."""
        n = self.count.to(self.m2.dtype)[:, None]
        return torch.where(n > 0, self.m2 / n.clamp(min=1), torch.full_like(self.m2, float("nan")))

    def columns(self, start: int, stop: int) -> "WordUnitStats":
        """The statistics of units [start, stop) (a view)."""
        return WordUnitStats(self.count, self.mean[:, start:stop], self.m2[:, start:stop])

    def totals(self) -> tuple[Tensor, Tensor, Tensor]:
        """(count (), mean (units,), M2 (units,)) over all words together."""
        n = self.count.to(self.mean.dtype)
        total = n.sum()
        mean = (n[:, None] * self.mean).sum(0) / total.clamp(min=1)
        dev = self.mean - mean
        m2 = self.m2.sum(0) + (n[:, None] * dev * dev).sum(0)
        return self.count.sum(), mean, m2


@dataclass
class UnitStats:
    """Per-unit statistics of one quantity over all tokens; every field has a leading units axis."""

    count: Tensor  # () int64
    mean: Tensor  # (units,)
    m2: Tensor  # (units,)
    min: Tensor  # (units,)
    max: Tensor  # (units,)
    below: Tensor  # (units,) int64, values < 0.1
    above: Tensor  # (units,) int64, values > 0.9
    lo: Tensor  # (units,) histogram range
    hi: Tensor  # (units,)
    hist: Tensor  # (units, bins + 2) int64: [underflow, bins..., overflow]

    @classmethod
    def zeros(cls, units: int, device=None, dtype=torch.float32, bins: int = 256,
              lo: Tensor | None = None, hi: Tensor | None = None) -> "UnitStats":
        """Empty statistics; lo/hi fix the histogram range (else learned from the first batch)."""
        z = lambda: torch.zeros(units, dtype=dtype, device=device)  # noqa: E731
        zl = lambda: torch.zeros(units, dtype=torch.long, device=device)  # noqa: E731
        nan = torch.full((units,), float("nan"), dtype=dtype, device=device)
        lo = nan.clone() if lo is None else lo.to(device=device, dtype=dtype)
        hi = nan.clone() if hi is None else hi.to(device=device, dtype=dtype)
        return cls(torch.zeros((), dtype=torch.long, device=device), z(), z(),
                   torch.full((units,), float("inf"), dtype=dtype, device=device),
                   torch.full((units,), float("-inf"), dtype=dtype, device=device),
                   zl(), zl(), lo, hi, torch.zeros(units, bins + 2, dtype=torch.long, device=device))

    @property
    def bins(self) -> int:
        return self.hist.shape[1] - 2

    def update(self, values: Tensor, moments: bool = True, saturation: bool = True, hist_stride: int = 1,
               low: float = SAT_LOW) -> None:
        """Fold a batch of values (n, units); `values` may be a strided view (a gate's columns).

        moments=False / saturation=False skip count/mean/M2 resp. the < low / > 0.9 counts, for a
        caller that derives them otherwise (corpus recording takes the moments of word streams
        from their per-word statistics, and counts saturation only for gates). hist_stride=k
        folds only every k-th row into the histogram: a systematic sample that keeps the
        quantile sketch's cost down on long corpora.

        Column sums are matrix-vector products with a ones vector (BLAS: several times faster
        than torch's column reductions on CPU), of values shifted by a per-unit constant (the
        first batch's midrange) against cancellation; counts of 0/1 masks summed in float32 are
        exact (below 2^24 rows a batch).
        """
        n = values.shape[0]
        if n == 0:
            return
        v = values if values.dtype == self.mean.dtype else values.to(self.mean.dtype)
        vt = v.t()  # reducing the transposed view was 3-5x faster than aminmax(dim=0) on CPU
        bmin, bmax = vt.amin(1), vt.amax(1)
        if torch.isnan(self.lo).any():  # first batch: learn the histogram range
            span = (bmax - bmin).clamp(min=1e-3)
            self.lo = torch.where(torch.isnan(self.lo), bmin - span / 2, self.lo)
            self.hi = torch.where(torch.isnan(self.hi), bmax + span / 2, self.hi)
        f, idx = self._scratch(v)
        ones = self._ones(n, v)
        if moments:
            shift = getattr(self, "_shift", None)
            if shift is None:
                shift = self._shift = (bmin + bmax) / 2
            acc = torch.promote_types(v.dtype, torch.float64)
            torch.sub(v, shift, out=f)
            s1 = (ones @ f).to(acc)
            s2 = (ones @ f.square_()).to(acc)
            bmean = s1 / n
            bm2 = (s2 - s1 * bmean).clamp_(min=0)
            nf = self.count.to(acc)
            nb = torch.tensor(float(n), dtype=acc, device=v.device)
            mean, m2 = _chan(nf, self.mean.to(acc) - shift, self.m2.to(acc), nb, bmean, bm2)
            self.mean, self.m2 = (mean + shift).to(v.dtype), m2.to(v.dtype)
            self.count = self.count + n
        self.min = torch.minimum(self.min, bmin)
        self.max = torch.maximum(self.max, bmax)
        if saturation:
            self.below += (ones @ torch.lt(v, low, out=f)).round_().long()
            self.above += (ones @ torch.gt(v, SAT_HIGH, out=f)).round_().long()
        self.hist += self._histogram(v[::hist_stride] if hist_stride > 1 else v)

    def _ones(self, n: int, v: Tensor) -> Tensor:
        ones = getattr(self, "_ones_buf", None)
        if ones is None or ones.shape[0] < n or ones.dtype != v.dtype or ones.device != v.device:
            ones = self._ones_buf = torch.ones(n, dtype=v.dtype, device=v.device)
        return ones[:n]

    def _histogram(self, v: Tensor) -> Tensor:
        """(units, bins + 2) counts of one batch via a single bincount over flat bin indices."""
        units, nb = v.shape[1], self.bins
        scale = nb / (self.hi - self.lo)  # (units,)
        f, idx = self._scratch(v)  # reused (n, units) float / int32 buffers: no page faults per batch
        torch.addcmul(1 - self.lo * scale, v, scale, out=f)  # bin + 1 (0 = underflow)
        f.clamp_(0, nb + 1)
        idx.copy_(f)  # >= 0, so truncation is floor
        idx += torch.arange(units, device=v.device, dtype=torch.int32) * (nb + 2)
        return torch.bincount(idx.view(-1), minlength=units * (nb + 2)).view(units, nb + 2)

    def _scratch(self, v: Tensor) -> tuple[Tensor, Tensor]:
        buf = getattr(self, "_buf", None)
        if buf is None or buf[0].shape[0] < v.shape[0] or buf[0].shape[1] != v.shape[1] or buf[0].device != v.device:
            buf = (torch.empty(v.shape, dtype=v.dtype, device=v.device),
                   torch.empty(v.shape, dtype=torch.int32, device=v.device))
            self._buf = buf
        return buf[0][: v.shape[0]], buf[1][: v.shape[0]]

    def count_beyond(self, x: float, above: bool) -> Tensor:
        """(units,) number of values < x (or > x) read off the histogram: exact when x is a
        bin edge (gates: bins=500 over [0, 1] or [-1, 1] put 0.1 and 0.9 on edges), else
        linearly interpolated inside the bin holding x."""
        h = self.hist.to(torch.float64)
        pos = ((x - self.lo.to(torch.float64)) / (self.hi - self.lo).to(torch.float64) * self.bins)  # (units,)
        pos = pos.clamp(0, self.bins)
        k = pos.floor().long().clamp(max=self.bins - 1)
        frac = (pos - k)[:, None]
        cum = torch.cat([torch.zeros_like(h[:, :1]), h.cumsum(1)], 1)  # cum[:, j] = sum h[:, :j]
        below = cum.gather(1, k[:, None] + 1) + frac * h.gather(1, k[:, None] + 1)  # underflow + bins < x
        below = below[:, 0]
        total = cum[:, -1]
        return (total - below).round().long() if above else below.round().long()

    def merge(self, other: "UnitStats") -> "UnitStats":
        """Statistics of both shards together; histograms must share their edges."""
        if not (torch.equal(self.lo, other.lo) and torch.equal(self.hi, other.hi)):
            raise ValueError("UnitStats shards have different histogram ranges; create them with the same lo/hi")
        nf, of = self.count.to(self.mean.dtype), other.count.to(self.mean.dtype)
        mean, m2 = _chan(nf, self.mean, self.m2, of, other.mean, other.m2)
        return UnitStats(self.count + other.count, mean, m2, torch.minimum(self.min, other.min),
                         torch.maximum(self.max, other.max), self.below + other.below,
                         self.above + other.above, self.lo, self.hi, self.hist + other.hist)

    @property
    def var(self) -> Tensor:
        """(units,) population variance."""
        return self.m2 / self.count.clamp(min=1).to(self.m2.dtype)

    def quantile(self, q: float) -> Tensor:
        """(units,) approximate q-quantile from the histogram (see module docstring for accuracy)."""
        h = self.hist.to(torch.float64)  # (units, bins+2)
        cum = h.cumsum(1)
        total = cum[:, -1:]
        rank = q * total  # (units, 1)
        k = torch.searchsorted(cum, rank).clamp(max=h.shape[1] - 1)  # (units, 1) bin holding the rank
        prev = torch.where(k > 0, cum.gather(1, (k - 1).clamp(min=0)), torch.zeros_like(rank))
        frac = ((rank - prev) / h.gather(1, k).clamp(min=1)).clamp(0, 1)
        width = (self.hi - self.lo).to(torch.float64)[:, None] / self.bins
        val = self.lo.to(torch.float64)[:, None] + (k - 1 + frac) * width
        val = torch.where(k == 0, self.min.to(torch.float64)[:, None], val)
        val = torch.where(k == h.shape[1] - 1, self.max.to(torch.float64)[:, None], val)
        val = torch.minimum(torch.maximum(val, self.min.to(torch.float64)[:, None]), self.max.to(torch.float64)[:, None])
        return val[:, 0]

    def columns(self, start: int, stop: int) -> "UnitStats":
        """The statistics of units [start, stop)."""
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        return UnitStats(**{k: (v if v.dim() == 0 else v[start:stop]) for k, v in kw.items()})


def saturation_low(name: str) -> float:
    """Low saturation threshold: 0.1 for sigmoid gates and other streams, -0.9 for tanh-ranged
    gates (LSTM g, GRU n), whose saturation is |value| > 0.9 (Karpathy et al. 2015)."""
    r = gate_range(name)
    return -SAT_HIGH if r is not None and r[0] < 0 else SAT_LOW


def gate_range(name: str) -> tuple[float, float] | None:
    """Known value range of a stream (for the histogram), None when unbounded or unknown."""
    if any(name.endswith(f"gate.{g}") for g in "ifozr"):
        return (0.0, 1.0)
    if name.endswith("gate.g") or name.endswith("gate.n"):
        return (-1.0, 1.0)
    return None


@dataclass
class StreamStats:
    """All statistics of one stream: per word of its value and of its change Δ (None when the
    stream was recorded without per-word statistics), per unit."""

    words: WordUnitStats | None
    deltas: WordUnitStats | None
    units: UnitStats

    def merge(self, other: "StreamStats") -> "StreamStats":
        both = self.words is not None and other.words is not None
        return StreamStats(self.words.merge(other.words) if both else None,
                           self.deltas.merge(other.deltas) if both else None, self.units.merge(other.units))
