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
from rnnvis.recording.stats import SAT_HIGH, StreamStats, UnitStats, WordUnitStats, gate_range, saturation_low

TOPK = 5
HIST_STRIDE = 4  # tokens per histogram sample (quantile sketch); saturation counts use every token


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
    """Lays the streams side by side as (tokens, units) columns and folds their statistics.

    Columns: [values of the other streams | values of the word streams | Δ of the word streams].
    Per-unit statistics (moments, saturation, histogram) cover every value column; per-word
    statistics of value and Δ only the word streams (by default h and c: a gate's per-word
    table costs as much as h's and is asked for less).
    `edges` fixes each unit's histogram range {stream: (lo, hi)}, so that shards merge.
    """

    def __init__(self, units: dict[str, int], word_streams: list[str], vocab: int, device,
                 edges: dict[str, tuple[Tensor, Tensor]], dtype=torch.float32):
        self.order = list(units)  # the model's own stream order
        self.word_names = [n for n in units if n in word_streams]
        self.names = [n for n in units if n not in word_streams] + self.word_names
        self.offsets: dict[str, tuple[int, int]] = {}
        a = 0
        for n in self.names:
            self.offsets[n] = (a, a + units[n])
            a += units[n]
        self.width = a  # value columns
        self.wstart = self.offsets[self.word_names[0]][0] if self.word_names else a  # first word column
        self.dtype = dtype
        lo = torch.cat([edges[n][0] for n in self.names]).to(dtype)
        hi = torch.cat([edges[n][1] for n in self.names]).to(dtype)
        sat_low = torch.tensor([saturation_low(n) for n in self.names for _ in range(units[n])], dtype=dtype)
        self.sat_low = sat_low.to(device)  # (width,)
        self.ww = a - self.wstart  # word columns
        self.words = WordUnitStats.zeros(vocab, 2 * self.ww, device=device, dtype=dtype) if self.ww else None
        # 500 bins put 0.1 and 0.9 on bin edges for [0, 1] and [-1, 1]: exact saturation counts
        self.units = UnitStats.zeros(a, device=device, dtype=dtype, bins=500, lo=lo, hi=hi)

    def fold(self, streams: dict[str, Tensor], mask: Tensor, starts: Tensor, ids: Tensor,
             keep: Iterable[str] = (), keep_dtype: torch.dtype = torch.float16) -> dict[str, Tensor]:
        """Fold one batch; mask (B, T) valid tokens, starts (n,) bool first step of a window,
        ids (n,). Returns the values of the `keep` streams {name: (n, units)} in corpus order."""
        n, W, ws = ids.shape[0], self.width, self.wstart
        buf = getattr(self, "_buf", None)  # reused across batches: no page faults per batch
        if buf is None or buf.shape[0] < n or buf.device != ids.device:
            buf = self._buf = torch.empty(n, W + self.ww, dtype=self.dtype, device=ids.device)
        both = buf[:n]  # (n, W + ww): [other values | word values | word deltas]
        for name, (s, e) in self.offsets.items():
            both[:, s:e] = streams[name][mask]
        vals = both[:, :W]
        if self.ww:
            wv, dels = both[:, ws:W], both[:, W:]
            torch.sub(wv[1:], wv[:-1], out=dels[1:])  # previous token of the same window,
            dels[starts] = wv[starts]  # except at window starts: first step against 0
        # Saturation is counted exactly; the quantile histogram takes every HIST_STRIDE-th token.
        # float sums of the masks: about 1.6x faster than summing bool tensors on CPU
        self.units.below += (vals < self.sat_low).to(vals.dtype).sum(0).long()
        self.units.above += (vals > SAT_HIGH).to(vals.dtype).sum(0).long()
        self.units.update(vals, moments=True, saturation=False, hist_stride=HIST_STRIDE)
        out = {k: vals[:, slice(*self.offsets[k])].to(keep_dtype, copy=True) for k in keep}
        if self.words is not None:
            self.words.update(both[:, ws:], ids, inplace=True)  # overwrites the word columns
        return out

    def result(self) -> dict[str, StreamStats]:
        """Per-stream statistics; per-word ones (words, deltas) are None outside the word streams."""
        W, ws, out = self.width, self.wstart, {}
        for n in self.order:
            s, e = self.offsets[n]
            words = deltas = None
            if n in self.word_names:
                words = self.words.columns(s - ws, e - ws)
                deltas = self.words.columns(W - ws + s - ws, W - ws + e - ws)
            out[n] = StreamStats(words, deltas, self.units.columns(s, e))
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


def lm_outputs(logits: Tensor, mask: Tensor, targets: Tensor, k: int = TOPK) -> dict[str, Tensor]:
    """Per valid token: loss (-log p(target)), rank of the target (0 = top), top-k ids and probs.

    logits (B, T, V); targets (B, T) with -1 where there is no next token (loss NaN, rank -1).
    """
    if bool(mask.all()):  # full windows: a view, no copy
        lg, tg = logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)  # (n, V), (n,)
    else:
        lg, tg = logits[mask], targets[mask]
    lg = lg.float()
    lse = torch.logsumexp(lg, dim=-1)  # (n,)
    has = tg >= 0
    lt = lg.gather(1, tg.clamp(min=0)[:, None])  # (n, 1) target logit
    rank = (lg > lt).sum(1, dtype=torch.int32)
    top, top_ids = lg.topk(min(k, lg.shape[1]), dim=1)
    loss = lse - lt[:, 0]
    return {"loss": torch.where(has, loss, torch.full_like(loss, float("nan"))),
            "rank": torch.where(has, rank, torch.full_like(rank, -1)).to(torch.int32),
            "topk_ids": top_ids.to(torch.int32), "topk_probs": (top - lse[:, None]).exp()}


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
