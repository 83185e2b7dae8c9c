"""Interventions inside the recurrence: ablate, clamp, scale or patch units of h, c or a gate.

An `Edit` names a stream (`layer0.fwd.h`, `layer1.fwd.c`, `layer0.fwd.gate.f`, with the module
prefix the recording uses when a model has several recurrent modules), some of its units, and what
to do with them at chosen time steps (default: all) and batch rows (default: all):

- 'zero' / 'mean' / 'value': set the units to 0, to given per-unit means, or to a constant;
- 'scale': multiply them (a gate scaled by 0 is shut; 'value' 1.0 on gate.f fixes the forget gate);
- 'patch': set them to the values the same stream had on another input (activation patching).

Every fused nn.RNN / nn.GRU / nn.LSTM of the model runs through `fused.run_module` with this
module's own explicit loop (`edited_direction`): the edit happens inside the step, so the edited
state feeds the next step and the next layer, exactly as the model would carry it. An edit of c
changes the h of the same step (h = o * tanh(c)). The recording's `scan_direction` is untouched.

All edits of one stream compile into one affine map x -> x * A + C per step (A, C: (1 or T, B, units)),
two in-place ops per edited stream and step, whatever the number of edits.
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, _VF  # _VF: torch's own single-layer fused kernels

from rnnvis.errors import RnnvisError
from rnnvis.recording.cells import (LayerWeights, _gru_hh_bias, _input_projection, fused_direction, linear,
                                    step_weight)
from rnnvis.recording.fused import run_module
from rnnvis.recording.hooks import Target, check_eval_mode, find_recurrent, replace_forward, stream_kinds

MODES = ("zero", "mean", "value", "scale", "patch")


@dataclass(frozen=True)
class Edit:
    """One intervention on `units` of `stream` (see the module docstring for the modes).

    value: 'mean' per-unit values (one per unit), 'value' a constant or one per unit, 'scale' the
    factor (one or per unit); steps: original time steps of the input (None: all); rows: batch rows
    (None: all)."""

    stream: str
    units: tuple[int, ...]
    mode: str = "zero"
    value: Any = None
    steps: tuple[int, ...] | None = None
    rows: tuple[int, ...] | None = None

    def __post_init__(self):
        object.__setattr__(self, "units", tuple(int(u) for u in self.units))
        if self.mode not in MODES:
            raise RnnvisError(f"unknown intervention mode {self.mode!r}", f"use one of {', '.join(MODES)}")
        if not self.units:
            raise RnnvisError(f"the edit of {self.stream} names no units", "pass at least one unit")
        if self.mode in ("mean", "value", "scale") and self.value is None:
            raise RnnvisError(f"mode {self.mode!r} needs a value", "pass value= (a number or one per unit)")
        for name in ("steps", "rows"):
            v = getattr(self, name)
            if v is not None:
                object.__setattr__(self, name, tuple(int(i) for i in v))


@dataclass
class _Affine:
    """x -> x * a + c on a column block [lo, hi) of a stream; a/c: (1 or T, B, hi-lo) or None."""

    lo: int
    hi: int
    a: Tensor | None = None
    c: Tensor | None = None
    step_varying: bool = field(default=False)

    def apply(self, x: Tensor, t: int) -> None:  # x: (B, hi-lo) view, edited in place
        i = t if self.step_varying else 0
        if self.a is not None:
            x.mul_(self.a[i])
        if self.c is not None:
            x.add_(self.c[i])


def _values(e: Edit, n: int, like: Tensor) -> Tensor:
    """(units,) value of a 'mean' / 'value' / 'scale' edit."""
    v = torch.as_tensor(e.value, dtype=like.dtype, device=like.device).reshape(-1)
    if v.numel() == 1:
        return v.expand(n)
    if v.numel() != n:
        raise RnnvisError(f"the edit of {e.stream} gives {v.numel()} values for {n} units",
                          "pass one value, or one per unit")
    return v


def compile_stream(edits: Sequence[Edit], width: int, tindex: Tensor, like: Tensor,
                   source: dict[str, Tensor] | None) -> tuple[Tensor | None, Tensor | None, bool]:
    """(A, C, step_varying) of all edits of one stream in one direction, in the run frame.

    width: units of the stream; tindex (T, B): original time of each run step; source: streams of the
    patch source {name: (B or 1, T_src, units)}."""
    T, B = tindex.shape
    A = torch.ones(1, B, width, dtype=like.dtype, device=like.device)
    C = torch.zeros(1, B, width, dtype=like.dtype, device=like.device)
    for e in edits:
        bad = [u for u in e.units if not 0 <= u < width]
        if bad:
            raise RnnvisError(f"units {bad} do not exist in {e.stream}", f"choose units in 0..{width - 1}")
        units = torch.tensor(e.units, device=like.device)
        m = torch.zeros(1, B, width, dtype=torch.bool, device=like.device)
        rows = torch.arange(B, device=like.device) if e.rows is None else torch.tensor(
            [r for r in e.rows if 0 <= r < B], dtype=torch.long, device=like.device)
        m[0, rows[:, None], units[None, :]] = True
        if e.steps is not None:
            on = torch.zeros(max(T, max(e.steps, default=0) + 1), dtype=torch.bool, device=like.device)
            on[torch.tensor([s for s in e.steps if s >= 0], dtype=torch.long, device=like.device)] = True
            m = m & on[tindex][..., None]  # (T, B, width)
        val = None
        if e.mode == "patch":
            if source is None or e.stream not in source:
                raise RnnvisError(f"the patch of {e.stream} has no source values", "pass source= (the input to patch from)")
            src = source[e.stream].to(like.dtype)  # (B or 1, T_src, width)
            Ts = src.shape[1]
            b = torch.arange(B, device=like.device)[None, :].expand(T, B) % src.shape[0]
            inside = tindex < Ts  # steps beyond the source's length stay as they are
            val = src[b, tindex.clamp(max=Ts - 1)]  # (T, B, width)
            m = m & inside[..., None]
        elif e.mode in ("mean", "value"):
            val = torch.zeros(width, dtype=like.dtype, device=like.device)
            val[units] = _values(e, len(e.units), like)
        if e.mode == "scale":
            f = torch.ones(width, dtype=like.dtype, device=like.device)
            f[units] = _values(e, len(e.units), like)
            a = torch.where(m, f, torch.ones((), dtype=like.dtype, device=like.device))
            A, C = A * a, C * a
        else:  # set: x * 0 + value where the mask is on
            keep = (~m).to(like.dtype)
            A, C = A * keep, C * keep
            if val is not None:
                C = C + torch.where(m, val, torch.zeros((), dtype=like.dtype, device=like.device))
    varying = A.shape[0] > 1 or C.shape[0] > 1
    if varying:
        A, C = A.expand(T, B, width).contiguous(), C.expand(T, B, width).contiguous()
    noop_a = bool((A == 1).all())
    noop_c = bool((C == 0).all())
    return None if noop_a else A, None if noop_c else C, varying


GATE_BLOCKS = {"lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n")}


def edited_direction(kind: str, x: Tensor, h0: Tensor, c0: Tensor | None, w: LayerWeights,
                     ops: dict[str, _Affine]) -> dict[str, Tensor]:
    """The explicit recurrence with edits: {'h': (T, B, H_out)} (+ 'c' for an LSTM).

    ops: {'h' | 'c' | 'gate.<g>': _Affine} applied inside each step, after the activation."""
    T, B, _ = x.shape
    H = w.hidden
    xp = _input_projection(x, w, kind)  # (T, B, gates*H)
    whh = step_weight(w.w_hh, B)
    h = h0
    h_out = x.new_empty(T, B, h0.shape[-1])
    gates = [op for name, op in ops.items() if name.startswith("gate.")]
    op_h, op_c = ops.get("h"), ops.get("c")
    if kind == "lstm":
        c_all = x.new_empty(T, B, H)
        c = c0
        whr_t = w.w_hr.t() if w.w_hr is not None else None
        for t in range(T):
            a = xp[t].add_(linear(h, whh))  # (B, 4H)
            a[:, :2 * H].sigmoid_()
            a[:, 2 * H:3 * H].tanh_()
            a[:, 3 * H:].sigmoid_()
            for op in gates:
                op.apply(a[:, op.lo:op.hi], t)
            i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
            c = torch.mul(f, c, out=c_all[t]).addcmul_(i, g)
            if op_c is not None:
                op_c.apply(c, t)
            if whr_t is None:
                h = torch.mul(o, torch.tanh(c), out=h_out[t])
            else:
                h = torch.mm(o * torch.tanh(c), whr_t, out=h_out[t])
            if op_h is not None:
                op_h.apply(h, t)
        return {"h": h_out, "c": c_all}
    if kind == "gru":
        bias = _gru_hh_bias(w)
        for t in range(T):
            hp = linear(h, whh, bias)  # (B, 3H)
            a = xp[t]
            a[:, :2 * H].add_(hp[:, :2 * H]).sigmoid_()
            r, z = a[:, :H], a[:, H:2 * H]
            for op in gates:  # r and z before n uses r
                if op.hi <= 2 * H:
                    op.apply(a[:, op.lo:op.hi], t)
            n = a[:, 2 * H:].addcmul_(r, hp[:, 2 * H:]).tanh_()
            for op in gates:
                if op.lo >= 2 * H:
                    op.apply(a[:, op.lo:op.hi], t)
            h = torch.addcmul(n, z, h - n, out=h_out[t])
            if op_h is not None:
                op_h.apply(h, t)
        return {"h": h_out}
    for t in range(T):
        pre = xp[t].add_(linear(h, whh))
        h = torch.tanh(pre, out=h_out[t]) if kind == "rnn_tanh" else torch.clamp_min(pre, 0.0, out=h_out[t])
        if op_h is not None:
            op_h.apply(h, t)
    return {"h": h_out}


def plain_direction(kind: str, x: Tensor, h0: Tensor, c0: Tensor | None, w: LayerWeights) -> dict[str, Tensor]:
    """A direction without edits over unpadded input, by torch's fused kernel (oneDNN / cuDNN): h of
    every step and, for an LSTM, c as the final state seen at every step (an expanded view: an edited
    run reads only the final c): an unedited layer costs what it costs in the plain forward."""
    if kind != "lstm":
        return {"h": fused_direction(kind, x, h0, c0, w)}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="RNN module weights are not part")
        out, _, c_n = _VF.lstm(x, (h0[None], c0[None]), w.flat(), w.b_ih is not None, 1, 0.0, False, False, False)
    return {"h": out, "c": c_n[0][None].expand(x.shape[0], -1, -1)}


def editable_streams(module: torch.nn.Module) -> dict[str, int]:
    """{stream: units} of every stream an edit can name (fused recurrent modules only)."""
    out = {}
    for t in find_recurrent(module):
        if t.is_cell:
            continue
        m = t.module
        D = 2 if m.bidirectional else 1
        h_out = m.proj_size if getattr(m, "proj_size", 0) else m.hidden_size
        for k in range(m.num_layers):
            for d in ("fwd", "bwd")[:D]:
                for s in stream_kinds(t.kind):
                    out[t.stream_name(s, k, d)] = h_out if s == "h" else m.hidden_size
    return out


def _check_edits(module: torch.nn.Module, edits: Sequence[Edit]) -> None:
    names = editable_streams(module)
    for e in edits:
        if e.stream not in names:
            cells = [t.path for t in find_recurrent(module) if t.is_cell]
            fix = (f"choose one of {', '.join(names)}" if names else
                   f"interventions run on fused nn.RNN/GRU/LSTM layers; {', '.join(cells)} are step cells")
            raise RnnvisError(f"cannot intervene on stream {e.stream!r}", fix)


def _direction_fn(t: Target, edits: Sequence[Edit], source: dict[str, Tensor] | None) -> Callable:
    H = t.module.hidden_size

    def direction(k: int, d: str, x: Tensor, h0: Tensor, c0: Tensor | None, w: LayerWeights, tindex: Tensor,
                  varlen: bool = False):
        ops: dict[str, _Affine] = {}
        for suffix in stream_kinds(t.kind):
            name = t.stream_name(suffix, k, d)
            mine = [e for e in edits if e.stream == name]
            if not mine:
                continue
            if suffix.startswith("gate."):
                j = GATE_BLOCKS[t.kind].index(suffix[5:])
                lo, hi = j * H, (j + 1) * H
            else:
                lo, hi = 0, h0.shape[-1] if suffix == "h" else H
            a, c, varying = compile_stream(mine, hi - lo, tindex, x, source)
            if a is not None or c is not None:
                ops[suffix] = _Affine(lo, hi, a, c, varying)
        if not ops and not varlen:  # nothing to edit here: torch's fused kernel
            return plain_direction(t.kind, x, h0, c0, w)
        return edited_direction(t.kind, x, h0, c0, w, ops)

    return direction


@contextlib.contextmanager
def editing(module: torch.nn.Module, edits: Sequence[Edit], source: dict[str, Tensor] | None = None):
    """Within the block, every fused recurrent module of `module` runs with `edits` applied; always
    restored. source: {stream: (B or 1, T, units)} for 'patch' edits (see `source_streams`)."""
    edits = list(edits)
    _check_edits(module, edits)
    with contextlib.ExitStack() as stack:
        for t in find_recurrent(module):
            if t.is_cell:
                continue
            check_eval_mode(t)
            fn = _direction_fn(t, edits, source)

            def forward(input, hx=None, _t=t, _fn=fn):  # noqa: A002 - torch's own argument name
                return run_module(_t.module, _t.kind, input, hx, direction=_fn)[0]

            stack.enter_context(replace_forward(t.module, forward))
        with torch.no_grad():
            yield


def _call(module, forward, inputs):
    if forward is not None:
        return forward(module, inputs)
    return module(inputs["ids"]) if isinstance(inputs, dict) else module(inputs)


def source_streams(module: torch.nn.Module, inputs, forward: Callable | None = None) -> dict[str, Tensor]:
    """Every stream {name: (B, T, units)} of the model on `inputs` (the source of a patch)."""
    from rnnvis.recording.engine import Engine

    engine = Engine(module, "scan")
    engine.verify_next = False
    with torch.no_grad(), engine.active():
        _, streams = engine.run(lambda m, b: _call(m, forward, b), inputs)
    return streams


def run_edited(module: torch.nn.Module, inputs, edits: Sequence[Edit], forward: Callable | None = None,
               source=None) -> Any:
    """The model's output on `inputs` (ids (B, T), or a batch dict for forward(module, batch)) with
    `edits` applied inside the recurrence. source: the input whose states 'patch' edits copy."""
    src = source_streams(module, source, forward) if source is not None else None
    with editing(module, edits, src):
        return _call(module, forward, inputs)


__all__ = ["Edit", "MODES", "compile_stream", "edited_direction", "editable_streams", "editing", "run_edited",
           "source_streams"]
