"""`record(module, *args, **kwargs)`: run any torch model once and recover every state and gate.

In the style of TransformerLens' `run_with_cache`: the model runs exactly as the user calls it,
with scoped hooks capturing the inputs and outputs of its recurrent modules; afterwards every
layer is recomputed from its own weights (`method='scan'` on CPU, `'batched'` on CUDA) and the
recomputed hidden state is checked against the module's own output.
"""
from __future__ import annotations

import fnmatch
from typing import Any, Iterable

import numpy as np
import torch
from torch import Tensor

from rnnvis.errors import RnnvisError
from rnnvis.recording.cells import cell_weights, gates_from_inputs
from rnnvis.recording.fused import padded_output, run_module
from rnnvis.recording.hooks import Target, capture_calls, check_eval_mode, find_recurrent

METHODS = ("scan", "batched")


def default_method(device: torch.device) -> str:
    """Explicit scan on CPU (one pass, no fused rerun); fused kernel + batched gates on CUDA."""
    return "batched" if device.type == "cuda" else "scan"


def module_device(module: torch.nn.Module) -> torch.device:
    """Device of the module's first parameter (CPU for a parameterless module)."""
    for p in module.parameters():
        return p.device
    return torch.device("cpu")


def _tolerance(t: Tensor) -> float:
    """1e-4 in float32 on CPU; looser for half types and on CUDA, where cuDNN may use TF32."""
    tol = max(1e-4, 50 * torch.finfo(t.dtype).eps)
    return max(tol, 2e-3) if t.is_cuda else tol


def _check_close(ours: Tensor, theirs: Tensor, where: str) -> None:
    """Raise naming `where` when the recomputed state differs from the module's own."""
    tol = _tolerance(theirs)
    theirs = theirs.detach().to(ours.dtype)
    if ours.shape != theirs.shape or not torch.allclose(ours, theirs, atol=tol, rtol=tol):
        err = (ours - theirs).abs().max().item() if ours.shape == theirs.shape else float("nan")
        raise RnnvisError(
            f"recomputed hidden state of {where} differs from the layer's own output "
            f"(max abs diff {err:.3g}, tolerance {tol:g})",
            "the layer may have been modified (custom forward, weight hooks); please report it",
        )


def _filter(names: Iterable[str], patterns) -> list[str]:
    if patterns is None:
        return list(names)
    if isinstance(patterns, str):
        patterns = (patterns,)
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def verify_fused(t: Target, ours, h_n: Tensor, output) -> None:
    """Check recomputed final states (per layer and direction) and output against the module's."""
    D = 2 if t.module.bidirectional else 1
    theirs_h = output[1][0] if t.kind == "lstm" else output[1]
    if theirs_h.dim() == 2:
        theirs_h = theirs_h.unsqueeze(1)
    name = t.path or type(t.module).__name__
    for k in range(t.module.num_layers):
        for d in range(D):
            _check_close(h_n[k * D + d], theirs_h[k * D + d], f"'{name}' layer{k}.{'fwd' if d == 0 else 'bwd'}")
    _check_close(padded_output(t.module, ours), padded_output(t.module, output), f"'{name}' (output)")


def call_args(t: Target, call) -> tuple[Any, Any]:
    """(input, hx) of one captured call, positional or keyword."""
    args, kwargs, _ = call
    inp = args[0] if args else kwargs["input"]
    hx = args[1] if len(args) > 1 else kwargs.get("hx")
    return inp, hx


def fused_streams(t: Target, call, method: str, verify: bool = True) -> tuple[dict[str, Tensor], Tensor]:
    """Streams {name: (B, T, units)} and lengths (B,) for one call of a fused module."""
    inp, hx = call_args(t, call)
    ours, raw, lengths, (h_n, _) = run_module(t.module, t.kind, inp, hx, method)
    if verify:
        verify_fused(t, ours, h_n, call[2])
    streams = {t.stream_name(sfx, k, d): v for (k, d, sfx), v in raw.items()}
    return streams, lengths


def cell_streams(t: Target, verify: bool = True) -> tuple[dict[str, Tensor], Tensor]:
    """Streams {name: (B, calls, units)} for a *Cell module driven by user code, one call a step."""
    w = cell_weights(t.module)
    steps: list[dict[str, Tensor]] = []
    for args, kwargs, output in t.calls:
        x = args[0] if args else kwargs["input"]
        hx = args[1] if len(args) > 1 else kwargs.get("hx")
        unbatched = x.dim() == 1
        x = x.unsqueeze(0) if unbatched else x  # (B, in)
        if t.kind == "lstm":
            h_prev, c_prev = hx if hx is not None else (None, None)
        else:
            h_prev, c_prev = hx, None
        H = t.module.hidden_size
        h_prev = x.new_zeros(x.shape[0], H) if h_prev is None else h_prev.reshape(x.shape[0], H)
        if t.kind == "lstm":
            c_prev = x.new_zeros(x.shape[0], H) if c_prev is None else c_prev.reshape(x.shape[0], H)
        g = gates_from_inputs(t.kind, x[None], h_prev[None], c_prev, w)  # each (1, B, units)
        h_new = g.pop("h_check")
        theirs = output[0] if t.kind == "lstm" else output
        if verify:
            _check_close(h_new[0], theirs.reshape(h_new.shape[1:]), f"cell '{t.prefix}' step {len(steps)}")
        step = {"h": h_new, **g}
        if steps and step["h"].shape != steps[0]["h"].shape:
            raise RnnvisError(f"cell '{t.prefix}' was called with different batch sizes",
                              "record calls with one batch size per forward")
        steps.append(step)
    streams = {t.stream_name(s): torch.cat([st[s] for st in steps]).permute(1, 0, 2) for s in steps[0]}
    B, T = streams[t.stream_name("h")].shape[:2]
    return streams, torch.full((B,), T, dtype=torch.long, device=h_new.device)


def target_streams(t: Target, method: str, verify: bool = True) -> tuple[dict[str, Tensor], Tensor]:
    """Streams of one captured target (fused or cell); error if a fused module ran twice."""
    if t.is_cell:
        return cell_streams(t, verify)
    if len(t.calls) > 1:
        raise RnnvisError(
            f"recurrent module '{t.path}' was called {len(t.calls)} times in one forward pass",
            "record a model that calls each fused recurrent module once, or record each call's "
            "module separately",
        )
    return fused_streams(t, t.calls[0], method, verify)


class Recording:
    """Every recorded stream of one forward pass.

    `rec[name]` is a float32 array (batch, time, units), input batch order whatever
    batch_first is, zero beyond each sequence's length; `rec.lengths` is (batch,).
    """

    def __init__(self, streams: dict[str, np.ndarray], lengths: dict[str, np.ndarray]):
        self._streams = streams
        self._lengths = lengths

    @property
    def streams(self) -> list[str]:
        return list(self._streams)

    @property
    def lengths(self) -> np.ndarray:
        """(batch,) lengths of the first stream's module."""
        return self._lengths[next(iter(self._streams))] if self._streams else np.zeros(0, np.int64)

    def lengths_of(self, name: str) -> np.ndarray:
        return self._lengths[name]

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self._streams[name]
        except KeyError:
            raise KeyError(f"no stream {name!r}; recorded: {', '.join(self._streams)}") from None

    def __contains__(self, name: str) -> bool:
        return name in self._streams

    def __len__(self) -> int:
        return len(self._streams)

    def __repr__(self) -> str:
        return f"Recording({len(self._streams)} streams, batch={len(self.lengths)})"


def to_numpy_padded(v: Tensor, lengths: Tensor) -> np.ndarray:
    """(B, T, U) tensor -> float32 numpy, zero beyond each length."""
    T = v.shape[1]
    mask = (torch.arange(T, device=v.device)[None, :] < lengths[:, None])[..., None]  # (B, T, 1)
    return (v.float() * mask).cpu().numpy()


def record(module: torch.nn.Module, *args: Any, streams=None, method: str | None = None,
           verify: bool = True, **kwargs: Any) -> tuple[Any, Recording]:
    """Call `module(*args, **kwargs)` once; return its output and a `Recording` of all streams.

    streams: glob pattern(s) of stream names to keep (default all). method: 'scan' or
    'batched' (default by device). The recomputed h is checked against each layer's own output.
    """
    targets = find_recurrent(module)
    for t in targets:
        check_eval_mode(t)
    method = method or default_method(module_device(module))
    if method not in METHODS:
        raise RnnvisError(f"unknown recording method {method!r}", f"use one of {METHODS}")
    with capture_calls(targets):
        try:
            out = module(*args, **kwargs)
        except RnnvisError:
            raise
        except Exception as e:  # the model's own error (shape, dtype): add context, keep cause
            raise RnnvisError(
                f"the model raised {type(e).__name__} while recording: {e}",
                "check the input's shape and dtype against what the model expects",
            ) from e
    if not any(t.calls for t in targets):
        raise RnnvisError("no recurrent module was called during the forward pass",
                          "check that the model's forward uses its RNN/GRU/LSTM layers")
    result: dict[str, np.ndarray] = {}
    lengths: dict[str, np.ndarray] = {}
    with torch.no_grad():
        for t in targets:
            if not t.calls:
                continue
            s, lens = target_streams(t, method, verify)
            t.calls.clear()
            for name in _filter(s, streams):
                result[name] = to_numpy_padded(s[name], lens)
                lengths[name] = lens.cpu().numpy()
    return out, Recording(result, lengths)
