"""The recording engine: run a model on one batch, get every stream, fold its statistics.

How the states are obtained:
- method 'scan' (default on CPU): each fused recurrent module's forward is replaced, for the
  duration of the recording, by rnnvis' explicit single pass, whose h is the layer's output, so
  the fused kernel never runs twice. The first batch is also run through the original forward
  and compared (an error names the layer on mismatch).
- method 'batched' (default on CUDA): each layer runs torch's fused kernel (cuDNN), and every
  gate for all steps comes from one batched product (see cells.py).
- *Cell modules driven by user code are captured with hooks and recomputed per call.

`Engine.initial` lets a caller start each fused module from a given state (h0, c0) instead of
the one the model passes: this is how a window is recomputed from a keyframe (recompute.py).

Δ (change) statistics: Δ_t = s_t - s_{t-1} within a window; the first step of a window is taken
against 0 (the zero initial state for h and c; "no previous gate value" for gates).
"""
from __future__ import annotations

import contextlib
import fnmatch
from typing import Any, Callable, Iterable

import torch
from torch import Tensor

from rnnvis.errors import RnnvisError
from rnnvis.recording.fused import run_module
from rnnvis.recording.hooks import Target, capture_calls, check_eval_mode, find_recurrent, replace_forward
from rnnvis.recording.record import cell_streams, verify_fused
from rnnvis.recording.stats import SAT_HIGH, SAT_LOW, StreamStats, UnitStats, WordUnitStats, gate_range, saturation_low

TOPK = 5
HIST_STRIDE = 4  # tokens per histogram sample (quantile sketch); saturation counts use every token
FOLD_ROWS = 2048  # tokens per piece of a batch folded at once on CPU (multiple of HIST_STRIDE)


class Engine:
    """Runs the model on a batch and returns every stream {name: (batch, time, units)}."""

    def __init__(self, module: torch.nn.Module, method: str):
        self.module = module
        self.targets = find_recurrent(module)
        for t in self.targets:
            check_eval_mode(t)
        self.method = method
        self.verify_next = True
        self.initial: dict[str, tuple[Tensor, Tensor | None]] = {}  # target path -> (h0, c0) override
        self._stash: dict[str, dict[str, Tensor]] = {}

    @property
    def restartable(self) -> bool:
        """A window can restart mid-way from a stored state: only unidirectional fused modules."""
        return all(not t.is_cell and not t.module.bidirectional for t in self.targets)

    def state_streams(self) -> list[str]:
        """Names of the streams that make up the recurrent state (h, and c of LSTMs) of every layer."""
        return [t.stream_name(s, k, "fwd") for t in self.targets if not t.is_cell
                for k in range(t.module.num_layers) for s in (("h", "c") if t.kind == "lstm" else ("h",))]

    def _fused_forward(self, t: Target):
        def forward(input, hx=None):  # noqa: A002 - torch's own argument name
            hx = self.initial.get(t.path, hx)
            ours, raw, _, (h_n, _) = run_module(t.module, t.kind, input, hx, self.method)
            if self.verify_next:
                verify_fused(t, ours, h_n, type(t.module).forward(t.module, input, hx))
            if t.path in self._stash:
                raise RnnvisError(f"recurrent module '{t.path}' was called twice in one forward pass",
                                  "corpus recording needs each fused module called once per batch")
            self._stash[t.path] = {t.stream_name(s, k, d): v for (k, d, s), v in raw.items()}
            return ours

        return forward

    @contextlib.contextmanager
    def active(self):
        """Swap in our forward for fused modules and hook the cells; always restored."""
        with contextlib.ExitStack() as stack:
            for t in self.targets:
                if not t.is_cell:
                    stack.enter_context(replace_forward(t.module, self._fused_forward(t)))
            stack.enter_context(capture_calls([t for t in self.targets if t.is_cell]))
            yield

    def run(self, forward: Callable, batch: dict) -> tuple[Any, dict[str, Tensor]]:
        """(model output, streams) for one batch; call inside `active()`."""
        self._stash.clear()
        out = forward(self.module, batch)
        streams: dict[str, Tensor] = {}
        for t in self.targets:
            if t.is_cell:
                if t.calls:
                    streams.update(cell_streams(t, verify=self.verify_next)[0])
                t.calls.clear()
            else:
                streams.update(self._stash.pop(t.path, {}))
        if not streams:
            raise RnnvisError("no recurrent module was called during the forward pass",
                              "check `forward=`: it must run the model's recurrent layers")
        self.verify_next = False
        return out, streams


class Folder:
    """Folds every stream's statistics, batch by batch, in the engine's own time-major layout.

    The engine computes each stream as a (time, batch, units) block (a gate is a column slice of
    the layer's gate block), so a batch is folded as (time * batch, units) views with no copy:
    statistics do not depend on token order, and Δ is a shift by one time step (`batch` rows).
    Only the stored streams are put in corpus order (batch-major), after the cast to float16.

    Per unit: min, max and the histogram (quantile sketch) for every stream; moments for the
    streams without per-word statistics (gates; the others' come from their per-word table at
    the end, exactly); exact saturation counts for gates (the only streams views read them for;
    the others' are read off their histogram). Per word x unit: value and Δ of the word streams
    (by default h and c: a gate's per-word table costs as much as h's and is asked for less).
    `edges` fixes each unit's histogram range {stream: (lo, hi)}, so that shards merge.
    """

    def __init__(self, units: dict[str, int], word_streams: list[str], vocab: int, device,
                 edges: dict[str, tuple[Tensor, Tensor]], dtype=torch.float32):
        self.order = list(units)  # the model's own stream order
        self.word_names = [n for n in units if n in word_streams]
        self.names = [n for n in units if n not in word_streams] + self.word_names
        self.sizes = {n: units[n] for n in self.names}  # units of each stream, in fold order
        self.dtype = dtype
        self.vocab = vocab
        # 500 bins put 0.1 and 0.9 on bin edges for [0, 1] and [-1, 1]
        self.units = {n: UnitStats.zeros(units[n], device=device, dtype=dtype, bins=500, lo=edges[n][0],
                                         hi=edges[n][1]) for n in self.names}
        self.words = {n: (WordUnitStats.zeros(vocab, units[n], device=device, dtype=dtype),
                          WordUnitStats.zeros(vocab, units[n], device=device, dtype=dtype)) for n in self.word_names}
        self._scratch: dict[tuple[int, int], Tensor] = {}

    def _buffer(self, key: int, n: int, units: int, like: Tensor) -> Tensor:
        buf = self._scratch.get((key, units))
        if buf is None or buf.shape[0] < n or buf.device != like.device:
            buf = self._scratch[(key, units)] = torch.empty(n, units, dtype=self.dtype, device=like.device)
        return buf[:n]

    def fold(self, streams: dict[str, Tensor], mask: Tensor, ids: Tensor, keep: Iterable[str] = (),
             keep_dtype: torch.dtype = torch.float16) -> dict[str, Tensor]:
        """Fold one batch: streams {name: (B, T, units)}, mask (B, T) valid tokens, ids (B, T).
        Every window starts at t = 0 (Δ of the first step is against 0). Returns the values of
        the `keep` streams {name: (n valid, units)} in corpus (batch-major) order.

        Rows are folded in pieces of FOLD_ROWS (on CPU), so that the scratch buffers stay small
        and a piece of a stream stays in cache through the dozen passes its statistics make (on
        the noisy 2-core machine the gain was within the noise, 0-10% at 12,800 tokens a batch)."""
        B, T = ids.shape
        full = bool(mask.all())
        rows = None if full else mask.t().reshape(-1).nonzero().squeeze(1)  # valid time-major rows
        tok = ids.t().reshape(-1)
        tok = tok if full else tok[rows]
        n = tok.shape[0]
        step = FOLD_ROWS if tok.device.type == "cpu" else max(n, 1)
        pieces = [(a, min(n, a + step)) for a in range(0, n, step)]
        counts = [torch.bincount(tok[a:b], minlength=self.vocab) for a, b in pieces] if self.words else None
        out = {}
        for name in self.names:
            v = streams[name]
            if name in keep:  # corpus order, valid tokens only; cast first (half the bytes to move)
                out[name] = v.to(keep_dtype)[mask]
            U = v.shape[-1]
            x_all = v.transpose(0, 1).reshape(T * B, U)  # a view for the engine's layouts
            x = x_all if full else x_all.index_select(0, rows)
            d_all = None
            if name in self.words and not full:  # Δ before dropping rows (a copy: ours to overwrite)
                d_all = self._delta(x_all, B, self._buffer(1, T * B, U, x)).index_select(0, rows)
            us = self.units[name]
            for i, (a, b) in enumerate(pieces):
                xa = x[a:b]
                us.update(xa, moments=name not in self.words, saturation=gate_range(name) is not None,
                          hist_stride=HIST_STRIDE, low=saturation_low(name))
                if name in self.words:
                    wv, wd = self.words[name]
                    wv.update(xa, tok[a:b], scratch=self._buffer(0, b - a, U, x), counts=counts[i])
                    if full:  # Δ of this piece: rows r >= B against row r - B (the previous step)
                        d = self._buffer(1, b - a, U, x)
                        lo = max(a, B)
                        if lo < b:
                            torch.sub(x_all[lo:b], x_all[lo - B:b - B], out=d[lo - a:])
                        if a < B:
                            d[:min(b, B) - a] = x_all[a:min(b, B)]  # first step against 0
                    else:
                        d = d_all[a:b]
                    wd.update(d, tok[a:b], inplace=True, counts=counts[i])
        return out

    @staticmethod
    def _delta(x_all: Tensor, B: int, out: Tensor) -> Tensor:
        """Δ of time-major rows (T*B, U): row r minus row r - B, the first B rows against 0."""
        torch.sub(x_all[B:], x_all[:-B], out=out[B:])
        out[:B] = x_all[:B]
        return out

    def result(self) -> dict[str, StreamStats]:
        """Per-stream statistics; per-word ones (words, deltas) are None outside the word streams.
        The moments of a word stream are the totals of its per-word table (exact)."""
        out = {}
        for n in self.order:
            u = self.units[n]
            words = deltas = None
            if n in self.words:
                words, deltas = self.words[n]
                count, mean, m2 = words.totals()
                u.count, u.mean, u.m2 = count.clone(), mean.to(u.mean.dtype), m2.to(u.m2.dtype)
            if gate_range(n) is None:  # estimated from the (sampled) histogram, scaled to all tokens
                scale = u.count.double() / u.hist.sum(1).clamp(min=1).double()  # (units,)
                u.below = (u.count_beyond(SAT_LOW, above=False).double() * scale).round().long()
                u.above = (u.count_beyond(SAT_HIGH, above=True).double() * scale).round().long()
            out[n] = StreamStats(words, deltas, u)
        return out


def histogram_edges(streams: dict[str, Tensor], mask: Tensor) -> dict[str, tuple[Tensor, Tensor]]:
    """Per-unit histogram range {stream: (lo, hi)} (CPU float32): the known range of a gate, else
    the range of this batch's valid values widened by half its span on each side. Computed once
    (from the first batch of the corpus) and given to every shard, so that shards merge."""
    out = {}
    for name, v in streams.items():
        r = gate_range(name)
        units = v.shape[-1]
        if r is not None:
            out[name] = (torch.full((units,), r[0]), torch.full((units,), r[1]))
            continue
        x = v[mask].float()  # (n, units)
        bmin, bmax = x.amin(0).cpu(), x.amax(0).cpu()
        span = (bmax - bmin).clamp(min=1e-3)
        out[name] = (bmin - span / 2, bmax + span / 2)
    return out


LM_ROWS = 256  # tokens per piece of lm_outputs: a piece's logits stay in cache (10 MB at 10k words)


def lm_outputs(logits: Tensor, mask: Tensor, targets: Tensor, k: int = TOPK,
               scratch: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
    """Per valid token: loss (-log p(target)), rank of the target (0 = top), top-k ids and probs.

    logits (B, T, V); targets (B, T) with -1 where there is no next token (loss NaN, rank -1).
    Computed in pieces of LM_ROWS tokens, each through a work buffer kept in `scratch` (a dict
    the caller keeps across batches): on the 2-core CPU a whole batch at once was 2-3x slower,
    from cache misses and from the page faults of a fresh (tokens, V) buffer.
    """
    if bool(mask.all()):  # full windows: a view, no copy
        lg, tg = logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)  # (n, V), (n,)
    else:
        lg, tg = logits[mask], targets[mask]
    n, V = lg.shape
    dev = lg.device
    rows = LM_ROWS if dev.type == "cpu" else max(n, 1)  # one piece on a GPU
    work = scratch.get("lm") if scratch is not None else None
    if work is None or work.shape != (rows, V) or work.device != dev:
        work = torch.empty(rows, V, dtype=torch.float32, device=dev)
        if scratch is not None:
            scratch["lm"] = work
    ones = torch.ones(V, dtype=torch.float32, device=dev)
    kk = min(k, V)
    loss, rank = torch.empty(n, device=dev), torch.empty(n, dtype=torch.int32, device=dev)
    top_ids, top_p = torch.empty(n, kk, dtype=torch.int32, device=dev), torch.empty(n, kk, device=dev)
    for a in range(0, n, rows):
        x = lg[a:a + rows].float()  # (r, V)
        r = x.shape[0]
        w = work[:r]
        lt = x.gather(1, tg[a:a + r].clamp(min=0)[:, None])  # (r, 1) target logit
        # torch's fused log-sum-exp reads the piece twice and writes nothing: 1.5x faster on the
        # 2-core CPU than max, subtract, exp and a BLAS row sum through the work buffer
        lse = torch.logsumexp(x, 1)  # (r,)
        loss[a:a + r] = lse - lt[:, 0]
        rank[a:a + r] = torch.mv(torch.gt(x, lt, out=w), ones).round_()  # logits above the target's
        top, ids = x.topk(kk, dim=1)
        top_ids[a:a + r] = ids
        top_p[a:a + r] = (top - lse[:, None]).exp_()
    has = tg >= 0
    return {"loss": loss.masked_fill_(~has, float("nan")), "rank": rank.masked_fill_(~has, -1),
            "topk_ids": top_ids, "topk_probs": top_p}


def default_forward(module: torch.nn.Module, batch: dict) -> Tensor:
    return module(batch["ids"])


def next_token_targets(ids: Tensor, lengths: Tensor) -> Tensor:
    """(B, T) next token within the window, -1 at the last token."""
    tg = torch.full_like(ids, -1)
    tg[:, :-1] = ids[:, 1:]
    t = torch.arange(ids.shape[1], device=ids.device)[None, :]
    return torch.where(t + 1 < lengths[:, None], tg, torch.full_like(tg, -1))


def match(names: Iterable[str], patterns) -> list[str]:
    """The names matching any of the glob patterns (a string is one pattern)."""
    patterns = (patterns,) if isinstance(patterns, str) else tuple(patterns)
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def logits_of(out) -> Any:
    """The logits in a model's output (a tuple's first element)."""
    return out[0] if isinstance(out, (tuple, list)) else out
