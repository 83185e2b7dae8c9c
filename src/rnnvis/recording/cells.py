"""Gate maths for one layer and one direction, from the layer's own weights.

Two methods compute the same streams (all tensors time-major, `(time, batch, units)`):

- `scan_direction` — the explicit single pass: ONE batched input projection for all time
  steps (`x @ W_ih^T`), then a per-step recurrent product that keeps every gate. Its h is
  the layer's output, so the fused forward need not run (used on CPU).
- `batched_direction` — run torch's fused kernel for the layer (cuDNN on GPU) to get h for
  every step, then every gate for all steps in ONE batched matmul (the gates at step t
  depend only on x_t and h_{t-1}, both known), and the LSTM cell state by a cheap
  elementwise scan c_t = f_t * c_{t-1} + i_t * g_t.

Formulas follow the torch docs for nn.RNN / nn.GRU / nn.LSTM (gate order i f g o, r z n).
All functions expect to run under `torch.no_grad()`.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import Tensor, _VF  # _VF: torch's own single-layer fused kernels (cuDNN / oneDNN)


@dataclass
class LayerWeights:
    """Weights of one layer and direction (or of one cell). Biases and w_hr may be None."""

    w_ih: Tensor  # (gates*H, in)
    w_hh: Tensor  # (gates*H, H_out)
    b_ih: Tensor | None  # (gates*H,)
    b_hh: Tensor | None  # (gates*H,)
    w_hr: Tensor | None = None  # (H_out, H) LSTM projection

    @property
    def hidden(self) -> int:
        """Full hidden size H (the cell state size for an LSTM)."""
        return self.w_hh.shape[0] // _n_gates_rows(self)

    def flat(self) -> list[Tensor]:
        """Weights in the order torch's fused kernels expect for one layer."""
        ws = [self.w_ih, self.w_hh]
        if self.b_ih is not None:
            ws += [self.b_ih, self.b_hh]
        if self.w_hr is not None:
            ws.append(self.w_hr)
        return ws


def _n_gates_rows(w: LayerWeights) -> int:
    rows, cols = w.w_hh.shape
    # (4H, H_out) lstm, (3H, H) gru, (H, H) rnn; with projection cols != H so use w_hr.
    if w.w_hr is not None:
        return rows // w.w_hr.shape[1]
    return rows // cols


def layer_weights(module: torch.nn.Module, layer: int, reverse: bool) -> LayerWeights:
    """Weights of `layer` (0-based, as in torch's names) and direction of a fused module."""
    sfx = f"_l{layer}" + ("_reverse" if reverse else "")
    return LayerWeights(
        w_ih=getattr(module, "weight_ih" + sfx),
        w_hh=getattr(module, "weight_hh" + sfx),
        b_ih=getattr(module, "bias_ih" + sfx, None),
        b_hh=getattr(module, "bias_hh" + sfx, None),
        w_hr=getattr(module, "weight_hr" + sfx, None),
    )


def cell_weights(cell: torch.nn.Module) -> LayerWeights:
    """Weights of an nn.RNNCell / nn.GRUCell / nn.LSTMCell."""
    return LayerWeights(cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)


_ONEDNN = [torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")]


def linear(x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
    """x @ w^T (+ b), x (..., in), w (out, in).

    On CPU in float32 this calls oneDNN's matmul, the library behind torch's own fused RNN
    kernels, through torch's op: on the 2-core bench machine it ran the input projection
    (2240 x 650 @ 650 x 2600) 2x and the per-step product (64 rows) 1.5x faster than the default
    BLAS path, at float32 accuracy. Elsewhere, or if the op is missing, torch's linear.
    """
    if w.is_mkldnn:  # prepared by step_weight
        return torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")
    if _ONEDNN[0] and x.device.type == "cpu" and x.dtype == torch.float32 and w.dtype == torch.float32:
        try:
            return torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")
        except (RuntimeError, NotImplementedError):  # an unsupported layout or build: never again
            _ONEDNN[0] = False
    return torch.nn.functional.linear(x, w, b)


def step_weight(w: Tensor, rows: int) -> Tensor:
    """The recurrent weight prepared for `linear` calls on `rows` rows: on CPU (oneDNN) reordered
    once into oneDNN's blocked layout, instead of at every step (the per-step product was 1.3x
    faster on the bench machine); the weight itself elsewhere."""
    if _ONEDNN[0] and w.device.type == "cpu" and w.dtype == torch.float32:
        try:
            packed = torch.ops.mkldnn._reorder_linear_weight(w.detach(), rows)
            probe = torch.ones(rows, w.shape[1])  # the packed weight must give the same product
            got = torch.ops.mkldnn._linear_pointwise(probe, packed, None, "none", [], "")
            if torch.allclose(got, torch.nn.functional.linear(probe, w), rtol=1e-4, atol=1e-4):
                return packed
        except (RuntimeError, NotImplementedError, AttributeError):
            pass
    return w


def _input_projection(x: Tensor, w: LayerWeights, kind: str) -> Tensor:
    """x @ W_ih^T + biases for all steps at once; (T, B, in) -> (T, B, gates*H), contiguous.

    b_hh is folded in wherever it is purely additive (all but the GRU candidate n).
    """
    bias = None
    if w.b_ih is not None:
        if kind == "gru":
            bias = w.b_ih.clone()
            bias[: 2 * w.hidden] += w.b_hh[: 2 * w.hidden]
        else:
            bias = w.b_ih + w.b_hh
    return linear(x, w.w_ih, bias).contiguous()


def _gru_hh_bias(w: LayerWeights) -> Tensor | None:
    """(3H,) bias for the recurrent product of a GRU: zeros for r, z and b_hn for n."""
    if w.b_hh is None:
        return None
    h = w.hidden
    b = torch.zeros_like(w.b_hh)
    b[2 * h:] = w.b_hh[2 * h:]
    return b


def split_gates(kind: str, act: Tensor, h: int) -> dict[str, Tensor]:
    """Name the gate blocks of an activation tensor (..., gates*H)."""
    names = {"lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n")}.get(kind, ())
    return {f"gate.{n}": act[..., k * h:(k + 1) * h] for k, n in enumerate(names)}


def scan_direction(kind: str, x: Tensor, h0: Tensor, c0: Tensor | None, w: LayerWeights) -> dict[str, Tensor]:
    """Explicit single pass over time; returns h (and c, gates), each (T, B, units).

    x: (T, B, in); h0: (B, H_out); c0: (B, H) for an LSTM.
    """
    T, B, _ = x.shape
    H = w.hidden
    xp = _input_projection(x, w, kind)  # (T, B, gates*H)
    whh = step_weight(w.w_hh, B)  # (gates*H, H_out)
    h = h0
    h_out = x.new_empty(T, B, h0.shape[-1])  # (T, B, H_out)
    out: dict[str, Tensor] = {"h": h_out}
    # The gate activations are computed in place in the input projection's (T, B, gates*H)
    # buffer: no per-step temporaries, and the gates of all steps end up in one block.
    if kind == "lstm":
        act = xp
        c_all = x.new_empty(T, B, H)
        c = c0
        whr_t = w.w_hr.t() if w.w_hr is not None else None
        # few, out=-writing ops per step: each op is a sync point of the thread pool
        for t in range(T):
            a = act[t].add_(linear(h, whh))  # (B, 4H) pre-activations
            a[:, :2 * H].sigmoid_()
            a[:, 2 * H:3 * H].tanh_()
            a[:, 3 * H:].sigmoid_()
            i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
            c = torch.mul(f, c, out=c_all[t]).addcmul_(i, g)
            if whr_t is None:
                h = torch.mul(o, torch.tanh(c), out=h_out[t])
            else:
                h = torch.mm(o * torch.tanh(c), whr_t, out=h_out[t])
        out["c"] = c_all
        out.update(split_gates(kind, act, H))
    elif kind == "gru":
        act = xp
        bias = _gru_hh_bias(w)
        for t in range(T):
            hp = linear(h, whh, bias)  # (B, 3H)
            a = act[t]
            a[:, :2 * H].add_(hp[:, :2 * H]).sigmoid_()
            r, z = a[:, :H], a[:, H:2 * H]
            n = a[:, 2 * H:].addcmul_(r, hp[:, 2 * H:]).tanh_()
            h = torch.addcmul(n, z, h - n, out=h_out[t])  # (1-z)*n + z*h
        out.update(split_gates(kind, act, H))
    else:
        for t in range(T):
            pre = xp[t].add_(linear(h, whh))  # (B, H)
            h = torch.tanh(pre, out=h_out[t]) if kind == "rnn_tanh" else torch.clamp_min(pre, 0.0, out=h_out[t])
    return out


def gates_from_inputs(kind: str, x: Tensor, h_prev: Tensor, c0: Tensor | None,
                      w: LayerWeights) -> dict[str, Tensor]:
    """Every gate for all steps in one batched product, given h_{t-1} for every step.

    x: (T, B, in); h_prev: (T, B, H_out) = [h0, h_0, ..., h_{T-2}]. Returns the gates, c (LSTM,
    by an elementwise scan) and 'h_check', the hidden state implied by those gates, used to
    verify against the kernel's own h.
    """
    T, B, _ = x.shape
    H = w.hidden
    xp = _input_projection(x, w, kind)  # (T, B, gates*H)
    if kind == "lstm":
        pre = xp + linear(h_prev, w.w_hh)  # (T, B, 4H)
        act = torch.sigmoid(pre)
        act[..., 2 * H:3 * H] = torch.tanh(pre[..., 2 * H:3 * H])
        gates = split_gates(kind, act, H)
        f = gates["gate.f"]
        ig = gates["gate.i"] * gates["gate.g"]  # (T, B, H)
        c_all = torch.empty_like(ig)
        c = c0
        for t in range(T):  # elementwise only: cheap
            c = torch.addcmul(ig[t], f[t], c)
            c_all[t] = c
        h_check = gates["gate.o"] * torch.tanh(c_all)
        if w.w_hr is not None:
            h_check = h_check @ w.w_hr.t()
        return {"c": c_all, **gates, "h_check": h_check}
    if kind == "gru":
        hp = linear(h_prev, w.w_hh)  # (T, B, 3H)
        if w.b_hh is not None:
            hp[..., 2 * H:] += w.b_hh[2 * H:]
        act = torch.empty_like(xp)
        act[..., :2 * H] = torch.sigmoid(xp[..., :2 * H] + hp[..., :2 * H])
        r, z = act[..., :H], act[..., H:2 * H]
        n = torch.tanh(xp[..., 2 * H:] + r * hp[..., 2 * H:])
        act[..., 2 * H:] = n
        return {**split_gates(kind, act, H), "h_check": n + z * (h_prev - n)}
    act_fn = torch.tanh if kind == "rnn_tanh" else torch.relu
    return {"h_check": act_fn(xp + linear(h_prev, w.w_hh))}


def fused_direction(kind: str, x: Tensor, h0: Tensor, c0: Tensor | None, w: LayerWeights) -> Tensor:
    """h for every step from torch's fused single-layer kernel; (T, B, H_out)."""
    has_bias = w.b_ih is not None
    with warnings.catch_warnings():  # cuDNN warns that per-layer weights are not one flat buffer
        warnings.filterwarnings("ignore", message="RNN module weights are not part")
        return _fused(kind, x, h0, c0, w, has_bias)


def _fused(kind: str, x: Tensor, h0: Tensor, c0: Tensor | None, w: LayerWeights, has_bias: bool) -> Tensor:
    if kind == "lstm":
        out = _VF.lstm(x, (h0[None], c0[None]), w.flat(), has_bias, 1, 0.0, False, False, False)
    elif kind == "gru":
        out = _VF.gru(x, h0[None], w.flat(), has_bias, 1, 0.0, False, False, False)
    elif kind == "rnn_tanh":
        out = _VF.rnn_tanh(x, h0[None], w.flat(), has_bias, 1, 0.0, False, False, False)
    else:
        out = _VF.rnn_relu(x, h0[None], w.flat(), has_bias, 1, 0.0, False, False, False)
    return out[0]


def batched_direction(kind: str, x: Tensor, h0: Tensor, c0: Tensor | None, w: LayerWeights) -> dict[str, Tensor]:
    """Fused kernel for h, then all gates in one batched product; same result as scan_direction."""
    h = fused_direction(kind, x, h0, c0, w)  # (T, B, H_out)
    h_prev = torch.cat([h0[None], h[:-1]], dim=0)  # (T, B, H_out)
    streams = {"h": h}
    if kind in ("lstm", "gru"):
        g = gates_from_inputs(kind, x, h_prev, c0, w)
        g.pop("h_check")
        streams.update(g)
    return streams


def run_direction(method: str, kind: str, x: Tensor, h0: Tensor, c0: Tensor | None,
                  w: LayerWeights) -> dict[str, Tensor]:
    """Dispatch to 'scan' or 'batched'."""
    if method == "scan":
        return scan_direction(kind, x, h0, c0, w)
    return batched_direction(kind, x, h0, c0, w)
