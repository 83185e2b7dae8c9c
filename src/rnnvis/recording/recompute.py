"""Recompute any stream of any token range of a recording exactly, from the model.

A store keeps per token only what corpus-wide views scan (by default h). The cell state and
every gate of a window are recomputed here: each window of the range is run again through the
model starting at the nearest keyframe before the range (the full float32 state the recording
kept every `keyframe_every` tokens), or at the window's start, where the state is zero. The
explicit recurrence is the one that recorded the store, so the values equal a full float32
recording (tests check 1e-5).

Only models whose recurrent modules are all unidirectional fused layers restart mid-window;
for a bidirectional layer (whose backward state depends on the window's end) or cells driven
by the model's own loop, the whole window is run from its start, alone, padded to the width its
batch had when recorded (with the padding id the recording saw), as an unpacked backward pass
reads the padding.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from rnnvis.errors import NotFound, RnnvisError
from rnnvis.recording.engine import Engine, default_forward
from rnnvis.recording.record import default_method, module_device

MAX_ROWS = 64  # windows run together in one batch


def initial_states(engine: Engine, state: dict[str, Tensor]) -> dict[str, Any]:
    """{target path: hx} for `Engine.initial` from per-stream states {stream: (B, units)}."""
    out = {}
    for t in engine.targets:
        L = t.module.num_layers
        h0 = torch.stack([state[t.stream_name("h", k, "fwd")] for k in range(L)])  # (L, B, H_out)
        if t.kind == "lstm":
            out[t.path] = (h0, torch.stack([state[t.stream_name("c", k, "fwd")] for k in range(L)]))
        else:
            out[t.path] = h0
    return out


def _run(engine: Engine, forward: Callable, batch: dict, initial: dict | None) -> dict[str, Tensor]:
    engine.initial = initial or {}
    try:
        with torch.no_grad(), engine.active():
            return engine.run(forward, batch)[1]
    finally:
        engine.initial = {}


def _batch(rows: list[np.ndarray], doc_ids: list[int], start_pos: list[int], device, width: int = 0,
           pad_id: int = 0) -> dict:
    T = max(width, max(len(r) for r in rows))
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.from_numpy(r.astype(np.int64))
    return {"ids": ids.to(device), "lengths": torch.tensor([len(r) for r in rows], device=device),
            "doc_ids": torch.tensor(doc_ids, device=device), "start_pos": torch.tensor(start_pos, device=device)}


def restart_matches(engine: Engine, forward: Callable, batch: dict, streams: dict[str, Tensor], every: int,
                    tol: float = 1e-4) -> bool:
    """Whether restarting the first long-enough row of `batch` at step `every` from its recorded
    state reproduces the recorded streams (False for a model that sees more than the state, e.g.
    a convolution over neighbouring tokens before the recurrence). True when no row is that long."""
    lengths = batch["lengths"]
    rows = torch.nonzero(lengths > every).flatten()
    if rows.numel() == 0:
        return True
    r, L = int(rows[0]), int(lengths[rows[0]])
    state = {n: streams[n][r:r + 1, every - 1] for n in engine.state_streams()}
    sub = {"ids": batch["ids"][r:r + 1, every:L], "lengths": lengths[r:r + 1] - every,
           "doc_ids": batch["doc_ids"][r:r + 1], "start_pos": batch["start_pos"][r:r + 1] + every}
    again = _run(engine, forward, sub, initial_states(engine, state))
    return all(torch.allclose(again[n][0], streams[n][r, every:L], atol=tol, rtol=tol) for n in again)


def recompute(module: torch.nn.Module, store, start: int, stop: int, names=None,
              forward: Callable[[torch.nn.Module, dict], Any] | None = None,
              method: str | None = None) -> dict[str, np.ndarray]:
    """{stream: (stop-start, units) float32} for the store's tokens [start, stop), recomputed.

    module: the model that made the recording (eval mode; not used by anyone else meanwhile);
    forward(module, batch) as given to `record_corpus`; names: streams (default every stream)."""
    if not 0 <= start < stop <= store.n_tokens:
        raise RnnvisError(f"token range [{start}, {stop}) is outside the recording (0..{store.n_tokens})",
                          "pass 0 <= start < stop <= store.n_tokens")
    names = list(store.all_streams if names is None else names)
    unknown = [n for n in names if n not in store.all_streams]
    if unknown:
        raise NotFound(f"unknown streams {unknown}", f"choose from {', '.join(store.all_streams)}")
    device = module_device(module)
    engine = Engine(module, method or store.meta.get("method") or default_method(device))
    engine.verify_next = False  # the recording verified this model already
    forward = forward or default_forward
    W = store.windows
    j0 = int(np.searchsorted(W[:, 1], start, side="right"))
    j1 = int(np.searchsorted(W[:, 0], stop, side="left"))
    restart = engine.restartable
    pieces = []  # (run from, run to, keep from, keep to, keyframe state or None, window)
    for j in range(j0, j1):
        a, b = int(W[j, 0]), int(W[j, 1])
        lo, hi = max(a, start), min(b, stop)
        if hi <= lo:
            continue
        kf = store.keyframe(lo, floor=a + 1) if restart else None
        first, state = kf if kf is not None else (a, None)
        pieces.append((first, hi if restart else b, lo, hi, state, j))
    out: dict[str, list[np.ndarray]] = {n: [] for n in names}
    # pieces from a keyframe and from a window start run in separate batches (their initial states
    # differ in kind); a non-restartable model runs each window alone (no padding enters a bwd pass)
    size = MAX_ROWS if restart else 1
    results: dict[int, dict[str, np.ndarray]] = {}
    for with_state in (False, True):
        group = [i for i, p in enumerate(pieces) if (p[4] is not None) == with_state]
        for g in range(0, len(group), size):
            idx = group[g:g + size]
            rows = [store.column("token_ids", pieces[i][0], pieces[i][1]) for i in idx]
            docs = [int(store.column("doc_ids", pieces[i][0], pieces[i][0] + 1)[0]) for i in idx]
            pos = [int(store.column("positions", pieces[i][0], pieces[i][0] + 1)[0]) for i in idx]
            # a window run alone is padded as it was when recorded: a backward pass read the padding
            width = 0 if restart else int(store.column("window_widths", pieces[idx[0]][5], pieces[idx[0]][5] + 1)[0])
            batch = _batch(rows, docs, pos, device, width, store.meta.get("pad_id") or 0)
            initial = None
            if with_state:
                state = {n: torch.from_numpy(np.stack([pieces[i][4][n] for i in idx])).to(device)
                         for n in pieces[idx[0]][4]}
                initial = initial_states(engine, state)
            streams = _run(engine, forward, batch, initial)
            for r, i in enumerate(idx):
                first, _, lo, hi = pieces[i][:4]
                results[i] = {n: streams[n][r, lo - first:hi - first].float().cpu().numpy() for n in names}
    for i in range(len(pieces)):
        for n in names:
            out[n].append(results[i][n])
    return {n: np.concatenate(v) for n, v in out.items()}
