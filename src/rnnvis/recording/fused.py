"""Recompute a whole fused nn.RNN / nn.GRU / nn.LSTM call: every layer, every direction.

`run_module` takes the module's own call arguments (tensor or PackedSequence, optional initial
state), works internally in padded time-major layout in the caller's batch order, and returns

- the module's output in torch's own format (so it can stand in for the fused forward), and
- every stream as `(batch, time, units)` plus the sequence lengths `(batch,)`.

Packed sequences: each sequence runs over its own length; the backward direction reverses each
sequence within its length (so padding never enters a valid step), and final states are taken at
each sequence's last valid step.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from rnnvis.errors import RnnvisError
from rnnvis.recording.cells import layer_weights, run_direction


@dataclass
class Normalized:
    """A fused module's input in padded, time-major layout, caller's batch order."""

    x: Tensor  # (T, B, in)
    lengths: Tensor  # (B,) int64 on x.device
    varlen: bool  # some sequence shorter than T
    packed: PackedSequence | None
    unbatched: bool
    batch_first: bool


def normalize_input(module, inp) -> Normalized:
    """Bring tensor / PackedSequence input of any layout to (T, B, in)."""
    if isinstance(inp, PackedSequence):
        x, lengths = pad_packed_sequence(inp, batch_first=False)  # (T, B, in), original order
        lengths = lengths.to(x.device)
        return Normalized(x, lengths, bool((lengths < x.shape[0]).any()), inp, False, False)
    if not isinstance(inp, Tensor):
        raise RnnvisError(f"recurrent module got input of type {type(inp).__name__}",
                          "pass a tensor or a PackedSequence")
    if inp.dim() == 2:  # unbatched (T, in)
        x = inp.unsqueeze(1)
        unbatched = True
    elif inp.dim() == 3:
        x = inp.transpose(0, 1) if module.batch_first else inp
        unbatched = False
    else:
        raise RnnvisError(f"recurrent module input has {inp.dim()} dimensions",
                          "expected (time, in), (time, batch, in) or (batch, time, in)")
    T, B = x.shape[:2]
    lengths = torch.full((B,), T, dtype=torch.long, device=x.device)
    return Normalized(x, lengths, False, None, unbatched, module.batch_first)


def _reverse_index(lengths: Tensor, T: int) -> Tensor:
    """(T, B) index reversing every sequence within its own length (an involution)."""
    t = torch.arange(T, device=lengths.device)[:, None]  # (T, 1)
    L = lengths[None, :]  # (1, B)
    return torch.where(t < L, L - 1 - t, t)


def _take_time(x: Tensor, idx: Tensor) -> Tensor:
    """Gather along time with a (T, B) index; x: (T, B, U)."""
    return x.gather(0, idx[..., None].expand(-1, -1, x.shape[-1]))


def _time_index(d: int, rev_idx: Tensor | None, T: int, B: int, like: Tensor) -> Tensor:
    """(T, B) original time step of each run step of direction d."""
    if d == 1 and rev_idx is not None:
        return rev_idx
    t = torch.arange(T, device=like.device)
    return (t.flip(0) if d == 1 else t)[:, None].expand(T, B)


def _initial_state(module, kind: str, hx, B: int, unbatched: bool, like: Tensor):
    """(h0, c0) as (L*D, B, H_out) / (L*D, B, H); zeros when the caller passed none."""
    D = 2 if module.bidirectional else 1
    h_out = module.proj_size if getattr(module, "proj_size", 0) else module.hidden_size
    if hx is None:
        h0 = like.new_zeros(module.num_layers * D, B, h_out)
        c0 = like.new_zeros(module.num_layers * D, B, module.hidden_size) if kind == "lstm" else None
        return h0, c0
    h0, c0 = (hx[0], hx[1]) if kind == "lstm" else (hx, None)
    if unbatched:
        h0 = h0.unsqueeze(1)
        c0 = c0.unsqueeze(1) if c0 is not None else None
    return h0, c0


def run_module(module, kind: str, inp, hx=None, method: str = "scan", direction=None):
    """Recompute `module(inp, hx)`; return (torch-format output, streams, lengths, finals).

    direction(layer, 'fwd'|'bwd', x, h0, c0, weights, tindex, varlen=) -> streams, when given, runs each
    layer and direction instead of `run_direction` (interventions, intervene.py); tindex (T, B) is
    the original time step of each run step (the backward direction runs reversed).

    streams: {(layer, 'fwd'|'bwd', suffix): (B, T, units)}; lengths: (B,) int64;
    finals: (h_n, c_n) time-major finals (L*D, B, ·) in the caller's batch order.
    """
    norm = normalize_input(module, inp)
    x, lengths = norm.x, norm.lengths
    T, B = x.shape[:2]
    h0_all, c0_all = _initial_state(module, kind, hx, B, norm.unbatched, x)
    D = 2 if module.bidirectional else 1
    rev_idx = _reverse_index(lengths, T) if norm.varlen else None
    last = (lengths - 1).clamp(min=0)  # (B,) index of each sequence's last valid step
    valid = (torch.arange(T, device=x.device)[:, None] < lengths[None, :])[..., None]  # (T, B, 1)
    streams: dict[tuple[int, str, str], Tensor] = {}
    h_n, c_n = [], []
    layer_in = x.to(h0_all.dtype)
    for k in range(module.num_layers):
        outs = []
        for d in range(D):
            w = layer_weights(module, k, reverse=d == 1)
            h0 = h0_all[k * D + d]
            c0 = c0_all[k * D + d] if c0_all is not None else None
            xin = layer_in
            if d == 1:
                xin = _take_time(layer_in, rev_idx) if norm.varlen else layer_in.flip(0)
            if direction is None:
                res = run_direction(method, kind, xin, h0, c0, w)  # each (T, B, units), run frame
            else:
                res = direction(k, "fwd" if d == 0 else "bwd", xin, h0, c0, w, _time_index(d, rev_idx, T, B, x),
                                varlen=norm.varlen)
            bidx = torch.arange(B, device=x.device)
            h_n.append(res["h"][last, bidx])
            if kind == "lstm":
                c_n.append(res["c"][last, bidx])
            if d == 1:  # back to the original time frame
                res = {n: (_take_time(v, rev_idx) if norm.varlen else v.flip(0)) for n, v in res.items()}
            outs.append(res["h"])
            dname = "fwd" if d == 0 else "bwd"
            for suffix, v in res.items():
                streams[(k, dname, suffix)] = v.permute(1, 0, 2)  # (B, T, units)
        layer_in = torch.cat(outs, dim=-1) if D == 2 else outs[0]  # (T, B, D*H_out)
        if norm.varlen:
            layer_in = layer_in * valid
    h_n_t = torch.stack(h_n)  # (L*D, B, H_out)
    c_n_t = torch.stack(c_n) if kind == "lstm" else None
    output = _format_output(norm, layer_in, h_n_t, c_n_t, kind)
    return output, streams, lengths, (h_n_t, c_n_t)


def _format_output(norm: Normalized, out: Tensor, h_n: Tensor, c_n: Tensor | None, kind: str):
    """Return `(output, h_n)` / `(output, (h_n, c_n))` exactly as the fused module would."""
    if norm.packed is not None:
        p = norm.packed
        tm = out[:, p.sorted_indices] if p.sorted_indices is not None else out  # (T, B, ·) sorted
        bs = p.batch_sizes.to(out.device)
        mask = torch.arange(out.shape[1], device=out.device)[None, :] < bs[:, None]  # (T, B)
        output = PackedSequence(tm[mask], p.batch_sizes, p.sorted_indices, p.unsorted_indices)
    elif norm.unbatched:
        output, h_n = out.squeeze(1), h_n.squeeze(1)
        c_n = c_n.squeeze(1) if c_n is not None else None
    else:
        output = out.transpose(0, 1) if norm.batch_first else out
    return (output, (h_n, c_n)) if kind == "lstm" else (output, h_n)


def padded_output(module, output) -> Tensor:
    """The fused module's output as (T, B, D*H_out), caller's batch order (for verification)."""
    out = output[0]
    if isinstance(out, PackedSequence):
        return pad_packed_sequence(out, batch_first=False)[0]
    if out.dim() == 2:
        return out.unsqueeze(1)
    return out.transpose(0, 1) if module.batch_first else out
